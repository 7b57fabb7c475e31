//! Checking the logs against the plan (issue #18): the sessions waiting for review, oldest
//! first, each with its request's plan and reason, the vendor's work report, when its review is
//! due, and the flags a reviewer should see (night, day off, outside the window, a large
//! download, a change without a report, emergency access before approval).

use axum::Extension;
use axum::extract::{Path, Query, State};
use jiff::Timestamp;
use sekisho_domain::ids::SessionId;
use sekisho_domain::review::{self, ReviewFlag, SessionFacts};
use sekisho_store::sessions::StoredSession;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::dto::SessionView;
use super::error::{ApiError, ApiResult, ErrorBody, Json};
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
