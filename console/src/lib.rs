//! The web console for hospital IT and auditors (issue #7), served at `/` on the API's
//! address: server-rendered HTML (maud, escaped by construction), no JavaScript, one
//! stylesheet compiled into the binary.
//!
//! **Architecture invariant:** the console is a presentation of the API, not a second API.
//! Every read and every action is an in-process request to the API router with the user's
//! own token, so `sekisho_approval_api::api::ACCESS`, the guard, the domain rules and the audit log apply
//! exactly as they do to `curl`. The token lives in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` when `[api] tls` is on); every form that changes something carries a CSRF token
//! derived from the session token, and a cross-origin `Origin` is refused.

mod assets;
mod client;
mod context;
mod extract;
mod handlers;
mod i18n;
mod lang;
mod pages;
pub mod pdf;
pub mod report;

use axum::http::{HeaderValue, header};
use axum::response::{Redirect, Response};
use axum::routing::{get, post};
use sekisho_domain::zone::DisplayZone;

pub use client::Console;
pub use context::Ctx;
pub use i18n::{Lang, T};

use handlers::{
    admin, audit, auth, lines, mfa, notifications, quarantine, recordings, reports, requests,
    sessions,
};

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// What `sekisho serve` answers on `[api] listen`: the API (`sekisho_approval_api::api::router`)
/// and, beside it, the console, which calls that router in-process. The console is given the
/// router, never the API's state: it cannot reach the database.
pub fn app(api: axum::Router, zone: DisplayZone) -> axum::Router {
    app_with_report_font(api, zone, None)
}

/// [`app`] with `[report] font` (the font embedded in PDF reports; `None`: a Japanese font
/// found among Debian's usual places).
pub fn app_with_report_font(
    api: axum::Router,
    zone: DisplayZone,
    report_font: Option<std::path::PathBuf>,
) -> axum::Router {
    let console = router(zone, api.clone(), report_font);
    sekisho_approval_api::api::with_security_headers(api.merge(console))
}

/// The console routes alone, calling `api`.
pub fn router(
    zone: DisplayZone,
    api: axum::Router,
    report_font: Option<std::path::PathBuf>,
) -> axum::Router {
    axum::Router::new()
        .route("/", get(|| async { Redirect::to("/console/approvals") }))
        .route(
            "/console",
            get(|| async { Redirect::to("/console/approvals") }),
        )
        .route("/console/static/app.css", get(assets::stylesheet))
        .route("/console/login", get(auth::login_page).post(auth::login))
        .route("/console/logout", post(auth::logout))
        .route("/console/lang/{code}", get(auth::switch_language))
        .route("/console/approvals", get(requests::approvals))
        .route(
            "/console/requests/new",
            get(requests::new_request_page).post(requests::file_request),
        )
        .route("/console/requests/{id}/{action}", post(requests::decide))
        .route("/console/sessions", get(sessions::sessions))
        .route("/console/recordings", get(recordings::recordings))
        .route("/console/recordings/search", get(recordings::search))
        .route("/console/recordings/{id}", get(recordings::recording))
        .route("/console/recordings/{id}/text", get(recordings::transcript))
        .route(
            "/console/recordings/{id}/screen.png",
            get(recordings::screen_png),
        )
        .route(
            "/console/recordings/{id}/files/{name}",
            get(recordings::download),
        )
        .route(
            "/console/recordings/{id}/pcap",
            get(recordings::export_pcap),
        )
        .route(
            "/console/recordings/{id}/bundle",
            get(recordings::export_bundle),
        )
        .route("/console/sessions/{id}/review", post(recordings::sign_off))
        .route("/console/admin", get(admin::admin))
        .route("/console/admin/vendors", post(admin::create_vendor))
        .route("/console/admin/engineers", post(admin::create_engineer))
        .route("/console/admin/targets", post(admin::create_target))
        .route("/console/admin/assignments", post(admin::create_assignment))
        .route(
            "/console/admin/assignments/{id}/remove",
            post(admin::remove_assignment),
        )
        .route(
            "/console/admin/users/{id}/status",
            post(admin::set_user_status),
        )
        .route(
            "/console/admin/users/{id}/enrollment-code",
            post(admin::enrollment_code),
        )
        .route("/console/mfa", get(mfa::start))
        .route("/console/mfa/enroll", post(mfa::enroll))
        .route("/console/mfa/confirm", post(mfa::confirm))
        .route("/console/quarantine", get(quarantine::quarantine))
        .route("/console/notifications", get(notifications::notifications))
        .route("/console/lines", get(lines::lines).post(lines::create_line))
        .route("/console/reviews", get(recordings::review_queue))
        .route("/console/reports/monthly", get(reports::monthly))
        .route("/console/lines/{id}/review", post(lines::review_line))
        .route("/console/quarantine/{id}/content", get(quarantine::content))
        .route("/console/quarantine/{id}/delete", post(quarantine::delete))
        .route("/console/audit", get(audit::audit))
        .route("/console/audit/export", get(audit::audit_export))
        .route(
            "/console/sessions/{id}/terminate",
            get(sessions::confirm_terminate).post(sessions::terminate),
        )
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(Console::new(api, zone, report_font))
}

async fn secure_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: with the latter browsers send `Origin: null` on
    // our own form posts, which the origin check must refuse.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}
