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

impl Opened {
    pub fn as_str(self) -> &'static str {
        match self {
            Opened::Terminal => "terminal",
            Opened::Exec => "exec",
            Opened::Sftp => "sftp",
            Opened::Tcp => "tcp",
            Opened::Rdp => "rdp",
        }
    }
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

/// The time of an asciicast event line (`[t, code, data]`), if it is one.
fn event_time(line: &str) -> Option<f64> {
    serde_json::from_str::<(f64, serde::de::IgnoredAny, serde::de::IgnoredAny)>(line)
        .ok()
        .map(|(t, _, _)| t)
}

/// The time of the last whole event of a cast file, read from its end (growing the piece
/// read until it holds one), not by reading the whole recording.
fn last_event_time(file: &mut std::fs::File) -> Option<f64> {
    use std::io::{Read, Seek, SeekFrom};
    let len = file.metadata().ok()?.len();
    let mut window = 64 * 1024u64;
    loop {
        let start = len.saturating_sub(window);
        file.seek(SeekFrom::Start(start)).ok()?;
        let mut tail = vec![];
        file.by_ref().take(window).read_to_end(&mut tail).ok()?;
        let text = String::from_utf8_lossy(&tail);
        let mut lines = text.lines();
        if start > 0 {
            lines.next(); // begun before the piece read
        }
        if let Some(t) = lines.rev().find_map(event_time) {
            return Some(t);
        }
        if start == 0 {
            return None;
        }
        window = window.saturating_mul(4);
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
    let Ok(mut file) = std::fs::File::open(dir.join(name)) else {
        return out;
    };
    let mut lines = BufReader::new(&mut file)
        .lines()
        .map_while(std::result::Result::ok);
    if let Some(head) = lines.next()
        && let Ok(h) = serde_json::from_str::<CastHeader>(&head)
    {
        out.detail = h.title.unwrap_or_default();
    }
    out.first_t = lines.find_map(|l| event_time(&l));
    if out.first_t.is_some() {
        out.last_t = last_event_time(&mut file);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cast::{EventKind, event_line, header_line};

    #[test]
    fn a_terminal_spans_its_first_to_its_last_event_even_after_a_long_one() {
        let dir = tempfile::tempdir().unwrap();
        let mut text = header_line(&CastHeader {
            version: 2,
            width: 80,
            height: 24,
            timestamp: 0,
            title: Some("bash".into()),
            env: None,
        });
        text.push_str(&event_line(0.5, EventKind::Output, "$ "));
        for i in 1..1000 {
            text.push_str(&event_line(f64::from(i), EventKind::Output, "x"));
        }
        // A last event longer than the first piece read from the end.
        text.push_str(&event_line(
            1234.25,
            EventKind::Output,
            &"y".repeat(300_000),
        ));
        std::fs::write(dir.path().join("term-0.cast"), text).unwrap();
        let c = terminal(dir.path(), "term-0.cast", Some(0));
        assert_eq!(c.detail, "bash");
        assert_eq!((c.first_t, c.last_t), (Some(0.5), Some(1234.25)));
        // A torn last line is passed over.
        let f = dir.path().join("term-0.cast");
        let mut torn = std::fs::read_to_string(&f).unwrap();
        torn.push_str("[1300.0, \"o\", \"unfini");
        std::fs::write(&f, torn).unwrap();
        assert_eq!(
            terminal(dir.path(), "term-0.cast", Some(0)).last_t,
            Some(1234.25)
        );
    }
}
