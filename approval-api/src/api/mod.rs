//! The HTTP API (axum) for hospital IT, vendors and auditors.
//!
//! **Architecture invariant:** who may call what is decided in one place, [`ACCESS`], by one
//! middleware ([`guard`]). A route missing from the table is refused with 403 for everyone,
//! and a test checks that every documented route has an entry. Handlers only narrow what a
//! vendor engineer sees to their own vendor.

pub mod audit;
pub mod auth;
pub mod dto;
pub mod error;
pub mod recordings;
pub mod requests;
pub mod sessions;
pub mod targets;
pub mod users;
pub mod vendors;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, FromRequestParts, MatchedPath, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use jiff::SignedDuration;
use sekisho_domain::policy::Policy;
use sekisho_domain::user::Role;
use sekisho_domain::zone::DisplayZone;
use serde_json::json;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use auth::{Caller, TokenKeys};
use error::ApiError;
use sekisho_store::Store;
use sekisho_store::crypto::AtRestKey;
use sekisho_store::events::Events;

/// Settings the API consults, taken from the configuration.
#[derive(Debug)]
pub struct ApiSettings {
    pub policy: Policy,
    pub zone: DisplayZone,
    pub token_ttl_minutes: u32,
    pub login_max_failures: u32,
    pub lockout: SignedDuration,
    pub attestation_validity: SignedDuration,
    /// What enrollment codes tell the designated client.
    pub enrollment: EnrollmentSettings,
}

/// The gateway the designated client enrolls with.
#[derive(Debug, Clone)]
pub struct EnrollmentSettings {
    /// `host:port` of the QUIC listener.
    pub gateway: String,
    /// Fingerprint of the gateway's TLS certificate, for the client to pin.
    pub fingerprint: String,
    pub code_ttl: SignedDuration,
}

/// What every handler can reach; cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub store: Store,
    pub tokens: Arc<TokenKeys>,
    pub at_rest: Arc<AtRestKey>,
    pub settings: Arc<ApiSettings>,
    pub events: Events,
    /// The recordings directory, read-only.
    pub recordings: sekisho_recorder::Library,
    /// The recording-signing public key (base64), to verify against.
    pub recording_public_key: Arc<String>,
    /// The bounded pool every password check and hash goes through.
    pub hasher: sekisho_store::password::Hasher,
    /// Slows down password guessing (per address and per name).
    pub throttle: Arc<crate::throttle::LoginThrottle>,
    /// Audits failures of unauthenticated callers without letting them flood the log.
    pub failures: Arc<sekisho_store::failures::FailureLog>,
}

impl ApiSettings {
    /// The API's view of the configuration; `gateway_fingerprint` is the designated client's
    /// pin, shown with enrollment codes.
    pub fn from_config(config: &sekisho_config::Config, gateway_fingerprint: &str) -> Self {
        Self {
            policy: config.domain_policy(),
            zone: config.display_zone(),
            token_ttl_minutes: config.api.token_ttl_minutes,
            login_max_failures: config.api.login_max_failures,
            lockout: SignedDuration::from_mins(i64::from(config.api.lockout_minutes)),
            attestation_validity: SignedDuration::from_hours(
                24 * i64::from(config.policy.attestation_validity_days),
            ),
            enrollment: EnrollmentSettings {
                gateway: config.quic.listen.to_string(),
                fingerprint: gateway_fingerprint.to_owned(),
                code_ttl: SignedDuration::from_hours(i64::from(config.quic.enrollment_code_hours)),
            },
        }
    }
}

/// What the API state is made of, besides the configuration: the parts the server process
/// shares with the gateway (`sekisho_gateway::prepare` makes them).
pub struct StateParts<'a> {
    pub store: Store,
    pub events: Events,
    pub hasher: sekisho_store::password::Hasher,
    pub failures: Arc<sekisho_store::failures::FailureLog>,
    pub at_rest: Arc<AtRestKey>,
    /// The token-signing key (PKCS#8 PEM), its public half (SPKI PEM) and its id.
    pub jwt_pem: &'a sekisho_domain::secret::Secret<String>,
    pub jwt_public_pem: &'a str,
    pub jwt_kid: &'a str,
    /// The recording-signing public key (base64).
    pub recording_public_key: String,
    /// The designated client's pin for enrollment codes.
    pub gateway_fingerprint: &'a str,
}

impl ApiState {
    /// The state of the API that `config` describes, over the process's shared parts.
    pub fn new(
        config: &sekisho_config::Config,
        parts: StateParts<'_>,
    ) -> Result<Self, auth::TokenKeyError> {
        Ok(Self {
            store: parts.store,
            tokens: Arc::new(TokenKeys::ed25519(
                parts.jwt_kid.to_owned(),
                parts.jwt_pem,
                parts.jwt_public_pem,
            )?),
            at_rest: parts.at_rest,
            settings: Arc::new(ApiSettings::from_config(config, parts.gateway_fingerprint)),
            events: parts.events,
            recordings: sekisho_recorder::Library::new(&config.recordings_dir()),
            recording_public_key: Arc::new(parts.recording_public_key),
            hasher: parts.hasher,
            throttle: Arc::new(crate::throttle::LoginThrottle::new(
                config.api.login_max_failures,
                std::time::Duration::from_secs(60 * u64::from(config.api.lockout_minutes)),
            )),
            failures: parts.failures,
        })
    }
}

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

/// The client's address, when the server recorded it.
#[derive(Clone, Debug)]
pub struct Source(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for Source {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(Source(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0.ip().to_string()),
        ))
    }
}

/// Authenticates and authorises every routed request against [`ACCESS`].
async fn guard(State(state): State<ApiState>, mut req: Request, next: Next) -> Response {
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
    let caller = match auth::authenticate(&state, &token, source).await {
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

#[derive(OpenApi)]
#[openapi(
    info(title = "Sekisho API", description = "Registration, work requests, sessions and the audit log of the Sekisho remote-maintenance gateway."),
    components(schemas(error::ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth"), (name = "vendors"), (name = "users"), (name = "targets"),
        (name = "requests"), (name = "sessions"), (name = "recordings"), (name = "audit"), (name = "system")
    )
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{
            HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
        };
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .build(),
            ),
        );
        openapi.security = Some(vec![SecurityRequirement::new(
            "bearer",
            Vec::<String>::new(),
        )]);
    }
}

/// Health of the gateway: 200 when the database answers, 503 otherwise.
#[utoipa::path(get, path = "/healthz", tag = "system", security(()),
    responses((status = 200, description = "healthy"), (status = 503, description = "the database does not answer")))]
async fn healthz(State(state): State<ApiState>) -> Response {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, axum::Json(json!({"status": "ok"}))).into_response(),
        Err(e) => {
            tracing::warn!(error = %e, "health check: database unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(json!({"status": "unavailable", "error": {"code": "database_unavailable", "message": "the database does not answer"}})),
            )
                .into_response()
        }
    }
}

/// Every route of the API with its documentation.
pub fn api_routes() -> OpenApiRouter<ApiState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(healthz))
        .routes(routes!(auth::login))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::me))
        .routes(routes!(users::me))
        .routes(routes!(users::change_own_password))
        .routes(routes!(vendors::policy))
        .routes(routes!(vendors::list_vendors, vendors::create_vendor))
        .routes(routes!(vendors::get_vendor, vendors::update_vendor))
        .routes(routes!(users::create_vendor_user))
        .routes(routes!(users::list_users))
        .routes(routes!(users::get_user, users::update_user))
        .routes(routes!(users::list_ssh_keys, users::add_ssh_key))
        .routes(routes!(users::approve_ssh_key))
        .routes(routes!(users::create_enrollment_code))
        .routes(routes!(targets::list_targets, targets::create_target))
        .routes(routes!(targets::get_target, targets::update_target))
        .routes(routes!(requests::list_requests, requests::file_request))
        .routes(routes!(requests::get_request))
        .routes(routes!(requests::approve))
        .routes(routes!(requests::reject))
        .routes(routes!(requests::cancel))
        .routes(routes!(requests::revoke))
        .routes(routes!(requests::report))
        .routes(routes!(sessions::list_sessions))
        .routes(routes!(sessions::terminate))
        .routes(routes!(sessions::review))
        .routes(routes!(sessions::hold))
        .routes(routes!(recordings::list_recordings))
        .routes(routes!(recordings::search))
        .routes(routes!(recordings::get_recording))
        .routes(routes!(recordings::download))
        .routes(routes!(recordings::text))
        .routes(routes!(recordings::screen))
        .routes(routes!(recordings::pcap))
        .routes(routes!(recordings::bundle))
        .routes(routes!(recordings::verify))
        .routes(routes!(audit::list_audit))
        .routes(routes!(audit::verify))
}

/// The OpenAPI document of [`api_routes`].
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = api_routes().into_openapi();
    document_errors(&mut doc);
    doc
}

/// Documents, on every operation, the error answers that the shared layers can give it
/// (the guard, the extractors, the database), so that the document says every status a
/// client can meet: 400 for a malformed query or body, 401/403 from the guard on routes that
/// need a token, 404 where a path names something, 413/415/422 where there is a body, 503
/// when the database (or the password hashers) cannot serve. Each has the `ErrorBody` JSON.
fn document_errors(doc: &mut utoipa::openapi::OpenApi) {
    use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
    let error = |description: &str| -> RefOr<utoipa::openapi::Response> {
        RefOr::T(
            ResponseBuilder::new()
                .description(description)
                .content(
                    "application/json",
                    ContentBuilder::new()
                        .schema(Some(Ref::from_schema_name("ErrorBody")))
                        .build(),
                )
                .build(),
        )
    };
    for item in doc.paths.paths.values_mut() {
        for op in [
            &mut item.get,
            &mut item.post,
            &mut item.put,
            &mut item.patch,
            &mut item.delete,
        ]
        .into_iter()
        .flatten()
        {
            let public = op
                .security
                .as_ref()
                .is_some_and(|s| s.iter().all(|r| r == &Default::default()));
            // A path or a filter can name something that does not exist.
            let has_path_params = op.parameters.iter().flatten().next().is_some();
            let has_body = op.request_body.is_some();
            let mut add = |status: &str, description: &str| {
                op.responses
                    .responses
                    .entry(status.to_owned())
                    .or_insert_with(|| error(description));
            };
            add("400", "malformed request (query, path or body)");
            add("503", "the database cannot serve now; see Retry-After");
            if !public {
                add("401", "no token, or a token that is expired or revoked");
                add("403", "this account may not do this");
            }
            if has_path_params {
                add("404", "no such item (or not yours)");
            }
            if has_body {
                add("413", "body larger than [api] max_body_bytes");
                add("415", "send JSON with Content-Type: application/json");
                add("422", "a field is invalid; the message names it");
            }
        }
    }
}

/// The API's router (the web console, `sekisho-console`, adds its pages beside it).
pub fn router(state: ApiState) -> axum::Router {
    with_security_headers(api_router(state))
}

/// Answers carry tokens, personal data and audit rows: no cache keeps them, and no browser
/// guesses a type the server did not state. Applied to everything `[api] listen` serves.
pub fn with_security_headers(router: axum::Router) -> axum::Router {
    router
        .layer(SetResponseHeaderLayer::if_not_present(
            header::CACHE_CONTROL,
            header::HeaderValue::from_static("no-store"),
        ))
        .layer(SetResponseHeaderLayer::if_not_present(
            header::X_CONTENT_TYPE_OPTIONS,
            header::HeaderValue::from_static("nosniff"),
        ))
}

/// The API alone.
fn api_router(state: ApiState) -> axum::Router {
    let (router, mut doc) = api_routes().split_for_parts();
    document_errors(&mut doc);
    doc.paths.paths.insert(
        "/api/v1/openapi.json".into(),
        utoipa::openapi::path::PathItem::new(
            utoipa::openapi::HttpMethod::Get,
            utoipa::openapi::path::OperationBuilder::new()
                .summary(Some("This document"))
                .tag("system")
                .security(utoipa::openapi::security::SecurityRequirement::default())
                .response(
                    "200",
                    utoipa::openapi::ResponseBuilder::new().description("OpenAPI 3 document"),
                ),
        ),
    );
    let doc = Arc::new(doc);
    router
        .route(
            "/api/v1/openapi.json",
            get(move || {
                let doc = doc.clone();
                async move { axum::Json(doc.as_ref().clone()) }
            }),
        )
        .route_layer(axum::middleware::from_fn_with_state(state.clone(), guard))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .with_state(state)
}

/// A page size from a query: `default` when absent, 1 to 1000 when given.
pub(crate) fn page_limit(limit: Option<i64>, default: i64) -> Result<i64, ApiError> {
    match limit {
        None => Ok(default),
        Some(n) if (1..=1000).contains(&n) => Ok(n),
        Some(n) => Err(ApiError::BadRequest(format!(
            "limit {n} is out of range: use 1 to 1000"
        ))),
    }
}

/// Checks a caller may see things of `vendor` (vendor engineers only their own).
pub(crate) fn check_vendor_scope(
    caller: &Caller,
    vendor: sekisho_domain::ids::VendorId,
) -> Result<(), ApiError> {
    match caller.vendor_scope() {
        Some(own) if own != vendor => Err(ApiError::not_found("no such item for your vendor")),
        _ => Ok(()),
    }
}
