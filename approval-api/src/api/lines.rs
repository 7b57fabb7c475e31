//! The inventory of external connection lines (issue #18): every line or device through which
//! a vendor reaches the hospital, through Sekisho or as an exception, with the flags a
//! reviewer should see. Staff read it; admins keep it; admins and approvers review lines.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use sekisho_domain::ids::{LineId, VendorId};
use sekisho_domain::line::{Line, LineFlag, LineStatus, Route};
use sekisho_store::lines::{LineChanges, LineFields};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ApiResult, ErrorBody, Json};
use super::state::ApiState;
use super::target_dto::double_option;
use super::token::Caller;
use super::vendors::{free_text, parse_id, required};

/// A line of the inventory.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct LineView {
    #[schema(value_type = String)]
    pub id: LineId,
    pub name: String,
    pub route: Route,
    #[schema(value_type = Option<String>)]
    pub vendor_id: Option<VendorId>,
    /// The vendor's name, when a vendor uses the line.
    pub vendor: Option<String>,
    pub owner: String,
    pub location: String,
    pub device: String,
    pub firmware: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub firmware_updated_at: Option<Timestamp>,
    /// For an exception: the security measures the vendor submitted.
    pub measures: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub reviewed_at: Option<Timestamp>,
    pub status: LineStatus,
    pub notes: String,
    /// What a reviewer should see now (never reviewed, review over a year old, ...).
    pub flags: Vec<LineFlag>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub updated_at: Timestamp,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewLineBody {
    pub name: String,
    /// `sekisho` (the default) or `exception`.
    pub route: Option<Route>,
    /// The vendor that uses the line, if one does.
    #[schema(value_type = Option<String>, format = Uuid)]
    pub vendor_id: Option<String>,
    /// Who at the hospital is responsible for it.
    pub owner: String,
    pub location: String,
    pub device: String,
    #[serde(default)]
    pub firmware: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub firmware_updated_at: Option<Timestamp>,
    #[serde(default)]
    pub measures: String,
    #[serde(default)]
    pub notes: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LinePatchBody {
    pub name: Option<String>,
    pub route: Option<Route>,
    /// Another vendor, or `null` for none.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = Uuid)]
    pub vendor_id: Option<Option<String>>,
    pub owner: Option<String>,
    pub location: Option<String>,
    pub device: Option<String>,
    pub firmware: Option<String>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub firmware_updated_at: Option<Option<Timestamp>>,
    pub measures: Option<String>,
    /// `retired` takes the line out of service (it stays in the inventory).
    pub status: Option<LineStatus>,
    pub notes: Option<String>,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LineReviewBody {
    /// What was checked, what was found.
    pub note: Option<String>,
}

async fn view(state: &ApiState, l: Line) -> ApiResult<LineView> {
    let vendor = match l.vendor_id {
        Some(v) => state.store.vendor(v).await?.map(|v| v.name),
        None => None,
    };
    Ok(LineView {
        flags: l.flags(Timestamp::now()),
        id: l.id,
        name: l.name,
        route: l.route,
        vendor_id: l.vendor_id,
        vendor,
        owner: l.owner,
        location: l.location,
        device: l.device,
        firmware: l.firmware,
        firmware_updated_at: l.firmware_updated_at,
        measures: l.measures,
        reviewed_at: l.reviewed_at,
        status: l.status,
        notes: l.notes,
        created_at: l.created_at,
        updated_at: l.updated_at,
    })
}

/// A vendor id from a body: it must name a registered vendor.
async fn vendor(state: &ApiState, id: &str) -> ApiResult<VendorId> {
    let id: VendorId = id
        .parse()
        .map_err(|_| ApiError::invalid("vendor_id", "not a vendor id"))?;
    match state.store.vendor(id).await? {
        Some(_) => Ok(id),
        None => Err(ApiError::invalid("vendor_id", "no vendor with this id")),
    }
}

/// Free text of at most 4000 characters.
fn notes(field: &'static str, value: &str) -> ApiResult<String> {
    free_text(field, value, 4000)
}

/// One line of text that may be empty.
fn short(field: &'static str, value: &str) -> ApiResult<String> {
    if value.trim().is_empty() {
        Ok(String::new())
    } else {
        required(field, value, 200)
    }
}

/// The inventory, by name, with each line's flags.
#[utoipa::path(get, path = "/api/v1/lines", tag = "lines",
    responses((status = 200, body = Vec<LineView>), (status = 401, body = ErrorBody)))]
pub async fn list_lines(
    State(state): State<ApiState>,
    Extension(_caller): Extension<Caller>,
) -> ApiResult<Json<Vec<LineView>>> {
    let mut out = vec![];
    for l in state.store.lines().await? {
        out.push(view(&state, l).await?);
    }
    Ok(Json(out))
}

/// Enter a line into the inventory (admins).
#[utoipa::path(post, path = "/api/v1/lines", tag = "lines", request_body = NewLineBody,
    responses((status = 201, body = LineView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_line(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<NewLineBody>,
) -> ApiResult<(StatusCode, Json<LineView>)> {
    let fields = LineFields {
        name: required("name", &body.name, 200)?,
        route: body.route,
        vendor_id: match &body.vendor_id {
            Some(v) => Some(vendor(&state, v).await?),
            None => None,
        },
        owner: required("owner", &body.owner, 200)?,
        location: required("location", &body.location, 200)?,
        device: required("device", &body.device, 200)?,
        firmware: short("firmware", &body.firmware)?,
        firmware_updated_at: body.firmware_updated_at,
        measures: notes("measures", &body.measures)?,
        notes: notes("notes", &body.notes)?,
    };
    let l = state
        .store
        .create_line(fields, &caller.actor(), caller.source())
        .await?;
    Ok((StatusCode::CREATED, Json(view(&state, l).await?)))
}

/// One line.
#[utoipa::path(get, path = "/api/v1/lines/{id}", tag = "lines", params(("id" = String, Path)),
    responses((status = 200, body = LineView), (status = 404, body = ErrorBody)))]
pub async fn get_line(
    State(state): State<ApiState>,
    Extension(_caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<LineView>> {
    let id: LineId = parse_id(&id, "line")?;
    let l = state
        .store
        .line(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("line {id}")))?;
    Ok(Json(view(&state, l).await?))
}

/// Change a line (admins): its device, firmware, owner, measures, or retire it.
#[utoipa::path(patch, path = "/api/v1/lines/{id}", tag = "lines", params(("id" = String, Path)), request_body = LinePatchBody,
    responses((status = 200, body = LineView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_line(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<LinePatchBody>,
) -> ApiResult<Json<LineView>> {
    let id: LineId = parse_id(&id, "line")?;
    let text = |field: &'static str, v: Option<String>| -> ApiResult<Option<String>> {
        v.map(|v| required(field, &v, 200)).transpose()
    };
    let changes = LineChanges {
        name: text("name", body.name)?,
        route: body.route,
        vendor_id: match body.vendor_id {
            Some(Some(v)) => Some(Some(vendor(&state, &v).await?)),
            Some(None) => Some(None),
            None => None,
        },
        owner: text("owner", body.owner)?,
        location: text("location", body.location)?,
        device: text("device", body.device)?,
        firmware: body.firmware.map(|f| short("firmware", &f)).transpose()?,
        firmware_updated_at: body.firmware_updated_at,
        measures: body.measures.map(|m| notes("measures", &m)).transpose()?,
        status: body.status,
        notes: body.notes.map(|n| notes("notes", &n)).transpose()?,
    };
    let l = state
        .store
        .update_line(id, changes, &caller.actor(), caller.source())
        .await?;
    Ok(Json(view(&state, l).await?))
}

/// Record a review of the line now (admins and approvers).
#[utoipa::path(post, path = "/api/v1/lines/{id}/review", tag = "lines", params(("id" = String, Path)), request_body = LineReviewBody,
    responses((status = 200, body = LineView), (status = 404, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn review_line(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<LineReviewBody>,
) -> ApiResult<Json<LineView>> {
    let id: LineId = parse_id(&id, "line")?;
    let note = body
        .note
        .filter(|n| !n.trim().is_empty())
        .map(|n| notes("note", &n))
        .transpose()?;
    let l = state
        .store
        .review_line(id, note, &caller.actor(), caller.source())
        .await?;
    Ok(Json(view(&state, l).await?))
}
