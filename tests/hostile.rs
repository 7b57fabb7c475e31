//! Issue #12: what a hostile new user found in an hour against a running Sekisho, each
//! reproduced against the real `sekisho serve` (and a real `sshd`, `ssh`, a small tmpfs) and
//! shown fixed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::gateway::{Pin, World};
use support::{Env, stderr};

/// A full disk fails closed (refusals, nothing half-written), and once space is freed the
/// service is back within seconds without a restart: no pooled database connection is left
/// inside a transaction whose COMMIT failed.
#[tokio::test]
async fn a_full_disk_fails_closed_and_the_service_recovers_when_space_is_freed() {
    let Some(disk) = sekisho_testkit::fs::Tmpfs::mount(48) else {
        return;
    };
    let env = Env::with_data_dir(&disk.path().join("data"));
    let Some(w) = World::with_env(env, Pin::Real).await else {
        return;
    };
    w.approved("reference").await;
    let ssh_ok = |w: &World| {
        let out = w.ssh("alice+pacs", &["echo", "through"]).output().unwrap();
        (
            out.status.success(),
            format!("{}{}", support::stdout(&out), stderr(&out)),
        )
    };
    let (ok, printed) = ssh_ok(&w);
    assert!(ok, "{printed}");

    let filler = disk.fill("filler");
    // Full: state changes are refused (503, nothing changed), and so are sessions.
    let mut refused = 0;
    for i in 0..5 {
        let (status, body) = w
            .http
            .post(
                "/api/v1/vendors",
                &w.admin,
                json!({"name": format!("Full {i}"), "contact": {"name": "Sato"}}),
            )
            .await;
        assert_ne!(status, 201, "a vendor was created on a full disk: {body}");
        if status == 503 {
            assert_eq!(body["error"]["code"], "database_unavailable", "{body}");
            refused += 1;
        }
    }
    assert!(refused > 0, "no 503 while the disk was full");
    let (ok, printed) = ssh_ok(&w);
    assert!(!ok, "a session was admitted on a full disk: {printed}");

    // Space again: back within seconds, every time, without a restart.
    std::fs::remove_file(&filler).unwrap();
    let freed = Instant::now();
    loop {
        let (status, _) = w
            .http
            .post(
                "/api/v1/vendors",
                &w.admin,
                json!({"name": "After the disk filled", "contact": {"name": "Sato"}}),
            )
            .await;
        if status == 201 {
            break;
        }
        assert!(
            freed.elapsed() < Duration::from_secs(10),
            "still refusing {status} {:?} after space was freed\n{}",
            freed.elapsed(),
            w.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for i in 0..8 {
        let (status, body) = w
            .http
            .post(
                "/api/v1/vendors",
                &w.admin,
                json!({"name": format!("Recovered {i}"), "contact": {"name": "Sato"}}),
            )
            .await;
        assert_eq!(status, 201, "{body}\n{}", w.log());
        let admin_pw = w.env.admin_password();
        let (status, body) = w
            .http
            .send(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": "admin", "password": admin_pw})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    for _ in 0..3 {
        let (ok, printed) = ssh_ok(&w);
        assert!(ok, "ssh after recovery: {printed}\n{}", w.log());
    }
    drop(w);
    drop(disk);
}
