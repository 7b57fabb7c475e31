//! Vendors and their security attestation (case 6: remote-access IDs only for vendors that
//! meet the hospital's requirements).

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use jiff::Timestamp;
use sekisho_domain::ids::VendorId;
use sekisho_domain::policy::ChecklistItem;
use sekisho_domain::vendor::{Attestation, AttestationAnswer, Contact, VendorStatus};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::dto::{AttestationBody, ContactBody, NewVendorBody, VendorPatchBody, VendorView};
use super::error::{ApiError, ApiResult, ErrorBody, Json};
use super::extract::check_vendor_scope;
use super::state::ApiState;
use super::token::Caller;
use sekisho_store::events::GatewayEvent;
use sekisho_store::vendors::VendorChanges;

pub(crate) fn parse_id<T: std::str::FromStr>(s: &str, what: &str) -> ApiResult<T> {
    s.parse()
        .map_err(|_| ApiError::not_found(format!("{what} {s}")))
}

/// A one-line name or value: trimmed, not empty, at most `max` characters, and without
/// invisible or control characters (NUL, bidi overrides, zero-width spaces), which could make
/// two names look alike or a line read backwards in the console and the audit log.
pub(crate) fn required(field: &'static str, value: &str, max: usize) -> ApiResult<String> {
    let v = value.trim();
    sekisho_domain::text::check_name(v, max)
        .map_err(|e| ApiError::invalid(field, e.to_string()))?;
    Ok(v.to_owned())
}

/// Free text (a reason, a plan, a report): line breaks and tabs are fine, other control and
/// invisible characters are not.
pub(crate) fn free_text(field: &'static str, value: &str, max: usize) -> ApiResult<String> {
    sekisho_domain::text::check_text(value, max)
        .map_err(|e| ApiError::invalid(field, e.to_string()))?;
    Ok(value.to_owned())
}

fn contact(body: ContactBody) -> ApiResult<Contact> {
    let optional = |field, v: Option<String>| -> ApiResult<Option<String>> {
        v.filter(|s| !s.trim().is_empty())
            .map(|s| required(field, &s, 200))
            .transpose()
    };
    Ok(Contact {
        name: required("contact.name", &body.name, 200)?,
        email: optional("contact.email", body.email)?,
        phone: optional("contact.phone", body.phone)?,
    })
}

fn attestation(body: AttestationBody, state: &ApiState) -> ApiResult<Attestation> {
    let checklist = &state.settings.policy.checklist;
    if let Some(unknown) = body
        .answers
        .keys()
        .find(|k| !checklist.iter().any(|i| &i.key == *k))
    {
        return Err(ApiError::invalid(
            "attestation.answers",
            format!(
                "`{unknown}` is not on the hospital's checklist ({})",
                checklist
                    .iter()
                    .map(|i| i.key.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        ));
    }
    let attested_at = body.attested_at.unwrap_or_else(Timestamp::now);
    let expires_at = body
        .expires_at
        .unwrap_or_else(|| attested_at + state.settings.attestation_validity);
    if expires_at <= attested_at {
        return Err(ApiError::invalid(
            "attestation.expires_at",
            "must be after attested_at",
        ));
    }
    Ok(Attestation {
        answers: body
            .answers
            .into_iter()
            .map(|(key, met)| AttestationAnswer {
                key,
                met,
                note: None,
            })
            .collect(),
        attested_by: required("attestation.attested_by", &body.attested_by, 200)?,
        attested_at,
        expires_at,
    })
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PolicyView {
    /// The security measures every vendor must attest to.
    pub checklist: Vec<ChecklistItemView>,
    pub approvals_for_change: u8,
    pub emergency_access: bool,
    pub max_window_hours: i64,
    /// The zone times are shown in.
    pub time_zone: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ChecklistItemView {
    pub key: String,
    pub label: String,
}

impl From<&ChecklistItem> for ChecklistItemView {
    fn from(i: &ChecklistItem) -> Self {
        Self {
            key: i.key.clone(),
            label: i.label.clone(),
        }
    }
}

/// The hospital's rules that vendors and IT need to know.
#[utoipa::path(get, path = "/api/v1/policy", tag = "vendors",
    responses((status = 200, body = PolicyView), (status = 401, body = ErrorBody)))]
pub async fn policy(State(state): State<ApiState>) -> Json<PolicyView> {
    let p = &state.settings.policy;
    Json(PolicyView {
        checklist: p.checklist.iter().map(ChecklistItemView::from).collect(),
        approvals_for_change: p.approvals_for_change,
        emergency_access: p.emergency_access,
        max_window_hours: p.max_window.as_hours(),
        time_zone: state
            .settings
            .zone
            .date_time(Timestamp::now())
            .rsplit(' ')
            .next()
            .unwrap_or("UTC")
            .to_owned(),
    })
}

/// All vendors.
#[utoipa::path(get, path = "/api/v1/vendors", tag = "vendors",
    responses((status = 200, body = Vec<VendorView>), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody)))]
pub async fn list_vendors(State(state): State<ApiState>) -> ApiResult<Json<Vec<VendorView>>> {
    let s = &state.settings;
    Ok(Json(
        state
            .store
            .vendors()
            .await?
            .iter()
            .map(|v| VendorView::new(v, &s.policy, &s.zone))
            .collect(),
    ))
}

/// Register a vendor.
#[utoipa::path(post, path = "/api/v1/vendors", tag = "vendors", request_body = NewVendorBody,
    responses((status = 201, body = VendorView), (status = 400, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn create_vendor(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Json(body): Json<NewVendorBody>,
) -> ApiResult<(StatusCode, Json<VendorView>)> {
    let name = required("name", &body.name, 200)?;
    let att = body
        .attestation
        .map(|a| attestation(a, &state))
        .transpose()?;
    let v = state
        .store
        .create_vendor(
            name,
            contact(body.contact)?,
            att,
            &caller.actor(),
            caller.source(),
        )
        .await?;
    let s = &state.settings;
    Ok((
        StatusCode::CREATED,
        Json(VendorView::new(&v, &s.policy, &s.zone)),
    ))
}

/// One vendor (vendor engineers: their own only).
#[utoipa::path(get, path = "/api/v1/vendors/{id}", tag = "vendors", params(("id" = String, Path)),
    responses((status = 200, body = VendorView), (status = 404, body = ErrorBody)))]
pub async fn get_vendor(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<VendorView>> {
    let id: VendorId = parse_id(&id, "vendor")?;
    check_vendor_scope(&caller, id)?;
    let v = state
        .store
        .vendor(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("vendor {id}")))?;
    let s = &state.settings;
    Ok(Json(VendorView::new(&v, &s.policy, &s.zone)))
}

/// Change a vendor: details, attestation, or status (suspend, reactivate, offboard).
#[utoipa::path(patch, path = "/api/v1/vendors/{id}", tag = "vendors", params(("id" = String, Path)), request_body = VendorPatchBody,
    responses((status = 200, body = VendorView), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody), (status = 422, body = ErrorBody)))]
pub async fn update_vendor(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    Json(body): Json<VendorPatchBody>,
) -> ApiResult<Json<VendorView>> {
    let id: VendorId = parse_id(&id, "vendor")?;
    let current = state
        .store
        .vendor(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("vendor {id}")))?;
    if current.status == VendorStatus::Offboarded
        && body.status.is_some_and(|s| s != VendorStatus::Offboarded)
    {
        return Err(ApiError::Conflict {
            code: "invalid_transition",
            message: format!(
                "vendor {} is offboarded; register it again instead",
                current.name
            ),
        });
    }
    let changes = VendorChanges {
        name: body
            .name
            .as_deref()
            .map(|n| required("name", n, 200))
            .transpose()?,
        contact: body.contact.map(contact).transpose()?,
        attestation: body
            .attestation
            .map(|a| attestation(a, &state))
            .transpose()?,
        status: body.status,
    };
    let v = state
        .store
        .update_vendor(id, changes, &caller.actor(), caller.source())
        .await?;
    if v.status != VendorStatus::Active {
        state
            .events
            .send(GatewayEvent::VendorBlocked { vendor: id });
    }
    let s = &state.settings;
    Ok(Json(VendorView::new(&v, &s.policy, &s.zone)))
}
