//! The HTTP API through the real router and a real database (SQLite and PostgreSQL).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::{SignedDuration, Timestamp};
use sekisho_approval_api::api::{ApiState, router};
use sekisho_domain::policy::Policy;
use sekisho_domain::user::Role;
use sekisho_store::events::GatewayEvent;
use sekisho_testkit::{TestDb, for_each_db};
use serde_json::{Value, json};
use tower::ServiceExt;

/// method, path, optional (content type, body), expected status, expected message part.
type BadInput = (
    Method,
    &'static str,
    Option<(&'static str, Vec<u8>)>,
    StatusCode,
    &'static str,
);

struct Api {
    state: ApiState,
}

const PW: &str = "a long enough password";

impl Api {
    fn new(db: &TestDb, policy: Policy) -> Self {
        Self {
            state: sekisho_testkit::api::state(db.store.clone(), policy),
        }
    }

    async fn raw(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, Value) {
        let (status, _, value) = self.raw_from(None, method, path, token, body).await;
        (status, value)
    }

    /// [`Api::raw`] as if from `source` (the server's connection info), with the headers.
    async fn raw_from(
        &self,
        source: Option<&str>,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<(&str, Vec<u8>)>,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(ip) = source {
            let addr: std::net::SocketAddr = format!("{ip}:40000").parse().unwrap();
            req = req.extension(axum::extract::ConnectInfo(addr));
        }
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some((ct, bytes)) => req
                .header(header::CONTENT_TYPE, ct)
                .body(Body::from(bytes))
                .unwrap(),
            None => req.body(Body::empty()).unwrap(),
        };
        let resp = router(self.state.clone()).oneshot(req).await.unwrap();
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()))
        };
        (status, headers, value)
    }

    async fn login_from(
        &self,
        source: &str,
        username: &str,
        password: &str,
    ) -> (StatusCode, axum::http::HeaderMap, Value) {
        let body = json!({"username": username, "password": password});
        self.raw_from(
            Some(source),
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(("application/json", serde_json::to_vec(&body).unwrap())),
        )
        .await
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let body = body.map(|b| ("application/json", serde_json::to_vec(&b).unwrap()));
        self.raw(method, path, token, body).await
    }

    async fn get(&self, path: &str, token: &str) -> (StatusCode, Value) {
        self.call(Method::GET, path, Some(token), None).await
    }

    async fn post(&self, path: &str, token: &str, body: Value) -> (StatusCode, Value) {
        self.call(Method::POST, path, Some(token), Some(body)).await
    }

    async fn login(&self, username: &str, password: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": username, "password": password})),
        )
        .await
    }

    async fn token(&self, username: &str) -> String {
        let (status, body) = self.login(username, PW).await;
        assert_eq!(status, StatusCode::OK, "login {username}: {body}");
        body["token"].as_str().unwrap().to_owned()
    }

    async fn staff(&self, username: &str, role: Role) -> String {
        sekisho_testkit::api::create_staff(&self.state.store, username, role, PW).await;
        self.token(username).await
    }

    /// A vendor with a complete attestation (expiring as given) and one engineer.
    async fn vendor(
        &self,
        admin: &str,
        name: &str,
        engineer: &str,
        expires: Timestamp,
    ) -> (String, String) {
        let answers: serde_json::Map<String, Value> = self
            .state
            .settings
            .policy
            .checklist
            .iter()
            .map(|i| (i.key.clone(), json!(true)))
            .collect();
        let (status, v) = self
            .post(
                "/api/v1/vendors",
                admin,
                json!({"name": name, "contact": {"name": "Sato", "email": "sato@example.jp"},
                       "attestation": {"answers": answers, "attested_by": "Sato (CISO)",
                                       "attested_at": "2026-01-01T00:00:00Z", "expires_at": expires.to_string()}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{v}");
        let vid = v["id"].as_str().unwrap().to_owned();
        let (status, u) = self
            .post(
                &format!("/api/v1/vendors/{vid}/users"),
                admin,
                json!({"username": engineer, "password": PW}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{u}");
        (vid, self.token(engineer).await)
    }

    /// A target `name` with both levels, assigned to each of `vendors` (ids).
    async fn target(&self, admin: &str, name: &str, vendors: &[&str]) -> Value {
        let (status, t) = self
            .post(
                "/api/v1/targets",
                admin,
                json!({"name": name, "host": "127.0.0.1", "port": 22,
                       "levels": {"reference": {"account": "maint-ro", "credential": {"password": "ro-secret-pw"}},
                                  "change": {"account": "maint-rw", "credential": {"password": "rw-secret-pw"}, "file_upload": true, "allowed_ports": [443]}}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        for v in vendors {
            self.assign(admin, v, t["id"].as_str().unwrap(), json!(null))
                .await;
        }
        t
    }

    /// Assigns vendor `vendor` to target `target` (ids) under contract MC-1 ending at `ends_at`.
    async fn assign(&self, admin: &str, vendor: &str, target: &str, ends_at: Value) -> Value {
        let (status, a) = self
            .post(
                "/api/v1/assignments",
                admin,
                json!({"vendor_id": vendor, "target_id": target, "contract": "MC-1",
                       "sla": "next business day", "boundary": "up to the OS", "ends_at": ends_at}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{a}");
        a
    }

    async fn file(&self, vendor: &str, target: &str, level: &str) -> Value {
        let (status, r) = self
            .post(
                "/api/v1/requests",
                vendor,
                request_body(target, level, SignedDuration::from_hours(2), false),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{r}");
        r
    }

    async fn audit_kinds(&self, token: &str) -> Vec<String> {
        let (status, page) = self.get("/api/v1/audit?limit=1000", token).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let mut kinds: Vec<String> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["kind"].as_str().unwrap(),
                    e["outcome"].as_str().unwrap()
                )
            })
            .collect();
        kinds.reverse();
        kinds
    }
}

/// A work request body for `target` at `level`, its window starting now and lasting `lasting`.
fn request_body(target: &str, level: &str, lasting: SignedDuration, emergency: bool) -> Value {
    let now = Timestamp::now();
    json!({"target": target, "level": level, "emergency": emergency,
           "window_start": now.to_string(), "window_end": (now + lasting).to_string(),
           "reason": "replace failed disk", "plan": "1. check RAID\n2. swap disk"})
}

fn far_future() -> Timestamp {
    Timestamp::now() + SignedDuration::from_hours(24 * 300)
}

#[tokio::test]
async fn a_change_request_from_registration_to_approval() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        let approver = api.staff("hana", Role::Approver).await;
        let auditor = api.staff("kenji", Role::Auditor).await;
        let (vendor, alice) = api
            .vendor(&admin, "Acme Medical", "alice", far_future())
            .await;
        let target = api.target(&admin, "pacs", &[&vendor]).await;
        // Credentials are write-only.
        assert!(!target.to_string().contains("secret-pw"), "{target}");
        assert_eq!(target["change"]["account"], "maint-rw");

        let r = api.file(&alice, "pacs", "change").await;
        assert_eq!(r["status"], "submitted");
        assert_eq!(r["reference"], "R-1");
        let id = r["id"].as_str().unwrap();

        // The vendor engineer cannot approve, not even by calling the route.
        let (status, body) = api
            .post(&format!("/api/v1/requests/{id}/approve"), &alice, json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert_eq!(body["error"]["code"], "forbidden");

        let (status, body) = api
            .post(
                &format!("/api/v1/requests/{id}/approve"),
                &approver,
                json!({"comment": "ok for tonight"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "approved");
        assert_eq!(body["approval"]["state"], "approved");
        assert_eq!(body["approvals"][0]["comment"], "ok for tonight");

        // Approving twice is a conflict naming the request.
        let (status, body) = api
            .post(
                &format!("/api/v1/requests/{id}/approve"),
                &approver,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(
            body["error"]["message"],
            "you have already approved request R-1"
        );

        let kinds = api.audit_kinds(&auditor).await;
        let expected = [
            "user_created:success",
            "login_succeeded:success",
            "user_created:success",
            "login_succeeded:success",
            "user_created:success",
            "login_succeeded:success",
            "vendor_created:success",
            "user_created:success",
            "login_succeeded:success",
            "target_created:success",
            "assignment_created:success",
            "request_filed:success",
            "request_decided:success",
            "request_decided:denied",
        ];
        assert_eq!(kinds, expected);
        let (status, v) = api.get("/api/v1/audit/verify", &auditor).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(v["intact"], true, "{v}");
        assert_eq!(v["rows"], 14);
        // The console's view: the last walk's report while it is young enough, not a walk of
        // the whole log on every page view; without an age, a walk now that sees new rows.
        let (status, cached) = api
            .get("/api/v1/audit/verify?max_age_seconds=600", &auditor)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(cached, v, "the last report, as it was");
        api.staff("newcomer", Role::Auditor).await;
        let (_, cached) = api
            .get("/api/v1/audit/verify?max_age_seconds=600", &auditor)
            .await;
        assert_eq!(cached["rows"], 14, "{cached}");
        let (_, walked) = api.get("/api/v1/audit/verify", &auditor).await;
        assert!(walked["rows"].as_i64().unwrap() > 14, "{walked}");
        let at = |v: &serde_json::Value| -> Timestamp {
            v["verified_at"].as_str().unwrap().parse().unwrap()
        };
        assert!(at(&walked) > at(&v), "{walked}");
        let (_, young) = api
            .get("/api/v1/audit/verify?max_age_seconds=0", &auditor)
            .await;
        assert!(at(&young) > at(&walked), "{young}");
        let (status, bad) = api
            .get("/api/v1/audit/verify?max_age_seconds=-1", &auditor)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
        assert!(bad["error"]["message"].is_string(), "{bad}");
        let (status, bad) = api
            .get("/api/v1/audit/verify?max_age_seconds=86401", &auditor)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}");
    })
    .await;
}

#[tokio::test]
async fn the_requester_cannot_approve_even_as_an_approver_and_change_needs_n_approvers() {
    for_each_db(|db| async move {
        let policy = Policy {
            approvals_for_change: 2,
            ..Policy::default()
        };
        let api = Api::new(&db, policy);
        let admin = api.staff("admin", Role::Admin).await;
        let a1 = api.staff("a1", Role::Approver).await;
        let (v, alice) = api.vendor(&admin, "Acme", "alice", far_future()).await;
        api.target(&admin, "pacs", &[&v]).await;
        let r = api.file(&alice, "pacs", "change").await;
        let id = r["id"].as_str().unwrap().to_owned();
        let (_, body) = api
            .post(&format!("/api/v1/requests/{id}/approve"), &a1, json!({}))
            .await;
        assert_eq!(body["status"], "submitted");
        assert_eq!(
            body["approval"],
            json!({"state": "pending", "have": 1, "need": 2})
        );
        // The admin created alice's account with its password: separation of duties keeps
        // them from approving her work (for [policy] credential_separation_days).
        let (status, body) = api
            .post(&format!("/api/v1/requests/{id}/approve"), &admin, json!({}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("you set the initial password of this engineer on "),
            "{body}"
        );
        let a2 = api.staff("a2", Role::Approver).await;
        let (_, body) = api
            .post(&format!("/api/v1/requests/{id}/approve"), &a2, json!({}))
            .await;
        assert_eq!(body["status"], "approved", "{body}");
    })
    .await;
}

#[tokio::test]
async fn an_expired_attestation_blocks_approval_with_a_readable_reason() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        let approver = api.staff("hana", Role::Approver).await;
        let soon = Timestamp::now() + SignedDuration::from_secs(2);
        let (vendor, alice) = api.vendor(&admin, "Acme", "alice", soon).await;
        api.target(&admin, "pacs", &[&vendor]).await;
        let r = api.file(&alice, "pacs", "reference").await;
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let (status, body) = api
            .post(
                &format!("/api/v1/requests/{}/approve", r["id"].as_str().unwrap()),
                &approver,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let date = sekisho_domain::zone::DisplayZone::named("Asia/Tokyo")
            .unwrap()
            .date(soon);
        assert_eq!(body["error"]["code"], "vendor_not_qualified");
        assert_eq!(
            body["error"]["message"],
            format!("vendor Acme's security attestation expired on {date}")
        );
        let (_, v) = api.get(&format!("/api/v1/vendors/{vendor}"), &admin).await;
        assert_eq!(v["qualified"], false);
        assert_eq!(v["attestation_problem"], format!("expired on {date}"));
    })
    .await;
}

#[tokio::test]
async fn vendors_see_only_their_own_vendors_requests() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        let (a, alice) = api.vendor(&admin, "Acme", "alice", far_future()).await;
        let (other_vendor, bob) = api.vendor(&admin, "Globex", "bob", far_future()).await;
        api.target(&admin, "pacs", &[&a, &other_vendor]).await;
        let mine = api.file(&alice, "pacs", "reference").await;
        let theirs = api.file(&bob, "pacs", "reference").await;
        let (_, list) = api.get("/api/v1/requests", &alice).await;
        let ids: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap())
            .collect();
        assert_eq!(ids, [mine["id"].as_str().unwrap()]);
        let (status, _) = api
            .get(
                &format!("/api/v1/requests/{}", theirs["id"].as_str().unwrap()),
                &alice,
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = api
            .get(&format!("/api/v1/vendors/{other_vendor}"), &alice)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = api
            .post(
                &format!("/api/v1/requests/{}/cancel", theirs["id"].as_str().unwrap()),
                &alice,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        // Their audit view holds only their vendor's events.
        let (_, page) = api.get("/api/v1/audit", &alice).await;
        let own = _a_id(&api, &admin, "Acme").await;
        assert!(
            page["events"]
                .as_array()
                .unwrap()
                .iter()
                .all(|e| e["vendor_id"] == own),
            "{page}"
        );
        // Staff lists are closed to vendors.
        let (status, _) = api.get("/api/v1/vendors", &alice).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    })
    .await;
}

async fn _a_id(api: &Api, admin: &str, name: &str) -> Value {
    let (_, list) = api.get("/api/v1/vendors", admin).await;
    list.as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == name)
        .unwrap()["id"]
        .clone()
}

fn b64(v: &Value) -> String {
    URL_SAFE_NO_PAD.encode(serde_json::to_vec(v).unwrap())
}

#[tokio::test]
async fn forged_tokens_are_refused_with_401() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        let (status, _) = api.get("/api/v1/me", &admin).await;
        assert_eq!(status, StatusCode::OK);
        let parts: Vec<&str> = admin.split('.').collect();
        let claims: Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();

        let alg_none = format!(
            "{}.{}.",
            b64(&json!({"alg": "none", "typ": "JWT"})),
            parts[1]
        );
        // HS256 "signed" with the public key: the classic algorithm-confusion attack.
        let hs_header = b64(&json!({"alg": "HS256", "typ": "JWT", "kid": "test-key"}));
        let hs = {
            use aws_lc_rs::hmac;
            let key = hmac::Key::new(hmac::HMAC_SHA256, b"test-key");
            let sig = hmac::sign(&key, format!("{hs_header}.{}", parts[1]).as_bytes());
            format!(
                "{hs_header}.{}.{}",
                parts[1],
                URL_SAFE_NO_PAD.encode(sig.as_ref())
            )
        };
        // A valid EdDSA token from a key the gateway does not hold, claiming our kid.
        let foreign = sekisho_testkit::api::token_keys("test-key");
        let foreign_token = foreign
            .issue(&serde_json::from_value(claims.clone()).unwrap())
            .unwrap();
        // Our token with the payload changed (role escalation attempt).
        let mut escalated = claims.clone();
        escalated["role"] = json!("admin");
        escalated["sub"] = json!(uuid::Uuid::new_v4().to_string());
        let bad_sig = format!("{}.{}.{}", parts[0], b64(&escalated), parts[2]);
        // Correctly signed, but expired.
        let mut old = claims.clone();
        old["iat"] = json!(Timestamp::now().as_second() - 7200);
        old["exp"] = json!(Timestamp::now().as_second() - 3600);
        let expired = api
            .state
            .tokens
            .issue(&serde_json::from_value(old).unwrap())
            .unwrap();

        for (name, token, message) in [
            (
                "alg none",
                alg_none.as_str(),
                "token algorithm not accepted",
            ),
            ("hmac", hs.as_str(), "token algorithm not accepted"),
            (
                "foreign key",
                foreign_token.as_str(),
                "token signature is invalid",
            ),
            (
                "bad signature",
                bad_sig.as_str(),
                "token signature is invalid",
            ),
            ("expired", expired.as_str(), "token expired; log in again"),
            ("garbage", "not-a-token", "malformed token"),
        ] {
            let (status, body) = api.get("/api/v1/me", token).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{name}: {body}");
            assert_eq!(body["error"]["message"], message, "{name}");
        }
        let (status, body) = api.call(Method::GET, "/api/v1/me", None, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
    })
    .await;
}

#[tokio::test]
async fn disabling_a_user_cuts_their_access_at_once_and_is_announced() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let mut events = api.state.events.subscribe();
        let admin = api.staff("admin", Role::Admin).await;
        let (_v, alice) = api.vendor(&admin, "Acme", "alice", far_future()).await;
        let (_, me) = api.get("/api/v1/me", &alice).await;
        let id = me["id"].as_str().unwrap().to_owned();
        let (status, body) = api
            .call(
                Method::PATCH,
                &format!("/api/v1/users/{id}"),
                Some(&admin),
                Some(json!({"status": "disabled"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = api.get("/api/v1/me", &alice).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            body["error"]["message"],
            "account alice is disabled or expired"
        );
        assert_eq!(
            events.try_recv().unwrap(),
            GatewayEvent::UserDisabled {
                user: id.parse().unwrap()
            }
        );
    })
    .await;
}

#[tokio::test]
async fn failed_logins_slow_the_address_down_never_lock_the_account_and_are_all_audited() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        api.staff("hana", Role::Approver).await;
        // The test state allows 3 failures in a row per address.
        let attacker = "192.0.2.1";
        for _ in 0..3 {
            let (status, _, body) = api.login_from(attacker, "hana", "wrong password!").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(body["error"]["message"], "wrong username or password");
        }
        // That address must wait now, even with the right password; told how long.
        let (status, headers, body) = api.login_from(attacker, "hana", PW).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
        let retry: u64 = headers[header::RETRY_AFTER]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=2).contains(&retry), "{retry}");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .starts_with("too many failed logins from your address; try again after"),
            "{body}"
        );
        // hana herself, from her own address, is not locked out.
        let (status, _, body) = api.login_from("192.0.2.7", "hana", PW).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        // Names that do not exist are treated exactly alike: no lock reveals an account.
        let other = "192.0.2.2";
        for _ in 0..3 {
            let (status, _, body) = api.login_from(other, "nobody", "wrong password!").await;
            assert_eq!(status, StatusCode::UNAUTHORIZED);
            assert_eq!(body["error"]["message"], "wrong username or password");
        }
        let (status, _, _) = api.login_from(other, "nobody", PW).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        let (_, page) = api.get("/api/v1/audit?kind=login_failed", &admin).await;
        let reasons: Vec<&str> = page["events"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["reason"].as_str().unwrap())
            .collect();
        assert_eq!(
            reasons,
            [
                "too many failed logins from this address",
                "unknown username",
                "unknown username",
                "unknown username",
                "too many failed logins from this address",
                "wrong password",
                "wrong password",
                "wrong password"
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn revocation_is_announced_to_the_gateway() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let mut events = api.state.events.subscribe();
        let admin = api.staff("admin", Role::Admin).await;
        let approver = api.staff("hana", Role::Approver).await;
        let (v, alice) = api.vendor(&admin, "Acme", "alice", far_future()).await;
        api.target(&admin, "pacs", &[&v]).await;
        let r = api.file(&alice, "pacs", "reference").await;
        let id = r["id"].as_str().unwrap();
        api.post(
            &format!("/api/v1/requests/{id}/approve"),
            &approver,
            json!({}),
        )
        .await;
        let (status, body) = api
            .post(
                &format!("/api/v1/requests/{id}/revoke"),
                &approver,
                json!({"comment": "wrong engineer"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "revoked");
        assert_eq!(
            events.try_recv().unwrap(),
            GatewayEvent::RequestEnded {
                request: id.parse().unwrap()
            }
        );
        let (status, body) = api
            .post(
                &format!("/api/v1/requests/{id}/revoke"),
                &approver,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT);
        assert_eq!(body["error"]["message"], "request R-1 is already revoked");
    })
    .await;
}

#[tokio::test]
async fn bad_input_gets_clear_4xx_errors_never_500() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        let cases: Vec<BadInput> = vec![
            (Method::POST, "/api/v1/vendors", Some(("application/json", b"{not json".to_vec())), StatusCode::BAD_REQUEST, "malformed JSON"),
            (Method::POST, "/api/v1/vendors", Some(("application/json", br#"{"name":"x","colour":"red"}"#.to_vec())), StatusCode::BAD_REQUEST, "unknown field `colour`"),
            (Method::POST, "/api/v1/vendors", Some(("text/plain", b"{}".to_vec())), StatusCode::UNSUPPORTED_MEDIA_TYPE, "Content-Type"),
            (Method::POST, "/api/v1/vendors", Some(("application/json", br#"{"name":"  "}"#.to_vec())), StatusCode::UNPROCESSABLE_ENTITY, "name: must not be empty"),
            (Method::POST, "/api/v1/targets", Some(("application/json", br#"{"name":"Bad Name","host":"h","levels":{}}"#.to_vec())), StatusCode::UNPROCESSABLE_ENTITY, "levels:"),
            (Method::GET, "/api/v1/vendors/not-a-uuid", None, StatusCode::NOT_FOUND, "vendor not-a-uuid not found"),
            (Method::GET, "/api/v1/nothing-here", None, StatusCode::NOT_FOUND, "no such route"),
            (Method::GET, "/api/v1/audit?outcome=maybe", None, StatusCode::BAD_REQUEST, "outcome"),
            (Method::GET, "/api/v1/audit?format=xml", None, StatusCode::BAD_REQUEST, "unknown format `xml`"),
            (Method::DELETE, "/api/v1/vendors", None, StatusCode::METHOD_NOT_ALLOWED, ""),
        ];
        for (method, path, body, want, message) in cases {
            let (status, value) = api.raw(method.clone(), path, Some(&admin), body).await;
            assert_eq!(status, want, "{method} {path}: {value}");
            if !message.is_empty() {
                let m = value["error"]["message"].as_str().unwrap_or_default();
                assert!(m.contains(message), "{method} {path}: {value}");
            }
        }
        let (status, value) = api
            .post("/api/v1/requests", &admin, json!({"target": "x", "level": "reference", "window_start": "2026-01-01T00:00:00Z", "window_end": "2026-01-01T01:00:00Z", "reason": "r"}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{value}");
    })
    .await;
}

#[tokio::test]
async fn oversized_bodies_get_413() {
    let db = sekisho_testkit::sqlite().await;
    let api = Api::new(&db, Policy::default());
    let admin = api.staff("admin", Role::Admin).await;
    let app = router(api.state.clone()).layer(axum::extract::DefaultBodyLimit::max(1024));
    let big = json!({"name": "x".repeat(4096)});
    let req = Request::post("/api/v1/vendors")
        .header(header::AUTHORIZATION, format!("Bearer {admin}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(serde_json::to_vec(&big).unwrap()))
        .unwrap();
    let resp = app.oneshot(req).await.unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let bytes = axum::body::to_bytes(resp.into_body(), usize::MAX)
        .await
        .unwrap();
    let v: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(v["error"]["code"], "payload_too_large");
}

#[tokio::test]
async fn audit_pages_with_a_cursor_and_exports_csv_and_jsonl() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        for i in 0..5 {
            api.login(&format!("ghost{i}"), "x").await;
        }
        // 1 user_created + 1 login + 5 failures = 7 events.
        let (_, p1) = api.get("/api/v1/audit?limit=3", &admin).await;
        let seqs = |p: &Value| p["events"].as_array().unwrap().iter().map(|e| e["seq"].as_i64().unwrap()).collect::<Vec<_>>();
        assert_eq!(seqs(&p1), [7, 6, 5]);
        let (_, p2) = api.get(&format!("/api/v1/audit?limit=3&cursor={}", p1["next_cursor"]), &admin).await;
        assert_eq!(seqs(&p2), [4, 3, 2]);
        let (_, p3) = api.get(&format!("/api/v1/audit?limit=3&cursor={}", p2["next_cursor"]), &admin).await;
        assert_eq!(seqs(&p3), [1]);
        assert!(p3["next_cursor"].is_null());

        let (status, csv) = api.get("/api/v1/audit?format=csv&kind=login_failed", &admin).await;
        assert_eq!(status, StatusCode::OK);
        let csv = csv.as_str().unwrap();
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(lines[0], "seq,at,kind,outcome,actor,user_id,vendor_id,target_id,request_id,source_addr,reason,details,hash");
        assert_eq!(lines.len(), 6);
        assert!(lines[1].starts_with("3,") && lines[1].contains(",login_failed,denied,anonymous:ghost0,"), "{}", lines[1]);

        let (_, jsonl) = api.get("/api/v1/audit?format=jsonl", &admin).await;
        let rows: Vec<Value> = jsonl.as_str().unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        // Each export is audited before it starts (issue #18): the CSV one, then this one.
        assert_eq!(rows.len(), 9);
        assert_eq!(rows[0]["seq"], 1);
        assert_eq!(rows[6]["details"]["username"], "ghost4");
        assert_eq!(rows[7]["kind"], "audit_exported");
        assert_eq!(rows[7]["details"]["format"], "csv");
        assert_eq!(rows[7]["details"]["filter"], "kind=login_failed");
        assert_eq!(rows[8]["details"]["format"], "jsonl");
        assert_eq!(rows[8]["actor"], "admin");
    })
    .await;
}

#[tokio::test]
async fn the_openapi_document_lists_every_route_and_every_route_has_an_access_rule() {
    let db = sekisho_testkit::sqlite().await;
    let api = Api::new(&db, Policy::default());
    let (status, doc) = api
        .call(Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    let paths = doc["paths"].as_object().unwrap();
    let mut documented = vec![];
    for (path, item) in paths {
        for method in ["get", "post", "patch", "put", "delete"] {
            if item.get(method).is_some() {
                documented.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    let mut table: Vec<(String, String)> = sekisho_approval_api::api::ACCESS
        .iter()
        .map(|(m, p, _)| ((*m).to_owned(), (*p).to_owned()))
        .collect();
    documented.sort();
    table.sort();
    assert_eq!(
        documented, table,
        "documented routes and the access table differ"
    );
    for route in [
        "/api/v1/auth/login",
        "/api/v1/vendors/{id}/users",
        "/api/v1/requests/{id}/approve",
        "/api/v1/sessions/{id}/terminate",
        "/api/v1/audit/verify",
    ] {
        assert!(paths.contains_key(route), "{route}");
    }
    assert!(doc["components"]["schemas"]["ErrorBody"].is_object());
}

#[tokio::test]
async fn after_the_window_the_request_expires_and_the_vendor_reports_the_work() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        let approver = api.staff("hana", Role::Approver).await;
        let (v, alice) = api.vendor(&admin, "Acme", "alice", far_future()).await;
        api.target(&admin, "pacs", &[&v]).await;
        let (status, r) = api
            .post(
                "/api/v1/requests",
                &alice,
                request_body("pacs", "reference", SignedDuration::from_secs(2), false),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{r}");
        let id = r["id"].as_str().unwrap().to_owned();
        // Reporting before the work is a conflict.
        let (status, body) = api
            .post(
                &format!("/api/v1/requests/{id}/report"),
                &alice,
                json!({"text": "done"}),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        api.post(
            &format!("/api/v1/requests/{id}/approve"),
            &approver,
            json!({}),
        )
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
        let s = &api.state.settings;
        let expired = api
            .state
            .store
            .expire_requests(&s.policy, &s.zone)
            .await
            .unwrap();
        assert_eq!(expired, [id.parse().unwrap()]);
        assert!(
            api.state
                .store
                .expire_requests(&s.policy, &s.zone)
                .await
                .unwrap()
                .is_empty()
        );
        let (status, body) = api
            .post(
                &format!("/api/v1/requests/{id}/report"),
                &alice,
                json!({"text": "checked logs; no change made"}),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "expired");
        assert_eq!(body["report"], "checked logs; no change made");
        // Only the requester reports.
        let (status, _) = api
            .post(
                &format!("/api/v1/requests/{id}/report"),
                &approver,
                json!({"text": "x"}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
    })
    .await;
}

#[tokio::test]
async fn emergency_requests_are_flagged_and_show_as_overdue_until_approved() {
    for_each_db(|db| async move {
        let policy = Policy {
            emergency_access: true,
            emergency_approval_deadline: SignedDuration::from_secs(1),
            ..Policy::default()
        };
        let api = Api::new(&db, policy);
        let admin = api.staff("admin", Role::Admin).await;
        let approver = api.staff("hana", Role::Approver).await;
        let (v, alice) = api.vendor(&admin, "Acme", "alice", far_future()).await;
        api.target(&admin, "pacs", &[&v]).await;
        let (status, r) = api
            .post(
                "/api/v1/requests",
                &alice,
                request_body("pacs", "change", SignedDuration::from_hours(1), true),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{r}");
        assert_eq!(r["emergency"], true);
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let id = r["id"].as_str().unwrap();
        let (_, r) = api.get(&format!("/api/v1/requests/{id}"), &approver).await;
        assert_eq!(r["overdue"], true, "{r}");
        let (_, r) = api
            .post(
                &format!("/api/v1/requests/{id}/approve"),
                &approver,
                json!({}),
            )
            .await;
        assert_eq!(
            (r["overdue"].as_bool(), r["emergency"].as_bool()),
            (Some(false), Some(true)),
            "{r}"
        );
    })
    .await;
    // Where the policy forbids it, an emergency request is refused at filing.
    let db = sekisho_testkit::sqlite().await;
    let api = Api::new(&db, Policy::default());
    let admin = api.staff("admin", Role::Admin).await;
    let (v, alice) = api.vendor(&admin, "Acme", "alice", far_future()).await;
    api.target(&admin, "pacs", &[&v]).await;
    let (status, body) = api
        .post(
            "/api/v1/requests",
            &alice,
            request_body("pacs", "change", SignedDuration::from_hours(1), true),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        body["error"]["message"],
        "emergency: emergency access is disabled by the hospital's policy"
    );
}

/// A recorded terminal session: session id, target name, request number, input, output.
type Recorded<'a> = (&'a str, &'a str, i64, &'a [u8], &'a [u8]);

/// One closed terminal recording per [`Recorded`] in `dir`, and an API over `db` reading them.
async fn with_recordings(db: &TestDb, dir: &std::path::Path, sessions: &[Recorded<'_>]) -> Api {
    use sekisho_recorder::manifest::RecordingKey;
    use sekisho_recorder::{Recorder, SessionMeta};
    let key = std::sync::Arc::new(
        RecordingKey::from_pkcs8(&RecordingKey::generate_pkcs8().unwrap()).unwrap(),
    );
    let rec = Recorder::new(dir, key.clone()).unwrap();
    for (session, target, number, input, output) in sessions {
        let s = rec
            .open(SessionMeta {
                session: (*session).into(),
                request: "r".into(),
                request_number: *number,
                vendor: "Acme".into(),
                vendor_user: "alice".into(),
                target: (*target).into(),
                level: "change".into(),
                source_addr: "127.0.0.1".into(),
            })
            .await
            .unwrap();
        s.terminal(0, 80, 24, "t".into(), None).await.unwrap();
        s.input(0, input).await.unwrap();
        s.output(0, output).await.unwrap();
        s.close("closed").await.unwrap();
    }
    Api {
        state: sekisho_testkit::api::state_with_recordings(
            db.store.clone(),
            Policy::default(),
            dir,
            &key.public_key_b64(),
        ),
    }
}

#[tokio::test]
async fn approvers_and_auditors_read_search_and_verify_recordings_vendors_cannot() {
    let db = sekisho_testkit::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let api = with_recordings(
        &db,
        dir.path(),
        &[(
            "5e55-1011",
            "pacs",
            3,
            b"systemctl restart dcmqrscp\r",
            b"$ systemctl restart dcmqrscp\r\nok\r\n",
        )],
    )
    .await;
    let admin = api.staff("admin", Role::Admin).await;
    let auditor = api.staff("kenji", Role::Auditor).await;
    let (_, alice) = api.vendor(&admin, "Acme", "alice", far_future()).await;

    let (status, list) = api.get("/api/v1/recordings?target=pacs", &auditor).await;
    assert_eq!(status, StatusCode::OK, "{list}");
    assert_eq!(list[0]["session"], "5e55-1011");
    assert_eq!(list[0]["state"], "closed");
    let (_, none) = api.get("/api/v1/recordings?target=ris", &auditor).await;
    assert_eq!(none, json!([]));
    let (status, m) = api.get("/api/v1/recordings/5e55-1011", &auditor).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(m["request_number"], 3);
    let (status, text) = api.get("/api/v1/recordings/5e55-1011/text", &auditor).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(text, json!("$ systemctl restart dcmqrscp\nok\n"));
    let (_, hits) = api
        .get("/api/v1/recordings/search?q=restart%20dcmqrscp", &auditor)
        .await;
    assert!(
        hits.as_array()
            .unwrap()
            .iter()
            .any(|h| h["source"] == "input" && h["session"] == "5e55-1011"),
        "{hits}"
    );
    let (status, v) = api
        .get("/api/v1/recordings/5e55-1011/verify", &auditor)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(v["problems"], json!([]));
    let (status, cast) = api
        .get("/api/v1/recordings/5e55-1011/files/term-0.cast", &auditor)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        cast.as_str().unwrap().starts_with("{\"version\":2"),
        "{cast}"
    );
    for bad in [
        "/api/v1/recordings/5e55-1011/files/..%2Fmanifest.json",
        "/api/v1/recordings/5e55-1011/files/manifest.json",
        "/api/v1/recordings/..%2F..%2Fetc/text",
        "/api/v1/recordings/nope/text",
    ] {
        let (status, body) = api.get(bad, &auditor).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{bad}: {body}");
    }
    let (status, _) = api.get("/api/v1/recordings", &alice).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _) = api.get("/api/v1/recordings/search?q=x", &auditor).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
}

#[tokio::test]
async fn enrollment_codes_are_one_time_secrets_stored_only_as_hashes() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        let approver = api.staff("hana", Role::Approver).await;
        let (_v, alice) = api.vendor(&admin, "Acme", "alice", far_future()).await;
        let (_, me) = api.get("/api/v1/me", &alice).await;
        let id = me["id"].as_str().unwrap().to_owned();
        let (status, code) = api
            .post(
                &format!("/api/v1/users/{id}/enrollment-codes"),
                &approver,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{code}");
        let c = code["code"].as_str().unwrap();
        assert_eq!(c.len(), 24);
        assert_eq!(c.matches('-').count(), 4);
        assert_eq!(code["gateway"], "127.0.0.1:4433");
        assert_eq!(code["gateway_fingerprint"], "SHA256:test");
        let stored: Vec<String> = sqlx::query_scalar("SELECT code_hash FROM enrollment_codes")
            .fetch_all(db.store.pool())
            .await
            .unwrap();
        let expected = {
            use aws_lc_rs::digest::{SHA256, digest};
            hex::encode(digest(&SHA256, c.as_bytes()))
        };
        assert_eq!(stored, [expected]);
        let (status, _) = api
            .post(
                &format!("/api/v1/users/{id}/enrollment-codes"),
                &alice,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (_, hana) = api.get("/api/v1/me", &approver).await;
        let (status, body) = api
            .post(
                &format!(
                    "/api/v1/users/{}/enrollment-codes",
                    hana["id"].as_str().unwrap()
                ),
                &admin,
                json!({}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let (_, page) = api
            .get("/api/v1/audit?kind=enrollment_code_created", &admin)
            .await;
        assert_eq!(page["events"].as_array().unwrap().len(), 1);
        assert!(
            !page.to_string().contains(c),
            "the code itself never reaches the audit log"
        );
    })
    .await;
}

#[tokio::test]
async fn request_listings_carry_each_requests_own_approvals() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        let approver = api.staff("hana", Role::Approver).await;
        let (v, alice) = api.vendor(&admin, "Acme", "alice", far_future()).await;
        api.target(&admin, "pacs", &[&v]).await;
        let first = api.file(&alice, "pacs", "reference").await;
        let second = api.file(&alice, "pacs", "reference").await;
        let third = api.file(&alice, "pacs", "reference").await;
        for (r, comment) in [(&first, "first ok"), (&third, "third ok")] {
            let (status, _) = api
                .post(
                    &format!("/api/v1/requests/{}/approve", r["id"].as_str().unwrap()),
                    &approver,
                    json!({"comment": comment}),
                )
                .await;
            assert_eq!(status, StatusCode::OK);
        }
        let (_, list) = api.get("/api/v1/requests", &approver).await;
        let comments: Vec<(String, Vec<String>)> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let c = r["approvals"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a["comment"].as_str().unwrap().to_owned())
                    .collect();
                (r["reference"].as_str().unwrap().to_owned(), c)
            })
            .collect();
        assert_eq!(
            comments,
            [
                ("R-3".to_owned(), vec!["third ok".to_owned()]),
                ("R-2".to_owned(), vec![]),
                ("R-1".to_owned(), vec!["first ok".to_owned()]),
            ]
        );
        let _ = second;
    })
    .await;
}

#[tokio::test]
async fn a_host_key_given_at_creation_is_pinned_and_audited() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPALiwi/7p77Pl5cwHoa+8V/MnariFBFPyU+j2fOVB2H pacs-host";
        let (status, t) = api
            .post(
                "/api/v1/targets",
                &admin,
                json!({"name": "pacs", "host": "127.0.0.1", "host_key": key,
                       "levels": {"reference": {"account": "ro", "credential": {"password": "pw-secret"}}}}),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{t}");
        assert_eq!(t["host_key"], "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPALiwi/7p77Pl5cwHoa+8V/MnariFBFPyU+j2fOVB2H");
        let (_, page) = api.get("/api/v1/audit?kind=host_key_pinned", &admin).await;
        let events = page["events"].as_array().unwrap();
        assert_eq!(events.len(), 1, "{page}");
        assert_eq!(events[0]["target_id"], t["id"]);
        let (status, body) = api
            .post(
                "/api/v1/targets",
                &admin,
                json!({"name": "ris", "host": "127.0.0.1", "host_key": "ssh-ed25519 not-base64!",
                       "levels": {"reference": {"account": "ro", "credential": {"password": "pw"}}}}),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().starts_with("host_key:"), "{body}");
    })
    .await;
}

#[tokio::test]
async fn audit_filters_see_what_was_just_written() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        let (v, alice) = api.vendor(&admin, "Acme", "alice", far_future()).await;
        api.target(&admin, "pacs", &[&v]).await;
        for i in 1..=20 {
            let r = api.file(&alice, "pacs", "reference").await;
            let id = r["id"].as_str().unwrap();
            let (status, _) = api
                .post(&format!("/api/v1/requests/{id}/approve"), &admin, json!({}))
                .await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            let (_, page) = api
                .get("/api/v1/audit?kind=request_decided&outcome=denied", &admin)
                .await;
            assert_eq!(
                page["events"].as_array().unwrap().len(),
                i,
                "round {i}: {page}"
            );
        }
    })
    .await;
}

/// What a hostile new user sent (issue #12) gets a clear 422 naming the field and the rule.
#[tokio::test]
async fn names_hosts_keys_windows_and_passwords_are_checked() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        let invalid = |status: StatusCode, value: &Value, wanted: &str| {
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{value}");
            let m = value["error"]["message"].as_str().unwrap_or_default();
            assert!(m.contains(wanted), "wanted {wanted:?} in {value}");
        };
        for (name, wanted) in [
            ("Acme\u{0}Medical", "name: must not contain invisible or control characters (found U+0000)"),
            ("Acme\u{202e}lacideM", "(found U+202E)"),
            ("Ac\u{200b}me", "(found U+200B)"),
        ] {
            let (status, value) = api
                .post("/api/v1/vendors", &admin, json!({"name": name, "contact": {"name": "Sato"}}))
                .await;
            invalid(status, &value, wanted);
        }
        let (status, value) = api
            .post("/api/v1/vendors", &admin, json!({"name": "Acme", "contact": {"name": "Sa\u{0}to"}}))
            .await;
        invalid(status, &value, "contact.name:");
        let key = "-----BEGIN OPENSSH PRIVATE KEY-----\ngarbage\n-----END OPENSSH PRIVATE KEY-----\n";
        for (host, wanted) in [
            ("pacs\nevil.example", "host: is not a host name or IP address"),
            ("-oProxyCommand=sh", "host: is not a host name or IP address"),
        ] {
            let (status, value) = api
                .post("/api/v1/targets", &admin, json!({"name": "pacs", "host": host,
                    "levels": {"reference": {"account": "ro", "credential": {"password": "x"}}}}))
                .await;
            invalid(status, &value, wanted);
        }
        let (status, value) = api
            .post("/api/v1/targets", &admin, json!({"name": "pacs", "host": "10.0.0.5",
                "levels": {"reference": {"account": "ro", "credential": {"private_key": key}}}}))
            .await;
        invalid(status, &value, "private_key is not a usable OpenSSH private key");
        // Weak passwords, with the reason.
        let (vendor, _) = api.vendor(&admin, "Acme", "alice", far_future()).await;
        for weak in ["            ", "aaaaaaaaaaaa", "bobbobbobbobbob"] {
            let (status, value) = api
                .post(&format!("/api/v1/vendors/{vendor}/users"), &admin,
                    json!({"username": "bob", "password": weak}))
                .await;
            invalid(status, &value, "password: is too easy to guess");
        }
        // A window in 2126.
        api.target(&admin, "pacs", &[&vendor]).await;
        let alice = api.token("alice").await;
        let (status, value) = api
            .post("/api/v1/requests", &alice, json!({"target": "pacs", "level": "reference",
                "window_start": "2126-01-01T00:00:00Z", "window_end": "2126-01-01T01:00:00Z", "reason": "r"}))
            .await;
        invalid(status, &value, "window starts more than 366 days from now");
        // An optional body may be JSON null.
        let r = api.file(&alice, "pacs", "reference").await;
        let approver = api.staff("hana", Role::Approver).await;
        let (status, value) = api
            .raw(Method::POST, &format!("/api/v1/requests/{}/approve", r["id"].as_str().unwrap()),
                Some(&approver), Some(("application/json", b"null".to_vec())))
            .await;
        assert_eq!(status, StatusCode::OK, "{value}");
    })
    .await;
}

/// The last admin could lock everyone out with `expires_at` in the past.
#[tokio::test]
async fn the_last_admin_cannot_be_disabled_or_expired() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        let (_, me) = api.get("/api/v1/me", &admin).await;
        let id = me["id"].as_str().unwrap().to_owned();
        let (status, value) = api
            .call(
                Method::PATCH,
                &format!("/api/v1/users/{id}"),
                Some(&admin),
                Some(json!({"expires_at": "2020-01-01T00:00:00Z"})),
            )
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{value}");
        assert_eq!(value["error"]["code"], "last_admin");
        // With a second admin it may.
        api.staff("admin2", Role::Admin).await;
        let (status, value) = api
            .call(
                Method::PATCH,
                &format!("/api/v1/users/{id}"),
                Some(&admin),
                Some(json!({"expires_at": "2020-01-01T00:00:00Z"})),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{value}");
    })
    .await;
}

/// A hospital group: approvers and auditors limited to one site see and decide only that
/// site's requests, sessions, targets, recordings and audit events; the rest reads as absent.
#[tokio::test]
async fn staff_limited_to_a_site_see_and_decide_only_that_sites_work() {
    for_each_db(|db| async move {
        let dir = tempfile::tempdir().unwrap();
        let api = with_recordings(
            &db,
            dir.path(),
            &[
                ("ea57-0001", "east-pacs", 1, b"", b"site-marker east-pacs\r\n"),
                ("5e57-0002", "west-pacs", 2, b"", b"site-marker west-pacs\r\n"),
            ],
        )
        .await;
        let admin = api.staff("admin", Role::Admin).await;
        let hana = api.staff("hana", Role::Approver).await;
        let kenji = api.staff("kenji", Role::Auditor).await;
        let everywhere = api.staff("taro", Role::Approver).await;
        let (acme, alice) = api.vendor(&admin, "Acme", "alice", far_future()).await;
        let mut target_ids = std::collections::HashMap::new();
        for (name, site) in [("east-pacs", json!("east")), ("west-pacs", json!("west")), ("group-ris", Value::Null)] {
            let (status, t) = api
                .post(
                    "/api/v1/targets",
                    &admin,
                    json!({"name": name, "host": "127.0.0.1", "site": site,
                           "levels": {"reference": {"account": "ro", "credential": {"password": "ro-secret-pw"}}}}),
                )
                .await;
            assert_eq!(status, StatusCode::CREATED, "{t}");
            assert_eq!(t["site"], site);
            api.assign(&admin, &acme, t["id"].as_str().unwrap(), json!(null)).await;
            target_ids.insert(name, t["id"].as_str().unwrap().to_owned());
        }
        let (_, users) = api.get("/api/v1/users", &admin).await;
        let id_of = |name: &str| {
            users
                .as_array()
                .unwrap()
                .iter()
                .find(|u| u["username"] == name)
                .unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        for (user, site) in [("hana", "east"), ("kenji", "west")] {
            let (status, u) = api
                .call(
                    Method::PATCH,
                    &format!("/api/v1/users/{}", id_of(user)),
                    Some(&admin),
                    Some(json!({"site": site})),
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{u}");
            assert_eq!(u["site"], site);
        }
        // Admins manage the whole group: they are not limited.
        let (status, body) = api
            .call(
                Method::PATCH,
                &format!("/api/v1/users/{}", id_of("admin")),
                Some(&admin),
                Some(json!({"site": "east"})),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body.to_string().contains("only approvers and auditors"), "{body}");

        let east = api.file(&alice, "east-pacs", "reference").await;
        let west = api.file(&alice, "west-pacs", "reference").await;
        let group = api.file(&alice, "group-ris", "reference").await;
        let id = |r: &Value| r["id"].as_str().unwrap().to_owned();

        // hana (east) sees east's request only and may decide only it.
        let (_, list) = api.get("/api/v1/requests", &hana).await;
        let seen: Vec<String> = list.as_array().unwrap().iter().map(id).collect();
        assert_eq!(seen, [id(&east)]);
        for other in [&west, &group] {
            let (status, _) = api.get(&format!("/api/v1/requests/{}", id(other)), &hana).await;
            assert_eq!(status, StatusCode::NOT_FOUND);
            let (status, body) = api
                .post(&format!("/api/v1/requests/{}/approve", id(other)), &hana, json!({}))
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        }
        let (status, body) = api
            .post(&format!("/api/v1/requests/{}/approve", id(&east)), &hana, json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "approved");
        let (_, targets) = api.get("/api/v1/targets", &hana).await;
        let names: Vec<&str> = targets
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["east-pacs"]);
        let (status, _) = api
            .get(&format!("/api/v1/targets/{}", target_ids["west-pacs"]), &hana)
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, sessions) = api.get("/api/v1/sessions", &hana).await;
        assert_eq!((status, sessions), (StatusCode::OK, json!([])));
        // An approver of the whole group sees all three.
        let (_, list) = api.get("/api/v1/requests", &everywhere).await;
        assert_eq!(list.as_array().unwrap().len(), 3);

        // hana's audit view holds east's events only; anyone may filter by site.
        let (_, page) = api.get("/api/v1/audit?limit=1000", &hana).await;
        let events = page["events"].as_array().unwrap();
        assert!(!events.is_empty());
        assert!(
            events.iter().all(|e| e["target_id"] == target_ids["east-pacs"].as_str()),
            "{page}"
        );
        let (_, page) = api.get("/api/v1/audit?site=west&limit=1000", &admin).await;
        let events = page["events"].as_array().unwrap();
        assert!(!events.is_empty());
        assert!(events.iter().all(|e| e["target_id"] == target_ids["west-pacs"].as_str()));

        // kenji (west) reads west's recording only.
        let (_, list) = api.get("/api/v1/recordings", &kenji).await;
        let sessions: Vec<&str> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["session"].as_str().unwrap())
            .collect();
        assert_eq!(sessions, ["5e57-0002"]);
        for path in ["", "/verify", "/text", "/screen"] {
            let (status, _) = api
                .get(&format!("/api/v1/recordings/ea57-0001{path}"), &kenji)
                .await;
            assert_eq!(status, StatusCode::NOT_FOUND, "{path}");
            let (status, _) = api
                .get(&format!("/api/v1/recordings/5e57-0002{path}"), &kenji)
                .await;
            assert_eq!(status, StatusCode::OK, "{path}");
        }
        let (_, hits) = api.get("/api/v1/recordings/search?q=site-marker", &kenji).await;
        let hit_targets: Vec<&str> = hits
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h["target"].as_str().unwrap())
            .collect();
        assert!(!hit_targets.is_empty() && hit_targets.iter().all(|t| *t == "west-pacs"), "{hits}");
        let (_, hits) = api.get("/api/v1/recordings/search?q=site-marker", &admin).await;
        assert!(hits.to_string().contains("east-pacs"), "{hits}");

        // Each site's committee gets its own monthly report: one session at east, two at
        // west, one for the group's own target; Beta maintains only west-pacs, and both its
        // attestation and its contract end soon.
        for r in [&east, &west, &west, &group] {
            start_session_of(&api, r).await;
        }
        let soon = Timestamp::now() + SignedDuration::from_hours(24 * 10);
        let (beta, _) = api.vendor(&admin, "Beta", "bob", soon).await;
        api.assign(&admin, &beta, &target_ids["west-pacs"], json!(soon.to_string())).await;
        let lapsing = |r: &Value, what: &str| -> Vec<String> {
            r[what]
                .as_array()
                .unwrap()
                .iter()
                .map(|l| l["name"].as_str().unwrap().to_owned())
                .collect()
        };
        let month = api
            .state
            .settings
            .zone
            .tz()
            .to_datetime(Timestamp::now())
            .strftime("%Y-%m")
            .to_string();
        let report = |token: &str, site: Option<&str>| {
            let path = match site {
                Some(s) => format!("/api/v1/reports/monthly?month={month}&site={s}"),
                None => format!("/api/v1/reports/monthly?month={month}"),
            };
            let token = token.to_owned();
            let api = &api;
            async move { api.get(&path, &token).await }
        };
        let targets_of = |r: &Value| -> Vec<(String, u64)> {
            r["by_target"]
                .as_array()
                .unwrap()
                .iter()
                .map(|t| (t["key"].as_str().unwrap().to_owned(), t["sessions"].as_u64().unwrap()))
                .collect()
        };
        // hana, limited to east, gets east's without asking (the report was refused before).
        let (status, r) = report(&hana, None).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!((r["site"].clone(), r["sessions"].clone()), (json!("east"), json!(1)));
        assert_eq!(targets_of(&r), [("east-pacs".to_owned(), 1)]);
        assert!(lapsing(&r, "attestations_expiring").is_empty(), "{r}");
        assert!(lapsing(&r, "contracts_expiring").is_empty(), "{r}");
        let (status, body) = report(&hana, Some("west")).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("limited to site east"), "{body}");
        // Staff of the whole group choose a site, or get the group's.
        let (status, r) = report(&everywhere, Some("west")).await;
        assert_eq!(status, StatusCode::OK, "{r}");
        assert_eq!((r["site"].clone(), r["sessions"].clone()), (json!("west"), json!(2)));
        assert_eq!(targets_of(&r), [("west-pacs".to_owned(), 2)]);
        assert_eq!(lapsing(&r, "attestations_expiring"), ["Beta"]);
        assert_eq!(lapsing(&r, "contracts_expiring"), ["Beta → west-pacs"]);
        let (_, r) = report(&everywhere, None).await;
        assert_eq!((r["site"].clone(), r["sessions"].clone()), (Value::Null, json!(4)));
        let (status, body) = report(&everywhere, Some("north")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("no target belongs to site `north`"), "{body}");
    })
    .await;
}

/// Another node's token key is accepted once it is published in the database (read again
/// for a token naming a key not known yet), and no longer once it is retired.
#[tokio::test]
async fn tokens_signed_with_another_nodes_published_key_are_accepted() {
    use sekisho_approval_api::api::token::{Claims, TokenKeys};
    use sekisho_domain::secret::Secret;
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        let (_, me) = api.get("/api/v1/auth/me", &admin).await;
        let id = me["id"]
            .as_str()
            .or(me["user"]["id"].as_str())
            .unwrap()
            .to_owned();
        let (private, public) = sekisho_testkit::api::ed25519_pems();
        let node_b = TokenKeys::ed25519("kid-b".into(), &Secret::new(private), &public).unwrap();
        let now = Timestamp::now().as_second();
        let token = node_b
            .issue(&Claims {
                sub: id.clone(),
                role: Role::Admin,
                vendor: None,
                iat: now,
                exp: now + 600,
                jti: "jti-b".into(),
                tgen: db
                    .store
                    .token_generation(id.parse().unwrap())
                    .await
                    .unwrap(),
            })
            .unwrap();
        let (status, body) = api.get("/api/v1/auth/me", &token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert!(body.to_string().contains("unknown key"), "{body}");
        db.store
            .heartbeat(
                &sekisho_store::nodes::NodeInfo {
                    id: "b".into(),
                    name: "b".into(),
                    version: "0".into(),
                },
                true,
                &[],
            )
            .await
            .unwrap();
        db.store
            .publish_token_key("b", "kid-b", &public, std::time::Duration::from_secs(60))
            .await
            .unwrap();
        // Read again at most once a second for an unknown key.
        tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
        let (status, body) = api.get("/api/v1/auth/me", &token).await;
        assert_eq!(status, StatusCode::OK, "{body}");

        // A retired key is dropped at the next reading of the published keys.
        let keys = sekisho_testkit::api::token_keys("kid-a");
        keys.accept(&[("kid-b".into(), public.clone())]);
        assert!(keys.verify(&token).is_ok());
        keys.accept(&[]);
        assert_eq!(keys.verify(&token), Err("token signed by an unknown key"));
    })
    .await;
}

#[tokio::test]
async fn vendors_see_request_and_reach_only_the_targets_assigned_to_them_under_a_running_contract()
{
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        let auditor = api.staff("kenji", Role::Auditor).await;
        let (acme, alice) = api.vendor(&admin, "Acme", "alice", far_future()).await;
        let (globex, bob) = api.vendor(&admin, "Globex", "bob", far_future()).await;
        let pacs = api.target(&admin, "pacs", &[&acme]).await;
        let ris = api.target(&admin, "ris", &[]).await;
        let (pacs_id, ris_id) = (pacs["id"].as_str().unwrap(), ris["id"].as_str().unwrap());
        // Globex's contract for ris ends in an hour.
        let ends = Timestamp::now() + SignedDuration::from_hours(1);
        let globex_ris = api
            .assign(&admin, &globex, ris_id, json!(ends.to_string()))
            .await;
        assert_eq!(globex_ris["vendor"], "Globex");
        assert_eq!(globex_ris["target"], "ris");
        assert_eq!(globex_ris["sla"], "next business day");
        assert_eq!(globex_ris["ended"], false);

        // Each vendor lists only its own targets; another's reads as absent.
        let names = |v: &Value| -> Vec<String> {
            v.as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap().to_owned()).collect()
        };
        let (_, list) = api.get("/api/v1/targets", &alice).await;
        assert_eq!(names(&list), ["pacs"]);
        let (_, list) = api.get("/api/v1/targets", &bob).await;
        assert_eq!(names(&list), ["ris"]);
        let (_, list) = api.get("/api/v1/targets", &admin).await;
        assert_eq!(names(&list), ["pacs", "ris"]);
        let (status, _) = api.get(&format!("/api/v1/targets/{ris_id}"), &alice).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = api.get(&format!("/api/v1/targets/{pacs_id}"), &alice).await;
        assert_eq!(status, StatusCode::OK);

        // Filing for a target not assigned reads like one that does not exist.
        for target in ["ris", "no-such-system"] {
            let (status, body) = api
                .post("/api/v1/requests", &alice, request_body(target, "reference", SignedDuration::from_hours(1), false))
                .await;
            assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
            assert_eq!(
                body["error"]["message"],
                format!("target: no target named `{target}` is assigned to your vendor")
            );
        }
        // A window that runs past the contract's end is refused with the end named.
        let (status, body) = api
            .post("/api/v1/requests", &bob, request_body("ris", "reference", SignedDuration::from_hours(2), false))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        let m = body["error"]["message"].as_str().unwrap();
        assert!(m.starts_with("window_end: the window ends after your vendor's maintenance contract for ris"), "{m}");
        api.file(&alice, "pacs", "reference").await;
        let (status, body) = api
            .post("/api/v1/requests", &bob, request_body("ris", "reference", SignedDuration::from_mins(30), false))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");

        // Assignments: a vendor reads its own, staff all; only admins change them.
        let (_, mine) = api.get("/api/v1/assignments", &alice).await;
        assert_eq!(mine.as_array().unwrap().len(), 1, "{mine}");
        assert_eq!(mine[0]["target"], "pacs");
        let (_, all) = api.get("/api/v1/assignments", &auditor).await;
        assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
        let (_, only_ris) = api.get(&format!("/api/v1/assignments?target_id={ris_id}"), &auditor).await;
        assert_eq!(only_ris.as_array().unwrap().len(), 1, "{only_ris}");
        let globex_id = globex_ris["id"].as_str().unwrap();
        let (status, _) = api.get(&format!("/api/v1/assignments/{globex_id}"), &alice).await;
        assert_eq!(status, StatusCode::NOT_FOUND);
        let (status, _) = api
            .post("/api/v1/assignments", &alice, json!({"vendor_id": acme, "target_id": ris_id, "contract": "mine"}))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, body) = api
            .post("/api/v1/assignments", &admin, json!({"vendor_id": acme, "target_id": pacs_id, "contract": "again"}))
            .await;
        assert_eq!(status, StatusCode::CONFLICT, "{body}");
        let (status, body) = api
            .post("/api/v1/assignments", &admin, json!({"vendor_id": uuid::Uuid::new_v4().to_string(), "target_id": pacs_id, "contract": "x"}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(body["error"]["message"], "vendor_id: no vendor with this id");
        let (status, body) = api
            .post("/api/v1/assignments", &admin, json!({"vendor_id": acme, "target_id": ris_id, "contract": " "}))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");

        // The contract ended: the target disappears for Globex and filing names why.
        let past = Timestamp::now() - SignedDuration::from_hours(1);
        let (status, body) = api
            .call(Method::PATCH, &format!("/api/v1/assignments/{globex_id}"), Some(&admin), Some(json!({"ends_at": past.to_string()})))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["ended"], true);
        let (_, list) = api.get("/api/v1/targets", &bob).await;
        assert_eq!(names(&list), Vec::<String>::new());
        let (status, body) = api
            .post("/api/v1/requests", &bob, request_body("ris", "reference", SignedDuration::from_mins(30), false))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert!(body["error"]["message"].as_str().unwrap().contains("maintenance contract for ris ended at"), "{body}");
        // Removed: gone for good.
        let acme_pacs = mine[0]["id"].as_str().unwrap();
        let (status, _) = api.call(Method::DELETE, &format!("/api/v1/assignments/{acme_pacs}"), Some(&admin), None).await;
        assert_eq!(status, StatusCode::NO_CONTENT);
        let (_, list) = api.get("/api/v1/targets", &alice).await;
        assert_eq!(names(&list), Vec::<String>::new());
        let (status, _) = api.call(Method::DELETE, &format!("/api/v1/assignments/{acme_pacs}"), Some(&admin), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND);

        // Every change is audited, with what changed.
        let (_, page) = api.get("/api/v1/audit?kind=assignment_updated", &auditor).await;
        let changes = &page["events"][0]["details"]["changes"][0];
        assert!(changes.as_str().unwrap().starts_with("ends_at: "), "{page}");
        let kinds = api.audit_kinds(&auditor).await;
        for kind in ["assignment_created:success", "assignment_updated:success", "assignment_removed:success"] {
            assert!(kinds.iter().any(|k| k == kind), "{kind} missing from {kinds:?}");
        }
    })
    .await;
}

#[tokio::test]
async fn the_inventory_of_external_lines_flags_what_needs_a_review_and_audits_every_change() {
    for_each_db(|db| async move {
        let api = Api::new(&db, Policy::default());
        let admin = api.staff("admin", Role::Admin).await;
        let approver = api.staff("hana", Role::Approver).await;
        let auditor = api.staff("kenji", Role::Auditor).await;
        let (acme, alice) = api.vendor(&admin, "Acme", "alice", far_future()).await;
        let (status, sekisho) = api
            .post("/api/v1/lines", &admin, json!({"name": "Sekisho gateway", "owner": "IT section",
                "location": "Server room B1", "device": "Sekisho 0.1", "firmware": "0.1.0",
                "firmware_updated_at": "2026-11-01T00:00:00Z"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{sekisho}");
        assert_eq!(sekisho["route"], "sekisho");
        assert_eq!(sekisho["flags"], json!(["never_reviewed"]));
        let (status, modem) = api
            .post("/api/v1/lines", &admin, json!({"name": "CT vendor modem", "route": "exception",
                "vendor_id": acme, "owner": "Radiology", "location": "CT room", "device": "NTT modem"}))
            .await;
        assert_eq!(status, StatusCode::CREATED, "{modem}");
        assert_eq!(modem["vendor"], "Acme");
        assert_eq!(
            modem["flags"],
            json!(["never_reviewed", "measures_missing", "firmware_unknown"])
        );
        // Checked input, a clear error for each problem.
        for (body, code, wanted) in [
            (json!({"name": "Sekisho gateway", "owner": "o", "location": "l", "device": "d"}), StatusCode::CONFLICT, "already in the inventory"),
            (json!({"name": "x", "owner": " ", "location": "l", "device": "d"}), StatusCode::UNPROCESSABLE_ENTITY, "owner:"),
            (json!({"name": "x", "owner": "o", "location": "l", "device": "d", "vendor_id": uuid::Uuid::new_v4().to_string()}), StatusCode::UNPROCESSABLE_ENTITY, "vendor_id: no vendor"),
            (json!({"name": "x", "owner": "o", "location": "l", "device": "d", "route": "carrier pigeon"}), StatusCode::BAD_REQUEST, "route"),
        ] {
            let (status, value) = api.post("/api/v1/lines", &admin, body).await;
            assert_eq!(status, code, "{value}");
            assert!(value["error"]["message"].as_str().unwrap().contains(wanted), "{value}");
        }
        // Staff read it; vendors do not; only admins change it.
        let (status, list) = api.get("/api/v1/lines", &auditor).await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(list.as_array().unwrap().len(), 2);
        let (status, _) = api.get("/api/v1/lines", &alice).await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let modem_id = modem["id"].as_str().unwrap();
        let (status, _) = api
            .call(Method::PATCH, &format!("/api/v1/lines/{modem_id}"), Some(&approver), Some(json!({"firmware": "2.0"})))
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN);
        let (status, _) = api.post(&format!("/api/v1/lines/{modem_id}/review"), &auditor, json!({})).await;
        assert_eq!(status, StatusCode::FORBIDDEN);

        // The vendor's measures and the firmware recorded, then a review: nothing left to flag.
        let (status, changed) = api
            .call(Method::PATCH, &format!("/api/v1/lines/{modem_id}"), Some(&admin), Some(json!({
                "measures": "VPN with MFA; callback only; logs sent monthly",
                "firmware": "2.0", "firmware_updated_at": "2026-10-01T00:00:00Z"})))
            .await;
        assert_eq!(status, StatusCode::OK, "{changed}");
        assert_eq!(changed["flags"], json!(["never_reviewed"]));
        let (status, reviewed) = api
            .post(&format!("/api/v1/lines/{modem_id}/review"), &approver, json!({"note": "measures checked against the contract"}))
            .await;
        assert_eq!(status, StatusCode::OK, "{reviewed}");
        assert_eq!(reviewed["flags"], json!([]));
        assert!(reviewed["reviewed_at"].is_string());
        // Retired: kept, no longer flagged.
        let sekisho_id = sekisho["id"].as_str().unwrap();
        let (_, retired) = api
            .call(Method::PATCH, &format!("/api/v1/lines/{sekisho_id}"), Some(&admin), Some(json!({"status": "retired"})))
            .await;
        assert_eq!(retired["status"], "retired");
        assert_eq!(retired["flags"], json!([]));

        let (_, page) = api.get("/api/v1/audit?kind=line_updated", &auditor).await;
        let changes: Vec<Value> = page["events"].as_array().unwrap().iter().map(|e| e["details"]["changes"].clone()).collect();
        assert!(changes.contains(&json!(["status"])), "{changes:?}");
        assert!(changes.contains(&json!(["firmware", "firmware_updated_at", "measures"])), "{changes:?}");
        let (_, page) = api.get("/api/v1/audit?kind=line_reviewed", &auditor).await;
        assert_eq!(page["events"][0]["details"]["note"], "measures checked against the contract");
        assert_eq!(page["events"][0]["actor"], "hana", "{page}");
    })
    .await;
}

/// A session of request `r` (as the API shows it), started now and closed, in the store.
async fn start_session_of(api: &Api, r: &Value) {
    let store = &api.state.store;
    let id = r["id"].as_str().unwrap().parse().unwrap();
    let request = store.request(id).await.unwrap().unwrap().request;
    let engineer = store.user(request.requester).await.unwrap().unwrap();
    let session = sekisho_domain::ids::SessionId::new();
    sekisho_testkit::api::closed_session(store, session, &request, &engineer).await;
}
