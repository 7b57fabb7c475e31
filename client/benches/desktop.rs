//! Issue #14's benchmark: a remote desktop reached directly (`xfreerdp` to the RDP server)
//! and through `sekisho-client rdp` and a `sekisho serve` process (recording included), in
//! one run on one machine.
//!
//! The target is FreeRDP's shadow server on Xvfb, showing a Tk window that changes colour on
//! each key press and, between presses, moves a square so that the screen keeps changing.
//! Measured:
//! - input → screen: from `xdotool key` on the vendor's display to the changed pixel seen on
//!   it (read with ImageMagick every few tens of ms, so the resolution is about that), median
//!   and p90 over `--presses` presses, directly and through the gateway;
//! - gateway CPU per desktop-hour and recording bytes per desktop-hour: the `sekisho serve`
//!   process's CPU time (/proc) and the recording's size over `--seconds` of a moving desktop;
//! - drawing a late moment: the API's `screen` at the end of that recording (from its last
//!   snapshot) against the same moment drawn from the start (snapshots set aside).
//!
//! Needs the test rig (Xvfb, freerdp2-x11, freerdp2-shadow-x11, xdotool, imagemagick,
//! winpr-utils) and a Python with Tk. Run: `cargo build --release --bin sekisho --bin
//! sekisho-client && cargo bench -p sekisho-client --bench desktop` (add `-- --seconds 300
//! --presses 30`). Prints a Markdown table.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tests/support/mod.rs"]
mod support;

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use sekisho_testkit::desktop::{Display, ShadowServer};
use support::gateway::{Pin, World, client_command};

const CLIENT: &str = env!("CARGO_BIN_EXE_sekisho-client");
const ACCOUNT: &str = "maint";
const PASSWORD: &str = "Target-Pass-123";

/// The target's application: full screen, black or white by key presses, a moving square.
const APP: &str = r#"
import tkinter as tk
root = tk.Tk()
root.geometry("1024x768+0+0")
root.overrideredirect(True)
c = tk.Canvas(root, width=1024, height=768, bg="black", highlightthickness=0)
c.pack()
state = {"white": False, "x": 0}
sq = c.create_rectangle(0, 600, 80, 680, fill="red", outline="")
def key(e):
    state["white"] = not state["white"]
    c.configure(bg="white" if state["white"] else "black")
def move():
    state["x"] = (state["x"] + 16) % 944
    c.coords(sq, state["x"], 600, state["x"] + 80, 680)
    root.after(50, move)
root.bind_all("<Key>", key)
root.after(50, move)
root.focus_force()
root.mainloop()
"#;

fn white(p: (u8, u8, u8)) -> bool {
    p.0 > 200 && p.1 > 200 && p.2 > 200
}

fn focus(vendor: &Display) {
    let windows = vendor.run("xdotool", &["search", "--class", "xfreerdp"]);
    let window = windows.lines().last().unwrap().trim().to_owned();
    vendor.run("xdotool", &["windowfocus", "--sync", &window]);
}

/// Presses a key on the vendor's display `n` times; each time, how long until the pixel at
/// (400, 300) flipped.
fn presses(vendor: &Display, n: u64) -> Vec<f64> {
    focus(vendor);
    let mut out = vec![];
    for _ in 0..n {
        let before = white(vendor.pixel(400, 300));
        let started = Instant::now();
        vendor.run("xdotool", &["key", "space"]);
        let flipped = vendor.wait_pixel(400, 300, Duration::from_secs(5), |p| white(p) != before);
        if flipped.is_ok() {
            out.push(started.elapsed().as_secs_f64() * 1000.0);
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    out.sort_by(f64::total_cmp);
    out
}

fn quantile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() - 1) as f64 * q).round() as usize]
}

fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    ticks / 100.0
}

fn dir_size(path: &std::path::Path) -> u64 {
    std::fs::read_dir(path)
        .map(|d| {
            d.filter_map(|e| e.ok()?.metadata().ok())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

fn xfreerdp(vendor: &Display, port: u16) -> Child {
    vendor
        .command("xfreerdp")
        .arg(format!("/v:127.0.0.1:{port}"))
        .args([
            &format!("/u:{ACCOUNT}"),
            &format!("/p:{PASSWORD}"),
            "/cert:ignore",
            "/sec:nla",
            "/size:1024x768",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[tokio::main]
async fn main() {
    let seconds = support::bench_arg("--seconds", 120);
    let n = support::bench_arg("--presses", 20);
    let target = ShadowServer::start(ACCOUNT, PASSWORD);
    let mut app = target
        .display
        .command("python3")
        .args(["-c", APP])
        .spawn()
        .expect("python3 with Tk");
    std::thread::sleep(Duration::from_secs(2));

    // Directly.
    let vendor = Display::start(1024, 768);
    let mut direct = xfreerdp(&vendor, target.port);
    // The desktop shows the moving square (red) somewhere on its row.
    std::thread::sleep(Duration::from_secs(5));
    let direct_ms = presses(&vendor, n);
    let _ = direct.kill();
    let _ = direct.wait();

    // Through the gateway.
    let w = World::new(Pin::Real).await.expect("the test rig");
    w.remote_desktop(target.port, ACCOUNT, PASSWORD).await;
    let dir = w.keys.path().join("client");
    w.enroll_client(CLIENT, &dir).await;
    w.approved("reference").await;
    let mut gateway = client_command(
        CLIENT,
        &dir,
        &["rdp", "pacs", "--launch", "--", "/size:1024x768"],
    )
    .env("DISPLAY", vendor.name())
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let session = w.wait_live().await;
    let id = session["id"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_secs(3));
    let gateway_ms = presses(&vendor, n);
    let pid = w.server.as_ref().unwrap().child.id();
    let cpu_start = cpu_seconds(pid);
    let started = Instant::now();
    tokio::time::sleep(Duration::from_secs(seconds)).await;
    let cpu = cpu_seconds(pid) - cpu_start;
    let elapsed = started.elapsed().as_secs_f64();
    w.terminate(&id).await;
    let _ = gateway.wait();
    w.wait_ended(&id).await;
    let recording = w.env.data_dir().join("recordings").join(&id);
    // Sealed: the screens file is there.
    let deadline = Instant::now() + Duration::from_secs(120);
    while !recording.join("stream-0.screens").exists() {
        assert!(Instant::now() < deadline, "not sealed");
        std::thread::sleep(Duration::from_millis(200));
    }
    std::thread::sleep(Duration::from_secs(2));
    let bytes = dir_size(&recording);
    let late = |label: &'static str| {
        let base = w.http.base.clone();
        let token = w.approver.clone();
        let client = w.http.client.clone();
        let id = id.clone();
        async move {
            let started = Instant::now();
            let r = client
                .get(format!("{base}/api/v1/recordings/{id}/screen?t=100000"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(r.status(), 200, "{label}");
            let from = r.headers()["x-sekisho-from-snapshot"]
                .to_str()
                .unwrap()
                .to_owned();
            let _ = r.bytes().await.unwrap();
            (started.elapsed().as_secs_f64() * 1000.0, from)
        }
    };
    let (with_snapshot, from) = late("snapshot").await;
    let screens = recording.join("stream-0.screens");
    let aside = recording.join("screens.aside");
    std::fs::rename(&screens, &aside).unwrap();
    let (from_start, _) = late("start").await;
    std::fs::rename(&aside, &screens).unwrap();
    let _ = app.kill();
    let _ = app.wait();

    let hour = 3600.0 / elapsed;
    println!("| measure | direct | through Sekisho |");
    println!("| --- | --- | --- |");
    println!(
        "| key press → screen, median (ms) | {:.0} | {:.0} |",
        quantile(&direct_ms, 0.5),
        quantile(&gateway_ms, 0.5)
    );
    println!(
        "| key press → screen, p90 (ms) | {:.0} | {:.0} |",
        quantile(&direct_ms, 0.9),
        quantile(&gateway_ms, 0.9)
    );
    println!(
        "| presses seen | {} of {n} | {} of {n} |",
        direct_ms.len(),
        gateway_ms.len()
    );
    println!(
        "| gateway CPU per desktop-hour (s) | – | {:.0} ({cpu:.1} s in {elapsed:.0} s) |",
        cpu * hour
    );
    println!(
        "| recording per desktop-hour (MB) | – | {:.0} ({:.1} MB in {elapsed:.0} s) |",
        bytes as f64 * hour / 1e6,
        bytes as f64 / 1e6
    );
    println!(
        "| drawing the last moment (ms) | from the start: {from_start:.0} | from the snapshot at {from} s: {with_snapshot:.0} |"
    );
}
