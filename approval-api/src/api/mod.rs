//! The HTTP API (axum) for hospital IT, vendors and auditors.
//!
//! **Architecture invariant:** who may call what is decided in one place, [`ACCESS`], by one
//! middleware ([`access::guard`]). A route missing from the table is refused with 403 for everyone,
//! and a test checks that every documented route has an entry. Handlers only narrow what a
//! vendor engineer sees to their own vendor.

pub mod access;
pub mod assignments;
pub mod audit;
pub mod auth;
pub mod chain_check;
pub mod dto;
pub mod error;
pub mod extract;
pub mod files;
pub mod lines;
pub mod mfa;
pub mod nodes;
pub mod notifications;
pub mod read_log;
pub mod reads;
pub mod recordings;
pub mod reports;
pub mod requests;
pub mod reviews;
pub mod sessions;
pub mod site;
pub mod state;
pub mod target_dto;
pub mod targets;
pub mod token;
pub mod users;
pub mod vendors;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tower_http::set_header::SetResponseHeaderLayer;
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use access::{ACCESS, Access, access_for};
use error::ApiError;
pub use extract::Source;
pub use state::{ApiSettings, ApiState, EnrollmentSettings, StateParts};
pub use token::Caller;

#[derive(OpenApi)]
#[openapi(
    info(title = "Sekisho API", description = "Registration, work requests, sessions and the audit log of the Sekisho remote-maintenance gateway."),
    components(schemas(error::ErrorBody)),
    modifiers(&BearerAuth),
    tags(
        (name = "auth"), (name = "vendors"), (name = "users"), (name = "targets"),
        (name = "requests"), (name = "sessions"), (name = "recordings"), (name = "audit"), (name = "files"), (name = "notifications"), (name = "system")
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
                axum::Json(json!({"status": "unavailable", "error": {
                    "code": sekisho_domain::refusal::Code::DatabaseUnavailable,
                    "message": "the database does not answer"
                }})),
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
        .routes(routes!(
            assignments::list_assignments,
            assignments::create_assignment
        ))
        .routes(routes!(lines::list_lines, lines::create_line))
        .routes(routes!(lines::get_line, lines::update_line))
        .routes(routes!(lines::review_line))
        .routes(routes!(
            assignments::get_assignment,
            assignments::update_assignment,
            assignments::remove_assignment
        ))
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
        .routes(routes!(reviews::list_reviews))
        .routes(routes!(reports::monthly_report))
        .routes(routes!(reviews::get_review))
        .routes(routes!(reviews::get_activity))
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
        .routes(routes!(nodes::list_nodes))
        .routes(routes!(mfa::enroll))
        .routes(routes!(mfa::confirm))
        .routes(routes!(mfa::reset))
        .routes(routes!(files::list_files))
        .routes(routes!(files::list_quarantine))
        .routes(routes!(files::quarantine_content))
        .routes(routes!(files::delete_quarantine))
        .routes(routes!(notifications::list_notifications))
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
        .route_layer(axum::middleware::from_fn_with_state(
            state.clone(),
            access::guard,
        ))
        .fallback(|| async { ApiError::NotFound("no such route".into()) })
        .with_state(state)
}
