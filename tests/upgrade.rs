//! Issue #19, upgrades: a hospital's data made by an earlier Sekisho is taken over by this one
//! with nothing lost. `tests/fixtures/upgrade/` keeps, for each release, a `sekisho backup`
//! of a gateway that did real work (a vendor, its engineer and key, a target, a change request
//! filed and approved, an SSH session through a real `sshd`, recorded and sealed, a rejected
//! request) with `expected.json`, what the API said about it then. This test restores every
//! fixture into a fresh data directory, lets this version's `sekisho serve` migrate it, and
//! checks that the audit chain and the recordings verify and that the API still says the same.
//!
//! A fixture is made (once per release, before the next migration is added) by the ignored
//! test below: `cargo test --test upgrade -- --ignored` writes
//! `tests/fixtures/upgrade/schema-N/` for today's schema N.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use support::gateway::{Pin, World};
use support::{Env, stderr, stdout};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade")
}

/// What the fixture's API answers that must survive an upgrade: ids, names and states.
async fn summary(http: &support::Http, token: &str) -> Value {
    let mut out = serde_json::Map::new();
    for (key, path, fields) in [
        ("vendors", "/api/v1/vendors", &["id", "name"][..]),
        ("targets", "/api/v1/targets", &["id", "name", "host"][..]),
        ("users", "/api/v1/users", &["id", "username", "role"][..]),
        (
            "requests",
            "/api/v1/requests",
            &[
                "id",
                "number",
                "status",
                "level",
                "reason",
                "window_start",
                "window_end",
            ][..],
        ),
        (
            "sessions",
            "/api/v1/sessions?active=false",
            &[
                "id",
                "level",
                "transport",
                "started_at",
                "ended_at",
                "end",
                "bytes_to_target",
                "bytes_from_target",
                "review",
            ][..],
        ),
    ] {
        let (status, body) = http.get(path, token).await;
        assert_eq!(status, 200, "{path}: {body}");
        let rows = body
            .as_array()
            .or_else(|| body["items"].as_array())
            .unwrap_or_else(|| panic!("{path}: not a list: {body}"));
        let mut rows: Vec<Value> = rows
            .iter()
            .map(|r| {
                fields
                    .iter()
                    .map(|f| ((*f).to_owned(), r[*f].clone()))
                    .collect::<serde_json::Map<_, _>>()
                    .into()
            })
            .collect();
        rows.sort_by_key(|r| r["id"].to_string());
        out.insert(key.to_owned(), Value::Array(rows));
    }
    Value::Object(out)
}

/// Requests as they stand once their windows are over: the server expires one that was still
/// open (submitted, approved, active) when the fixture was made, whenever it next sweeps.
fn windows_over(requests: &Value) -> Value {
    let now = jiff::Timestamp::now();
    let mut requests = requests.clone();
    for r in requests.as_array_mut().unwrap() {
        let end: jiff::Timestamp = r["window_end"].as_str().unwrap().parse().unwrap();
        let open =
            ["submitted", "approved", "active", "expired"].contains(&r["status"].as_str().unwrap());
        if end < now && open {
            r["status"] = json!("over: open or expired");
        }
    }
    requests
}

/// Makes today's fixture. Run by hand when a release is tagged (see the module docs).
#[tokio::test]
#[ignore = "writes tests/fixtures/upgrade/schema-N for today's schema; run when tagging a release"]
async fn make_the_fixture_of_this_release() {
    let w = World::new(Pin::Real)
        .await
        .expect("the fixture needs sshd and test accounts (run as root)");
    w.approved("change").await;
    let out = w
        .ssh("alice+pacs", &["echo made-for-the-upgrade-fixture"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    w.wait_all_ended().await;
    let refused = w.file("change", jiff::SignedDuration::from_hours(2)).await;
    let (status, body) = w
        .http
        .post(
            &format!("/api/v1/requests/{refused}/reject"),
            &w.approver,
            json!({"comment": "not this week"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let schema = sekisho_store::schema_known();
    let dir = fixtures().join(format!("schema-{schema}"));
    assert!(!dir.exists(), "{} exists already", dir.display());
    let mut expected = summary(&w.http, &w.admin).await;
    expected["admin_password"] = json!(w.env.admin_password());
    expected["version"] = json!(env!("CARGO_PKG_VERSION"));
    expected["schema"] = json!(schema);
    let out = w
        .env
        .cli(&["backup", dir.join("backup").to_str().unwrap()], "");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    std::fs::write(
        dir.join("expected.json"),
        serde_json::to_string_pretty(&expected).unwrap() + "\n",
    )
    .unwrap();
    eprintln!("wrote {}", dir.display());
}

#[tokio::test]
async fn every_earlier_release_s_data_is_taken_over_with_nothing_lost() {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(fixtures())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    dirs.sort();
    assert!(!dirs.is_empty(), "no fixture in {}", fixtures().display());
    for dir in dirs {
        eprintln!("--- {}", dir.display());
        let expected: Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("expected.json")).unwrap())
                .unwrap();
        let schema = expected["schema"].as_i64().unwrap();
        assert!(schema <= sekisho_store::schema_known());

        // Restored into a fresh data directory (the backup checks itself first).
        let env = Env::new(None);
        let backup = dir.join("backup");
        let out = env.cli(&["restore", backup.to_str().unwrap()], "");
        assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));

        // This version migrates it as it starts, and the API says what it said before.
        let server = env.serve();
        let http = server.http();
        let token = http
            .login("admin", expected["admin_password"].as_str().unwrap())
            .await;
        let now = summary(&http, &token).await;
        for key in ["vendors", "targets", "users", "sessions"] {
            assert_eq!(now[key], expected[key], "{key} after the upgrade");
        }
        assert_eq!(
            windows_over(&now["requests"]),
            windows_over(&expected["requests"]),
            "requests after the upgrade"
        );
        assert!(
            now["sessions"]
                .as_array()
                .is_some_and(|s| !s.is_empty() && s.iter().all(|s| !s["end"].is_null())),
            "{}",
            now["sessions"]
        );
        drop(server);

        let url = format!("sqlite://{}", env.data_dir().join("sekisho.db").display());
        let store = sekisho_store::Store::open(&url, 1).await.unwrap();
        assert_eq!(store.schema_version().await, sekisho_store::schema_known());
        store.pool().close().await;

        // The evidence made before the upgrade still verifies after it.
        for args in [
            &["audit", "verify"][..],
            &["recording", "verify", "--all"][..],
        ] {
            let out = env.cli(args, "");
            assert!(
                out.status.success(),
                "{args:?}: {}{}",
                stdout(&out),
                stderr(&out)
            );
        }
        // The session's recording is still searchable.
        let out = env.cli(&["recording", "search", "made-for-the-upgrade-fixture"], "");
        assert!(
            out.status.success() && !stdout(&out).trim().is_empty(),
            "{}{}",
            stdout(&out),
            stderr(&out)
        );
    }
}
