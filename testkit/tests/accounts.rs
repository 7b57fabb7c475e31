//! The test target's Unix accounts are created race-free from a machine that has none: several
//! test processes starting `sshd` at once all succeed (a CI run on a fresh machine failed
//! when two of them ran `useradd` together).
//!
//! Its own test binary, because it deletes the accounts first: `cargo test` runs binaries one
//! after another, so no other test uses them meanwhile. The deletion happens only in CI (as
//! root); elsewhere the test checks only that concurrent set-ups agree.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::{Command, Stdio};

use sekisho_testkit::sshd::{CHANGE_ACCOUNT, REFERENCE_ACCOUNT, ensure_accounts};

const CHILD: &str = "SEKISHO_ACCOUNTS_CHILD";

/// Run in each child process: set the accounts up, as `Sshd::start` does.
#[test]
fn child_sets_up_the_accounts() {
    if std::env::var_os(CHILD).is_none() {
        return; // only meaningful when started by the test below
    }
    ensure_accounts().unwrap();
}

fn password_field(account: &str) -> Option<String> {
    let shadow = std::fs::read_to_string("/etc/shadow").ok()?;
    shadow
        .lines()
        .find(|l| l.split(':').next() == Some(account))
        .and_then(|l| l.split(':').nth(1))
        .map(str::to_owned)
}

#[test]
fn processes_racing_to_create_the_accounts_all_succeed() {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout == b"0\n");
    if !root {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI runs the tests as root"
        );
        eprintln!("SKIPPED: creating test accounts needs root");
        return;
    }
    if std::env::var_os("CI").is_some() {
        for account in [REFERENCE_ACCOUNT, CHANGE_ACCOUNT] {
            let _ = Command::new("userdel")
                .args(["--remove", account])
                .stderr(Stdio::null())
                .status();
            let gone = !Command::new("id")
                .arg(account)
                .stderr(Stdio::null())
                .output()
                .unwrap()
                .status
                .success();
            assert!(gone, "{account} still exists after userdel");
        }
    }
    let exe = std::env::current_exe().unwrap();
    let children: Vec<_> = (0..6)
        .map(|_| {
            Command::new(&exe)
                .args(["--exact", "child_sets_up_the_accounts", "--nocapture"])
                .env(CHILD, "1")
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(
            out.status.success(),
            "a concurrent set-up failed:\n{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    for account in [REFERENCE_ACCOUNT, CHANGE_ACCOUNT] {
        // Key login only: `*`, never the locked `!` of a fresh account.
        assert_eq!(password_field(account).as_deref(), Some("*"), "{account}");
    }
}
