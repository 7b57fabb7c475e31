//! Enrolling a second factor (TOTP) and an admin's reset of one (issue #17).
//!
//! Enrolment is authenticated by the account's password, not by a token: an account whose
//! role must use a second factor gets no token until it has one. Both steps are throttled
//! and audited like a login.

use axum::Extension;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use sekisho_store::mfa;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::check_password;
use super::error::{ApiError, ApiResult, ErrorBody, Json};
use super::extract::Source;
use super::state::ApiState;
use super::token::Caller;

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EnrollBody {
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
}

/// A new secret, pending until confirmed with a first code.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct EnrollResponse {
    /// The secret (base32), for typing into an authenticator; shown this once.
    pub secret: String,
    /// What the QR code holds.
    pub otpauth_uri: String,
    /// The QR code as an SVG image (drawn on the server).
    pub qr_svg: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConfirmBody {
    pub username: String,
    #[schema(format = Password)]
    pub password: String,
    /// The authenticator's current 6-digit code.
    pub code: String,
}

/// The second factor is on.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ConfirmResponse {
    /// One-time codes for when the authenticator is lost; shown this once, each works once.
    pub recovery_codes: Vec<String>,
}

/// `otpauth_uri` as an SVG QR code: one square per dark module, a quiet zone of four.
pub fn qr_svg(data: &str) -> ApiResult<String> {
    let code = qrcode::QrCode::new(data.as_bytes())
        .map_err(|e| ApiError::Internal(format!("QR code: {e}")))?;
    let width = code.width();
    let size = width + 8;
    let colors = code.to_colors();
    let mut path = String::new();
    for (i, c) in colors.iter().enumerate() {
        if *c == qrcode::Color::Dark {
            let (x, y) = (i % width + 4, i / width + 4);
            path.push_str(&format!("M{x} {y}h1v1h-1z"));
        }
    }
    Ok(format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {size} {size}\" width=\"{px}\" height=\"{px}\" shape-rendering=\"crispEdges\" role=\"img\" aria-label=\"QR code\"><rect width=\"{size}\" height=\"{size}\" fill=\"#fff\"/><path d=\"{path}\" fill=\"#000\"/></svg>",
        px = size * 6
    ))
}

fn conflict(e: sekisho_store::StoreError) -> ApiError {
    match e {
        sekisho_store::StoreError::Conflict(m) => ApiError::Conflict {
            code: "mfa_conflict",
            message: m,
        },
        other => other.into(),
    }
}

/// Begin enrolling a second factor: a new secret, its `otpauth://` URI and QR code.
#[utoipa::path(post, path = "/api/v1/auth/mfa/enroll", tag = "auth", security(()), request_body = EnrollBody,
    responses((status = 200, body = EnrollResponse),
        (status = 400, description = "malformed body", body = ErrorBody),
        (status = 401, description = "wrong username or password", body = ErrorBody),
        (status = 403, description = "the vendor is not active", body = ErrorBody),
        (status = 409, description = "the account has a second factor already", body = ErrorBody),
        (status = 415, description = "not JSON", body = ErrorBody),
        (status = 429, description = "too many failures from this address; see Retry-After", body = ErrorBody),
        (status = 503, description = "busy or the database is unavailable; see Retry-After", body = ErrorBody)))]
pub async fn enroll(
    State(state): State<ApiState>,
    source: Source,
    Json(body): Json<EnrollBody>,
) -> ApiResult<Json<EnrollResponse>> {
    let source = source.0;
    let user = check_password(&state, &body.username, body.password, source.as_deref()).await?;
    let secret = state
        .store
        .mfa_begin(&user, &state.at_rest, source.as_deref())
        .await
        .map_err(conflict)?;
    let otpauth_uri = mfa::otpauth_uri(&user.username, &secret);
    Ok(Json(EnrollResponse {
        qr_svg: qr_svg(&otpauth_uri)?,
        secret,
        otpauth_uri,
    }))
}

/// Turn the second factor on with the authenticator's first code; returns the recovery codes.
#[utoipa::path(post, path = "/api/v1/auth/mfa/confirm", tag = "auth", security(()), request_body = ConfirmBody,
    responses((status = 200, body = ConfirmResponse),
        (status = 400, description = "malformed body", body = ErrorBody),
        (status = 401, description = "wrong username, password or code", body = ErrorBody),
        (status = 403, description = "the vendor is not active", body = ErrorBody),
        (status = 409, description = "no enrolment is waiting", body = ErrorBody),
        (status = 415, description = "not JSON", body = ErrorBody),
        (status = 429, description = "too many failures from this address; see Retry-After", body = ErrorBody),
        (status = 503, description = "busy or the database is unavailable; see Retry-After", body = ErrorBody)))]
pub async fn confirm(
    State(state): State<ApiState>,
    source: Source,
    Json(body): Json<ConfirmBody>,
) -> ApiResult<Json<ConfirmResponse>> {
    let source = source.0;
    let user = check_password(&state, &body.username, body.password, source.as_deref()).await?;
    let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0);
    match state
        .store
        .mfa_confirm(&user, &state.at_rest, &body.code, now, source.as_deref())
        .await
        .map_err(conflict)?
    {
        Some(recovery_codes) => Ok(Json(ConfirmResponse { recovery_codes })),
        None => {
            state.throttle.failed(source.as_deref(), &body.username);
            Err(ApiError::Unauthorized(
                "wrong code: enter the 6 digits your authenticator shows now".into(),
            ))
        }
    }
}

/// Remove a user's second factor (a lost authenticator); they enrol again. Admins only.
#[utoipa::path(delete, path = "/api/v1/users/{id}/mfa", tag = "users", params(("id" = String, Path)),
    responses((status = 204, description = "removed"), (status = 404, body = ErrorBody)))]
pub async fn reset(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    let absent = || ApiError::not_found(format!("user {id}"));
    let uid = id.parse().map_err(|_| absent())?;
    let user = state.store.user(uid).await?.ok_or_else(absent)?;
    state
        .store
        .mfa_reset(&user, &caller.user, caller.source.as_deref())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
