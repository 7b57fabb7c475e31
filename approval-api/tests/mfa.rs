//! The second factor (issue #17) through the real router and a real database (SQLite and
//! PostgreSQL): enrolment, logins with a code, replay, recovery codes, lockout, an admin's
//! reset, and roles that must use one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use sekisho_approval_api::api::{ApiState, router};
use sekisho_domain::policy::Policy;
use sekisho_domain::user::Role;
use sekisho_testkit::for_each_db;
use serde_json::{Value, json};
use tower::ServiceExt;

const PW: &str = "a long enough password";

async fn call(
    state: &ApiState,
    method: Method,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(path);
    let addr: std::net::SocketAddr = "192.0.2.9:40000".parse().unwrap();
    req = req.extension(axum::extract::ConnectInfo(addr));
    if let Some(t) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = match body {
        Some(b) => req
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(serde_json::to_vec(&b).unwrap()))
            .unwrap(),
        None => req.body(Body::empty()).unwrap(),
    };
    let resp = router(state.clone()).oneshot(req).await.unwrap();
    let status = resp.status();
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let value = if bytes.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&bytes).unwrap()
    };
    (status, value)
}

async fn login(state: &ApiState, name: &str, otp: Option<&str>) -> (StatusCode, Value) {
    let mut body = json!({"username": name, "password": PW});
    if let Some(o) = otp {
        body["otp"] = json!(o);
    }
    call(state, Method::POST, "/api/v1/auth/login", None, Some(body)).await
}

fn now() -> u64 {
    u64::try_from(jiff::Timestamp::now().as_second()).unwrap()
}

/// The code of `secret` `steps` periods from now.
fn code(secret: &str, steps: i64) -> String {
    let t = now().saturating_add_signed(steps * 30);
    sekisho_store::mfa::code_at(secret, t).unwrap()
}

async fn enrol(state: &ApiState, name: &str) -> (String, Vec<String>) {
    let creds = json!({"username": name, "password": PW});
    let (status, body) = call(
        state,
        Method::POST,
        "/api/v1/auth/mfa/enroll",
        None,
        Some(creds.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let secret = body["secret"].as_str().unwrap().to_owned();
    assert!(
        body["otpauth_uri"]
            .as_str()
            .unwrap()
            .contains(&format!("secret={secret}")),
        "{body}"
    );
    assert!(
        body["qr_svg"].as_str().unwrap().starts_with("<svg"),
        "{body}"
    );
    // A wrong first code does not turn it on.
    let mut confirm = creds.clone();
    confirm["code"] = json!("000000");
    let (status, _) = call(
        state,
        Method::POST,
        "/api/v1/auth/mfa/confirm",
        None,
        Some(confirm.clone()),
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    confirm["code"] = json!(code(&secret, -1));
    let (status, body) = call(
        state,
        Method::POST,
        "/api/v1/auth/mfa/confirm",
        None,
        Some(confirm),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let recovery: Vec<String> = body["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(recovery.len(), 10);
    (secret, recovery)
}

#[tokio::test]
async fn a_second_factor_is_enrolled_then_needed_used_once_and_reset_by_an_admin() {
    for_each_db(|db| async move {
        let state = sekisho_testkit::api::state(db.store.clone(), Policy::default());
        sekisho_testkit::api::create_staff(&state.store, "admin", Role::Admin, PW).await;
        sekisho_testkit::api::create_staff(&state.store, "hana", Role::Approver, PW).await;
        let (status, body) = login(&state, "admin", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let admin = body["token"].as_str().unwrap().to_owned();

        let (secret, recovery) = enrol(&state, "hana").await;
        // Enrolling again while it is on: refused (an admin resets it first).
        let (status, body) = call(
            &state,
            Method::POST,
            "/api/v1/auth/mfa/enroll",
            None,
            Some(json!({"username": "hana", "password": PW})),
        )
        .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");

        // The password alone is not enough any more.
        let (status, body) = login(&state, "hana", None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "mfa_required", "{body}");
        // The current code works once; the same code again is refused as replayed, and so
        // is the code of the step before (already passed by the confirmation's step).
        let current = code(&secret, 0);
        let (status, body) = login(&state, "hana", Some(&current)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = login(&state, "hana", Some(&current)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("one-time code already used"),
            "{body}"
        );
        let (status, _) = login(&state, "hana", Some("123456")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // A recovery code works once, whatever its case.
        let (status, body) = login(&state, "hana", Some(&recovery[0].to_uppercase())).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, _) = login(&state, "hana", Some(&recovery[0])).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);

        // Wrong codes count like wrong passwords: after 3 in a row (the test state's limit;
        // the used recovery code above was one) the address must wait, even with a good code.
        for wrong in ["999999", "888888"] {
            let (status, _) = login(&state, "hana", Some(wrong)).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
        }
        let (status, _) = login(&state, "hana", Some(&code(&secret, 1))).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);

        // An admin resets it (audited); hana logs in with her password again.
        let (_, users) = call(&state, Method::GET, "/api/v1/users", Some(&admin), None).await;
        let hana = users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == "hana")
            .unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/api/v1/users/{hana}/mfa");
        let (status, _) = call(&state, Method::DELETE, &path, Some(&admin), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let kinds: Vec<String> = state
            .store
            .recent_audit_events(200)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.entry.kind)
            .collect();
        for kind in [
            "mfa_enrollment_started",
            "mfa_enabled",
            "mfa_recovery_code_used",
            "mfa_reset",
        ] {
            assert!(
                kinds.iter().any(|k| k == kind),
                "{kind} not audited: {kinds:?}"
            );
        }
        assert!(
            state
                .store
                .verify_audit_chain(|_| {})
                .await
                .unwrap()
                .is_intact()
        );
    })
    .await;
}

#[tokio::test]
async fn a_role_that_must_use_a_second_factor_gets_no_token_until_it_has_one() {
    for_each_db(|db| async move {
        let mut state = sekisho_testkit::api::state(db.store.clone(), Policy::default());
        let mut settings = sekisho_testkit::api::settings(Policy::default());
        settings.mfa_required = vec![Role::Approver];
        state.settings = std::sync::Arc::new(settings);
        sekisho_testkit::api::create_staff(&state.store, "hana", Role::Approver, PW).await;
        sekisho_testkit::api::create_staff(&state.store, "ken", Role::Auditor, PW).await;
        let (status, body) = login(&state, "hana", None).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "mfa_enrollment_required", "{body}");
        // Another role is not concerned.
        let (status, body) = login(&state, "ken", None).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // A wrong password does not reveal that an enrolment is needed.
        let (status, body) = call(
            &state,
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "hana", "password": "not her password"})),
        )
        .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"]["code"], "unauthorized", "{body}");
        let (secret, _) = enrol(&state, "hana").await;
        let (status, body) = login(&state, "hana", Some(&code(&secret, 0))).await;
        assert_eq!(status, StatusCode::OK, "{body}");
    })
    .await;
}
