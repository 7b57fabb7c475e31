//! End to end: the review commands of issue #4 on recordings signed with the gateway's own key.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;
use std::sync::Arc;

use base64::Engine;
use sekisho_recorder::manifest::RecordingKey;
use sekisho_recorder::stream::{Direction, StreamKind};
use sekisho_recorder::{Recorder, SessionMeta};
use support::{Env, stderr, stdout};

fn gateway_key(env: &Env) -> Arc<RecordingKey> {
    let b64 = std::fs::read_to_string(env.data_dir().join("keys/recording-ed25519.pk8")).unwrap();
    let der = base64::engine::general_purpose::STANDARD
        .decode(b64.trim())
        .unwrap();
    Arc::new(RecordingKey::from_pkcs8(&der).unwrap())
}

fn meta(session: &str, target: &str) -> SessionMeta {
    SessionMeta {
        session: session.into(),
        request: "req".into(),
        request_number: 7,
        vendor: "Acme Medical".into(),
        vendor_user: "alice".into(),
        target: target.into(),
        level: "reference".into(),
        source_addr: "127.0.0.1".into(),
    }
}

fn has(tool: &str) -> bool {
    let ok = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {tool}"))
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        ok || std::env::var_os("CI").is_none(),
        "{tool} is required in CI"
    );
    ok
}

#[tokio::test]
async fn review_commands_list_verify_search_replay_and_export() {
    let env = Env::new(None);
    // First start creates the keys; stop it again.
    assert!(env.serve().terminate().success());
    let rec = Recorder::new(&env.data_dir().join("recordings"), gateway_key(&env)).unwrap();

    let s = rec.open(meta("11111111-aaaa", "pacs")).await.unwrap();
    s.terminal(0, 80, 24, "alice → pacs".into(), None)
        .await
        .unwrap();
    s.output(0, b"$ ").await.unwrap();
    s.input(0, b"cat /etc/dicom/ae.conf\r").await.unwrap();
    s.output(0, b"cat /etc/dicom/ae.conf\r\nAE_TITLE=PACS01\r\n$ ")
        .await
        .unwrap();
    s.close("closed").await.unwrap();
    let t = rec.open(meta("22222222-bbbb", "ris")).await.unwrap();
    t.stream(0, StreamKind::Tcp, "127.0.0.1:8080".into())
        .await
        .unwrap();
    t.frame(
        0,
        Direction::ToTarget,
        b"GET /worklist HTTP/1.1\r\nHost: ris\r\n\r\n",
    )
    .await
    .unwrap();
    t.frame(0, Direction::FromTarget, b"HTTP/1.1 204 No Content\r\n\r\n")
        .await
        .unwrap();
    t.close("tunnel closed").await.unwrap();

    let out = env.cli(&["recording", "list", "--target", "pacs"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&out);
    assert!(
        list.contains("11111111-aaaa") && list.contains("R-7") && list.contains("closed"),
        "{list}"
    );
    assert!(!list.contains("22222222-bbbb"), "{list}");

    let out = env.cli(&["recording", "verify", "--all"], "");
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).ends_with("2 recording(s) checked, 0 not intact\n"),
        "{}",
        stdout(&out)
    );

    let out = env.cli(&["recording", "search", "ae.conf"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let found = stdout(&out);
    assert!(
        found.lines().any(|l| l.starts_with("11111111-aaaa")
            && l.contains("input")
            && l.contains("cat /etc/dicom/ae.conf")),
        "{found}"
    );
    assert!(found.lines().any(|l| l.contains("screen")), "{found}");

    let out = env.cli(&["replay", "1111", "--text"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "$ cat /etc/dicom/ae.conf\nAE_TITLE=PACS01\n$\n"
    );
    let out = env.cli(&["replay", "1111", "--speed", "50"], "");
    assert!(out.status.success());
    assert!(stdout(&out).contains("AE_TITLE=PACS01"));

    let pcap = env.dir.path().join("ris.pcap");
    let out = env.cli(
        &[
            "recording",
            "export",
            "2222",
            "--format",
            "pcap",
            "--out",
            pcap.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    if has("tshark") {
        let o = Command::new("tshark")
            .arg("-r")
            .arg(&pcap)
            .args([
                "-d",
                "tcp.port==8080,http",
                "-Y",
                "http.request",
                "-T",
                "fields",
                "-e",
                "http.request.uri",
            ])
            .output()
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&o.stdout).trim(), "/worklist");
    }
    let out = env.cli(
        &[
            "recording",
            "export",
            "1111",
            "--format",
            "pcap",
            "--out",
            pcap.to_str().unwrap(),
        ],
        "",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("has no TCP stream"),
        "{}",
        stderr(&out)
    );

    let bundle = env.dir.path().join("pacs.tar.gz");
    let out = env.cli(
        &[
            "recording",
            "export",
            "1111",
            "--bundle",
            bundle.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let keyfile = env.data_dir().join("keys/recording-ed25519.pub");
    let out = env.cli(
        &[
            "recording",
            "verify",
            "--bundle",
            bundle.to_str().unwrap(),
            "--key",
            keyfile.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("intact (session 11111111-aaaa"),
        "{}",
        stdout(&out)
    );

    // One flipped byte: verify fails and names the file.
    let cast = env.data_dir().join("recordings/11111111-aaaa/term-0.cast");
    let mut bytes = std::fs::read(&cast).unwrap();
    let at = bytes.windows(6).position(|w| w == b"PACS01").unwrap();
    bytes[at] = b'X';
    std::fs::write(&cast, bytes).unwrap();
    let out = env.cli(&["recording", "verify", "11111111-aaaa"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("term-0.cast: SHA-256 does not match the manifest (file altered)"),
        "{}",
        stdout(&out)
    );
}

#[tokio::test]
async fn serve_seals_recordings_left_open_by_a_crash() {
    let env = Env::new(None);
    assert!(env.serve().terminate().success());
    // The "crash": the recording runs on its own runtime, which is abandoned mid-session
    // (its writer never sees a close, nor even its handles dropped).
    let recordings = env.data_dir().join("recordings");
    let key = gateway_key(&env);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let rec = Recorder::new(&recordings, key).unwrap();
            let s = rec.open(meta("33333333-cccc", "pacs")).await.unwrap();
            s.terminal(0, 80, 24, "t".into(), None).await.unwrap();
            s.output(0, b"half a session").await.unwrap();
            tokio::time::sleep(std::time::Duration::from_millis(1200)).await;
            std::mem::forget(s);
        });
        rt.shutdown_background();
    })
    .join()
    .unwrap();
    let out = env.cli(&["recording", "list", "--state", "open"], "");
    assert!(stdout(&out).contains("33333333-cccc"), "{}", stdout(&out));

    assert!(env.serve().terminate().success());
    let out = env.cli(&["recording", "list", "--state", "aborted"], "");
    assert!(stdout(&out).contains("33333333-cccc"), "{}", stdout(&out));
    let out = env.cli(&["recording", "verify", "3333"], "");
    assert!(out.status.success(), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("33333333-cccc: intact (aborted)"),
        "{}",
        stdout(&out)
    );
    let out = env.cli(&["replay", "3333", "--text"], "");
    assert_eq!(stdout(&out), "half a session\n");
}

#[tokio::test]
async fn replay_caps_idle_pauses_and_honours_speed() {
    let env = Env::new(None);
    assert!(env.serve().terminate().success());
    let rec = Recorder::new(&env.data_dir().join("recordings"), gateway_key(&env)).unwrap();
    let s = rec.open(meta("44444444-dddd", "pacs")).await.unwrap();
    s.terminal(0, 80, 24, "t".into(), None).await.unwrap();
    s.close("closed").await.unwrap();
    // Replace the terminal track with one that has a 60-second idle gap (replay does not
    // verify; verification would rightly report this file as altered).
    let cast = env.data_dir().join("recordings/44444444-dddd/term-0.cast");
    std::fs::write(
        &cast,
        "{\"version\":2,\"width\":80,\"height\":24,\"timestamp\":0}\n[0.1,\"o\",\"before \"]\n[60.1,\"o\",\"after\\r\\n\"]\n",
    )
    .unwrap();
    let started = std::time::Instant::now();
    let out = env.cli(&["replay", "4444", "--idle-limit", "0.1"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), "before after\r\n");
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "the idle gap was not capped"
    );
    let out = env.cli(&["replay", "4444", "--speed", "0"], "");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--speed must be a positive number"),
        "{}",
        stderr(&out)
    );
    let out = env.cli(&["recording", "verify", "4444"], "");
    assert!(
        stdout(&out).contains("term-0.cast: size is"),
        "{}",
        stdout(&out)
    );
}
