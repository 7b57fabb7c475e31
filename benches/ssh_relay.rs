//! Issue #5's benchmark: 1 GiB pushed into `cat > /dev/null` on a real `sshd` target, in one
//! run: directly, through an OpenSSH jump host (`ssh -J`, the same sshd), through Sekisho as
//! shipped (a `sekisho serve` process), and through two gateways inside this process
//! (`sekisho_gateway::start_with`): one recording, one in the benchmark-only unrecorded mode
//! that nothing in the product can select. The last two give recording's cost to the relay.
//!
//! `BENCH_CIPHER=aes256-gcm@openssh.com` makes every measured client use that cipher.
//!
//! Run: `cargo bench --bench ssh_relay` (add `-- --mib 256` for a shorter run). Prints a
//! Markdown table of MB/s and ratios to the direct OpenSSH rate.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::Instant;

use sekisho_testkit::sshd::CHANGE_ACCOUNT;
use support::gateway::{Pin, World};

const CHUNK: usize = 4 * 1024 * 1024;

/// Runs `cmd` with `total` bytes of incompressible data on its stdin; returns MB/s.
fn push(mut cmd: Command, total: u64) -> f64 {
    if let Ok(cipher) = std::env::var("BENCH_CIPHER") {
        // ssh takes the options before the destination; the command's own args follow it.
        let args: Vec<std::ffi::OsString> = cmd.get_args().map(ToOwned::to_owned).collect();
        let mut with = Command::new(cmd.get_program());
        with.arg("-c").arg(cipher).args(args);
        cmd = with;
    }
    let block = support::incompressible(CHUNK);
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let mut sent = 0u64;
    while sent < total {
        let n = CHUNK.min((total - sent) as usize);
        if stdin.write_all(&block[..n]).is_err() {
            break; // the client died: its stderr says why (below)
        }
        sent += n as u64;
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success() && sent == total,
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    total as f64 / started.elapsed().as_secs_f64() / 1e6
}

fn direct(w: &World, gateway_key: &std::path::Path, jump: bool) -> Command {
    let mut c = Command::new("ssh");
    c.args(support::gateway::ssh_options(gateway_key));
    if jump {
        // What `ssh -J` does, spelled out so the hop gets the same options (and OpenSSH's
        // jump-loop check does not stop a hop through the same sshd).
        let hop = format!(
            "ssh {} -p {} -W %h:%p {CHANGE_ACCOUNT}@127.0.0.1",
            support::gateway::ssh_options(gateway_key).join(" "),
            w.sshd.port
        );
        c.arg("-o").arg(format!("ProxyCommand={hop}"));
    }
    c.arg("-p")
        .arg(w.sshd.port.to_string())
        .arg(format!("{CHANGE_ACCOUNT}@127.0.0.1"))
        .arg("cat > /dev/null");
    c
}

/// CPU seconds (user + system) process `pid` has used so far.
fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// A site whose gateway runs in this process, recording (to disk) or not.
async fn site(unrecorded: bool) -> World {
    let env = support::Env::new(None);
    let options = sekisho_gateway::StartOptions {
        unrecorded_for_benchmarks: unrecorded,
    };
    let w = World::in_process(env, Pin::Real, options)
        .await
        .expect("no sshd here: install openssh-server");
    w.approved("change").await;
    w
}

/// [`push`] on a blocking thread, so the in-process gateway keeps the runtime's workers.
async fn timed(cmd: Command, total: u64) -> f64 {
    tokio::task::spawn_blocking(move || push(cmd, total))
        .await
        .unwrap()
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let mib: u64 = args
        .iter()
        .position(|a| a == "--mib")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let rounds = 3;
    let total = mib * 1024 * 1024;
    // As shipped: a separate `sekisho serve` process.
    let shipped = World::new(Pin::Real)
        .await
        .expect("no sshd here: install openssh-server");
    shipped.approved("change").await;
    let disk = site(false).await;
    let off = site(true).await;
    let gateway_key = disk.keys.path().join("gateway-to-pacs");
    let through = |w: &World| w.ssh("alice+pacs+change", &["cat > /dev/null"]);
    let mut rows: Vec<(&str, Vec<f64>)> = vec![
        ("direct OpenSSH to sshd (baseline)", vec![]),
        ("OpenSSH jump host (`ssh -J`, same sshd)", vec![]),
        (
            "Sekisho as shipped (`sekisho serve` process, recorded)",
            vec![],
        ),
        ("Sekisho in this process, recorded", vec![]),
        (
            "Sekisho in this process, not recorded (benchmark-only mode)",
            vec![],
        ),
    ];
    let gateway_pid = shipped.server.as_ref().unwrap().child.id();
    let mut gateway_cpu = vec![];
    for round in 0..rounds {
        eprintln!("round {}/{rounds}: {mib} MiB each", round + 1);
        rows[0]
            .1
            .push(timed(direct(&disk, &gateway_key, false), total).await);
        rows[1]
            .1
            .push(timed(direct(&disk, &gateway_key, true), total).await);
        let before = support::cpu_seconds(gateway_pid);
        rows[2].1.push(timed(through(&shipped), total).await);
        gateway_cpu.push((support::cpu_seconds(gateway_pid) - before) / (total as f64 / 1e9));
        rows[3].1.push(timed(through(&disk), total).await);
        rows[4].1.push(timed(through(&off), total).await);
        for (name, v) in &rows {
            eprintln!("  {name}: {:.0} MB/s", v.last().unwrap());
        }
    }
    let base = median(rows[0].1.clone());
    println!("| path | MB/s (median of {rounds}) | ratio to direct OpenSSH |");
    println!("| --- | ---: | ---: |");
    for (name, v) in &rows {
        let m = median(v.clone());
        println!("| {name} | {m:.0} | {:.2} |", m / base);
    }
    let cpu = median(gateway_cpu);
    println!(
        "\nthe `sekisho serve` process used {cpu:.2} CPU-seconds per GB relayed (recording included): \
         on a core of its own that is about {:.0} MB/s",
        1000.0 / cpu
    );
    let on = median(rows[3].1.clone());
    let unrecorded = median(rows[4].1.clone());
    println!(
        "\nrecording on (disk) vs off: {:.2}x, i.e. recording costs the relay {:.0} % ({mib} MiB per run)",
        on / unrecorded,
        (1.0 - on / unrecorded) * 100.0
    );
    for w in [&disk, &off] {
        w.stop.as_ref().unwrap().cancel();
    }
}
