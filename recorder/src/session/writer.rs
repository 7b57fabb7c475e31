//! The writer task of one recording: it owns the files, buffers each track, flushes at
//! least once a second and on close, gives the in-flight window back as bytes reach the
//! files, and seals the recording (index, hashes, signed manifest).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::digest::{Context, SHA256};
use bytes::Bytes;
use jiff::Timestamp;
use serde_json::json;
use tokio::sync::{mpsc, oneshot};

use crate::cast::{self, CastHeader, EventKind, Utf8Stream};
use crate::error::{RecordingError, Result, io_err};
use crate::library;
use crate::manifest::{Manifest, RecordingKey, RecordingState};
use crate::stream::{self, Direction, StreamHeader, StreamKind};

/// What the session's handles ask of its writer.
pub(super) enum Cmd {
    Terminal {
        channel: u32,
        width: u16,
        height: u16,
        title: String,
        term: Option<String>,
    },
    Stream {
        channel: u32,
        kind: StreamKind,
        detail: String,
    },
    Cast {
        channel: u32,
        t: f64,
        kind: EventKind,
        data: Vec<u8>,
    },
    Frame {
        channel: u32,
        t_us: u64,
        direction: Direction,
        data: Bytes,
    },
    /// One line of `files.jsonl`: a file that crossed.
    File {
        line: Vec<u8>,
    },
    Close {
        reason: String,
        reply: oneshot::Sender<Result<Manifest>>,
    },
    Flush,
}

/// The in-flight window of one recording: a semaphore of bytes that a data call takes and
/// the writer gives back once those bytes reached the file (the OS accepted the write), and
/// the two counts that say exactly how much session data went through unrecorded when the
/// disk failed.
#[derive(Clone, Debug)]
pub(super) struct InFlight {
    pub(super) permits: Arc<tokio::sync::Semaphore>,
    pub(super) size: u32,
    /// Payload bytes accepted (and so relayed).
    pub(super) accepted: Arc<std::sync::atomic::AtomicU64>,
    /// Payload bytes the OS accepted into the recording's files.
    pub(super) written: Arc<std::sync::atomic::AtomicU64>,
}

impl InFlight {
    pub(super) fn new(size: u32) -> Self {
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(size as usize)),
            size,
            accepted: Arc::default(),
            written: Arc::default(),
        }
    }

    /// Buffered bytes at which a track writes to its file: well inside the window, so that
    /// a relay never waits for the once-a-second flush.
    pub(super) fn flush_at(&self) -> usize {
        TRACK_BUFFER.min(self.size as usize / 4)
    }

    /// Permits a payload of `len` bytes takes (a chunk larger than the window takes it all).
    pub(super) fn cost(&self, len: usize) -> u32 {
        u32::try_from(len).unwrap_or(u32::MAX).min(self.size)
    }

    /// The writer got `payload` bytes into the files: they no longer count against the window.
    pub(super) fn written(&self, payload: u64, permits: usize) {
        self.written
            .fetch_add(payload, std::sync::atomic::Ordering::AcqRel);
        self.permits.add_permits(permits);
    }
}

/// Bytes a track buffers before writing them to its file.
pub(super) const TRACK_BUFFER: usize = 256 * 1024;

struct Track {
    file: std::fs::File,
    path: PathBuf,
    /// Bytes not yet handed to the OS, and where each data command's bytes end in them.
    buf: Vec<u8>,
    marks: Vec<Mark>,
    utf8: Option<Utf8Stream>,
    /// SHA-256 of everything written, so closing need not read the file again.
    hash: Context,
    size: u64,
}

/// The end of one data command's bytes in a track's buffer.
struct Mark {
    end: usize,
    payload: u64,
    permits: usize,
}

impl Track {
    fn write(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        self.hash.update(bytes);
        self.size += bytes.len() as u64;
    }

    /// The bytes written since the last mark end one data command of `payload` bytes.
    fn mark(&mut self, payload: u64, permits: usize) {
        self.marks.push(Mark {
            end: self.buf.len(),
            payload,
            permits,
        });
    }

    /// Hands the buffer to the OS. Every data command whose bytes all got there is given back
    /// to the in-flight window, also when a later write fails, so the count of what went
    /// through unrecorded is exact.
    fn flush(&mut self, window: &InFlight) -> Result<()> {
        let took = (!self.buf.is_empty()).then(std::time::Instant::now);
        let mut done = 0;
        let result = loop {
            if done == self.buf.len() {
                break Ok(());
            }
            match self.file.write(&self.buf[done..]) {
                Ok(0) => {
                    break Err(std::io::Error::new(
                        std::io::ErrorKind::WriteZero,
                        "the file accepts no more bytes",
                    ));
                }
                Ok(n) => done += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => break Err(e),
            }
        };
        let finished = self.marks.iter().take_while(|m| m.end <= done).count();
        let (payload, permits) = self
            .marks
            .drain(..finished)
            .fold((0, 0), |(p, n), m| (p + m.payload, n + m.permits));
        window.written(payload, permits);
        self.buf.drain(..done);
        for m in &mut self.marks {
            m.end -= done;
        }
        if let Some(took) = took {
            sekisho_metrics::get()
                .recording_write
                .observe(took.elapsed().as_secs_f64());
        }
        result.map_err(io_err("write", &self.path))
    }
}

pub(super) struct Writer {
    dir: PathBuf,
    key: Arc<RecordingKey>,
    manifest: Manifest,
    tracks: BTreeMap<u32, Track>,
    /// Hashes of closed tracks: file name → (size, sha256).
    hashes: BTreeMap<String, (u64, String)>,
    failed: Arc<Mutex<Option<String>>>,
    window: InFlight,
}

/// Asks the writer to flush once a second while any handle to the recording exists.
pub(super) async fn ticker(tx: mpsc::WeakSender<Cmd>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(tx) = tx.upgrade() else { return };
        // A full queue means the writer is busy writing, which flushes as its buffer fills.
        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(Cmd::Flush) {
            return;
        }
    }
}

impl Writer {
    /// The writer of the recording in `dir`, whose manifest (state open) is written already.
    pub(super) fn new(
        dir: PathBuf,
        key: Arc<RecordingKey>,
        manifest: Manifest,
        failed: Arc<Mutex<Option<String>>>,
        window: InFlight,
    ) -> Self {
        Self {
            dir,
            key,
            manifest,
            tracks: BTreeMap::new(),
            hashes: BTreeMap::new(),
            failed,
            window,
        }
    }

    /// Runs on a blocking thread: plain buffered file writes, no async file layer between.
    pub(super) fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        loop {
            let Some(cmd) = rx.blocking_recv() else {
                // Every handle dropped without close: seal as aborted.
                let _ = self.seal(RecordingState::Aborted, "recording dropped without close");
                return;
            };
            if !matches!(cmd, Cmd::Flush) {
                // Queued through `SessionRecording::send`; a flush is asked for out of band.
                sekisho_metrics::get().recording_queue.dec();
            }
            let result = match cmd {
                Cmd::Close { reason, reply } => {
                    let sealed = self.seal(RecordingState::Closed, &reason);
                    if let Err(e) = &sealed {
                        self.fail(RecordingError::Failed(e.to_string()));
                    }
                    let _ = reply.send(sealed);
                    return;
                }
                Cmd::Flush => self.flush(),
                other => self.apply(other),
            };
            if let Err(e) = result {
                self.fail(e);
                return;
            }
        }
    }

    fn fail(&self, e: RecordingError) {
        sekisho_metrics::get().recording_failures.inc();
        tracing::error!(dir = %self.dir.display(), error = %e, "recording failed; the session will be ended");
        if let Ok(mut f) = self.failed.lock() {
            *f = Some(e.to_string());
        }
        // Callers waiting for window room learn at once that none will come.
        self.window.permits.close();
    }

    fn create(&mut self, channel: u32, name: String, utf8: bool) -> Result<&mut Track> {
        let path = self.dir.join(name);
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        let track = Track {
            file,
            path,
            buf: Vec::with_capacity(TRACK_BUFFER),
            marks: vec![],
            utf8: utf8.then(Utf8Stream::default),
            hash: Context::new(&SHA256),
            size: 0,
        };
        Ok(self.tracks.entry(channel).or_insert(track))
    }

    fn apply(&mut self, cmd: Cmd) -> Result<()> {
        match cmd {
            Cmd::Terminal {
                channel,
                width,
                height,
                title,
                term,
            } => {
                let env = term.map(|t| {
                    let mut m = serde_json::Map::new();
                    m.insert("TERM".into(), json!(t));
                    m
                });
                let header = CastHeader {
                    version: 2,
                    width,
                    height,
                    timestamp: self.manifest.started_at.as_second(),
                    title: Some(title),
                    env,
                };
                let track = self.create(channel, format!("term-{channel}.cast"), true)?;
                track.write(cast::header_line(&header).as_bytes());
            }
            Cmd::Stream {
                channel,
                kind,
                detail,
            } => {
                let header = StreamHeader {
                    kind,
                    channel,
                    detail,
                    started_at_us: self.manifest.started_at.as_microsecond(),
                };
                let track = self.create(channel, format!("stream-{channel}.skr"), false)?;
                let mut buf = Vec::new();
                stream::write_header(&mut buf, &header).map_err(io_err("encode", &track.path))?;
                track.write(&buf);
            }
            Cmd::Cast {
                channel,
                t,
                kind,
                data,
            } => {
                let window = self.window.clone();
                let track = self.track(channel)?;
                let text = match (&mut track.utf8, kind) {
                    (Some(u), EventKind::Output) => u.push(&data),
                    _ => String::from_utf8_lossy(&data).into_owned(),
                };
                if !text.is_empty() {
                    track.write(cast::event_line(t, kind, &text).as_bytes());
                }
                if matches!(kind, EventKind::Output | EventKind::Input) {
                    track.mark(data.len() as u64, window.cost(data.len()) as usize);
                    if track.buf.len() >= window.flush_at() {
                        track.flush(&window)?;
                    }
                }
            }
            Cmd::Frame {
                channel,
                t_us,
                direction,
                data,
            } => {
                let window = self.window.clone();
                let track = self.track(channel)?;
                for chunk in data.chunks(stream::MAX_FRAME) {
                    let (head, crc) = stream::frame_parts(t_us, direction, chunk);
                    track.write(&head);
                    track.write(chunk);
                    track.write(&crc);
                }
                track.mark(data.len() as u64, window.cost(data.len()) as usize);
                if track.buf.len() >= window.flush_at() {
                    track.flush(&window)?;
                }
            }
            Cmd::File { line } => {
                use std::io::Write as _;
                let path = self.dir.join(crate::manifest::FILES);
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)
                    .map_err(io_err("open", &path))?;
                f.write_all(&line).map_err(io_err("write", &path))?;
            }
            Cmd::Close { .. } | Cmd::Flush => {}
        }
        Ok(())
    }

    fn track(&mut self, channel: u32) -> Result<&mut Track> {
        let dir = self.dir.clone();
        self.tracks
            .get_mut(&channel)
            .ok_or_else(|| RecordingError::Format {
                path: dir,
                message: format!("channel {channel} was not opened for recording"),
            })
    }

    fn flush(&mut self) -> Result<()> {
        for t in self.tracks.values_mut() {
            t.flush(&self.window)?;
        }
        Ok(())
    }

    fn seal(&mut self, state: RecordingState, reason: &str) -> Result<Manifest> {
        let t_end = self
            .manifest
            .started_at
            .duration_until(Timestamp::now())
            .as_secs_f64();
        for (_, mut t) in std::mem::take(&mut self.tracks) {
            if let Some(mut u) = t.utf8.take() {
                let rest = u.finish();
                if !rest.is_empty() {
                    t.write(cast::event_line(t_end, EventKind::Output, &rest).as_bytes());
                }
            }
            t.flush(&self.window)?;
            t.file.sync_all().map_err(io_err("sync", &t.path))?;
            let name = t
                .path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            self.hashes
                .insert(name, (t.size, hex::encode(t.hash.finish().as_ref())));
        }
        let mut manifest = self.manifest.clone();
        manifest.ended_at = Some(Timestamp::now());
        manifest.state = state;
        manifest.end_reason = Some(reason.to_owned());
        library::finish_with(&self.dir, &mut manifest, &self.key, &self.hashes)?;
        Ok(manifest)
    }
}
