//! `sekisho recording export ID --format video --out FILE`: a remote desktop recording as a
//! video file for auditors who prefer a player. The pictures are drawn by the recorder (the
//! same replay as the console's player) and encoded by `ffmpeg`, when it is installed.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};
use sekisho_recorder::RecordingError;

/// Writes the first remote desktop stream of the recording in `dir` to `out` (H.264 in the
/// container `out`'s extension names, e.g. `.mp4`) at `fps` pictures per second.
pub fn export(dir: &Path, out: &Path, fps: u32) -> anyhow::Result<()> {
    let names = sekisho_recorder::manifest::recording_files(dir)?;
    let Some(stream) = sekisho_recorder::desktop::desktop_streams(dir, &names).next() else {
        bail!(
            "recording {} has no remote desktop stream to export as video",
            dir.display()
        );
    };
    let ffmpeg = Command::new("ffmpeg").arg("-version").output();
    if !ffmpeg.is_ok_and(|o| o.status.success()) {
        bail!(
            "ffmpeg is not installed: install it (Debian: apt install ffmpeg) to export a desktop recording as video; the recording itself can be watched in the console"
        );
    }
    let mut child: Option<std::process::Child> = None;
    let mut size: Option<(u16, u16)> = None;
    let mut resized = false;
    let started = std::time::Instant::now();
    let pictures = sekisho_recorder::desktop::play(
        dir,
        stream,
        fps,
        |w, h, rgba| {
            let encoder =
                match &mut child {
                    Some(c) => c,
                    None => {
                        size = Some((w, h));
                        child.insert(start_ffmpeg(out, w, h, fps).map_err(|e| {
                            RecordingError::Failed(format!("cannot start ffmpeg: {e}"))
                        })?)
                    }
                };
            if size != Some((w, h)) {
                // The desktop was resized: the video keeps its first size; later pictures
                // are left out rather than distorted.
                resized = true;
                return Ok(());
            }
            let Some(stdin) = encoder.stdin.as_mut() else {
                return Err(RecordingError::Failed("ffmpeg's input is closed".into()));
            };
            stdin
                .write_all(rgba)
                .map_err(|e| RecordingError::Failed(format!("ffmpeg stopped reading: {e}")))
        },
        |done, all| eprintln!("exporting: {done:.0} s of {all:.0} s"),
    )?;
    let Some(mut child) = child else {
        bail!("the desktop of {stream} was never drawn (the connection ended before it)");
    };
    drop(child.stdin.take());
    let output = child.wait_with_output().context("ffmpeg")?;
    if !output.status.success() {
        bail!(
            "ffmpeg failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    if resized {
        eprintln!(
            "note: the desktop was resized during the session; the video keeps its first size and leaves out what followed the resize"
        );
    }
    let (w, h) = size.unwrap_or_default();
    println!(
        "wrote {} ({pictures} pictures at {fps}/s, {w}x{h}, in {:.1} s)",
        out.display(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn start_ffmpeg(out: &Path, w: u16, h: u16, fps: u32) -> std::io::Result<std::process::Child> {
    Command::new("ffmpeg")
        .args([
            "-loglevel",
            "error",
            "-y",
            "-f",
            "rawvideo",
            "-pix_fmt",
            "rgba",
            "-s",
        ])
        .arg(format!("{w}x{h}"))
        .arg("-r")
        .arg(fps.to_string())
        .args(["-i", "-", "-c:v", "libx264", "-pix_fmt", "yuv420p"])
        // H.264 in 4:2:0 needs even sizes.
        .args(["-vf", "pad=ceil(iw/2)*2:ceil(ih/2)*2"])
        .arg(out)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
}
