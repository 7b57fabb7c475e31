//! A private ClamAV `clamd` for upload-scanning tests: its own configuration, a signature
//! database written here (the network has no signature downloads) that knows the EICAR test
//! file as `Eicar-Test-Signature`, and a Unix socket in a temporary directory. Killed on drop
//! (and with the test process, through a parent-death signal).
//!
//! Where `clamd` is missing the tests that need it are skipped, except when `CI` is set:
//! there it is a failure (`.ci/run` installs clamav-daemon).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CLAMD: &str = "/usr/sbin/clamd";

/// The EICAR anti-virus test file (harmless by design; every scanner detects it).
pub const EICAR: &[u8] = br"X5O!P%@AP[4\PZX54(P^)7CC)7}$EICAR-STANDARD-ANTIVIRUS-TEST-FILE!$H+H*";

pub struct Clamd {
    dir: tempfile::TempDir,
    child: Option<Child>,
}

fn skip(why: &str) -> Option<Clamd> {
    if std::env::var_os("CI").is_some() {
        panic!("cannot run the test clamd in CI: {why} (.ci/run installs clamav-daemon)");
    }
    eprintln!("skipping: {why}");
    None
}

impl Clamd {
    /// Starts clamd and waits until it answers `PING`.
    pub fn start() -> Option<Clamd> {
        if !Path::new(CLAMD).exists() {
            return skip("no /usr/sbin/clamd (install clamav-daemon)");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let db = dir.path().join("db");
        std::fs::create_dir(&db).expect("db dir");
        let hex: String = EICAR.iter().map(|b| format!("{b:02x}")).collect();
        std::fs::write(
            db.join("sekisho-test.ndb"),
            format!("Eicar-Test-Signature:0:0:{hex}\n"),
        )
        .expect("signature database");
        let config = dir.path().join("clamd.conf");
        std::fs::write(
            &config,
            format!(
                "DatabaseDirectory {db}\n\
                 LocalSocket {dir}/clamd.sock\n\
                 Foreground yes\n\
                 LogFile {dir}/clamd.log\n\
                 StreamMaxLength 4000M\n\
                 MaxFileSize 4000M\n\
                 MaxScanSize 4000M\n\
                 SelfCheck 0\n",
                db = db.display(),
                dir = dir.path().display()
            ),
        )
        .expect("clamd.conf");
        let child = Command::new("setpriv")
            .args(["--pdeathsig=KILL", CLAMD, "-c"])
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => return skip(&format!("cannot start clamd: {e}")),
        };
        let mut clamd = Clamd {
            dir,
            child: Some(child),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if clamd.ping() {
                return Some(clamd);
            }
            if let Some(c) = clamd.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                panic!("clamd exited ({status}):\n{}", clamd.log());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("clamd did not answer within 60 s:\n{}", clamd.log());
    }

    /// The socket, as `[files] clamd` takes it.
    pub fn socket(&self) -> PathBuf {
        self.dir.path().join("clamd.sock")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("clamd.log")).unwrap_or_default()
    }

    fn ping(&self) -> bool {
        let Ok(mut s) = UnixStream::connect(self.socket()) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        if s.write_all(b"zPING\0").is_err() {
            return false;
        }
        let mut reply = [0u8; 16];
        matches!(s.read(&mut reply), Ok(n) if reply[..n].starts_with(b"PONG"))
    }

    /// Stops clamd (a scanner that is down).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Clamd {
    fn drop(&mut self) {
        self.stop();
    }
}
