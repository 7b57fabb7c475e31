//! Remote desktop recordings (`rdp` streams): what the vendor typed and clicked, for the
//! index, and the screen at any moment, drawn with `sekisho-rdp`'s replay.
//!
//! Drawing a late moment must not replay everything before it: when the recording is sealed,
//! the screen is drawn once from the start and a *screens* file beside the stream keeps a
//! snapshot every [`EVERY_US`] of recording time (when the screen changed). A moment is then
//! drawn from the last snapshot before it (while a desktop is still recorded, watching it
//! goes on from where the previous refresh stopped: [`screen_now`]), laid over a replay of
//! the recording's start up to its first snapshot (the codecs' first messages carry state a picture does not: RemoteFX
//! sends its channels and context once). The screens file is in the signed manifest like
//! the index, so a snapshot cannot be swapped for another picture.
//!
//! ```text
//! file     := "SKSCREEN" version:u8 (=1) snapshot*
//! snapshot := len:u32be json[len] png_len:u32be png[png_len]
//!             json: {"t_us", "offset" (byte offset of the next frame in the stream file),
//!                    "activation" (channel ids, share id, size, keyboard layout)}
//!             png:  the screen, RGBA
//! ```

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sekisho_rdp::input::{self, Event};
use sekisho_rdp::replay::{self, Activation, Dir, Replayer, Snapshot};
use sekisho_rdp::{clipboard, setup};
use serde::{Deserialize, Serialize};

use crate::error::{RecordingError, Result, io_err};
use crate::stream::{Direction, FrameReader, StreamKind};

const MAGIC: &[u8; 8] = b"SKSCREEN";
const VERSION: u8 = 1;
/// Recording time between snapshots.
pub const EVERY_US: u64 = 10_000_000;

/// The screens file of a stream file: `stream-3.skr` → `stream-3.screens`.
pub fn screens_name(stream: &str) -> String {
    format!("{}.screens", stream.strip_suffix(".skr").unwrap_or(stream))
}

#[derive(Serialize, Deserialize)]
struct SnapshotHeader {
    t_us: u64,
    offset: u64,
    activation: Activation,
}

fn format_err(path: &Path, message: impl ToString) -> RecordingError {
    RecordingError::Format {
        path: path.to_owned(),
        message: message.to_string(),
    }
}

fn dir(d: Direction) -> Dir {
    match d {
        Direction::ToTarget => Dir::ToTarget,
        Direction::FromTarget => Dir::FromTarget,
    }
}

fn open(path: &Path) -> Result<FrameReader<BufReader<File>>> {
    let file = File::open(path).map_err(io_err("open", path))?;
    let (header, reader) =
        FrameReader::open(BufReader::new(file)).map_err(|e| format_err(path, e))?;
    if header.kind != StreamKind::Rdp {
        return Err(format_err(path, "not a remote desktop stream"));
    }
    Ok(reader)
}

/// Something a remote desktop stream says, for the index.
#[derive(Clone, Debug, PartialEq)]
pub enum Noted {
    /// The client's keyboard layout (and whether typed text is decoded exactly).
    Layout(String),
    /// A line the vendor typed.
    Typed(String),
    /// A mouse click.
    Click(String),
    /// Clipboard text that crossed, and which way.
    Clipboard(String),
}

/// What the vendor typed and clicked in a remote desktop stream, the clipboard text that
/// crossed (when the level allowed the clipboard), and the keyboard layout, each at its
/// moment (seconds).
pub fn noted(path: &Path) -> Result<Vec<(f64, Noted)>> {
    let mut reader = open(path)?;
    let mut decoder: Option<input::Decoder> = None;
    let mut client: Option<setup::ClientSetup> = None;
    let mut clipboard: Option<(u16, clipboard::Watch)> = None;
    let mut server_seen = false;
    let mut out = vec![];
    while let Some(frame) = reader.next_frame().map_err(io_err("read", path))? {
        let t = frame.t_us as f64 / 1e6;
        let d = dir(frame.direction);
        if client.is_none() && d == Dir::ToTarget {
            // The first vendor → target PDU: the Connect Initial (layout, channels).
            if let Some(c) = setup::read_connect_initial(&frame.data) {
                let (name, exact) = input::layout_name(c.keyboard_layout);
                let note = if exact { "" } else { ": typed text may differ" };
                out.push((t, Noted::Layout(format!("keyboard layout {name}{note}"))));
                decoder = Some(input::Decoder::new(c.keyboard_layout));
                client = Some(c);
            }
            continue;
        }
        if !server_seen && d == Dir::FromTarget {
            if let (Some(c), Ok(s)) = (&client, setup::connect_response(&frame.data)) {
                let at = c.channels.iter().position(|n| n == "cliprdr");
                clipboard = at
                    .and_then(|i| s.channel_ids.get(i))
                    .map(|id| (*id, clipboard::Watch::new()));
                server_seen = true;
            }
            continue;
        }
        if let Some((id, watch)) = clipboard.as_mut()
            && frame.data.first() == Some(&0x03)
            && let Some((channel, user_data)) = setup::send_data(&frame.data)
            && channel == *id
            && let Some(crossed) = watch.feed(d, &user_data)
        {
            let way = match crossed.dir {
                Dir::ToTarget => "pasted into the target",
                Dir::FromTarget => "copied from the target",
            };
            out.push((t, Noted::Clipboard(format!("{way}: {}", crossed.text))));
        }
        if d == Dir::ToTarget
            && let Some(dec) = decoder.as_mut()
        {
            dec.feed(frame.t_us, &frame.data);
        }
    }
    for event in decoder.map(input::Decoder::finish).unwrap_or_default() {
        out.push(match event {
            Event::Line { t_us, text } => (t_us as f64 / 1e6, Noted::Typed(text)),
            Event::Click { t_us, x, y, button } => (
                t_us as f64 / 1e6,
                Noted::Click(format!("{button} click at {x},{y}")),
            ),
        });
    }
    Ok(out)
}

/// Draws the stream once and writes its screens file; returns its name.
pub fn build_screens(dir_path: &Path, stream: &str) -> Result<String> {
    let path = dir_path.join(stream);
    let mut reader = open(&path)?;
    let name = screens_name(stream);
    let out_path = dir_path.join(&name);
    let mut out = BufWriter::new(File::create(&out_path).map_err(io_err("create", &out_path))?);
    out.write_all(MAGIC)
        .and_then(|()| out.write_all(&[VERSION]))
        .map_err(io_err("write", &out_path))?;
    let mut replayer = Replayer::new();
    let mut last: Option<u64> = None;
    let mut changed = false;
    let mut count = 0u64;
    while let Some(frame) = reader.next_frame().map_err(io_err("read", &path))? {
        changed |= replayer.feed(dir(frame.direction), &frame.data);
        let due = last.is_none_or(|l| frame.t_us >= l + EVERY_US);
        if replayer.active() && changed && due {
            if let Some(snapshot) = replayer.snapshot() {
                write_snapshot(&mut out, frame.t_us, reader.position(), &snapshot)
                    .map_err(|e| format_err(&out_path, e))?;
                count += 1;
            }
            last = Some(frame.t_us);
            changed = false;
        }
    }
    out.flush().map_err(io_err("write", &out_path))?;
    tracing::debug!(
        stream,
        snapshots = count,
        undecoded = replayer.undecoded,
        "screens written"
    );
    Ok(name)
}

fn write_snapshot(
    out: &mut impl Write,
    t_us: u64,
    offset: u64,
    snapshot: &Snapshot,
) -> std::result::Result<(), String> {
    let a = &snapshot.activation;
    let png = replay::png(a.width, a.height, &snapshot.rgba).map_err(|e| e.to_string())?;
    let json = serde_json::to_vec(&SnapshotHeader {
        t_us,
        offset,
        activation: a.clone(),
    })
    .map_err(|e| e.to_string())?;
    let len = |n: usize| u32::try_from(n).map_err(|e| e.to_string());
    out.write_all(&len(json.len())?.to_be_bytes())
        .and_then(|()| out.write_all(&json))
        .and_then(|()| out.write_all(&len(png.len()).unwrap_or(0).to_be_bytes()))
        .and_then(|()| out.write_all(&png))
        .map_err(|e| e.to_string())
}

/// A snapshot to draw from, and where the recording's first one ends.
struct Found {
    /// The byte offset after the frame of the first snapshot: the start to replay first.
    first_offset: u64,
    t_us: u64,
    offset: u64,
    snapshot: Snapshot,
}

/// The last snapshot at or before `t_us` in a screens file, if any.
fn snapshot_before(path: &Path, t_us: u64) -> Result<Option<Found>> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("open", path)(e)),
    };
    let mut r = BufReader::new(file);
    let mut magic = [0u8; 9];
    r.read_exact(&mut magic).map_err(io_err("read", path))?;
    if &magic[..8] != MAGIC || magic[8] != VERSION {
        return Err(format_err(path, "not a screens file"));
    }
    let mut best: Option<(SnapshotHeader, Vec<u8>)> = None;
    let mut first_offset = None;
    loop {
        let mut len = [0u8; 4];
        if r.read_exact(&mut len).is_err() {
            break;
        }
        let mut json = vec![0; u32::from_be_bytes(len) as usize];
        r.read_exact(&mut json).map_err(io_err("read", path))?;
        let header: SnapshotHeader =
            serde_json::from_slice(&json).map_err(|e| format_err(path, e))?;
        r.read_exact(&mut len).map_err(io_err("read", path))?;
        let n = u32::from_be_bytes(len) as usize;
        first_offset.get_or_insert(header.offset);
        if header.t_us > t_us {
            break;
        }
        let mut png = vec![0; n];
        r.read_exact(&mut png).map_err(io_err("read", path))?;
        best = Some((header, png));
    }
    let (Some((header, png)), Some(first_offset)) = (best, first_offset) else {
        return Ok(None);
    };
    let (w, h, rgba) = replay::unpng(&png).map_err(|e| format_err(path, e))?;
    if (w, h) != (header.activation.width, header.activation.height) {
        return Err(format_err(
            path,
            "snapshot size differs from its activation",
        ));
    }
    Ok(Some(Found {
        first_offset,
        t_us: header.t_us,
        offset: header.offset,
        snapshot: Snapshot {
            activation: header.activation,
            rgba,
        },
    }))
}

/// A drawn moment.
pub struct Screen {
    pub png: Vec<u8>,
    /// The moment drawn (seconds), at most the length.
    pub t: f64,
    /// The stream's length so far (seconds).
    pub length: f64,
    /// Where drawing started: from a snapshot at this moment, or from the beginning.
    pub from_snapshot: Option<f64>,
}

/// The screen of the remote desktop stream `stream` in `dir_path` at `t` seconds (or the end).
/// `None` when the desktop was never drawn (the connection did not get that far).
pub fn screen_at(dir_path: &Path, stream: &str, t: f64) -> Result<Option<Screen>> {
    let path: PathBuf = dir_path.join(stream);
    let t_us = if t.is_finite() && t >= 0.0 {
        (t * 1e6) as u64
    } else {
        u64::MAX
    };
    let mut reader = open(&path)?;
    let mut replayer = Replayer::new();
    let mut from = None;
    if let Some(found) = snapshot_before(&dir_path.join(screens_name(stream)), t_us)? {
        // The start (connection sequence, the codecs' first messages), then the picture.
        while reader.position() < found.first_offset {
            let Some(frame) = reader.next_frame().map_err(io_err("read", &path))? else {
                break;
            };
            replayer.feed(dir(frame.direction), &frame.data);
        }
        replayer
            .overlay(&found.snapshot)
            .map_err(|e| format_err(&path, e))?;
        reader.seek(found.offset).map_err(io_err("seek", &path))?;
        from = Some(found.t_us as f64 / 1e6);
    }
    let mut length_us = 0;
    let mut drawn_us = 0;
    while let Some(frame) = reader.next_frame().map_err(io_err("read", &path))? {
        length_us = frame.t_us;
        if frame.t_us > t_us {
            // The length: the last frame's time (the rest is only stepped over).
            let last = reader.last_time().map_err(io_err("read", &path))?;
            length_us = last.unwrap_or(length_us);
            break;
        }
        drawn_us = frame.t_us;
        replayer.feed(dir(frame.direction), &frame.data);
    }
    let Some(png) = replayer.png() else {
        return Ok(None);
    };
    let png = png.map_err(|e| format_err(&path, e))?;
    let length = length_us as f64 / 1e6;
    Ok(Some(Screen {
        png,
        t: if t_us == u64::MAX {
            length
        } else {
            (t_us.max(drawn_us) as f64 / 1e6).min(length)
        },
        length,
        from_snapshot: from,
    }))
}

/// Builds the screens file of every remote desktop stream in `dir_path`; returns their names.
/// A stream that cannot be drawn is left without one (drawn from its start), with a warning:
/// the stream itself is what is signed.
pub fn build_all_screens(dir_path: &Path) -> Vec<String> {
    let Ok(names) = crate::manifest::recording_files(dir_path) else {
        return vec![];
    };
    desktop_streams(dir_path, &names)
        .filter_map(|n| match build_screens(dir_path, n) {
            Ok(name) => Some(name),
            Err(e) => {
                tracing::warn!(stream = %n, error = %e, "no screens file");
                let _ = std::fs::remove_file(dir_path.join(screens_name(n)));
                None
            }
        })
        .collect()
}

/// The remote desktop streams among `names`, the files of the recording in `dir_path`.
pub fn desktop_streams<'a>(
    dir_path: &'a Path,
    names: &'a [String],
) -> impl Iterator<Item = &'a String> + 'a {
    names.iter().filter(move |n| {
        n.ends_with(".skr") && crate::stream::kind_of(&dir_path.join(n)) == Some(StreamKind::Rdp)
    })
}

/// Where drawing a live (still written) stream stopped last time, so that watching a running
/// desktop goes on from there at each refresh instead of replaying from the start.
struct LiveDraw {
    replayer: Replayer,
    /// The byte offset of the next frame to feed.
    offset: u64,
    drawn_us: u64,
    used: std::time::Instant,
}

/// Live streams drawn recently, at most [`LIVE_KEPT`] (about 3 MB each at 1024×768).
static LIVE: std::sync::LazyLock<std::sync::Mutex<std::collections::HashMap<PathBuf, LiveDraw>>> =
    std::sync::LazyLock::new(Default::default);
const LIVE_KEPT: usize = 16;

/// The screen of a stream that is still being written, now: drawn on from where the last call
/// for this stream stopped (the frames written since), or from the start the first time.
/// `None` when the desktop has not been drawn yet.
pub fn screen_now(dir_path: &Path, stream: &str) -> Result<Option<Screen>> {
    let path: PathBuf = dir_path.join(stream);
    let kept = LIVE.lock().ok().and_then(|mut live| live.remove(&path));
    let mut reader = open(&path)?;
    let mut draw = match kept {
        Some(d) => {
            reader.seek(d.offset).map_err(io_err("seek", &path))?;
            d
        }
        None => LiveDraw {
            replayer: Replayer::new(),
            offset: reader.position(),
            drawn_us: 0,
            used: std::time::Instant::now(),
        },
    };
    // A torn last frame (being written) stops the reading; the next call starts there.
    while let Some(frame) = reader.next_frame().map_err(io_err("read", &path))? {
        draw.replayer.feed(dir(frame.direction), &frame.data);
        draw.drawn_us = frame.t_us;
        draw.offset = reader.position();
    }
    let png = match draw.replayer.png() {
        Some(png) => Some(png.map_err(|e| format_err(&path, e))?),
        None => None,
    };
    let length = draw.drawn_us as f64 / 1e6;
    draw.used = std::time::Instant::now();
    if let Ok(mut live) = LIVE.lock() {
        live.insert(path, draw);
        while live.len() > LIVE_KEPT {
            let Some(oldest) = live
                .iter()
                .min_by_key(|(_, d)| d.used)
                .map(|(p, _)| p.clone())
            else {
                break;
            };
            live.remove(&oldest);
        }
    }
    Ok(png.map(|png| Screen {
        png,
        t: length,
        length,
        from_snapshot: None,
    }))
}

/// Plays the remote desktop stream `stream` from its start at `fps` pictures per second of
/// recording time, giving each picture (width, height, RGBA) to `picture`, and how far it
/// is (seconds done, seconds in all) to `progress` every ten seconds of recording. Returns
/// the number of pictures. For a video export: one pass, no snapshots needed.
pub fn play(
    dir_path: &Path,
    stream: &str,
    fps: u32,
    mut picture: impl FnMut(u16, u16, &[u8]) -> Result<()>,
    mut progress: impl FnMut(f64, f64),
) -> Result<u64> {
    let path = dir_path.join(stream);
    let length_us = open(&path)?
        .last_time()
        .map_err(io_err("read", &path))?
        .unwrap_or(0);
    let step_us = 1_000_000 / u64::from(fps.max(1));
    let mut reader = open(&path)?;
    let mut replayer = Replayer::new();
    let mut tick = 0u64;
    let mut count = 0u64;
    let mut pending = reader.next_frame().map_err(io_err("read", &path))?;
    while tick <= length_us {
        while let Some(frame) = pending.take_if(|f| f.t_us <= tick) {
            replayer.feed(dir(frame.direction), &frame.data);
            pending = reader.next_frame().map_err(io_err("read", &path))?;
        }
        if let Some((w, h, rgba)) = replayer.rgba() {
            picture(w, h, rgba)?;
            count += 1;
        }
        if tick % 10_000_000 < step_us {
            progress(tick as f64 / 1e6, length_us as f64 / 1e6);
        }
        tick += step_us;
    }
    Ok(count)
}
