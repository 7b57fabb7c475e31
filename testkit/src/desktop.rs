//! Real remote desktops for tests: X servers (`Xvfb`), FreeRDP's shadow server as the
//! target (it shares an X display over RDP and checks NLA against a SAM file), and FreeRDP's
//! `xfreerdp` as the vendor's client, driven with `xdotool`.
//!
//! Each [`Display`] asks `Xvfb -displayfd` for a free display number, so parallel tests never
//! meet; each [`ShadowServer`] listens on a free loopback port. Both are killed when dropped.
//! Without the programs, tests skip with a loud message, except when `CI` is set: there it is
//! a failure (`.ci/run` installs them).

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const PROGRAMS: &[&str] = &[
    "Xvfb",
    "freerdp-shadow-cli",
    "xfreerdp",
    "winpr-hash",
    "xdotool",
    "xsetroot",
    "convert",
];

fn which(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|dir| dir.join(program).is_file()))
}

/// Whether the desktop programs are here; in CI their absence is a failure.
pub fn available() -> bool {
    let missing: Vec<_> = PROGRAMS.iter().filter(|p| !which(p)).collect();
    if missing.is_empty() {
        return true;
    }
    let why = format!("missing {missing:?}");
    if std::env::var_os("CI").is_some() {
        panic!(
            "cannot run the remote desktop tests in CI: {why} (.ci/run installs xvfb freerdp2-x11 freerdp2-shadow-x11 xdotool x11-xserver-utils winpr-utils imagemagick)"
        );
    }
    eprintln!("SKIPPING remote desktop tests: {why}");
    false
}

/// An `Xvfb` X server.
pub struct Display {
    pub number: u32,
    child: Child,
}

impl Display {
    /// Starts an X server of `width`x`height` at 24 bits on a free display number.
    ///
    /// The number is chosen here, not by `Xvfb -displayfd`: that option turns off X's lock
    /// files, and an `Xvfb` probing for a free number unlinks the socket file of a server that
    /// just started on it (seen with parallel tests: "failed to open display :0"). With an
    /// explicit number the lock file is taken atomically; an `Xvfb` that finds it taken exits and
    /// the next number is tried. The server is ready once a client can use it.
    pub fn start(width: u16, height: u16) -> Display {
        let first = 100 + std::process::id() % 400 * 20;
        for number in (first..first + 20).chain(600..1000) {
            let mut child = Command::new("Xvfb")
                .arg(format!(":{number}"))
                .args(["-screen", "0"])
                .arg(format!("{width}x{height}x24"))
                .args([
                    "-nolisten",
                    "tcp",
                    "+extension",
                    "DAMAGE",
                    "+extension",
                    "XFIXES",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start Xvfb");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if child.try_wait().ok().flatten().is_some() {
                    break; // the number is taken
                }
                let ready = Command::new("xdotool")
                    .arg("getdisplaygeometry")
                    .env("DISPLAY", format!(":{number}"))
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success());
                // Ours only if the lock file names our process (another test's server may
                // answer on this number while ours is still finding the lock taken).
                let owner = std::fs::read_to_string(format!("/tmp/.X{number}-lock"))
                    .ok()
                    .and_then(|pid| pid.trim().parse::<u32>().ok());
                if ready && owner == Some(child.id()) {
                    return Display { number, child };
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        panic!("no free X display number for Xvfb");
    }

    pub fn name(&self) -> String {
        format!(":{}", self.number)
    }

    /// A command run on this display.
    pub fn command(&self, program: &str) -> Command {
        let mut c = Command::new(program);
        c.env("DISPLAY", self.name());
        c
    }

    /// Runs `program args` on this display; panics with its stderr on failure.
    pub fn run(&self, program: &str, args: &[&str]) -> String {
        let out = self.command(program).args(args).output().expect(program);
        assert!(
            out.status.success(),
            "{program} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Paints the whole root window one colour (`xsetroot -solid`).
    pub fn paint(&self, colour: &str) {
        self.run("xsetroot", &["-solid", colour]);
    }

    /// The colour of a pixel of the screen, as (r, g, b).
    pub fn pixel(&self, x: u32, y: u32) -> (u8, u8, u8) {
        let out = self.run(
            "convert",
            &[
                "x:root",
                "-crop",
                &format!("1x1+{x}+{y}"),
                "-depth",
                "8",
                "txt:-",
            ],
        );
        parse_pixel(&out).unwrap_or_else(|| panic!("no pixel in {out:?}"))
    }

    /// Waits until the pixel at (x, y) satisfies `want`; returns how long it took.
    pub fn wait_pixel(
        &self,
        x: u32,
        y: u32,
        limit: Duration,
        want: impl Fn((u8, u8, u8)) -> bool,
    ) -> Result<Duration, (u8, u8, u8)> {
        let start = Instant::now();
        loop {
            let p = self.pixel(x, y);
            if want(p) {
                return Ok(start.elapsed());
            }
            if start.elapsed() > limit {
                return Err(p);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// `0,0: (65535,0,0)  #FF0000  red` or `0,0: (255,0,0) ...` → (255, 0, 0).
fn parse_pixel(txt: &str) -> Option<(u8, u8, u8)> {
    let line = txt.lines().find(|l| !l.starts_with('#'))?;
    let hex = line
        .split_whitespace()
        .find(|w| w.starts_with('#') && w.len() >= 7)?;
    let v = |i: usize| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok();
    Some((v(1)?, v(3)?, v(5)?))
}

impl Drop for Display {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The system account a TLS-only desktop ([`ShadowServer::start_tls`]) logs in: FreeRDP's
/// shadow server checks Client Info credentials with PAM.
pub const TLS_ACCOUNT: &str = "sekisho-desk";
pub const TLS_PASSWORD: &str = "Desk-Pass-456";

/// Creates [`TLS_ACCOUNT`] with [`TLS_PASSWORD`] (root only), once per process and under the
/// same lock as the SSH test accounts (`accounts::under_lock`).
fn ensure_tls_account() -> Result<(), String> {
    static DONE: std::sync::OnceLock<Result<(), String>> = std::sync::OnceLock::new();
    DONE.get_or_init(|| crate::accounts::under_lock(set_tls_account))
        .clone()
}

fn set_tls_account() -> Result<(), String> {
    let exists = || crate::accounts::exists(TLS_ACCOUNT);
    if !exists() {
        let out = Command::new("useradd")
            .args([
                "--no-create-home",
                "--shell",
                "/usr/sbin/nologin",
                TLS_ACCOUNT,
            ])
            .output()
            .map_err(|e| e.to_string())?;
        if !out.status.success() && !exists() {
            return Err(format!(
                "cannot create account {TLS_ACCOUNT} (root needed): {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    let mut child = Command::new("chpasswd")
        .stdin(Stdio::piped())
        .spawn()
        .map_err(|e| e.to_string())?;
    if let Some(mut stdin) = child.stdin.take() {
        use std::io::Write;
        writeln!(stdin, "{TLS_ACCOUNT}:{TLS_PASSWORD}").map_err(|e| e.to_string())?;
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("cannot set the password of {TLS_ACCOUNT}"));
    }
    Ok(())
}

/// How the shadow server checks who logs in.
enum Security<'a> {
    /// NLA against a SAM file with one account.
    Nla { user: &'a str, password: &'a str },
    /// TLS only: the Client Info credentials, checked with PAM ([`TLS_ACCOUNT`]).
    TlsPam,
}

/// FreeRDP's shadow server sharing a [`Display`], NLA checked against a SAM file with one
/// account, or TLS with the Client Info credentials checked by PAM.
pub struct ShadowServer {
    pub port: u16,
    pub display: Display,
    dir: tempfile::TempDir,
    child: Child,
}

impl ShadowServer {
    /// Shares a new 1024x768 display on a free loopback port; `user`/`password` is the one
    /// account NLA accepts.
    pub fn start(user: &str, password: &str) -> ShadowServer {
        Self::start_with(Security::Nla { user, password })
    }

    /// A TLS-only desktop (no NLA) that logs in [`TLS_ACCOUNT`] with the password in the
    /// Client Info; `None` (outside CI) when the account cannot be made here.
    pub fn start_tls() -> Option<ShadowServer> {
        if let Err(e) = ensure_tls_account() {
            if std::env::var_os("CI").is_some() {
                panic!("cannot make the TLS desktop's account in CI: {e}");
            }
            eprintln!("SKIPPING the TLS desktop test: {e}");
            return None;
        }
        Some(Self::start_with(Security::TlsPam))
    }

    fn start_with(security: Security<'_>) -> ShadowServer {
        let display = Display::start(1024, 768);
        let dir = tempfile::tempdir().expect("temp dir");
        let args: Vec<String> = match security {
            Security::Nla { user, password } => {
                let sam = dir.path().join("sam");
                let out = Command::new("winpr-hash")
                    .args(["-u", user, "-p", password, "-f", "sam"])
                    .output()
                    .expect("winpr-hash");
                assert!(out.status.success(), "winpr-hash failed");
                std::fs::write(&sam, &out.stdout).expect("write the SAM file");
                vec![
                    "/sec:nla".into(),
                    format!("/sam-file:{}", sam.display()),
                    "-auth".into(),
                ]
            }
            Security::TlsPam => vec!["/sec:tls".into(), "+auth".into()],
        };
        let log = dir.path().join("shadow.log");
        for _ in 0..5 {
            let port = crate::port::free_port();
            let mut child = display
                .command("freerdp-shadow-cli")
                .arg(format!("/port:{port}"))
                .arg("/bind-address:127.0.0.1")
                .args(&args)
                // Its own configuration directory: each server makes its own certificate.
                .env("HOME", dir.path())
                .env("XDG_CONFIG_HOME", dir.path().join("config"))
                .stdout(Stdio::null())
                .stderr(Stdio::from(std::fs::File::create(&log).expect("log")))
                .spawn()
                .expect("start freerdp-shadow-cli");
            if wait_listening(port, &mut child) {
                return ShadowServer {
                    port,
                    display,
                    dir,
                    child,
                };
            }
            // The port was taken meanwhile, or the server failed: try another.
            let _ = child.kill();
            let _ = child.wait();
            eprintln!(
                "freerdp-shadow-cli did not listen on {port}: {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        panic!("freerdp-shadow-cli did not start");
    }

    /// The log of the server (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("shadow.log")).unwrap_or_default()
    }
}

impl Drop for ShadowServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_listening(port: u16, child: &mut Child) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        if child.try_wait().ok().flatten().is_some() {
            return false;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_imagemagick_pixels() {
        assert_eq!(
            parse_pixel(
                "# ImageMagick pixel enumeration: 1,1,255,srgb\n0,0: (251,0,0)  #FB0000  srgb(251,0,0)\n"
            ),
            Some((251, 0, 0))
        );
    }
}
