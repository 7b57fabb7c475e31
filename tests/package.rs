//! Issue #19, the Debian package and its service: `cargo deb` packages the `sekisho` this test
//! run built, `dpkg -i` installs it on this machine (the `sekisho` system user, the packaged
//! `/etc/sekisho/sekisho.toml`, `/var/lib/sekisho`, the hardened `sekisho.service` unit),
//! and the installed binary serves with the packaged configuration exactly as the unit starts
//! it: as the `sekisho` user with only `CAP_NET_BIND_SERVICE`, no new privileges, umask 077,
//! in a network namespace of its own so that its `0.0.0.0:443` touches no other address.
//! Then an upgrade keeps the administrator's edit of the configuration and the data, and a
//! purge removes the package but keeps the evidence.
//!
//! It installs a package system-wide, so it needs root (CI runs as root) and refuses to run
//! on a machine where Sekisho is installed for real. Outside CI a missing tool (cargo-deb,
//! dpkg, systemd-analyze) or a non-root user skips it with the reason; in CI that fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Left while the package is installed by this test, so that a later run knows an installed
/// `sekisho` package (and the `sekisho` user and data) is a leftover of ours to clean up.
const MARKER: &str = "/var/tmp/sekisho-package-test";
const DATA: &str = "/var/lib/sekisho";
const CONFIG: &str = "/etc/sekisho/sekisho.toml";
const UNIT: &str = "/usr/lib/systemd/system/sekisho.service";

fn skip(why: &str) -> bool {
    assert!(
        std::env::var_os("CI").is_none(),
        "cannot run the package test in CI: {why} (.ci/run installs cargo-deb)"
    );
    eprintln!("skipped: {why}");
    true
}

fn output(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

fn run(cmd: &mut Command) -> String {
    let out = output(cmd);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{cmd:?} failed:\n{text}");
    text
}

fn installed() -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", "sekisho"])
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("installed"))
}

fn user_exists() -> bool {
    Command::new("id")
        .arg("sekisho")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// Removes what an earlier run of this test left (package, user, data); nothing else.
fn clean_up_after_us() {
    if installed() {
        run(Command::new("dpkg").args(["--purge", "sekisho"]));
    }
    if Path::new(DATA).exists() {
        std::fs::remove_dir_all(DATA).unwrap();
    }
    if user_exists() {
        run(Command::new("userdel").arg("sekisho"));
    }
    let _ = std::fs::remove_file(MARKER);
}

/// Cleans up when the test ends, passed or not.
struct Installation;

impl Drop for Installation {
    fn drop(&mut self) {
        clean_up_after_us();
    }
}

/// `.deb` of the `sekisho` binary this test run built, with Debian revision `revision`: the
/// binary is put where `cargo deb --no-build` looks for a release build, in a target
/// directory of this test's own.
fn build_package(scratch: &Path, revision: u32) -> PathBuf {
    let target = scratch.join(format!("target-{revision}"));
    std::fs::create_dir_all(target.join("release")).unwrap();
    std::fs::copy(
        env!("CARGO_BIN_EXE_sekisho"),
        target.join("release/sekisho"),
    )
    .unwrap();
    let out_dir = scratch.join(format!("deb-{revision}"));
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    run(Command::new(cargo)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("CARGO_TARGET_DIR", &target)
        .args(["deb", "-p", "sekisho", "--no-build", "--fast", "--quiet"])
        .arg(format!("--deb-revision={revision}"))
        .arg("--output")
        .arg(&out_dir));
    let debs: Vec<_> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    assert_eq!(debs.len(), 1, "{debs:?}");
    debs.into_iter().next().unwrap()
}

fn dpkg_install(deb: &Path) -> String {
    run(Command::new("dpkg")
        .env("DEBIAN_FRONTEND", "noninteractive")
        .arg("-i")
        .arg(deb))
}

/// `key=value` lines of the installed unit, in order.
fn unit_settings() -> Vec<(String, String)> {
    std::fs::read_to_string(UNIT)
        .unwrap()
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

fn unit_setting(settings: &[(String, String)], key: &str) -> String {
    settings
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| panic!("the unit has no {key}="))
}

/// The installed service, started as its unit starts it, in a network namespace of its own.
struct Service {
    child: Child,
    /// Where its standard error (the log) goes.
    log: PathBuf,
}

impl Service {
    fn start(log: PathBuf) -> Self {
        let unit = unit_settings();
        let user = unit_setting(&unit, "User");
        let group = unit_setting(&unit, "Group");
        let exec = unit_setting(&unit, "ExecStart");
        let umask = unit_setting(&unit, "UMask");
        let caps = unit_setting(&unit, "AmbientCapabilities");
        assert_eq!(caps, "CAP_NET_BIND_SERVICE");
        assert_eq!(unit_setting(&unit, "NoNewPrivileges"), "yes");
        let cap = caps.trim_start_matches("CAP_").to_lowercase();
        let script = format!(
            "ip link set lo up && umask {umask} && exec setpriv --reuid={user} --regid={group} \
             --init-groups --inh-caps=+{cap} --ambient-caps=+{cap} --bounding-set=-all,+{cap} \
             --no-new-privs --pdeathsig=KILL -- {exec}"
        );
        let child = Command::new("unshare")
            .args(["--net", "--", "sh", "-c", &script])
            .current_dir("/")
            .env_clear()
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Self { child, log }
    }

    /// A command run inside the service's network namespace.
    fn inside(&self, program: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--target={}", self.child.id()))
            .args(["--net", "--", program]);
        cmd
    }

    /// Status and body of an HTTPS request to the console's port, from inside.
    fn https(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        let mut cmd = self.inside("curl");
        cmd.args([
            "-sk",
            "--max-time",
            "5",
            "-X",
            method,
            "-w",
            "\n%{http_code}",
        ]);
        if let Some(body) = body {
            cmd.args(["-H", "content-type: application/json", "--data", body]);
        }
        cmd.arg(format!("https://127.0.0.1:443{path}"));
        let out = output(&mut cmd);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
        (code.trim().parse().unwrap_or(0), body.to_owned())
    }

    fn wait_healthy(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the installed sekisho exited before it served: {status}");
            }
            let (code, body) = self.https("GET", "/healthz", None);
            if code == 200 {
                assert!(body.contains("\"ok\""), "{body}");
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the installed sekisho did not answer /healthz in 90 s"
            );
            std::thread::sleep(Duration::from_millis(300));
        }
    }

    /// The process's credentials as the kernel sees them.
    fn status_field(&self, field: &str) -> String {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{field}:")))
            .unwrap_or_else(|| panic!("no {field} in /proc status"))
            .trim()
            .to_owned()
    }

    /// SIGTERM, as `systemctl stop` sends; the drain must end in a clean exit. Returns what
    /// the service logged.
    fn stop(mut self) -> String {
        run(Command::new("kill")
            .args(["-s", "TERM"])
            .arg(self.child.id().to_string()));
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "no exit 60 s after SIGTERM");
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(status.success(), "the service exited with {status}");
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn uid_gid_of(name: &str) -> (u32, u32) {
    let line = run(Command::new("getent").args(["passwd", name]));
    let fields: Vec<&str> = line.trim().split(':').collect();
    assert_eq!(fields.len(), 7, "{line}");
    assert_eq!(fields[5], DATA, "home of {name}: {line}");
    assert_eq!(fields[6], "/usr/sbin/nologin", "shell of {name}: {line}");
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}

#[test]
fn the_debian_package_installs_serves_as_its_unit_upgrades_and_purges_keeping_the_evidence() {
    let is_root = run(Command::new("id").arg("-u")).trim() == "0";
    if !is_root && skip("not root: the test installs a package system-wide") {
        return;
    }
    for tool in [
        "dpkg",
        "systemd-analyze",
        "unshare",
        "nsenter",
        "curl",
        "setpriv",
    ] {
        if Command::new("sh")
            .args(["-c", &format!("command -v {tool}")])
            .output()
            .map_or(true, |o| !o.status.success())
            && skip(&format!("no {tool}"))
        {
            return;
        }
    }
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    if Command::new(&cargo)
        .args(["deb", "--version"])
        .output()
        .map_or(true, |o| !o.status.success())
        && skip("no cargo-deb (cargo install cargo-deb)")
    {
        return;
    }
    let ours = Path::new(MARKER).exists();
    if (installed() || Path::new(DATA).exists() || user_exists())
        && !ours
        && skip("Sekisho is installed on this machine for real; the test would replace it")
    {
        return;
    }
    // Serialise with any other process running this test.
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open("/var/tmp/sekisho-package-test.lock")
        .unwrap();
    lock.lock().unwrap();
    clean_up_after_us();
    let scratch = tempfile::tempdir().unwrap();

    // Build and inspect the package.
    let deb = build_package(scratch.path(), 1);
    let info = run(Command::new("dpkg-deb").arg("--info").arg(&deb));
    for field in ["Package: sekisho", "Depends: adduser", "Section: net"] {
        assert!(info.contains(field), "no {field:?} in:\n{info}");
    }

    // Install on this machine, from nothing.
    std::fs::write(MARKER, "installed by tests/package.rs\n").unwrap();
    let _installation = Installation;
    let said = dpkg_install(&deb);
    assert!(
        said.contains("installed and enabled, not started"),
        "{said}"
    );
    assert!(said.contains("インストールされ有効化されました"), "{said}");
    assert!(Path::new("/usr/bin/sekisho").exists());
    let (uid, gid) = uid_gid_of("sekisho");
    assert!(uid < 1000, "sekisho is not a system user: uid {uid}");
    let data = std::fs::metadata(DATA).unwrap();
    assert_eq!((data.uid(), data.mode() & 0o7777), (uid, 0o700));
    let config = std::fs::metadata(CONFIG).unwrap();
    assert_eq!(
        (config.uid(), config.gid(), config.mode() & 0o7777),
        (0, gid, 0o640),
        "the configuration may hold passwords"
    );
    let conffiles = run(Command::new("dpkg-query").args(["-W", "-f=${Conffiles}", "sekisho"]));
    assert!(conffiles.contains(CONFIG), "{conffiles}");
    assert!(
        Path::new("/etc/systemd/system/multi-user.target.wants/sekisho.service").exists(),
        "the unit is not enabled"
    );
    run(Command::new("/usr/bin/sekisho").args(["config", "check", CONFIG]));

    // The unit: valid, and hardened (systemd's own exposure score).
    run(Command::new("systemd-analyze").args(["verify", UNIT]));
    let security = run(Command::new("systemd-analyze").args([
        "security",
        "--offline=true",
        "--no-pager",
        UNIT,
    ]));
    let overall = security
        .lines()
        .find(|l| l.contains("Overall exposure level"))
        .unwrap_or_else(|| panic!("no exposure level in:\n{security}"));
    let level: f64 = overall
        .rsplit(':')
        .next()
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("unreadable: {overall}"));
    assert!(level <= 2.0, "{overall}");
    let unit = unit_settings();
    for setting in [
        ("ProtectSystem", "strict"),
        ("NoNewPrivileges", "yes"),
        ("CapabilityBoundingSet", "CAP_NET_BIND_SERVICE"),
        ("Restart", "on-failure"),
        ("StateDirectory", "sekisho"),
    ] {
        assert_eq!(unit_setting(&unit, setting.0), setting.1);
    }

    // Serve with the packaged configuration, as the unit would.
    let mut service = Service::start(scratch.path().join("first.log"));
    service.wait_healthy();
    assert_eq!(service.status_field("CapEff"), "0000000000000400");
    assert_eq!(service.status_field("NoNewPrivs"), "1");
    let uids = service.status_field("Uid");
    assert!(
        uids.split_whitespace().all(|u| u == uid.to_string()),
        "{uids}"
    );
    let password_file = Path::new(DATA).join("initial-admin-password");
    let meta = std::fs::metadata(&password_file).unwrap();
    assert_eq!((meta.uid(), meta.mode() & 0o777), (uid, 0o600));
    let password = std::fs::read_to_string(&password_file).unwrap();
    let login = serde_json::json!({"username": "admin", "password": password.trim()}).to_string();
    let (code, body) = service.https("POST", "/api/v1/auth/login", Some(&login));
    assert_eq!(code, 200, "{body}");
    let metrics = run(service.inside("curl").args([
        "-s",
        "--max-time",
        "5",
        "http://127.0.0.1:9464/metrics",
    ]));
    assert!(metrics.contains("sekisho_"), "{metrics}");
    let logged = service.stop();
    let mut events = 0;
    for line in logged.lines() {
        let event: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        assert!(
            event.get("fields").is_some() || event.get("level").is_some(),
            "{line}"
        );
        events += 1;
    }
    assert!(events > 0, "no log lines");
    for made in ["sekisho.db", "keys"] {
        assert!(Path::new(DATA).join(made).exists(), "no {made} in {DATA}");
    }

    // Upgrade to the next revision: the administrator's edit and the data stay.
    let edited = format!(
        "{}\n# edited by the hospital's administrator\n",
        std::fs::read_to_string(CONFIG).unwrap()
    );
    std::fs::write(CONFIG, &edited).unwrap();
    let next = build_package(scratch.path(), 2);
    dpkg_install(&next);
    let version = run(Command::new("dpkg-query").args(["-W", "-f=${Version}", "sekisho"]));
    assert!(version.ends_with("-2"), "{version}");
    assert_eq!(std::fs::read_to_string(CONFIG).unwrap(), edited);
    let mut service = Service::start(scratch.path().join("upgraded.log"));
    service.wait_healthy();
    let (code, body) = service.https("POST", "/api/v1/auth/login", Some(&login));
    assert_eq!(code, 200, "the admin of before the upgrade: {body}");
    service.stop();

    // Purge: the package and its configuration go; the evidence stays.
    let said = run(Command::new("dpkg").args(["--purge", "sekisho"]));
    assert!(said.contains("kept in /var/lib/sekisho"), "{said}");
    for gone in ["/usr/bin/sekisho", CONFIG, UNIT] {
        assert!(!Path::new(gone).exists(), "{gone} survived the purge");
    }
    assert!(Path::new(DATA).join("sekisho.db").exists());
}
