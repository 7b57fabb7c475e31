//! Issue #20, latency and scale: what a vendor feels typing through the gateway, and what a
//! hospital group's node holds. A real `sekisho serve` (release build) relays to a real
//! `sshd`; the clients are SSH client library (russh) sessions in this process, each with a
//! pseudo-terminal running `cat`, so every keystroke comes back as the terminal's echo.
//!
//! 1. Keystroke echo: one session through the gateway and one straight to the same sshd,
//!    `--keys` keystrokes each (alternating, 20 ms apart): p50 and p99 of the echo time and
//!    the difference, recording on (as always).
//! 2. Scale: `--sessions` recorded interactive sessions opened through the gateway (a few at
//!    a time, as the pre-authentication limit per source allows), each typing one key a second
//!    for `--seconds`: the gateway's resident memory per session, the echo p50/p99 under that
//!    load, sessions lost, the gateway's CPU, and `sekisho recording verify --all` afterwards.
//!
//! `--direct 1` opens the many sessions of 2. straight to sshd instead, the baseline for the
//! echo under load: the same clients, sshd processes and `cat`s, without the gateway.
//!
//! Run: `cargo bench --bench sessions` (`-- --sessions 1000 --seconds 30 --keys 500`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use russh::ChannelMsg;
use russh::client::{self, Handle};
use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate};
use sekisho_testkit::sshd::REFERENCE_ACCOUNT;
use support::gateway::{Pin, World};
use support::{Env, cpu_seconds, percentile, rss_mib, stdout};

struct Trusting;

impl client::Handler for Trusting {
    type Error = russh::Error;

    async fn check_server_key(&mut self, _: &PublicKeyOrCertificate) -> Result<bool, Self::Error> {
        Ok(true)
    }
}

/// One interactive session: a pseudo-terminal running `cat`, which echoes what is typed.
struct Typist {
    handle: Handle<Trusting>,
    channel: russh::Channel<client::Msg>,
    typed: usize,
}

impl Typist {
    async fn open(port: u16, user: &str, key: &std::path::Path) -> Result<Typist, String> {
        let config = Arc::new(client::Config {
            nodelay: true,
            inactivity_timeout: None,
            ..client::Config::default()
        });
        let mut handle = client::connect(config, ("127.0.0.1", port), Trusting)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        let key = russh::keys::load_secret_key(key, None).map_err(|e| e.to_string())?;
        let auth = handle
            .authenticate_publickey(user, PrivateKeyWithHashAlg::new(Arc::new(key), None))
            .await
            .map_err(|e| format!("authenticate: {e}"))?;
        if !auth.success() {
            return Err(format!("{user} was refused"));
        }
        let channel = handle
            .channel_open_session()
            .await
            .map_err(|e| format!("channel: {e}"))?;
        channel
            .request_pty(true, "xterm", 80, 24, 0, 0, &[])
            .await
            .map_err(|e| format!("pty: {e}"))?;
        channel
            .exec(true, "exec cat >/dev/null")
            .await
            .map_err(|e| format!("exec: {e}"))?;
        let mut t = Typist {
            handle,
            channel,
            typed: 0,
        };
        // The first echo also waits for `cat` to run.
        t.key().await?;
        Ok(t)
    }

    /// Reads until `want` has come back.
    async fn until(&mut self, want: u8) -> Result<(), String> {
        loop {
            match tokio::time::timeout(Duration::from_secs(30), self.channel.wait()).await {
                Err(_) => return Err("no echo within 30 s".into()),
                Ok(None) => return Err("the session closed".into()),
                Ok(Some(ChannelMsg::Data { data })) if data.contains(&want) => return Ok(()),
                Ok(Some(ChannelMsg::Eof | ChannelMsg::Close)) => {
                    return Err("the session ended".into());
                }
                Ok(Some(_)) => {}
            }
        }
    }

    /// Types one key and waits for its echo; returns the echo time. A line is ended every
    /// 40 keys (its echo read too), so the terminal's line never fills.
    async fn key(&mut self) -> Result<Duration, String> {
        let t = Instant::now();
        self.channel
            .data(&b"a"[..])
            .await
            .map_err(|e| format!("send: {e}"))?;
        self.until(b'a').await?;
        let took = t.elapsed();
        self.typed += 1;
        if self.typed.is_multiple_of(40) {
            self.channel
                .data(&b"\r"[..])
                .await
                .map_err(|e| format!("send: {e}"))?;
            self.until(b'\n').await?;
        }
        Ok(took)
    }

    async fn close(self) {
        let _ = self.channel.eof().await;
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn summary(mut v: Vec<Duration>) -> (f64, f64) {
    v.sort();
    (ms(percentile(&v, 0.5)), ms(percentile(&v, 0.99)))
}

#[tokio::main]
async fn main() {
    let sessions = support::bench_arg("--sessions", 1000);
    let seconds = support::bench_arg("--seconds", 30);
    let keys = support::bench_arg("--keys", 500);
    let straight = support::bench_arg("--direct", 0) == 1;
    let w = World::with_env(Env::new(None), Pin::Real)
        .await
        .expect("sshd and test accounts are needed (run as root)");
    w.approved("reference").await;
    let pid = w.server.as_ref().unwrap().child.id();
    let alice_key = w.alice_key.clone();
    let direct_key = w.keys.path().join("gateway-to-pacs");
    let (gateway, sshd) = (w.ssh_port, w.sshd.port);

    // 1. Keystroke echo, one session each way, alternating.
    let mut through = Typist::open(gateway, "alice+pacs", &alice_key)
        .await
        .unwrap();
    let mut direct = Typist::open(sshd, REFERENCE_ACCOUNT, &direct_key)
        .await
        .unwrap();
    let (mut via, mut plain) = (vec![], vec![]);
    for _ in 0..keys {
        via.push(through.key().await.unwrap());
        plain.push(direct.key().await.unwrap());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    through.close().await;
    direct.close().await;
    let (via50, via99) = summary(via);
    let (plain50, plain99) = summary(plain);
    w.wait_all_ended().await;

    // 2. Many sessions at once.
    let rss0 = rss_mib(pid);
    let opening = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(5));
    let mut opened = tokio::task::JoinSet::new();
    for i in 0..sessions {
        let gate = gate.clone();
        let (port, user, key) = if straight {
            (sshd, REFERENCE_ACCOUNT, direct_key.clone())
        } else {
            (gateway, "alice+pacs", alice_key.clone())
        };
        opened.spawn(async move {
            let _permit = gate.acquire_owned().await.unwrap();
            let r = Typist::open(port, user, &key).await;
            if i > 0 && i % 100 == 0 {
                eprintln!("  {i} of {sessions} opened");
            }
            r
        });
    }
    let mut typists = vec![];
    let mut failed = vec![];
    while let Some(r) = opened.join_next().await {
        match r.unwrap() {
            Ok(t) => typists.push(t),
            Err(e) => failed.push(e),
        }
    }
    let open_secs = opening.elapsed().as_secs_f64();
    // Let the allocator and the recordings settle before reading memory.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_open = rss_mib(pid);
    eprintln!(
        "{} sessions open in {open_secs:.1} s ({} failed); typing for {seconds} s",
        typists.len(),
        failed.len()
    );
    let latencies = Arc::new(Mutex::new(vec![]));
    let lost = Arc::new(Mutex::new(vec![]));
    let cpu0 = cpu_seconds(pid);
    let typing = Instant::now();
    let mut typing_tasks = tokio::task::JoinSet::new();
    let n = typists.len().max(1);
    for (i, mut t) in typists.into_iter().enumerate() {
        let (latencies, lost) = (latencies.clone(), lost.clone());
        typing_tasks.spawn(async move {
            // Spread over the second, so that keys do not all arrive at once.
            let offset = Duration::from_millis(1000 * i as u64 / n as u64);
            tokio::time::sleep(offset).await;
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            for _ in 0..seconds {
                tick.tick().await;
                match t.key().await {
                    Ok(d) => latencies.lock().unwrap().push((typing.elapsed(), d)),
                    Err(e) => {
                        lost.lock().unwrap().push(e);
                        return;
                    }
                }
            }
            t.close().await;
        });
    }
    while let Some(r) = typing_tasks.join_next().await {
        r.unwrap();
    }
    let typing_secs = typing.elapsed().as_secs_f64();
    let cpu = cpu_seconds(pid) - cpu0;
    w.wait_all_ended().await;
    let verified = w.env.cli(&["recording", "verify", "--all"], "");
    let verify_line = stdout(&verified)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned();
    let timed = std::mem::take(&mut *latencies.lock().unwrap());
    let keystrokes = timed.len();
    // Slow echoes: how many, and in how many distinct seconds (a few seconds holding them all
    // is a stall; spread over every second is a machine that cannot keep up).
    let slow: Vec<_> = timed
        .iter()
        .filter(|(_, d)| *d > Duration::from_millis(10))
        .collect();
    let mut slow_seconds: Vec<u64> = slow.iter().map(|(at, _)| at.as_secs()).collect();
    slow_seconds.sort_unstable();
    slow_seconds.dedup();
    let worst = timed.iter().map(|(_, d)| *d).max().unwrap_or_default();
    let slow = slow.len();
    let (load50, load99) = summary(timed.into_iter().map(|(_, d)| d).collect());
    let lost = lost.lock().unwrap().clone();

    let machine = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    println!("| measurement | figure |");
    println!("| --- | ---: |");
    println!("| echo, direct OpenSSH, p50 / p99 | {plain50:.2} / {plain99:.2} ms |");
    println!("| echo through the gateway (recorded), p50 / p99 | {via50:.2} / {via99:.2} ms |");
    println!(
        "| added by the gateway, p50 / p99 | {:.2} / {:.2} ms |",
        via50 - plain50,
        via99 - plain99
    );
    println!(
        "| sessions opened / asked | {} / {sessions} (in {open_secs:.0} s) |",
        sessions as usize - failed.len()
    );
    println!("| gateway RSS idle → with all open | {rss0:.0} → {rss_open:.0} MiB |");
    println!(
        "| gateway RSS per session | {:.0} KiB |",
        (rss_open - rss0) * 1024.0 / (sessions as f64 - failed.len() as f64).max(1.0)
    );
    println!(
        "| echo under load{}, p50 / p99 / max | {load50:.2} / {load99:.2} / {:.0} ms ({keystrokes} keys) |",
        if straight {
            " (sessions straight to sshd)"
        } else {
            ""
        },
        worst.as_secs_f64() * 1000.0
    );
    println!(
        "| echoes slower than 10 ms | {} of {keystrokes}, in {} of {seconds} seconds |",
        slow,
        slow_seconds.len()
    );
    println!("| sessions lost while typing | {} |", lost.len());
    println!(
        "| gateway CPU while typing | {cpu:.1} s in {typing_secs:.0} s ({:.0} % of a core) |",
        100.0 * cpu / typing_secs
    );
    println!("| recordings afterwards | {verify_line} |");
    println!();
    println!(
        "{sessions} sessions, {seconds} s of typing, {keys} echo samples each way; {machine}, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for e in failed.iter().chain(lost.iter()).take(5) {
        eprintln!("  failure: {e}");
    }
    assert!(verified.status.success(), "{}", stdout(&verified));
}
