//! The legacy scp protocol (`scp -O`: `scp -t` receives, `scp -f` sends on the target), read
//! from its source side so that each file that crosses is logged like an sftp one: the header
//! line of each file (`C0644 SIZE NAME`), its bytes (hashed by [`Tracker`]), and the byte
//! that ends it (0: sent whole). Directories (`D… NAME` … `E`) give the path; times (`T…`) and
//! the sender's error lines (`\x01…`, `\x02…`) are skipped. Pure: no IO.
//!
//! Paths are as the command named them: a file whose name is the command's path's last part
//! is that path; others are joined to it (`scp -t DIR`) or, for a source (`scp -f GLOB`), to
//! its parent directory.

use sekisho_domain::files::{Direction, FileRecord, Outcome, ScpMode};

use super::sftp::track::Tracker;

/// The longest header line read (`C0644 <size> <name>`, a name of up to 4 KiB).
const MAX_LINE: usize = 4200;

/// What the caller learns from the stream.
#[derive(Debug, PartialEq, Eq)]
pub enum ScpEvent {
    /// A file begins: its path and announced size.
    Start { path: String, size: u64 },
    /// A file ended (or the stream stopped being scp).
    Done(FileRecord),
    /// A file larger than the level lets a vendor download: nothing of it may cross.
    Refused(FileRecord),
}

/// The scp stream of a channel, once its command is scp: fed by the handler (`scp -t`, the
/// vendor's bytes) or by the pump (`scp -f`, the target's); the pump logs what is left when
/// the channel ends.
pub type ScpSlot = std::sync::Arc<std::sync::Mutex<Option<ScpStream>>>;

enum State {
    Line(Vec<u8>),
    Data {
        remaining: u64,
    },
    End,
    /// Not scp (any more): nothing further is read.
    Lost,
}

pub struct ScpStream {
    mode: ScpMode,
    base: String,
    dirs: Vec<String>,
    state: State,
    file: Option<Tracker>,
    /// The largest file that may cross (downloads at a level with a limit).
    limit: Option<u64>,
}

fn parent(p: &str) -> &str {
    match p.trim_end_matches('/').rsplit_once('/') {
        Some(("", _)) => "/",
        Some((dir, _)) => dir,
        None => ".",
    }
}

fn join(a: &str, b: &str) -> String {
    if a.ends_with('/') {
        format!("{a}{b}")
    } else {
        format!("{a}/{b}")
    }
}

impl ScpStream {
    pub fn new(mode: ScpMode, base: String) -> Self {
        Self {
            mode,
            base,
            dirs: vec![],
            state: State::Line(vec![]),
            file: None,
            limit: None,
        }
    }

    /// Whether the stream is the target's receiving side (`scp -t`): the vendor's bytes
    /// are its source; otherwise the target's are.
    pub fn is_sink(&self) -> bool {
        self.mode == ScpMode::Sink
    }

    /// Files larger than `limit` bytes are refused before any of their bytes cross.
    pub fn with_limit(mut self, limit: Option<u64>) -> Self {
        self.limit = limit;
        self
    }

    fn direction(&self) -> Direction {
        match self.mode {
            ScpMode::Sink => Direction::Upload,
            ScpMode::Source => Direction::Download,
        }
    }

    /// The path on the target of `name` (a file at the current depth).
    fn path(&self, name: &str) -> String {
        let mut rel = String::new();
        for d in &self.dirs {
            rel = join(&rel, d).trim_start_matches('/').to_owned();
        }
        let rel = join(&rel, name).trim_start_matches('/').to_owned();
        match self.mode {
            // A source sends its files' (and first directory's) own names.
            ScpMode::Source => join(parent(&self.base), &rel),
            ScpMode::Sink if self.base.ends_with('/') => join(&self.base, &rel),
            ScpMode::Sink if self.base.rsplit('/').next() == Some(rel.as_str()) => {
                self.base.clone()
            }
            // A sink's path is where it writes, or the directory to put what it receives in:
            // only the target knows which. Both are logged rather than a guess.
            ScpMode::Sink => format!("{} ← {rel}", self.base),
        }
    }

    /// Bytes of the source side.
    pub fn feed(&mut self, mut data: &[u8]) -> Vec<ScpEvent> {
        let mut out = vec![];
        while !data.is_empty() {
            match &mut self.state {
                State::Lost => break,
                State::Line(line) => {
                    let end = data.iter().position(|&b| b == b'\n');
                    let take = end.map_or(data.len(), |i| i + 1);
                    line.extend_from_slice(&data[..take]);
                    data = &data[take..];
                    if line.len() > MAX_LINE {
                        self.state = State::Lost;
                        break;
                    }
                    if end.is_some() {
                        let line = std::mem::take(line);
                        self.header(&line[..line.len() - 1], &mut out);
                    }
                }
                State::Data { remaining } => {
                    let n = (*remaining).min(data.len() as u64) as usize;
                    if let Some(t) = self.file.as_mut() {
                        let at = t.bytes();
                        t.feed(at, &data[..n]);
                    }
                    *remaining -= n as u64;
                    data = &data[n..];
                    if *remaining == 0 {
                        self.state = State::End;
                    }
                }
                State::End => {
                    let ok = data[0] == 0;
                    if ok {
                        data = &data[1..];
                    }
                    if let Some(t) = self.file.take() {
                        let record = if ok {
                            t.finish(Outcome::Completed, None)
                        } else {
                            t.finish(
                                Outcome::Failed,
                                Some("the sender reported an error after the file".into()),
                            )
                        };
                        out.push(ScpEvent::Done(record));
                    }
                    self.state = State::Line(vec![]);
                }
            }
        }
        out
    }

    fn header(&mut self, line: &[u8], out: &mut Vec<ScpEvent>) {
        let text = String::from_utf8_lossy(line);
        let mut parts = text.get(1..).unwrap_or("").splitn(3, ' ');
        match line.first() {
            Some(b'C') => {
                let (_, size, name) = (parts.next(), parts.next(), parts.next());
                match (size.and_then(|s| s.parse::<u64>().ok()), name) {
                    (Some(size), Some(name)) if self.limit.is_some_and(|l| size > l) => {
                        let path = self.path(name);
                        let why = format!(
                            "{size} bytes, larger than the download limit of {} bytes of this level",
                            self.limit.unwrap_or(0)
                        );
                        out.push(ScpEvent::Refused(
                            Tracker::new(self.direction(), path)
                                .finish(Outcome::Refused, Some(why)),
                        ));
                        self.state = State::Lost;
                    }
                    (Some(size), Some(name)) => {
                        let path = self.path(name);
                        out.push(ScpEvent::Start {
                            path: path.clone(),
                            size,
                        });
                        self.file = Some(Tracker::new(self.direction(), path));
                        self.state = if size == 0 {
                            State::End
                        } else {
                            State::Data { remaining: size }
                        };
                    }
                    _ => self.state = State::Lost,
                }
            }
            Some(b'D') => match parts.nth(2) {
                Some(name) => {
                    let name = name.to_owned();
                    self.dirs.push(name);
                }
                None => self.state = State::Lost,
            },
            Some(b'E') => {
                self.dirs.pop();
            }
            // Times, and the sender's warnings and errors.
            Some(b'T' | 1 | 2) => {}
            _ => self.state = State::Lost,
        }
    }

    /// The channel ended: a file still crossing is logged as incomplete.
    pub fn finish(&mut self) -> Option<FileRecord> {
        self.file.take().map(|t| {
            t.finish(
                Outcome::Incomplete,
                Some("the channel ended while the file was crossing".into()),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, data).as_ref())
    }

    fn done(events: &[ScpEvent]) -> Vec<&FileRecord> {
        events
            .iter()
            .filter_map(|e| match e {
                ScpEvent::Done(r) => Some(r),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_file_split_anywhere_is_logged_with_its_hash() {
        let stream = [
            &b"T1700000000 0 1700000000 0\nC0644 11 hostname\nhello world"[..],
            &[0],
        ]
        .concat();
        for split in 0..stream.len() {
            let mut s = ScpStream::new(ScpMode::Source, "/etc/hostname".into());
            let mut events = s.feed(&stream[..split]);
            events.extend(s.feed(&stream[split..]));
            let records = done(&events);
            assert_eq!(records.len(), 1, "split at {split}");
            assert_eq!(records[0].path, "/etc/hostname");
            assert_eq!(records[0].direction, Direction::Download);
            assert_eq!(records[0].sha256, Some(sha(b"hello world")));
            assert_eq!(records[0].outcome, Outcome::Completed);
            assert!(s.finish().is_none());
        }
    }

    #[test]
    fn directories_give_paths_and_a_cut_file_is_incomplete() {
        let mut s = ScpStream::new(ScpMode::Sink, "/srv/in/".into());
        let mut events =
            s.feed(b"D0755 0 docs\nC0644 3 a.txt\nabc\0E\nC0600 0 empty\n\0C0644 10 b.bin\nxy");
        let records = done(&events);
        assert_eq!(records[0].path, "/srv/in/docs/a.txt");
        assert_eq!(records[0].direction, Direction::Upload);
        assert_eq!(records[1].path, "/srv/in/empty");
        assert_eq!(records[1].bytes, 0);
        assert_eq!(
            events.first(),
            Some(&ScpEvent::Start {
                path: "/srv/in/docs/a.txt".into(),
                size: 3
            })
        );
        let cut = s.finish().unwrap();
        assert_eq!(cut.path, "/srv/in/b.bin");
        assert_eq!(cut.outcome, Outcome::Incomplete);
        assert_eq!(cut.bytes, 2);
        events.clear();
        // Not scp: nothing more is read.
        let mut s = ScpStream::new(ScpMode::Sink, "/tmp".into());
        assert!(s.feed(b"GET / HTTP/1.0\r\n").is_empty());
        assert!(s.feed(b"C0644 1 x\nx\0").is_empty());
    }

    #[test]
    fn a_file_over_the_download_limit_is_refused_before_its_bytes() {
        let mut s = ScpStream::new(ScpMode::Source, "/srv/db.dump".into()).with_limit(Some(10));
        let events = s.feed(b"C0644 11 db.dump\nhello world\0");
        let [ScpEvent::Refused(r)] = &events[..] else {
            panic!("{events:?}");
        };
        assert_eq!(r.outcome, Outcome::Refused);
        assert_eq!(r.bytes, 0);
        assert!(
            r.detail
                .as_deref()
                .unwrap_or("")
                .contains("limit of 10 bytes")
        );
    }

    #[test]
    fn a_source_glob_is_joined_to_its_directory() {
        let mut s = ScpStream::new(ScpMode::Source, "/var/log/*.log".into());
        let events = s.feed(b"C0644 1 app.log\nx\0");
        assert_eq!(done(&events)[0].path, "/var/log/app.log");
        // A sink named a path without a slash: where it wrote is the target's business.
        let mut s = ScpStream::new(ScpMode::Sink, "/tmp/dest.txt".into());
        let events = s.feed(b"C0644 1 notes.txt\nx\0");
        assert_eq!(done(&events)[0].path, "/tmp/dest.txt ← notes.txt");
        let mut s = ScpStream::new(ScpMode::Sink, "/tmp/notes.txt".into());
        let events = s.feed(b"C0644 1 notes.txt\nx\0");
        assert_eq!(done(&events)[0].path, "/tmp/notes.txt");
    }
}
