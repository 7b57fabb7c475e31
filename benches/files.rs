//! Issue #16's benchmark: uploads with stock `scp` (its sftp protocol) in one run: directly
//! to the `sshd` target, through Sekisho without a scanner (logged, straight to the target),
//! through Sekisho with quarantine and a no-op scan command (`/bin/true`: the cost of staging
//! and delivering), and through Sekisho with quarantine and a real clamd. Each gateway is a
//! `sekisho serve` process as shipped; its CPU per GB is read from /proc.
//!
//! Run: `cargo bench --bench files` (add `-- --mib 128` for a shorter run). Needs sshd and
//! clamd (`.ci/run` installs both).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::Instant;

use sekisho_testkit::sshd::CHANGE_ACCOUNT;
use support::gateway::{Pin, World};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Runs `scp`; returns MB/s for `bytes`.
fn run(mut cmd: Command, bytes: u64) -> f64 {
    let started = Instant::now();
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    bytes as f64 / started.elapsed().as_secs_f64() / 1e6
}

async fn site(files: &str) -> World {
    let env = support::Env::new(None);
    if !files.is_empty() {
        env.configure(&format!("[files]\n{files}\n"));
    }
    let w = World::with_env(env, Pin::Real)
        .await
        .expect("no sshd here: install openssh-server");
    w.approved("change").await;
    w
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: u64 = args
        .iter()
        .position(|a| a == "--mib")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(512);
    let rounds = 3;
    let bytes = mib * 1024 * 1024;
    let clamd =
        sekisho_testkit::clamd::Clamd::start().expect("no clamd here: install clamav-daemon");
    let plain = site("").await;
    let noop = site("scan_command = [\"/bin/true\"]").await;
    let scanned = site(&format!("clamd = \"{}\"", clamd.socket().display())).await;
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("upload.bin");
    std::fs::write(&file, support::incompressible(bytes as usize)).unwrap();
    let dest = support::SharedDir::new("bench-files");
    let to = dest.path("upload.bin");
    let gateway_key = plain.keys.path().join("gateway-to-pacs");
    let direct = || {
        let mut c = Command::new("scp");
        c.arg("-P")
            .arg(plain.sshd.port.to_string())
            .args(support::gateway::ssh_options(&gateway_key))
            .arg(&file)
            .arg(format!("{CHANGE_ACCOUNT}@127.0.0.1:{to}"));
        c
    };
    let through = |w: &World| {
        let mut c = Command::new("scp");
        c.arg("-P")
            .arg(w.ssh_port.to_string())
            .args(support::gateway::ssh_options(&w.alice_key))
            .arg(&file)
            .arg(format!("alice+pacs+change@127.0.0.1:{to}"));
        c
    };
    let names = [
        "direct scp to sshd (baseline)",
        "through Sekisho, no scanner (logged, straight to the target)",
        "through Sekisho, quarantine + no-op scan command (`/bin/true`)",
        "through Sekisho, quarantine + clamd",
    ];
    let mut rates: Vec<Vec<f64>> = vec![vec![]; 4];
    let mut cpu: Vec<Vec<f64>> = vec![vec![]; 4];
    for round in 0..rounds {
        eprintln!("round {}/{rounds}: {mib} MiB each", round + 1);
        rates[0].push(run(direct(), bytes));
        for (i, w) in [&plain, &noop, &scanned].into_iter().enumerate() {
            let pid = w.server.as_ref().unwrap().child.id();
            let before = support::cpu_seconds(pid);
            rates[i + 1].push(run(through(w), bytes));
            cpu[i + 1].push((support::cpu_seconds(pid) - before) / (bytes as f64 / 1e9));
        }
        for (name, v) in names.iter().zip(&rates) {
            eprintln!("  {name}: {:.0} MB/s", v.last().unwrap());
        }
    }
    let base = median(rates[0].clone());
    println!(
        "| upload ({mib} MiB, scp) | MB/s (median of {rounds}) | ratio to direct | gateway CPU-s per GB |"
    );
    println!("| --- | ---: | ---: | ---: |");
    for (i, name) in names.iter().enumerate() {
        let m = median(rates[i].clone());
        let c = if cpu[i].is_empty() {
            "—".to_owned()
        } else {
            format!("{:.2}", median(cpu[i].clone()))
        };
        println!("| {name} | {m:.0} | {:.2} | {c} |", m / base);
    }
}
