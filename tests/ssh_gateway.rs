//! Issue #5 end to end: stock OpenSSH clients (`ssh`, `scp`, `sftp`) through a running
//! `sekisho serve` to a real `sshd` target on 127.0.0.1.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::Write;
use std::process::Stdio;
use std::time::{Duration, Instant};

use jiff::SignedDuration;
use serde_json::json;
use support::gateway::{Pin, World, exited};
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
    // Environment: what [ssh] accept_env allows reaches the target, nothing else.
    let env = w
        .ssh(
            "alice+pacs",
            &[
                "-o",
                "SendEnv=LANG",
                "-o",
                "SendEnv=SEKISHO_SECRET",
                "echo \"$LANG/$SEKISHO_SECRET\"",
            ],
        )
        .env("LANG", "C.UTF-8")
        .env("SEKISHO_SECRET", "leaked")
        .output()
        .unwrap();
    assert_eq!(stdout(&env), "C.UTF-8/\n", "{}", stderr(&env));
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
    // Downloads are reading: allowed, by sftp and by the legacy protocol (whose receiving
    // side begins with a lone zero byte: it must not be held as a possible sftp start).
    for extra in [&[][..], &["-O"][..]] {
        let fetched = w.keys.path().join("passwd");
        let _ = std::fs::remove_file(&fetched);
        let out = w.scp(
            "alice+pacs",
            extra,
            "REMOTE:/etc/passwd",
            fetched.to_str().unwrap(),
        );
        assert!(out.status.success(), "scp {extra:?}: {}", stderr(&out));
        assert_eq!(
            std::fs::read(&fetched).unwrap(),
            std::fs::read("/etc/passwd").unwrap()
        );
    }
    let refused = w.audit("kind=access_denied").await;
    assert!(
        refused
            .iter()
            .any(|e| e["details"]["code"] == "upload_not_allowed"),
        "{refused:?}"
    );

    // Forwarding: none at reference level; remote forwarding never.
    let forward = format!("127.0.0.1:{}", w.sshd.port);
    let out = w.ssh("alice+pacs", &["-W", &forward]).output().unwrap();
    assert!(!out.status.success(), "{}", stdout(&out));
    let remote = w
        .ssh(
            "alice+pacs",
            &[
                "-o",
                "ExitOnForwardFailure=yes",
                "-R",
                "0:127.0.0.1:22",
                "true",
            ],
        )
        .output()
        .unwrap();
    assert!(!remote.status.success());
    // Agent and X11 forwarding: asked for by the client, refused by the gateway, audited.
    let agent_sock = w.keys.path().join("agent.sock");
    let mut agent = std::process::Command::new("ssh-agent")
        .arg("-D")
        .arg("-a")
        .arg(&agent_sock)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    while !agent_sock.exists() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = w
        .ssh(
            "alice+pacs",
            &["-A", "-X", "echo \"agent=$SSH_AUTH_SOCK display=$DISPLAY\""],
        )
        .env("SSH_AUTH_SOCK", &agent_sock)
        .env("DISPLAY", "127.0.0.1:9")
        .output()
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(stdout(&out), "agent= display=\n", "{}", stderr(&out));
    let codes: Vec<String> = w
        .audit("kind=access_denied")
        .await
        .iter()
        .map(|e| e["details"]["code"].as_str().unwrap().to_owned())
        .collect();
    for code in [
        "port_forwarding_not_allowed",
        "remote_forward_refused",
        "agent_forward_refused",
        "x11_forward_refused",
    ] {
        assert!(codes.contains(&code.to_owned()), "{code} not in {codes:?}");
    }

    // A change request maps to the change account, where this target allows uploads.
    w.approved("change").await;
    let out = w.ssh("alice+pacs+change", &["whoami"]).output().unwrap();
    assert_eq!(stdout(&out), "sekisho-rw\n", "{}", stderr(&out));
    // ... and forwarding to its allowed port (here the target's own sshd): its banner.
    let out = w
        .ssh("alice+pacs+change", &["-W", &forward])
        .output()
        .unwrap();
    assert!(
        stdout(&out).starts_with("SSH-2.0-OpenSSH"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let other = w
        .ssh("alice+pacs+change", &["-W", "127.0.0.1:9"])
        .output()
        .unwrap();
    assert!(!other.status.success());
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
    assert_eq!(sessions.len(), 14, "{sessions:?}");
    assert!(
        sessions.iter().all(|s| s["end"] == "closed"),
        "{sessions:?}"
    );
    // The first, `whoami; echo ok`: 14 bytes of output.
    assert_eq!(sessions[13]["bytes_from_target"], 14, "{sessions:?}");
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

#[tokio::test]
async fn an_interactive_session_is_recorded_and_replays_the_typed_command() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    w.approved("reference").await;
    let (child, _stdin) = w.interactive("alice+pacs", b"echo sekisho-$((6*7))-done\nexit\n");
    let out = child.wait_with_output().unwrap();
    assert!(
        stdout(&out).contains("sekisho-42-done"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let session = w.sessions(false).await[0].clone();
    let ended = w.wait_ended(session["id"].as_str().unwrap()).await;
    assert_eq!(ended["end"], "closed");

    // The recording is an asciicast stock asciinema plays; its text has the command and output.
    let dir = w
        .env
        .data_dir()
        .join("recordings")
        .join(session["id"].as_str().unwrap());
    let cast = dir.join("term-0.cast");
    let text = std::fs::read_to_string(&cast).unwrap();
    assert!(
        text.lines().any(|l| l.contains("\"i\"")),
        "no input events: {text}"
    );
    let played = std::process::Command::new("asciinema")
        .arg("cat")
        .arg(&cast)
        .output();
    match played {
        Ok(o) => {
            assert!(o.status.success(), "{}", stderr(&o));
            let screen = stdout(&o);
            assert!(screen.contains("echo sekisho-$((6*7))-done"), "{screen}");
            assert!(screen.contains("sekisho-42-done"), "{screen}");
        }
        Err(e) if std::env::var_os("CI").is_some() => panic!("asciinema: {e}"),
        Err(e) => eprintln!("SKIPPING asciinema replay: {e}"),
    }
    let (status, found) = w
        .http
        .get("/api/v1/recordings/search?q=sekisho-42-done", &w.approver)
        .await;
    assert_eq!(status, 200, "{found}");
    assert!(
        found.to_string().contains(session["id"].as_str().unwrap()),
        "{found}"
    );
    let (status, verify) = w
        .http
        .get(
            &format!(
                "/api/v1/recordings/{}/verify",
                session["id"].as_str().unwrap()
            ),
            &w.approver,
        )
        .await;
    assert_eq!(status, 200, "{verify}");
    assert_eq!(verify["state"], "closed", "{verify}");
    assert_eq!(verify["problems"], json!([]), "{verify}");

    // Reading is evidence too (issue #18): the search and the check are audited with who did
    // them; the same check again soon after is not written twice; an export of the log is.
    for _ in 0..2 {
        let (status, _) = w
            .http
            .get(
                &format!(
                    "/api/v1/recordings/{}/verify",
                    session["id"].as_str().unwrap()
                ),
                &w.approver,
            )
            .await;
        assert_eq!(status, 200);
    }
    let reads = w.audit("kind=recordings_read").await;
    let by = |what: &str| {
        reads
            .iter()
            .filter(|e| e["details"]["what"] == what)
            .cloned()
            .collect::<Vec<_>>()
    };
    let searched = by("search");
    assert_eq!(searched.len(), 1, "{reads:?}");
    assert_eq!(searched[0]["actor"], "hana");
    assert_eq!(searched[0]["details"]["detail"], "sekisho-42-done");
    let verified = by("verify");
    assert_eq!(verified.len(), 1, "{reads:?}");
    assert_eq!(verified[0]["details"]["recording"], session["id"]);
    let csv = w
        .http
        .client
        .get(format!(
            "{}/api/v1/audit?format=csv&kind=recordings_read",
            w.http.base
        ))
        .bearer_auth(&w.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(csv.status(), 200);
    let exported = w.audit("kind=audit_exported").await;
    assert_eq!(exported.len(), 1, "{exported:?}");
    assert_eq!(exported[0]["actor"], "admin");
    assert_eq!(exported[0]["details"]["format"], "csv");
    assert_eq!(exported[0]["details"]["filter"], "kind=recordings_read");
}

/// Starts `ssh ... 'sleep 60'`, waits until it runs on the target (not only admitted: the
/// session row exists a moment before the channel, and a session ended in between refuses
/// the channel instead of telling why on it), and returns it with the session.
async fn sleeping(w: &World, login: &str) -> (std::process::Child, serde_json::Value) {
    let mut child = w
        .ssh(login, &["echo started; sleep 60"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    assert_eq!(first, "started\n");
    let session = w.wait_live().await;
    (child, session)
}

#[tokio::test]
async fn revocation_and_terminate_end_a_running_session_within_a_second() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    let request = w.approved("reference").await;

    // An approver terminates one session.
    let (child, session) = sleeping(&w, "alice+pacs").await;
    let id = session["id"].as_str().unwrap();
    w.terminate(id).await;
    let (out, took) = exited(child, Duration::from_secs(5));
    assert!(took < Duration::from_secs(1), "terminate took {took:?}");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("session ended: an approver terminated this session"),
        "{}",
        stderr(&out)
    );
    assert_eq!(w.wait_ended(id).await["end"], "terminated");

    // Revoking the request ends the next one; live listings show it until then.
    let (child, session) = sleeping(&w, "alice+pacs").await;
    assert_eq!(session["request_id"], request.as_str());
    assert_eq!(
        (
            &session["username"],
            &session["target"],
            &session["request_number"],
            &session["level"]
        ),
        (
            &json!("alice"),
            &json!("pacs"),
            &json!(1),
            &json!("reference")
        ),
        "{session}"
    );
    assert!(session["ended_at"].is_null());
    w.revoke(&request).await;
    let (out, took) = exited(child, Duration::from_secs(5));
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    assert!(
        stderr(&out).contains("session ended: request R-1 was revoked"),
        "{}",
        stderr(&out)
    );
    let ended = w.wait_ended(session["id"].as_str().unwrap()).await;
    assert_eq!(ended["end"], "revoked");
    // And the revoked request admits nobody.
    let out = w.ssh("alice+pacs", &["true"]).output().unwrap();
    assert!(
        stderr(&out).contains("request R-1 for pacs is revoked"),
        "{}",
        stderr(&out)
    );

    // Disabling the account ends its live session too.
    w.approved("reference").await;
    let (child, session) = sleeping(&w, "alice+pacs").await;
    w.disable_alice().await;
    let (out, took) = exited(child, Duration::from_secs(5));
    assert!(took < Duration::from_secs(1), "disabling took {took:?}");
    assert!(
        stderr(&out).contains("session ended: account alice was disabled"),
        "{}",
        stderr(&out)
    );
    w.wait_ended(session["id"].as_str().unwrap()).await;
    let ends: Vec<String> = w
        .audit("kind=session_ended")
        .await
        .iter()
        .map(|e| e["details"]["how"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ends, ["revoked", "revoked", "terminated"]);
}

#[tokio::test]
async fn ending_a_vendors_assignment_ends_its_live_session_and_refuses_the_next() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    w.approved("reference").await;
    let (child, session) = sleeping(&w, "alice+pacs").await;
    // The contract ends now: the live session is cut at once (every node re-checks).
    let now = jiff::Timestamp::now().to_string();
    let (status, body) = w
        .http
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/assignments/{}", w.assignment_id),
            Some(&w.admin),
            Some(json!({"ends_at": now})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (out, took) = exited(child, Duration::from_secs(15));
    assert!(
        took < Duration::from_secs(2),
        "the contract's end took {took:?}"
    );
    assert!(
        stderr(&out)
            .contains("session ended: your vendor's maintenance contract for pacs ended on"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        w.wait_ended(session["id"].as_str().unwrap()).await["end"],
        "revoked"
    );
    // Removed altogether, the target is refused with the reason, and the refusal audited.
    let (status, body) = w
        .http
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/assignments/{}", w.assignment_id),
            Some(&w.admin),
            None,
        )
        .await;
    assert_eq!(status, 204, "{body}");
    let out = w.ssh("alice+pacs", &["true"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("your vendor is not assigned to pacs"),
        "{}",
        stderr(&out)
    );
    let denied = w.audit("kind=access_denied").await;
    let codes: Vec<&str> = denied
        .iter()
        .map(|e| e["details"]["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"not_assigned"), "{codes:?}");
}

#[tokio::test]
async fn the_window_end_closes_the_session_after_a_warning() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    let id = w.file("reference", SignedDuration::from_secs(8)).await;
    w.approve(&id).await;
    let (child, session) = sleeping(&w, "alice+pacs").await;
    let (out, took) = exited(child, Duration::from_secs(20));
    assert!(took < Duration::from_secs(10), "window end took {took:?}");
    let err = stderr(&out);
    assert!(
        err.contains("the window of request R-1 closes at")
            && err.contains("in less than a minute"),
        "{err}"
    );
    assert!(
        err.contains("session ended: the window of request R-1 ended at"),
        "{err}"
    );
    let ended = w.wait_ended(session["id"].as_str().unwrap()).await;
    assert_eq!(ended["end"], "window_ended");
}

#[tokio::test]
async fn a_target_presenting_another_host_key_is_refused() {
    let Some(w) = World::new(Pin::Wrong).await else {
        return;
    };
    w.approved("reference").await;
    let out = w.ssh("alice+pacs", &["whoami"]).output().unwrap();
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("the host key of pacs does not match the pinned key"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty());
    let denied = w.audit("kind=access_denied").await;
    assert_eq!(
        denied[0]["details"]["code"], "host_key_mismatch",
        "{denied:?}"
    );
    assert!(w.sessions(false).await.is_empty());

    // Unknown accounts and unregistered keys get the stock refusal, audited.
    let out = w.ssh("bob+pacs", &["true"]).output().unwrap();
    assert_eq!(out.status.code(), Some(255));
    assert!(
        stderr(&out).contains("Permission denied (publickey)"),
        "{}",
        stderr(&out)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let denied = w.audit("kind=access_denied").await;
        if denied[0]["actor"] == "anonymous:bob+pacs" {
            assert_eq!(denied[0]["details"]["code"], "unknown_user", "{denied:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "refused login not audited: {denied:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn no_unrecorded_access_and_sessions_of_a_stopped_or_killed_gateway_are_aborted() {
    let Some(mut w) = World::new(Pin::Real).await else {
        return;
    };
    w.approved("reference").await;
    // Stopping the gateway ends live sessions as aborted, with the reason shown.
    let (child, session) = sleeping(&w, "alice+pacs").await;
    assert!(w.server.take().unwrap().terminate().success());
    let (out, _) = exited(child, Duration::from_secs(10));
    assert!(
        stderr(&out).contains("session ended: the gateway is shutting down"),
        "{}",
        stderr(&out)
    );
    w.restart().await;
    let s = w.wait_ended(session["id"].as_str().unwrap()).await;
    assert_eq!(s["end"], "aborted", "{s}");

    // A session is live when the gateway dies.
    let (child, session) = sleeping(&w, "alice+pacs").await;
    let id = session["id"].as_str().unwrap().to_owned();
    let server = w.server.as_mut().unwrap();
    server.child.kill().unwrap();
    server.child.wait().unwrap();
    let (out, _) = exited(child, Duration::from_secs(10));
    assert!(!out.status.success());
    // The next start marks it aborted and seals its recording.
    w.restart().await;
    let s = w.wait_ended(&id).await;
    assert_eq!(s["end"], "aborted", "{s}");
    let (_, verify) = w
        .http
        .get(&format!("/api/v1/recordings/{id}/verify"), &w.approver)
        .await;
    assert_eq!(verify["state"], "aborted", "{verify}");

    // When recordings cannot be written, sessions are refused, with the reason.
    let recordings = w.env.data_dir().join("recordings");
    std::fs::rename(&recordings, recordings.with_extension("moved")).unwrap();
    std::fs::write(&recordings, "not a directory").unwrap();
    let out = w.ssh("alice+pacs", &["whoami"]).output().unwrap();
    assert!(!out.status.success());
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("the session cannot be recorded"),
        "{}",
        stderr(&out)
    );
    let denied = w.audit("kind=access_denied").await;
    assert_eq!(
        denied[0]["details"]["code"], "recording_unavailable",
        "{denied:?}"
    );
}

#[tokio::test]
async fn a_session_on_postgresql() {
    let Some(db) = sekisho_testkit::postgres().await else {
        return;
    };
    db.store.close().await;
    let env = support::Env::new(Some(&db.url));
    let Some(w) = World::with_env(env, Pin::Real).await else {
        return;
    };
    w.approved("reference").await;
    let out = w.ssh("alice+pacs", &["whoami"]).output().unwrap();
    assert_eq!(stdout(&out), "sekisho-ro\n", "{}", stderr(&out));
    w.wait_all_ended().await;
    let sessions = w.sessions(false).await;
    assert_eq!(sessions.len(), 1);
    assert_eq!(sessions[0]["end"], "closed");
    assert_eq!(sessions[0]["bytes_from_target"], 11);
    let (_, verify) = w.http.get("/api/v1/audit/verify", &w.approver).await;
    assert_eq!(verify["intact"], true, "{verify}");
    let (_, request) = w
        .http
        .get(
            &format!(
                "/api/v1/requests/{}",
                sessions[0]["request_id"].as_str().unwrap()
            ),
            &w.approver,
        )
        .await;
    assert_eq!(request["status"], "active", "{request}");
}

#[tokio::test]
async fn bulk_data_both_ways_at_once_does_not_stall() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    // Change level: it allows upload, so the input bound of levels without upload (issue
    // #12) does not apply and the flow control is what is tested.
    w.approved("change").await;
    // 64 MiB into `cat` and back: both directions are full for the whole transfer, far beyond
    // every window and buffer on the way.
    let mut child = w
        .ssh("alice+pacs", &["cat"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        let block: Vec<u8> = (0..1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
        for _ in 0..64 {
            stdin.write_all(&block).unwrap();
        }
    });
    let mut stdout_pipe = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut n = 0u64;
        let mut buf = vec![0u8; 1 << 16];
        loop {
            match std::io::Read::read(&mut stdout_pipe, &mut buf) {
                Ok(0) | Err(_) => return n,
                Ok(k) => n += k as u64,
            }
        }
    });
    let started = Instant::now();
    while !writer.is_finished() || !reader.is_finished() {
        if started.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            panic!("stalled: relayed both ways for 60 s without finishing");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    writer.join().unwrap();
    assert_eq!(reader.join().unwrap(), 64 * 1024 * 1024);
    assert!(child.wait().unwrap().success());
}

/// Resident memory of process `pid`, in bytes.
fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().strip_suffix("kB"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    kb * 1024
}

#[tokio::test]
async fn a_stalled_side_slows_the_other_and_gateway_memory_stays_bounded() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    // Change level, as above: flow control, not the input bound, must stop the writes.
    w.approved("change").await;
    let pid = w.server.as_ref().unwrap().child.id();
    let before = rss(pid);

    // A target that reads nothing: the vendor's writes must stop, not pile up in the gateway.
    let mut child = w
        .ssh("alice+pacs", &["sleep 30"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let written = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let counter = written.clone();
    std::thread::spawn(move || {
        let block = vec![b'x'; 64 * 1024];
        while stdin.write_all(&block).is_ok() {
            counter.fetch_add(block.len() as u64, std::sync::atomic::Ordering::Relaxed);
        }
    });
    // A vendor that reads nothing while the target writes as fast as it can.
    let mut flood = w
        .ssh("alice+pacs", &["yes sekisho"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(6)).await;
    let pushed = written.load(std::sync::atomic::Ordering::Relaxed);
    let grown = rss(pid).saturating_sub(before);
    for c in [&mut child, &mut flood] {
        let _ = c.kill();
        let _ = c.wait();
    }
    eprintln!(
        "accepted for a non-reading target: {pushed} bytes; gateway memory growth: {grown} bytes"
    );
    assert!(
        pushed < 64 * 1024 * 1024,
        "{pushed} bytes accepted for a target that reads nothing"
    );
    assert!(
        grown < 96 * 1024 * 1024,
        "gateway memory grew by {grown} bytes with both sides stalled"
    );
}

#[tokio::test]
async fn an_approved_request_admits_behind_hundreds_of_newer_ended_ones() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    let approved = w.approved("reference").await;
    // More newer requests than an admission ever reads at once (500), each with a window of a
    // few seconds: once they have ended, an admission that read the engineer's newest requests
    // would see only these and refuse although an approved one covers now.
    let newer = 520;
    let window = SignedDuration::from_secs(4);
    let mut filing = tokio::task::JoinSet::new();
    for worker in 0..4 {
        let (http, token) = (w.http.clone(), w.alice.clone());
        filing.spawn(async move {
            for _ in (worker..newer).step_by(4) {
                let now = jiff::Timestamp::now();
                let (status, body) = http
                    .post(
                        "/api/v1/requests",
                        &token,
                        json!({"target": "pacs", "level": "reference",
                            "window_start": now.to_string(),
                            "window_end": (now + window).to_string(),
                            "reason": "a short look", "plan": "none"}),
                    )
                    .await;
                assert_eq!(status, 201, "{body}");
            }
        });
    }
    while let Some(done) = filing.join_next().await {
        done.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(4_500)).await;

    // The API's `open` filter: only the request whose window has not ended.
    let (status, open) = w.http.get("/api/v1/requests?open=true", &w.approver).await;
    assert_eq!(status, 200, "{open}");
    let ids: Vec<&str> = open
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [approved.as_str()]);
    let (_, all) = w.http.get("/api/v1/requests?limit=1000", &w.approver).await;
    assert_eq!(all.as_array().unwrap().len(), newer + 1);

    let out = w.ssh("alice+pacs", &["whoami"]).output().unwrap();
    assert!(out.status.success(), "{}\n{}", stderr(&out), w.log());
    assert_eq!(stdout(&out), "sekisho-ro\n");
}

/// A live session's byte counts reach `GET /api/v1/sessions?active=true` while it runs (the
/// node writes every live session's counts together, once a period).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_sessions_byte_counts_are_listed_while_it_runs() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    w.approved("reference").await;
    let mut child = support::nodes::ssh_via(
        &w,
        w.ssh_port,
        "head -c 5000 /dev/zero | tr '\\0' x; echo; echo ready; sleep 60",
    );
    let session = support::nodes::live(&w, &mut child).await;
    let deadline = Instant::now() + Duration::from_secs(15);
    let listed = loop {
        let (status, body) = w
            .http
            .get("/api/v1/sessions?active=true", &w.approver)
            .await;
        assert_eq!(status, 200, "{body}");
        let me = body
            .as_array()
            .and_then(|a| a.iter().find(|s| s["id"] == session["id"]).cloned());
        if let Some(s) = &me
            && s["bytes_from_target"].as_u64().unwrap_or(0) >= 5000
        {
            break s.clone();
        }
        assert!(
            Instant::now() < deadline,
            "never listed with its bytes: {me:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    assert!(listed["ended_at"].is_null(), "{listed}");
    w.terminate(session["id"].as_str().unwrap()).await;
    let _ = exited(child, Duration::from_secs(10));
}
