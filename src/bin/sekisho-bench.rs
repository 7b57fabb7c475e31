//! `sekisho-bench`: performance measurements, reported as ratios against a baseline measured
//! in the same run. Build with `--release`; results go to `BENCHMARKS.md`.
//!
//! `sekisho-bench recorder [--mib N]`:
//! - disk: N MiB written to a file with a plain buffered writer (baseline) vs through the
//!   recorder as stream frames (framing, CRC, queue, writer task, then close: hashing,
//!   index, signature);
//! - relay: N MiB through a minimal loopback TCP relay (tokio, 32 KiB reads) without and with
//!   every chunk recorded, the relay's cost of recording. (The SSH gateway's relay, issue #5,
//!   will be measured the same way once it exists.)

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use sekisho_recorder::manifest::RecordingKey;
use sekisho_recorder::stream::{Direction, StreamKind};
use sekisho_recorder::{Recorder, SessionMeta};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};

const CHUNK: usize = 32 * 1024;

/// CPU seconds (user + system) of this process so far, from /proc (USER_HZ = 100).
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which is in parentheses and may contain spaces).
    let Some(rest) = stat.rsplit(')').next() else {
        return f64::NAN;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        f.get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    (ticks(11) + ticks(12)) / 100.0
}

#[derive(Debug, Clone, Copy)]
struct Run {
    secs: f64,
    cpu: f64,
    bytes: u64,
}

impl Run {
    fn mb_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.secs
    }
    fn cpu_per_gb(&self) -> f64 {
        self.cpu / (self.bytes as f64 / 1e9)
    }
}

async fn timed<F: std::future::Future<Output = anyhow::Result<u64>>>(f: F) -> anyhow::Result<Run> {
    let (c0, t0) = (cpu_seconds(), Instant::now());
    let bytes = f.await?;
    Ok(Run {
        secs: t0.elapsed().as_secs_f64(),
        cpu: cpu_seconds() - c0,
        bytes,
    })
}

fn meta(id: &str) -> SessionMeta {
    SessionMeta {
        session: id.into(),
        request: "bench".into(),
        request_number: 0,
        vendor: "bench".into(),
        vendor_user: "bench".into(),
        target: "bench".into(),
        level: "change".into(),
        source_addr: "127.0.0.1".into(),
    }
}

async fn plain_write(path: &Path, total: u64) -> anyhow::Result<u64> {
    let file = tokio::fs::File::create(path).await?;
    let mut w = BufWriter::with_capacity(64 * 1024, file);
    let chunk = vec![0x5au8; CHUNK];
    let mut sent = 0;
    while sent < total {
        w.write_all(&chunk).await?;
        sent += CHUNK as u64;
    }
    w.flush().await?;
    w.get_ref().sync_all().await?;
    Ok(sent)
}

async fn recorder_write(rec: &Recorder, id: &str, total: u64) -> anyhow::Result<u64> {
    let s = rec.open(meta(id)).await?;
    s.stream(0, StreamKind::Tcp, "127.0.0.1:0".into()).await?;
    let chunk = vec![0x5au8; CHUNK];
    let mut sent = 0;
    while sent < total {
        s.frame(0, Direction::ToTarget, &chunk).await?;
        sent += CHUNK as u64;
    }
    s.close("bench").await?;
    Ok(sent)
}

/// Sender → relay → sink on loopback; the relay records each chunk when `rec` is given.
async fn relay(total: u64, rec: Option<(&Recorder, &str)>) -> anyhow::Result<u64> {
    let sink = TcpListener::bind("127.0.0.1:0").await?;
    let sink_addr = sink.local_addr()?;
    let front = TcpListener::bind("127.0.0.1:0").await?;
    let front_addr = front.local_addr()?;
    let recording = match rec {
        Some((r, id)) => {
            let s = r.open(meta(id)).await?;
            s.stream(0, StreamKind::Tcp, sink_addr.to_string()).await?;
            Some(s)
        }
        None => None,
    };
    let sink_task = tokio::spawn(async move {
        let (mut c, _) = sink.accept().await?;
        let mut buf = vec![0u8; CHUNK];
        let mut got = 0u64;
        loop {
            let n = c.read(&mut buf).await?;
            if n == 0 {
                return anyhow::Ok(got);
            }
            got += n as u64;
        }
    });
    let relay_task = tokio::spawn(async move {
        let (mut inbound, _) = front.accept().await?;
        let mut outbound = TcpStream::connect(sink_addr).await?;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let n = inbound.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            if let Some(s) = &recording {
                s.frame(0, Direction::ToTarget, &buf[..n]).await?;
            }
            outbound.write_all(&buf[..n]).await?;
        }
        outbound.shutdown().await?;
        if let Some(s) = recording {
            s.close("bench").await?;
        }
        anyhow::Ok(())
    });
    let mut client = TcpStream::connect(front_addr).await?;
    let chunk = vec![0x5au8; CHUNK];
    let mut sent = 0u64;
    while sent < total {
        client.write_all(&chunk).await?;
        sent += CHUNK as u64;
    }
    client.shutdown().await?;
    relay_task.await??;
    let got = sink_task.await??;
    if got != sent {
        bail!("relay lost data: sent {sent}, sink got {got}");
    }
    Ok(got)
}

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    format!("{cpu}, {cores} cores")
}

async fn recorder_bench(mib: u64) -> anyhow::Result<()> {
    let total = mib * 1024 * 1024;
    let dir = tempfile::tempdir().context("temp dir")?;
    let key = Arc::new(RecordingKey::from_pkcs8(&RecordingKey::generate_pkcs8()?)?);
    let rec = Recorder::new(&dir.path().join("recs"), key)?;
    eprintln!("recorder benchmark: {mib} MiB per run on {}", machine());
    let mut rows = vec![];
    for round in 0..3 {
        eprintln!("round {} of 3 …", round + 1);
        let plain = timed(plain_write(
            &dir.path().join(format!("plain-{round}")),
            total,
        ))
        .await?;
        let recorded = timed(recorder_write(&rec, &format!("disk-{round}"), total)).await?;
        let relay_plain = timed(relay(total, None)).await?;
        let relay_rec = timed(relay(total, Some((&rec, &format!("relay-{round}"))))).await?;
        rows.push((plain, recorded, relay_plain, relay_rec));
        let _ = std::fs::remove_dir_all(dir.path().join("recs"));
        std::fs::create_dir_all(dir.path().join("recs"))?;
        let _ = std::fs::remove_file(dir.path().join(format!("plain-{round}")));
    }
    // The median round by relay ratio.
    rows.sort_by(|a, b| (a.3.mb_s() / a.2.mb_s()).total_cmp(&(b.3.mb_s() / b.2.mb_s())));
    let (plain, recorded, relay_plain, relay_rec) = rows[1];
    println!("| measurement | MB/s | CPU s per GB | ratio to baseline |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| plain buffered file write (baseline) | {:.0} | {:.2} | 1.00 |",
        plain.mb_s(),
        plain.cpu_per_gb()
    );
    println!(
        "| recorder, stream frames, incl. close (hash, index, sign) | {:.0} | {:.2} | {:.2} |",
        recorded.mb_s(),
        recorded.cpu_per_gb(),
        recorded.mb_s() / plain.mb_s()
    );
    println!(
        "| loopback TCP relay, not recorded (baseline) | {:.0} | {:.2} | 1.00 |",
        relay_plain.mb_s(),
        relay_plain.cpu_per_gb()
    );
    println!(
        "| loopback TCP relay, every chunk recorded | {:.0} | {:.2} | {:.2} |",
        relay_rec.mb_s(),
        relay_rec.cpu_per_gb(),
        relay_rec.mb_s() / relay_plain.mb_s()
    );
    println!();
    println!("median of 3 rounds, {mib} MiB each, {}", machine());
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mib = args
        .iter()
        .position(|a| a == "--mib")
        .and_then(|i| args.get(i + 1))
        .map(|v| v.parse::<u64>().context("--mib takes a whole number"))
        .transpose()?
        .unwrap_or(1024);
    match args.first().map(String::as_str) {
        Some("recorder") => recorder_bench(mib).await,
        _ => bail!("usage: sekisho-bench recorder [--mib N]"),
    }
}
