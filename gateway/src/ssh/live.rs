//! One admitted session: its state shared by the connection's handler and pump tasks, and
//! the supervisor that ends it.
//!
//! **Invariant:** a session ends exactly once, for the first reason given to [`Live::end`];
//! the supervisor then closes every channel, disconnects both sides, seals the recording
//! (audited with its SHA-256) and records the end with the byte counts.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use jiff::Timestamp;
use russh::server;
use sekisho_approval_api::events::GatewayEvent;
use sekisho_approval_api::store::requests::RequestFilter;
use sekisho_domain::authorize::{AccessQuery, ChannelKind, Decision, Grant, authorize};
use sekisho_domain::session::{Session, SessionEnd};
use sekisho_domain::target::Target;
use sekisho_domain::user::User;
use sekisho_recorder::SessionRecording;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Shared;
use super::target::TargetHandler;

/// How often a live session re-checks its permission against the database (covers other
/// gateway nodes' changes and a lagging event channel).
const RECHECK: Duration = Duration::from_secs(10);
/// How often live byte counts are written for `GET /sessions?active=true`.
const PROGRESS: Duration = Duration::from_secs(5);

pub struct Live {
    pub session: Session,
    pub grant: Grant,
    pub user: User,
    pub target: Target,
    pub target_conn: russh::client::Handle<TargetHandler>,
    pub recording: SessionRecording,
    pub to_target: AtomicU64,
    pub from_target: AtomicU64,
    /// Cancelled when the session must end; every pump watches it.
    pub ended: CancellationToken,
    reason: Mutex<Option<(SessionEnd, String)>>,
    /// The latest one-line notice for the vendor's terminals (window end warnings); channels
    /// opened after it was given show it too.
    pub notices: watch::Sender<String>,
    /// Pump tasks, awaited before the recording is sealed.
    pub pumps: TaskTracker,
    next_channel: AtomicU32,
}

impl Live {
    pub fn new(
        session: Session,
        grant: Grant,
        user: User,
        target: Target,
        target_conn: russh::client::Handle<TargetHandler>,
        recording: SessionRecording,
    ) -> Self {
        Self {
            session,
            grant,
            user,
            target,
            target_conn,
            recording,
            to_target: AtomicU64::new(0),
            from_target: AtomicU64::new(0),
            ended: CancellationToken::new(),
            reason: Mutex::new(None),
            notices: watch::channel(String::new()).0,
            pumps: TaskTracker::new(),
            next_channel: AtomicU32::new(0),
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

    pub fn bytes(&self) -> (u64, u64) {
        (
            self.to_target.load(Ordering::Relaxed),
            self.from_target.load(Ordering::Relaxed),
        )
    }
}

/// Watches one session until it must end, then ends it. `vendor_gone` is cancelled when the
/// vendor's connection closes.
pub async fn supervise(
    live: Arc<Live>,
    shared: Arc<Shared>,
    vendor: server::Handle,
    vendor_gone: CancellationToken,
) {
    let mut events = shared.events.subscribe();
    let window_end = live.grant.window_end;
    let mut warnings = warning_times(window_end, &shared.warnings, Timestamp::now());
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.tick().await;
    let mut progress = tokio::time::interval(PROGRESS);
    progress.tick().await;
    let zone = shared.zone.clone();
    let number = live.grant.request_number;
    loop {
        let next_warning = warnings.first().copied();
        tokio::select! {
            () = live.ended.cancelled() => break,
            () = vendor_gone.cancelled() => live.end(SessionEnd::Closed, ""),
            () = shared.shutdown.cancelled() => live.end(SessionEnd::Aborted, "the gateway is shutting down"),
            () = sleep_until(window_end) => live.end(
                SessionEnd::WindowEnded,
                format!("the window of request R-{number} ended at {}", zone.time(window_end)),
            ),
            () = sleep_until_opt(next_warning.map(|(t, _)| t)) => {
                if let Some((_, minutes)) = warnings.first().copied() {
                    warnings.remove(0);
                    live.notices.send_replace(format!(
                        "the window of request R-{number} closes at {} ({}); this session will be closed then",
                        zone.time(window_end),
                        in_words(minutes),
                    ));
                }
            }
            ev = events.recv() => match ev {
                Ok(ev) => if let Some((how, msg)) = affects(&live, &ev) { live.end(how, msg) },
                Err(RecvError::Lagged(_)) => recheck_now(&live, &shared).await,
                Err(RecvError::Closed) => live.end(SessionEnd::Aborted, "the gateway is shutting down"),
            },
            _ = recheck.tick() => recheck_now(&live, &shared).await,
            _ = progress.tick() => {
                let (to, from) = live.bytes();
                if let Err(e) = shared.store.session_progress(live.session.id, to, from).await {
                    tracing::warn!(session = %live.session.id, error = %e, "cannot store session byte counts");
                }
            }
        }
    }
    finish(&live, &shared, &vendor, &vendor_gone).await;
}

/// The warnings still to give: `(when, minutes before the end)`, soonest first. A threshold
/// already passed at session start collapses into one immediate warning.
fn warning_times(end: Timestamp, minutes: &[u32], now: Timestamp) -> Vec<(Timestamp, u32)> {
    let mut sorted: Vec<u32> = minutes.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    let at = |m: u32| end - jiff::SignedDuration::from_mins(i64::from(m));
    let mut out: Vec<(Timestamp, u32)> = sorted
        .iter()
        .filter(|m| at(**m) > now)
        .map(|m| (at(*m), *m))
        .collect();
    if let Some(passed) = sorted.iter().rev().find(|m| at(**m) <= now)
        && end > now
    {
        let left = u32::try_from(end.duration_since(now).as_mins()).unwrap_or(0);
        out.insert(0, (now, left.min(*passed)));
    }
    out
}

fn in_words(minutes: u32) -> String {
    match minutes {
        0 => "in less than a minute".into(),
        1 => "in 1 minute".into(),
        n => format!("in {n} minutes"),
    }
}

async fn sleep_until(t: Timestamp) {
    let left = t.duration_since(Timestamp::now());
    if let Ok(d) = Duration::try_from(left) {
        tokio::time::sleep(d).await;
    }
}

async fn sleep_until_opt(t: Option<Timestamp>) {
    match t {
        Some(t) => sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Whether an event from the API ends this session, and how.
fn affects(live: &Live, ev: &GatewayEvent) -> Option<(SessionEnd, String)> {
    let s = &live.session;
    match ev {
        GatewayEvent::TerminateSession { session } if *session == s.id => Some((
            SessionEnd::Terminated,
            "an approver terminated this session".into(),
        )),
        GatewayEvent::RequestEnded { request } if *request == s.request_id => Some((
            SessionEnd::Revoked,
            format!("request R-{} was revoked", live.grant.request_number),
        )),
        GatewayEvent::UserDisabled { user } if *user == s.user_id => Some((
            SessionEnd::Revoked,
            format!("account {} was disabled", live.user.username),
        )),
        GatewayEvent::VendorBlocked { vendor } if *vendor == s.vendor_id => Some((
            SessionEnd::Revoked,
            "your vendor's access was suspended".into(),
        )),
        _ => None,
    }
}

/// Re-decides the session from the database; a denial (or a database failure: fail closed
/// after it persists) ends it.
async fn recheck_now(live: &Live, shared: &Shared) {
    match still_allowed(live, shared).await {
        Ok(None) => {}
        Ok(Some(reason)) => live.end(SessionEnd::Revoked, reason),
        Err(e) => {
            tracing::error!(session = %live.session.id, error = %e, "cannot re-check a live session; ending it (fail closed)");
            live.end(
                SessionEnd::Revoked,
                "the gateway cannot confirm your permission (database unavailable)",
            );
        }
    }
}

async fn still_allowed(
    live: &Live,
    shared: &Shared,
) -> Result<Option<String>, sekisho_approval_api::store::StoreError> {
    let store = &shared.store;
    let Some(user) = store.user(live.user.id).await? else {
        return Ok(Some("your account no longer exists".into()));
    };
    let vendor = match user.vendor_id {
        Some(v) => store.vendor(v).await?,
        None => None,
    };
    let target = store
        .target(live.target.id)
        .await?
        .unwrap_or_else(|| live.target.clone());
    let requests: Vec<_> = store
        .requests(&RequestFilter {
            requester: Some(user.id),
            target_id: Some(target.id),
            limit: 500,
            ..RequestFilter::default()
        })
        .await?
        .into_iter()
        .map(|r| r.request)
        .filter(|r| r.id == live.grant.request)
        .collect();
    let decision = authorize(&AccessQuery {
        now: Timestamp::now(),
        user: &user,
        vendor: vendor.as_ref(),
        target: &target,
        requests: &requests,
        channel: ChannelKind::Ssh,
        level: Some(live.grant.level),
        policy: &shared.policy,
    });
    Ok(match decision {
        Decision::Allow(_) => None,
        Decision::Deny(reason) => Some(reason.message(&shared.zone)),
    })
}

/// Closes channels, disconnects both sides, seals the recording and stores the end.
async fn finish(
    live: &Live,
    shared: &Shared,
    vendor: &server::Handle,
    vendor_gone: &CancellationToken,
) {
    let (how, message) = live.reason();
    live.pumps.close();
    if tokio::time::timeout(Duration::from_secs(3), live.pumps.wait())
        .await
        .is_err()
    {
        tracing::warn!(session = %live.session.id, "channels did not close in time");
    }
    // With its channels closed, a stock client leaves by itself (and shows what it was
    // told first); a connection without channels is disconnected with the reason.
    let left = tokio::time::timeout(Duration::from_secs(1), vendor_gone.cancelled()).await;
    if how != SessionEnd::Closed && left.is_err() {
        let _ = vendor
            .disconnect(
                russh::Disconnect::ByApplication,
                format!("Sekisho: {message}"),
                "en".into(),
            )
            .await;
    }
    let _ = live
        .target_conn
        .disconnect(russh::Disconnect::ByApplication, "session ended", "en")
        .await;
    let (to, from) = live.bytes();
    match live.recording.clone().close(how.as_str()).await {
        Ok(_) if !live.recording.is_recorded() => {} // benchmarks only
        Ok(manifest) => {
            let path = live
                .recording
                .dir()
                .join(sekisho_recorder::manifest::MANIFEST);
            let sealed =
                tokio::task::spawn_blocking(move || sekisho_recorder::manifest::hash_file(&path))
                    .await;
            match sealed {
                Ok(Ok((_, sha))) => {
                    let files = u32::try_from(manifest.files.len()).unwrap_or(u32::MAX);
                    let bytes = manifest.files.iter().map(|f| f.size).sum();
                    if let Err(e) = shared
                        .store
                        .audit_recording_closed(&live.session, sha, files, bytes)
                        .await
                    {
                        tracing::error!(session = %live.session.id, error = %e, "cannot audit the sealed recording");
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(session = %live.session.id, error = %e, "cannot hash the sealed manifest")
                }
                Err(e) => {
                    tracing::error!(session = %live.session.id, error = %e, "cannot hash the sealed manifest")
                }
            }
        }
        Err(e) => {
            tracing::error!(session = %live.session.id, error = %e, "cannot seal the recording; it is sealed as aborted on the next start");
        }
    }
    if let Err(e) = shared
        .store
        .end_session(live.session.id, how, to, from)
        .await
    {
        tracing::error!(session = %live.session.id, error = %e, "cannot record the session end; it is marked aborted on the next start");
    }
    tracing::info!(session = %live.session.id, how = how.as_str(), bytes_to_target = to, bytes_from_target = from, "session ended");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_scheduled_and_a_passed_one_is_given_at_once() {
        let end: Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        let at = |s: &str| -> Timestamp { s.parse().unwrap() };
        assert_eq!(
            warning_times(end, &[1, 5], at("2026-11-25T09:00:00Z")),
            vec![
                (at("2026-11-25T09:55:00Z"), 5),
                (at("2026-11-25T09:59:00Z"), 1)
            ]
        );
        // Three minutes left: the 5-minute warning is given at once, the 1-minute one later.
        let now = at("2026-11-25T09:57:00Z");
        assert_eq!(
            warning_times(end, &[5, 1], now),
            vec![(now, 3), (at("2026-11-25T09:59:00Z"), 1)]
        );
        // Twenty seconds left.
        let now = at("2026-11-25T09:59:40Z");
        assert_eq!(warning_times(end, &[5, 1], now), vec![(now, 0)]);
        assert!(warning_times(end, &[5, 1], end).is_empty());
    }
}
