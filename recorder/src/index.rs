//! What was typed and what appeared on screen, and when: the search index built when a
//! recording closes (`index.jsonl`), and the plain-text screen transcript (`replay --text`).
//!
//! Terminal output goes through a real terminal emulator (`vt100`), so the index holds the
//! text a person saw, not escape codes: a row is indexed each time its content changes.

use std::num::NonZeroU16;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::cast::{self, CastError, CastEvent, EventKind};
use crate::error::{RecordingError, Result, io_err};
use crate::stream::{self, Direction, StreamError, StreamKind};

pub const INDEX: &str = "index.jsonl";

/// Where an indexed text came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A line the vendor typed in a terminal.
    Input,
    /// A row as it appeared on the terminal screen.
    Screen,
    /// The command of an exec channel.
    Command,
    /// A line of an exec channel's output.
    Output,
    /// Something the gateway flagged for the reviewer (a large paste, a keyboard layout).
    Flag,
    /// A mouse click on a remote desktop.
    Click,
    /// Clipboard text that crossed a remote desktop.
    Clipboard,
    /// A file that crossed (`files.jsonl`): direction, path, size, hash, outcome.
    File,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Input => "input",
            Source::Screen => "screen",
            Source::Command => "command",
            Source::Output => "output",
            Source::Flag => "flag",
            Source::Click => "click",
            Source::Clipboard => "clipboard",
            Source::File => "file",
        }
    }
}

/// One index entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub file: String,
    /// Seconds since the recording started.
    pub t: f64,
    pub source: Source,
    pub text: String,
}

fn size(n: u16) -> NonZeroU16 {
    NonZeroU16::new(n).unwrap_or(NonZeroU16::MIN)
}

/// Plays `events` into the terminal emulator: output and resizes (input is not drawn).
fn replay(parser: &mut vt100::Parser, events: &[CastEvent]) {
    for ev in events {
        match ev.kind {
            EventKind::Output => parser.process(ev.data.as_bytes()),
            EventKind::Resize => {
                if let Some((w, h)) = resize(&ev.data) {
                    parser.set_size(size(h), size(w));
                }
            }
            EventKind::Input | EventKind::Marker => {}
        }
    }
}

/// `"120x40"` → (120, 40).
fn resize(data: &str) -> Option<(u16, u16)> {
    let (w, h) = data.split_once('x')?;
    Some((w.parse().ok()?, h.parse().ok()?))
}

/// Applies typed bytes to a line buffer; returns completed lines.
fn typed(line: &mut String, data: &str, t: f64, file: &str, out: &mut Vec<Entry>) {
    for c in data.chars() {
        match c {
            '\r' | '\n' => {
                if !line.trim().is_empty() {
                    out.push(Entry {
                        file: file.into(),
                        t,
                        source: Source::Input,
                        text: line.trim().to_owned(),
                    });
                }
                line.clear();
            }
            '\u{7f}' | '\u{8}' => {
                line.pop();
            }
            '\u{15}' => line.clear(),
            c if c.is_control() => {}
            // A paste without a newline is cut, not held whole (at most 4 bytes a character).
            _ if line.len() >= MAX_LINE * 4 => {}
            c => line.push(c),
        }
    }
}

/// Index entries of one asciicast file.
pub fn index_cast(text: &str, file: &str) -> std::result::Result<Vec<Entry>, CastError> {
    let (header, events) = cast::parse(text)?;
    let mut parser = vt100::Parser::new(size(header.height), size(header.width), 0);
    let mut prev: Vec<String> = vec![String::new(); usize::from(header.height)];
    let mut out = Vec::new();
    let mut line = String::new();
    for ev in events {
        match ev.kind {
            EventKind::Output => {
                parser.process(ev.data.as_bytes());
                let rows: Vec<String> = parser.screen().rows(0, header.width.max(1)).collect();
                for (i, row) in rows.iter().enumerate() {
                    let trimmed = row.trim_end();
                    if prev.get(i).map(String::as_str) != Some(row.as_str())
                        && !trimmed.trim().is_empty()
                    {
                        out.push(Entry {
                            file: file.into(),
                            t: ev.t,
                            source: Source::Screen,
                            text: trimmed.to_owned(),
                        });
                    }
                }
                prev = rows;
            }
            EventKind::Input => typed(&mut line, &ev.data, ev.t, file, &mut out),
            EventKind::Marker => out.push(Entry {
                file: file.into(),
                t: ev.t,
                source: Source::Flag,
                text: ev.data.clone(),
            }),
            EventKind::Resize => {
                if let Some((w, h)) = resize(&ev.data) {
                    parser.set_size(size(h), size(w));
                }
            }
        }
    }
    Ok(out)
}

/// Characters kept of one indexed line; the rest of a longer line is cut (marked `…`).
pub const MAX_LINE: usize = 1000;
/// Bytes of an exec channel's text indexed per direction; the recording keeps everything.
pub const MAX_TEXT: usize = 4 << 20;

/// Whether a chunk of an exec channel is binary rather than text: a NUL byte, or more than
/// one byte in ten a control character that text does not use.
fn binary(data: &[u8]) -> bool {
    let odd = data
        .iter()
        .filter(|&&b| b < 0x20 && !matches!(b, b'\t' | b'\n' | b'\r' | 0x1b | 0x08))
        .count();
    data.contains(&0) || odd * 10 > data.len()
}

/// One direction of an exec channel, line by line, bounded.
struct Lines {
    source: Source,
    pending: String,
    /// Characters in `pending`.
    chars: usize,
    /// Bytes of text taken so far.
    taken: usize,
    /// Binary, or over [`MAX_TEXT`]: nothing more is indexed in this direction.
    done: bool,
}

impl Lines {
    fn new(source: Source) -> Self {
        Self {
            source,
            pending: String::new(),
            chars: 0,
            taken: 0,
            done: false,
        }
    }

    fn emit(&mut self, t: f64, file: &str, out: &mut Vec<Entry>) {
        let text = self.pending.trim_end();
        if !text.trim().is_empty() {
            out.push(Entry {
                file: file.into(),
                t,
                source: self.source,
                text: text.to_owned(),
            });
        }
        self.pending.clear();
        self.chars = 0;
    }

    fn flag(&mut self, t: f64, file: &str, what: &str, out: &mut Vec<Entry>) {
        self.emit(t, file, out);
        let side = ["from the target", "to the target"][usize::from(self.source == Source::Input)];
        out.push(Entry {
            file: file.into(),
            t,
            source: Source::Flag,
            text: format!("{what} {side}: the rest of this channel is not indexed"),
        });
        self.done = true;
    }

    fn feed(&mut self, t: f64, data: &[u8], file: &str, out: &mut Vec<Entry>) {
        if self.done {
            return;
        }
        if binary(data) {
            return self.flag(t, file, "binary data", out);
        }
        if self.taken + data.len() > MAX_TEXT {
            return self.flag(t, file, "more than 4 MiB of text", out);
        }
        self.taken += data.len();
        for c in String::from_utf8_lossy(data).chars() {
            if c == '\n' {
                self.emit(t, file, out);
            } else if self.chars < MAX_LINE {
                self.pending.push(c);
                self.chars += 1;
            } else if self.chars == MAX_LINE {
                self.pending.push('…');
                self.chars += 1;
            }
        }
    }
}

/// Index entries of an exec stream (other streams are binary protocols: not indexed): the
/// command, then the lines each way, bounded ([`MAX_LINE`], [`MAX_TEXT`]); binary data is
/// flagged once and not indexed. Reads frame by frame and stops once neither direction is
/// indexed any more, so a large binary transfer costs a few frames, not its size.
pub fn index_stream<R: std::io::Read + std::io::Seek>(
    r: R,
    file: &str,
) -> std::result::Result<Vec<Entry>, StreamError> {
    let (header, mut frames) = stream::FrameReader::open(r)?;
    if header.kind != StreamKind::Exec {
        return Ok(vec![]);
    }
    let mut out = vec![Entry {
        file: file.into(),
        t: 0.0,
        source: Source::Command,
        text: header.detail.clone(),
    }];
    let mut sides = [Lines::new(Source::Input), Lines::new(Source::Output)];
    let mut last = 0.0;
    while !(sides[0].done && sides[1].done) {
        let Ok(Some(f)) = frames.next_frame() else {
            break;
        };
        last = f.t_us as f64 / 1e6;
        let side = match f.direction {
            Direction::ToTarget => &mut sides[0],
            Direction::FromTarget => &mut sides[1],
        };
        side.feed(last, &f.data, file, &mut out);
    }
    for side in &mut sides {
        side.emit(last, file, &mut out);
    }
    Ok(out)
}

/// Index entries of what a remote desktop stream noted.
fn desktop_entries(noted: Vec<(f64, crate::desktop::Noted)>, file: &str) -> Vec<Entry> {
    use crate::desktop::Noted;
    noted
        .into_iter()
        .map(|(t, n)| {
            let (source, text) = match n {
                Noted::Layout(text) => (Source::Flag, text),
                Noted::Typed(text) => (Source::Input, text),
                Noted::Click(text) => (Source::Click, text),
                Noted::Clipboard(text) => (Source::Clipboard, text),
            };
            Entry {
                file: file.into(),
                t,
                source,
                text,
            }
        })
        .collect()
}

/// Builds `index.jsonl` for the recording in `dir`. A file that cannot be parsed is skipped
/// with a warning: the index is a convenience, the recording itself is what is signed.
pub fn build(dir: &Path) -> Result<()> {
    let mut entries = Vec::new();
    for name in crate::manifest::recording_files(dir)? {
        let path = dir.join(&name);
        if name == crate::manifest::FILES {
            entries.extend(file_entries(dir, &path));
            continue;
        }
        let result: std::result::Result<_, Box<dyn std::error::Error>> =
            if name.ends_with(".cast") {
                std::fs::read_to_string(&path)
                    .map_err(Into::into)
                    .and_then(|t| index_cast(&t, &name).map_err(Into::into))
            } else {
                match stream::kind_of(&path) {
                    Some(StreamKind::Exec) => std::fs::File::open(&path)
                        .map_err(Into::into)
                        .and_then(|f| {
                            index_stream(std::io::BufReader::new(f), &name).map_err(Into::into)
                        }),
                    Some(StreamKind::Rdp) => crate::desktop::noted(&path)
                        .map(|noted| desktop_entries(noted, &name))
                        .map_err(Into::into),
                    // TCP and sftp streams are binary protocols: not indexed, and not read here.
                    _ => Ok(vec![]),
                }
            };
        match result {
            Ok(mut e) => entries.append(&mut e),
            Err(e) => tracing::warn!(file = %path.display(), error = %e, "not indexed"),
        }
    }
    entries.sort_by(|a, b| a.t.total_cmp(&b.t));
    let mut text = String::new();
    for e in &entries {
        text.push_str(
            &serde_json::to_string(e).map_err(|e| RecordingError::Failed(e.to_string()))?,
        );
        text.push('\n');
    }
    let path = dir.join(INDEX);
    std::fs::write(&path, text).map_err(io_err("write", &path))
}

/// Index entries for the files that crossed: one per line of `files.jsonl` that parses.
fn file_entries(dir: &Path, path: &Path) -> Vec<Entry> {
    let start_us = crate::manifest::Manifest::read(dir)
        .map(|m| m.started_at.as_microsecond())
        .unwrap_or(0);
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(file = %path.display(), error = %e, "not indexed");
            return vec![];
        }
    };
    text.lines()
        .filter_map(|l| serde_json::from_str::<sekisho_domain::files::FileRecord>(l).ok())
        .map(|f| Entry {
            file: crate::manifest::FILES.to_owned(),
            t: (f.started_at_us - start_us).max(0) as f64 / 1e6,
            source: Source::File,
            text: format!(
                "{} {} ({} bytes, {}, sha256 {})",
                f.direction.as_str(),
                f.path,
                f.bytes,
                f.outcome.as_str(),
                f.sha256.as_deref().unwrap_or("-")
            ),
        })
        .collect()
}

/// Reads `index.jsonl`.
pub fn read(dir: &Path) -> Result<Vec<Entry>> {
    let path = dir.join(INDEX);
    let text = std::fs::read_to_string(&path).map_err(io_err("read", &path))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

/// Everything that was on screen, in order: lines that scrolled away, then the final screen.
/// Text overwritten in place (full-screen programs) is not in the transcript; the index has it.
pub fn transcript(cast_text: &str) -> std::result::Result<String, CastError> {
    let (header, events) = cast::parse(cast_text)?;
    let mut parser = vt100::Parser::new(size(header.height), size(header.width), 1_000_000);
    let width = header.width.max(1);
    replay(&mut parser, &events);
    let screen = parser.screen_mut();
    let scrolled = screen.scrollback_len();
    let mut lines = Vec::with_capacity(scrolled + usize::from(header.height));
    for offset in (1..=scrolled).rev() {
        screen.set_scrollback(offset);
        if let Some(first) = screen.rows(0, width).next() {
            lines.push(first.trim_end().to_owned());
        }
    }
    screen.set_scrollback(0);
    lines.extend(screen.rows(0, width).map(|r| r.trim_end().to_owned()));
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    let mut out = lines.join("\n");
    out.push('\n');
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cast::{CastHeader, event_line, header_line};

    fn cast(events: &[(f64, EventKind, &str)], w: u16, h: u16) -> String {
        let mut s = header_line(&CastHeader {
            version: 2,
            width: w,
            height: h,
            timestamp: 0,
            title: None,
            env: None,
        });
        for (t, k, d) in events {
            s.push_str(&event_line(*t, *k, d));
        }
        s
    }

    #[test]
    fn typed_commands_and_screen_text_are_indexed_without_escape_codes() {
        let c = cast(
            &[
                (0.1, EventKind::Output, "\x1b[1;32muser@pacs\x1b[0m:~$ "),
                (1.0, EventKind::Input, "systemctl statux\x7f\x7fus dicom\r"),
                (
                    1.2,
                    EventKind::Output,
                    "systemctl status dicom\r\n\x1b[32m● dicom.service - active (running)\x1b[0m\r\n",
                ),
            ],
            80,
            24,
        );
        let idx = index_cast(&c, "term-0.cast").unwrap();
        assert!(
            idx.contains(&Entry {
                file: "term-0.cast".into(),
                t: 1.0,
                source: Source::Input,
                text: "systemctl status dicom".into()
            }),
            "{idx:#?}"
        );
        assert!(
            idx.iter().any(|e| e.source == Source::Screen
                && e.t == 1.2
                && e.text == "● dicom.service - active (running)"),
            "{idx:#?}"
        );
        assert!(idx.iter().all(|e| !e.text.contains('\x1b')));
    }

    #[test]
    fn the_transcript_keeps_lines_that_scrolled_away() {
        let mut events = vec![];
        let lines: Vec<String> = (1..=30).map(|i| format!("line {i}\r\n")).collect();
        for (i, l) in lines.iter().enumerate() {
            events.push((i as f64, EventKind::Output, l.as_str()));
        }
        let text = transcript(&cast(&events, 20, 5)).unwrap();
        let expected: String = (1..=30).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);
    }

    /// An exec stream: `frames` of (seconds, to the target?, data).
    fn exec(frames: &[(u64, bool, &[u8])]) -> Vec<u8> {
        let mut out = vec![];
        stream::write_header(
            &mut out,
            &stream::StreamHeader {
                kind: StreamKind::Exec,
                channel: 0,
                detail: "tar x".into(),
                started_at_us: 0,
            },
        )
        .unwrap();
        for (t, to_target, data) in frames {
            let d = if *to_target {
                Direction::ToTarget
            } else {
                Direction::FromTarget
            };
            stream::write_frames(&mut out, t * 1_000_000, d, data).unwrap();
        }
        out
    }

    #[test]
    fn binary_data_on_an_exec_channel_is_flagged_once_and_not_indexed() {
        let zeros = vec![0u8; 1 << 20];
        let mut frames: Vec<(u64, bool, &[u8])> = vec![(0, false, b"ready\n")];
        frames.extend((0..64).map(|i| (i + 1, true, zeros.as_slice())));
        let bytes = exec(&frames);
        let idx = index_stream(std::io::Cursor::new(&bytes), "stream-0.skr").unwrap();
        let texts: Vec<(Source, &str)> = idx.iter().map(|e| (e.source, e.text.as_str())).collect();
        assert_eq!(
            texts,
            [
                (Source::Command, "tar x"),
                (Source::Output, "ready"),
                (
                    Source::Flag,
                    "binary data to the target: the rest of this channel is not indexed"
                ),
            ]
        );
        // Small whatever the input: the 64 MiB are not in it.
        let size: usize = idx.iter().map(|e| e.text.len()).sum();
        assert!(size < 200, "{size}");
    }

    #[test]
    fn long_lines_and_endless_text_are_cut() {
        let long = "x".repeat(5000) + "\nshort\n";
        let line = "y".repeat(1023) + "\n";
        let many: String = line.repeat(5 << 10); // 5 MiB of text
        let bytes = exec(&[(0, false, long.as_bytes()), (1, false, many.as_bytes())]);
        let idx = index_stream(std::io::Cursor::new(&bytes), "stream-0.skr").unwrap();
        assert_eq!(idx[1].text.chars().count(), MAX_LINE + 1);
        assert!(idx[1].text.ends_with('…'));
        assert_eq!(idx[2].text, "short");
        let last = idx.last().unwrap();
        assert_eq!(last.source, Source::Flag);
        assert!(
            last.text
                .starts_with("more than 4 MiB of text from the target")
        );
        // A paste of 100,000 characters without a newline keeps its first 4000 bytes.
        let mut out = vec![];
        let mut line = String::new();
        typed(
            &mut line,
            &"z".repeat(100_000),
            0.0,
            "term-0.cast",
            &mut out,
        );
        typed(&mut line, "\r", 0.0, "term-0.cast", &mut out);
        assert_eq!(out[0].text.len(), MAX_LINE * 4);
    }
}

/// One run of same-styled text on a terminal row, as a player draws it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Span {
    pub text: String,
    /// xterm-256 colour index, `None` for the default.
    pub fg: Option<u8>,
    pub bg: Option<u8>,
    pub bold: bool,
    /// Where the cursor is (a one-cell span).
    pub cursor: bool,
}

/// The screen of a terminal recording at one moment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Screen {
    pub rows: Vec<Vec<Span>>,
    pub width: u16,
    pub height: u16,
}

/// The xterm-256 index nearest an RGB colour (the 6×6×6 cube).
fn nearest_256(r: u8, g: u8, b: u8) -> u8 {
    let q = |v: u8| (u16::from(v) * 5 + 127) / 255;
    u8::try_from(16 + 36 * q(r) + 6 * q(g) + q(b)).unwrap_or(15)
}

fn colour(c: vt100::Color) -> Option<u8> {
    match c {
        vt100::Color::Default => None,
        vt100::Color::Idx(i) => Some(i),
        vt100::Color::Rgb(r, g, b) => Some(nearest_256(r, g, b)),
    }
}

/// Plays `cast_text` up to `t` seconds (resizes included) and returns the screen then, with
/// colours, bold, inverse video (as swapped colours) and the cursor; and the recording's
/// length in seconds.
pub fn screen_at(cast_text: &str, t: f64) -> std::result::Result<(Screen, f64), CastError> {
    let (header, events) = cast::parse(cast_text)?;
    let mut parser = vt100::Parser::new(size(header.height), size(header.width), 0);
    let length = events.last().map_or(0.0, |e| e.t);
    let upto = events.iter().take_while(|e| e.t <= t).count();
    replay(&mut parser, events.get(..upto).unwrap_or_default());
    let screen = parser.screen();
    let (height, width) = screen.size();
    let (height, width) = (height.get(), width.get());
    let (crow, ccol) = screen.cursor_position();
    let mut rows = Vec::with_capacity(usize::from(height));
    for r in 0..height {
        let mut spans: Vec<Span> = Vec::new();
        for c in 0..width {
            let Some(cell) = screen.cell(r, c) else {
                continue;
            };
            if cell.is_wide_continuation() {
                continue;
            }
            let text = if cell.has_contents() {
                cell.contents().to_owned()
            } else {
                " ".to_owned()
            };
            let (mut fg, mut bg) = (colour(cell.fgcolor()), colour(cell.bgcolor()));
            if cell.inverse() {
                (fg, bg) = (bg.or(Some(0)), fg.or(Some(7)));
            }
            let cursor = !screen.hide_cursor() && r == crow && c == ccol;
            let span = Span {
                text,
                fg,
                bg,
                bold: cell.bold(),
                cursor,
            };
            match spans.last_mut() {
                Some(last)
                    if !cursor
                        && !last.cursor
                        && (last.fg, last.bg, last.bold) == (span.fg, span.bg, span.bold) =>
                {
                    last.text.push_str(&span.text);
                }
                _ => spans.push(span),
            }
        }
        rows.push(spans);
    }
    Ok((
        Screen {
            rows,
            width,
            height,
        },
        length,
    ))
}

#[cfg(test)]
mod screen_tests {
    use super::*;

    #[test]
    fn the_screen_at_a_moment_has_the_text_colours_and_cursor_then() {
        let cast = concat!(
            "{\"version\": 2, \"width\": 20, \"height\": 3, \"timestamp\": 0}\n",
            "[0.5, \"o\", \"$ ls\\r\\n\"]\n",
            "[1.0, \"o\", \"\\u001b[1;31mred\\u001b[0m ok\\r\\n\"]\n",
            "[2.0, \"o\", \"\\u001b[2J\\u001b[Hcleared\"]\n",
        );
        let text = |s: &Screen, row: usize| {
            s.rows[row]
                .iter()
                .map(|sp| sp.text.as_str())
                .collect::<String>()
        };
        let (at_0_7, length) = screen_at(cast, 0.7).unwrap();
        assert_eq!(length, 2.0);
        assert_eq!(text(&at_0_7, 0).trim_end(), "$ ls");
        assert!(text(&at_0_7, 1).trim().is_empty());
        let (at_1_5, _) = screen_at(cast, 1.5).unwrap();
        let red = at_1_5.rows[1].iter().find(|s| s.text == "red").unwrap();
        assert_eq!((red.fg, red.bold), (Some(1), true));
        assert!(
            at_1_5.rows[2].first().is_some_and(|s| s.cursor),
            "cursor at the start of row 3"
        );
        let (end, _) = screen_at(cast, 10.0).unwrap();
        assert_eq!(text(&end, 0).trim_end(), "cleared");
        assert!(text(&end, 1).trim().is_empty());
        assert_eq!(nearest_256(255, 0, 0), 196);
    }
}
