//! A real NTP server for clock tests: `chronyd` serving its own clock on a loopback UDP port
//! (`local stratum 8`, never touching the system clock: `-x`), optionally under `faketime`
//! so that it serves a wrong time (a clock an hour off). Killed on drop (and with the test
//! process, through a parent-death signal).
//!
//! Where chronyd or faketime is missing the tests that need them are skipped, except when
//! `CI` is set: there it is a failure (`.ci/run` installs chrony and faketime).

use std::net::UdpSocket;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const CHRONYD: &str = "/usr/sbin/chronyd";

pub struct Chronyd {
    _dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
}

fn skip(why: &str) -> Option<Chronyd> {
    if std::env::var_os("CI").is_some() {
        panic!(
            "cannot run the test NTP server in CI: {why} (.ci/run installs chrony and faketime)"
        );
    }
    eprintln!("skipping: {why}");
    None
}

/// Whether an SNTP request to 127.0.0.1:`port` is answered.
fn answers(port: u16) -> bool {
    let Ok(s) = UdpSocket::bind("127.0.0.1:0") else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(300)));
    let mut request = [0u8; 48];
    request[0] = 0x23; // version 4, client
    if s.send_to(&request, ("127.0.0.1", port)).is_err() {
        return false;
    }
    let mut reply = [0u8; 48];
    matches!(s.recv(&mut reply), Ok(48))
}

impl Chronyd {
    /// Starts chronyd; with `skew` (libfaketime's `FAKETIME` form, e.g. `"-1h"`) it serves a
    /// clock that far off.
    pub fn start(skew: Option<&str>) -> Option<Chronyd> {
        if !Path::new(CHRONYD).exists() {
            return skip("no /usr/sbin/chronyd (install chrony)");
        }
        if skew.is_some() && !Path::new("/usr/bin/faketime").exists() {
            return skip("no /usr/bin/faketime (install faketime)");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        for _ in 0..5 {
            let port = UdpSocket::bind("127.0.0.1:0")
                .and_then(|s| s.local_addr())
                .map(|a| a.port())
                .expect("free udp port");
            let conf = dir.path().join("chrony.conf");
            std::fs::write(
                &conf,
                format!(
                    "port {port}\nbindaddress 127.0.0.1\nlocal stratum 8\nallow 127.0.0.1\n\
                     cmdport 0\npidfile {d}/chronyd.pid\ndriftfile {d}/drift\n",
                    d = dir.path().display()
                ),
            )
            .expect("chrony.conf");
            let mut cmd = Command::new("setpriv");
            // chronyd itself, not under the `faketime` wrapper (which forks it and would
            // leave it running when killed): the library is preloaded into chronyd directly.
            if let Some(skew) = skew {
                cmd.env("LD_PRELOAD", "/usr/$LIB/faketime/libfaketime.so.1")
                    .env("FAKETIME", skew);
            }
            // `-u root`: no change of user, which would clear the parent-death signal.
            let child = cmd
                .args(["--pdeathsig=KILL", CHRONYD, "-d", "-x", "-u", "root", "-f"])
                .arg(&conf)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn();
            let mut child = match child {
                Ok(c) => c,
                Err(e) => return skip(&format!("cannot start chronyd: {e}")),
            };
            let deadline = Instant::now() + Duration::from_secs(20);
            while Instant::now() < deadline {
                if answers(port) {
                    return Some(Chronyd {
                        _dir: dir,
                        child: Some(child),
                        port,
                    });
                }
                if let Ok(Some(_)) = child.try_wait() {
                    break; // the port was taken: try another
                }
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        panic!("chronyd did not start");
    }

    /// `127.0.0.1:PORT`, as `[time] ntp_servers` takes it.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for Chronyd {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
