//! End to end over real HTTP: the running `sekisho serve`, its initial admin, the CLI, and the
//! approval flow of issue #3, on SQLite and on PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use jiff::{SignedDuration, Timestamp};
use serde_json::json;
use support::{Env, stderr, stdout};

async fn approval_flow(env: &Env) {
    let server = env.serve();
    let http = server.http();
    let admin_pw = std::fs::read_to_string(env.data_dir().join("initial-admin-password")).unwrap();
    let admin = http.login("admin", admin_pw.trim()).await;

    // An approver, created offline with the CLI while the server runs.
    let out = env.cli(
        &[
            "user",
            "add",
            "--username",
            "hana",
            "--role",
            "approver",
            "--password-stdin",
        ],
        "approver password 1\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let approver = http.login("hana", "approver password 1").await;

    let (vendor, _) =
        support::gateway::add_vendor(&http, &admin, "Acme Medical", "alice", "vendor password 1")
            .await;
    assert_eq!(vendor["qualified"], true, "{vendor}");
    let (status, target) = http
        .post("/api/v1/targets", &admin, json!({"name": "pacs", "host": "127.0.0.1", "port": 22,
            "levels": {"change": {"account": "maint-rw", "credential": {"password": "never-shown"}}}}))
        .await;
    assert_eq!(status, 201, "{target}");
    support::gateway::assign(
        &http,
        &admin,
        vendor["id"].as_str().unwrap(),
        target["id"].as_str().unwrap(),
    )
    .await;

    let alice = http.login("alice", "vendor password 1").await;
    let now = Timestamp::now();
    let (status, request) = http
        .post("/api/v1/requests", &alice, json!({"target": "pacs", "level": "change",
            "window_start": now.to_string(), "window_end": (now + SignedDuration::from_hours(1)).to_string(),
            "reason": "firmware update", "plan": "apply vendor patch 4.2"}))
        .await;
    assert_eq!(status, 201, "{request}");
    let rid = request["id"].as_str().unwrap();
    let (status, body) = http
        .post(
            &format!("/api/v1/requests/{rid}/approve"),
            &alice,
            json!({}),
        )
        .await;
    assert_eq!(status, 403, "{body}");
    let (status, body) = http
        .post(
            &format!("/api/v1/requests/{rid}/approve"),
            &approver,
            json!({"comment": "go"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "approved");

    // The audit log has each step, with the client's address, and the chain is intact.
    let (_, page) = http
        .get(&format!("/api/v1/audit?request={rid}"), &approver)
        .await;
    let steps: Vec<(String, String)> = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        steps,
        [
            ("request_filed".to_owned(), "success".to_owned()),
            ("request_decided".to_owned(), "success".to_owned())
        ]
    );
    assert!(
        page["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["source_addr"] == "127.0.0.1"),
        "{page}"
    );
    let (_, denied) = http
        .get("/api/v1/audit?kind=login_succeeded", &approver)
        .await;
    assert_eq!(denied["events"].as_array().unwrap().len(), 3);
    let (_, verify) = http.get("/api/v1/audit/verify", &approver).await;
    assert_eq!(verify["intact"], true, "{verify}");
    // The node wrote a signed checkpoint of the chain's head when it started.
    assert!(verify["checkpoints"].as_u64().unwrap() >= 1, "{verify}");
    let (status, doc) = http
        .send(reqwest::Method::GET, "/api/v1/openapi.json", None, None)
        .await;
    assert_eq!(status, 200);
    assert!(doc["paths"]["/api/v1/requests/{id}/approve"]["post"].is_object());
    assert!(server.terminate().success());
    let out = env.cli(&["audit", "verify"], "");
    assert!(out.status.success(), "{}", stdout(&out));
    // The node checkpointed the chain's head at start and after its last row.
    assert!(
        stdout(&out).contains(" signed checkpoints match the log"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn approval_flow_over_http_on_sqlite() {
    approval_flow(&Env::new(None)).await;
}

#[tokio::test]
async fn approval_flow_over_http_on_postgresql() {
    let Some(db) = sekisho_testkit::postgres().await else {
        return;
    };
    db.store.close().await;
    approval_flow(&Env::new(Some(&db.url))).await;
}
