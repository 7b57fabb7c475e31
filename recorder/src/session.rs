//! Writing one session's recording.
//!
//! The gateway's session tasks call [`SessionRecording`] methods; each puts a message on a
//! bounded queue read by one writer task per session, which owns the files. A slow disk fills
//! the queue and so slows the session; a queue full for longer than the stall limit, or any
//! write error, fails the recording, and every later call returns the error so the gateway
//! ends the session: there is no unrecorded access. Files are flushed at least once a second
//! and on close; closing builds the search index and writes the signed manifest.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jiff::Timestamp;
use serde_json::json;
use std::io::Write;

use aws_lc_rs::digest::{Context, SHA256};
use tokio::sync::{mpsc, oneshot};

use crate::cast::{self, CastHeader, EventKind, Utf8Stream};
use crate::manifest::{Manifest, RecordingKey, RecordingState};
use crate::stream::{self, Direction, StreamHeader, StreamKind};
use crate::{RecordingError, Result, io_err, library};

/// Who and what a recording is about; written into the manifest.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionMeta {
    pub session: String,
    pub request: String,
    pub request_number: i64,
    pub vendor: String,
    pub vendor_user: String,
    pub target: String,
    pub level: String,
    pub source_addr: String,
}

/// Opens session recordings under one directory, signing them with one key.
#[derive(Clone, Debug)]
pub struct Recorder {
    dir: PathBuf,
    key: Arc<RecordingKey>,
    queue: usize,
    stall: Duration,
    /// Payload bytes that may be handed to the relay before they reached the disk.
    in_flight: u32,
    /// Benchmarks only: sessions are not recorded at all.
    unrecorded: bool,
}

/// The default in-flight window: what the relay may run ahead of the disk.
pub const IN_FLIGHT: u32 = 1024 * 1024;

impl Recorder {
    /// Creates `dir` if needed.
    pub fn new(dir: &Path, key: Arc<RecordingKey>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        Ok(Self {
            dir: dir.to_owned(),
            key,
            queue: 1024,
            stall: Duration::from_secs(10),
            in_flight: IN_FLIGHT,
            unrecorded: false,
        })
    }

    /// **For benchmarks only**, to measure what recording costs a relay: a recorder whose
    /// recordings write nothing and whose every call succeeds at once. Nothing in the
    /// `sekisho` binary or its configuration can select it; the gateway's rule is that there
    /// is no unrecorded access.
    #[cfg(feature = "benchmarks")]
    pub fn unrecorded_for_benchmarks(dir: &Path, key: Arc<RecordingKey>) -> Self {
        Self {
            dir: dir.to_owned(),
            key,
            queue: 1,
            stall: Duration::ZERO,
            in_flight: IN_FLIGHT,
            unrecorded: true,
        }
    }

    /// Overrides the queue length and stall limit (tests, tuning).
    pub fn with_limits(mut self, queue: usize, stall: Duration) -> Self {
        self.queue = queue.max(1);
        self.stall = stall;
        self
    }

    /// At most `bytes` of session data are relayed before they reached the disk (at least
    /// 64 KiB): if the disk fails, no more than that went through unrecorded.
    pub fn with_in_flight(mut self, bytes: u32) -> Self {
        self.in_flight = bytes.max(64 * 1024);
        self
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn key(&self) -> &Arc<RecordingKey> {
        &self.key
    }

    /// Starts a session's recording: its folder and an `open` manifest. Fails (and the
    /// gateway refuses the session) if the folder cannot be written.
    pub async fn open(&self, meta: SessionMeta) -> Result<SessionRecording> {
        let dir = self.dir.join(&meta.session);
        if self.unrecorded {
            return Ok(SessionRecording {
                tx: None,
                failed: Arc::new(Mutex::new(None)),
                window: InFlight::new(self.in_flight),
                dir,
                started: Instant::now(),
                started_at: Timestamp::now(),
                stall: self.stall,
                meta,
            });
        }
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io_err("create directory", &dir))?;
        let started = Timestamp::now();
        let manifest = Manifest {
            format: crate::manifest::FORMAT.into(),
            meta,
            started_at: started,
            ended_at: None,
            state: RecordingState::Open,
            end_reason: None,
            files: vec![],
            key_id: None,
            signature: None,
        };
        let manifest_meta = manifest.meta.clone();
        let mut signed = manifest.clone();
        self.key.sign(&mut signed);
        let write_dir = dir.clone();
        tokio::task::spawn_blocking(move || signed.write(&write_dir))
            .await
            .map_err(|e| RecordingError::Failed(e.to_string()))??;
        let (tx, rx) = mpsc::channel(self.queue);
        let failed = Arc::new(Mutex::new(None));
        let window = InFlight::new(self.in_flight);
        let writer = Writer {
            dir: dir.clone(),
            key: self.key.clone(),
            manifest,
            tracks: BTreeMap::new(),
            hashes: BTreeMap::new(),
            failed: failed.clone(),
            window: window.clone(),
        };
        tokio::task::spawn_blocking(move || writer.run(rx));
        tokio::spawn(ticker(tx.downgrade()));
        Ok(SessionRecording {
            tx: Some(tx),
            failed,
            window,
            dir,
            started: Instant::now(),
            started_at: started,
            stall: self.stall,
            meta: manifest_meta,
        })
    }
}

enum Cmd {
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
    Close {
        reason: String,
        reply: oneshot::Sender<Result<Manifest>>,
    },
    Flush,
}

/// One session's recording; cheap to clone, one clone per channel task.
#[derive(Clone, Debug)]
pub struct SessionRecording {
    /// `None` only for [`Recorder::unrecorded_for_benchmarks`].
    tx: Option<mpsc::Sender<Cmd>>,
    meta: SessionMeta,
    failed: Arc<Mutex<Option<String>>>,
    /// Session data handed to the relay but not yet on disk, bounded.
    window: InFlight,
    dir: PathBuf,
    started: Instant,
    started_at: Timestamp,
    stall: Duration,
}

/// The in-flight window of one recording: a semaphore of bytes that a data call takes and
/// the writer gives back once those bytes reached the file (the OS accepted the write), and
/// the two counts that say exactly how much session data went through unrecorded when the
/// disk failed.
#[derive(Clone, Debug)]
struct InFlight {
    permits: Arc<tokio::sync::Semaphore>,
    size: u32,
    /// Payload bytes accepted (and so relayed).
    accepted: Arc<std::sync::atomic::AtomicU64>,
    /// Payload bytes the OS accepted into the recording's files.
    written: Arc<std::sync::atomic::AtomicU64>,
}

impl InFlight {
    fn new(size: u32) -> Self {
        Self {
            permits: Arc::new(tokio::sync::Semaphore::new(size as usize)),
            size,
            accepted: Arc::default(),
            written: Arc::default(),
        }
    }

    /// Buffered bytes at which a track writes to its file: well inside the window, so that
    /// a relay never waits for the once-a-second flush.
    fn flush_at(&self) -> usize {
        TRACK_BUFFER.min(self.size as usize / 4)
    }

    /// Permits a payload of `len` bytes takes (a chunk larger than the window takes it all).
    fn cost(&self, len: usize) -> u32 {
        u32::try_from(len).unwrap_or(u32::MAX).min(self.size)
    }

    /// The writer got `payload` bytes into the files: they no longer count against the window.
    fn written(&self, payload: u64, permits: usize) {
        self.written
            .fetch_add(payload, std::sync::atomic::Ordering::AcqRel);
        self.permits.add_permits(permits);
    }
}

impl SessionRecording {
    /// Session data that was relayed but never reached the recording: non-zero only after the
    /// recording failed, and then at most the in-flight window.
    pub fn unrecorded_bytes(&self) -> u64 {
        use std::sync::atomic::Ordering;
        self.window
            .accepted
            .load(Ordering::Acquire)
            .saturating_sub(self.window.written.load(Ordering::Acquire))
    }

    /// Takes window room for `len` bytes of session data (waiting while the disk catches up,
    /// at most the stall limit), then queues `cmd`.
    async fn send_data(&self, len: usize, cmd: Cmd) -> Result<()> {
        if let Some(msg) = self.failure() {
            return Err(RecordingError::Failed(msg));
        }
        let cost = self.window.cost(len);
        let acquired = tokio::time::timeout(
            self.stall,
            self.window.permits.clone().acquire_many_owned(cost),
        )
        .await;
        match acquired {
            Ok(Ok(permit)) => permit.forget(), // the writer gives them back
            Ok(Err(_)) => {
                return Err(RecordingError::Failed(
                    self.failure()
                        .unwrap_or_else(|| "the recording writer stopped".into()),
                ));
            }
            Err(_) => return Err(RecordingError::Stalled(self.stall.as_secs())),
        }
        self.send(cmd).await?;
        self.window
            .accepted
            .fetch_add(len as u64, std::sync::atomic::Ordering::AcqRel);
        Ok(())
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn started_at(&self) -> Timestamp {
        self.started_at
    }

    /// Whether anything is written (always, except in benchmarks).
    pub fn is_recorded(&self) -> bool {
        self.tx.is_some()
    }

    fn failure(&self) -> Option<String> {
        self.failed
            .lock()
            .map(|f| f.clone())
            .unwrap_or_else(|p| p.into_inner().clone())
    }

    async fn send(&self, cmd: Cmd) -> Result<()> {
        if let Some(msg) = self.failure() {
            return Err(RecordingError::Failed(msg));
        }
        let Some(tx) = &self.tx else {
            return Ok(());
        };
        match tx.send_timeout(cmd, self.stall).await {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => {
                Err(RecordingError::Stalled(self.stall.as_secs()))
            }
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(RecordingError::Failed(
                self.failure()
                    .unwrap_or_else(|| "the recording writer stopped".into()),
            )),
        }
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// A terminal (PTY) channel: recorded as asciicast v2 in `term-<channel>.cast`.
    pub async fn terminal(
        &self,
        channel: u32,
        width: u16,
        height: u16,
        title: String,
        term: Option<String>,
    ) -> Result<()> {
        self.send(Cmd::Terminal {
            channel,
            width,
            height,
            title,
            term,
        })
        .await
    }

    /// A byte-stream channel: recorded in `stream-<channel>.skr`.
    pub async fn stream(&self, channel: u32, kind: StreamKind, detail: String) -> Result<()> {
        self.send(Cmd::Stream {
            channel,
            kind,
            detail,
        })
        .await
    }

    /// Terminal output (target → vendor).
    pub async fn output(&self, channel: u32, data: &[u8]) -> Result<()> {
        if !self.is_recorded() {
            return Ok(());
        }
        let t = self.elapsed().as_secs_f64();
        self.send_data(
            data.len(),
            Cmd::Cast {
                channel,
                t,
                kind: EventKind::Output,
                data: data.to_vec(),
            },
        )
        .await
    }

    /// Terminal input (vendor → target).
    pub async fn input(&self, channel: u32, data: &[u8]) -> Result<()> {
        if !self.is_recorded() {
            return Ok(());
        }
        let t = self.elapsed().as_secs_f64();
        self.send_data(
            data.len(),
            Cmd::Cast {
                channel,
                t,
                kind: EventKind::Input,
                data: data.to_vec(),
            },
        )
        .await
    }

    /// A marker in a terminal's recording, for the reviewer (e.g. "paste of 4096 bytes").
    pub async fn marker(&self, channel: u32, label: &str) -> Result<()> {
        if !self.is_recorded() {
            return Ok(());
        }
        let t = self.elapsed().as_secs_f64();
        self.send(Cmd::Cast {
            channel,
            t,
            kind: EventKind::Marker,
            data: label.as_bytes().to_vec(),
        })
        .await
    }

    pub async fn resize(&self, channel: u32, width: u16, height: u16) -> Result<()> {
        let t = self.elapsed().as_secs_f64();
        self.send(Cmd::Cast {
            channel,
            t,
            kind: EventKind::Resize,
            data: format!("{width}x{height}").into_bytes(),
        })
        .await
    }

    /// Bytes of a stream channel.
    pub async fn frame(&self, channel: u32, direction: Direction, data: &[u8]) -> Result<()> {
        if !self.is_recorded() {
            return Ok(());
        }
        self.frame_shared(channel, direction, Bytes::copy_from_slice(data))
            .await
    }

    /// [`frame`](Self::frame) for data the caller holds as [`Bytes`]: the writer shares the
    /// buffer instead of copying it (the tunnel relay passes the same chunk on).
    pub async fn frame_shared(
        &self,
        channel: u32,
        direction: Direction,
        data: Bytes,
    ) -> Result<()> {
        if !self.is_recorded() {
            return Ok(());
        }
        let t_us = u64::try_from(self.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.send_data(
            data.len(),
            Cmd::Frame {
                channel,
                t_us,
                direction,
                data,
            },
        )
        .await
    }

    /// Flushes, indexes, hashes and signs. Returns the sealed manifest.
    pub async fn close(self, reason: &str) -> Result<Manifest> {
        if !self.is_recorded() {
            return Ok(Manifest {
                format: crate::manifest::FORMAT.into(),
                meta: self.meta.clone(),
                started_at: self.started_at,
                ended_at: Some(Timestamp::now()),
                state: RecordingState::Closed,
                end_reason: Some(reason.to_owned()),
                files: vec![],
                key_id: None,
                signature: None,
            });
        }
        let (reply, rx) = oneshot::channel();
        self.send(Cmd::Close {
            reason: reason.to_owned(),
            reply,
        })
        .await?;
        rx.await.map_err(|_| {
            RecordingError::Failed(
                self.failure()
                    .unwrap_or_else(|| "the recording writer stopped".into()),
            )
        })?
    }
}

/// Bytes a track buffers before writing them to its file.
const TRACK_BUFFER: usize = 256 * 1024;

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
        result.map_err(io_err("write", &self.path))
    }
}

struct Writer {
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
async fn ticker(tx: mpsc::WeakSender<Cmd>) {
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
    /// Runs on a blocking thread: plain buffered file writes, no async file layer between.
    fn run(mut self, mut rx: mpsc::Receiver<Cmd>) {
        loop {
            let Some(cmd) = rx.blocking_recv() else {
                // Every handle dropped without close: seal as aborted.
                let _ = self.seal(RecordingState::Aborted, "recording dropped without close");
                return;
            };
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A recording whose writer never reads: a stand-in for a disk that stopped answering.
    fn stuck(queue: usize, stall: Duration) -> (SessionRecording, mpsc::Receiver<Cmd>) {
        let (tx, rx) = mpsc::channel(queue);
        let rec = SessionRecording {
            tx: Some(tx),
            meta: SessionMeta {
                session: "stuck".into(),
                request: String::new(),
                request_number: 0,
                vendor: String::new(),
                vendor_user: String::new(),
                target: String::new(),
                level: String::new(),
                source_addr: String::new(),
            },
            failed: Arc::new(Mutex::new(None)),
            window: InFlight::new(IN_FLIGHT),
            dir: PathBuf::from("/nonexistent"),
            started: Instant::now(),
            started_at: Timestamp::now(),
            stall,
        };
        (rec, rx)
    }

    #[tokio::test]
    async fn a_full_queue_slows_the_caller_then_fails_it_after_the_stall_limit() {
        let (rec, _rx) = stuck(2, Duration::from_millis(200));
        rec.output(0, b"a").await.unwrap();
        rec.output(0, b"b").await.unwrap();
        let t0 = Instant::now();
        let err = rec.output(0, b"c").await.unwrap_err();
        assert!(matches!(err, RecordingError::Stalled(_)), "{err}");
        assert!(
            t0.elapsed() >= Duration::from_millis(200),
            "it waited for the writer first"
        );
        assert!(err.to_string().contains("the session must end"));
    }

    #[tokio::test]
    async fn data_waits_for_the_disk_beyond_the_in_flight_window() {
        // A writer that never writes: after 64 KiB of data accepted, the next call waits for
        // window room and fails at the stall limit; nothing more was accepted.
        let (mut rec, _rx) = stuck(1024, Duration::from_millis(200));
        rec.window = InFlight::new(64 * 1024);
        for _ in 0..4 {
            rec.frame(0, Direction::ToTarget, &[0u8; 16 * 1024])
                .await
                .unwrap();
        }
        let err = rec
            .frame(0, Direction::ToTarget, &[0u8; 1])
            .await
            .unwrap_err();
        assert!(matches!(err, RecordingError::Stalled(_)), "{err}");
        assert_eq!(rec.unrecorded_bytes(), 64 * 1024);
    }

    #[tokio::test]
    async fn a_slow_writer_only_slows_the_caller() {
        let (rec, mut rx) = stuck(1, Duration::from_secs(5));
        rec.output(0, b"a").await.unwrap();
        let drain = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut n = 0;
            while rx.recv().await.is_some() {
                n += 1;
            }
            n
        });
        // Blocks until the "disk" catches up, then succeeds: nothing is dropped.
        rec.output(0, b"b").await.unwrap();
        drop(rec);
        assert_eq!(drain.await.unwrap(), 2);
    }
}
