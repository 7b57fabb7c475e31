//! asciicast v2 (`.cast`), the format of stock `asciinema play`, for terminal channels.
//! <https://docs.asciinema.org/manual/asciicast/v2/>: a JSON header line, then one JSON array
//! per event, `[seconds, "o" | "i" | "r", data]`.

use serde::{Deserialize, Serialize};
use serde_json::json;

/// The header line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CastHeader {
    pub version: u8,
    pub width: u16,
    pub height: u16,
    /// Unix seconds of the start.
    pub timestamp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<serde_json::Map<String, serde_json::Value>>,
}

/// What an event is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Output,
    Input,
    Resize,
    /// A marker for the reviewer (asciicast v2 `"m"`; `asciinema play` shows markers as
    /// breakpoints): the gateway flags large pastes this way.
    Marker,
}

impl EventKind {
    fn code(self) -> &'static str {
        match self {
            EventKind::Output => "o",
            EventKind::Input => "i",
            EventKind::Resize => "r",
            EventKind::Marker => "m",
        }
    }
}

/// One event read back.
#[derive(Clone, Debug, PartialEq)]
pub struct CastEvent {
    pub t: f64,
    pub kind: EventKind,
    pub data: String,
}

pub fn header_line(h: &CastHeader) -> String {
    let mut s = serde_json::to_string(h).unwrap_or_default();
    s.push('\n');
    s
}

pub fn event_line(t: f64, kind: EventKind, data: &str) -> String {
    let mut s = json!([(t * 1e6).round() / 1e6, kind.code(), data]).to_string();
    s.push('\n');
    s
}

/// Turns a byte stream into UTF-8 text chunk by chunk, holding back a sequence split across
/// chunks and replacing invalid bytes (as terminals do).
#[derive(Debug, Default)]
pub struct Utf8Stream {
    pending: Vec<u8>,
}

impl Utf8Stream {
    pub fn push(&mut self, bytes: &[u8]) -> String {
        self.pending.extend_from_slice(bytes);
        let valid_up_to = match std::str::from_utf8(&self.pending) {
            Ok(_) => self.pending.len(),
            Err(e) if e.error_len().is_none() => e.valid_up_to(),
            Err(_) => self.pending.len(),
        };
        let keep = self.pending.split_off(valid_up_to);
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending = keep;
        out
    }

    /// What is left at the end of the stream.
    pub fn finish(&mut self) -> String {
        let out = String::from_utf8_lossy(&self.pending).into_owned();
        self.pending.clear();
        out
    }
}

/// Why a cast file cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum CastError {
    #[error("empty file")]
    Empty,
    #[error("line {line}: {source}")]
    Line {
        line: usize,
        source: serde_json::Error,
    },
    #[error("asciicast version {0} (expected 2)")]
    Version(u8),
}

/// Parses a cast file. Lines after a torn (unparsable) last line are ignored; an unparsable
/// line in the middle is an error naming its number.
pub fn parse(text: &str) -> Result<(CastHeader, Vec<CastEvent>), CastError> {
    let mut lines = text.lines();
    let header: CastHeader = serde_json::from_str(lines.next().ok_or(CastError::Empty)?)
        .map_err(|source| CastError::Line { line: 1, source })?;
    if header.version != 2 {
        return Err(CastError::Version(header.version));
    }
    let all: Vec<&str> = lines.collect();
    let mut events = Vec::with_capacity(all.len());
    for (i, line) in all.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let parsed = serde_json::from_str::<(f64, String, String)>(line);
        match parsed {
            Ok((t, code, data)) => {
                let kind = match code.as_str() {
                    "o" => EventKind::Output,
                    "i" => EventKind::Input,
                    "r" => EventKind::Resize,
                    "m" => EventKind::Marker,
                    _ => continue,
                };
                events.push(CastEvent { t, kind, data });
            }
            Err(_) if i + 1 == all.len() => break,
            Err(source) => {
                return Err(CastError::Line {
                    line: i + 2,
                    source,
                });
            }
        }
    }
    Ok((header, events))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_utf8_sequences_are_joined_not_mangled() {
        let text = "日本語 ok";
        let bytes = text.as_bytes();
        let mut s = Utf8Stream::default();
        let mut out = String::new();
        for b in bytes.chunks(1) {
            out.push_str(&s.push(b));
        }
        out.push_str(&s.finish());
        assert_eq!(out, text);
        let mut s = Utf8Stream::default();
        assert_eq!(s.push(b"a\xffb"), "a\u{fffd}b");
    }

    #[test]
    fn round_trip_with_a_torn_last_line() {
        let h = CastHeader {
            version: 2,
            width: 80,
            height: 24,
            timestamp: 1_700_000_000,
            title: Some("t".into()),
            env: None,
        };
        let mut f = header_line(&h);
        f.push_str(&event_line(0.5, EventKind::Output, "$ "));
        f.push_str(&event_line(1.25, EventKind::Input, "ls\r"));
        f.push_str(&event_line(1.5, EventKind::Resize, "100x30"));
        f.push_str("[2.0, \"o\", \"par");
        let (h2, events) = parse(&f).unwrap();
        assert_eq!(h2, h);
        assert_eq!(events.len(), 3);
        assert_eq!(
            events[1],
            CastEvent {
                t: 1.25,
                kind: EventKind::Input,
                data: "ls\r".into()
            }
        );
    }
}
