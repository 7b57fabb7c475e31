//! Issue #5 end to end: stock OpenSSH clients (`ssh`, `scp`, `sftp`) through a running
//! `sekisho serve` to a real `sshd` target on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use serde_json::json;
use support::gateway::{Pin, World};
use support::{stderr, stdout};

#[tokio::test]
async fn levels_map_to_their_accounts_and_uploads_follow_the_target_policy() {
    let Some(w) = World::new(Pin::FirstUse).await else {
        return;
    };
    // Before approval: refused, with the reason in the vendor's terminal, and audited.
    let pending = w.file("reference", SignedDuration::from_hours(1)).await;
    let out = w.ssh("alice+pacs", &["whoami"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("access to pacs refused: request R-1 for pacs is pending approval"),
        "{}",
        stderr(&out)
    );
    let denied = w.audit("kind=access_denied").await;
    assert_eq!(
        denied[0]["details"]["code"], "pending_approval",
        "{denied:?}"
    );
    assert_eq!(denied[0]["actor"], "alice", "{denied:?}");

    // After approval: the reference account, output and exit codes as on the target.
    w.approve(&pending).await;
    let out = w.ssh("alice+pacs", &["whoami; echo ok"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "sekisho-ro\nok\n");
    let out = w
        .ssh("alice+pacs", &["echo to-stderr >&2; exit 7"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(stderr(&out), "to-stderr\n");
    // The host key was pinned on first use, and audited.
    let pinned = w.audit("kind=host_key_pinned").await;
    assert_eq!(pinned.len(), 1, "{pinned:?}");

    // Uploads at reference level are refused, by sftp-based scp and by legacy scp.
    let local = w.keys.path().join("upload.txt");
    std::fs::write(&local, "firmware notes\n").unwrap();
    let dest = "/tmp/sekisho-ref-upload.txt";
    let _ = std::fs::remove_file(dest);
    for extra in [&[][..], &["-O"][..]] {
        let out = w.scp(
            "alice+pacs",
            extra,
            local.to_str().unwrap(),
            &format!("REMOTE:{dest}"),
        );
        assert!(
            !out.status.success(),
            "scp {extra:?} upload succeeded at reference level"
        );
        assert!(
            stderr(&out).contains("file upload to pacs is not allowed at reference level"),
            "scp {extra:?}: {}",
            stderr(&out)
        );
        assert!(!std::path::Path::new(dest).exists());
    }
    // Downloads are reading: allowed.
    let fetched = w.keys.path().join("passwd");
    let out = w.scp(
        "alice+pacs",
        &[],
        "REMOTE:/etc/passwd",
        fetched.to_str().unwrap(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(&fetched).unwrap(),
        std::fs::read("/etc/passwd").unwrap()
    );
    let refused = w.audit("kind=access_denied").await;
    assert!(
        refused
            .iter()
            .any(|e| e["details"]["code"] == "upload_not_allowed"),
        "{refused:?}"
    );

    // A change request maps to the change account, where this target allows uploads.
    w.approved("change").await;
    let out = w.ssh("alice+pacs+change", &["whoami"]).output().unwrap();
    assert_eq!(stdout(&out), "sekisho-rw\n", "{}", stderr(&out));
    let dest = "/tmp/sekisho-change-upload.txt";
    let _ = std::fs::remove_file(dest);
    let out = w.scp(
        "alice+pacs+change",
        &[],
        local.to_str().unwrap(),
        &format!("REMOTE:{dest}"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read_to_string(dest).unwrap(), "firmware notes\n");
    let owner = std::process::Command::new("stat")
        .args(["-c", "%U", dest])
        .output()
        .unwrap();
    assert_eq!(stdout(&owner).trim(), "sekisho-rw");
    std::fs::remove_file(dest).unwrap();

    // Every session ended, with its bytes, and its recording's hash is in the audit log.
    w.wait_all_ended().await;
    let sessions = w.sessions(false).await;
    assert_eq!(sessions.len(), 7, "{sessions:?}");
    assert!(
        sessions.iter().all(|s| s["end"] == "closed"),
        "{sessions:?}"
    );
    // The first, `whoami; echo ok`: 14 bytes of output.
    assert_eq!(sessions[6]["bytes_from_target"], 14, "{sessions:?}");
    let sealed = w.audit("kind=recording_closed").await;
    assert_eq!(sealed.len(), sessions.len(), "{sealed:?}");
    assert_eq!(
        sealed[0]["details"]["manifest_sha256"]
            .as_str()
            .unwrap()
            .len(),
        64,
        "{sealed:?}"
    );
}
