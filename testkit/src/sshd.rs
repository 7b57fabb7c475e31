//! A private OpenSSH `sshd` on 127.0.0.1 for tests: the stand-in for a hospital system
//! ("target") behind the gateway. Issues #5 and #6 relay to it.
//!
//! Each [`Sshd`] has its own temp dir holding its config, a fresh Ed25519 host key, a pid file
//! and one `authorized_keys` file per account (`AuthorizedKeysFile DIR/authorized/%u`), and
//! listens on a free loopback port. The accounts it logs into are real Unix users
//! ([`REFERENCE_ACCOUNT`], [`CHANGE_ACCOUNT`]), created when missing if we are root. Like the
//! test PostgreSQL, it is started with a parent-death signal from a thread that lives as long
//! as the test process, and killed when dropped.
//!
//! Without `sshd` (or without root to create the accounts) tests skip with a loud message,
//! except when `CI` is set: there it is a failure.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The read-only maintenance account of the test target.
pub const REFERENCE_ACCOUNT: &str = "sekisho-ro";
/// The account with change rights on the test target.
pub const CHANGE_ACCOUNT: &str = "sekisho-rw";

const SSHD: &str = "/usr/sbin/sshd";

pub struct Sshd {
    pub port: u16,
    /// The host key as an OpenSSH public key line (`ssh-ed25519 AAAA...`).
    pub host_key: String,
    pub dir: tempfile::TempDir,
    child: Child,
}

fn skip(why: &str) -> Option<Sshd> {
    if std::env::var_os("CI").is_some() {
        panic!("cannot run the test sshd in CI: {why} (.ci/run installs openssh-server)");
    }
    eprintln!("SKIPPING sshd tests: {why}");
    None
}

fn run(cmd: &mut Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| format!("{cmd:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!("{cmd:?}: {}", String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Creates the test accounts if missing (root only), once per test process. Returns why not,
/// on failure.
///
/// Tests of one binary run in parallel threads and `cargo test` runs binaries one after
/// another, but two test processes (or a developer's second `cargo test`) may still meet:
/// the work is done once per process ([`OnceLock`]) under an exclusive lock on a file that
/// every process shares, and an account another process created in between is accepted.
pub fn ensure_accounts() -> Result<(), String> {
    static DONE: OnceLock<Result<(), String>> = OnceLock::new();
    DONE.get_or_init(create_accounts).clone()
}

fn create_accounts() -> Result<(), String> {
    crate::accounts::under_lock(create_accounts_locked)
}

fn create_accounts_locked() -> Result<(), String> {
    for account in [REFERENCE_ACCOUNT, CHANGE_ACCOUNT] {
        if !crate::accounts::exists(account) {
            let created =
                run(Command::new("useradd").args(["--create-home", "--shell", "/bin/sh", account]));
            // Another process that does not take our lock (an older test binary) may have won.
            if let Err(e) = created
                && !crate::accounts::exists(account)
            {
                return Err(format!(
                    "cannot create account {account} (root needed): {e}"
                ));
            }
        }
        // A new account's password field is `!` (locked), which sshd refuses without PAM;
        // `*` means "no password" but not locked: key login only. Set every time: an account
        // another process has just created may not have it yet.
        run(Command::new("usermod").args(["-p", "*", account]))
            .map_err(|e| format!("cannot unlock account {account}: {e}"))?;
    }
    Ok(())
}

/// A fresh Ed25519 key pair from `ssh-keygen`: (private key path, public key line).
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(name);
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&path))
    .expect("ssh-keygen");
    let public = std::fs::read_to_string(path.with_extension("pub")).expect("public key");
    (path, public.trim().to_owned())
}

impl Sshd {
    /// Starts a private sshd, or `None` (outside CI) when it cannot run here.
    pub fn start() -> Option<Sshd> {
        if !Path::new(SSHD).exists() {
            return skip("no /usr/sbin/sshd (install openssh-server)");
        }
        if let Err(e) = ensure_accounts() {
            return skip(&e);
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let (host_key_path, host_key) = keygen(dir.path(), "host_ed25519");
        std::fs::create_dir_all(dir.path().join("authorized")).expect("authorized dir");
        // sshd's privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = crate::port::free_port();
        let config = dir.path().join("sshd_config");
        std::fs::write(
            &config,
            format!(
                "ListenAddress 127.0.0.1:{port}\n\
                 HostKey {host}\n\
                 PidFile {dir}/sshd.pid\n\
                 AuthorizedKeysFile {dir}/authorized/%u\n\
                 StrictModes no\n\
                 UsePAM no\n\
                 PasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\n\
                 PubkeyAuthentication yes\n\
                 PermitRootLogin no\n\
                 AllowUsers {REFERENCE_ACCOUNT} {CHANGE_ACCOUNT}\n\
                 AllowTcpForwarding yes\n\
                 AcceptEnv LANG LC_* SEKISHO_*\n\
                 Subsystem sftp internal-sftp\n\
                 LogLevel VERBOSE\n",
                host = host_key_path.display(),
                dir = dir.path().display()
            ),
        )
        .expect("write sshd_config");
        let log = std::fs::File::create(dir.path().join("sshd.log")).expect("log file");
        let mut cmd = Command::new("setpriv");
        cmd.args(["--pdeathsig=KILL", SSHD, "-D", "-e", "-f"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log);
        // The parent-death signal follows the spawning *thread*: use one that never ends.
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let child = cmd.spawn();
            let ok = child.is_ok();
            let _ = tx.send(child);
            if ok {
                loop {
                    std::thread::park();
                }
            }
        });
        let child = rx.recv().expect("keeper thread").expect("start sshd");
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "sshd did not start: {}",
                std::fs::read_to_string(dir.path().join("sshd.log")).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(Sshd {
            port,
            host_key,
            dir,
            child,
        })
    }

    /// Lets `public_key` (an OpenSSH public key line) log in as `account`.
    pub fn authorize(&self, account: &str, public_key: &str) {
        let path = self.dir.path().join("authorized").join(account);
        let mut keys = std::fs::read_to_string(&path).unwrap_or_default();
        keys.push_str(public_key.trim());
        keys.push('\n');
        std::fs::write(&path, keys).expect("write authorized keys");
    }

    /// A `known_hosts` line pinning this server's host key.
    pub fn known_hosts_line(&self) -> String {
        format!("[127.0.0.1]:{} {}", self.port, self.host_key)
    }

    /// What sshd logged so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
