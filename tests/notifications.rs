//! Issue #17, notifications end to end through a running `sekisho serve`: a real SMTP server
//! (Python's aiosmtpd, requiring STARTTLS and a login) receives the mail in each person's
//! language, a webhook receiver in this test checks every signature and fails the first two
//! tries of each delivery, a webhook that never answers is given up and audited, and a
//! restart of the gateway in the middle of the retries loses and repeats nothing.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_lc_rs::hmac;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use jiff::SignedDuration;
use sekisho_testkit::smtp::{Smtp, SmtpOptions};
use serde_json::{Value, json};
use support::Env;
use support::gateway::{Pin, World};

const SECRET: &str = "a shared webhook secret of enough length";

/// One POST the receiver saw.
#[derive(Clone, Debug)]
struct Seen {
    delivery: String,
    event: String,
    signature_ok: bool,
    body: Value,
    answered: u16,
}

/// A webhook receiver: checks the HMAC-SHA256 signature of `timestamp.body` and answers 500
/// to the first two tries of each delivery id, 200 after.
#[derive(Clone, Default)]
struct Receiver {
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Receiver {
    async fn start(&self) -> u16 {
        let seen = self.seen.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: HeaderMap, body: Bytes| {
                let seen = seen.clone();
                async move {
                    let header = |n: &str| {
                        headers
                            .get(n)
                            .and_then(|v| v.to_str().ok())
                            .unwrap_or_default()
                            .to_owned()
                    };
                    let key = hmac::Key::new(hmac::HMAC_SHA256, SECRET.as_bytes());
                    let timestamp = header("x-sekisho-timestamp");
                    let mut signed = format!("{timestamp}.").into_bytes();
                    signed.extend_from_slice(&body);
                    let wanted = header("x-sekisho-signature");
                    let signature_ok = wanted
                        .strip_prefix("sha256=")
                        .and_then(|h| hex::decode(h).ok())
                        .is_some_and(|tag| hmac::verify(&key, &signed, &tag).is_ok());
                    let delivery = header("x-sekisho-delivery");
                    let mut all = seen.lock().unwrap();
                    let tries = all.iter().filter(|s| s.delivery == delivery).count();
                    let answered = if tries < 2 { 500 } else { 200 };
                    all.push(Seen {
                        delivery,
                        event: header("x-sekisho-event"),
                        signature_ok,
                        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
                        answered,
                    });
                    StatusCode::from_u16(answered).unwrap()
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        port
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Waits until `event` was answered 200 `n` times.
    async fn delivered(&self, event: &str, n: usize) -> Vec<Seen> {
        for _ in 0..300 {
            let ok: Vec<Seen> = self
                .seen()
                .into_iter()
                .filter(|s| s.event == event && s.answered == 200)
                .collect();
            if ok.len() >= n {
                return ok;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("{event} not delivered {n} times: {:?}", self.seen());
    }
}

async fn notifications(w: &World, query: &str) -> Vec<Value> {
    let (status, body) = w
        .http
        .get(&format!("/api/v1/notifications?{query}"), &w.admin)
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

async fn patch(w: &World, path: &str, body: Value) {
    let (status, answer) = w
        .http
        .send(reqwest::Method::PATCH, path, Some(&w.admin), Some(body))
        .await;
    assert_eq!(status, 200, "{answer}");
}

// Two workers: the webhook receiver runs on this runtime while the test waits for mail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn people_are_told_by_mail_in_their_language_and_webhooks_by_signed_posts() {
    let Some(smtp) = Smtp::start(SmtpOptions {
        starttls: true,
        login: Some(("sekisho".into(), "smtp password 1".into())),
    }) else {
        return;
    };
    let receiver = Receiver::default();
    let hook_port = receiver.start().await;
    let dead_port = sekisho_testkit::port::free_port();
    let env = Env::new(None);
    let secrets = env.data_dir().with_file_name("secrets");
    std::fs::create_dir_all(&secrets).unwrap();
    let (password_file, secret_file) = (secrets.join("smtp"), secrets.join("hook"));
    std::fs::write(&password_file, "smtp password 1\n").unwrap();
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    env.configure(&format!(
        r#"
[notifications]
smtp_host = "127.0.0.1"
smtp_port = {smtp_port}
smtp_security = "starttls"
smtp_username = "sekisho"
smtp_password_file = "{password}"
smtp_ca_file = "{ca}"
from = "Sekisho <sekisho@hospital.test>"
console_url = "https://sekisho.hospital.test:8443"
language = "ja"
retry_seconds = 1
max_attempts = 3

[[notifications.webhooks]]
name = "it-chat"
url = "http://127.0.0.1:{hook_port}/hook"
secret_file = "{secret}"
events = ["request_filed", "request_decided", "emergency_access", "session_started", "session_ended"]

[[notifications.webhooks]]
name = "tickets"
url = "http://127.0.0.1:{dead_port}/never"
secret_file = "{secret}"
events = ["request_decided"]

[policy]
emergency_access = true
"#,
        smtp_port = smtp.port,
        password = password_file.display(),
        ca = smtp.ca().display(),
        secret = secret_file.display(),
    ));
    let Some(mut w) = World::with_env(env, Pin::Real).await else {
        return;
    };
    // hana reads English; alice and the vendor's contact get the default, Japanese.
    let (_, hana) = w.http.get("/api/v1/users?role=approver", &w.admin).await;
    let hana_id = hana
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["username"] == "hana")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    patch(
        &w,
        &format!("/api/v1/users/{hana_id}"),
        json!({"email": "hana@hospital.test", "language": "en"}),
    )
    .await;
    patch(
        &w,
        &format!("/api/v1/users/{}", w.alice_id),
        json!({"email": "alice@acme.test"}),
    )
    .await;
    let (_, alice) = w
        .http
        .get(&format!("/api/v1/users/{}", w.alice_id), &w.admin)
        .await;
    let vendor = alice["vendor_id"].as_str().unwrap().to_owned();
    patch(
        &w,
        &format!("/api/v1/vendors/{vendor}"),
        json!({"contact": {"name": "Sato", "email": "sato@acme.test"}}),
    )
    .await;

    // A request waits: the approver is told, in English.
    let id = w.file("reference", SignedDuration::from_hours(1)).await;
    let mail = smtp.wait_for(1, Duration::from_secs(30));
    assert_eq!(mail.len(), 1, "{mail:?}\n{}", w.log());
    let m = &mail[0];
    assert_eq!(m["to"], json!(["hana@hospital.test"]));
    assert_eq!(
        m["subject"],
        "[Sekisho] Work request R-1 (pacs) waits for your decision"
    );
    assert_eq!(m["tls"], true, "STARTTLS was required");
    assert_eq!(m["authenticated"], true, "the login was required");
    let body = m["body"].as_str().unwrap();
    assert!(body.contains("Reason: log collection"), "{body}");
    assert!(
        body.contains("https://sekisho.hospital.test:8443/console/approvals"),
        "{body}"
    );

    // Decided: the engineer and the vendor's contact are told, in Japanese.
    w.approve(&id).await;
    let mail = smtp.wait_for(3, Duration::from_secs(30));
    assert_eq!(mail.len(), 3, "{mail:?}\n{}", w.log());
    let mut to: Vec<String> = mail[1..]
        .iter()
        .map(|m| m["to"][0].as_str().unwrap().to_owned())
        .collect();
    to.sort();
    assert_eq!(to, ["alice@acme.test", "sato@acme.test"]);
    for m in &mail[1..] {
        assert_eq!(
            m["subject"],
            "[Sekisho] 作業申請 R-1（pacs）は承認されました"
        );
        assert!(m["body"].as_str().unwrap().contains("理由: log collection"));
    }

    // The webhook: every try signed, two refused, the third taken; one delivery each.
    let filed = receiver.delivered("request_filed", 1).await;
    let decided = receiver.delivered("request_decided", 1).await;
    let seen = receiver.seen();
    assert!(seen.iter().all(|s| s.signature_ok), "{seen:?}");
    for ok in [&filed[0], &decided[0]] {
        let tries: Vec<&Seen> = seen.iter().filter(|s| s.delivery == ok.delivery).collect();
        assert_eq!(tries.len(), 3, "{tries:?}");
        assert!(
            tries.iter().all(|t| t.body == ok.body),
            "the same body on every try"
        );
        assert_eq!(ok.body["id"], ok.delivery.as_str());
    }
    assert_eq!(filed[0].body["data"]["request"]["reference"], "R-1");
    assert_eq!(
        decided[0].body["data"]["text"],
        "[Sekisho] 作業申請 R-1（pacs）は承認されました"
    );

    // The webhook that never answers is given up after three tries, audited, and shown.
    let mut failed = vec![];
    for _ in 0..200 {
        failed = notifications(&w, "status=failed").await;
        if !failed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0]["recipient"], "tickets");
    assert_eq!(failed[0]["attempts"], 3);
    assert!(
        failed[0]["last_error"].as_str().unwrap().contains("/never"),
        "{failed:?}"
    );
    let audited = w.audit("kind=notification_failed").await;
    assert_eq!(audited.len(), 1, "{audited:?}");
    let delivered = notifications(&w, "status=delivered").await;
    assert_eq!(delivered.len(), 5, "{delivered:?}");
    // The console shows admins who was not told, in their language.
    let (status, page) = w
        .http
        .console("/console/notifications", &w.admin, Some("ja"))
        .await;
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    assert!(page.contains("送信をあきらめた通知: 1"), "{page}");
    assert!(page.contains("webhook: tickets"), "{page}");
    // An approver may not read the outbox (addresses of people).
    let (status, _) = w.http.get("/api/v1/notifications", &w.approver).await;
    assert_eq!(status, 403);

    // A session: its start and end reach the webhook that subscribes (no mail for them).
    let mails_before = smtp.messages().len();
    let out = w.ssh("alice+pacs", &["echo", "hi"]).output().unwrap();
    assert!(out.status.success(), "{}", support::stderr(&out));
    let started = receiver.delivered("session_started", 1).await;
    let ended = receiver.delivered("session_ended", 1).await;
    assert_eq!(started[0].body["data"]["request"]["reference"], "R-1");
    assert_eq!(
        ended[0].body["data"]["how"], "closed",
        "{:?}",
        ended[0].body
    );
    assert_eq!(
        started[0].body["data"]["text"],
        "[Sekisho] Acme Medical が pacs で作業を開始しました"
    );

    // Emergency access: the approvers are told at once (hana in English), before any
    // decision.
    let now = jiff::Timestamp::now();
    let (status, body) = w
        .http
        .post(
            "/api/v1/requests",
            &w.alice,
            json!({"target": "pacs", "level": "change", "emergency": true,
                   "window_start": now.to_string(), "window_end": (now + SignedDuration::from_hours(1)).to_string(),
                   "reason": "the archive is down", "plan": "restart the service"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    let mail = smtp.wait_for(mails_before + 1, Duration::from_secs(30));
    assert_eq!(mail.len(), mails_before + 1, "{mail:?}");
    assert_eq!(
        mail.last().unwrap()["subject"],
        "[Sekisho] Emergency access R-2 (pacs): after-the-fact approval needed"
    );
    receiver.delivered("emergency_access", 1).await;

    // A restart in the middle of the retries: the second request's webhook was tried and
    // refused before the stop, and is delivered once after it; no mail is sent twice.
    let mails_before = smtp.messages().len();
    w.file("reference", SignedDuration::from_hours(1)).await;
    let mut tried = false;
    for _ in 0..100 {
        tried = receiver
            .seen()
            .iter()
            .any(|s| s.event == "request_filed" && s.body["data"]["request"]["reference"] == "R-3");
        if tried {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(tried, "{:?}", receiver.seen());
    w.server.take().unwrap().terminate();
    w.restart().await;
    let filed = receiver.delivered("request_filed", 2).await;
    let second: Vec<Seen> = receiver
        .seen()
        .into_iter()
        .filter(|s| s.delivery == filed[1].delivery)
        .collect();
    assert_eq!(second.len(), 3, "{second:?}");
    assert_eq!(
        second.iter().filter(|s| s.answered == 200).count(),
        1,
        "{second:?}"
    );
    let mail = smtp.wait_for(mails_before + 1, Duration::from_secs(30));
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(smtp.messages().len(), mails_before + 1, "{mail:?}");
    assert!(smtp.messages().last().is_some_and(
        |m| m["subject"] == "[Sekisho] Work request R-3 (pacs) waits for your decision"
    ));
}
