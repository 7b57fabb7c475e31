//! Issue #6 end to end: `sekisho-client` enrolls with a one-time code over QUIC and runs the
//! stock `ssh` through the gateway to a real `sshd`, with the client certificate as the only
//! credential.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tests/support/mod.rs"]
mod support;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::json;
use support::gateway::{Pin, World, client_command, client_tunnel, exited};
use support::{stderr, stdout};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CLIENT: &str = env!("CARGO_BIN_EXE_sekisho-client");

fn client(dir: &std::path::Path, args: &[&str]) -> Output {
    client_command(CLIENT, dir, args).output().unwrap()
}

/// A refusal: non-zero exit, and `reason` printed.
fn refused(out: &Output, reason: &str) {
    assert!(!out.status.success(), "{}", stdout(out));
    assert!(
        stderr(out).contains(reason),
        "wanted {reason:?} in: {}",
        stderr(out)
    );
}

/// `sekisho-client enroll` with alice's password on stdin.
fn enroll(dir: &std::path::Path, gateway: &str, code: &str, fingerprint: &str) -> Output {
    enroll_with_password(dir, gateway, code, fingerprint, "vendor password 1")
}

fn enroll_with_password(
    dir: &std::path::Path,
    gateway: &str,
    code: &str,
    fingerprint: &str,
    password: &str,
) -> Output {
    support::gateway::enroll_with_password(CLIENT, dir, gateway, code, fingerprint, password)
}

/// Enrolls alice's client in `dir`.
async fn enrolled(w: &World, dir: &std::path::Path) {
    w.enroll_client(CLIENT, dir).await;
}

/// The code alone does not enroll: whoever issued it (IT) could otherwise enroll as the
/// engineer. The engineer's own password must come with it, and a wrong one voids the code.
#[tokio::test]
async fn enrollment_needs_the_engineers_own_password_and_a_wrong_one_voids_the_code() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    let gateway = w.quic_addr();
    let (code, fingerprint) = w.enrollment_code().await;
    let dir = w.keys.path().join("client");
    let out = enroll_with_password(&dir, &gateway, &code, &fingerprint, "not alice's password");
    refused(
        &out,
        "wrong password for alice: this enrollment code is now void; ask the hospital's IT for a new one",
    );
    // The code is used up: the right password does not bring it back.
    refused(
        &enroll(&dir, &gateway, &code, &fingerprint),
        "the enrollment code is unknown, already used or expired",
    );
    assert!(!dir.join("client.crt").exists());
    let denied = w.audit("kind=access_denied").await;
    assert!(
        denied
            .iter()
            .any(|e| e["details"]["code"] == "enrollment_password"),
        "{denied:?}"
    );
    // No password at all (an old client, or none typed): refused before anything is sent.
    let mut child = client_command(
        CLIENT,
        &dir,
        &[
            "enroll",
            "--gateway",
            &gateway,
            "--code",
            &code,
            "--fingerprint",
            &fingerprint,
            "--password-stdin",
        ],
    )
    .spawn()
    .unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    refused(&out, "no password given");
}

#[tokio::test]
async fn enroll_then_ssh_through_the_gateway_with_the_client_certificate() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    let gateway = w.quic_addr();
    let (code, fingerprint) = w.enrollment_code().await;
    let dir = w.keys.path().join("client");

    // A wrong pin: refused before anything is sent.
    let wrong = format!("SHA256:{}", "ab".repeat(32));
    refused(&enroll(&dir, &gateway, &code, &wrong), "not the pinned");
    // Before enrolling, nothing to connect with.
    refused(
        &client(&dir, &["ssh", "pacs", "--", "true"]),
        "enroll first",
    );

    let out = enroll(&dir, &gateway, &code, &fingerprint);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(
        stdout(&out).contains("Enrolled as alice"),
        "{}",
        stdout(&out)
    );
    for f in [
        "client.key",
        "client.crt",
        "ca.crt",
        "known_hosts",
        "enrollment.json",
    ] {
        let mode = std::fs::metadata(dir.join(f)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{f}");
    }
    // The code was for one use.
    let again = enroll(&dir.join("second"), &gateway, &code, &fingerprint);
    refused(
        &again,
        "the enrollment code is unknown, already used or expired",
    );

    // Refused until a request is approved, with the reason.
    refused(
        &client(&dir, &["ssh", "pacs", "--", "whoami"]),
        "no approved request for pacs covers",
    );

    // The engineer files the request with the client; IT approves it.
    let now = jiff::Timestamp::now();
    let (from, until) = (
        now.to_string(),
        (now + jiff::SignedDuration::from_hours(1)).to_string(),
    );
    let plan = dir.join("plan.txt");
    std::fs::write(&plan, "1. collect the logs\n2. leave").unwrap();
    let file = |level: &str, from: &str| {
        client(
            &dir,
            &[
                "request",
                "--target",
                "pacs",
                "--level",
                level,
                "--from",
                from,
                "--until",
                &until,
                "--reason",
                "log collection",
                "--plan",
                plan.to_str().unwrap(),
            ],
        )
    };
    refused(
        &file("root", &from),
        "level: must be `reference` or `change`",
    );
    refused(
        &file("reference", "tomorrow"),
        "`tomorrow` is not an RFC 3339 time",
    );
    let out = file("reference", &from);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains("Filed R-1 for pacs (reference)"),
        "{}",
        stdout(&out)
    );
    let listed = client(&dir, &["requests"]);
    assert!(stdout(&listed).contains("submitted"), "{}", stdout(&listed));
    let (status, pending) = w
        .http
        .get("/api/v1/requests?status=submitted", &w.approver)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        pending[0]["plan"], "1. collect the logs\n2. leave",
        "{pending}"
    );
    w.approve(pending[0]["id"].as_str().unwrap()).await;
    // Listed with the window in the engineer's own time zone, to the minute.
    let listed = client_command(CLIENT, &dir, &["requests"])
        .env("TZ", "Asia/Tokyo")
        .output()
        .unwrap();
    let in_tokyo = |t: jiff::Timestamp| {
        t.in_tz("Asia/Tokyo")
            .unwrap()
            .strftime("%Y-%m-%d %H:%M JST")
            .to_string()
    };
    let window = format!(
        "{} to {}",
        in_tokyo(now),
        in_tokyo(now + jiff::SignedDuration::from_hours(1))
    );
    assert!(stdout(&listed).contains("approved"), "{}", stdout(&listed));
    assert!(
        stdout(&listed).contains(&window),
        "{window} in {}",
        stdout(&listed)
    );

    let out = client(&dir, &["ssh", "pacs", "--", "whoami; echo ok"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "sekisho-ro\nok\n");
    w.wait_all_ended().await;
    let sessions = w.sessions(false).await;
    assert_eq!(sessions.len(), 1, "{sessions:?}");
    assert_eq!(sessions[0]["transport"], "quic");
    assert_eq!(sessions[0]["username"], "alice");
    let status = client(&dir, &["status"]);
    assert!(status.status.success(), "{}", stdout(&status));
    assert!(
        stdout(&status).contains("gateway:       reachable, certificate accepted\n"),
        "{}",
        stdout(&status)
    );
    // 90 days by default: no renewal reminder yet.
    assert!(
        stdout(&status).contains(" (89 days left)\n"),
        "{}",
        stdout(&status)
    );
    let enrolled = w.audit("kind=client_enrolled").await;
    assert_eq!(enrolled.len(), 1, "{enrolled:?}");

    // Renewal: a new key and certificate; the old certificate stops working.
    let old = dir.with_file_name("old");
    std::fs::create_dir_all(&old).unwrap();
    for f in [
        "client.key",
        "client.crt",
        "ca.crt",
        "known_hosts",
        "enrollment.json",
    ] {
        std::fs::copy(dir.join(f), old.join(f)).unwrap();
    }
    let out = client(&dir, &["renew"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_ne!(
        std::fs::read(dir.join("client.key")).unwrap(),
        std::fs::read(old.join("client.key")).unwrap()
    );
    let out = client(&dir, &["ssh", "pacs", "--", "echo renewed"]);
    assert_eq!(stdout(&out), "renewed\n", "{}", stderr(&out));
    refused(
        &client(&old, &["ssh", "pacs", "--", "true"]),
        "not (or no longer) enrolled",
    );
    let renewed = w.audit("kind=client_renewed").await;
    assert_eq!(renewed.len(), 1, "{renewed:?}");

    // Had the engineer let it expire, `status` says so and fails (without asking the gateway).
    let json = old.join("enrollment.json");
    let mut e: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    e["expires_at"] = json!("2026-01-31T15:30:00Z");
    std::fs::write(&json, e.to_string()).unwrap();
    let out = client_command(CLIENT, &old, &["status"])
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(
            "certificate:   EXPIRED on 2026-01-31 15:30 UTC: ask the hospital's IT for a new enrollment code"
        ),
        "{}",
        stdout(&out)
    );
}

/// A small HTTP service standing in for a device's web UI: answers every request with the
/// path it asked for.
async fn web_ui() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut req = Vec::new();
                let mut buf = [0u8; 1024];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") {
                    match s.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let text = String::from_utf8_lossy(&req);
                let path = text.split_whitespace().nth(1).unwrap_or("?");
                let _ = s.write_all(web_reply(path).as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    port
}

/// `tshark` dissects `pcap` as HTTP on `port` and finds exactly the request for `uri`
/// (skipped outside CI when tshark is not installed).
fn assert_http_requests(pcap: &std::path::Path, port: u16, uri: &str) {
    let o = Command::new("tshark")
        .arg("-r")
        .arg(pcap)
        .args([
            "-d",
            &format!("tcp.port=={port},http"),
            "-Y",
            "http.request",
        ])
        .args(["-T", "fields", "-e", "http.request.uri"])
        .output();
    match o {
        Ok(o) => assert_eq!(
            String::from_utf8_lossy(&o.stdout).trim(),
            uri,
            "{}",
            String::from_utf8_lossy(&o.stderr)
        ),
        Err(e) => assert!(
            std::env::var_os("CI").is_none(),
            "tshark is required in CI: {e}"
        ),
    }
}

/// Starts `sekisho-client tunnel pacs PORT`; returns it and the local address it forwards from.
fn tunnel(dir: &std::path::Path, port: u16) -> (std::process::Child, String) {
    client_tunnel(CLIENT, dir, port, Stdio::piped())
}

#[tokio::test]
async fn tunnel_to_an_allowed_port_inside_the_window_recorded_and_ended_by_revocation() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    let web = web_ui().await;
    // The change level of pacs allows its web UI port (and its SSH port), nothing else.
    w.allow_change_ports(&[web]).await;
    let dir = w.keys.path().join("client");
    enrolled(&w, &dir).await;

    // No approved request: refused with the reason, nothing listens.
    let web_s = web.to_string();
    refused(
        &client(&dir, &["tunnel", "pacs", &web_s, "--local", "127.0.0.1:0"]),
        "no approved request for pacs covers",
    );
    let request = w.approved("change").await;
    // A port the level does not allow.
    let other = (web - 1).max(1).to_string();
    refused(
        &client(&dir, &["tunnel", "pacs", &other, "--local", "127.0.0.1:0"]),
        &format!("tunnel to pacs port {other} refused"),
    );
    let denials = w.audit("kind=access_denied").await;
    assert!(
        denials.iter().any(|d| d["details"]["channel"] == "tunnel"),
        "{denials:?}"
    );

    // Inside the window: two HTTP requests, two TCP connections, one session.
    let (child, local) = tunnel(&dir, web);
    let http = reqwest::Client::new();
    for path in ["/device/status", "/device/log"] {
        let body = http
            .get(format!("http://{local}{path}"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, format!("device page {path}"));
    }
    let session = w.wait_live().await;
    assert_eq!(
        (&session["transport"], &session["target"]),
        (&json!("quic"), &json!("pacs")),
        "{session}"
    );

    // Revocation closes the tunnel within a second, with the reason shown.
    w.revoke(&request).await;
    let (out, took) = exited(child, Duration::from_secs(5));
    assert!(took < Duration::from_secs(1), "revocation took {took:?}");
    refused(&out, "request R-1 was revoked");
    let id = session["id"].as_str().unwrap();
    let ended = w.wait_ended(id).await;
    assert_eq!(ended["end"], "revoked");
    assert!(ended["bytes_to_target"].as_u64().unwrap() > 0, "{ended}");

    // Both connections are in the recording; the first exports to a pcap tshark dissects.
    let pcap = w.keys.path().join("tunnel.pcap");
    let deadline = Instant::now() + Duration::from_secs(10);
    let out = loop {
        let out = w.env.cli(
            &[
                "recording",
                "export",
                id,
                "--format",
                "pcap",
                "--channel",
                "0",
                "--out",
                pcap.to_str().unwrap(),
            ],
            "",
        );
        if out.status.success() || Instant::now() > deadline {
            break out;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(out.status.success(), "{}", stderr(&out));
    assert_http_requests(&pcap, web, "/device/status");
    let out = w.env.cli(
        &[
            "recording",
            "export",
            id,
            "--format",
            "pcap",
            "--out",
            pcap.to_str().unwrap(),
        ],
        "",
    );
    refused(&out, "has 2 TCP streams");

    // The same exports through the API (what the web console offers): the second connection
    // as pcap, and the bundle an auditor verifies offline.
    let api = |path: String| {
        let w = &w;
        async move {
            let r = w
                .http
                .client
                .get(format!("{}{path}", w.http.base))
                .bearer_auth(&w.approver)
                .send()
                .await
                .unwrap();
            (r.status().as_u16(), r.bytes().await.unwrap().to_vec())
        }
    };
    let (status, body) = api(format!("/api/v1/recordings/{id}/pcap")).await;
    assert_eq!(status, 409, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("choose one with --channel"));
    let (status, pcap_bytes) = api(format!("/api/v1/recordings/{id}/pcap?channel=1")).await;
    assert_eq!(status, 200);
    std::fs::write(&pcap, &pcap_bytes).unwrap();
    assert_http_requests(&pcap, web, "/device/log");
    let (status, bundle) = api(format!("/api/v1/recordings/{id}/bundle")).await;
    assert_eq!(status, 200);
    let bundle_path = w.keys.path().join("tunnel-bundle.tar.gz");
    std::fs::write(&bundle_path, &bundle).unwrap();
    let out = w.env.cli(
        &[
            "recording",
            "verify",
            "--bundle",
            bundle_path.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
}

/// Writes a client certificate for `username` signed by `issuer`, valid from `from` for
/// `days`, with a fresh key, into a copy of the enrolled client `dir`.
fn forged(
    dir: &std::path::Path,
    name: &str,
    issuer: &rcgen::Issuer<'_, rcgen::KeyPair>,
    from: time::OffsetDateTime,
    days: i64,
) -> std::path::PathBuf {
    let copy = dir.with_file_name(name);
    std::fs::create_dir_all(&copy).unwrap();
    for f in ["ca.crt", "known_hosts", "enrollment.json"] {
        std::fs::copy(dir.join(f), copy.join(f)).unwrap();
    }
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "alice");
    params.not_before = from;
    params.not_after = from + time::Duration::days(days);
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
    let cert = params.signed_by(&key, issuer).unwrap();
    std::fs::write(copy.join("client.crt"), cert.pem()).unwrap();
    std::fs::write(copy.join("client.key"), key.serialize_pem()).unwrap();
    copy
}

#[tokio::test]
async fn foreign_expired_and_disabled_certificates_are_refused_and_audited() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    let dir = w.keys.path().join("client");
    enrolled(&w, &dir).await;
    w.approved("reference").await;
    let now = time::OffsetDateTime::now_utc();

    // Signed by the hospital's CA, but expired.
    let keys = w.env.data_dir().join("keys");
    let ca_key =
        rcgen::KeyPair::from_pem(&std::fs::read_to_string(keys.join("client-ca.key")).unwrap())
            .unwrap();
    let ours = rcgen::Issuer::from_ca_cert_pem(
        &std::fs::read_to_string(keys.join("client-ca.crt")).unwrap(),
        ca_key,
    )
    .unwrap();
    let expired = forged(&dir, "expired", &ours, now - time::Duration::days(100), 90);
    refused(
        &client(&expired, &["ssh", "pacs", "--", "true"]),
        "the gateway refused this client's certificate: it has expired",
    );

    // Valid dates, but from another CA.
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Sekisho client CA");
    let other_key = rcgen::KeyPair::generate().unwrap();
    let other_cert = ca.self_signed(&other_key).unwrap();
    let theirs = rcgen::Issuer::from_ca_cert_der(other_cert.der(), other_key).unwrap();
    let foreign = forged(&dir, "foreign", &theirs, now - time::Duration::days(1), 90);
    refused(
        &client(&foreign, &["ssh", "pacs", "--", "true"]),
        "it was not issued by this gateway's CA",
    );

    let deadline = Instant::now() + Duration::from_secs(10);
    let codes = loop {
        let codes: Vec<String> = w
            .audit("kind=access_denied")
            .await
            .iter()
            .filter(|e| e["details"]["channel"] == "quic")
            .map(|e| e["details"]["code"].as_str().unwrap().to_owned())
            .collect();
        if codes.len() >= 2 || Instant::now() > deadline {
            break codes;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        codes.contains(&"certificate_expired".to_owned()),
        "{codes:?}"
    );
    assert!(
        codes.contains(&"certificate_unknown_issuer".to_owned()),
        "{codes:?}"
    );
    assert!(w.sessions(false).await.is_empty());

    // Suspending the vendor refuses its engineers' certificates on the next connection,
    // whatever they ask (here: the request list), audited; reactivating lets them in again.
    let (_, me) = w
        .http
        .get(&format!("/api/v1/users/{}", w.alice_id), &w.admin)
        .await;
    let vendor = me["vendor_id"].as_str().unwrap().to_owned();
    for (status, allowed) in [("suspended", false), ("active", true)] {
        let (code, body) = w
            .http
            .send(
                reqwest::Method::PATCH,
                &format!("/api/v1/vendors/{vendor}"),
                Some(&w.admin),
                Some(json!({"status": status})),
            )
            .await;
        assert_eq!(code, 200, "{body}");
        let out = client(&dir, &["requests"]);
        if allowed {
            assert!(out.status.success(), "{}", stderr(&out));
        } else {
            refused(&out, "Acme Medical is suspended");
        }
    }
    let denied = w.audit("kind=access_denied").await;
    assert_eq!(
        (
            &denied[0]["details"]["channel"],
            &denied[0]["details"]["code"]
        ),
        (&json!("quic"), &json!("vendor_inactive")),
        "{denied:?}"
    );

    // The enrolled certificate works, until the account is disabled: the live session is
    // closed at once and the next connection refused.
    let mut child = client_command(
        CLIENT,
        &dir,
        &["ssh", "pacs", "--", "echo started; sleep 60"],
    )
    .spawn()
    .unwrap();
    // Running on the target, not only admitted: on a loaded machine the session row exists
    // a moment before the channel does, and a session ended in between refuses the channel
    // instead of telling the reason on it.
    let mut first = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
        &mut first,
    )
    .unwrap();
    assert_eq!(first, "started\n");
    w.wait_live().await;
    w.disable_alice().await;
    let (out, took) = exited(child, Duration::from_secs(5));
    assert!(took < Duration::from_secs(1), "disabling took {took:?}");
    refused(&out, "account alice was disabled");
    let out = client(&dir, &["ssh", "pacs", "--", "true"]);
    refused(&out, "disabled");
    // `status` says so too, and fails.
    let status = client(&dir, &["status"]);
    assert!(!status.status.success(), "{}", stdout(&status));
    assert!(
        stdout(&status).contains("gateway:       answers, but: account alice is disabled"),
        "{}",
        stdout(&status)
    );
    let denied = w.audit("kind=access_denied").await;
    assert_eq!(denied[0]["actor"], "alice", "{denied:?}");
    assert_eq!(denied[0]["details"]["code"], "user_disabled", "{denied:?}");
}

#[tokio::test]
async fn with_stock_ssh_disabled_the_designated_client_is_the_only_way_in() {
    let env = support::Env::new(None);
    let config = std::fs::read_to_string(&env.config).unwrap();
    // Also: certificates valid for 10 days only, so the client reminds the engineer to renew.
    std::fs::write(
        &env.config,
        config
            .replace("[ssh]\n", "[ssh]\nenabled = false\n")
            .replace("[quic]\n", "[quic]\nclient_cert_days = 10\n")
            .replace("[server]\n", "[server]\nmax_connections = 1\n"),
    )
    .unwrap();
    let Some(w) = World::with_env(env, Pin::Real).await else {
        return;
    };
    assert_eq!(
        w.ssh_port,
        0,
        "no SSH listener: {:?}",
        w.server.as_ref().unwrap().banner
    );
    let dir = w.keys.path().join("client");
    enrolled(&w, &dir).await;
    w.approved("reference").await;
    let out = client(&dir, &["ssh", "pacs", "--", "echo only way in"]);
    assert_eq!(stdout(&out), "only way in\n", "{}", stderr(&out));
    let reminder = "9 days left: renew now with `sekisho-client renew`";
    assert!(stderr(&out).contains(reminder), "{}", stderr(&out));
    let status = client(&dir, &["status"]);
    assert!(status.status.success(), "{}", stdout(&status));
    assert!(stdout(&status).contains(reminder), "{}", stdout(&status));

    // `[server] max_connections = 1`: while a session holds the one connection, another is
    // refused at once with the reason; once it ends, the next one is let in.
    let mut holder = client_command(CLIENT, &dir, &["ssh", "pacs", "--", "sleep 30"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    w.wait_live().await;
    let started = Instant::now();
    refused(
        &client(&dir, &["requests"]),
        "refused the connection: it is at its connection limit; try again later",
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(
        w.log().contains("the gateway is at its connection limit"),
        "{}",
        w.log()
    );
    holder.kill().unwrap();
    holder.wait().unwrap();
    w.wait_all_ended().await;
    let out = client(&dir, &["requests"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// What a child prints on stderr, collected as it comes.
struct Collected(std::sync::Arc<std::sync::Mutex<String>>);

impl Collected {
    fn stderr_of(child: &mut std::process::Child) -> Self {
        let text = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = text.clone();
        let mut pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = std::io::Read::read(&mut pipe, &mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Self(text)
    }

    fn text(&self) -> String {
        self.0.lock().unwrap().clone()
    }

    /// How much has been printed so far (for [`Collected::wait_for_since`]).
    fn mark(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// Waits (bounded) until `needle` has been printed.
    async fn wait_for(&self, needle: &str, limit: Duration) {
        self.wait_for_since(needle, 0, limit).await;
    }

    /// Waits (bounded) until `needle` has been printed after `mark`.
    async fn wait_for_since(&self, needle: &str, mark: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while !self.text().get(mark..).unwrap_or_default().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not printed within {limit:?}; printed:\n{}",
                self.text()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The exact reply `web_ui` gives for `path`.
fn web_reply(path: &str) -> String {
    let body = format!("device page {path}");
    format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

/// One raw HTTP request through `local`: returns the bytes sent and the reply.
async fn http_get(local: &str, path: &str) -> (usize, String) {
    let mut s = tokio::net::TcpStream::connect(local).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: device\r\n\r\n");
    s.write_all(request.as_bytes()).await.unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).await.unwrap();
    (request.len(), reply)
}

/// alice enrolled, with an approved change request whose level reaches a new `web_ui`, and
/// `sekisho-client tunnel` to it running: the tunnel, its local address and its stderr.
async fn tunnel_approved(w: &World) -> (std::process::Child, String, Collected) {
    let web = web_ui().await;
    w.allow_change_ports(&[web]).await;
    let dir = w.keys.path().join("client");
    enrolled(w, &dir).await;
    w.approved("change").await;
    let (mut child, local) = tunnel(&dir, web);
    let printed = Collected::stderr_of(&mut child);
    (child, local, printed)
}

#[tokio::test]
async fn tunnel_counts_bytes_reconnects_after_a_gateway_restart_and_stops_on_ctrl_c() {
    // The QUIC port must stay the same across the restart, as a real gateway's does.
    let env = support::Env::new(None);
    let quic_port = std::net::UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        config.replace(
            "[quic]\nlisten = \"127.0.0.1:0\"",
            &format!("[quic]\nlisten = \"127.0.0.1:{quic_port}\""),
        ),
    )
    .unwrap();
    let Some(mut w) = World::with_env(env, Pin::Real).await else {
        return;
    };
    let (child, local, printed) = tunnel_approved(&w).await;
    let (sent, reply) = http_get(&local, "/before").await;
    assert_eq!(reply, web_reply("/before"));
    // The running count (a line every 5 s when stderr is not a terminal), exact to the byte.
    printed
        .wait_for(
            &format!("1 connection(s), {sent} B sent, {} B received", reply.len()),
            Duration::from_secs(8),
        )
        .await;
    let first = w.wait_live().await;

    // The gateway restarts: the client reports it, retries with backoff, and comes back on
    // the same local port; the gateway decides the new session afresh.
    let status = w.server.take().unwrap().terminate();
    assert!(status.success(), "{status:?}");
    printed
        .wait_for(
            "connection to the gateway lost (Sekisho: the gateway is shutting down); reconnecting in 2 s (attempt 1 of 8)",
            Duration::from_secs(5),
        )
        .await;
    w.restart().await;
    printed
        .wait_for("sekisho-client: reconnected", Duration::from_secs(30))
        .await;
    let (_, reply) = http_get(&local, "/after").await;
    assert_eq!(reply, web_reply("/after"));
    let second = w.wait_live().await;
    assert_ne!(second["id"], first["id"], "a new session after the restart");
    let first = w.wait_ended(first["id"].as_str().unwrap()).await;
    assert_eq!(first["end"], "aborted", "{first}");

    // A crash: no goodbye. The restarted gateway answers the old connection's next packet
    // (a new local connection's stream) with a stateless reset, its reset key being the same
    // after a restart, so the client notices at once instead of at the 60 s idle timeout.
    // The mark comes before the kill: on a loaded machine the client may already report the
    // loss while the gateway is still restarting.
    let mark = printed.mark();
    drop(w.server.take()); // SIGKILL
    w.restart().await;
    let crashed = Instant::now();
    // This connection meets the dead connection and fails; the tunnel then reconnects.
    if let Ok(mut s) = tokio::net::TcpStream::connect(&local).await {
        let _ = s.write_all(b"GET /lost HTTP/1.1\r\n\r\n").await;
        let mut sink = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut sink)).await;
    }
    printed
        .wait_for_since(
            "connection to the gateway lost (reset by peer)",
            mark,
            Duration::from_secs(10),
        )
        .await;
    printed
        .wait_for_since("sekisho-client: reconnected", mark, Duration::from_secs(20))
        .await;
    assert!(
        crashed.elapsed() < Duration::from_secs(20),
        "{:?}",
        crashed.elapsed()
    );
    let (_, reply) = http_get(&local, "/after-crash").await;
    assert_eq!(reply, web_reply("/after-crash"));
    let third = w.wait_live().await;
    let second = w.wait_ended(second["id"].as_str().unwrap()).await;
    assert_eq!(second["end"], "aborted", "{second}");
    let second = third;

    // ctrl-c: a clean exit with the totals, and the gateway ends the session at once.
    support::signal(&child, "INT");
    let (out, _) = exited(child, Duration::from_secs(5));
    assert!(out.status.success(), "{out:?}\n{}", printed.text());
    printed
        .wait_for("sekisho-client: tunnel closed: ", Duration::from_secs(1))
        .await;
    // /before, /after and /after-crash; the probe that met the dead connection counts too
    // when the client had accepted it before noticing the loss (it depends on timing).
    let text = printed.text();
    let count: u32 = text
        .split("sekisho-client: tunnel closed: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_default();
    assert!((3..=4).contains(&count), "{text}");
    let started = Instant::now();
    let second = w.wait_ended(second["id"].as_str().unwrap()).await;
    assert_eq!(second["end"], "closed", "{second}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_tunnelled_connection_survives_the_client_moving_to_a_new_address() {
    use sekisho_client::connect;
    use sekisho_client::files::ClientDir;
    use sekisho_protocol::Service;

    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    let web = web_ui().await;
    w.allow_change_ports(&[web]).await;
    let dir = ClientDir(w.keys.path().join("client"));
    enrolled(&w, &dir.0).await;
    w.approved("change").await;

    // What `sekisho-client tunnel` does, through the client's library, so that the test can
    // move the connection: the control stream, then one stream per TCP connection.
    let e = dir.enrollment().unwrap();
    let link = connect::connect(&e.gateway, &e.fingerprint, Some(dir.identity().unwrap()))
        .await
        .unwrap();
    let (mut control_send, mut control_recv) = connect::hello(&link.conn).await.unwrap();
    let tcp = Service::Tcp { port: web };
    connect::open(
        &link.conn,
        &mut control_send,
        &mut control_recv,
        "pacs",
        tcp,
        None,
    )
    .await
    .unwrap();
    let (mut send, mut recv) = link.conn.open_bi().await.unwrap();
    connect::open(&link.conn, &mut send, &mut recv, "pacs", tcp, None)
        .await
        .unwrap();
    let session = w.wait_live().await;

    // The client's address changes (a new UDP port, as after a NAT rebinding or a network
    // switch); the old socket is gone.
    let before = link.endpoint.local_addr().unwrap();
    link.endpoint
        .rebind(std::net::UdpSocket::bind("127.0.0.1:0").unwrap())
        .unwrap();
    let after = link.endpoint.local_addr().unwrap();
    assert_ne!(before, after);

    // The TCP connection opened before the move carries its request and reply after it...
    send.write_all(b"GET /moved HTTP/1.1\r\nHost: device\r\n\r\n")
        .await
        .unwrap();
    send.finish().unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), recv.read_to_end(64 * 1024))
        .await
        .expect("no reply after the move")
        .unwrap();
    assert_eq!(String::from_utf8(reply).unwrap(), web_reply("/moved"));
    // ...new ones work, and it is all still the one session.
    let (mut send, mut recv) = link.conn.open_bi().await.unwrap();
    connect::open(&link.conn, &mut send, &mut recv, "pacs", tcp, None)
        .await
        .unwrap();
    send.write_all(b"GET /again HTTP/1.1\r\nHost: device\r\n\r\n")
        .await
        .unwrap();
    send.finish().unwrap();
    let reply = recv.read_to_end(64 * 1024).await.unwrap();
    assert_eq!(String::from_utf8(reply).unwrap(), web_reply("/again"));
    let live = w.sessions(true).await;
    assert_eq!(live.len(), 1, "{live:?}");
    assert_eq!(live[0]["id"], session["id"]);

    link.close("done").await;
    let ended = w.wait_ended(session["id"].as_str().unwrap()).await;
    assert_eq!(ended["end"], "closed", "{ended}");
}

#[tokio::test]
async fn tunnel_reconnects_after_the_network_goes_silent() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    let (mut child, local, printed) = tunnel_approved(&w).await;
    let (_, reply) = http_get(&local, "/before").await;
    assert_eq!(reply, web_reply("/before"));
    let first = w.wait_live().await;

    // Silence, as when the network drops: no close, no reset. The client gives the
    // connection up at the idle timeout (60 s) and retries with backoff.
    let gateway = &w.server.as_ref().unwrap().child;
    support::signal(gateway, "STOP");
    printed
        .wait_for(
            "connection to the gateway lost (timed out); reconnecting in 2 s (attempt 1 of 8)",
            Duration::from_secs(75),
        )
        .await;
    // The network comes back: the retry gets through and the tunnel works again, in a new
    // session.
    support::signal(gateway, "CONT");
    printed
        .wait_for("sekisho-client: reconnected", Duration::from_secs(30))
        .await;
    let (_, reply) = http_get(&local, "/after").await;
    assert_eq!(reply, web_reply("/after"));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let live = w.sessions(true).await;
        if live.len() == 1 && live[0]["id"] != first["id"] {
            break;
        }
        assert!(Instant::now() < deadline, "{live:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
}
