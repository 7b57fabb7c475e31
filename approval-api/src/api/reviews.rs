//! Checking the logs against the plan (issue #18): the sessions waiting for review, oldest
//! first, each with its request's plan and reason, the vendor's work report, when its review is
//! due, and the flags a reviewer should see (night, day off, outside the window, a large
//! download, a change without a report, emergency access before approval).

use axum::Extension;
use axum::extract::{Path, Query, State};
use jiff::SignedDuration;
use jiff::Timestamp;
use sekisho_domain::audit::{AuditEvent, RecordingUse};
use sekisho_domain::ids::SessionId;
use sekisho_domain::refusal::{Channel, Code};
use sekisho_domain::review::{self, ReviewFlag, SessionFacts};
use sekisho_domain::session::Session;
use sekisho_recorder::activity;
use sekisho_recorder::{Manifest, RecordingError};
use sekisho_store::audit::{AuditFilter, Page};
use sekisho_store::sessions::StoredSession;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dto::SessionView;
use super::error::{ApiError, ApiResult, ErrorBody, Json};
use super::extract::blocking;
use super::state::ApiState;
use super::token::Caller;
use super::vendors::parse_id;

/// A session as its reviewer sees it, beside the request's plan and the vendor's report.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ReviewItem {
    pub session: SessionView,
    /// The request's reason and plan, as approved.
    pub reason: String,
    pub plan: String,
    /// The vendor's work report, if filed.
    pub report: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub window_start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub window_end: Timestamp,
    pub emergency: bool,
    /// When the request got its approval (`null`: never, e.g. emergency use).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub approved_at: Option<Timestamp>,
    pub flags: Vec<ReviewFlag>,
    /// When the review is due (`[notifications] review_within_days` after the session ended);
    /// `null` while the session runs.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub due_at: Option<Timestamp>,
    /// Waiting for review past its due time.
    pub overdue: bool,
    /// Seconds since the session ended.
    pub waiting_seconds: Option<i64>,
    /// How long the session ran outside the request's window (before it opened plus after it
    /// closed; a session still running counts until now).
    pub outside_window_seconds: i64,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ReviewQuery {
    /// At most this many, oldest first (default 200, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

async fn item(state: &ApiState, s: &StoredSession, now: Timestamp) -> ApiResult<ReviewItem> {
    let x = &s.session;
    let stored = state
        .store
        .request(x.request_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("request {}", x.request_id)))?;
    let r = &stored.request;
    let settings = &state.settings;
    let approved_at = r.approved_at(&settings.policy);
    let facts = SessionFacts {
        started_at: x.started_at,
        ended_at: x.ended_at,
        window: r.window,
        level: x.level,
        emergency: r.emergency,
        approved_at,
        reported: stored
            .report
            .as_deref()
            .is_some_and(|t| !t.trim().is_empty()),
        bytes_from_target: x.bytes_from_target,
    };
    let due_at = x.ended_at.map(|e| review::due(e, &settings.review));
    let view = SessionView::from(s);
    let pending = view.review == super::dto::ReviewState::Pending;
    Ok(ReviewItem {
        flags: review::flags(&facts, &settings.review, settings.zone.tz()),
        outside_window_seconds: review::outside_window(
            x.started_at,
            x.ended_at.unwrap_or(now),
            &r.window,
        )
        .as_secs(),
        overdue: pending && due_at.is_some_and(|d| now > d),
        waiting_seconds: x
            .ended_at
            .filter(|_| pending)
            .map(|e| now.duration_since(e).as_secs()),
        due_at,
        session: view,
        reason: r.reason.clone(),
        plan: r.plan.clone(),
        report: stored.report.clone(),
        window_start: r.window.start,
        window_end: r.window.end,
        emergency: r.emergency,
        approved_at,
    })
}

/// The finished sessions waiting for review, oldest first (the review queue).
#[utoipa::path(get, path = "/api/v1/reviews", tag = "sessions", params(ReviewQuery),
    responses((status = 200, body = Vec<ReviewItem>), (status = 400, body = ErrorBody)))]
pub async fn list_reviews(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<ReviewQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<ReviewItem>>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let limit = super::extract::page_limit(q.limit, 200)?;
    let now = Timestamp::now();
    let site = super::site::filter(&caller);
    let mut out = vec![];
    for (s, target_site) in state.store.unreviewed_sessions(now, limit).await? {
        if site.is_some() && target_site != site {
            continue;
        }
        out.push(item(&state, &s, now).await?);
    }
    Ok(Json(out))
}

/// One session as its reviewer sees it (reviewed or not).
#[utoipa::path(get, path = "/api/v1/reviews/{session}", tag = "sessions", params(("session" = String, Path)),
    responses((status = 200, body = ReviewItem), (status = 404, body = ErrorBody)))]
pub async fn get_review(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<ReviewItem>> {
    let id: SessionId = parse_id(&id, "session")?;
    let s = state
        .store
        .session(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("session {id}")))?;
    super::site::check_target(&state, &caller, s.session.target_id).await?;
    Ok(Json(item(&state, &s, Timestamp::now()).await?))
}

/// The most typed lines one answer holds (the recording's index has them all).
const TYPED_LIMIT: usize = 2000;

/// What the vendor did in a session, to check against the plan: the channels opened, what
/// was typed, run or pasted, and the channels the gateway refused.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionActivity {
    /// Whether the session has a recording (one removed by retention has not).
    pub recorded: bool,
    /// Whether the recording's index exists (it is built when the recording closes).
    pub indexed: bool,
    pub channels: Vec<ChannelSeen>,
    /// Lines typed, commands run, clipboard text and the gateway's flags, in time order.
    pub typed: Vec<TypedLine>,
    /// How many there were in all: more than `typed` holds when it was cut at 2000.
    pub typed_total: usize,
    pub refused: Vec<RefusedChannel>,
}

/// One channel the vendor opened.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChannelSeen {
    pub channel: Option<u32>,
    /// `terminal`, `exec`, `sftp`, `tcp` or `rdp`.
    pub kind: String,
    /// The terminal's title, the command, or the TCP destination (`host:port`).
    pub detail: String,
    /// The recording file that holds it.
    pub file: String,
    /// When it first and last carried data (`null`: it carried nothing).
    #[schema(value_type = Option<String>, format = DateTime)]
    pub first_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub last_at: Option<Timestamp>,
    /// The same moments in seconds from the session's start (to seek the player).
    pub first_t: Option<f64>,
    pub last_t: Option<f64>,
}

/// One thing the vendor typed, ran or pasted (or the gateway flagged).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TypedLine {
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    /// Seconds from the session's start.
    pub t: f64,
    /// `input` (a line typed), `command` (an exec channel's command), `clipboard` or `flag`.
    pub source: String,
    pub text: String,
    pub file: String,
}

/// A channel the gateway refused during the session (a port forward, X11, an agent, a
/// subsystem, a remote desktop virtual channel), from the audit log.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RefusedChannel {
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub channel: Channel,
    /// The refusal's code; `null` for a remote desktop virtual channel the level does not
    /// allow (named in `detail`).
    pub code: Option<Code>,
    pub detail: String,
}

/// Offset `t` seconds from `start`.
fn moment(start: Timestamp, t: f64) -> Timestamp {
    let micros = (t * 1e6).round();
    if !micros.is_finite() {
        return start;
    }
    start
        .checked_add(SignedDuration::from_micros(micros as i64))
        .unwrap_or(start)
}

/// What a vendor did in one session (see [`SessionActivity`]). Reading it is audited as a
/// read of the recording.
#[utoipa::path(get, path = "/api/v1/reviews/{session}/activity", tag = "sessions", params(("session" = String, Path)),
    responses((status = 200, body = SessionActivity), (status = 404, body = ErrorBody)))]
pub async fn get_activity(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionActivity>> {
    let session_id: SessionId = parse_id(&id, "session")?;
    let s = state
        .store
        .session(session_id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("session {session_id}")))?;
    let x = &s.session;
    super::site::check_target(&state, &caller, x.target_id).await?;
    let refused = refused(&state, x).await?;
    let key = session_id.to_string();
    let lib = state.recordings.clone();
    let read = blocking(move || match lib.find(&key) {
        Ok(dir) => {
            let m = Manifest::read(&dir)?;
            Ok(Some(activity::read(&dir, &m, TYPED_LIMIT)))
        }
        Err(RecordingError::NotFound(_)) => Ok(None),
        Err(e) => Err(e.into()),
    })
    .await?;
    let Some(read) = read else {
        return Ok(Json(SessionActivity {
            recorded: false,
            indexed: false,
            channels: vec![],
            typed: vec![],
            typed_total: 0,
            refused,
        }));
    };
    super::reads::recording_read(
        &state,
        &caller,
        Some(&session_id.to_string()),
        RecordingUse::Activity,
        None,
    )
    .await?;
    let start = x.started_at;
    Ok(Json(SessionActivity {
        recorded: true,
        indexed: read.indexed,
        channels: read
            .channels
            .into_iter()
            .map(|c| ChannelSeen {
                channel: c.channel,
                kind: c.kind.as_str().to_owned(),
                detail: c.detail,
                file: c.file,
                first_at: c.first_t.map(|t| moment(start, t)),
                last_at: c.last_t.map(|t| moment(start, t)),
                first_t: c.first_t,
                last_t: c.last_t,
            })
            .collect(),
        typed: read
            .typed
            .into_iter()
            .map(|e| TypedLine {
                at: moment(start, e.t),
                t: e.t,
                source: e.source.as_str().to_owned(),
                text: e.text,
                file: e.file,
            })
            .collect(),
        typed_total: read.typed_total,
        refused,
    }))
}

/// The channels refused while the session ran: the vendor's denials at the target in the
/// session's time (other than logins), and the remote desktop channels its level refused.
async fn refused(state: &ApiState, x: &Session) -> ApiResult<Vec<RefusedChannel>> {
    let filter = AuditFilter {
        from: Some(x.started_at),
        to: x.ended_at,
        user_id: Some(x.user_id.to_string()),
        target_id: Some(x.target_id.to_string()),
        ..AuditFilter::default()
    };
    let events = state
        .store
        .audit_page(&filter, Page::OldestAfter(0), 1000)
        .await?;
    let mut out = vec![];
    for e in events {
        let Ok(event) = serde_json::from_str::<AuditEvent>(&e.entry.details) else {
            continue;
        };
        match event {
            AuditEvent::AccessDenied { channel, code, .. } if within_session(channel) => {
                out.push(RefusedChannel {
                    at: e.entry.at,
                    channel,
                    code: Some(code),
                    detail: e.entry.reason.unwrap_or_default(),
                });
            }
            AuditEvent::RdpChannels {
                session, refused, ..
            } if session == x.id => {
                out.extend(refused.into_iter().map(|name| RefusedChannel {
                    at: e.entry.at,
                    channel: Channel::RdpChannel,
                    code: None,
                    detail: name,
                }));
            }
            _ => {}
        }
    }
    Ok(out)
}

/// Whether a denial on `channel` is one inside a session (not a login being refused).
fn within_session(channel: Channel) -> bool {
    !matches!(
        channel,
        Channel::Ssh | Channel::Quic | Channel::Enroll | Channel::ApiLogin | Channel::Rdp
    )
}
