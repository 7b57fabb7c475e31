//! What happened in a recorded session, as its reviewer checks it against the plan (issue
//! #18): the channels the vendor opened (a terminal, a command with its text, sftp, a TCP
//! connection with its destination, a remote desktop) and when each carried data, and what
//! was typed, run or pasted, read from the index built when the recording closed.

use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::Serialize;

use crate::cast::CastHeader;
use crate::index::{self, Entry, Source};
use crate::manifest::{FileKind, Manifest, recording_files};
use crate::stream::{FrameReader, StreamKind};

/// What kind of channel a recording file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Opened {
    /// An interactive terminal (a shell).
    Terminal,
    /// One command (`ssh host command`).
    Exec,
    /// The sftp subsystem (also scp).
    Sftp,
    /// A TCP connection: an SSH port forward or a designated-client tunnel.
    Tcp,
    /// A remote desktop connection.
    Rdp,
}

impl From<StreamKind> for Opened {
    fn from(k: StreamKind) -> Self {
        match k {
            StreamKind::Exec => Opened::Exec,
            StreamKind::Sftp => Opened::Sftp,
            StreamKind::Tcp => Opened::Tcp,
            StreamKind::Rdp => Opened::Rdp,
        }
    }
}

/// One channel of the session.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Channel {
    /// The recording file that holds it.
    pub file: String,
    pub channel: Option<u32>,
    pub kind: Opened,
    /// The terminal's title, the command, or the TCP destination.
    pub detail: String,
    /// Seconds after the session started of its first and last recorded data (`None`: the
    /// channel carried nothing).
    pub first_t: Option<f64>,
    pub last_t: Option<f64>,
}

/// What the vendor did.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Activity {
    pub channels: Vec<Channel>,
    /// Lines typed, commands run, clipboard text and the gateway's flags, in time order, at
    /// most the limit asked for.
    pub typed: Vec<Entry>,
    /// How many there were in all (more than `typed` holds when it was cut at the limit).
    pub typed_total: usize,
    /// Whether the index exists (it is built when the recording closes).
    pub indexed: bool,
}

/// Whether an index entry is something the vendor did (not what the screen showed).
fn done_by_vendor(source: Source) -> bool {
    matches!(
        source,
        Source::Input | Source::Command | Source::Clipboard | Source::Flag
    )
}

/// The activity of the recording in `dir`, with at most `limit` typed entries. A channel
/// file that cannot be read is listed with no times rather than hiding the channel.
/// A recording still open has no file list in its manifest yet: its folder is read instead.
pub fn read(dir: &Path, manifest: &Manifest, limit: usize) -> Activity {
    let files: Vec<(String, FileKind, Option<u32>)> = if manifest.files.is_empty() {
        recording_files(dir)
            .unwrap_or_default()
            .into_iter()
            .map(|name| {
                let (kind, channel) = crate::library::kind_of(&name);
                (name, kind, channel)
            })
            .collect()
    } else {
        manifest
            .files
            .iter()
            .map(|f| (f.name.clone(), f.kind, f.channel))
            .collect()
    };
    let channels = files
        .iter()
        .filter_map(|(name, kind, channel)| match kind {
            FileKind::Asciicast => Some(terminal(dir, name, *channel)),
            FileKind::Stream => Some(stream(dir, name, *channel)),
            FileKind::Index | FileKind::Files | FileKind::Screens => None,
        })
        .collect();
    let (typed, typed_total, indexed) = match index::read(dir) {
        Ok(entries) => {
            let mine: Vec<Entry> = entries
                .into_iter()
                .filter(|e| done_by_vendor(e.source))
                .collect();
            let total = mine.len();
            (mine.into_iter().take(limit).collect(), total, true)
        }
        Err(_) => (vec![], 0, false),
    };
    Activity {
        channels,
        typed,
        typed_total,
        indexed,
    }
}

/// A terminal channel: its title, and the times of its first and last events.
fn terminal(dir: &Path, name: &str, channel: Option<u32>) -> Channel {
    let mut out = Channel {
        file: name.to_owned(),
        channel,
        kind: Opened::Terminal,
        detail: String::new(),
        first_t: None,
        last_t: None,
    };
    let Ok(file) = std::fs::File::open(dir.join(name)) else {
        return out;
    };
    let mut lines = BufReader::new(file).lines();
    if let Some(Ok(head)) = lines.next()
        && let Ok(h) = serde_json::from_str::<CastHeader>(&head)
    {
        out.detail = h.title.unwrap_or_default();
    }
    for line in lines.map_while(std::result::Result::ok) {
        // `[t, code, data]`: only the time is needed.
        let Ok((t, _, _)) =
            serde_json::from_str::<(f64, serde::de::IgnoredAny, serde::de::IgnoredAny)>(&line)
        else {
            continue;
        };
        out.first_t.get_or_insert(t);
        out.last_t = Some(t);
    }
    out
}

/// A stream channel: its kind and detail from the header, and its first and last frames.
fn stream(dir: &Path, name: &str, channel: Option<u32>) -> Channel {
    let mut out = Channel {
        file: name.to_owned(),
        channel,
        kind: Opened::Tcp,
        detail: String::new(),
        first_t: None,
        last_t: None,
    };
    let Ok(file) = std::fs::File::open(dir.join(name)) else {
        return out;
    };
    let Ok((header, mut frames)) = FrameReader::open(BufReader::new(file)) else {
        return out;
    };
    out.kind = header.kind.into();
    out.detail = header.detail;
    if let Ok(Some(first)) = frames.next_frame() {
        out.first_t = Some(first.t_us as f64 / 1e6);
        out.last_t = frames
            .last_time()
            .ok()
            .flatten()
            .map_or(out.first_t, |t| Some(t as f64 / 1e6));
    }
    out
}
