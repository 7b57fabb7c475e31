//! Issue #17 with the designated client: the certificate is the first factor, the account's
//! one-time code the second. `sekisho-client` sends the code given with `--otp` (or
//! `SEKISHO_OTP`, which is how `ssh`'s ProxyCommand gets it), asks for it on the terminal
//! when none was given, and explains when it cannot ask. Through a running `sekisho serve`
//! to a real `sshd`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tests/support/mod.rs"]
mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::gateway::{Pin, World, totp_in};
use support::{stderr, stdout};

const CLIENT: &str = env!("CARGO_BIN_EXE_sekisho-client");

/// `sekisho-client --dir DIR ARGS` in a session of its own: no terminal to ask on, whatever
/// terminal the tests were started from.
fn detached(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new("setsid")
        .arg("--wait")
        .arg(CLIENT)
        .arg("--dir")
        .arg(dir)
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

async fn quic_denials(w: &World, code: &str) -> Vec<Value> {
    for _ in 0..50 {
        let found: Vec<Value> = w
            .audit("kind=access_denied&limit=200")
            .await
            .into_iter()
            .filter(|e| e["details"]["code"] == code && e["details"]["channel"] == "quic")
            .collect();
        if !found.is_empty() {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!(
        "no quic denial {code}: {:?}\n{}",
        w.audit("kind=access_denied&limit=200").await,
        w.log()
    );
}

#[tokio::test]
async fn the_designated_client_sends_or_asks_for_the_one_time_code() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    let dir = w.keys.path().join("client");
    w.enroll_client(CLIENT, &dir).await;
    w.approved("change").await;
    let (secret, recovery) = w.enrol_mfa("alice", "vendor password 1").await;

    // No code and no terminal: the client says how to give one; the gateway audits it.
    let out = detached(&dir, &["ssh", "pacs", "--", "echo", "never"], &[]);
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("needs its one-time code and there is no terminal to ask on: pass --otp CODE"),
        "{err}"
    );
    quic_denials(&w, "mfa_required").await;

    // A wrong code given on the command line is refused at once (not asked again).
    let out = detached(
        &dir,
        &["--otp", "000000", "ssh", "pacs", "--", "echo", "never"],
        &[],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("wrong one-time code"), "{err}");
    quic_denials(&w, "wrong_one_time_code").await;

    // The right code in the environment reaches the ProxyCommand that ssh starts.
    let code = totp_in(&secret, 1);
    let out = detached(
        &dir,
        &["ssh", "pacs", "--", "echo", "with-code"],
        &[("SEKISHO_OTP", &code)],
    );
    assert!(out.status.success(), "{}\n{}", stderr(&out), w.log());
    assert_eq!(stdout(&out).trim(), "with-code");

    // The same code for a tunnel: used already.
    let port = w.sshd.port.to_string();
    let out = detached(
        &dir,
        &[
            "--otp",
            &code,
            "tunnel",
            "pacs",
            &port,
            "--local",
            "127.0.0.1:0",
        ],
        &[],
    );
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(err.contains("has been used already"), "{err}");
    quic_denials(&w, "one_time_code_replayed").await;

    // On a terminal the client asks; a recovery code typed there opens the tunnel, which
    // forwards to the target's SSH port.
    let mut child = Command::new("script")
        .args(["--quiet", "--return", "--command"])
        .arg(format!(
            "'{CLIENT}' --dir '{}' tunnel pacs {port} --local 127.0.0.1:0",
            dir.display()
        ))
        .arg("/dev/null")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut typed = child.stdin.take().unwrap();
    let mut screen = BufReader::new(child.stdout.take().unwrap());
    let mut seen = String::new();
    let mut line = String::new();
    let forwarding = loop {
        line.clear();
        // The prompt has no newline: wait for it, then type.
        let mut prompt = [0u8; 1];
        if !seen.contains("one-time code:") {
            if screen.read(&mut prompt).unwrap() == 0 {
                break None;
            }
            seen.push(char::from(prompt[0]));
            if seen.contains("one-time code:") {
                writeln!(typed, "{}", recovery[0]).unwrap();
                typed.flush().unwrap();
            }
            continue;
        }
        if screen.read_line(&mut line).unwrap() == 0 {
            break None;
        }
        seen.push_str(&line);
        if let Some(rest) = line.trim().strip_prefix("Forwarding ") {
            break rest.split_whitespace().next().map(str::to_owned);
        }
    };
    let Some(local) = forwarding else {
        let _ = child.kill();
        panic!("the tunnel did not start: {seen}\n{}", w.log());
    };
    let mut banner = [0u8; 8];
    let mut s = std::net::TcpStream::connect(&local).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.read_exact(&mut banner).unwrap();
    assert_eq!(&banner, b"SSH-2.0-");
    let _ = child.kill();
    let _ = child.wait();
    let used = w.audit("kind=mfa_recovery_code_used").await;
    assert_eq!(used.len(), 1, "{used:?}");
    assert_eq!(used[0]["details"]["left"], 9, "{used:?}");
}
