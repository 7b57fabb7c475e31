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

/// The approvals page as `cookie`'s browser gets it (200 asserted).
async fn approvals(state: &ApiState, cookie: &str) -> Reply {
    let page = send(
        state,
        Method::GET,
        "/console/approvals",
        Some(cookie),
        None,
        None,
    )
    .await;
    assert_eq!(page.status, StatusCode::OK);
    page
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
    let page = approvals(state, &cookie).await;
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

/// Issue #18: the inventory of external lines, kept from the console by an admin, reviewed by
/// an approver, with what is due for review shown first and in Japanese.
#[tokio::test]
async fn lines_are_added_and_reviewed_from_the_console_and_flagged_until_reviewed() {
    let db = sekisho_testkit::sqlite().await;
    let state = sekisho_testkit::api::state(db.store.clone(), Policy::default());
    staff(&state, "ayumi", Role::Admin).await;
    staff(&state, "hana", Role::Approver).await;
    let (admin, csrf) = login(&state, "ayumi").await;
    let form = format!(
        "csrf={csrf}&name=CT+modem&route=exception&vendor_id=&owner=Radiology&location=CT+room\
         &device=NTT+modem&firmware=2.0&firmware_updated=2026-10-01&measures=&notes="
    );
    let r = send(
        &state,
        Method::POST,
        "/console/lines",
        Some(&admin),
        None,
        Some(&form),
    )
    .await;
    assert_eq!(
        (r.status, r.location.as_str()),
        (StatusCode::SEE_OTHER, "/console/lines?done=ok")
    );
    // A day that is not a date is named, not sent.
    let bad = form
        .replace("2026-10-01", "2026-13-01")
        .replace("CT+modem", "other");
    let r = send(
        &state,
        Method::POST,
        "/console/lines",
        Some(&admin),
        None,
        Some(&bad),
    )
    .await;
    assert!(r.location.contains("is%20not%20a%20date"), "{}", r.location);

    let ja = format!("{admin}; sekisho_lang=ja");
    let page = send(&state, Method::GET, "/console/lines", Some(&ja), None, None).await;
    assert_eq!(page.status, StatusCode::OK);
    for wanted in [
        "外部接続回線",
        "確認が必要な回線: 1",
        "未確認",
        "セキュリティ対策の提出なし",
        "例外（関所を経由しない）",
    ] {
        assert!(page.body.contains(wanted), "{wanted} missing");
    }
    let line = state.store.lines().await.unwrap().remove(0);
    assert_eq!(
        line.firmware_updated_at.unwrap().to_string(),
        "2026-09-30T15:00:00Z"
    );

    // An approver records the review: the line is no longer due.
    let (approver, approver_csrf) = login(&state, "hana").await;
    let r = send(
        &state,
        Method::POST,
        &format!("/console/lines/{}/review", line.id),
        Some(&approver),
        None,
        Some(&format!("csrf={approver_csrf}&note=checked+on+site")),
    )
    .await;
    assert_eq!(r.location, "/console/lines?done=ok");
    let page = send(
        &state,
        Method::GET,
        "/console/lines",
        Some(&approver),
        None,
        None,
    )
    .await;
    assert!(!page.body.contains("Lines due for review"), "{}", page.body);
    assert!(page.body.contains("no security measures submitted"));
    // The approver does not get the form to add lines.
    assert!(!page.body.contains("action=\"/console/lines\""));
}

#[tokio::test]
async fn a_request_awaiting_approval_stays_on_the_page_behind_a_thousand_newer_decided_ones() {
    use jiff::{SignedDuration, Timestamp};
    use sekisho_domain::request::Window;
    use sekisho_domain::target::AccessLevel;
    use sekisho_testkit::api::{file_request, ssh_target, vendor_engineer};

    let db = sekisho_testkit::sqlite().await;
    let state = sekisho_testkit::api::state(db.store.clone(), Policy::default());
    staff(&state, "hana", Role::Approver).await;
    let s = &state.store;
    let (_, alice) = vendor_engineer(s, "Acme Medical", "alice").await;
    let pacs = ssh_target(s, "pacs", None, AccessLevel::Reference).await;
    let now = Timestamp::now();
    let open = Window {
        start: now,
        end: now + SignedDuration::from_hours(2),
    };
    let waiting = file_request(s, &alice, &pacs, AccessLevel::Reference, open, true).await;
    // More newer requests than the page asks the API for at once, all decided (expired).
    let ended = Window {
        start: now - SignedDuration::from_hours(2),
        end: now - SignedDuration::from_hours(1),
    };
    for _ in 0..1001 {
        file_request(s, &alice, &pacs, AccessLevel::Reference, ended, false).await;
    }
    let expired = s
        .expire_requests(&state.settings.policy, &state.settings.zone)
        .await
        .unwrap();
    assert_eq!(expired.len(), 1001);

    let (cookie, _) = login(&state, "hana").await;
    let page = approvals(&state, &cookie).await;
    let pending = page.body.split("id=\"pending\"").nth(1).unwrap();
    let pending = pending.split("</section>").next().unwrap();
    assert!(pending.contains("(1)"), "{pending}");
    assert!(
        pending.contains(&format!("aria-label=\"R-{}\"", waiting.number)),
        "{pending}"
    );
}

#[tokio::test]
async fn the_audit_page_filters_by_site() {
    use sekisho_domain::target::AccessLevel;
    use sekisho_testkit::api::ssh_target;

    let db = sekisho_testkit::sqlite().await;
    let state = sekisho_testkit::api::state(db.store.clone(), Policy::default());
    staff(&state, "ayumi", Role::Auditor).await;
    ssh_target(
        &state.store,
        "east-pacs",
        Some("east"),
        AccessLevel::Reference,
    )
    .await;
    ssh_target(
        &state.store,
        "west-pacs",
        Some("west"),
        AccessLevel::Reference,
    )
    .await;
    let (cookie, _) = login(&state, "ayumi").await;
    let rows = |body: &str| body.matches("<tr class=\"event").count();
    let all = send(
        &state,
        Method::GET,
        "/console/audit",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(all.status, StatusCode::OK);
    let east_only = send(
        &state,
        Method::GET,
        "/console/audit?site=east",
        Some(&cookie),
        None,
        None,
    )
    .await;
    assert_eq!(east_only.status, StatusCode::OK);
    // Only the creation of east's target is about a target of site east.
    assert_eq!(rows(&east_only.body), 1, "{}", east_only.body);
    assert!(rows(&all.body) > 2, "{}", all.body);
    assert!(east_only.body.contains("name=\"site\" value=\"east\""));
    // The exports carry the filter.
    assert!(
        east_only
            .body
            .contains("/console/audit/export?site=east&amp;format=csv")
    );
}
