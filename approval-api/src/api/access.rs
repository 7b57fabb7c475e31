//! Who may call what: the one table ([`ACCESS`]) and the middleware that enforces it on every
//! routed request ([`guard`]).

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sekisho_domain::user::Role;

use jiff::Timestamp;
use sekisho_domain::ids::UserId;
use sekisho_domain::vendor::VendorStatus;

use super::error::{ApiError, ApiResult};
use super::state::ApiState;
use super::token::{Caller, UNKNOWN_KEY};

/// Who may call a route.
#[derive(Clone, Copy, Debug)]
pub enum Access {
    /// No token needed.
    Public,
    /// A valid token of one of these roles.
    Roles(&'static [Role]),
}

use Role::{Admin, Approver, Auditor, Vendor};
const STAFF: &[Role] = &[Admin, Approver, Auditor];
const EVERYONE: &[Role] = &[Admin, Approver, Auditor, Vendor];
const DECIDERS: &[Role] = &[Admin, Approver];
const ADMIN: &[Role] = &[Admin];
const VENDOR: &[Role] = &[Vendor];

/// The access table: method, route pattern, who. Vendors' reads are further limited to their
/// own vendor by the handlers.
pub const ACCESS: &[(&str, &str, Access)] = &[
    ("GET", "/healthz", Access::Public),
    ("GET", "/api/v1/openapi.json", Access::Public),
    ("POST", "/api/v1/auth/login", Access::Public),
    ("POST", "/api/v1/auth/mfa/enroll", Access::Public),
    ("POST", "/api/v1/auth/mfa/confirm", Access::Public),
    ("DELETE", "/api/v1/users/{id}/mfa", Access::Roles(ADMIN)),
    ("POST", "/api/v1/auth/logout", Access::Roles(EVERYONE)),
    ("GET", "/api/v1/auth/me", Access::Roles(EVERYONE)),
    ("GET", "/api/v1/me", Access::Roles(EVERYONE)),
    ("POST", "/api/v1/me/password", Access::Roles(EVERYONE)),
    ("GET", "/api/v1/policy", Access::Roles(EVERYONE)),
    ("GET", "/api/v1/vendors", Access::Roles(STAFF)),
    ("POST", "/api/v1/vendors", Access::Roles(ADMIN)),
    ("GET", "/api/v1/vendors/{id}", Access::Roles(EVERYONE)),
    ("PATCH", "/api/v1/vendors/{id}", Access::Roles(ADMIN)),
    ("POST", "/api/v1/vendors/{id}/users", Access::Roles(ADMIN)),
    ("GET", "/api/v1/users", Access::Roles(STAFF)),
    ("GET", "/api/v1/users/{id}", Access::Roles(EVERYONE)),
    ("PATCH", "/api/v1/users/{id}", Access::Roles(ADMIN)),
    (
        "GET",
        "/api/v1/users/{id}/ssh-keys",
        Access::Roles(EVERYONE),
    ),
    (
        "POST",
        "/api/v1/users/{id}/ssh-keys",
        Access::Roles(&[Admin, Vendor]),
    ),
    (
        "POST",
        "/api/v1/users/{id}/ssh-keys/{key}/approve",
        Access::Roles(DECIDERS),
    ),
    (
        "POST",
        "/api/v1/users/{id}/enrollment-codes",
        Access::Roles(DECIDERS),
    ),
    ("GET", "/api/v1/targets", Access::Roles(EVERYONE)),
    ("POST", "/api/v1/targets", Access::Roles(ADMIN)),
    ("GET", "/api/v1/targets/{id}", Access::Roles(EVERYONE)),
    ("GET", "/api/v1/reviews", Access::Roles(STAFF)),
    ("GET", "/api/v1/reports/monthly", Access::Roles(STAFF)),
    ("GET", "/api/v1/reviews/{session}", Access::Roles(STAFF)),
    (
        "GET",
        "/api/v1/reviews/{session}/activity",
        Access::Roles(STAFF),
    ),
    ("GET", "/api/v1/lines", Access::Roles(STAFF)),
    ("POST", "/api/v1/lines", Access::Roles(ADMIN)),
    ("GET", "/api/v1/lines/{id}", Access::Roles(STAFF)),
    ("PATCH", "/api/v1/lines/{id}", Access::Roles(ADMIN)),
    ("POST", "/api/v1/lines/{id}/review", Access::Roles(DECIDERS)),
    ("GET", "/api/v1/assignments", Access::Roles(EVERYONE)),
    ("POST", "/api/v1/assignments", Access::Roles(ADMIN)),
    ("GET", "/api/v1/assignments/{id}", Access::Roles(EVERYONE)),
    ("PATCH", "/api/v1/assignments/{id}", Access::Roles(ADMIN)),
    ("DELETE", "/api/v1/assignments/{id}", Access::Roles(ADMIN)),
    ("PATCH", "/api/v1/targets/{id}", Access::Roles(ADMIN)),
    ("GET", "/api/v1/requests", Access::Roles(EVERYONE)),
    ("POST", "/api/v1/requests", Access::Roles(VENDOR)),
    ("GET", "/api/v1/requests/{id}", Access::Roles(EVERYONE)),
    (
        "POST",
        "/api/v1/requests/{id}/approve",
        Access::Roles(DECIDERS),
    ),
    (
        "POST",
        "/api/v1/requests/{id}/reject",
        Access::Roles(DECIDERS),
    ),
    (
        "POST",
        "/api/v1/requests/{id}/cancel",
        Access::Roles(VENDOR),
    ),
    (
        "POST",
        "/api/v1/requests/{id}/revoke",
        Access::Roles(DECIDERS),
    ),
    (
        "POST",
        "/api/v1/requests/{id}/report",
        Access::Roles(VENDOR),
    ),
    ("GET", "/api/v1/sessions", Access::Roles(EVERYONE)),
    (
        "POST",
        "/api/v1/sessions/{id}/terminate",
        Access::Roles(DECIDERS),
    ),
    (
        "POST",
        "/api/v1/sessions/{id}/review",
        Access::Roles(DECIDERS),
    ),
    (
        "POST",
        "/api/v1/sessions/{id}/hold",
        Access::Roles(DECIDERS),
    ),
    ("GET", "/api/v1/nodes", Access::Roles(STAFF)),
    ("GET", "/api/v1/files", Access::Roles(STAFF)),
    ("GET", "/api/v1/quarantine", Access::Roles(STAFF)),
    (
        "GET",
        "/api/v1/quarantine/{id}/content",
        Access::Roles(ADMIN),
    ),
    ("DELETE", "/api/v1/quarantine/{id}", Access::Roles(ADMIN)),
    ("GET", "/api/v1/notifications", Access::Roles(ADMIN)),
    ("GET", "/api/v1/recordings", Access::Roles(STAFF)),
    ("GET", "/api/v1/recordings/search", Access::Roles(STAFF)),
    ("GET", "/api/v1/recordings/{id}", Access::Roles(STAFF)),
    (
        "GET",
        "/api/v1/recordings/{id}/files/{name}",
        Access::Roles(STAFF),
    ),
    ("GET", "/api/v1/recordings/{id}/text", Access::Roles(STAFF)),
    (
        "GET",
        "/api/v1/recordings/{id}/screen",
        Access::Roles(STAFF),
    ),
    ("GET", "/api/v1/recordings/{id}/pcap", Access::Roles(STAFF)),
    (
        "GET",
        "/api/v1/recordings/{id}/bundle",
        Access::Roles(STAFF),
    ),
    (
        "GET",
        "/api/v1/recordings/{id}/verify",
        Access::Roles(STAFF),
    ),
    ("GET", "/api/v1/audit", Access::Roles(EVERYONE)),
    ("GET", "/api/v1/audit/verify", Access::Roles(STAFF)),
];

/// Looks a route up in [`ACCESS`]; `None` means it is not in the table.
pub fn access_for(method: &Method, path: &str) -> Option<Access> {
    ACCESS
        .iter()
        .find(|(m, p, _)| *m == method.as_str() && *p == path)
        .map(|(_, _, a)| *a)
}

/// Authenticates and authorises every routed request against [`ACCESS`].
pub(super) async fn guard(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
    let Some(path) = req
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
    else {
        return next.run(req).await;
    };
    let allowed = match access_for(req.method(), &path) {
        Some(Access::Public) => return next.run(req).await,
        Some(Access::Roles(roles)) => roles,
        None if ACCESS.iter().any(|(_, p, _)| *p == path) => {
            return ApiError::MethodNotAllowed(format!(
                "{} is not supported on {path}",
                req.method()
            ))
            .into_response();
        }
        None => {
            tracing::error!(method = %req.method(), path, "route missing from the access table; refused");
            return ApiError::Forbidden("this route is not open to anyone".into()).into_response();
        }
    };
    let token = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .map(str::to_owned);
    let Some(token) = token else {
        return ApiError::Unauthorized("log in first: send Authorization: Bearer <token>".into())
            .into_response();
    };
    let source = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string());
    let caller = match authenticate(&state, &token, source).await {
        Ok(c) => c,
        Err(e) => return e.into_response(),
    };
    if !allowed.contains(&caller.user.role) {
        return ApiError::Forbidden(format!(
            "{} accounts may not {} {path}",
            caller.user.role,
            req.method()
        ))
        .into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Resolves a bearer token into a [`Caller`], refusing disabled or expired accounts and
/// engineers of vendors that are not active.
async fn authenticate(state: &ApiState, token: &str, source: Option<String>) -> ApiResult<Caller> {
    // The keys the other nodes published (and retirements) are read once a minute, and again
    // for a token naming a key not known yet.
    if state.tokens.reload_due(false) {
        state.tokens.accept(&state.store.token_keys().await?);
    }
    let claims = match state.tokens.verify(token) {
        Err(UNKNOWN_KEY) if state.tokens.reload_due(true) => {
            state.tokens.accept(&state.store.token_keys().await?);
            state.tokens.verify(token)
        }
        checked => checked,
    }
    .map_err(|m| ApiError::Unauthorized(m.to_owned()))?;
    let id: UserId = claims
        .sub
        .parse()
        .map_err(|_| ApiError::Unauthorized("invalid token".into()))?;
    let user = state
        .store
        .user(id)
        .await?
        .ok_or_else(|| ApiError::Unauthorized("account no longer exists".into()))?;
    if !user.is_usable(Timestamp::now()) {
        return Err(ApiError::Unauthorized(format!(
            "account {} is disabled or expired",
            user.username
        )));
    }
    if user.role != claims.role {
        return Err(ApiError::Unauthorized(
            "account role changed; log in again".into(),
        ));
    }
    if state.store.token_generation(user.id).await? != claims.tgen {
        return Err(ApiError::Unauthorized(
            "this token was revoked (password changed or account disabled); log in again".into(),
        ));
    }
    if state.store.token_revoked(&claims.jti).await? {
        return Err(ApiError::Unauthorized(
            "this token was revoked by logging out; log in again".into(),
        ));
    }
    let vendor = match user.vendor_id {
        Some(v) => {
            let vendor = state
                .store
                .vendor(v)
                .await?
                .ok_or_else(|| ApiError::Unauthorized("vendor no longer exists".into()))?;
            if vendor.status != VendorStatus::Active {
                return Err(ApiError::Forbidden(format!(
                    "vendor {} is {}",
                    vendor.name,
                    vendor.status.as_str()
                )));
            }
            Some(vendor)
        }
        None => None,
    };
    Ok(Caller {
        user,
        vendor,
        source,
        claims,
    })
}
