//! Issue #6's benchmark: a TCP service on loopback reached three ways in one run — directly,
//! through OpenSSH port forwarding (`ssh -N -L` to the real `sshd` target, the usual vendor
//! VPN-less setup), and through `sekisho-client tunnel` and a `sekisho serve` process
//! (recording included).
//!
//! Measured: 1 GiB pushed into the service (MB/s, median of runs); time from TCP connect to
//! the service's first byte through each path (p50, p99 over 200 connections); and the
//! memory of the gateway and the client with 200 concurrent tunnelled connections open.
//!
//! Run: `cargo build --release --bin sekisho && cargo bench -p sekisho-client --bench tunnel`
//! (add `-- --mib 256 --runs 3` to change the amount). Prints a Markdown table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tests/support/mod.rs"]
mod support;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use support::gateway::{Pin, World, client_command, client_tunnel};

const CLIENT: &str = env!("CARGO_BIN_EXE_sekisho-client");
const CHUNK: usize = 1024 * 1024;

/// The service: greets with one byte at once, then swallows everything and answers the
/// byte count when the sender is done.
fn service() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                if s.write_all(b"+").is_err() {
                    return;
                }
                let mut buf = vec![0u8; CHUNK];
                let mut total = 0u64;
                loop {
                    match s.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => total += n as u64,
                    }
                }
                let _ = s.write_all(&total.to_be_bytes());
            });
        }
    });
    port
}

/// Pushes `total` bytes through `port`; returns MB/s (until the service confirmed them all).
fn push(port: u16, total: u64) -> f64 {
    let block = support::incompressible(CHUNK);
    let started = Instant::now();
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut greeting = [0u8; 1];
    s.read_exact(&mut greeting).unwrap();
    let mut sent = 0u64;
    while sent < total {
        let n = CHUNK.min((total - sent) as usize);
        s.write_all(&block[..n]).unwrap();
        sent += n as u64;
    }
    s.shutdown(Shutdown::Write).unwrap();
    let mut count = [0u8; 8];
    s.read_exact(&mut count).unwrap();
    assert_eq!(
        u64::from_be_bytes(count),
        total,
        "the service got a different count"
    );
    total as f64 / started.elapsed().as_secs_f64() / 1e6
}

/// Connect-to-first-byte times through `port`, in milliseconds, sorted.
fn first_byte(port: u16, n: usize) -> Vec<f64> {
    let mut times: Vec<f64> = (0..n)
        .map(|_| {
            let started = Instant::now();
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            let mut b = [0u8; 1];
            s.read_exact(&mut b).unwrap();
            started.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Waits until something listens on `port`.
fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::main]
async fn main() {
    let total = support::bench_arg("--mib", 1024) * 1024 * 1024;
    let runs = support::bench_arg("--runs", 3);
    let Some(w) = World::new(Pin::Real).await else {
        panic!("the benchmark needs OpenSSH's sshd (see .ci/run)");
    };
    let port = service();

    // Let the change level reach the service's port.
    w.allow_change_ports(&[port]).await;
    let key = w.keys.path().join("gateway-to-pacs");
    let (code, fingerprint) = w.enrollment_code().await;
    let dir = w.keys.path().join("client");
    let enrolled = client_command(
        CLIENT,
        &dir,
        &[
            "enroll",
            "--gateway",
            &w.quic_addr(),
            "--code",
            &code,
            "--fingerprint",
            &fingerprint,
        ],
    )
    .output()
    .unwrap();
    assert!(enrolled.status.success(), "{enrolled:?}");
    w.approved("change").await;

    // sekisho-client tunnel.
    let (tunnel, local) = client_tunnel(CLIENT, &dir, port, Stdio::null());
    let tunnel_port: u16 = local
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("unexpected tunnel address {local:?}"));
    let tunnel_pid = tunnel.id();
    let _tunnel = Killed(tunnel);

    // ssh -L to the same service through the same sshd.
    let forward_port = sekisho_testkit::free_port();
    let forward = Command::new("ssh")
        .args(support::gateway::ssh_options(&key))
        .args(["-N", "-o", "ExitOnForwardFailure=yes", "-L"])
        .arg(format!("127.0.0.1:{forward_port}:127.0.0.1:{port}"))
        .arg("-p")
        .arg(w.sshd.port.to_string())
        .arg("sekisho-rw@127.0.0.1")
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let _forward = Killed(forward);
    wait_listening(forward_port);

    let paths = [
        ("direct TCP", port),
        ("`ssh -L` (OpenSSH forwarding)", forward_port),
        ("`sekisho-client tunnel` (recorded)", tunnel_port),
    ];
    let gateway_pid = w.server.as_ref().unwrap().child.id();
    let mut rates = vec![vec![]; paths.len()];
    let (mut gateway_cpu, mut client_cpu) = (vec![], vec![]);
    for run in 0..runs {
        for (i, (name, p)) in paths.iter().enumerate() {
            let before = (
                support::cpu_seconds(gateway_pid),
                support::cpu_seconds(tunnel_pid),
            );
            let r = push(*p, total);
            if *p == tunnel_port {
                let gb = total as f64 / 1e9;
                gateway_cpu.push((support::cpu_seconds(gateway_pid) - before.0) / gb);
                client_cpu.push((support::cpu_seconds(tunnel_pid) - before.1) / gb);
            }
            eprintln!("run {}/{runs}: {name}: {r:.0} MB/s", run + 1);
            rates[i].push(r);
        }
    }
    let rates: Vec<f64> = rates.into_iter().map(median).collect();
    let latencies: Vec<Vec<f64>> = paths.iter().map(|(_, p)| first_byte(*p, 200)).collect();

    // 200 concurrent tunnelled connections.
    let (gw_before, cl_before) = (support::rss_mib(gateway_pid), support::rss_mib(tunnel_pid));
    let mut open = vec![];
    for _ in 0..200 {
        let mut s = TcpStream::connect(("127.0.0.1", tunnel_port)).unwrap();
        let mut b = [0u8; 1];
        s.read_exact(&mut b).unwrap();
        open.push(s);
    }
    std::thread::sleep(Duration::from_millis(500));
    let (gw_after, cl_after) = (support::rss_mib(gateway_pid), support::rss_mib(tunnel_pid));
    drop(open);

    let mib = total / (1024 * 1024);
    println!(
        "\n| path ({mib} MiB, median of {runs}) | MB/s | vs direct | vs `ssh -L` | first byte p50 | p99 |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for (i, (name, _)) in paths.iter().enumerate() {
        println!(
            "| {name} | {:.0} | {:.2}× | {:.2}× | {:.2} ms | {:.2} ms |",
            rates[i],
            rates[i] / rates[0],
            rates[i] / rates[1],
            percentile(&latencies[i], 0.5),
            percentile(&latencies[i], 0.99)
        );
    }
    println!(
        "\n200 concurrent tunnelled connections: gateway RSS {gw_before:.1} → {gw_after:.1} MiB \
         ({:.0} KiB per connection), client RSS {cl_before:.1} → {cl_after:.1} MiB",
        (gw_after - gw_before) * 1024.0 / 200.0
    );
    println!(
        "CPU per GB tunnelled: gateway {:.2} s (relay and recording), client {:.2} s",
        median(gateway_cpu),
        median(client_cpu)
    );
}
