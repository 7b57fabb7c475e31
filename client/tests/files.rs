//! Issue #16 with the designated client: `sekisho-client put` and `get` go the same way as
//! stock scp (the gateway's sftp relay): each file logged with its hash, uploads scanned in
//! quarantine before they reach the target.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tests/support/mod.rs"]
mod support;

use std::process::Output;

use support::gateway::{Pin, World, client_command};
use support::{Env, stderr};

const CLIENT: &str = env!("CARGO_BIN_EXE_sekisho-client");

fn client(dir: &std::path::Path, args: &[&str]) -> Output {
    client_command(CLIENT, dir, args).output().unwrap()
}

#[tokio::test]
async fn put_and_get_go_through_the_gateway_logged_and_scanned() {
    let (_hooks, hook) = support::script(
        "if grep -q BLOCKME \"$1\"; then echo 'blocked by the test sanitizer'; exit 1; fi\nexit 0\n",
    );
    let env = Env::new(None);
    env.configure(&format!(
        "[files]\nscan_command = [\"{}\"]\n",
        hook.display()
    ));
    let Some(w) = World::with_env(env, Pin::FirstUse).await else {
        return;
    };
    let dir = w.keys.path().join("client");
    w.enroll_client(CLIENT, &dir).await;
    w.approved("change").await;
    let shared = support::SharedDir::new("client-put");
    let remote = shared.0.clone();
    let local = tempfile::tempdir().unwrap();

    // put: the file arrives; logged as an upload through the QUIC session.
    let notes = local.path().join("notes.txt");
    std::fs::write(&notes, "firmware 2.1 notes\n").unwrap();
    let dest = remote.join("notes.txt").display().to_string();
    let out = client(
        &dir,
        &["put", "pacs+change", notes.to_str().unwrap(), &dest],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&dest).unwrap(), b"firmware 2.1 notes\n");

    // A file the scanner blocks never arrives, and the client says why.
    let bad = local.path().join("bad.txt");
    std::fs::write(&bad, "BLOCKME").unwrap();
    let bad_dest = remote.join("bad.txt").display().to_string();
    let out = client(
        &dir,
        &["put", "pacs+change", bad.to_str().unwrap(), &bad_dest],
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("blocked: blocked by the test sanitizer"),
        "{}",
        stderr(&out)
    );
    assert!(!std::path::Path::new(&bad_dest).exists());

    // get: the bytes come back, logged as a download.
    let back = local.path().join("back.txt");
    let out = client(&dir, &["get", "pacs+change", &dest, back.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&back).unwrap(), b"firmware 2.1 notes\n");

    // Not a file: a clear message, nothing run.
    let out = client(&dir, &["put", "pacs+change", "/nonexistent/x", &dest]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("/nonexistent/x is not a file"),
        "{}",
        stderr(&out)
    );

    let (status, files) = w.http.get("/api/v1/files?limit=100", &w.admin).await;
    assert_eq!(status, 200, "{files}");
    let outcomes: Vec<(String, String, String)> = files
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["direction"].as_str().unwrap().to_owned(),
                f["path"].as_str().unwrap().to_owned(),
                f["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    for want in [
        ("upload", dest.as_str(), "completed"),
        ("upload", bad_dest.as_str(), "blocked"),
        ("download", dest.as_str(), "completed"),
    ] {
        assert!(
            outcomes
                .iter()
                .any(|(d, p, o)| d == want.0 && p == want.1 && o == want.2),
            "{want:?} not in {outcomes:?}"
        );
    }
    let sessions = w.sessions(false).await;
    assert!(
        sessions.iter().all(|s| s["transport"] == "quic"),
        "{sessions:?}"
    );
}
