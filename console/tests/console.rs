//! The web console's security rules through the real router and a real SQLite database:
//! login cookie attributes, CSRF and origin checks, the security headers, and that the API's
//! access table applies to what the console does (the browser flow is `tests/console_browser.rs`
//! at the workspace root).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use sekisho_approval_api::api::ApiState;
use sekisho_domain::policy::Policy;
use sekisho_domain::user::Role;
use tower::ServiceExt;

const PW: &str = "a long enough password";

struct Reply {
    status: StatusCode,
    location: String,
    cookie: String,
    csp: String,
    body: String,
}

async fn send(
    state: &ApiState,
    method: Method,
    path: &str,
    cookie: Option<&str>,
    origin: Option<&str>,
    form: Option<&str>,
) -> Reply {
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "sekisho.test");
    if let Some(c) = cookie {
        req = req.header(header::COOKIE, c);
    }
    if let Some(o) = origin {
        req = req.header(header::ORIGIN, o);
    }
    let req = match form {
        Some(f) => req
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(Body::from(f.to_owned()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let app = sekisho_console::app(
        sekisho_approval_api::api::router(state.clone()),
        state.settings.zone.clone(),
    );
    let resp = app.oneshot(req).await.unwrap();
    let h = |name| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    };
    let (status, location, cookie, csp) = (
        resp.status(),
        h(header::LOCATION),
        h(header::SET_COOKIE),
        h(header::CONTENT_SECURITY_POLICY),
    );
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    Reply {
        status,
        location,
        cookie,
        csp,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

async fn staff(state: &ApiState, username: &str, role: Role) {
    sekisho_testkit::api::create_staff(&state.store, username, role, PW).await;
}

/// Logs in through the console form; returns the cookie and the page's CSRF token.
async fn login(state: &ApiState, username: &str) -> (String, String) {
    let form = format!("username={username}&password=a+long+enough+password");
    let r = send(
        state,
        Method::POST,
        "/console/login",
        None,
        Some("http://sekisho.test"),
        Some(&form),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER, "{}", r.body);
    assert!(
        r.cookie.contains("HttpOnly") && r.cookie.contains("SameSite=Strict"),
        "{}",
        r.cookie
    );
    assert!(!r.cookie.contains("Secure"), "plain HTTP: {}", r.cookie);
    let cookie = r.cookie.split(';').next().unwrap().to_owned();
    let page = send(
        state,
        Method::GET,
        "/console/approvals",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    let csrf = page
        .body
        .split("name=\"csrf\" value=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap()
        .to_owned();
    (cookie, csrf)
}

#[tokio::test]
async fn console_forms_need_the_session_csrf_token_and_the_api_access_table_applies() {
    let db = sekisho_testkit::sqlite().await;
    let state = sekisho_testkit::api::state(db.store.clone(), Policy::default());
    staff(&state, "hana", Role::Approver).await;
    staff(&state, "audrey", Role::Auditor).await;

    // Not logged in: to the login page; every page has the strict CSP.
    let r = send(&state, Method::GET, "/console/sessions", None, None, None).await;
    assert_eq!(
        (r.status, r.location.as_str()),
        (StatusCode::SEE_OTHER, "/console/login")
    );
    let r = send(&state, Method::GET, "/console/login", None, None, None).await;
    assert!(
        r.csp.contains("default-src 'none'") && r.csp.contains("form-action 'self'"),
        "{}",
        r.csp
    );
    assert!(!r.body.contains("<script"), "no script at all");

    // A wrong password shows the API's (generic) message; a cross-site login post is refused.
    let bad = send(
        &state,
        Method::POST,
        "/console/login",
        None,
        None,
        Some("username=hana&password=nope"),
    )
    .await;
    assert_eq!(bad.status, StatusCode::UNAUTHORIZED);
    assert!(
        bad.body.contains("wrong username or password"),
        "{}",
        bad.body
    );
    let cross = "username=hana&password=a+long+enough+password";
    let r = send(
        &state,
        Method::POST,
        "/console/login",
        None,
        Some("https://evil.example"),
        Some(cross),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN);

    let (cookie, csrf) = login(&state, "hana").await;
    let (auditor, auditor_csrf) = login(&state, "audrey").await;
    assert_ne!(csrf, auditor_csrf, "the CSRF token is per session");

    // Without the token, with another session's token, or from another origin: refused.
    let path = "/console/requests/00000000-0000-0000-0000-000000000000/approve";
    for (form, origin) in [
        ("comment=x".to_owned(), None),
        (format!("csrf={auditor_csrf}"), None),
        (format!("csrf={csrf}"), Some("https://evil.example")),
    ] {
        let r = send(
            &state,
            Method::POST,
            path,
            Some(&cookie),
            origin,
            Some(&form),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{form} {origin:?}");
    }
    // With it, the API decides: an unknown request is reported back on the page.
    let r = send(
        &state,
        Method::POST,
        path,
        Some(&cookie),
        None,
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(
        r.location.starts_with("/console/approvals?error="),
        "{}",
        r.location
    );
    assert!(r.location.contains("not%20found"), "{}", r.location);
    // An auditor may not decide: the API's access table answers, not the console.
    let r = send(
        &state,
        Method::POST,
        path,
        Some(&auditor),
        None,
        Some(&format!("csrf={auditor_csrf}")),
    )
    .await;
    assert!(
        r.location.contains("auditor%20accounts%20may%20not"),
        "{}",
        r.location
    );
    // Nor does an auditor get the decision buttons.
    let page = send(
        &state,
        Method::GET,
        "/console/approvals",
        Some(&auditor),
        None,
        None,
    )
    .await;
    assert!(!page.body.contains("/approve\""), "{}", page.body);

    // Log out clears the cookie; the old page's form no longer works without a session.
    let r = send(
        &state,
        Method::POST,
        "/console/logout",
        Some(&cookie),
        None,
        Some(&format!("csrf={csrf}")),
    )
    .await;
    assert_eq!(r.status, StatusCode::SEE_OTHER);
    assert!(r.cookie.contains("Max-Age=0"), "{}", r.cookie);
}
