//! Issue #19, backup and restore, through a real `sekisho serve`, `ssh` and `sshd`: a backup
//! made while a session is live restores on a fresh data directory where the audit chain and
//! the recordings verify and staff log in; stock `sha256sum -c` checks the backup; a backup
//! that is partial, altered, padded or from a newer version is refused with its reason, and
//! so is a data directory that is not empty.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::path::Path;
use std::process::Command;

use support::gateway::{Pin, World};
use support::{Env, stderr, stdout};

fn copy(from: &Path, to: &Path) {
    let out = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}

/// `sekisho restore DIR` on a fresh environment: its output, and the environment.
fn restore(dir: &Path) -> (std::process::Output, Env) {
    let env = Env::new(None);
    let out = env.cli(&["restore", dir.to_str().unwrap()], "");
    (out, env)
}

#[tokio::test]
async fn a_backup_made_while_serving_restores_on_a_fresh_data_dir_and_verifies() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    w.approved("change").await;
    let out = w
        .ssh("alice+pacs", &["echo before-backup"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    w.wait_all_ended().await;
    let sealed = w.sessions(false).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // Backed up while a session is live.
    let (child, stdin) = w.interactive("alice+pacs", b"echo during-backup\n");
    w.wait_live().await;
    let backup = w.env.dir.path().join("backup");
    let out = w.env.cli(&["backup", backup.to_str().unwrap()], "");
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    assert!(stdout(&out).contains("backup complete"), "{}", stdout(&out));
    let mut stdin = stdin;
    std::io::Write::write_all(&mut stdin, b"exit\n").unwrap();
    drop(stdin);
    let (_, _) = support::gateway::exited(child, std::time::Duration::from_secs(20));
    w.wait_all_ended().await;
    // Into a folder that is not empty: refused.
    let out = w.env.cli(&["backup", backup.to_str().unwrap()], "");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));

    // Stock tools check it.
    let sums = Command::new("sha256sum")
        .args(["-c", "--quiet", "SHA256SUMS"])
        .current_dir(&backup)
        .output()
        .unwrap();
    assert!(sums.status.success(), "{}{}", stdout(&sums), stderr(&sums));
    let listed = std::fs::read_to_string(backup.join("SHA256SUMS")).unwrap();
    for wanted in [
        "  sekisho.db\n".to_owned(),
        "  keys/at-rest.key\n".to_owned(),
        format!("  recordings/{sealed}/manifest.json\n"),
    ] {
        assert!(listed.contains(&wanted), "{wanted:?} not in {listed}");
    }

    // Refused, each with its reason, leaving the data directory untouched.
    let scratch = w.env.dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();
    let broken = |name: &str, damage: &dyn Fn(&Path)| {
        let dir = scratch.join(name);
        copy(&backup, &dir);
        damage(&dir);
        dir
    };
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        (
            broken("partial", &|d| {
                std::fs::remove_file(d.join("backup.json")).unwrap()
            }),
            "not a complete backup",
        ),
        (
            broken("altered", &|d| {
                let f = d.join(format!("recordings/{sealed}/manifest.json"));
                let text = std::fs::read_to_string(&f).unwrap();
                std::fs::write(&f, text.replacen("\"state\"", "\"State\"", 1)).unwrap();
            }),
            "does not match its SHA-256",
        ),
        (
            broken("missing", &|d| {
                std::fs::remove_file(d.join("keys/at-rest.key")).unwrap()
            }),
            "keys/at-rest.key is listed",
        ),
        (
            broken("padded", &|d| {
                std::fs::write(d.join("keys/extra.key"), "x").unwrap()
            }),
            "keys/extra.key, which SHA256SUMS does not list",
        ),
        (
            broken("newer", &|d| {
                let f = d.join("backup.json");
                let mut v: serde_json::Value =
                    serde_json::from_slice(&std::fs::read(&f).unwrap()).unwrap();
                v["schema"] = 9999.into();
                std::fs::write(&f, v.to_string()).unwrap();
            }),
            "made by a newer Sekisho",
        ),
    ];
    for (dir, reason) in cases {
        let (out, env) = restore(&dir);
        assert!(!out.status.success(), "{} was restored", dir.display());
        assert!(
            stderr(&out).contains(reason),
            "{}: {}",
            dir.display(),
            stderr(&out)
        );
        assert!(!env.data_dir().exists(), "{} wrote data", dir.display());
    }
    let occupied = Env::new(None);
    std::fs::create_dir_all(occupied.data_dir()).unwrap();
    std::fs::write(occupied.data_dir().join("something"), "x").unwrap();
    let out = occupied.cli(&["restore", backup.to_str().unwrap()], "");
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is not empty"), "{}", stderr(&out));

    // Restored on a fresh data directory: the chain and the recordings verify, staff log in.
    let (out, env) = restore(&backup);
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let verified = env.cli(&["audit", "verify"], "");
    assert!(
        verified.status.success(),
        "{}{}",
        stdout(&verified),
        stderr(&verified)
    );
    let recording = env.cli(&["recording", "verify", &sealed], "");
    assert!(
        recording.status.success(),
        "{}{}",
        stdout(&recording),
        stderr(&recording)
    );
    let server = env.serve();
    let http = server.http();
    let token = http.login("hana", "approver password 1").await;
    let (status, sessions) = http.get("/api/v1/sessions", &token).await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = sessions
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&sealed.as_str()), "{sessions}");
    // The keys came back: the same SSH host key as before.
    assert_eq!(
        server.ssh_host_key(),
        w.server.as_ref().unwrap().ssh_host_key()
    );
}
