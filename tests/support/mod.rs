//! Builders shared by the end-to-end tests: a real `sekisho` process on 127.0.0.1 with its
//! own data dir, and helpers to run the CLI against the same configuration.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub mod gateway;
pub mod nodes;

use serde_json::{Value, json};

/// The `sekisho` binary `cargo test` built: known to this package's tests by
/// `CARGO_BIN_EXE_sekisho`; other packages' tests (the client's) find it beside their own
/// test executable's build directory, which `cargo test --workspace` fills first.
pub fn bin() -> PathBuf {
    if let Some(b) = option_env!("CARGO_BIN_EXE_sekisho") {
        return PathBuf::from(b);
    }
    let exe = std::env::current_exe().unwrap();
    let path = exe.parent().unwrap().parent().unwrap().join("sekisho");
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build --bin sekisho` first)",
        path.display()
    );
    path
}

/// A data dir and configuration file for one test.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
}

impl Env {
    /// A config with every listener on a free loopback port and data in a temp dir.
    /// `database_url` of `None` uses the embedded SQLite default.
    pub fn new(database_url: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("sekisho.toml");
        let db = database_url.map_or(String::new(), |u| format!("url = \"{u}\"\n"));
        std::fs::write(
            &config,
            format!(
                "data_dir = \"{data}\"\n\
                 [database]\n{db}\
                 [api]\nlisten = \"127.0.0.1:0\"\n\
                 [ssh]\nlisten = \"127.0.0.1:0\"\n\
                 [quic]\nlisten = \"127.0.0.1:0\"\n\
                 [server]\nshutdown_grace_seconds = 3\n\
                 [log]\nlevel = \"info\"\n",
                data = dir.path().join("data").display()
            ),
        )
        .unwrap();
        Self { dir, config }
    }

    /// Like [`Env::new`] with the data dir at `data` (e.g. on a small filesystem).
    pub fn with_data_dir(data: &Path) -> Self {
        let env = Self::new(None);
        let text = std::fs::read_to_string(&env.config).unwrap();
        let text = text.replacen(
            &format!("data_dir = \"{}\"", env.data_dir().display()),
            &format!("data_dir = \"{}\"", data.display()),
            1,
        );
        std::fs::write(&env.config, text).unwrap();
        env
    }

    /// Sets `key = value` (TOML) in `[section]`, which the configuration already has.
    pub fn set(&self, section: &str, key: &str, value: &str) {
        let text = std::fs::read_to_string(&self.config).unwrap();
        let header = format!("[{section}]\n");
        assert!(text.contains(&header), "no [{section}] in the test config");
        let text = text.replacen(&header, &format!("{header}{key} = {value}\n"), 1);
        std::fs::write(&self.config, text).unwrap();
    }

    /// Appends TOML to the configuration (sections not already in it).
    pub fn configure(&self, toml: &str) {
        let mut text = std::fs::read_to_string(&self.config).unwrap();
        text.push_str(toml);
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn data_dir(&self) -> PathBuf {
        let text = std::fs::read_to_string(&self.config).unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("data_dir = \""))
            .and_then(|l| l.strip_suffix('"'))
            .map_or_else(|| self.dir.path().join("data"), PathBuf::from)
    }

    /// The initial admin's password (written at first start).
    pub fn admin_password(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("initial-admin-password"))
            .unwrap()
            .trim()
            .to_owned()
    }

    /// Runs `sekisho --config FILE ARGS...` to completion, feeding `stdin`.
    pub fn cli(&self, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new(bin())
            .arg("--config")
            .arg(&self.config)
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(stdin.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }

    /// Starts `sekisho serve` and waits until it prints its address.
    pub fn serve(&self) -> Server {
        Server::start(&self.config, &[])
    }

    /// [`Env::serve`] run through `wrapper` (a program and its arguments that runs the
    /// command after it, e.g. `prlimit --nofile=1024:8192 --`).
    pub fn serve_under(&self, wrapper: &[&str]) -> Server {
        Server::start(&self.config, wrapper)
    }
}

/// A running `sekisho serve`; stopped with SIGTERM when dropped.
pub struct Server {
    pub child: Child,
    pub api: SocketAddr,
    /// `https` (the default) or `http`.
    pub scheme: String,
    /// The self-signed HTTPS certificate the server made, to trust.
    pub certificate: Option<PathBuf>,
    /// What it printed before it was ready.
    pub banner: Vec<String>,
}

/// A client that trusts `certificate` (the server's self-signed one), connecting from
/// `source` when given.
pub fn client_trusting(
    certificate: Option<&Path>,
    source: Option<std::net::IpAddr>,
) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only(
            certificate
                .map(|c| reqwest::Certificate::from_pem(&std::fs::read(c).unwrap()).unwrap()),
        )
        // The server closes a connection idle for `[api] header_read_timeout_seconds` (30 s);
        // a test that waits longer must not reuse one it is closing.
        .pool_idle_timeout(std::time::Duration::from_secs(10));
    if let Some(ip) = source {
        builder = builder.local_address(ip);
    }
    builder.build().unwrap()
}

/// The self-signed certificate in `data_dir`, when the server made one.
pub fn self_signed_certificate(data_dir: &Path) -> Option<PathBuf> {
    let path = data_dir.join("keys").join("api-tls.crt");
    path.exists().then_some(path)
}

impl Server {
    fn start(config: &Path, wrapper: &[&str]) -> Self {
        // The server's log goes to a file beside the config, shown if start-up fails.
        let log_path = config.with_file_name("serve.log");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log_path)
            .unwrap();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(bin());
                c
            }
            None => Command::new(bin()),
        };
        let mut child = command
            .arg("--config")
            .arg(config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut banner = vec![];
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    let done = line.starts_with("Stop with Ctrl-C");
                    banner.push(line);
                    if done {
                        break;
                    }
                }
                Err(_) => {
                    let _ = child.kill();
                    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
                    panic!("sekisho serve did not become ready; printed: {banner:#?}\nlog:\n{log}");
                }
            }
        }
        let (scheme, api) = banner
            .iter()
            .find_map(|l| l.trim().strip_prefix("API and health: "))
            .and_then(|rest| rest.strip_suffix("/healthz"))
            .and_then(|url| url.split_once("://"))
            .expect("API address in banner");
        let (scheme, api) = (scheme.to_owned(), api.parse().unwrap());
        let certificate = banner.iter().find_map(|l| {
            l.trim()
                .strip_prefix("HTTPS certificate (self-signed, ")
                .and_then(|rest| rest.split_once("): "))
                .map(|(file, _)| PathBuf::from(file))
        });
        Self {
            child,
            api,
            scheme,
            certificate,
            banner,
        }
    }

    /// What the start banner printed after `label`.
    fn banner_value(&self, label: &str) -> Option<&str> {
        self.banner
            .iter()
            .find_map(|l| l.trim().strip_prefix(label))
            .map(str::trim)
    }

    /// The metrics URL the banner shows; `None` without `[metrics] listen`.
    pub fn metrics_url(&self) -> Option<String> {
        self.banner_value("Metrics:")
            .filter(|v| v.starts_with("http://"))
            .map(ToOwned::to_owned)
    }

    /// The SSH port the banner shows; `None` when `[ssh] enabled = false`.
    pub fn ssh_port(&self) -> Option<u16> {
        self.banner_value("SSH gateway:   ssh -p ")?
            .split_whitespace()
            .next()?
            .parse()
            .ok()
    }

    /// The SSH host key fingerprint the banner shows.
    pub fn ssh_host_key(&self) -> Option<&str> {
        self.banner_value("SSH host key:")
    }

    pub fn base(&self) -> String {
        format!("{}://{}", self.scheme, self.api)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base())
    }

    /// A client that trusts this server's certificate.
    pub fn client(&self) -> reqwest::Client {
        client_trusting(self.certificate.as_deref(), None)
    }

    /// The JSON client for this server.
    pub fn http(&self) -> Http {
        Http {
            base: self.base(),
            client: self.client(),
        }
    }

    /// Sends SIGTERM and waits for the exit status (bounded).
    pub fn terminate(mut self) -> std::process::ExitStatus {
        signal(&self.child, "TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "sekisho did not stop after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .unwrap()
        .success();
    assert!(ok, "kill -{sig} failed");
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A JSON client for the API.
#[derive(Clone)]
pub struct Http {
    pub base: String,
    pub client: reqwest::Client,
}

impl Http {
    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.client.request(method, format!("{}{path}", self.base));
        if let Some(t) = token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    pub async fn login(&self, username: &str, password: &str) -> String {
        let (status, body) = self
            .send(
                reqwest::Method::POST,
                "/api/v1/auth/login",
                None,
                Some(json!({"username": username, "password": password})),
            )
            .await;
        assert_eq!(status, 200, "login {username}: {body}");
        body["token"].as_str().unwrap().to_owned()
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> (u16, Value) {
        self.send(reqwest::Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn get(&self, path: &str, token: &str) -> (u16, Value) {
        self.send(reqwest::Method::GET, path, Some(token), None)
            .await
    }

    /// A console page (or picture) as a browser logged in with `token` gets it, in `lang`
    /// (`en`, `ja`) or the default: the status and the body.
    pub async fn console(&self, path: &str, token: &str, lang: Option<&str>) -> (u16, Vec<u8>) {
        let mut cookie = format!("sekisho_token={token}");
        if let Some(lang) = lang {
            cookie.push_str(&format!("; sekisho_lang={lang}"));
        }
        let response = self
            .client
            .get(format!("{}{path}", self.base))
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        (status, response.bytes().await.unwrap().to_vec())
    }
}

/// CPU seconds (user + system) `pid` has used so far (benchmarks).
pub fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which is in parentheses and may contain spaces).
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields[11].parse::<f64>().unwrap() + fields[12].parse::<f64>().unwrap();
    let hz = Command::new("getconf").arg("CLK_TCK").output().unwrap();
    ticks
        / String::from_utf8_lossy(&hz.stdout)
            .trim()
            .parse::<f64>()
            .unwrap()
}

/// Resident memory of `pid` in MiB (benchmarks).
pub fn rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap();
    kib / 1024.0
}

/// `len` bytes that do not compress (xorshift: cheap and reproducible), for benchmarks.
pub fn incompressible(len: usize) -> Vec<u8> {
    let mut block = vec![0u8; len];
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for b in block.chunks_mut(8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b.copy_from_slice(&x.to_le_bytes()[..b.len()]);
    }
    block
}

/// The `p` quantile (0–1) of `sorted` durations, nearest rank.
pub fn percentile(sorted: &[std::time::Duration], p: f64) -> std::time::Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

/// A benchmark's `--name N` argument, or `default` when absent.
pub fn bench_arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map_or(default, |v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} wants a number, not {v:?}"))
        })
}

/// A directory every target account may write to (mode 1777), removed when dropped.
pub struct SharedDir(pub PathBuf);

impl SharedDir {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("sekisho-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir(&dir).unwrap();
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o1777))
            .unwrap();
        Self(dir)
    }

    /// The path of `name` in it, as a string for a command line.
    pub fn path(&self, name: &str) -> String {
        self.0.join(name).display().to_string()
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// An executable shell script with `body` (after `#!/bin/sh`), in a directory that lives as
/// long as the returned guard.
pub fn script(body: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("script");
    std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    (dir, path)
}
