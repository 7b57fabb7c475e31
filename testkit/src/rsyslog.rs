//! A real `rsyslogd` for the SIEM stream's tests: its own configuration and work directory in
//! a temporary directory, listening with `imtcp` on a loopback port, plain or with TLS
//! (GnuTLS driver, a certificate from [`crate::tls`]), writing each message it receives as it
//! received it (`%rawmsg%`) to a file, one per line. It can be stopped and started again on
//! the same port (a collector that goes away). Killed on drop (and with the test process,
//! through a parent-death signal).
//!
//! Where rsyslogd is missing the tests that need it are skipped, except when `CI` is set:
//! there it is a failure (`.ci/run` installs rsyslog and rsyslog-gnutls).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const RSYSLOGD: &str = "/usr/sbin/rsyslogd";

pub struct Rsyslog {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
    tls: bool,
}

fn skip(why: &str) -> Option<Rsyslog> {
    if std::env::var_os("CI").is_some() {
        panic!(
            "cannot run the test rsyslogd in CI: {why} (.ci/run installs rsyslog and rsyslog-gnutls)"
        );
    }
    eprintln!("skipping: {why}");
    None
}

impl Rsyslog {
    /// Starts rsyslogd on a free port; with `tls`, the connection is TLS with a certificate
    /// for 127.0.0.1 signed by [`Rsyslog::ca`].
    pub fn start(tls: bool) -> Option<Rsyslog> {
        if !Path::new(RSYSLOGD).exists() {
            return skip("no /usr/sbin/rsyslogd (install rsyslog)");
        }
        if tls
            && !Path::new("/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so").exists()
            && !Path::new("/usr/lib/rsyslog/lmnsd_gtls.so").exists()
        {
            return skip("no GnuTLS driver for rsyslog (install rsyslog-gnutls)");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        if tls {
            crate::tls::certificate(dir.path());
        }
        let mut r = Rsyslog {
            dir,
            child: None,
            port: 0,
            tls,
        };
        for _ in 0..5 {
            r.port = crate::port::free_port();
            if r.launch() {
                return Some(r);
            }
        }
        panic!("rsyslogd did not start");
    }

    fn conf(&self) -> String {
        let d = self.dir.path().display();
        let (global, module) = if self.tls {
            (
                format!(
                    "global(workDirectory=\"{d}/work\" defaultNetstreamDriverCAFile=\"{d}/ca.pem\" \
                     defaultNetstreamDriverCertFile=\"{d}/cert.pem\" defaultNetstreamDriverKeyFile=\"{d}/key.pem\")\n"
                ),
                "module(load=\"imtcp\" StreamDriver.Name=\"gtls\" StreamDriver.Mode=\"1\" StreamDriver.AuthMode=\"anon\")\n",
            )
        } else {
            (
                format!("global(workDirectory=\"{d}/work\")\n"),
                "module(load=\"imtcp\")\n",
            )
        };
        format!(
            "{global}{module}\
             input(type=\"imtcp\" port=\"{port}\" address=\"127.0.0.1\")\n\
             template(name=\"raw\" type=\"string\" string=\"%rawmsg%\\n\")\n\
             action(type=\"omfile\" file=\"{d}/received.log\" template=\"raw\" asyncWriting=\"off\" flushOnTXEnd=\"on\")\n",
            port = self.port
        )
    }

    /// Starts the daemon on `self.port`; whether it listens.
    fn launch(&mut self) -> bool {
        let work = self.dir.path().join("work");
        std::fs::create_dir_all(&work).expect("work dir");
        let conf = self.dir.path().join("rsyslog.conf");
        std::fs::write(&conf, self.conf()).expect("rsyslog.conf");
        let child = Command::new("setpriv")
            .args(["--pdeathsig=KILL", RSYSLOGD, "-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(self.dir.path().join("rsyslogd.pid"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(self.dir.path().join("rsyslogd.err")).expect("log file"),
            ))
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => panic!("cannot start rsyslogd: {e}"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                self.child = Some(child);
                return true;
            }
            if let Ok(Some(_)) = child.try_wait() {
                return false; // the port was taken: try another
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        let _ = child.wait();
        false
    }

    /// `127.0.0.1:PORT`, as `[syslog] address` takes it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// The CA that signed the TLS certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// Every message received so far, in order.
    pub fn messages(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.path().join("received.log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// Stops the daemon (SIGTERM, so that it writes what it received).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill").arg(c.id().to_string()).status();
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) {
        self.stop();
        assert!(
            self.launch(),
            "rsyslogd did not start again on port {}",
            self.port
        );
    }

    /// What rsyslogd said on stderr (for a failing test's message).
    pub fn errors(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("rsyslogd.err")).unwrap_or_default()
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
