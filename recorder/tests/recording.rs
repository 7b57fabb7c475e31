//! The recorder end to end: real files, read back by our readers and by stock tools
//! (`asciinema`, `tshark`, `openssl`), a flipped byte, and a writer killed mid-stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use sekisho_recorder::library::verify_dir;
use sekisho_recorder::manifest::{RecordingKey, RecordingState};
use sekisho_recorder::stream::{Direction, StreamKind};
use sekisho_recorder::{Library, Recorder, SessionMeta, bundle, index, pcap, stream};

fn key() -> Arc<RecordingKey> {
    Arc::new(RecordingKey::from_pkcs8(&RecordingKey::generate_pkcs8().unwrap()).unwrap())
}

fn meta(session: &str) -> SessionMeta {
    SessionMeta {
        session: session.into(),
        request: "4f1c".into(),
        request_number: 12,
        vendor: "Acme Medical".into(),
        vendor_user: "alice".into(),
        target: "pacs".into(),
        level: "change".into(),
        source_addr: "127.0.0.1".into(),
    }
}

/// A tool the test needs: present, or (outside CI) that part is skipped with a message.
fn tool(name: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {name}"))
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is required in CI (.ci/run installs it)"
        );
        eprintln!("SKIPPING the {name} part: not installed");
    }
    found
}

async fn terminal_session(rec: &Recorder, id: &str) -> sekisho_recorder::Manifest {
    let s = rec.open(meta(id)).await.unwrap();
    s.terminal(
        0,
        80,
        24,
        "session s1 · alice → pacs · R-12".into(),
        Some("xterm-256color".into()),
    )
    .await
    .unwrap();
    s.output(0, b"\x1b[1;32malice@pacs\x1b[0m:~$ ")
        .await
        .unwrap();
    for b in b"journalctl -u dicom --since today\r" {
        s.input(0, &[*b]).await.unwrap();
    }
    s.output(
        0,
        "journalctl -u dicom --since today\r\n-- No entries --\r\n日本語の出力\r\n".as_bytes(),
    )
    .await
    .unwrap();
    s.resize(0, 120, 40).await.unwrap();
    s.stream(1, StreamKind::Exec, "uptime".into())
        .await
        .unwrap();
    s.frame(
        1,
        Direction::FromTarget,
        b" 10:32:01 up 12 days,  load average: 0.01\n",
    )
    .await
    .unwrap();
    s.close("closed by the vendor").await.unwrap()
}

#[tokio::test]
async fn a_terminal_session_is_recorded_signed_and_verifiable() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let rec = Recorder::new(dir.path(), k.clone()).unwrap();
    let m = terminal_session(&rec, "s1").await;
    assert_eq!(m.state, RecordingState::Closed);
    let names: Vec<&str> = m.files.iter().map(|f| f.name.as_str()).collect();
    assert_eq!(names, ["stream-1.skr", "term-0.cast", "index.jsonl"]);
    let v = verify_dir(&dir.path().join("s1"), &k.public_key_b64()).unwrap();
    assert!(v.ok(), "{v:?}");

    // Our reader and the transcript see what a person saw.
    let text = std::fs::read_to_string(dir.path().join("s1/term-0.cast")).unwrap();
    let transcript = index::transcript(&text).unwrap();
    assert!(
        transcript.contains(
            "alice@pacs:~$ journalctl -u dicom --since today\n-- No entries --\n日本語の出力"
        ),
        "{transcript}"
    );
    let s = stream::parse(&std::fs::read(dir.path().join("s1/stream-1.skr")).unwrap()).unwrap();
    assert_eq!(s.header.detail, "uptime");

    // Stock asciinema accepts the file.
    if tool("asciinema") {
        let out = Command::new("asciinema")
            .arg("cat")
            .arg(dir.path().join("s1/term-0.cast"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let shown = String::from_utf8_lossy(&out.stdout);
        assert!(
            shown.contains("-- No entries --") && shown.contains("日本語の出力"),
            "{shown}"
        );
    }
}

#[tokio::test]
async fn changing_one_byte_is_reported_with_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let rec = Recorder::new(dir.path(), k.clone()).unwrap();
    terminal_session(&rec, "s1").await;
    let path = dir.path().join("s1/term-0.cast");
    let mut bytes = std::fs::read(&path).unwrap();
    let at = bytes.windows(7).position(|w| w == b"entries").unwrap();
    bytes[at] = b'E';
    std::fs::write(&path, bytes).unwrap();
    let v = Library::new(dir.path())
        .verify("s1", &k.public_key_b64())
        .unwrap();
    assert_eq!(
        v.problems,
        ["term-0.cast: SHA-256 does not match the manifest (file altered)"]
    );

    // Editing the manifest to match breaks the signature instead.
    let mpath = dir.path().join("s1/manifest.json");
    let text = std::fs::read_to_string(&mpath)
        .unwrap()
        .replace("\"closed by the vendor\"", "\"nothing happened\"");
    std::fs::write(&mpath, text).unwrap();
    let v = Library::new(dir.path())
        .verify("s1", &k.public_key_b64())
        .unwrap();
    assert!(
        v.problems[0].starts_with("manifest.json: signature does not match"),
        "{v:?}"
    );
    // And another key does not verify it at all.
    let v = verify_dir(&dir.path().join("s1"), &key().public_key_b64()).unwrap();
    assert!(v.problems[0].contains("signed by key"), "{v:?}");
}

#[tokio::test]
async fn search_finds_a_typed_command_and_screen_text_with_their_moments() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new(dir.path(), key()).unwrap();
    terminal_session(&rec, "s1").await;
    let lib = Library::new(dir.path());
    let hits = lib.search("JOURNALCTL -u dicom").unwrap();
    let sources: Vec<_> = hits
        .iter()
        .map(|h| (h.source, h.session.as_str()))
        .collect();
    assert!(sources.contains(&(index::Source::Input, "s1")), "{hits:#?}");
    assert!(
        sources.contains(&(index::Source::Screen, "s1")),
        "{hits:#?}"
    );
    assert!(hits.iter().all(|h| h.t >= 0.0 && h.t < 5.0));
    assert_eq!(
        lib.search("load average").unwrap()[0].source,
        index::Source::Output
    );
    assert!(lib.search("rm -rf").unwrap().is_empty());
}

#[tokio::test]
async fn data_reaches_the_disk_within_a_second_without_close() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new(dir.path(), key()).unwrap();
    let s = rec.open(meta("live")).await.unwrap();
    s.terminal(0, 80, 24, "t".into(), None).await.unwrap();
    s.output(0, b"still typing").await.unwrap();
    tokio::time::sleep(Duration::from_millis(1300)).await;
    let on_disk = std::fs::read_to_string(dir.path().join("live/term-0.cast")).unwrap();
    assert!(on_disk.contains("still typing"), "{on_disk}");
    s.close("done").await.unwrap();
}

#[tokio::test]
async fn after_a_write_failure_every_call_fails_so_the_session_ends() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new(dir.path(), key()).unwrap();
    let s = rec.open(meta("bad")).await.unwrap();
    // A channel that was never opened is a writer error, like a failed disk write.
    s.output(7, b"x").await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    let err = s.output(7, b"y").await.unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the recording could not be written: "),
        "{err}"
    );
    assert!(s.clone().close("x").await.is_err());
    // A recording directory that cannot be created refuses the recorder up front.
    let blocked = dir.path().join("file");
    std::fs::write(&blocked, "not a dir").unwrap();
    assert!(Recorder::new(&blocked.join("sub"), key()).is_err());
}

#[tokio::test]
async fn a_tcp_recording_exports_to_a_pcap_that_tshark_dissects() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new(dir.path(), key()).unwrap();
    let s = rec.open(meta("tun")).await.unwrap();
    s.stream(0, StreamKind::Tcp, "127.0.0.1:8080".into())
        .await
        .unwrap();
    s.frame(
        0,
        Direction::ToTarget,
        b"GET /status/dicom HTTP/1.1\r\nHost: pacs.local\r\n\r\n",
    )
    .await
    .unwrap();
    let body = "x".repeat(4000);
    let resp = format!(
        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    s.frame(0, Direction::FromTarget, resp.as_bytes())
        .await
        .unwrap();
    s.close("tunnel closed").await.unwrap();
    let file = stream::parse(&std::fs::read(dir.path().join("tun/stream-0.skr")).unwrap()).unwrap();
    let out = dir.path().join("tun.pcap");
    pcap::export(&file, std::fs::File::create(&out).unwrap()).unwrap();
    if tool("tshark") {
        let o = Command::new("tshark")
            .args(["-r"])
            .arg(&out)
            .args([
                "-o",
                "tcp.check_checksum:TRUE",
                "-d",
                "tcp.port==8080,http",
                "-Y",
                "http",
                "-T",
                "fields",
                "-e",
                "http.request.uri",
                "-e",
                "http.response.code",
                "-e",
                "tcp.checksum.status",
            ])
            .output()
            .unwrap();
        let shown = String::from_utf8_lossy(&o.stdout);
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 2, "{shown}");
        assert!(lines[0].starts_with("/status/dicom\t"), "{shown}");
        assert!(lines[1].starts_with("\t200\t"), "{shown}");
        // tcp.checksum.status 1 is "good" (0 bad, 2 unverified).
        assert!(
            lines.iter().all(|l| l.ends_with("\t1")),
            "checksums good: {shown}"
        );
    }
    // Exec streams are not TCP and say so.
    let mut b = vec![];
    stream::write_header(
        &mut b,
        &stream::StreamHeader {
            kind: StreamKind::Exec,
            channel: 0,
            detail: "ls".into(),
            started_at_us: 0,
        },
    )
    .unwrap();
    let e = stream::parse(&b).unwrap();
    assert!(
        pcap::export(&e, Vec::new())
            .unwrap_err()
            .to_string()
            .contains("only TCP")
    );
}

#[tokio::test]
async fn a_bundle_verifies_offline_with_sekisho_and_with_stock_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let k = key();
    let rec = Recorder::new(&dir.path().join("recs"), k.clone()).unwrap();
    terminal_session(&rec, "s1").await;
    let out = dir.path().join("s1.tar.gz");
    bundle::export(&dir.path().join("recs/s1"), &k.public_key_b64(), &out).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let check = bundle::verify(&out, None, scratch.path()).unwrap();
    assert!(check.verification.ok(), "{:?}", check.verification);
    assert!(check.key_from_bundle);
    assert_eq!(check.key_id, k.id());
    let scratch2 = tempfile::tempdir().unwrap();
    let other = bundle::verify(&out, Some(&key().public_key_b64()), scratch2.path()).unwrap();
    assert!(!other.verification.ok());

    if tool("openssl") && tool("tar") {
        let x = tempfile::tempdir().unwrap();
        assert!(
            Command::new("tar")
                .arg("xzf")
                .arg(&out)
                .arg("-C")
                .arg(x.path())
                .status()
                .unwrap()
                .success()
        );
        let b = x.path().join("sekisho-recording-s1");
        let o = Command::new("openssl")
            .args(["pkeyutl", "-verify", "-pubin", "-inkey"])
            .arg(b.join("public-key.pem"))
            .arg("-rawin")
            .arg("-in")
            .arg(b.join("manifest.unsigned.json"))
            .arg("-sigfile")
            .arg(b.join("manifest.sig"))
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{} {}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        assert!(String::from_utf8_lossy(&o.stdout).contains("Signature Verified Successfully"));
    }
}

/// Run by `a_writer_killed_mid_stream_leaves_a_sealed_aborted_recording` in a child process,
/// which is killed while this writes.
#[tokio::test]
#[ignore = "helper: runs only as the child of the crash test"]
async fn crash_child() {
    let Some(dir) = std::env::var_os("SEKISHO_CRASH_DIR") else {
        return;
    };
    let rec = Recorder::new(Path::new(&dir), key()).unwrap();
    let s = rec.open(meta("crashed")).await.unwrap();
    s.terminal(0, 80, 24, "t".into(), None).await.unwrap();
    s.stream(1, StreamKind::Exec, "tar czf - /var/log".into())
        .await
        .unwrap();
    for i in 0u64.. {
        s.output(0, format!("line {i}\r\n").as_bytes())
            .await
            .unwrap();
        s.frame(1, Direction::FromTarget, &[i as u8; 3000])
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::test]
async fn a_writer_killed_mid_stream_leaves_a_sealed_aborted_recording() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--ignored", "--exact", "crash_child", "--nocapture"])
        .env("SEKISHO_CRASH_DIR", dir.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Let it write for a while (several flushes), then kill it without warning.
    let stream_file = dir.path().join("crashed/stream-1.skr");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let cast_file = dir.path().join("crashed/term-0.cast");
    while std::fs::metadata(&stream_file)
        .map(|m| m.len())
        .unwrap_or(0)
        < 200_000
        || !std::fs::read_to_string(&cast_file)
            .unwrap_or_default()
            .contains("line 20\\r\\n")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "child wrote too little"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let k = key();
    let lib = Library::new(dir.path());
    assert_eq!(lib.list().unwrap()[0].state, RecordingState::Open);
    // Another node's recording (a shared directory) is left open.
    assert!(
        lib.seal_abandoned(&k, |s| s != "crashed", "elsewhere")
            .unwrap()
            .is_empty()
    );
    assert_eq!(lib.list().unwrap()[0].state, RecordingState::Open);
    let sealed = lib
        .seal_abandoned(
            &k,
            |_| true,
            "the gateway stopped while the session was open",
        )
        .unwrap();
    assert_eq!(sealed.len(), 1);
    assert_eq!(sealed[0].state, RecordingState::Aborted);
    let v = lib.verify("crashed", &k.public_key_b64()).unwrap();
    assert!(v.ok(), "{v:?}");
    // Both files read back: whole frames kept, a torn tail (if any) ignored, never fatal.
    let s = stream::parse(&std::fs::read(&stream_file).unwrap()).unwrap();
    assert!(s.frames.len() > 50, "{} frames", s.frames.len());
    assert!(s.frames.iter().all(|f| f.data.len() == 3000));
    let text = std::fs::read_to_string(dir.path().join("crashed/term-0.cast")).unwrap();
    let t = index::transcript(&text).unwrap();
    assert!(t.contains("line 10\n"), "{t}");
    // Sealing twice changes nothing.
    assert!(
        lib.seal_abandoned(
            &k,
            |_| true,
            "the gateway stopped while the session was open"
        )
        .unwrap()
        .is_empty()
    );
}

/// More live recordings than the runtime has blocking threads (512 by default): each still
/// opens, records and seals, and the runtime's own file operations still run meanwhile (a
/// writer held a blocking thread for its session's life, so the 513th session waited for ever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_live_recordings_than_the_runtime_has_blocking_threads() {
    let dir = tempfile::tempdir().unwrap();
    let rec = Recorder::new(dir.path(), key()).unwrap();
    let open = async {
        let mut live = vec![];
        for i in 0..600 {
            let s = rec.open(meta(&format!("many-{i}"))).await.unwrap();
            s.stream(0, StreamKind::Tcp, "127.0.0.1:22".into())
                .await
                .unwrap();
            s.frame(0, Direction::ToTarget, b"hello").await.unwrap();
            live.push(s);
        }
        // With all 600 live, the runtime's blocking pool is free for anyone else.
        tokio::fs::write(dir.path().join("probe"), b"x")
            .await
            .unwrap();
        for s in live {
            s.close("closed").await.unwrap();
        }
    };
    tokio::time::timeout(Duration::from_secs(120), open)
        .await
        .expect("recordings stalled");
    let lib = Library::new(dir.path());
    let all = lib.list().unwrap();
    assert_eq!(all.len(), 600);
    assert!(all.iter().all(|m| m.state == RecordingState::Closed));
}
