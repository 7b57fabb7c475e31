//! A live session: its state shared by the transport's tasks (channels, pumps) and its
//! supervisor.
//!
//! **Invariant:** a session ends exactly once, for the first reason given to [`Live::end`];
//! the supervisor then closes every channel, disconnects both sides, seals the recording
//! (audited with its SHA-256) and records the end with the byte counts.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};

use sekisho_domain::authorize::{ChannelKind, Grant};
use sekisho_domain::session::{Session, SessionEnd};
use sekisho_domain::target::Target;
use sekisho_domain::user::User;
use sekisho_metrics::Counter;
use sekisho_recorder::SessionRecording;
use sekisho_recorder::stream::Direction;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// One admitted session.
pub struct Live {
    pub session: Session,
    pub grant: Grant,
    pub user: User,
    pub target: Target,
    /// What the session was admitted for, re-checked while it lasts.
    pub channel: ChannelKind,
    pub recording: SessionRecording,
    pub to_target: AtomicU64,
    pub from_target: AtomicU64,
    /// What the vendor sent so far at a level without uploads (bounded, see
    /// `sekisho_domain::upload`).
    pub input: Mutex<sekisho_domain::upload::SessionInput>,
    /// Bytes of this session's uploads staged in quarantine now (bounded by `[files]`).
    pub staged: std::sync::Arc<AtomicU64>,
    /// Cancelled when the session must end; every pump watches it.
    pub ended: CancellationToken,
    reason: Mutex<Option<(SessionEnd, String)>>,
    /// The latest one-line notice for the vendor's terminals (window end warnings); channels
    /// opened after it was given show it too.
    pub notices: watch::Sender<String>,
    /// Pump tasks, awaited before the recording is sealed.
    pub pumps: TaskTracker,
    next_channel: AtomicU32,
    /// The process's relayed-bytes counters, to target and from it (looked up once).
    metrics: [Counter; 2],
}

fn relayed_counter(direction: &'static str) -> Counter {
    sekisho_metrics::get()
        .relayed_bytes
        .get_or_create(&sekisho_metrics::DirectionLabels { direction })
        .clone()
}

impl Live {
    pub fn new(
        session: Session,
        grant: Grant,
        user: User,
        target: Target,
        channel: ChannelKind,
        recording: SessionRecording,
    ) -> Self {
        Self {
            session,
            grant,
            user,
            target,
            channel,
            recording,
            to_target: AtomicU64::new(0),
            from_target: AtomicU64::new(0),
            input: Mutex::default(),
            staged: std::sync::Arc::default(),
            ended: CancellationToken::new(),
            reason: Mutex::new(None),
            notices: watch::channel(String::new()).0,
            pumps: TaskTracker::new(),
            next_channel: AtomicU32::new(0),
            metrics: [relayed_counter("to_target"), relayed_counter("from_target")],
        }
    }

    /// A fresh channel number for the recording.
    pub fn next_channel(&self) -> u32 {
        self.next_channel.fetch_add(1, Ordering::Relaxed)
    }

    /// Ends the session for `how` (the first reason wins); `message` is shown to the vendor.
    pub fn end(&self, how: SessionEnd, message: impl Into<String>) {
        if let Ok(mut r) = self.reason.lock()
            && r.is_none()
        {
            *r = Some((how, message.into()));
        }
        self.ended.cancel();
    }

    pub fn reason(&self) -> (SessionEnd, String) {
        self.reason
            .lock()
            .ok()
            .and_then(|r| r.clone())
            .unwrap_or((SessionEnd::Closed, String::new()))
    }

    /// Ends the session because its recording failed: there is no unrecorded access.
    pub fn recording_failed(&self, error: &sekisho_recorder::RecordingError) {
        tracing::error!(session = %self.session.id, error = %error, "recording failed; ending the session");
        self.end(
            SessionEnd::RecordingFailed,
            format!("the session recording cannot be written ({error}); access is stopped"),
        );
    }

    /// Counts `n` bytes relayed in `direction`, for the session and for the metrics.
    pub fn relayed(&self, direction: Direction, n: usize) {
        let (mine, all) = match direction {
            Direction::ToTarget => (&self.to_target, &self.metrics[0]),
            Direction::FromTarget => (&self.from_target, &self.metrics[1]),
        };
        mine.fetch_add(n as u64, Ordering::Relaxed);
        all.inc_by(n as u64);
    }

    pub fn bytes(&self) -> (u64, u64) {
        (
            self.to_target.load(Ordering::Relaxed),
            self.from_target.load(Ordering::Relaxed),
        )
    }
}
