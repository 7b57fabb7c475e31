//! Issue #17, the second factor of a vendor engineer's session through a running `sekisho
//! serve`, with stock OpenSSH: the key, then the one-time code by keyboard-interactive (typed
//! through `SSH_ASKPASS`, as a person types it at the prompt). Wrong codes are asked again and
//! shown why, count toward the account's hold, a used code is refused, and a role that must
//! use a second factor without one is told to enrol; every refusal is audited.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::gateway::{Pin, World, ssh_options, totp_in};
use support::{script, stderr, stdout};

/// `ssh alice+pacs@gateway ARGS` that answers the code prompt with the content of `code`
/// (the way a person types it: OpenSSH's askpass, forced), showing what the gateway says.
fn ssh_typing(w: &World, code: &Path, args: &[&str]) -> Output {
    let (_dir, askpass) = script(&format!("cat '{}'\n", code.display()));
    Command::new("ssh")
        // First wins: these override the batch mode and quiet log of the usual options.
        .args(["-o", "BatchMode=no", "-o", "LogLevel=INFO"])
        .args(["-o", "NumberOfPasswordPrompts=3"])
        .arg("-p")
        .arg(w.ssh_port.to_string())
        .args(ssh_options(&w.alice_key))
        .arg("alice+pacs@127.0.0.1")
        .args(args)
        .env("SSH_ASKPASS", &askpass)
        .env("SSH_ASKPASS_REQUIRE", "force")
        .env("DISPLAY", ":sekisho-test")
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// Access denials of `code` in the audit log.
async fn denials(w: &World, code: &str) -> Vec<Value> {
    w.audit("kind=access_denied&limit=200")
        .await
        .into_iter()
        .filter(|e| e["details"]["code"] == code)
        .collect()
}

/// Waits until the audit log holds at least `n` denials of `code` (a refused login is
/// audited as its connection goes).
async fn await_denials(w: &World, code: &str, n: usize) -> Vec<Value> {
    for _ in 0..100 {
        let found = denials(w, code).await;
        if found.len() >= n {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "fewer than {n} denials {code}: {:?}",
        denials(w, code).await
    );
}

#[tokio::test]
async fn ssh_sessions_need_the_key_and_then_the_one_time_code() {
    let Some(mut w) = World::new(Pin::Real).await else {
        return;
    };
    w.approved("reference").await;
    // Before enrolment the key alone is enough.
    let out = w.ssh("alice+pacs", &["echo", "key-only"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stderr(&out), w.log());

    let (secret, _) = w.enrol_mfa("alice", "vendor password 1").await;
    let codes = tempfile::tempdir().unwrap();
    let code = codes.path().join("code");

    // The key alone is no longer enough: a client that cannot answer the prompt is refused
    // (and the login that never finished is audited).
    let out = w.ssh("alice+pacs", &["echo", "key-only"]).output().unwrap();
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("Permission denied"),
        "{}",
        stderr(&out)
    );
    await_denials(&w, "mfa_required", 1).await;

    // Three wrong codes on one connection: each is asked again with the reason, then the
    // login fails. Two more on the next connection reach the account's hold (five wrong codes
    // in a row, `[api] login_max_failures`), and its third try is held back with the reason.
    std::fs::write(&code, "000000\n").unwrap();
    let out = ssh_typing(&w, &code, &["echo", "never"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert_eq!(
        err.matches("Sekisho: wrong one-time code").count(),
        3,
        "asked again twice with the reason, then refused with it: {err}"
    );
    assert!(err.contains("Permission denied"), "{err}");
    assert!(!stdout(&out).contains("never"));
    // On a busy machine the next try may come after the first 1 s hold has passed: it is
    // then one more wrong code, and the hold doubles, so a later try meets it.
    let mut held = None;
    for _ in 0..4 {
        let out = ssh_typing(&w, &code, &["echo", "never"]);
        let err = stderr(&out);
        assert!(!out.status.success(), "{err}");
        if let Some(rest) = err
            .split("Sekisho: too many wrong one-time codes; try again in ")
            .nth(1)
        {
            held = rest
                .split_whitespace()
                .next()
                .and_then(|s| s.parse::<u64>().ok());
            break;
        }
        assert!(err.contains("Sekisho: wrong one-time code"), "{err}");
    }
    let held = held.expect("the account's second factor was never held back");
    let wrong = await_denials(&w, "wrong_one_time_code", 5).await;
    assert!(wrong.iter().all(|e| e["actor"] == "alice"), "{wrong:?}");
    await_denials(&w, "too_many_failures", 1).await;

    // The hold passes; the right code opens the session, and the vendor never typed a
    // target password. (Enrolment used the current code, so this is the next one, which the
    // gateway accepts a step early.)
    tokio::time::sleep(Duration::from_secs(held + 1)).await;
    let current = totp_in(&secret, 1);
    std::fs::write(&code, format!("{current}\n")).unwrap();
    let out = ssh_typing(&w, &code, &["echo", "with-code"]);
    assert!(out.status.success(), "{}\n{}", stderr(&out), w.log());
    assert_eq!(stdout(&out).trim(), "with-code");

    // The same code again (a replay within its period) is refused, with the reason.
    let out = ssh_typing(&w, &code, &["echo", "replayed"]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("Sekisho: this one-time code has been used already"),
        "{err}"
    );
    await_denials(&w, "one_time_code_replayed", 1).await;

    // The hospital requires a second factor of every vendor engineer, and alice lost hers
    // (an admin reset it): her key alone gets her the reason, not a session.
    let (status, body) = w
        .http
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/users/{}/mfa", w.alice_id),
            Some(&w.admin),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    w.env.configure("[policy]\nmfa_required = [\"vendor\"]\n");
    w.server.take().unwrap().terminate();
    w.restart().await;
    let out = w.ssh("alice+pacs", &["echo", "never"]).output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("alice must use a second factor: log in to the Sekisho console once"),
        "{err}"
    );
    await_denials(&w, "mfa_enrollment_required", 1).await;
}
