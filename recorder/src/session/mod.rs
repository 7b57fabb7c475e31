//! Writing one session's recording.
//!
//! The gateway's session tasks call [`SessionRecording`] methods; each puts a message on a
//! bounded queue read by one writer task per session, which owns the files. A slow disk fills
//! the queue and so slows the session; a queue full for longer than the stall limit, or any
//! write error, fails the recording, and every later call returns the error so the gateway
//! ends the session: there is no unrecorded access. Files are flushed at least once a second
//! and on close; closing builds the search index and writes the signed manifest.

mod writer;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use jiff::Timestamp;

use tokio::sync::{mpsc, oneshot};

use crate::cast::EventKind;
use crate::error::{RecordingError, Result, io_err};
use crate::manifest::SessionMeta;
use crate::manifest::{Manifest, RecordingKey, RecordingState};
use crate::stream::{Direction, StreamKind};
use writer::{Cmd, InFlight, Writer, ticker};

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

/// Stack of a recording's writer thread (plain buffered writes, hashing, signing).
const WRITER_STACK: usize = 1024 * 1024;

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
        let writer = Writer::new(
            dir.clone(),
            self.key.clone(),
            manifest,
            failed.clone(),
            window.clone(),
        );
        // A thread of its own for the session's life, not one of the runtime's blocking
        // threads: those are few (512) and shared with every file operation of the process,
        // so 512 live recordings held them all and the 513th session (and every other file
        // operation) waited for ever. The writer needs little stack; the threads are bounded
        // by the listeners' `[server] max_connections`.
        std::thread::Builder::new()
            .name("recording-writer".into())
            .stack_size(WRITER_STACK)
            .spawn(move || writer.run(rx))
            .map_err(|e| {
                RecordingError::Failed(format!("cannot start the recording's writer: {e}"))
            })?;
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
        // Counted before it is sent, so the writer never takes it off the gauge first.
        let queue = &sekisho_metrics::get().recording_queue;
        queue.inc();
        let sent = tx.send_timeout(cmd, self.stall).await;
        if sent.is_err() {
            queue.dec();
        }
        match sent {
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
        self.cast_event(channel, EventKind::Output, data).await
    }

    /// Terminal input (vendor → target).
    pub async fn input(&self, channel: u32, data: &[u8]) -> Result<()> {
        self.cast_event(channel, EventKind::Input, data).await
    }

    async fn cast_event(&self, channel: u32, kind: EventKind, data: &[u8]) -> Result<()> {
        if !self.is_recorded() {
            return Ok(());
        }
        let t = self.elapsed().as_secs_f64();
        let data = data.to_vec();
        self.send_data(
            data.len(),
            Cmd::Cast {
                channel,
                t,
                kind,
                data,
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

    /// A file that crossed: a line of the recording's `files.jsonl`.
    pub async fn file(&self, record: &sekisho_domain::files::FileRecord) -> Result<()> {
        if !self.is_recorded() {
            return Ok(());
        }
        let mut line =
            serde_json::to_vec(record).map_err(|e| RecordingError::Failed(e.to_string()))?;
        line.push(b'\n');
        self.send(Cmd::File { line }).await
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
