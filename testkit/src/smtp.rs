//! A real SMTP server for notification tests: Python's `aiosmtpd` (Debian's
//! python3-aiosmtpd), started by the test on a loopback port. It can require STARTTLS (with a
//! certificate made here by `openssl` for 127.0.0.1) and a login, and it writes each message
//! it accepts, decoded by Python's `email` package, as one JSON line that the test reads.
//! Killed on drop (and with the test process, through a parent-death signal).
//!
//! Where aiosmtpd is missing the tests that need it are skipped, except when `CI` is set:
//! there it is a failure (`.ci/run` installs python3-aiosmtpd).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// Debian's interpreter, which the python3-aiosmtpd package installs into (not one a
/// version manager put first on PATH).
const PYTHON: &str = "/usr/bin/python3";

const SERVER: &str = r#"
import email, email.policy, json, ssl, sys
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
port, out, cert, key, user, password = sys.argv[1:7]
class Handler:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        part = msg.get_body(preferencelist=("plain",))
        record = {
            "from": envelope.mail_from,
            "to": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "message_id": str(msg["message-id"]),
            "body": part.get_content() if part is not None else "",
            "tls": session.ssl is not None,
            "authenticated": bool(getattr(session, "authenticated", False)),
        }
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
        return "250 OK"
def check(server, session, envelope, mechanism, data):
    ok = isinstance(data, LoginPassword) and data.login == user.encode() and data.password == password.encode()
    return AuthResult(success=ok)
kwargs = {"hostname": "127.0.0.1", "port": int(port)}
if cert:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    kwargs.update(tls_context=ctx, require_starttls=True)
if user:
    kwargs.update(authenticator=check, auth_require_tls=bool(cert))
controller = Controller(Handler(), **kwargs)
controller.start()
print("READY", flush=True)
sys.stdin.read()
controller.stop()
"#;

/// What the server asks of its clients.
#[derive(Clone, Debug, Default)]
pub struct SmtpOptions {
    /// STARTTLS required, with a certificate for 127.0.0.1 (its CA file is [`Smtp::ca`]).
    pub starttls: bool,
    /// A login required (user, password).
    pub login: Option<(String, String)>,
}

pub struct Smtp {
    dir: tempfile::TempDir,
    child: Option<Child>,
    pub port: u16,
}

fn skip(why: &str) -> Option<Smtp> {
    if std::env::var_os("CI").is_some() {
        panic!("cannot run the test SMTP server in CI: {why} (.ci/run installs python3-aiosmtpd)");
    }
    eprintln!("skipping: {why}");
    None
}

impl Smtp {
    /// Starts the server and waits until it listens.
    pub fn start(options: SmtpOptions) -> Option<Smtp> {
        let available = Command::new(PYTHON)
            .args(["-c", "import aiosmtpd"])
            .stderr(Stdio::null())
            .status();
        if !available.is_ok_and(|s| s.success()) {
            return skip("python3 with aiosmtpd is missing (install python3-aiosmtpd)");
        }
        let dir = tempfile::tempdir().expect("temp dir");
        let (cert, key) = if options.starttls {
            crate::tls::certificate(dir.path())
        } else {
            (String::new(), String::new())
        };
        let (user, password) = options.login.clone().unwrap_or_default();
        let out = dir.path().join("messages.jsonl");
        // A port taken between choosing and binding: try another.
        for _ in 0..5 {
            let port = crate::port::free_port();
            let mut child = Command::new("setpriv")
                .args(["--pdeathsig=KILL", PYTHON, "-c", SERVER])
                .arg(port.to_string())
                .arg(&out)
                .args([&cert, &key, &user, &password])
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn()
                .expect("python3");
            let stdout = child.stdout.take().expect("stdout");
            let mut line = String::new();
            let deadline = Instant::now() + Duration::from_secs(30);
            let ready =
                BufReader::new(stdout).read_line(&mut line).is_ok() && line.trim() == "READY";
            if ready {
                return Some(Smtp {
                    dir,
                    child: Some(child),
                    port,
                });
            }
            let _ = child.kill();
            let _ = child.wait();
            assert!(Instant::now() < deadline, "the SMTP server did not start");
        }
        panic!("the SMTP server did not start on any port");
    }

    /// The CA file that signed the server's certificate.
    pub fn ca(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// The messages accepted so far, oldest first.
    pub fn messages(&self) -> Vec<Value> {
        std::fs::read_to_string(self.dir.path().join("messages.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Waits (up to `within`) until at least `n` messages arrived; returns them.
    pub fn wait_for(&self, n: usize, within: Duration) -> Vec<Value> {
        let deadline = Instant::now() + within;
        loop {
            let got = self.messages();
            if got.len() >= n || Instant::now() >= deadline {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Smtp {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
