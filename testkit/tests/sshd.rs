//! The test target works with the stock OpenSSH client: key login, the right account, exit
//! codes, a pinned host key, and a refusal for keys it does not know.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use sekisho_testkit::sshd::{CHANGE_ACCOUNT, REFERENCE_ACCOUNT, Sshd, keygen};

fn ssh(sshd: &Sshd, key: &std::path::Path, account: &str, command: &str) -> std::process::Output {
    let known = sshd.dir.path().join("client_known_hosts");
    std::fs::write(&known, format!("{}\n", sshd.known_hosts_line())).unwrap();
    Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "StrictHostKeyChecking=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", known.display()))
        .arg("-i")
        .arg(key)
        .args(["-p", &sshd.port.to_string()])
        .arg(format!("{account}@127.0.0.1"))
        .arg(command)
        .output()
        .unwrap()
}

#[test]
fn stock_ssh_logs_into_each_account_with_its_key_only() {
    let Some(sshd) = Sshd::start() else { return };
    let keys = tempfile::tempdir().unwrap();
    let (ro_key, ro_pub) = keygen(keys.path(), "ro");
    let (rw_key, rw_pub) = keygen(keys.path(), "rw");
    sshd.authorize(REFERENCE_ACCOUNT, &ro_pub);
    sshd.authorize(CHANGE_ACCOUNT, &rw_pub);

    let out = ssh(&sshd, &ro_key, REFERENCE_ACCOUNT, "whoami; echo ok; exit 3");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        sshd.log()
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("{REFERENCE_ACCOUNT}\nok\n")
    );
    let out = ssh(&sshd, &rw_key, CHANGE_ACCOUNT, "whoami");
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), CHANGE_ACCOUNT);

    // The reference key does not open the change account.
    let out = ssh(&sshd, &ro_key, CHANGE_ACCOUNT, "whoami");
    assert_eq!(out.status.code(), Some(255));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Permission denied"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
