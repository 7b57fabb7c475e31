//! Issue #7 in a real browser: Debian's Chromium, headless, driven through ChromeDriver
//! (WebDriver) against a running `sekisho serve`, with a real `sshd` target for the live
//! session. Skipped loudly without `chromedriver`, except in CI where it is required.
//!
//! `SEKISHO_SCREENSHOTS=docs/screenshots cargo test --test console_browser` refreshes the
//! screenshots shown in the README.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::os::unix::process::CommandExt;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::json;
use support::gateway::{Pin, World, add_vendor, assign, exited};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

/// base64(SHA-256(SubjectPublicKeyInfo)) of a PEM certificate, as Chromium's
/// `--ignore-certificate-errors-spki-list` wants it (computed with the openssl CLI).
fn spki_sha256(cert: &std::path::Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(
            "openssl x509 -in \"$1\" -pubkey -noout | openssl pkey -pubin -outform der \
             | openssl dgst -sha256 -binary | base64",
        )
        .arg("sh")
        .arg(cert)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

struct Browser {
    client: Client,
    driver: Child,
    _profile: tempfile::TempDir,
    shots: PathBuf,
    _shots_tmp: Option<tempfile::TempDir>,
}

impl Drop for Browser {
    /// Stops ChromeDriver and the Chromium it started: the whole process group, or Chromium
    /// outlives the test when the session was not closed (a failed assertion).
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-s", "KILL", "--", &format!("-{}", self.driver.id())])
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

impl Browser {
    /// Chromium through ChromeDriver on a free loopback port, or `None` (outside CI) when
    /// they are not installed.
    async fn start(w: &World) -> Option<Browser> {
        if !std::path::Path::new(CHROMEDRIVER).exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "{CHROMEDRIVER} is required in CI (.ci/run installs chromium-driver)"
            );
            eprintln!(
                "SKIPPED: {CHROMEDRIVER} not installed (apt-get install chromium chromium-driver)"
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .process_group(0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let profile = tempfile::tempdir().unwrap();
        // As the environment's notes say: without the background-networking flags Chromium
        // keeps trying the closed network.
        // The console is HTTPS with the self-signed certificate the gateway made: this browser
        // trusts exactly that key (by its SPKI hash), as a hospital's staff would accept it once.
        let spki = spki_sha256(&support::self_signed_certificate(&w.env.data_dir()).unwrap());
        let caps = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-dev-shm-usage", "--window-size=1280,900",
                    "--lang=en-US", format!("--user-data-dir={}", profile.path().display()),
                    format!("--ignore-certificate-errors-spki-list={spki}")],
                "prefs": {"intl.accept_languages": "en-US,en"}
            }
        });
        let caps: fantoccini::wd::Capabilities = caps.as_object().unwrap().clone();
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&format!("http://127.0.0.1:{port}"))
                .await
            {
                Ok(c) => break c,
                Err(e) => {
                    assert!(Instant::now() < deadline, "cannot start Chromium: {e}");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        };
        let (shots, tmp) = match std::env::var_os("SEKISHO_SCREENSHOTS") {
            Some(dir) => (PathBuf::from(dir), None),
            None => {
                let t = tempfile::tempdir().unwrap();
                (t.path().to_owned(), Some(t))
            }
        };
        std::fs::create_dir_all(&shots).unwrap();
        Some(Browser {
            client,
            driver,
            _profile: profile,
            shots,
            _shots_tmp: tmp,
        })
    }

    /// The element, waiting (bounded) for it to appear: a page may still be loading.
    async fn find(&self, css: &str) -> fantoccini::elements::Element {
        self.client
            .wait()
            .at_most(Duration::from_secs(10))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no {css}: {e}"))
    }

    async fn text(&self, css: &str) -> String {
        self.find(css).await.text().await.unwrap()
    }

    async fn fill(&self, css: &str, value: &str) {
        self.find(css).await.send_keys(value).await.unwrap();
    }

    async fn click(&self, css: &str) {
        self.find(css).await.click().await.unwrap();
    }

    async fn path(&self) -> String {
        let url = self.client.current_url().await.unwrap();
        match url.query() {
            Some(q) => format!("{}?{q}", url.path()),
            None => url.path().to_owned(),
        }
    }

    /// Fills and sends the login form on the page the browser is at.
    async fn submit_login(&self, username: &str, password: &str) {
        self.fill("#username", username).await;
        self.fill("#password", password).await;
        self.click("button[type=submit].primary").await;
    }

    /// Logs in from the login page and waits for the first page.
    async fn login(&self, base: &str, username: &str, password: &str) {
        self.client
            .goto(&format!("{base}/console/login"))
            .await
            .unwrap();
        self.submit_login(username, password).await;
        self.at("/console/approvals").await;
    }

    /// Waits (bounded) until the browser is at `expected` (path and query).
    async fn at(&self, expected: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let path = self.path().await;
            if path == expected {
                return;
            }
            assert!(Instant::now() < deadline, "at {path}, expected {expected}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(self.shots.join(name), png).unwrap();
    }
}

#[tokio::test]
async fn an_approver_approves_sees_the_session_and_terminates_it_in_a_real_browser() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    let Some(b) = Browser::start(&w).await else {
        return;
    };
    let base = w.http.base.clone();
    let request = w.file("change", jiff::SignedDuration::from_hours(2)).await;

    // Not logged in: every page leads to the login form.
    b.client
        .goto(&format!("{base}/console/sessions"))
        .await
        .unwrap();
    b.at("/console/login").await;
    b.submit_login("hana", "wrong password").await;
    let alert = b.text("p.alert").await;
    assert!(alert.contains("wrong username or password"), "{alert}");
    b.submit_login("hana", "approver password 1").await;
    b.at("/console/approvals").await;

    // The pending change request, visibly a change, with what the approver must see.
    let card = b.text("article.request").await;
    for expected in [
        "R-1",
        "pacs",
        "Change",
        "log collection",
        "read the logs",
        "meets the checklist",
        "alice",
    ] {
        assert!(
            card.contains(expected),
            "{expected:?} missing from {card:?}"
        );
    }
    b.screenshot("approvals.png").await;
    b.fill("article.request textarea", "ok for tonight").await;
    b.click("article.request button.primary").await;
    b.at("/console/approvals?done=approved").await;
    assert_eq!(b.text("p.notice").await, "Approved.");
    let (status, r) = w
        .http
        .get(&format!("/api/v1/requests/{request}"), &w.approver)
        .await;
    assert_eq!(status, 200);
    assert_eq!(r["status"], "approved", "{r}");
    assert_eq!(r["approvals"][0]["comment"], "ok for tonight", "{r}");

    // A live interactive session appears; its screen can be watched as it happens; it is
    // terminated from the browser, after confirmation.
    let (child, typing) = w.interactive("alice+pacs", b"echo watched-$((40+2))\n");
    let live = w.wait_live().await;
    b.client
        .goto(&format!("{base}/console/sessions"))
        .await
        .unwrap();
    let row = b.text("tr.session").await;
    assert!(
        row.contains("alice") && row.contains("pacs") && row.contains("R-1"),
        "{row}"
    );
    b.screenshot("sessions.png").await;
    b.click("tr.session a.watch").await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        // The page refreshes itself every second while the session lasts.
        let screen = b
            .find("pre.terminal")
            .await
            .text()
            .await
            .unwrap_or_default();
        if screen.contains("watched-42") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the watched screen never showed the output: {screen}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(b.text("p.live").await.contains("refreshes every second"));
    b.screenshot("watch.png").await;
    b.client
        .goto(&format!("{base}/console/sessions"))
        .await
        .unwrap();
    b.click("tr.session a.danger").await;
    b.at(&format!(
        "/console/sessions/{}/terminate",
        live["id"].as_str().unwrap()
    ))
    .await;
    b.screenshot("terminate-confirm.png").await;
    let clicked = Instant::now();
    b.click("form button.danger").await;
    let (out, _) = exited(child, Duration::from_secs(5));
    let took = clicked.elapsed();
    drop(typing);
    assert!(took < Duration::from_secs(1), "terminate took {took:?}");
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("an approver terminated this session"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    b.at("/console/sessions?done=terminated").await;
    let ended = w.wait_ended(live["id"].as_str().unwrap()).await;
    assert_eq!(ended["end"], "terminated");

    // The Japanese console.
    b.click("a.lang").await;
    b.at("/console/sessions?done=terminated").await;
    assert_eq!(b.text("h1").await, "接続中のセッション");
    b.client
        .goto(&format!("{base}/console/approvals"))
        .await
        .unwrap();
    assert_eq!(b.text("h1").await, "承認");
    assert!(b.text("table").await.contains("変更"));
    b.screenshot("approvals-ja.png").await;

    // The audit log shows who decided, from where.
    let approved = w.audit("kind=request_decided").await;
    assert_eq!(approved[0]["actor"], "hana", "{approved:?}");
    assert!(!approved[0]["source_addr"].is_null(), "{approved:?}");
    b.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn a_vendor_files_a_request_and_sees_only_their_own_vendors_requests() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    let Some(b) = Browser::start(&w).await else {
        return;
    };
    let base = w.http.base.clone();

    // Another vendor's engineer (Beta Systems also maintains pacs) files the first request.
    let (beta, _) = add_vendor(
        &w.http,
        &w.admin,
        "Beta Systems",
        "bob",
        "vendor password 2",
    )
    .await;
    assign(
        &w.http,
        &w.admin,
        beta["id"].as_str().unwrap(),
        &w.target_id,
    )
    .await;
    let bob = w.http.login("bob", "vendor password 2").await;
    let now = jiff::Timestamp::now();
    let (status, theirs) = w
        .http
        .post(
            "/api/v1/requests",
            &bob,
            json!({"target": "pacs", "level": "reference", "window_start": now.to_string(),
                "window_end": (now + jiff::SignedDuration::from_hours(1)).to_string(),
                "reason": "beta secret maintenance"}),
        )
        .await;
    assert_eq!(status, 201, "{theirs}");

    // alice sees none of it, files her own from the form, and is told why it is not usable.
    b.login(&base, "alice", "vendor password 1").await;
    assert_eq!(b.text("h1").await, "Your requests");
    b.click("a.button.primary").await;
    b.at("/console/requests/new").await;
    b.click("input[value=change]").await;
    b.fill("#reason", "firmware check").await;
    b.fill("#plan", "1. back up\n2. update").await;
    b.click("form button.primary").await;
    b.at("/console/approvals?done=filed").await;
    let table = b.text("table").await;
    assert!(
        table.contains("R-2") && table.contains("firmware check"),
        "{table}"
    );
    assert!(
        table.contains("Not yet: waiting for approval (0/1)"),
        "{table}"
    );
    assert!(
        !table.contains("beta secret") && !table.contains("R-1"),
        "{table}"
    );
    let page = b.client.source().await.unwrap();
    assert!(!page.contains("beta secret") && !page.contains("Beta Systems"));
    b.screenshot("vendor-requests.png").await;

    // What the form filed: the change level, a two-hour window from the form's defaults.
    let (_, mine) = w
        .http
        .get("/api/v1/requests?status=submitted", &w.approver)
        .await;
    let mine = mine
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["reason"] == "firmware check")
        .unwrap()
        .clone();
    assert_eq!(
        (&mine["level"], &mine["plan"]),
        (&json!("change"), &json!("1. back up\n2. update"))
    );
    let span = mine["window_end"]
        .as_str()
        .unwrap()
        .parse::<jiff::Timestamp>()
        .unwrap()
        - mine["window_start"]
            .as_str()
            .unwrap()
            .parse::<jiff::Timestamp>()
            .unwrap();
    assert_eq!(span.as_hours(), 2, "{mine}");
    w.approve(mine["id"].as_str().unwrap()).await;
    b.client
        .goto(&format!("{base}/console/approvals"))
        .await
        .unwrap();
    assert!(b.text("table").await.contains("Yes, until"));

    // And the API refuses her a look at the other vendor's request.
    let alice_view = w
        .http
        .get(
            &format!("/api/v1/requests/{}", theirs["id"].as_str().unwrap()),
            &w.alice,
        )
        .await;
    assert_eq!(alice_view.0, 404, "{}", alice_view.1);
    b.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn an_auditor_finds_a_command_by_search_and_plays_the_recording_an_approver_signs_it_off() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    let Some(b) = Browser::start(&w).await else {
        return;
    };
    let base = w.http.base.clone();
    let out = w.env.cli(
        &[
            "user",
            "add",
            "--username",
            "audrey",
            "--role",
            "auditor",
            "--password-stdin",
        ],
        "auditor password 1\n",
    );
    assert!(out.status.success());

    // A recorded interactive session: a command, its output, and some red text.
    w.approved("reference").await;
    let (child, _stdin) = w.interactive(
        "alice+pacs",
        b"echo sekisho-$((6*7))-done; printf '\\033[31mALERT\\033[0m\\n'\nexit\n",
    );
    let out = child.wait_with_output().unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("sekisho-42-done"));
    let id = w.sessions(false).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.wait_ended(&id).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, m) = w
            .http
            .get(&format!("/api/v1/recordings/{id}"), &w.approver)
            .await;
        if m["state"] == "closed" {
            break;
        }
        assert!(Instant::now() < deadline, "recording not sealed: {m}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The auditor lists recordings and finds the command's output by search.
    b.login(&base, "audrey", "auditor password 1").await;
    b.client
        .goto(&format!("{base}/console/recordings"))
        .await
        .unwrap();
    let row = b.text("tr.recording").await;
    assert!(
        row.contains("alice") && row.contains("pacs") && row.contains("R-1"),
        "{row}"
    );
    b.fill("#q", "sekisho-42-done").await;
    b.click("form.search button").await;
    b.at("/console/recordings/search?q=sekisho-42-done").await;
    let hit = b.text("tr.hit").await;
    assert!(hit.contains("sekisho-42-done"), "{hit}");
    b.screenshot("search.png").await;
    b.click("tr.hit a").await;

    // The player shows the screen at that moment, verified against the signed manifest.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !b
        .path()
        .await
        .starts_with(&format!("/console/recordings/{id}?t="))
    {
        assert!(
            Instant::now() < deadline,
            "not at the hit: {}",
            b.path().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let screen = b.text("pre.terminal").await;
    assert!(screen.contains("sekisho-42-done"), "{screen}");
    assert!(b.text("dl").await.contains("Verified"));
    // Seek to the end: the red text is drawn red (xterm colour 1).
    b.client
        .goto(&format!("{base}/console/recordings/{id}?t=9999"))
        .await
        .unwrap();
    let red = b.text("pre.terminal span.f1").await;
    assert_eq!(red, "ALERT");
    b.screenshot("player.png").await;
    // Play from the start: the page advances by itself (no JavaScript: a refresh).
    b.client
        .goto(&format!(
            "{base}/console/recordings/{id}?t=0&play=true&speed=1"
        ))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    // (The session lasted well under a second: one step reaches its end.)
    while b.path().await.contains("?t=0&") {
        assert!(
            Instant::now() < deadline,
            "the player did not advance: {}",
            b.path().await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // The auditor's export for offline verification is offered.
    let bundle = b
        .find("a.bundle")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(bundle, format!("/console/recordings/{id}/bundle"));
    // An auditor reviews but does not sign off: no form for them.
    assert!(
        b.client
            .find(Locator::Css("#review-comment"))
            .await
            .is_err()
    );

    // The audit log screen: the chain is intact, and the session start is listed.
    b.client
        .goto(&format!("{base}/console/audit?kind=session_started"))
        .await
        .unwrap();
    assert!(b.text("p.chain").await.contains("Hash chain intact"));
    assert!(b.text("tr.event").await.contains("session_started"));
    b.screenshot("audit.png").await;

    // The approver signs the review off.
    b.click("header form.inline button").await;
    b.at("/console/login").await;
    b.submit_login("hana", "approver password 1").await;
    b.at("/console/approvals").await;
    b.client
        .goto(&format!("{base}/console/recordings/{id}"))
        .await
        .unwrap();
    b.fill("#review-comment", "checked the log collection")
        .await;
    b.click("section form.decision button.primary").await;
    b.at(&format!("/console/recordings/{id}?done=signed_off"))
        .await;
    let (_, sessions) = w.http.get("/api/v1/sessions", &w.approver).await;
    let s = sessions
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["id"] == id.as_str())
        .unwrap();
    assert_eq!(
        (&s["review"], &s["reviewed_by"]),
        (&json!("signed_off"), &json!("hana")),
        "{s}"
    );
    b.client.clone().close().await.unwrap();
}

#[tokio::test]
async fn an_admin_registers_a_vendor_an_engineer_and_a_target_and_issues_an_enrollment_code() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    let Some(b) = Browser::start(&w).await else {
        return;
    };
    let base = w.http.base.clone();
    let admin_pw =
        std::fs::read_to_string(w.env.data_dir().join("initial-admin-password")).unwrap();
    b.login(&base, "admin", admin_pw.trim()).await;
    b.click("header nav a[href='/console/admin']").await;
    b.at("/console/admin").await;

    // A vendor with every checklist item ticked.
    b.click("section[aria-labelledby=vendors] summary").await;
    b.fill("#vendor-name", "Gamma Imaging").await;
    b.fill("#vendor-contact", "Suzuki").await;
    for cb in b
        .client
        .find_all(Locator::Css(
            "section[aria-labelledby=vendors] input[type=checkbox]",
        ))
        .await
        .unwrap()
    {
        cb.click().await.unwrap();
    }
    b.fill("#vendor-attested", "Suzuki (CISO)").await;
    b.click("section[aria-labelledby=vendors] form button.primary")
        .await;
    b.at("/console/admin?done=ok").await;
    let vendors = b.text("section[aria-labelledby=vendors] table").await;
    assert!(
        vendors.contains("Gamma Imaging") && vendors.contains("meets the checklist"),
        "{vendors}"
    );

    // An engineer of that vendor, and an enrollment code for them.
    // (Each form starts from the plain page, so that `?done=ok` means this form's result.)
    b.client
        .goto(&format!("{base}/console/admin"))
        .await
        .unwrap();
    b.click("section[aria-labelledby=engineers] summary").await;
    b.find("#eng-vendor")
        .await
        .select_by_label("Gamma Imaging")
        .await
        .unwrap();
    b.fill("#eng-username", "carol").await;
    b.fill("#eng-display", "Carol Tanaka").await;
    b.fill("#eng-password", "vendor password 3").await;
    b.click("section[aria-labelledby=engineers] form.card button.primary")
        .await;
    b.at("/console/admin?done=ok").await;
    let rows = b
        .client
        .find_all(Locator::Css("tr.engineer"))
        .await
        .unwrap();
    let mut carol = None;
    for r in rows {
        if r.text().await.unwrap().contains("carol") {
            carol = Some(r);
        }
    }
    let carol = carol.expect("carol listed");
    carol
        .find(Locator::Css("form[action$='/enrollment-code'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    let code = b.text("code.enrollment-code").await;
    assert!(code.len() >= 16, "{code}");
    assert!(
        b.text("pre.command")
            .await
            .contains(&format!("--code {code}"))
    );
    b.screenshot("enrollment-code.png").await;

    // A target with a write-only credential: it is never shown back.
    b.client
        .goto(&format!("{base}/console/admin"))
        .await
        .unwrap();
    b.click("section[aria-labelledby=targets] summary").await;
    b.fill("#tg-name", "ris").await;
    b.fill("#tg-host", "127.0.0.1").await;
    b.fill("#tg-ref-account", "ris-ro").await;
    let key = std::fs::read_to_string(w.keys.path().join("gateway-to-pacs")).unwrap();
    b.fill("#tg-ref-key", &key).await;
    b.fill("#tg-ports", "not-a-port").await;
    b.click("section[aria-labelledby=targets] form button.primary")
        .await;
    assert!(
        b.text("p.alert")
            .await
            .contains("not a list of port numbers")
    );
    b.click("section[aria-labelledby=targets] summary").await;
    b.fill("#tg-name", "ris").await;
    b.fill("#tg-host", "127.0.0.1").await;
    b.fill("#tg-ref-account", "ris-ro").await;
    b.fill("#tg-ref-key", &key).await;
    b.fill("#tg-site", "east").await;
    b.click("section[aria-labelledby=targets] form button.primary")
        .await;
    b.at("/console/admin?done=ok").await;
    let targets = b.text("section[aria-labelledby=targets] table").await;
    assert!(targets.contains("ris-ro"), "{targets}");
    // The site a hospital group's target belongs to is kept and shown.
    assert!(targets.contains("east"), "{targets}");
    let page = b.client.source().await.unwrap();
    assert!(!page.contains("PRIVATE KEY"), "a credential was shown");

    // Gamma Imaging is assigned to ris under a contract whose last day is 2027-03-31.
    b.client
        .goto(&format!("{base}/console/admin"))
        .await
        .unwrap();
    b.click("section[aria-labelledby=assignments] summary")
        .await;
    b.find("#as-vendor")
        .await
        .select_by_label("Gamma Imaging")
        .await
        .unwrap();
    b.find("#as-target")
        .await
        .select_by_label("ris")
        .await
        .unwrap();
    b.fill("#as-contract", "MC-2027-03 保守契約").await;
    b.fill("#as-sla", "4 h on site, 24/7").await;
    b.fill(
        "#as-boundary",
        "up to the OS; the network is the hospital's",
    )
    .await;
    // (A date input's typing order follows the browser's locale; set its value directly.)
    b.client
        .execute(
            "document.getElementById('as-ends').value = '2027-03-31'",
            vec![],
        )
        .await
        .unwrap();
    b.click("section[aria-labelledby=assignments] form.card button.primary")
        .await;
    b.at("/console/admin?done=ok").await;
    let row = b.text("tr.assignment[data-target=ris]").await;
    assert!(
        row.contains("Gamma Imaging")
            && row.contains("MC-2027-03 保守契約")
            && row.contains("2027-04-01 00:00 JST"),
        "{row}"
    );
    let (_, assignments) = w.http.get("/api/v1/assignments", &w.admin).await;
    let gamma = assignments
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["vendor"] == "Gamma Imaging")
        .unwrap()
        .clone();
    // The last day is a whole day in the hospital's zone (Asia/Tokyo).
    assert_eq!(gamma["ends_at"], "2027-03-31T15:00:00Z", "{gamma}");
    assert_eq!(gamma["sla"], "4 h on site, 24/7");
    b.screenshot("admin.png").await;
    // Removing it from the page.
    b.click("tr.assignment[data-target=ris] button.danger")
        .await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, assignments) = w.http.get("/api/v1/assignments", &w.admin).await;
        if !assignments
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a["vendor"] == "Gamma Imaging")
        {
            break;
        }
        assert!(Instant::now() < deadline, "the assignment was not removed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(w.audit("kind=assignment_removed").await.len(), 1);

    // Disabling carol from the page.
    for r in b
        .client
        .find_all(Locator::Css("tr.engineer"))
        .await
        .unwrap()
    {
        if r.text().await.unwrap().contains("carol") {
            r.find(Locator::Css("button.danger"))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            break;
        }
    }
    // (The page was already at ?done=ok: wait for the change itself.)
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, users) = w.http.get("/api/v1/users", &w.admin).await;
        let carol = users
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["username"] == "carol")
            .unwrap()
            .clone();
        if carol["status"] == "disabled" {
            break;
        }
        assert!(Instant::now() < deadline, "carol was not disabled: {carol}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (_, targets) = w.http.get("/api/v1/targets", &w.admin).await;
    assert!(
        targets
            .as_array()
            .unwrap()
            .iter()
            .any(|t| t["name"] == "ris")
    );
    let codes = w.audit("kind=enrollment_code_created").await;
    assert_eq!(codes.len(), 1, "{codes:?}");
    b.client.clone().close().await.unwrap();
}

/// The code of an authenticator holding `secret`, `ahead` periods from now.
fn totp(secret: &str, ahead: u64) -> String {
    let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap();
    sekisho_store::mfa::code_at(secret, now + 30 * ahead).unwrap()
}

/// Issue #17: an auditor, whose role must use a second factor, is sent from the login to
/// the enrolment, scans the QR code (the secret read off the page), turns it on with a first
/// code, keeps the recovery codes, and logs in with password and code.
#[tokio::test]
async fn a_role_that_must_use_a_second_factor_enrols_from_the_login_page_in_a_real_browser() {
    let env = support::Env::new(None);
    env.configure("[policy]\nmfa_required = [\"auditor\"]\n");
    let Some(w) = World::with_env(env, Pin::Real).await else {
        return;
    };
    let Some(b) = Browser::start(&w).await else {
        return;
    };
    let out = w.env.cli(
        &[
            "user",
            "add",
            "--username",
            "ken",
            "--role",
            "auditor",
            "--password-stdin",
        ],
        "auditor password 1\n",
    );
    assert!(out.status.success(), "{}", support::stderr(&out));
    let base = w.http.base.clone();
    b.client
        .goto(&format!("{base}/console/login"))
        .await
        .unwrap();
    b.submit_login("ken", "auditor password 1").await;
    let alert = b.text("p.alert").await;
    assert!(
        alert.contains("auditors must use a second factor"),
        "{alert}"
    );
    // The name is kept; the password is asked again.
    b.fill("#password", "auditor password 1").await;
    b.click("button[type=submit].primary").await;
    b.find("div.qr svg").await;
    let secret = b.text("code.secret").await;
    // What a phone would read: the page's picture, decoded by a real QR decoder.
    b.screenshot("mfa-scan.png").await;
    let decoded = Command::new("zbarimg")
        .args(["-q", "--raw"])
        .arg(b.shots.join("mfa-scan.png"))
        .output()
        .unwrap();
    let decoded = String::from_utf8_lossy(&decoded.stdout).trim().to_owned();
    assert_eq!(
        decoded,
        format!(
            "otpauth://totp/Sekisho:ken?secret={secret}&issuer=Sekisho&algorithm=SHA1&digits=6&period=30"
        )
    );
    b.fill("#password", "auditor password 1").await;
    b.fill("#code", &totp(&secret, 0)).await;
    b.click("button[type=submit].primary").await;
    let codes = b
        .client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("ul.recovery"))
        .await
        .unwrap()
        .find_all(Locator::Css("li"))
        .await
        .unwrap();
    assert_eq!(codes.len(), 10);
    // Password alone: refused, saying a code is needed; with the next code: in.
    b.click("a[href='/console/login']").await;
    b.submit_login("ken", "auditor password 1").await;
    let alert = b.text("p.alert").await;
    assert!(alert.contains("needs its one-time code"), "{alert}");
    b.fill("#username", "ken").await;
    b.fill("#password", "auditor password 1").await;
    b.fill("#otp", &totp(&secret, 1)).await;
    b.click("button[type=submit].primary").await;
    b.at("/console/approvals").await;
    let enabled = w.audit("kind=mfa_enabled").await;
    assert_eq!(enabled.len(), 1, "{enabled:?}");
}
