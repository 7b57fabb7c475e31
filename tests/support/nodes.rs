//! Two gateway nodes on one PostgreSQL with one recordings directory: node A is the
//! [`World`]'s server (its API is `world.http`), node B joined with A's key export.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::gateway::{Pin, World, exited, ssh_options};
use super::{Env, Http, Server, bin, stderr, stdout};

/// The passphrase the group's key export is sealed under.
pub const PASSPHRASE: &str = "hospital group key export";

/// `sekisho node join EXPORT --passphrase-stdin` on `env`.
pub fn join(env: &Env, export: &std::path::Path) -> std::process::Output {
    env.cli(
        &[
            "node",
            "join",
            "--passphrase-stdin",
            export.to_str().unwrap(),
        ],
        &format!("{PASSPHRASE}\n"),
    )
}

/// How often the nodes heartbeat, and when a silent one is taken over.
pub const NODES: &str = "[nodes]\nheartbeat_seconds = 1\ndown_after_seconds = 4\n";

pub struct Group {
    pub world: World,
    pub db: sekisho_testkit::TestDb,
    pub recordings: tempfile::TempDir,
    pub env_b: Env,
    pub b: Server,
}

impl Group {
    /// Node A with the site (target, vendor, engineer), then node B joined. `None` outside CI
    /// when PostgreSQL or sshd cannot run here.
    pub async fn start() -> Option<Group> {
        let db = sekisho_testkit::postgres().await?;
        db.store.close().await;
        let recordings = tempfile::tempdir().unwrap();
        let env_a = Env::new(Some(&db.url));
        shared_config(&env_a, recordings.path(), "node-a");
        let world = World::with_env(env_a, Pin::Real).await?;
        let export = world.env.dir.path().join("group.json");
        let out = world.env.cli(
            &[
                "node",
                "export",
                "--passphrase-stdin",
                export.to_str().unwrap(),
            ],
            &format!("{PASSPHRASE}\n"),
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("sealed under the passphrase"),
            "{}",
            stdout(&out)
        );
        let env_b = Env::new(Some(&db.url));
        shared_config(&env_b, recordings.path(), "node-b");
        let out = join(&env_b, &export);
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(
            stdout(&out).contains("now holds the group's keys"),
            "{}",
            stdout(&out)
        );
        let b = env_b.serve();
        Some(Group {
            world,
            db,
            recordings,
            env_b,
            b,
        })
    }

    pub fn a(&self) -> &Http {
        &self.world.http
    }

    pub fn b_http(&self) -> Http {
        self.b.http()
    }

    pub fn b_ssh(&self) -> u16 {
        self.b.ssh_port().expect("node B's SSH port")
    }
}

/// The configuration every node of the group shares, and this node's name.
pub fn shared_config(env: &Env, recordings: &std::path::Path, name: &str) {
    env.configure(&format!(
        "[recordings]\ndir = \"{}\"\n{NODES}name = \"{name}\"\n",
        recordings.display()
    ));
}

/// `ssh -tt -p PORT alice+pacs@127.0.0.1 CMD` (a terminal, as a vendor at work has),
/// running.
pub fn ssh_via(w: &World, port: u16, command: &str) -> Child {
    Command::new("ssh")
        .arg("-tt")
        .arg("-p")
        .arg(port.to_string())
        .args(ssh_options(&w.alice_key))
        .arg("alice+pacs@127.0.0.1")
        .arg(command)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until a session runs on the target (it printed `ready`), returns it: the newest
/// live one (the previous session may not have its end stored yet).
pub async fn live(w: &World, child: &mut Child) -> Value {
    let mut out = child.stdout.take().unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !String::from_utf8_lossy(&seen).contains("ready") {
        assert!(Instant::now() < deadline, "the session never said ready");
        let mut buf = [0u8; 256];
        let n = std::io::Read::read(&mut out, &mut buf).unwrap();
        assert!(n > 0, "ssh ended before ready: {}", {
            let mut e = String::new();
            let _ = std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut e);
            e
        });
        seen.extend_from_slice(&buf[..n]);
    }
    w.wait_live().await
}

/// How long after `since` the vendor's `ssh` ended, and what it printed on stderr.
pub fn ended(child: Child, since: Instant) -> (Duration, String) {
    let limit = Duration::from_secs(15).saturating_sub(since.elapsed());
    let (out, _) = exited(child, limit);
    (since.elapsed(), stderr(&out))
}

/// `GET /api/v1/nodes`.
pub async fn nodes(http: &Http, token: &str) -> Vec<Value> {
    let (status, body) = http.get("/api/v1/nodes", token).await;
    assert_eq!(status, 200, "{body}");
    body.as_array().unwrap().clone()
}

/// `sekisho serve` expected to refuse to start: its output once it exited (bounded).
pub fn serve_to_the_end(env: &Env) -> std::process::Output {
    let child = Command::new(bin())
        .arg("--config")
        .arg(&env.config)
        .arg("serve")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    exited(child, Duration::from_secs(30)).0
}

/// Registers `n` vendors through `http` (each one audited transaction), named after `tag`.
pub async fn register_vendors(http: Http, token: String, tag: String, n: u64) {
    for i in 0..n {
        let (status, body) = http
            .post(
                "/api/v1/vendors",
                &token,
                serde_json::json!({"name": format!("Vendor {tag} {i}"), "contact": {"name": "Sato"}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
}

/// The ids of the at-rest keys in `env`'s key file, the sealing one first.
pub fn at_rest_kids(env: &Env) -> Vec<String> {
    std::fs::read_to_string(env.data_dir().join("keys/at-rest.key"))
        .unwrap()
        .lines()
        .map(|l| sekisho_store::crypto::key_id(&hex::decode(l).unwrap()))
        .collect()
}

/// A command through the gateway's SSH port `port` as alice, to pacs: it runs (the gateway
/// opened the sealed credential).
pub fn ssh_echoes(w: &World, port: u16) {
    let out = w
        .ssh_to(port, "alice+pacs", &["echo opened-$((6*7))"])
        .output()
        .unwrap();
    assert_eq!(
        stdout(&out).trim(),
        "opened-42",
        "{}\n{}",
        stderr(&out),
        w.log()
    );
}
