//! `sekisho recording ...` and `sekisho replay`: review tools that work on the recordings
//! directory directly, so they work offline and years later.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use sekisho_config::Config;
use sekisho_recorder::cast::{self, EventKind};
use sekisho_recorder::manifest::{FileKind, Manifest, RecordingState};
use sekisho_recorder::{Library, bundle, index, library, pcap};

#[derive(Subcommand, Debug)]
pub enum RecordingCommand {
    /// List recordings, newest first.
    List {
        /// Only recordings of this target.
        #[arg(long)]
        target: Option<String>,
        /// Only recordings of this vendor engineer.
        #[arg(long)]
        user: Option<String>,
        /// Only recordings in this state.
        #[arg(long, value_enum)]
        state: Option<StateArg>,
    },
    /// Recompute hashes and check the signature of one recording, all, or an exported bundle.
    Verify {
        /// Session id (or a unique prefix).
        id: Option<String>,
        #[arg(long, conflicts_with_all = ["id", "bundle"])]
        all: bool,
        /// An exported bundle to check offline.
        #[arg(long, conflicts_with = "id")]
        bundle: Option<PathBuf>,
        /// With --bundle: the hospital's recording public key (base64 file) to check against,
        /// instead of the key inside the bundle.
        #[arg(long, requires = "bundle")]
        key: Option<PathBuf>,
    },
    /// Find sessions and moments where TEXT was typed or appeared on screen.
    Search { text: String },
    /// Export a recording: a TCP stream as pcap, or the whole recording as a bundle.
    Export(ExportArgs),
    /// Print the recording-signing public key and its id (to publish for auditors).
    Key,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    /// Session id (or a unique prefix).
    id: String,
    /// `pcap`: a TCP stream recording for Wireshark/tshark; `video`: a remote desktop
    /// recording as a video file (H.264, e.g. `.mp4`; needs ffmpeg).
    #[arg(long, value_enum, requires = "out")]
    format: Option<FormatArg>,
    /// Pictures per second of a video export.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=30))]
    fps: u32,
    /// Which stream channel to export (default: the only TCP stream).
    #[arg(long)]
    channel: Option<u32>,
    /// Where to write the pcap.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Write a self-contained archive for offline verification here.
    #[arg(long, conflicts_with = "format")]
    bundle: Option<PathBuf>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum FormatArg {
    Pcap,
    Video,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum StateArg {
    Open,
    Closed,
    Aborted,
}

#[derive(Args, Debug)]
pub struct ReplayArgs {
    /// Session id (or a unique prefix).
    id: String,
    /// Which terminal channel (default: the first).
    #[arg(long)]
    channel: Option<u32>,
    /// Playback speed factor.
    #[arg(long, default_value_t = 1.0)]
    speed: f64,
    /// Longest pause, in seconds, however long the vendor was idle.
    #[arg(long)]
    idle_limit: Option<f64>,
    /// Print what was on screen as plain text instead of playing it.
    #[arg(long)]
    text: bool,
}

fn library(config: &Config) -> Library {
    Library::new(&config.recordings_dir())
}

fn public_key(config: &Config) -> anyhow::Result<String> {
    sekisho_gateway::keys::recording_public_key(&config.data_dir.join("keys")).context(
        "cannot read the recording public key; has `sekisho serve` run with this data dir?",
    )
}

fn state_name(s: RecordingState) -> &'static str {
    match s {
        RecordingState::Open => "open",
        RecordingState::Closed => "closed",
        RecordingState::Aborted => "aborted",
    }
}

pub fn run(cmd: RecordingCommand, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path)?;
    let zone = config.display_zone();
    let lib = library(&config);
    match cmd {
        RecordingCommand::List {
            target,
            user,
            state,
        } => {
            let wanted = state.map(|s| match s {
                StateArg::Open => RecordingState::Open,
                StateArg::Closed => RecordingState::Closed,
                StateArg::Aborted => RecordingState::Aborted,
            });
            println!(
                "{:<36}  {:<22}  {:<12}  {:<10}  {:<7}  {:<8}  files",
                "session", "started", "target", "user", "request", "state"
            );
            for m in lib.list()? {
                if target.as_ref().is_some_and(|t| *t != m.meta.target)
                    || user.as_ref().is_some_and(|u| *u != m.meta.vendor_user)
                    || wanted.is_some_and(|s| s != m.state)
                {
                    continue;
                }
                println!(
                    "{:<36}  {:<22}  {:<12}  {:<10}  {:<7}  {:<8}  {}",
                    m.meta.session,
                    zone.date_time(m.started_at),
                    m.meta.target,
                    m.meta.vendor_user,
                    format!("R-{}", m.meta.request_number),
                    state_name(m.state),
                    m.files.len()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        RecordingCommand::Verify {
            id,
            all,
            bundle,
            key,
        } => {
            if let Some(file) = bundle {
                let trusted = key
                    .map(|k| {
                        std::fs::read_to_string(&k)
                            .with_context(|| format!("cannot read {}", k.display()))
                    })
                    .transpose()?;
                let scratch = tempfile::tempdir().context("cannot create a scratch directory")?;
                let check = bundle::verify(&file, trusted.as_deref(), scratch.path())?;
                let v = &check.verification;
                let source = if check.key_from_bundle {
                    "the key inside the bundle"
                } else {
                    "the given key"
                };
                if v.ok() {
                    println!(
                        "{}: intact (session {}, signed by key {}, checked with {source})",
                        file.display(),
                        v.session,
                        check.key_id
                    );
                    if check.key_from_bundle {
                        println!(
                            "compare key id {} with the one the hospital publishes (`sekisho recording key`)",
                            check.key_id
                        );
                    }
                    return Ok(ExitCode::SUCCESS);
                }
                println!("{}: NOT intact", file.display());
                for p in &v.problems {
                    println!("  {p}");
                }
                return Ok(ExitCode::FAILURE);
            }
            let key = public_key(&config)?;
            let ids: Vec<String> = if all {
                lib.list()?.into_iter().map(|m| m.meta.session).collect()
            } else {
                vec![id.context("give a session id, --all or --bundle FILE")?]
            };
            let mut bad = 0;
            for id in &ids {
                let v = lib.verify(id, &key)?;
                if v.ok() {
                    println!("{}: intact ({})", v.session, state_name(v.state));
                } else {
                    bad += 1;
                    println!("{}: NOT intact", v.session);
                    for p in &v.problems {
                        println!("  {p}");
                    }
                }
            }
            println!("{} recording(s) checked, {bad} not intact", ids.len());
            Ok(if bad == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        RecordingCommand::Search { text } => {
            let hits = lib.search(&text)?;
            for h in &hits {
                println!(
                    "{}  {:>9}  {:<6}  {}@{}  {}",
                    h.session,
                    format!("{:.1}s", h.t),
                    format!("{:?}", h.source).to_lowercase(),
                    h.vendor_user,
                    h.target,
                    h.text
                );
            }
            if hits.is_empty() {
                eprintln!("no recording contains \"{text}\"");
                return Ok(ExitCode::FAILURE);
            }
            Ok(ExitCode::SUCCESS)
        }
        RecordingCommand::Export(args) => export(&lib, &config, args),
        RecordingCommand::Key => {
            let key = public_key(&config)?;
            let raw = base64_decode(&key)?;
            println!("recording public key: {key}");
            println!(
                "key id:               {}",
                sekisho_recorder::manifest::key_id(&raw)
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn base64_decode(s: &str) -> anyhow::Result<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .context("the recording public key is not base64")
}

fn export(lib: &Library, config: &Config, args: ExportArgs) -> anyhow::Result<ExitCode> {
    let dir = lib.find(&args.id)?;
    if let Some(out) = args.bundle {
        bundle::export(&dir, &public_key(config)?, &out)?;
        println!("wrote {}", out.display());
        return Ok(ExitCode::SUCCESS);
    }
    let (Some(format), Some(out)) = (args.format, args.out) else {
        bail!("say what to export: --format pcap|video --out FILE, or --bundle FILE");
    };
    if let FormatArg::Video = format {
        super::video::export(&dir, &out, args.fps)?;
        return Ok(ExitCode::SUCCESS);
    }
    let stream = library::tcp_stream(&dir, args.channel)?;
    let s = &stream;
    let file =
        std::fs::File::create(&out).with_context(|| format!("cannot create {}", out.display()))?;
    pcap::export(s, std::io::BufWriter::new(file))
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("wrote {} ({} frames)", out.display(), s.frames.len());
    Ok(ExitCode::SUCCESS)
}

pub async fn replay(args: ReplayArgs, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path)?;
    let lib = library(&config);
    let dir = lib.find(&args.id)?;
    let m = Manifest::read(&dir)?;
    let name = m
        .files
        .iter()
        .filter(|f| {
            f.kind == FileKind::Asciicast && args.channel.is_none_or(|c| f.channel == Some(c))
        })
        .map(|f| f.name.clone())
        .next()
        .with_context(|| {
            format!(
                "recording {} has no terminal channel to replay",
                m.meta.session
            )
        })?;
    let text =
        std::fs::read_to_string(dir.join(&name)).with_context(|| format!("cannot read {name}"))?;
    if args.text {
        print!(
            "{}",
            index::transcript(&text).with_context(|| format!("cannot read {name}"))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    if !(args.speed > 0.0 && args.speed.is_finite()) {
        bail!("--speed must be a positive number");
    }
    let (_, events) = cast::parse(&text).with_context(|| format!("cannot read {name}"))?;
    let mut out = std::io::stdout().lock();
    let mut prev = 0.0f64;
    for ev in events.iter().filter(|e| e.kind == EventKind::Output) {
        let mut wait = (ev.t - prev).max(0.0);
        if let Some(limit) = args.idle_limit {
            wait = wait.min(limit.max(0.0));
        }
        prev = ev.t;
        if wait > 0.0 {
            std::thread::sleep(Duration::from_secs_f64(wait / args.speed));
        }
        out.write_all(ev.data.as_bytes())
            .context("cannot write to the terminal")?;
        out.flush().context("cannot write to the terminal")?;
    }
    Ok(ExitCode::SUCCESS)
}
