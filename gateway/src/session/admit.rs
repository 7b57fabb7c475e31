//! Admission, the same for every transport: who may open what, now; the refusal audited
//! when not; and, when yes, the recording and the session row that must exist before a
//! single byte is relayed.

use jiff::Timestamp;
use sekisho_domain::assignment::Assignment;
use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::authorize::{self, AccessQuery, ChannelKind, Decision, Grant, authorize};
use sekisho_domain::ids::{SessionId, TargetId};
use sekisho_domain::refusal::{Channel, Code, Refusal};
use sekisho_domain::request::WorkRequest;
use sekisho_domain::session::{Session, Transport};
use sekisho_domain::target::{AccessLevel, Target};
use sekisho_domain::user::User;
use sekisho_recorder::{SessionMeta, SessionRecording};
use sekisho_store::StoreError;
use sekisho_store::audit::NewAuditEvent;
use sekisho_store::requests::RequestFilter;

use super::Shared;

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
    let assignment = assignment_of(shared, user, target).await?;
    let requests = requests_for(shared, user, target).await?;
    Ok(
        match authorize(&AccessQuery {
            now: Timestamp::now(),
            user,
            vendor: vendor.as_ref(),
            target,
            assignment: assignment.as_ref(),
            requests: &requests,
            channel,
            level,
            policy: &shared.policy,
        }) {
            Decision::Allow(g) => Ok(g),
            Decision::Deny(r) => Err(r.refusal(&shared.zone)),
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
            .map_err(|r| r.refusal(&shared.zone)),
    )
}

/// The assignment of `user`'s vendor to `target`, the input of `authorize`.
pub(super) async fn assignment_of(
    shared: &Shared,
    user: &User,
    target: &Target,
) -> Result<Option<Assignment>, StoreError> {
    match user.vendor_id {
        Some(v) => shared.store.assignment_for(v, target.id).await,
        None => Ok(None),
    }
}

/// `user`'s requests for `target`, the input of `authorize`.
pub(super) async fn requests_for(
    shared: &Shared,
    user: &User,
    target: &Target,
) -> Result<Vec<WorkRequest>, StoreError> {
    Ok(shared
        .store
        .requests(&RequestFilter {
            requester: Some(user.id),
            target_id: Some(target.id),
            site: None,
            // Requests whose windows have ended cannot admit anyone nor explain a refusal;
            // without this, years of a vendor's requests were read on every connection.
            open_at: Some(Timestamp::now()),
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
    channel: Channel,
    refusal: &Refusal,
    peer: &str,
) {
    let ev = NewAuditEvent {
        actor: Actor::user(user),
        outcome: Outcome::Denied,
        vendor_id: user.vendor_id,
        source_addr: Some(peer.to_owned()),
        reason: Some(refusal.message.clone()),
        event: AuditEvent::AccessDenied {
            target,
            request: None,
            channel,
            code: refusal.code,
        },
    };
    if let Err(e) = shared.store.audit(ev).await {
        tracing::error!(error = %e, code = %refusal.code, "cannot audit a denial");
    }
}

/// Decides a session for any transport: finds the target by name and decides with
/// `authorize` for `channel` (and `level`, when the vendor named one). A refusal, including
/// a database that does not answer (fail closed), is audited on `audited_as` from `peer`.
pub async fn admit(
    shared: &Shared,
    user: &User,
    target_name: &str,
    channel: ChannelKind,
    level: Option<AccessLevel>,
    audited_as: Channel,
    peer: &str,
) -> Result<(Target, Grant), (Option<Target>, Refusal)> {
    let unavailable = |e: StoreError| {
        tracing::error!(error = %e, "database failure while admitting a session; refusing it");
        Refusal::database_unavailable()
    };
    let started = std::time::Instant::now();
    let found = shared.store.target_by_name(target_name).await;
    // A clock off against NTP dates everything wrongly: no session starts on it.
    let clock = shared.clock.refusal();
    let decided = match found {
        Ok(target) if let Some(refusal) = clock => (target, refusal),
        Ok(Some(target)) => match decide(shared, user, &target, channel, level).await {
            Ok(Ok(grant)) => {
                sekisho_metrics::db_timed("admission", started.elapsed());
                return Ok((target, grant));
            }
            Ok(Err(refusal)) => (Some(target), refusal),
            Err(e) => (Some(target), unavailable(e)),
        },
        Ok(None) => (
            None,
            Refusal::new(
                Code::UnknownTarget,
                format!("no target named {target_name} is registered"),
            ),
        ),
        Err(e) => (None, unavailable(e)),
    };
    let (target, refusal) = decided;
    audit_denied(
        shared,
        user,
        target.as_ref().map(|t| t.id),
        audited_as,
        &refusal,
        peer,
    )
    .await;
    Err((target, refusal))
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
        Refusal::new(
            Code::RecordingUnavailable,
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
        return Err(Refusal::new(
            Code::DatabaseUnavailable,
            "the gateway cannot record the session start (database unavailable)",
        ));
    }
    tracing::info!(session = %id, user = %user.username, target = %target.name, level = %grant.level, request = grant.request_number, peer = %peer, transport = ?transport, "session started");
    Ok((session, recording))
}
