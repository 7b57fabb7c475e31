//! Issue #16 end to end: files in and out through a running `sekisho serve`, with stock
//! `scp`, `sftp` and `scp -O` to a real `sshd`, uploads scanned by a real `clamd` (and by a
//! command hook) in quarantine before they reach the target.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;

use serde_json::{Value, json};
use support::gateway::{Pin, World};
use support::{Env, SharedDir, stderr};

/// `sha256sum FILE` as the target's own tool prints it.
fn sha256sum(path: &str) -> String {
    let out = std::process::Command::new("sha256sum")
        .arg(path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned()
}

async fn files(w: &World, query: &str) -> Vec<Value> {
    let (status, body) = w
        .http
        .get(&format!("/api/v1/files?{query}"), &w.admin)
        .await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

/// The transfer of `path` (newest first), waiting for it to be logged.
async fn transfer(w: &World, path: &str) -> Value {
    for _ in 0..100 {
        let all = files(w, "limit=1000").await;
        if let Some(t) = all.into_iter().find(|t| t["path"] == path) {
            return t;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!(
        "no transfer of {path} logged: {:?}",
        files(w, "limit=1000").await
    );
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p.display().to_string()
}

#[tokio::test]
async fn uploads_are_scanned_in_quarantine_and_every_file_is_logged_with_its_hash() {
    let Some(mut clamd) = sekisho_testkit::clamd::Clamd::start() else {
        return;
    };
    let env = Env::new(None);
    env.configure(&format!(
        "[files]\nclamd = \"{}\"\n",
        clamd.socket().display()
    ));
    let Some(w) = World::with_env(env, Pin::FirstUse).await else {
        return;
    };
    w.approved("change").await;
    let out_dir = SharedDir::new("files-in");
    let local = tempfile::tempdir().unwrap();
    let login = "alice+pacs+change";

    // A clean file, by scp (sftp underneath): on the target, logged with the hash the
    // target's own sha256sum gives.
    let clean = support::incompressible(3 * 1024 * 1024 + 17);
    let from = write(local.path(), "clean.bin", &clean);
    let dest = out_dir.path("clean.bin");
    let out = w.scp(login, &[], &from, &format!("REMOTE:{dest}"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::read(&dest).unwrap(), clean);
    let t = transfer(&w, &dest).await;
    assert_eq!(t["direction"], "upload", "{t}");
    assert_eq!(t["outcome"], "completed", "{t}");
    assert_eq!(t["bytes"], clean.len() as u64, "{t}");
    assert_eq!(t["sha256"], sha256sum(&dest), "{t}");

    // The EICAR test file, by sftp: blocked with the scanner's words, never on the target,
    // kept in quarantine with its hash.
    let eicar = write(local.path(), "eicar.com", sekisho_testkit::clamd::EICAR);
    let infected = out_dir.path("eicar.com");
    let out = w.sftp(login, &format!("put {eicar} {infected}\n"));
    assert!(!out.status.success(), "an infected upload succeeded");
    assert!(
        stderr(&out).contains("blocked: Eicar-Test-Signature found by clamd"),
        "{}",
        stderr(&out)
    );
    assert!(
        !Path::new(&infected).exists(),
        "the infected file reached the target"
    );
    let t = transfer(&w, &infected).await;
    assert_eq!(t["outcome"], "blocked", "{t}");
    assert_eq!(t["sha256"], sha256sum(&eicar), "{t}");
    let qid = t["quarantine"].as_str().unwrap().to_owned();
    let (status, kept) = w.http.get("/api/v1/quarantine", &w.approver).await;
    assert_eq!(status, 200, "{kept}");
    let entry = kept
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["id"] == qid)
        .unwrap_or_else(|| panic!("{kept}"));
    assert_eq!(entry["path"], infected);
    assert!(
        entry["reason"]
            .as_str()
            .unwrap()
            .contains("Eicar-Test-Signature")
    );
    // The console lists it, in both languages; only admins get the buttons.
    for (token, lang, says, buttons) in [
        (&w.approver, "en", "Quarantine", false),
        (&w.admin, "ja", "隔離ファイル", true),
    ] {
        let (status, page) = w
            .http
            .console("/console/quarantine", token, Some(lang))
            .await;
        assert_eq!(status, 200);
        let page = String::from_utf8_lossy(&page);
        assert!(page.contains(says) && page.contains(&infected), "{page}");
        assert!(page.contains("Eicar-Test-Signature"), "{page}");
        assert_eq!(
            page.contains(&format!("/console/quarantine/{qid}/delete")),
            buttons,
            "{page}"
        );
    }
    // IT inspects it (admin only, audited) and deletes it (audited).
    let (status, _) = w
        .http
        .get(&format!("/api/v1/quarantine/{qid}/content"), &w.approver)
        .await;
    assert_eq!(status, 403);
    let bytes = w
        .http
        .client
        .get(format!("{}/api/v1/quarantine/{qid}/content", w.http.base))
        .bearer_auth(&w.admin)
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(&bytes[..], sekisho_testkit::clamd::EICAR);
    let (status, body) = w
        .http
        .send(
            reqwest::Method::DELETE,
            &format!("/api/v1/quarantine/{qid}"),
            Some(&w.admin),
            None,
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(body["deleted_at"].is_string(), "{body}");
    let kinds: Vec<String> = w
        .audit("limit=1000")
        .await
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or_default().to_owned())
        .collect();
    for kind in [
        "file_transferred",
        "quarantine_retrieved",
        "quarantine_deleted",
    ] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "{kind} not audited: {kinds:?}"
        );
    }

    // Legacy scp (-O) cannot go through quarantine: refused, with the way that works.
    let legacy = out_dir.path("legacy.bin");
    let out = w.scp(login, &["-O"], &from, &format!("REMOTE:{legacy}"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("scanned in quarantine and go over sftp only"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new(&legacy).exists());

    // A download: logged with the hash of what crossed.
    let fetched = local.path().join("hostname");
    let out = w.scp(
        login,
        &[],
        "REMOTE:/etc/hostname",
        fetched.to_str().unwrap(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let t = transfer(&w, "/etc/hostname").await;
    assert_eq!(t["direction"], "download", "{t}");
    assert_eq!(t["sha256"], sha256sum("/etc/hostname"), "{t}");

    // The scanner down: the upload is blocked (fail closed), and says why.
    clamd.stop();
    let unscanned = out_dir.path("unscanned.bin");
    let out = w.scp(login, &[], &from, &format!("REMOTE:{unscanned}"));
    assert!(
        !out.status.success(),
        "an upload went through with the scanner down"
    );
    assert!(
        stderr(&out).contains("could not be scanned"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new(&unscanned).exists());

    // The recording holds the same log, sealed with it.
    let session = transfer(&w, &dest).await["session"]
        .as_str()
        .unwrap()
        .to_owned();
    w.wait_all_ended().await;
    let (status, m) = w
        .http
        .get(&format!("/api/v1/recordings/{session}"), &w.admin)
        .await;
    assert_eq!(status, 200, "{m}");
    assert!(m.to_string().contains("files.jsonl"), "{m}");
}

#[tokio::test]
async fn downloads_follow_the_level_and_without_a_scanner_uploads_go_straight_through_logged() {
    let Some(w) = World::new(Pin::FirstUse).await else {
        return;
    };
    w.set_level("reference", json!({"file_download": false}))
        .await;
    w.set_level(
        "change",
        json!({"file_upload": true, "file_download": true, "download_max_bytes": 100}),
    )
    .await;
    w.approved("reference").await;
    let local = tempfile::tempdir().unwrap();
    let fetched = local.path().join("passwd");

    // Reference: downloads denied, with the reason, audited.
    let out = w.scp(
        "alice+pacs",
        &[],
        "REMOTE:/etc/passwd",
        fetched.to_str().unwrap(),
    );
    assert!(!out.status.success(), "a download succeeded where denied");
    assert!(
        stderr(&out).contains("file download from pacs is not allowed at reference level"),
        "{}",
        stderr(&out)
    );
    assert!(!fetched.exists());
    // The legacy protocol too.
    let out = w.scp(
        "alice+pacs",
        &["-O"],
        "REMOTE:/etc/passwd",
        fetched.to_str().unwrap(),
    );
    assert!(
        !out.status.success(),
        "a legacy download succeeded where denied"
    );
    assert!(
        stderr(&out).contains(
            "file download from pacs is not allowed at reference level (scp -f /etc/passwd)"
        ),
        "{}",
        stderr(&out)
    );
    assert!(!fetched.exists());
    let denied = w.audit("kind=access_denied").await;
    assert!(
        denied
            .iter()
            .any(|d| d["details"]["code"] == "download_not_allowed"
                && d["details"]["channel"] == "file_download"),
        "{denied:?}"
    );

    // Change: at most 100 bytes per file; a larger file is refused past the limit.
    w.approved("change").await;
    let out = w.scp(
        "alice+pacs+change",
        &[],
        "REMOTE:/etc/passwd",
        fetched.to_str().unwrap(),
    );
    assert!(!out.status.success(), "a download past the limit succeeded");
    let t = transfer(&w, "/etc/passwd").await;
    assert_eq!(t["outcome"], "refused", "{t}");
    assert!(
        t["detail"]
            .as_str()
            .unwrap()
            .contains("download limit of 100 bytes"),
        "{t}"
    );

    // Legacy scp at change: a small file comes through, logged with its hash; one over the
    // limit is cut before its bytes cross.
    let hostname = local.path().join("hostname");
    let out = w.scp(
        "alice+pacs+change",
        &["-O"],
        "REMOTE:/etc/hostname",
        hostname.to_str().unwrap(),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let t = transfer(&w, "/etc/hostname").await;
    assert_eq!(t["outcome"], "completed", "{t}");
    assert_eq!(t["sha256"], sha256sum("/etc/hostname"), "{t}");
    let big = local.path().join("group");
    let out = w.scp(
        "alice+pacs+change",
        &["-O"],
        "REMOTE:/etc/group",
        big.to_str().unwrap(),
    );
    assert!(
        !out.status.success(),
        "a legacy download past the limit succeeded"
    );
    assert!(
        stderr(&out).contains("larger than the download limit of 100 bytes"),
        "{}",
        stderr(&out)
    );
    let t = transfer(&w, "/etc/group").await;
    assert_eq!(t["outcome"], "refused", "{t}");

    // No scanner configured: an upload goes straight to the target, logged with its hash,
    // and the console says uploads are not scanned.
    let out_dir = SharedDir::new("files-direct");
    let from = write(local.path(), "notes.txt", b"maintenance notes\n");
    let dest = out_dir.path("notes.txt");
    let out = w.scp("alice+pacs+change", &[], &from, &format!("REMOTE:{dest}"));
    assert!(out.status.success(), "{}", stderr(&out));
    let t = transfer(&w, &dest).await;
    assert_eq!(t["outcome"], "completed", "{t}");
    assert_eq!(t["sha256"], sha256sum(&dest), "{t}");
    let (status, page) = w.http.console("/console/admin", &w.admin, Some("en")).await;
    assert_eq!(status, 200);
    let page = String::from_utf8_lossy(&page);
    assert!(page.contains("Uploads are not scanned"), "{page}");
    // An sftp server run as a command (`sftp -s PROGRAM`, an exec channel) is logged too.
    let via_exec = out_dir.path("via-exec.txt");
    let out = w.sftp_with(
        "alice+pacs+change",
        &["-s", "/usr/lib/openssh/sftp-server"],
        &format!("put {from} {via_exec}\n"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let t = transfer(&w, &via_exec).await;
    assert_eq!(t["outcome"], "completed", "{t}");
    assert_eq!(t["sha256"], sha256sum(&via_exec), "{t}");
    // Legacy scp uploads too.
    let legacy = out_dir.path("legacy.txt");
    let from_legacy = write(local.path(), "legacy.txt", b"legacy protocol notes\n");
    let out = w.scp(
        "alice+pacs+change",
        &["-O"],
        &from_legacy,
        &format!("REMOTE:{legacy}"),
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let t = transfer(&w, &legacy).await;
    assert_eq!(t["outcome"], "completed", "{t}");
    assert_eq!(t["sha256"], sha256sum(&legacy), "{t}");
    // Searchable by name.
    let found = files(&w, "name=NOTES.TXT").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["path"], dest);
}

/// Peak resident memory of `pid` in MiB (VmHWM).
fn peak_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

/// The hospital's own sanitizer as a command hook (exit 0 passes, 1 blocks with its words,
/// anything else is a failure and blocks too); and a 1 GiB upload through quarantine costs
/// the gateway packets of memory, not the file.
#[tokio::test]
async fn a_scan_command_decides_and_a_large_upload_is_staged_on_disk_not_in_memory() {
    // Reads only the first bytes, so that the 1 GiB file below is scanned at once.
    let (_hook_dir, hook) = support::script(
        "case $(head -c 16 \"$1\") in\n\
         *BLOCKME*) echo 'macro found by sanitizer'; exit 1 ;;\n\
         *FAILME*) echo 'sanitizer crashed' >&2; exit 3 ;;\n\
         *SLOWME*) sleep 30 ;;\n\
         esac\n\
         exit 0\n",
    );
    let env = Env::new(None);
    env.configure(&format!(
        "[files]\nscan_command = [\"{}\"]\nscan_timeout_seconds = 2\n",
        hook.display()
    ));
    let Some(w) = World::with_env(env, Pin::FirstUse).await else {
        return;
    };
    w.approved("change").await;
    let out_dir = SharedDir::new("files-hook");
    let local = tempfile::tempdir().unwrap();
    let login = "alice+pacs+change";

    let blocked = write(local.path(), "report.doc", b"...BLOCKME...");
    let dest = out_dir.path("report.doc");
    let out = w.scp(login, &[], &blocked, &format!("REMOTE:{dest}"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("blocked: macro found by sanitizer"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new(&dest).exists());
    let failing = write(local.path(), "odd.bin", b"FAILME");
    let dest = out_dir.path("odd.bin");
    let out = w.scp(login, &[], &failing, &format!("REMOTE:{dest}"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("could not be scanned") && stderr(&out).contains("exit status 3"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new(&dest).exists());

    // A scan that takes longer than [files] scan_timeout_seconds blocks the upload.
    let slow = write(local.path(), "slow.bin", b"SLOWME");
    let dest = out_dir.path("slow.bin");
    let out = w.scp(login, &[], &slow, &format!("REMOTE:{dest}"));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("did not finish within 2 seconds"),
        "{}",
        stderr(&out)
    );
    assert!(!Path::new(&dest).exists());

    // 1 GiB, staged on the gateway's disk, scanned, delivered.
    let big = local.path().join("image.iso");
    let f = std::fs::File::create(&big).unwrap();
    f.set_len(1 << 30).unwrap();
    drop(f);
    let pid = w.server.as_ref().unwrap().child.id();
    let before = peak_mib(pid);
    let dest = out_dir.path("image.iso");
    let out = w.scp(login, &[], big.to_str().unwrap(), &format!("REMOTE:{dest}"));
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(std::fs::metadata(&dest).unwrap().len(), 1 << 30);
    let t = transfer(&w, &dest).await;
    assert_eq!(t["sha256"], sha256sum(&dest), "{t}");
    let after = peak_mib(pid);
    eprintln!(
        "gateway peak memory: {before:.0} MiB before, {after:.0} MiB after 1 GiB through quarantine"
    );
    assert!(
        after - before < 128.0,
        "the gateway's peak memory grew by {:.0} MiB for a 1 GiB upload",
        after - before
    );
}
