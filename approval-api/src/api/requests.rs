//! Work requests: filed by vendor engineers, decided by approvers through the domain's state
//! machine (`WorkRequest::apply`), never by the requester.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use sekisho_domain::ids::RequestId;
use sekisho_domain::request::{RequestStatus, Window};
use sekisho_domain::user::Role;
use serde::Deserialize;
use utoipa::IntoParams;

use super::dto::{DecisionBody, NewRequestBody, ReportBody, RequestView};
use super::error::{ApiError, ApiResult, ErrorBody, Json, OptionalJson};
use super::extract::check_vendor_scope;
use super::state::ApiState;
use super::token::Caller;
use super::vendors::{free_text, parse_id};
use sekisho_store::events::GatewayEvent;
use sekisho_store::requests::{Application, RequestAction, RequestFilter};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RequestQuery {
    /// Only requests in this state (e.g. `submitted` for the approval queue).
    pub status: Option<RequestStatus>,
    /// Only requests for this target (id).
    pub target: Option<String>,
    /// `true`: only requests whose window has not ended (those live sessions run under).
    pub open: Option<bool>,
    /// At most this many (default 200, at most 1000), newest first.
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Work requests, newest first. Vendor engineers see their own vendor's.
#[utoipa::path(get, path = "/api/v1/requests", tag = "requests", params(RequestQuery),
    responses((status = 200, body = Vec<RequestView>), (status = 400, body = ErrorBody)))]
pub async fn list_requests(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<RequestQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<RequestView>>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let filter = RequestFilter {
        vendor_id: caller.vendor_scope(),
        requester: None,
        target_id: q
            .target
            .as_deref()
            .map(|t| parse_id(t, "target"))
            .transpose()?,
        status: q.status,
        site: super::site::filter(&caller),
        open_at: q.open.unwrap_or(false).then(jiff::Timestamp::now),
        limit: super::extract::page_limit(q.limit, 200)?,
    };
    let policy = &state.settings.policy;
    Ok(Json(
        state
            .store
            .requests(&filter)
            .await?
            .iter()
            .map(|r| RequestView::stored(r, policy))
            .collect(),
    ))
}

/// File a work request (vendor engineers).
#[utoipa::path(post, path = "/api/v1/requests", tag = "requests", request_body = NewRequestBody,
    responses((status = 201, body = RequestView), (status = 400, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn file_request(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<NewRequestBody>,
) -> ApiResult<(StatusCode, Json<RequestView>)> {
    let policy = &state.settings.policy;
    let application = Application {
        target: body.target,
        level: body.level,
        window: Window {
            start: body.window_start,
            end: body.window_end,
        },
        reason: body.reason,
        plan: body.plan,
        emergency: body.emergency,
    };
    let request = state
        .store
        .file_application(policy, &caller.user, application, caller.source())
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(RequestView::new(&request, None, policy)),
    ))
}

/// One request (vendor engineers: their vendor's only).
#[utoipa::path(get, path = "/api/v1/requests/{id}", tag = "requests", params(("id" = String, Path)),
    responses((status = 200, body = RequestView), (status = 404, body = ErrorBody)))]
pub async fn get_request(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<RequestView>> {
    let id: RequestId = parse_id(&id, "request")?;
    let r = state
        .store
        .request(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("request {id}")))?;
    check_vendor_scope(&caller, r.request.vendor_id)?;
    super::site::check_target(&state, &caller, r.request.target_id).await?;
    Ok(Json(RequestView::stored(&r, &state.settings.policy)))
}

async fn act(
    state: ApiState,
    caller: Caller,
    id: String,
    action: RequestAction,
    body: Option<DecisionBody>,
) -> ApiResult<Json<RequestView>> {
    let id: RequestId = parse_id(&id, "request")?;
    if caller.user.role == Role::Vendor || super::site::filter(&caller).is_some() {
        let r = state
            .store
            .request(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("request {id}")))?;
        check_vendor_scope(&caller, r.request.vendor_id)?;
        super::site::check_target(&state, &caller, r.request.target_id).await?;
    }
    let comment = body
        .and_then(|b| b.comment)
        .filter(|c| !c.trim().is_empty());
    let s = &state.settings;
    let r = state
        .store
        .act_on_request(
            id,
            action,
            comment,
            &caller.user,
            &s.policy,
            &s.zone,
            caller.source(),
        )
        .await?;
    if r.status == RequestStatus::Revoked {
        state
            .events
            .send(GatewayEvent::RequestEnded { request: id });
    }
    let stored = state
        .store
        .request(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("request {id}")))?;
    Ok(Json(RequestView::stored(&stored, &s.policy)))
}

/// Approve (approvers; never the requester). A change request needs the policy's number of
/// distinct approvers.
#[utoipa::path(post, path = "/api/v1/requests/{id}/approve", tag = "requests", params(("id" = String, Path)), request_body(content = Option<DecisionBody>),
    responses((status = 200, body = RequestView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn approve(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<DecisionBody>,
) -> ApiResult<Json<RequestView>> {
    act(state, caller, id, RequestAction::Approve, body).await
}

/// Reject (approvers; never the requester).
#[utoipa::path(post, path = "/api/v1/requests/{id}/reject", tag = "requests", params(("id" = String, Path)), request_body(content = Option<DecisionBody>),
    responses((status = 200, body = RequestView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn reject(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<DecisionBody>,
) -> ApiResult<Json<RequestView>> {
    act(state, caller, id, RequestAction::Reject, body).await
}

/// Withdraw a request (the requester, before the work starts).
#[utoipa::path(post, path = "/api/v1/requests/{id}/cancel", tag = "requests", params(("id" = String, Path)), request_body(content = Option<DecisionBody>),
    responses((status = 200, body = RequestView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn cancel(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<DecisionBody>,
) -> ApiResult<Json<RequestView>> {
    act(state, caller, id, RequestAction::Cancel, body).await
}

/// Revoke an approved or active request; live sessions under it end.
#[utoipa::path(post, path = "/api/v1/requests/{id}/revoke", tag = "requests", params(("id" = String, Path)), request_body(content = Option<DecisionBody>),
    responses((status = 200, body = RequestView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn revoke(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    OptionalJson(body): OptionalJson<DecisionBody>,
) -> ApiResult<Json<RequestView>> {
    act(state, caller, id, RequestAction::Revoke, body).await
}

/// The requester's report of the work done (completes an active request).
#[utoipa::path(post, path = "/api/v1/requests/{id}/report", tag = "requests", params(("id" = String, Path)), request_body = ReportBody,
    responses((status = 200, body = RequestView), (status = 403, body = ErrorBody), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn report(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<ReportBody>,
) -> ApiResult<Json<RequestView>> {
    let id: RequestId = parse_id(&id, "request")?;
    let r = state
        .store
        .request(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("request {id}")))?;
    check_vendor_scope(&caller, r.request.vendor_id)?;
    let text = free_text("text", body.text.trim(), 20_000)?;
    if text.is_empty() {
        return Err(ApiError::invalid("text", "must not be empty"));
    }
    let s = &state.settings;
    state
        .store
        .report_work(id, text, &caller.user, &s.policy, &s.zone, caller.source())
        .await?;
    let stored = state
        .store
        .request(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("request {id}")))?;
    Ok(Json(RequestView::stored(&stored, &s.policy)))
}
