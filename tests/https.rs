//! Issue #12: the console and API over HTTPS by default, the hospital's certificate reloaded
//! on SIGHUP without dropping connections, plain HTTP only on loopback when configured, and
//! slow half-sent requests closed instead of held open.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{SHA256, digest};
use serde_json::json;
use support::Env;

/// The DER of the certificate the server presented for `response`.
fn presented(response: &reqwest::Response) -> Vec<u8> {
    response
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("TLS info")
        .to_vec()
}

fn fingerprint(der: &[u8]) -> String {
    format!("SHA256:{}", hex::encode(digest(&SHA256, der)))
}

/// A self-signed certificate for 127.0.0.1 made with the openssl CLI: (cert, key) paths.
fn openssl_certificate(dir: &Path, name: &str) -> (std::path::PathBuf, std::path::PathBuf) {
    let cert = dir.join(format!("{name}.crt"));
    let key = dir.join(format!("{name}.key"));
    let status = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "30", "-subj", &format!("/CN={name}")])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(status.success(), "openssl req failed");
    (cert, key)
}

#[tokio::test]
async fn https_is_the_default_with_a_self_signed_certificate_shown_at_start() {
    let env = Env::new(None);
    let server = env.serve();
    assert_eq!(server.scheme, "https");
    let cert = server
        .certificate
        .clone()
        .expect("self-signed certificate in the banner");
    assert_eq!(cert, env.data_dir().join("keys/api-tls.crt"));
    let printed = server
        .banner
        .iter()
        .find_map(|l| l.split("): ").nth(1).filter(|f| f.starts_with("SHA256:")))
        .unwrap()
        .to_owned();
    let client = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&std::fs::read(&cert).unwrap()).unwrap()])
        .tls_info(true)
        .build()
        .unwrap();
    let response = client
        .post(server.url("/api/v1/auth/login"))
        .json(&json!({"username": "admin", "password": env.admin_password()}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    // The certificate presented is the one whose fingerprint the banner printed.
    assert_eq!(fingerprint(&presented(&response)), printed);
    let h = response.headers();
    assert_eq!(h["strict-transport-security"], "max-age=31536000");
    assert_eq!(h["cache-control"], "no-store");
    assert_eq!(h["x-content-type-options"], "nosniff");
    // Plain HTTP on the HTTPS port gets nothing useful.
    let mut plain = std::net::TcpStream::connect(server.api).unwrap();
    plain
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    plain
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut got = vec![];
    let _ = plain.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("\"ok\""), "{got:?}");
    // A client that does not trust the certificate is refused by its own TLS.
    assert!(reqwest::get(server.url("/healthz")).await.is_err());
}

#[tokio::test]
async fn the_hospitals_certificate_is_reloaded_on_sighup_without_dropping_connections() {
    let env = Env::new(None);
    let dir = env.dir.path().join("tls");
    std::fs::create_dir_all(&dir).unwrap();
    let (a_cert, a_key) = openssl_certificate(&dir, "first");
    let (b_cert, b_key) = openssl_certificate(&dir, "second");
    let live_cert = dir.join("live.crt");
    let live_key = dir.join("live.key");
    std::fs::copy(&a_cert, &live_cert).unwrap();
    std::fs::copy(&a_key, &live_key).unwrap();
    env.set(
        "api",
        "tls_cert",
        &format!("{:?}", live_cert.display().to_string()),
    );
    env.set(
        "api",
        "tls_key",
        &format!("{:?}", live_key.display().to_string()),
    );
    let server = env.serve();
    assert_eq!(server.scheme, "https");
    assert_eq!(
        server.certificate, None,
        "the hospital's certificate, not a self-signed one"
    );
    let trusting = || {
        reqwest::Client::builder()
            .tls_certs_only(
                [&a_cert, &b_cert]
                    .map(|c| reqwest::Certificate::from_pem(&std::fs::read(c).unwrap()).unwrap()),
            )
            .tls_info(true)
            .build()
            .unwrap()
    };
    let der = |path: &Path| {
        let pem = std::fs::read_to_string(path).unwrap();
        let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).unwrap()
    };
    // A connection kept alive across the reload.
    let kept = trusting();
    let first = kept.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(presented(&first), der(&a_cert));
    // The hospital renews its certificate and tells the gateway.
    std::fs::copy(&b_cert, &live_cert).unwrap();
    std::fs::copy(&b_key, &live_key).unwrap();
    support::signal(&server.child, "HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let fresh = trusting().get(server.url("/healthz")).send().await.unwrap();
        if presented(&fresh) == der(&b_cert) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not taken up"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The connection made before the reload still serves.
    let again = kept.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(
        presented(&again),
        der(&a_cert),
        "the kept connection was dropped"
    );
    // A broken file is refused with a log line; the current certificate stays.
    std::fs::write(&live_cert, "not a certificate").unwrap();
    support::signal(&server.child, "HUP");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let still = trusting().get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(presented(&still), der(&b_cert));
    let log = std::fs::read_to_string(env.config.with_file_name("serve.log")).unwrap();
    assert!(
        log.contains("cannot reload the HTTPS certificate; keeping the current one"),
        "{log}"
    );
}

#[test]
fn plain_http_is_refused_anywhere_but_loopback() {
    let env = Env::new(None);
    let text = std::fs::read_to_string(&env.config).unwrap();
    std::fs::write(
        &env.config,
        text.replace(
            "[api]\nlisten = \"127.0.0.1:0\"",
            "[api]\nlisten = \"0.0.0.0:0\"\ntls = false",
        ),
    )
    .unwrap();
    let out = env.cli(&["config", "check", env.config.to_str().unwrap()], "");
    assert!(!out.status.success());
    let err = format!("{}{}", support::stdout(&out), support::stderr(&out));
    assert!(
        err.contains("plain HTTP is allowed only on a loopback address, not 0.0.0.0:0"),
        "{err}"
    );
}

/// A connection that never finishes its request (or its TLS handshake) is closed after
/// `[api] header_read_timeout_seconds` instead of held open.
#[test]
fn slow_half_sent_requests_are_closed() {
    for tls in [true, false] {
        let env = Env::new(None);
        env.set("api", "header_read_timeout_seconds", "2");
        if !tls {
            env.set("api", "tls", "false");
        }
        let server = env.serve();
        let mut slow = std::net::TcpStream::connect(server.api).unwrap();
        if !tls {
            slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
        }
        slow.set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let started = Instant::now();
        let mut got = vec![];
        let read = slow.read_to_end(&mut got);
        let took = started.elapsed();
        assert!(read.is_ok(), "not closed: {read:?} (tls {tls})");
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
            "closed after {took:?} (tls {tls})"
        );
    }
}
