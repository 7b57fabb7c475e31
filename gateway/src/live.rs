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
use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::authorize::{self, AccessQuery, ChannelKind, Decision, Grant, authorize};
use sekisho_domain::ids::{SessionId, TargetId};
use sekisho_domain::request::WorkRequest;
use sekisho_domain::session::{Session, SessionEnd, Transport};
use sekisho_domain::target::AccessLevel;
use sekisho_domain::target::Target;
use sekisho_domain::user::User;
use sekisho_protocol::transport;
use sekisho_recorder::SessionMeta;
use sekisho_recorder::SessionRecording;
use sekisho_store::StoreError;
use sekisho_store::audit::NewAuditEvent;
use sekisho_store::events::GatewayEvent;
use sekisho_store::requests::RequestFilter;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::ssh::Shared;
use crate::ssh::target::TargetHandler;

/// How often a live session re-checks its permission against the database (covers other
/// gateway nodes' changes and a lagging event channel).
const RECHECK: Duration = Duration::from_secs(10);
/// How often live byte counts are written for `GET /sessions?active=true`.
const PROGRESS: Duration = Duration::from_secs(5);

/// The vendor's side of a session, told the reason when the session ends.
pub enum Vendor {
    /// A stock SSH connection, or one the designated client handed over.
    Ssh(server::Handle),
    /// A designated-client tunnel connection.
    Quic(quinn::Connection),
}

pub struct Live {
    pub session: Session,
    pub grant: Grant,
    pub user: User,
    pub target: Target,
    /// What the session was admitted for, re-checked while it lasts.
    pub channel: ChannelKind,
    /// The gateway's SSH connection to the target (SSH sessions only; a tunnel's TCP
    /// connections belong to its pump tasks).
    pub target_conn: Option<russh::client::Handle<TargetHandler>>,
    pub recording: SessionRecording,
    pub to_target: AtomicU64,
    pub from_target: AtomicU64,
    /// What the vendor sent so far at a level without uploads (bounded, see
    /// `sekisho_domain::upload`).
    pub input: Mutex<sekisho_domain::upload::SessionInput>,
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
        channel: ChannelKind,
        target_conn: Option<russh::client::Handle<TargetHandler>>,
        recording: SessionRecording,
    ) -> Self {
        Self {
            session,
            grant,
            user,
            target,
            channel,
            target_conn,
            recording,
            to_target: AtomicU64::new(0),
            from_target: AtomicU64::new(0),
            input: Mutex::default(),
            ended: CancellationToken::new(),
            reason: Mutex::new(None),
            notices: watch::channel(String::new()).0,
            pumps: TaskTracker::new(),
            next_channel: AtomicU32::new(0),
        }
    }

    /// The SSH connection to the target; an SSH session always has one.
    pub fn target_ssh(&self) -> Result<&russh::client::Handle<TargetHandler>, russh::Error> {
        self.target_conn.as_ref().ok_or(russh::Error::Disconnect)
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

/// Why a session is refused: an audit code and the message the vendor sees.
pub type Refusal = (&'static str, String);

/// Decides whether `user` may use `channel` of `target` now (`level`: the one asked for in the
/// login, if any), from the database's current state.
pub async fn decide(
    shared: &Shared,
    user: &User,
    target: &Target,
    channel: ChannelKind,
    level: Option<AccessLevel>,
) -> Result<Result<Grant, Refusal>, StoreError> {
    let store = &shared.store;
    let vendor = match user.vendor_id {
        Some(v) => store.vendor(v).await?,
        None => None,
    };
    let requests = requests_for(shared, user, target).await?;
    Ok(
        match authorize(&AccessQuery {
            now: Timestamp::now(),
            user,
            vendor: vendor.as_ref(),
            target,
            requests: &requests,
            channel,
            level,
            policy: &shared.policy,
        }) {
            Decision::Allow(g) => Ok(g),
            Decision::Deny(r) => Err((r.code(), r.message(&shared.zone))),
        },
    )
}

/// Whether `user` may connect at all (see [`check_account`](sekisho_domain::authorize::check_account)),
/// with the vendor as it is now in the store.
pub async fn check_account(
    shared: &Shared,
    user: &User,
) -> Result<Result<(), Refusal>, StoreError> {
    let vendor = match user.vendor_id {
        Some(v) => shared.store.vendor(v).await?,
        None => None,
    };
    Ok(
        authorize::check_account(user, vendor.as_ref(), &shared.policy, Timestamp::now())
            .map_err(|r| (r.code(), r.message(&shared.zone))),
    )
}

/// `user`'s requests for `target`, the input of `authorize`.
async fn requests_for(
    shared: &Shared,
    user: &User,
    target: &Target,
) -> Result<Vec<WorkRequest>, StoreError> {
    Ok(shared
        .store
        .requests(&RequestFilter {
            requester: Some(user.id),
            target_id: Some(target.id),
            limit: 500,
            ..RequestFilter::default()
        })
        .await?
        .into_iter()
        .map(|r| r.request)
        .collect())
}

/// Audits a refusal of `user` (every denial is audited with its reason).
pub async fn audit_denied(
    shared: &Shared,
    user: &User,
    target: Option<TargetId>,
    channel: &str,
    code: &str,
    message: &str,
    peer: &str,
) {
    let ev = NewAuditEvent {
        actor: Actor::user(user),
        outcome: Outcome::Denied,
        vendor_id: user.vendor_id,
        source_addr: Some(peer.to_owned()),
        reason: Some(message.to_owned()),
        event: AuditEvent::AccessDenied {
            target,
            request: None,
            channel: channel.to_owned(),
            code: code.to_owned(),
        },
    };
    if let Err(e) = shared.store.audit(ev).await {
        tracing::error!(error = %e, code, "cannot audit a denial");
    }
}

/// Opens the recording and stores the session start (which activates the request). No
/// recording, no session: access without one is not allowed.
pub async fn begin(
    shared: &Shared,
    user: &User,
    target: &Target,
    grant: &Grant,
    transport: Transport,
    peer: &str,
) -> Result<(Session, SessionRecording), Refusal> {
    let id = SessionId::new();
    let vendor_id = user.vendor_id.unwrap_or_default();
    let meta = SessionMeta {
        session: id.to_string(),
        request: grant.request.to_string(),
        request_number: grant.request_number,
        vendor: vendor_id.to_string(),
        vendor_user: user.username.clone(),
        target: target.name.clone(),
        level: grant.level.as_str().into(),
        source_addr: peer.to_owned(),
    };
    let recording = shared.recorder.open(meta).await.map_err(|e| {
        tracing::error!(error = %e, "cannot open a recording; refusing the session");
        (
            "recording_unavailable",
            format!(
                "the session cannot be recorded ({e}); access without a recording is not allowed"
            ),
        )
    })?;
    let session = Session {
        id,
        request_id: grant.request,
        user_id: user.id,
        vendor_id,
        target_id: target.id,
        level: grant.level,
        transport,
        source_addr: peer.to_owned(),
        started_at: Timestamp::now(),
        ended_at: None,
        end: None,
        bytes_to_target: 0,
        bytes_from_target: 0,
    };
    if let Err(e) = shared
        .store
        .start_session(&session, user, &shared.node)
        .await
    {
        tracing::error!(error = %e, "cannot store the session start; refusing it");
        let _ = recording.close("refused: database unavailable").await;
        return Err((
            "database_unavailable",
            "the gateway cannot record the session start (database unavailable)".into(),
        ));
    }
    tracing::info!(session = %id, user = %user.username, target = %target.name, level = %grant.level, request = grant.request_number, peer = %peer, transport = ?transport, "session started");
    Ok((session, recording))
}

/// Watches one session until it must end, then ends it. `vendor_gone` is cancelled when the
/// vendor's connection closes.
pub async fn supervise(
    live: Arc<Live>,
    shared: Arc<Shared>,
    vendor: Vendor,
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

async fn still_allowed(live: &Live, shared: &Shared) -> Result<Option<String>, StoreError> {
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
    let mut requests = requests_for(shared, &user, &target).await?;
    requests.retain(|r| r.id == live.grant.request);
    let decision = authorize(&AccessQuery {
        now: Timestamp::now(),
        user: &user,
        vendor: vendor.as_ref(),
        target: &target,
        requests: &requests,
        channel: live.channel,
        level: Some(live.grant.level),
        policy: &shared.policy,
    });
    Ok(match decision {
        Decision::Allow(_) => None,
        Decision::Deny(reason) => Some(reason.message(&shared.zone)),
    })
}

/// Closes channels, disconnects both sides, seals the recording and stores the end.
async fn finish(live: &Live, shared: &Shared, vendor: &Vendor, vendor_gone: &CancellationToken) {
    let (how, message) = live.reason();
    live.pumps.close();
    if tokio::time::timeout(Duration::from_secs(3), live.pumps.wait())
        .await
        .is_err()
    {
        tracing::warn!(session = %live.session.id, "channels did not close in time");
    }
    match vendor {
        Vendor::Ssh(handle) => {
            // With its channels closed, a stock client leaves by itself (and shows what it
            // was told first); a connection without channels is disconnected with the reason.
            let left = tokio::time::timeout(Duration::from_secs(1), vendor_gone.cancelled()).await;
            if how != SessionEnd::Closed && left.is_err() {
                let _ = handle
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        format!("Sekisho: {message}"),
                        "en".into(),
                    )
                    .await;
            }
        }
        // The designated client prints the reason it is closed with; a tunnel reconnects when
        // the gateway is only stopping.
        Vendor::Quic(conn) => conn.close(
            if how == SessionEnd::Aborted {
                transport::CLOSE_GATEWAY_STOPPING
            } else {
                transport::CLOSE_SESSION_ENDED
            }
            .into(),
            format!(
                "Sekisho: {}",
                if message.is_empty() {
                    "session closed"
                } else {
                    &message
                }
            )
            .as_bytes(),
        ),
    }
    if let Some(target) = &live.target_conn {
        let _ = target
            .disconnect(russh::Disconnect::ByApplication, "session ended", "en")
            .await;
    }
    let (to, from) = live.bytes();
    if how == SessionEnd::RecordingFailed {
        let unrecorded = live.recording.unrecorded_bytes();
        tracing::error!(session = %live.session.id, unrecorded_bytes = unrecorded, "session data went through unrecorded before the recording failed");
        let ev = NewAuditEvent {
            actor: Actor::System,
            outcome: Outcome::Failure,
            vendor_id: Some(live.session.vendor_id),
            source_addr: None,
            reason: Some(format!(
                "{message}; {unrecorded} bytes were relayed but not recorded"
            )),
            event: AuditEvent::RecordingFailed {
                session: live.session.id,
                request: live.session.request_id,
                target: live.session.target_id,
                unrecorded_bytes: unrecorded,
                error: message.clone(),
            },
        };
        if let Err(e) = shared.store.audit(ev).await {
            tracing::error!(session = %live.session.id, error = %e, "cannot audit the failed recording");
        }
    }
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
