//! Who maintains what (issue #18): vendors assigned to targets under maintenance contracts.
//! Admins assign; everyone reads what they may see: a vendor engineer their own vendor's,
//! staff limited to a site that site's targets'.

use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use sekisho_domain::assignment::{Assignment, MAX_CONTRACT, MAX_NOTES};
use sekisho_domain::ids::{AssignmentId, TargetId, VendorId};
use sekisho_store::assignments::{AssignmentChanges, AssignmentFilter, NewAssignment};
use sekisho_store::events::GatewayEvent;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody, Json};
use super::extract::check_vendor_scope;
use super::state::ApiState;
use super::target_dto::double_option;
use super::token::Caller;
use super::vendors::{free_text, parse_id, required};

/// A vendor's assignment to a target.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AssignmentView {
    #[schema(value_type = String)]
    pub id: AssignmentId,
    #[schema(value_type = String)]
    pub vendor_id: VendorId,
    pub vendor: String,
    #[schema(value_type = String)]
    pub target_id: TargetId,
    pub target: String,
    /// The maintenance contract's reference.
    pub contract: String,
    /// The service level agreed.
    pub sla: String,
    /// Where the vendor's responsibility ends (責任分界点).
    pub boundary: String,
    /// The contract's end; `null` for none.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<Timestamp>,
    /// Whether the contract has ended: the vendor no longer sees or reaches the target.
    pub ended: bool,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewAssignmentBody {
    /// The vendor's id.
    #[schema(format = Uuid)]
    pub vendor_id: String,
    /// The target's id.
    #[schema(format = Uuid)]
    pub target_id: String,
    /// The maintenance contract's reference (1 to 200 characters).
    pub contract: String,
    #[serde(default)]
    pub sla: String,
    #[serde(default)]
    pub boundary: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<Timestamp>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AssignmentPatchBody {
    pub contract: Option<String>,
    pub sla: Option<String>,
    pub boundary: Option<String>,
    /// A new end, or `null` for a contract without one.
    #[serde(default, deserialize_with = "double_option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ends_at: Option<Option<Timestamp>>,
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AssignmentQuery {
    /// Only this vendor's assignments.
    pub vendor_id: Option<uuid::Uuid>,
    /// Only assignments to this target.
    pub target_id: Option<uuid::Uuid>,
}

async fn view(state: &ApiState, a: Assignment) -> ApiResult<AssignmentView> {
    let vendor = state.store.vendor(a.vendor_id).await?.map(|v| v.name);
    let target = state.store.target(a.target_id).await?.map(|t| t.name);
    Ok(AssignmentView {
        ended: a.ended(Timestamp::now()),
        id: a.id,
        vendor_id: a.vendor_id,
        vendor: vendor.unwrap_or_default(),
        target_id: a.target_id,
        target: target.unwrap_or_default(),
        contract: a.contract,
        sla: a.sla,
        boundary: a.boundary,
        ends_at: a.ends_at,
        created_at: a.created_at,
        updated_at: a.updated_at,
    })
}

/// Checks the caller may see `a`: their vendor's (vendor engineers), their site's (limited staff).
async fn check_visible(state: &ApiState, caller: &Caller, a: &Assignment) -> ApiResult<()> {
    check_vendor_scope(caller, a.vendor_id)?;
    super::site::check_target(state, caller, a.target_id).await
}

/// Assignments the caller may see, oldest first.
#[utoipa::path(get, path = "/api/v1/assignments", tag = "assignments", params(AssignmentQuery),
    responses((status = 200, body = Vec<AssignmentView>), (status = 400, body = ErrorBody)))]
pub async fn list_assignments(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<AssignmentQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<AssignmentView>>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let mut filter = AssignmentFilter {
        vendor: q.vendor_id.map(VendorId),
        target: q.target_id.map(TargetId),
    };
    if let Some(own) = caller.vendor_scope() {
        if filter.vendor.is_some_and(|v| v != own) {
            return Ok(Json(vec![]));
        }
        filter.vendor = Some(own);
    }
    let visible = super::site::target_ids(&state, &caller).await?;
    let mut out = vec![];
    for a in state.store.assignments(filter).await? {
        if visible.as_ref().is_none_or(|v| v.contains(&a.target_id)) {
            out.push(view(&state, a).await?);
        }
    }
    Ok(Json(out))
}

/// Assign a vendor to a target (admins).
#[utoipa::path(post, path = "/api/v1/assignments", tag = "assignments", request_body = NewAssignmentBody,
    responses((status = 201, body = AssignmentView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_assignment(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<NewAssignmentBody>,
) -> ApiResult<(StatusCode, Json<AssignmentView>)> {
    let vendor_id: VendorId = match body.vendor_id.parse() {
        Ok(id) => id,
        Err(_) => return Err(ApiError::invalid("vendor_id", "not a vendor id")),
    };
    let target_id: TargetId = match body.target_id.parse() {
        Ok(id) => id,
        Err(_) => return Err(ApiError::invalid("target_id", "not a target id")),
    };
    if state.store.vendor(vendor_id).await?.is_none() {
        return Err(ApiError::invalid("vendor_id", "no vendor with this id"));
    }
    if state.store.target(target_id).await?.is_none() {
        return Err(ApiError::invalid("target_id", "no target with this id"));
    }
    let new = NewAssignment {
        vendor_id,
        target_id,
        contract: required("contract", &body.contract, MAX_CONTRACT)?,
        sla: free_text("sla", &body.sla, MAX_NOTES)?,
        boundary: free_text("boundary", &body.boundary, MAX_NOTES)?,
        ends_at: body.ends_at,
    };
    let a = state
        .store
        .create_assignment(new, &caller.actor(), caller.source())
        .await?;
    Ok((StatusCode::CREATED, Json(view(&state, a).await?)))
}

/// One assignment.
#[utoipa::path(get, path = "/api/v1/assignments/{id}", tag = "assignments", params(("id" = String, Path)),
    responses((status = 200, body = AssignmentView), (status = 404, body = ErrorBody)))]
pub async fn get_assignment(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<AssignmentView>> {
    let id: AssignmentId = parse_id(&id, "assignment")?;
    let a = state
        .store
        .assignment(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("assignment {id}")))?;
    check_visible(&state, &caller, &a).await?;
    Ok(Json(view(&state, a).await?))
}

/// Change an assignment's contract, service level, boundary or end (admins).
#[utoipa::path(patch, path = "/api/v1/assignments/{id}", tag = "assignments", params(("id" = String, Path)), request_body = AssignmentPatchBody,
    responses((status = 200, body = AssignmentView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_assignment(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<AssignmentPatchBody>,
) -> ApiResult<Json<AssignmentView>> {
    let id: AssignmentId = parse_id(&id, "assignment")?;
    let changes = AssignmentChanges {
        contract: body
            .contract
            .map(|c| required("contract", &c, MAX_CONTRACT))
            .transpose()?,
        sla: body
            .sla
            .map(|s| free_text("sla", &s, MAX_NOTES))
            .transpose()?,
        boundary: body
            .boundary
            .map(|b| free_text("boundary", &b, MAX_NOTES))
            .transpose()?,
        ends_at: body.ends_at,
    };
    let a = state
        .store
        .update_assignment(id, changes, &caller.actor(), caller.source())
        .await?;
    // An earlier end may end live sessions: every node re-checks them now.
    state.events.send(GatewayEvent::Recheck);
    Ok(Json(view(&state, a).await?))
}

/// End an assignment (admins): the vendor loses the target at once, open sessions included.
#[utoipa::path(delete, path = "/api/v1/assignments/{id}", tag = "assignments", params(("id" = String, Path)),
    responses((status = 204), (status = 404, body = ErrorBody)))]
pub async fn remove_assignment(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let id: AssignmentId = parse_id(&id, "assignment")?;
    state
        .store
        .remove_assignment(id, &caller.actor(), caller.source())
        .await?;
    state.events.send(GatewayEvent::Recheck);
    Ok(StatusCode::NO_CONTENT)
}
