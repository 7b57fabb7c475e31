//! A private, throwaway PostgreSQL cluster for tests.
//!
//! The first test that asks starts one cluster for the whole test process: `initdb` into a
//! temporary directory and `postgres` on a free 127.0.0.1 port, run as the `postgres` user
//! when we are root (PostgreSQL refuses to run as root). The server is started with a
//! parent-death signal, so it goes away with the test process; directories left by earlier
//! processes are removed on the next start. Each test gets its own database in it.
//!
//! When the server binaries are missing, tests skip PostgreSQL with a loud message, except
//! when `CI` is set: there a missing PostgreSQL fails the run, so CI never silently skips it.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::OnceCell;

struct Cluster {
    port: u16,
    _child: std::sync::Mutex<Child>,
}

static CLUSTER: OnceCell<Option<Cluster>> = OnceCell::const_new();
static NEXT_DB: AtomicU32 = AtomicU32::new(0);

/// The directory holding `initdb` and `postgres`: `$PG_BIN`, else the newest
/// `/usr/lib/postgresql/*/bin`, else whatever is on `PATH`.
pub fn bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN") {
        return Some(PathBuf::from(dir));
    }
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").exists() && p.join("postgres").exists())
        .collect();
    versions.sort();
    if let Some(dir) = versions.pop() {
        return Some(dir);
    }
    let on_path = Command::new("initdb").arg("--version").output().is_ok();
    on_path.then(PathBuf::new)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// `cmd` run as the `postgres` user when we are root, dying with this process.
fn command(bin: &Path, root: bool) -> Command {
    let mut c = if root {
        let mut c = Command::new("setpriv");
        c.args([
            "--reuid=postgres",
            "--regid=postgres",
            "--init-groups",
            "--pdeathsig=KILL",
        ])
        .arg(bin);
        c
    } else {
        Command::new(bin)
    };
    c.stdin(Stdio::null());
    c
}

/// Removes cluster directories of test processes that no longer exist.
fn remove_stale(base: &Path) {
    for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("sekisho-pg-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn start() -> Option<Cluster> {
    let Some(bin) = bin_dir() else {
        if std::env::var_os("CI").is_some() {
            panic!(
                "PostgreSQL server binaries not found and CI is set: install postgresql (see .ci/run) or set PG_BIN"
            );
        }
        eprintln!(
            "SKIPPING PostgreSQL tests: no initdb/postgres found (set PG_BIN, or install postgresql)"
        );
        return None;
    };
    let root = is_root();
    let base = std::env::temp_dir();
    remove_stale(&base);
    let dir = base.join(format!("sekisho-pg-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create cluster dir");
    let data = dir.join("data");
    if root {
        let ok = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .expect("chown")
            .success();
        assert!(ok, "chown of {} to postgres failed", dir.display());
    }
    let out = command(&bin.join("initdb"), root)
        .args(["-D"])
        .arg(&data)
        .args([
            "-U",
            "sekisho",
            "--auth=trust",
            "--no-sync",
            "-E",
            "UTF8",
            "--locale=C",
        ])
        .output()
        .expect("run initdb");
    assert!(
        out.status.success(),
        "initdb failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let port = crate::port::free_port();
    let log = std::fs::File::create(dir.join("postgres.log")).expect("log file");
    let mut cmd = command(&bin.join("postgres"), root);
    cmd.arg("-D")
        .arg(&data)
        .args([
            "-p",
            &port.to_string(),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            "fsync=off",
        ])
        .arg("-k")
        .arg(&dir)
        .stdout(Stdio::null())
        .stderr(log);
    // The parent-death signal fires when the *thread* that spawned the server exits, so spawn
    // it from a thread that lives as long as the test process.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let child = cmd.spawn();
        let started = child.is_ok();
        let _ = tx.send(child);
        if started {
            loop {
                std::thread::park();
            }
        }
    });
    let child = rx.recv().expect("keeper thread").expect("start postgres");
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "postgres did not start; see {}",
            dir.join("postgres.log").display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Accepting TCP is not yet accepting queries; the first connection retries below.
    Some(Cluster {
        port,
        _child: std::sync::Mutex::new(child),
    })
}

/// A URL of a new, empty database in the shared cluster.
pub async fn fresh_database_url() -> Option<String> {
    let cluster = CLUSTER
        .get_or_init(|| async {
            tokio::task::spawn_blocking(start)
                .await
                .expect("start cluster")
        })
        .await
        .as_ref()?;
    let name = format!(
        "t{}_{}",
        std::process::id(),
        NEXT_DB.fetch_add(1, Ordering::Relaxed)
    );
    let admin = format!("postgres://sekisho@127.0.0.1:{}/postgres", cluster.port);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match create_database(&admin, &name).await {
            Ok(()) => break,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => panic!("cannot create test database: {e}"),
        }
    }
    Some(format!(
        "postgres://sekisho@127.0.0.1:{}/{name}",
        cluster.port
    ))
}

async fn create_database(admin_url: &str, name: &str) -> Result<(), sqlx::Error> {
    use sqlx::{Connection, Executor};
    sqlx::any::install_default_drivers();
    let mut conn = sqlx::AnyConnection::connect(admin_url).await?;
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await?;
    conn.close().await
}
