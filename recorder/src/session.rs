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
    /// Benchmarks only: sessions are not recorded at all.
    unrecorded: bool,
}

impl Recorder {
    /// Creates `dir` if needed.
    pub fn new(dir: &Path, key: Arc<RecordingKey>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(io_err("create directory", dir))?;
        Ok(Self {
            dir: dir.to_owned(),
            key,
            queue: 1024,
            stall: Duration::from_secs(10),
            unrecorded: false,
        })
    }

    /// **For benchmarks only**, to measure what recording costs a relay: a recorder whose
    /// recordings write nothing and whose every call succeeds at once. Nothing in the
    /// `sekisho` binary or its configuration can select it; the gateway's rule is that there
    /// is no unrecorded access.
    pub fn unrecorded_for_benchmarks(dir: &Path, key: Arc<RecordingKey>) -> Self {
        Self {
            dir: dir.to_owned(),
            key,
            queue: 1,
            stall: Duration::ZERO,
            unrecorded: true,
        }
    }

    /// Overrides the queue length and stall limit (tests, tuning).
    pub fn with_limits(mut self, queue: usize, stall: Duration) -> Self {
        self.queue = queue.max(1);
        self.stall = stall;
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
        let writer = Writer {
            dir: dir.clone(),
            key: self.key.clone(),
            manifest,
            tracks: BTreeMap::new(),
            hashes: BTreeMap::new(),
            failed: failed.clone(),
        };
        tokio::task::spawn_blocking(move || writer.run(rx));
        tokio::spawn(ticker(tx.downgrade()));
        Ok(SessionRecording {
            tx: Some(tx),
            failed,
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
    dir: PathBuf,
    started: Instant,
    started_at: Timestamp,
    stall: Duration,
}

impl SessionRecording {
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
        self.send(Cmd::Cast {
            channel,
            t,
            kind: EventKind::Output,
            data: data.to_vec(),
        })
        .await
    }

    /// Terminal input (vendor → target).
    pub async fn input(&self, channel: u32, data: &[u8]) -> Result<()> {
        if !self.is_recorded() {
            return Ok(());
        }
        let t = self.elapsed().as_secs_f64();
        self.send(Cmd::Cast {
            channel,
            t,
            kind: EventKind::Input,
            data: data.to_vec(),
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
        self.send(Cmd::Frame {
            channel,
            t_us,
            direction,
            data,
        })
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

struct Track {
    file: std::io::BufWriter<std::fs::File>,
    path: PathBuf,
    utf8: Option<Utf8Stream>,
    /// SHA-256 of everything written, so closing need not read the file again.
    hash: Context,
    size: u64,
}

impl Track {
    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(io_err("write", &self.path))?;
        self.hash.update(bytes);
        self.size += bytes.len() as u64;
        Ok(())
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
    }

    fn create(&mut self, channel: u32, name: String, utf8: bool) -> Result<&mut Track> {
        let path = self.dir.join(name);
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .write(true)
            .open(&path)
            .map_err(io_err("create", &path))?;
        let track = Track {
            file: std::io::BufWriter::with_capacity(256 * 1024, file),
            path,
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
                track.write(cast::header_line(&header).as_bytes())?;
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
                track.write(&buf)?;
            }
            Cmd::Cast {
                channel,
                t,
                kind,
                data,
            } => {
                let track = self.track(channel)?;
                let text = match (&mut track.utf8, kind) {
                    (Some(u), EventKind::Output) => u.push(&data),
                    _ => String::from_utf8_lossy(&data).into_owned(),
                };
                if !text.is_empty() {
                    track.write(cast::event_line(t, kind, &text).as_bytes())?;
                }
            }
            Cmd::Frame {
                channel,
                t_us,
                direction,
                data,
            } => {
                let track = self.track(channel)?;
                for chunk in data.chunks(stream::MAX_FRAME) {
                    let (head, crc) = stream::frame_parts(t_us, direction, chunk);
                    track.write(&head)?;
                    track.write(chunk)?;
                    track.write(&crc)?;
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
            t.file.flush().map_err(io_err("flush", &t.path))?;
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
                    t.write(cast::event_line(t_end, EventKind::Output, &rest).as_bytes())?;
                }
            }
            t.file.flush().map_err(io_err("flush", &t.path))?;
            t.file
                .get_ref()
                .sync_all()
                .map_err(io_err("sync", &t.path))?;
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
