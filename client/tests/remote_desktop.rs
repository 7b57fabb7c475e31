//! Issue #14 end to end: a vendor's stock RDP client (`xfreerdp` on its own X server) reaches
//! a real RDP server (FreeRDP's shadow server sharing another X server, NLA against a SAM
//! file) through `sekisho-client rdp` and the gateway, which logs in with the level's
//! password; the vendor never types it. The desktop is recorded and drawn again for review.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../tests/support/mod.rs"]
mod support;

use std::process::{Child, Output, Stdio};
use std::time::{Duration, Instant};

use sekisho_testkit::desktop::{self, Display, ShadowServer};
use serde_json::{Value, json};
use support::gateway::{Pin, World, client_command, exited};
use support::{stderr, stdout};

const CLIENT: &str = env!("CARGO_BIN_EXE_sekisho-client");
/// The Windows account of the reference level, known to the target's SAM file only.
const ACCOUNT: &str = "maint";
const PASSWORD: &str = "Target-Pass-123";

fn client(dir: &std::path::Path, args: &[&str]) -> Output {
    client_command(CLIENT, dir, args).output().unwrap()
}

async fn enrolled(w: &World, dir: &std::path::Path) {
    w.enroll_client(CLIENT, dir).await;
}

/// A site whose pacs has a red desktop (`start`) that its reference level logs in to as
/// `account`/`password`, and alice's enrolled client in the returned folder. `None` where the
/// rig cannot run (outside CI).
async fn site(
    start: impl FnOnce() -> Option<ShadowServer>,
    account: &str,
    password: &str,
) -> Option<(World, ShadowServer, std::path::PathBuf)> {
    if !desktop::available() {
        return None;
    }
    let target = start()?;
    let w = World::new(Pin::Real).await?;
    target.display.paint("#ff0000");
    w.remote_desktop(target.port, account, password).await;
    let dir = w.keys.path().join("client");
    enrolled(&w, &dir).await;
    Some((w, target, dir))
}

/// pacs gets a Remote Desktop port; its reference level logs in to Windows as `maint`.
async fn desktop_target(w: &World, port: u16) {
    w.remote_desktop(port, ACCOUNT, PASSWORD).await;
}

/// No file of the recording holds `password`, in UTF-8 or in the UTF-16 of a Client Info.
fn assert_no_password(w: &World, id: &str, password: &str) {
    let dir = w.env.data_dir().join("recordings").join(id);
    let utf16: Vec<u8> = password.encode_utf16().flat_map(u16::to_le_bytes).collect();
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        files += 1;
        for needle in [password.as_bytes(), &utf16[..]] {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle),
                "the password is in the recording"
            );
        }
    }
    assert!(files >= 3, "{}", dir.display());
}

/// A running `sekisho-client rdp --launch`; its stderr (and xfreerdp's, which inherits it)
/// goes to a file, so that a talkative client never blocks on a full pipe.
struct Launched {
    child: Child,
    log: std::path::PathBuf,
}

impl Launched {
    /// What the client (and xfreerdp) printed so far, for failure messages.
    fn printed(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// `sekisho-client rdp pacs --launch` on `vendor`'s display with `extra` xfreerdp arguments.
fn launch(dir: &std::path::Path, vendor: &Display, extra: &[&str]) -> Launched {
    let mut args = vec!["rdp", "pacs", "--launch", "--"];
    args.extend_from_slice(extra);
    let log = dir.with_file_name(format!("client-{}.log", vendor.number));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let child = client_command(CLIENT, dir, &args)
        .env("DISPLAY", vendor.name())
        .stdout(Stdio::null())
        .stderr(file)
        .spawn()
        .unwrap();
    Launched { child, log }
}

/// Waits for the client to exit (at most `limit`): what it printed, and how long it took.
fn finished(l: Launched, limit: Duration) -> (String, Duration) {
    let (_, took) = exited(l.child, limit);
    let err = std::fs::read_to_string(&l.log).unwrap_or_default();
    let _ = std::fs::remove_file(&l.log);
    (err, took)
}

fn red(p: (u8, u8, u8)) -> bool {
    p.0 > 200 && p.1 < 40 && p.2 < 40
}

fn blue(p: (u8, u8, u8)) -> bool {
    p.0 < 40 && p.1 < 40 && p.2 > 200
}

#[tokio::test]
async fn a_desktop_through_the_gateway_with_the_injected_password_recorded_and_drawn_again() {
    let start = || Some(ShadowServer::start(ACCOUNT, PASSWORD));
    let Some((w, target, dir)) = site(start, ACCOUNT, PASSWORD).await else {
        return;
    };

    // Before approval: refused with the reason, before any RDP client starts.
    let out = client(&dir, &["rdp", "pacs"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("no approved request for pacs"),
        "{}\n{}",
        stderr(&out),
        w.log()
    );

    let _request = w.approved("reference").await;
    let vendor = Display::start(1024, 768);
    // The vendor asks to bring its drive; the reference level refuses it (and the clipboard).
    let child = launch(&dir, &vendor, &["/size:800x600", "/drive:vendor,/tmp"]);
    let session = w.wait_live().await;
    assert_eq!(session["transport"], "quic", "{session}");
    let started: jiff::Timestamp = session["started_at"].as_str().unwrap().parse().unwrap();
    // The vendor sees the target's desktop (red), then what the target paints next (blue).
    let seen = vendor.wait_pixel(400, 300, Duration::from_secs(30), red);
    eprintln!("desktop seen after {seen:?}");
    assert!(
        seen.is_ok(),
        "vendor screen: {seen:?}\nlog: {}\nshadow: {}\nclient: {}",
        w.log(),
        target.log(),
        child.printed()
    );
    // Watching it live: red now (the first look draws the recording so far) ...
    let id = session["id"].as_str().unwrap().to_owned();
    wait_live_screen(&w, &id, red).await;
    // Red stays for a while, so that a moment before the blue is plainly red.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let blue_at = (jiff::Timestamp::now() - started).as_secs_f64();
    target.display.paint("#0000ff");
    let seen = vendor.wait_pixel(400, 300, Duration::from_secs(15), blue);
    assert!(seen.is_ok(), "vendor screen: {seen:?}");
    // ... and blue later: each look goes on from where the previous one stopped.
    wait_live_screen(&w, &id, blue).await;

    // What the vendor types on its own keyboard goes to the target and into the index.
    let window = vendor.run("xdotool", &["search", "--class", "xfreerdp"]);
    let window = window.lines().last().unwrap().trim().to_owned();
    vendor.run("xdotool", &["windowfocus", "--sync", &window]);
    vendor.run("xdotool", &["type", "--delay", "40", "Get-Service sekisho"]);
    vendor.run("xdotool", &["key", "Return"]);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The channels: asked for, and which the level let through.
    let channels = w.audit("kind=rdp_channels").await;
    let refused = &channels.first().expect("rdp_channels audited")["details"]["refused"];
    assert!(
        refused.as_array().unwrap().iter().any(|c| c == "rdpdr"),
        "{channels:?}"
    );
    let denials = w.audit("kind=access_denied").await;
    assert!(
        denials
            .iter()
            .any(|d| d["details"]["channel"] == "rdp_channel"
                && d["details"]["code"] == "rdp_channel_refused"
                && d["reason"].as_str().unwrap_or("").contains("rdpdr")),
        "{denials:?}"
    );

    // Terminate ends the desktop within a second.
    w.terminate(&id).await;
    let (err, took) = finished(child, Duration::from_secs(5));
    assert!(
        took < Duration::from_secs(1),
        "terminate took {took:?}: {err}"
    );
    let ended: Value = w.wait_ended(&id).await;
    assert_eq!(ended["end"], "terminated", "{ended}");

    // The recording verifies, and draws the desktop again at those moments.
    let verified = wait_sealed(&w, &id).await;
    assert_eq!(verified["problems"], json!([]), "{verified}");
    assert_no_password(&w, &id, PASSWORD);
    let (late, length) = screen(&w, &id, None).await;
    assert!(blue(pixel(&late, 400, 300)), "{:?}", pixel(&late, 400, 300));
    let (early, _) = screen(&w, &id, Some(blue_at - 0.7)).await;
    assert!(
        red(pixel(&early, 400, 300)),
        "at {blue_at}: {:?}",
        pixel(&early, 400, 300)
    );
    assert!(length >= blue_at, "{length} < {blue_at}");

    // The console's player shows the drawn desktop at the moment asked for.
    // A moment known to be drawn (red), however long the desktop took to come up.
    let red_at = blue_at - 0.7;
    let page = console_get(&w, &format!("/console/recordings/{id}?t={red_at}")).await;
    let page = String::from_utf8(page).unwrap();
    let img = format!("src=\"/console/recordings/{id}/screen.png?t=");
    assert!(
        page.contains("class=\"desktop\"") && page.contains(&img),
        "{page}"
    );
    let at_red = console_get(
        &w,
        &format!("/console/recordings/{id}/screen.png?t={red_at}"),
    )
    .await;
    assert!(red(pixel(&at_red, 400, 300)));
    let at_end = console_get(
        &w,
        &format!("/console/recordings/{id}/screen.png?t={length}"),
    )
    .await;
    assert!(blue(pixel(&at_end, 400, 300)));

    // For auditors who prefer a player: a video of the desktop (ffmpeg), red then blue.
    let video = w.keys.path().join("desktop.mp4");
    let out = w.env.cli(
        &[
            "recording",
            "export",
            &id,
            "--format",
            "video",
            "--fps",
            "5",
            "--out",
            video.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let probe = std::process::Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&video)
        .output()
        .unwrap();
    let probed = String::from_utf8_lossy(&probe.stdout).trim().to_owned();
    let fields: Vec<u64> = probed.split(',').map(|f| f.parse().unwrap()).collect();
    assert_eq!(&fields[..2], &[1024, 768], "{probed}");
    assert!(
        fields[2] as f64 >= (length - 2.0) * 5.0,
        "{probed} for {length} s"
    );
    let last_frame = w.keys.path().join("last.png");
    let grab = std::process::Command::new("ffmpeg")
        .args(["-v", "error", "-sseof", "-0.5", "-i"])
        .arg(&video)
        .args(["-frames:v", "1", "-y"])
        .arg(&last_frame)
        .status()
        .unwrap();
    assert!(grab.success());
    let last = std::fs::read(&last_frame).unwrap();
    assert!(blue(pixel(&last, 400, 300)), "{:?}", pixel(&last, 400, 300));

    // The typed line is found by the search, at its moment.
    let (status, hits) = w
        .http
        .get(
            "/api/v1/recordings/search?q=Get-Service%20sekisho",
            &w.approver,
        )
        .await;
    assert_eq!(status, 200, "{hits}");
    let hit = hits
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["session"] == json!(id))
        .unwrap_or_else(|| panic!("{hits}"));
    assert!(hit["t"].as_f64().unwrap() > blue_at, "{hit}");
}

async fn wait_sealed(w: &World, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, v) = w
            .http
            .get(&format!("/api/v1/recordings/{id}/verify"), &w.approver)
            .await;
        if status == 200 && v["state"] != "open" {
            return v;
        }
        assert!(Instant::now() < deadline, "{status} {v}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Waits (at most 10 s) until the live screen of recording `id` has `want` at (400, 300).
async fn wait_live_screen(w: &World, id: &str, want: fn((u8, u8, u8)) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let now = live_screen(w, id).await;
        if now.as_deref().is_some_and(|p| want(pixel(p, 400, 300))) {
            return;
        }
        let seen = now.map(|p| pixel(&p, 400, 300));
        assert!(Instant::now() < deadline, "live screen: {seen:?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The drawn screen of a live recording, once the recorder has written a drawn desktop (it
/// flushes every second; before that the API answers that there is no screen yet).
async fn live_screen(w: &World, id: &str) -> Option<Vec<u8>> {
    let response = w
        .http
        .client
        .get(format!("{}/api/v1/recordings/{id}/screen", w.http.base))
        .bearer_auth(&w.approver)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let png = response.headers()["content-type"] == "image/png";
    if png {
        assert_eq!(response.headers()["x-sekisho-live"], "true");
    }
    let body = response.bytes().await.unwrap().to_vec();
    png.then_some(body)
}

/// The drawn screen (PNG) of recording `id` at `t` (or the end), and the recording's length.
async fn screen(w: &World, id: &str, t: Option<f64>) -> (Vec<u8>, f64) {
    let url = match t {
        Some(t) => format!("{}/api/v1/recordings/{id}/screen?t={t}", w.http.base),
        None => format!("{}/api/v1/recordings/{id}/screen", w.http.base),
    };
    let response = w
        .http
        .client
        .get(url)
        .bearer_auth(&w.approver)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "image/png");
    let length = response.headers()["x-sekisho-length"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    (response.bytes().await.unwrap().to_vec(), length)
}

/// The window's end is announced and then ends the desktop; a target that comes back with
/// another certificate than the pinned one gets no password and no session.
#[tokio::test]
async fn a_desktop_is_warned_and_closed_at_the_window_end_and_a_changed_certificate_is_refused() {
    let start = || Some(ShadowServer::start(ACCOUNT, PASSWORD));
    let Some((w, first, dir)) = site(start, ACCOUNT, PASSWORD).await else {
        return;
    };

    // Long enough for the desktop to come up on a loaded machine, short enough to wait for.
    let id = w
        .file("reference", jiff::SignedDuration::from_secs(45))
        .await;
    w.approve(&id).await;
    let vendor = Display::start(1024, 768);
    let child = launch(&dir, &vendor, &["/size:800x600"]);
    let session = w.wait_live().await;
    let seen = vendor.wait_pixel(400, 300, Duration::from_secs(40), red);
    eprintln!("desktop seen after {seen:?}");
    assert!(
        seen.is_ok(),
        "vendor screen: {seen:?}\nlog: {}\nclient: {}",
        w.log(),
        child.printed()
    );
    let (err, _) = finished(child, Duration::from_secs(60));
    assert!(
        err.contains("the window of request R-1 closes at")
            && err.contains("in less than a minute"),
        "{err}"
    );
    assert!(err.contains("the window of request R-1 ended at"), "{err}");
    let ended = w.wait_ended(session["id"].as_str().unwrap()).await;
    assert_eq!(ended["end"], "window_ended", "{ended}");

    // The certificate was pinned on first use, and audited.
    let (_, target) = w
        .http
        .get(&format!("/api/v1/targets/{}", w.target_id), &w.admin)
        .await;
    let pinned = target["rdp_certificate"].as_str().unwrap().to_owned();
    let pins = w.audit("kind=host_key_pinned").await;
    assert!(
        pins.iter()
            .any(|p| p["details"]["fingerprint"] == json!(format!("rdp-tls:SHA256:{pinned}"))),
        "{pins:?}"
    );

    // A stored password the target refuses (NLA): the vendor is told, before any desktop.
    w.approved("reference").await;
    w.remote_desktop(first.port, ACCOUNT, "Not-The-Password-1")
        .await;
    let child = launch(&dir, &vendor, &["/size:800x600"]);
    let (err, _) = finished(child, Duration::from_secs(30));
    assert!(
        err.contains("pacs refused the gateway's reference credential"),
        "{err}"
    );
    let denials = w.audit("kind=access_denied").await;
    assert!(
        denials
            .iter()
            .any(|d| d["details"]["code"] == "target_login_failed"),
        "{denials:?}"
    );
    w.wait_all_ended().await;

    // Another server (another certificate) where pacs was: refused before any password.
    drop(first);
    let impostor = ShadowServer::start(ACCOUNT, PASSWORD);
    desktop_target(&w, impostor.port).await;
    let child = launch(&dir, &vendor, &["/size:800x600"]);
    let (err, _) = finished(child, Duration::from_secs(30));
    assert!(
        err.contains("does not match the pinned one") && err.contains(&pinned),
        "{err}"
    );
    let denials = w.audit("kind=access_denied").await;
    assert!(
        denials
            .iter()
            .any(|d| d["details"]["code"] == "target_certificate_mismatch"),
        "{denials:?}"
    );
    drop(impostor);
}

/// A pixel of a PNG: the API's (RGBA) or ffmpeg's (RGB), 8 bits.
fn pixel(png_bytes: &[u8], x: usize, y: usize) -> (u8, u8, u8) {
    let decoder = png::Decoder::new(png_bytes);
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let channels = info.color_type.samples();
    let at = (y * info.width as usize + x) * channels;
    (buf[at], buf[at + 1], buf[at + 2])
}

/// Older systems without NLA: the gateway puts the password in the Client Info (TLS), the
/// target checks it (PAM here), and the recording keeps the Client Info without it.
#[tokio::test]
async fn a_tls_only_desktop_gets_the_password_in_the_client_info_and_a_wrong_one_gets_nothing() {
    let start = ShadowServer::start_tls;
    let Some((w, target, dir)) = site(start, desktop::TLS_ACCOUNT, "not the password").await else {
        return;
    };
    w.approved("reference").await;
    let vendor = Display::start(1024, 768);

    // A client that offers only the old RDP security (RC4) is told to use TLS.
    let child = launch(&dir, &vendor, &["/size:800x600", "/sec:rdp"]);
    let (err, _) = finished(child, Duration::from_secs(30));
    assert!(err.contains("did not offer TLS"), "{err}");
    let denials = w.audit("kind=access_denied").await;
    assert!(
        denials
            .iter()
            .any(|d| d["details"]["code"] == "rdp_negotiation"),
        "{denials:?}"
    );
    w.wait_all_ended().await;

    // A wrong stored password: the target closes the connection, nothing of it is shown.
    let child = launch(&dir, &vendor, &["/size:800x600"]);
    let (err, _) = finished(child, Duration::from_secs(30));
    assert!(!red(vendor.pixel(400, 300)), "{err}");
    w.wait_all_ended().await;

    // The right one: the desktop.
    w.remote_desktop(target.port, desktop::TLS_ACCOUNT, desktop::TLS_PASSWORD)
        .await;
    let child = launch(&dir, &vendor, &["/size:800x600"]);
    let seen = vendor.wait_pixel(400, 300, Duration::from_secs(30), red);
    assert!(
        seen.is_ok(),
        "vendor screen: {seen:?}\nlog: {}\nshadow: {}\nclient: {}",
        w.log(),
        target.log(),
        child.printed()
    );
    let sessions = w.sessions(true).await;
    let id = sessions[0]["id"].as_str().unwrap().to_owned();
    w.terminate(&id).await;
    finished(child, Duration::from_secs(5));
    let verified = wait_sealed(&w, &id).await;
    assert_eq!(verified["problems"], json!([]), "{verified}");
    assert_no_password(&w, &id, desktop::TLS_PASSWORD);
}

/// A console page or picture, as the approver (the console's cookie holds the API token).
async fn console_get(w: &World, path: &str) -> Vec<u8> {
    let (status, body) = w.http.console(path, &w.approver, None).await;
    assert_eq!(status, 200, "{path}");
    body
}
