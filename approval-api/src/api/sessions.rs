//! Sessions: who is connected to what, terminating one, and signing off its review.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use sekisho_domain::audit::{AuditEvent, Outcome};
use sekisho_domain::ids::SessionId;
use serde::Deserialize;
use utoipa::IntoParams;

use super::dto::{DecisionBody, SessionView};
use super::error::{ApiError, ApiResult, ErrorBody, Json, OptionalJson};
use super::state::ApiState;
use super::token::Caller;
use super::vendors::parse_id;
use sekisho_store::audit::NewAuditEvent;
use sekisho_store::events::GatewayEvent;

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SessionQuery {
    /// Only sessions still open.
    #[serde(default)]
    pub active: bool,
    /// At most this many, newest first (default 200, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Sessions, newest first (`?active=true`: live ones). Vendor engineers see their vendor's.
#[utoipa::path(get, path = "/api/v1/sessions", tag = "sessions", params(SessionQuery),
    responses((status = 200, body = Vec<SessionView>), (status = 400, body = ErrorBody)))]
pub async fn list_sessions(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<SessionQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<SessionView>>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let sessions = state
        .store
        .sessions(
            q.active,
            caller.vendor_scope(),
            super::site::filter(&caller).as_deref(),
            super::extract::page_limit(q.limit, 200)?,
        )
        .await?;
    Ok(Json(sessions.iter().map(SessionView::from).collect()))
}

/// End a live session now (approvers). Answered once the request is passed to the gateway.
#[utoipa::path(post, path = "/api/v1/sessions/{id}/terminate", tag = "sessions", params(("id" = String, Path)),
    responses((status = 202, body = SessionView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn terminate(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<SessionView>)> {
    let id: SessionId = parse_id(&id, "session")?;
    let s = state
        .store
        .session(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("session {id}")))?;
    super::site::check_target(&state, &caller, s.session.target_id).await?;
    if s.session.ended_at.is_some() {
        return Err(ApiError::Conflict {
            code: "invalid_transition",
            message: format!("session {id} has already ended"),
        });
    }
    // Kept with the session (the node carrying it honours it at its next re-check even if it
    // missed the event) and audited in one transaction.
    let requested = state
        .store
        .request_terminate(
            id,
            NewAuditEvent {
                actor: caller.actor(),
                outcome: Outcome::Success,
                vendor_id: Some(s.session.vendor_id),
                source_addr: caller.source.clone(),
                reason: None,
                event: AuditEvent::SessionTerminateRequested {
                    session: id,
                    request: s.session.request_id,
                    target: s.session.target_id,
                },
            },
        )
        .await?;
    if !requested {
        return Err(ApiError::Conflict {
            code: "invalid_transition",
            message: format!("session {id} has already ended"),
        });
    }
    state
        .events
        .send(GatewayEvent::TerminateSession { session: id });
    Ok((StatusCode::ACCEPTED, Json(SessionView::from(&s))))
}

/// Sign off the review of a finished session (approvers).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/review", tag = "sessions", params(("id" = String, Path)), request_body(content = Option<DecisionBody>),
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn review(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<DecisionBody>,
) -> ApiResult<Json<SessionView>> {
    let id: SessionId = parse_id(&id, "session")?;
    in_scope(&state, &caller, id).await?;
    let comment = body
        .and_then(|b| b.comment)
        .filter(|c| !c.trim().is_empty());
    let s = state
        .store
        .sign_off_session(id, &caller.user, comment, caller.source())
        .await?;
    Ok(Json(SessionView::from(&s)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HoldBody {
    /// `true` keeps the session's recording whatever the retention period; `false` releases it.
    pub on: bool,
}

/// Put a session's recording on (or off) legal hold (approvers).
#[utoipa::path(post, path = "/api/v1/sessions/{id}/hold", tag = "sessions", params(("id" = String, Path)), request_body = HoldBody,
    responses((status = 200, body = SessionView), (status = 404, body = ErrorBody)))]
pub async fn hold(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<HoldBody>,
) -> ApiResult<Json<SessionView>> {
    let id: SessionId = parse_id(&id, "session")?;
    in_scope(&state, &caller, id).await?;
    state
        .store
        .set_legal_hold(id, body.on, &caller.user, caller.source())
        .await?;
    let s = state
        .store
        .session(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("session {id}")))?;
    Ok(Json(SessionView::from(&s)))
}

/// Checks a caller limited to a site may act on session `id` (its target's site).
async fn in_scope(state: &ApiState, caller: &Caller, id: SessionId) -> ApiResult<()> {
    if super::site::filter(caller).is_none() {
        return Ok(());
    }
    let s = state
        .store
        .session(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("session {id}")))?;
    super::site::check_target(state, caller, s.session.target_id).await
}
