//! A whole site for SSH gateway tests: a running `sekisho serve`, a real OpenSSH `sshd` as
//! the target `pacs` (accounts `sekisho-ro` for reference, `sekisho-rw` for change), an
//! approver `hana`, and a qualified vendor with the engineer `alice` whose key is registered.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use sekisho_testkit::sshd::{CHANGE_ACCOUNT, REFERENCE_ACCOUNT, Sshd, keygen};
use serde_json::{Value, json};

use super::{Env, Http, Server, stderr};

/// Which host key the target is registered with.
pub enum Pin {
    /// The sshd's real key.
    Real,
    /// Some other key: every connection must be refused.
    Wrong,
    /// None: pinned on first use.
    FirstUse,
}

pub struct World {
    pub env: Env,
    /// The `sekisho serve` process, or `None` when the gateway runs in this process.
    pub server: Option<Server>,
    /// Stops the in-process gateway (benchmarks).
    pub stop: Option<tokio_util::sync::CancellationToken>,
    pub http: Http,
    pub sshd: Sshd,
    pub keys: tempfile::TempDir,
    pub ssh_port: u16,
    pub alice_key: PathBuf,
    pub admin: String,
    pub approver: String,
    pub alice: String,
    pub alice_id: String,
    /// Acme Medical, alice's vendor.
    pub vendor_id: String,
    pub target_id: String,
    /// Acme Medical's assignment to pacs (contract MC-1, no end date).
    pub assignment_id: String,
}

impl World {
    /// `None` (outside CI) when no sshd can run here.
    pub async fn new(pin: Pin) -> Option<World> {
        Self::with_env(Env::new(None), pin).await
    }

    /// Like [`World::new`] with a prepared environment (e.g. extra configuration).
    pub async fn with_env(env: Env, pin: Pin) -> Option<World> {
        let sshd = Sshd::start()?;
        let server = env.serve();
        let ssh_port = server.ssh_port().unwrap_or(0);
        let http = server.http();
        Some(Self::setup(env, sshd, pin, http, ssh_port, Some(server), None).await)
    }

    /// The gateway in this process, with `options` (benchmarks: e.g. unrecorded).
    pub async fn in_process(
        env: Env,
        pin: Pin,
        options: sekisho_gateway::StartOptions,
    ) -> Option<World> {
        let sshd = Sshd::start()?;
        let config = sekisho_config::Config::load(&env.config).unwrap();
        let stop = tokio_util::sync::CancellationToken::new();
        let prepared = sekisho_gateway::prepare(&config).await.unwrap();
        // Put together as `sekisho serve` does (src/commands/mod.rs, `api_state`).
        let keys = &prepared.keys;
        let state = sekisho_approval_api::api::ApiState::new(
            &config,
            sekisho_approval_api::api::StateParts {
                store: prepared.store.clone(),
                events: prepared.events.clone(),
                hasher: prepared.hasher.clone(),
                failures: prepared.failures.clone(),
                throttle: prepared.throttle.clone(),
                directory: None,
                at_rest: keys.at_rest.clone(),
                jwt_pem: &keys.jwt_pem,
                jwt_public_pem: &keys.jwt_public_pem,
                jwt_kid: &keys.jwt_kid,
                recording_public_key: keys.recording.public_key_b64(),
                gateway_fingerprint: &keys.tls_fingerprint,
            },
        )
        .unwrap();
        let zone = state.settings.zone.clone();
        let app = sekisho_console::app(sekisho_approval_api::api::router(state), zone);
        let started = prepared.start(app, stop.clone(), options).await.unwrap();
        let http = Http {
            base: format!("{}://{}", started.api_scheme, started.api_addr),
            client: super::client_trusting(started.api_tls_self_signed.as_deref(), None),
        };
        let ssh_port = started.ssh_addr.unwrap().port();
        tokio::spawn(started.wait());
        Some(Self::setup(env, sshd, pin, http, ssh_port, None, Some(stop)).await)
    }

    async fn setup(
        env: Env,
        sshd: Sshd,
        pin: Pin,
        http: Http,
        ssh_port: u16,
        server: Option<Server>,
        stop: Option<tokio_util::sync::CancellationToken>,
    ) -> World {
        let admin_pw =
            std::fs::read_to_string(env.data_dir().join("initial-admin-password")).unwrap();
        let admin = http.login("admin", admin_pw.trim()).await;
        let out = env.cli(
            &[
                "user",
                "add",
                "--username",
                "hana",
                "--role",
                "approver",
                "--password-stdin",
            ],
            "approver password 1\n",
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let approver = http.login("hana", "approver password 1").await;

        let (vendor, user) =
            add_vendor(&http, &admin, "Acme Medical", "alice", "vendor password 1").await;
        let vendor_id = vendor["id"].as_str().unwrap().to_owned();
        let uid = user["id"].as_str().unwrap();
        let alice_id = uid.to_owned();
        let keys = tempfile::tempdir().unwrap();
        let (alice_key, alice_pub) = keygen(keys.path(), "alice");
        let (status, body) = http
            .post(
                &format!("/api/v1/users/{uid}/ssh-keys"),
                &admin,
                json!({"public_key": alice_pub}),
            )
            .await;
        assert_eq!(status, 201, "{body}");

        // The gateway's own key for the target, authorised for both accounts.
        let (gw_key, gw_pub) = keygen(keys.path(), "gateway-to-pacs");
        sshd.authorize(REFERENCE_ACCOUNT, &gw_pub);
        sshd.authorize(CHANGE_ACCOUNT, &gw_pub);
        let private = std::fs::read_to_string(gw_key).unwrap();
        let host_key = match pin {
            Pin::Real => json!(sshd.host_key),
            Pin::Wrong => json!(keygen(keys.path(), "impostor").1),
            Pin::FirstUse => Value::Null,
        };
        let (status, target) = http
            .post(
                "/api/v1/targets",
                &admin,
                json!({"name": "pacs", "host": "127.0.0.1", "port": sshd.port, "host_key": host_key,
                    "levels": {
                        "reference": {"account": REFERENCE_ACCOUNT, "credential": {"private_key": private}},
                        "change": {"account": CHANGE_ACCOUNT, "credential": {"private_key": private},
                                   "file_upload": true, "port_forwarding": true, "allowed_ports": [sshd.port]}
                    }}),
            )
            .await;
        assert_eq!(status, 201, "{target}");
        let target_id = target["id"].as_str().unwrap().to_owned();
        let assignment = assign(&http, &admin, &vendor_id, &target_id).await;
        let assignment_id = assignment["id"].as_str().unwrap().to_owned();
        let alice = http.login("alice", "vendor password 1").await;
        World {
            env,
            server,
            stop,
            http,
            sshd,
            keys,
            ssh_port,
            alice_key,
            admin,
            approver,
            alice,
            alice_id,
            vendor_id,
            target_id,
            assignment_id,
        }
    }

    /// Enrols a second factor for `username` (its password `password`) as its owner does
    /// through the API; returns the TOTP secret (base32), what their authenticator holds, and
    /// the one-time recovery codes.
    pub async fn enrol_mfa(&self, username: &str, password: &str) -> (String, Vec<String>) {
        let creds = json!({"username": username, "password": password});
        let (status, body) = self
            .http
            .send(
                reqwest::Method::POST,
                "/api/v1/auth/mfa/enroll",
                None,
                Some(creds.clone()),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let secret = body["secret"].as_str().unwrap().to_owned();
        let mut confirm = creds;
        confirm["code"] = json!(totp(&secret));
        let (status, body) = self
            .http
            .send(
                reqwest::Method::POST,
                "/api/v1/auth/mfa/confirm",
                None,
                Some(confirm),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let recovery = body["recovery_codes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        (secret, recovery)
    }

    /// Files a request of `level` whose window runs from now for `window`; returns its id.
    pub async fn file(&self, level: &str, window: SignedDuration) -> String {
        let now = Timestamp::now();
        let (status, request) = self
            .http
            .post(
                "/api/v1/requests",
                &self.alice,
                json!({"target": "pacs", "level": level, "window_start": now.to_string(),
                    "window_end": (now + window).to_string(),
                    "reason": "log collection", "plan": "read the logs"}),
            )
            .await;
        assert_eq!(status, 201, "{request}");
        request["id"].as_str().unwrap().to_owned()
    }

    pub async fn approve(&self, id: &str) {
        let (status, body) = self
            .http
            .post(
                &format!("/api/v1/requests/{id}/approve"),
                &self.approver,
                json!({}),
            )
            .await;
        assert_eq!(status, 200, "{body}\n{}", self.log());
    }

    /// An approved request of `level` for the next hour.
    pub async fn approved(&self, level: &str) -> String {
        let id = self.file(level, SignedDuration::from_hours(1)).await;
        self.approve(&id).await;
        id
    }

    fn client_options(&self) -> Vec<String> {
        ssh_options(&self.alice_key)
    }

    /// `ssh -p PORT LOGIN@127.0.0.1 ARGS...`, ready to run.
    pub fn ssh(&self, login: &str, args: &[&str]) -> Command {
        self.ssh_to(self.ssh_port, login, args)
    }

    /// The same through another gateway's SSH port (a second node of the group).
    pub fn ssh_to(&self, port: u16, login: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ssh");
        c.arg("-p")
            .arg(port.to_string())
            .args(self.client_options())
            .arg(format!("{login}@127.0.0.1"))
            .args(args)
            .stdin(Stdio::null());
        c
    }

    /// An interactive `ssh -tt` session as `login` that is sent `typed`; returns the client
    /// and its stdin (the session lasts until `typed` says `exit` or stdin is dropped).
    pub fn interactive(
        &self,
        login: &str,
        typed: &[u8],
    ) -> (std::process::Child, std::process::ChildStdin) {
        self.interactive_with(login, &[], typed)
    }

    /// [`World::interactive`] with more options for `ssh`.
    pub fn interactive_with(
        &self,
        login: &str,
        options: &[&str],
        typed: &[u8],
    ) -> (std::process::Child, std::process::ChildStdin) {
        let mut args = vec!["-tt"];
        args.extend_from_slice(options);
        let mut child = self
            .ssh(login, &args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        std::io::Write::write_all(&mut stdin, typed).unwrap();
        (child, stdin)
    }

    /// `scp -P PORT EXTRA... FROM TO` where a remote side is written `REMOTE:path`.
    pub fn scp(&self, login: &str, extra: &[&str], from: &str, to: &str) -> Output {
        let remote = |s: &str| s.replace("REMOTE:", &format!("{login}@127.0.0.1:"));
        Command::new("scp")
            .arg("-P")
            .arg(self.ssh_port.to_string())
            .args(self.client_options())
            .args(extra)
            .arg(remote(from))
            .arg(remote(to))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    pub async fn sessions(&self, active: bool) -> Vec<Value> {
        let (status, body) = self
            .http
            .get(&format!("/api/v1/sessions?active={active}"), &self.approver)
            .await;
        assert_eq!(status, 200, "{body}\n{}", self.log());
        body.as_array().unwrap().clone()
    }

    /// Waits until a session is live and returns it.
    pub async fn wait_live(&self) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(s) = self.sessions(true).await.into_iter().next() {
                return s;
            }
            assert!(Instant::now() < deadline, "no session became live");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Audit events matching `query` (e.g. `kind=access_denied`), newest first.
    pub async fn audit(&self, query: &str) -> Vec<Value> {
        let (status, page) = self
            .http
            .get(&format!("/api/v1/audit?{query}"), &self.approver)
            .await;
        assert_eq!(status, 200, "{page}");
        page["events"].as_array().unwrap().clone()
    }

    /// Starts the gateway again on the same data (after it was stopped or killed) and logs
    /// in again.
    pub async fn restart(&mut self) {
        let server = self.env.serve();
        self.http = server.http();
        self.ssh_port = server.ssh_port().unwrap_or(0);
        self.server = Some(server);
        self.approver = self.http.login("hana", "approver password 1").await;
    }

    /// The designated client's QUIC address from the banner.
    pub fn quic_addr(&self) -> String {
        self.server
            .as_ref()
            .unwrap()
            .banner
            .iter()
            .find_map(|l| l.trim().strip_prefix("Designated client (QUIC): udp "))
            .expect("QUIC address in banner")
            .to_owned()
    }

    /// A one-time enrollment code for alice and the gateway fingerprint shown with it,
    /// created by the admin (who, having given alice credentials, may not approve her
    /// requests: hana does).
    pub async fn enrollment_code(&self) -> (String, String) {
        let (status, code) = self
            .http
            .post(
                &format!("/api/v1/users/{}/enrollment-codes", self.alice_id),
                &self.admin,
                json!({}),
            )
            .await;
        assert_eq!(status, 201, "{code}");
        (
            code["code"].as_str().unwrap().to_owned(),
            code["gateway_fingerprint"].as_str().unwrap().to_owned(),
        )
    }

    /// Enrolls alice's designated client (`client`, the binary) in `dir`, her password on
    /// stdin.
    pub async fn enroll_client(&self, client: &str, dir: &std::path::Path) {
        let (code, fingerprint) = self.enrollment_code().await;
        let out = enroll_with_password(
            client,
            dir,
            &self.quic_addr(),
            &code,
            &fingerprint,
            "vendor password 1",
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }

    /// pacs gets a Remote Desktop on `port`; its reference level logs in to it (and only to
    /// it: no SSH, no clipboard, no drives) as `account` with `password`.
    pub async fn remote_desktop(&self, port: u16, account: &str, password: &str) {
        let (status, body) = self
            .http
            .send(
                reqwest::Method::PATCH,
                &format!("/api/v1/targets/{}", self.target_id),
                Some(&self.admin),
                Some(
                    json!({"rdp_port": port, "levels": {"reference": {"account": account,
                    "credential": {"password": password}, "ssh": false, "rdp": true,
                    "rdp_drives": false}}}),
                ),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// An approver terminates session `id` (202).
    pub async fn terminate(&self, id: &str) {
        let (status, body) = self
            .http
            .post(
                &format!("/api/v1/sessions/{id}/terminate"),
                &self.approver,
                json!({}),
            )
            .await;
        assert_eq!(status, 202, "{body}");
    }

    /// `sftp -b BATCH LOGIN@gateway`: the batch's commands, stopping at the first failure.
    pub fn sftp(&self, login: &str, batch: &str) -> Output {
        self.sftp_with(login, &[], batch)
    }

    /// [`World::sftp`] with more options (e.g. `-s PROGRAM`).
    pub fn sftp_with(&self, login: &str, extra: &[&str], batch: &str) -> Output {
        let file = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(file.path(), batch).unwrap();
        Command::new("sftp")
            .arg("-P")
            .arg(self.ssh_port.to_string())
            .args(self.client_options())
            .args(extra)
            .arg("-b")
            .arg(file.path())
            .arg(format!("{login}@127.0.0.1"))
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// Replaces pacs's `level` (`reference` or `change`) with `policy` (the account and the
    /// gateway's key are added).
    pub async fn set_level(&self, level: &str, mut policy: Value) {
        let private = std::fs::read_to_string(self.keys.path().join("gateway-to-pacs")).unwrap();
        let account = if level == "change" {
            CHANGE_ACCOUNT
        } else {
            REFERENCE_ACCOUNT
        };
        policy["account"] = json!(account);
        policy["credential"] = json!({"private_key": private});
        let (status, body) = self
            .http
            .send(
                reqwest::Method::PATCH,
                &format!("/api/v1/targets/{}", self.target_id),
                Some(&self.admin),
                Some(json!({"levels": {level: policy}})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// Lets pacs's change level forward to `ports` (its SSH port is always among them).
    pub async fn allow_change_ports(&self, ports: &[u16]) {
        let mut allowed = vec![self.sshd.port];
        allowed.extend_from_slice(ports);
        self.set_level(
            "change",
            json!({"port_forwarding": true, "allowed_ports": allowed}),
        )
        .await;
    }

    /// Disables alice's account through the API.
    pub async fn disable_alice(&self) {
        self.set_alice_status("disabled").await;
    }

    /// Sets alice's account status (`active`, `disabled`) through the API.
    pub async fn set_alice_status(&self, status: &str) {
        let (code, body) = self
            .http
            .send(
                reqwest::Method::PATCH,
                &format!("/api/v1/users/{}", self.alice_id),
                Some(&self.admin),
                Some(json!({ "status": status })),
            )
            .await;
        assert_eq!(code, 200, "{body}");
    }

    /// An approver revokes the request through the API.
    pub async fn revoke(&self, request: &str) {
        let (status, body) = self
            .http
            .post(
                &format!("/api/v1/requests/{request}/revoke"),
                &self.approver,
                json!({"comment": "stop"}),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }

    /// What the gateway logged so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.env.config.with_file_name("serve.log")).unwrap_or_default()
    }

    /// Waits until no session is live.
    pub async fn wait_all_ended(&self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.sessions(true).await.is_empty() {
            assert!(Instant::now() < deadline, "sessions stayed live");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until a session has ended in the database and returns it.
    pub async fn wait_ended(&self, id: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let all = self.sessions(false).await;
            if let Some(s) = all
                .iter()
                .find(|s| s["id"] == id && !s["ended_at"].is_null())
            {
                return s.clone();
            }
            assert!(
                Instant::now() < deadline,
                "session {id} did not end: {all:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Registers a vendor whose attestation answers yes to the whole checklist, with one
/// engineer; returns the vendor and the engineer as the API answered.
pub async fn add_vendor(
    http: &Http,
    admin: &str,
    name: &str,
    username: &str,
    password: &str,
) -> (Value, Value) {
    let (_, policy) = http.get("/api/v1/policy", admin).await;
    let answers: serde_json::Map<String, Value> = policy["checklist"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| (i["key"].as_str().unwrap().to_owned(), json!(true)))
        .collect();
    let (status, vendor) = http
        .post(
            "/api/v1/vendors",
            admin,
            json!({"name": name, "contact": {"name": "Sato"},
                "attestation": {"answers": answers, "attested_by": "Sato (CISO)"}}),
        )
        .await;
    assert_eq!(status, 201, "{vendor}");
    let (status, user) = http
        .post(
            &format!("/api/v1/vendors/{}/users", vendor["id"].as_str().unwrap()),
            admin,
            json!({"username": username, "password": password}),
        )
        .await;
    assert_eq!(status, 201, "{user}");
    (vendor, user)
}

/// Assigns `vendor` to `target` (ids) under contract `MC-1` without an end date, as `admin`.
pub async fn assign(http: &Http, admin: &str, vendor: &str, target: &str) -> Value {
    let (status, body) = http
        .post(
            "/api/v1/assignments",
            admin,
            json!({"vendor_id": vendor, "target_id": target, "contract": "MC-1"}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    body
}

/// Waits (bounded) for `child` to exit; returns its output and how long it took.
pub fn exited(mut child: std::process::Child, limit: Duration) -> (Output, Duration) {
    let started = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("child still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    (child.wait_with_output().unwrap(), started.elapsed())
}

/// Options for a non-interactive OpenSSH client using only `key` and trusting any host key
/// (the tests check the gateway's own host-key pinning, not the client's).
/// The current one-time code of a TOTP `secret` (base32), as an authenticator shows it.
pub fn totp(secret: &str) -> String {
    totp_in(secret, 0)
}

/// The one-time code of `secret` `steps` periods (30 s) from now: the gateway accepts one
/// step either side, and a code only of a step later than the last one used (enrolment uses
/// the current one).
pub fn totp_in(secret: &str, steps: i64) -> String {
    let now = u64::try_from(Timestamp::now().as_second()).unwrap();
    sekisho_store::mfa::code_at(secret, now.saturating_add_signed(steps * 30)).unwrap()
}

pub fn ssh_options(key: &std::path::Path) -> Vec<String> {
    [
        "-i",
        &key.display().to_string(),
        "-o",
        "IdentitiesOnly=yes",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=no",
        "-o",
        "UserKnownHostsFile=/dev/null",
        "-o",
        "LogLevel=ERROR",
    ]
    .map(str::to_owned)
    .to_vec()
}

/// `sekisho-client --dir DIR ARGS...` (`client` is the binary's path, which only the client
/// crate's tests know), stdin closed, stdout and stderr piped: ready to run or spawn.
pub fn client_command(client: &str, dir: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(client);
    c.arg("--dir")
        .arg(dir)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

/// `sekisho-client enroll` with `code` and `fingerprint`, `password` on stdin.
pub fn enroll_with_password(
    client: &str,
    dir: &std::path::Path,
    gateway: &str,
    code: &str,
    fingerprint: &str,
    password: &str,
) -> Output {
    use std::io::Write;
    let mut child = client_command(
        client,
        dir,
        &[
            "enroll",
            "--gateway",
            gateway,
            "--code",
            code,
            "--fingerprint",
            fingerprint,
            "--password-stdin",
        ],
    )
    .stdin(Stdio::piped())
    .spawn()
    .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let _ = writeln!(stdin, "{password}");
    drop(stdin);
    child.wait_with_output().unwrap()
}

/// Starts `sekisho-client tunnel pacs PORT --local 127.0.0.1:0` with its stderr to
/// `stderr`; returns it and the local address it forwards from (read from its first line).
pub fn client_tunnel(
    client: &str,
    dir: &std::path::Path,
    port: u16,
    stderr: Stdio,
) -> (std::process::Child, String) {
    let mut child = client_command(
        client,
        dir,
        &[
            "tunnel",
            "pacs",
            &port.to_string(),
            "--local",
            "127.0.0.1:0",
        ],
    )
    .stderr(stderr)
    .spawn()
    .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(child.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let local = line
        .strip_prefix("Forwarding ")
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_owned();
    (child, local)
}
