//! `sekisho doctor` (issue #19): checks what most often goes wrong where Sekisho is installed
//! and says how to fix each. One line per check, `ok`, `warn` or `FAIL`; exit status 1 when
//! anything failed. It reads, connects and asks; it changes nothing.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use sekisho_config::Config;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long one network check may take.
const WAIT: Duration = Duration::from_secs(5);
/// Certificates closer than this to their end are a warning.
const CERT_WARN_DAYS: i64 = 30;
/// The receive/send buffer quinn wants for full speed on a busy link.
const UDP_BUFFER: u64 = 2_500_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Ok,
    Warn,
    Fail,
}

struct Report {
    worst: Level,
}

impl Report {
    fn say(&mut self, level: Level, check: &str, what: &str, fix: Option<&str>) {
        let tag = match level {
            Level::Ok => "ok  ",
            Level::Warn => "warn",
            Level::Fail => "FAIL",
        };
        println!("{tag} {check}: {what}");
        if let Some(fix) = fix {
            println!("     fix: {fix}");
        }
        self.worst = self.worst.max(level);
    }
}

/// `sekisho doctor`.
pub async fn run(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let mut r = Report { worst: Level::Ok };
    let config = match super::load_config(config_path) {
        Ok(c) => {
            let from =
                config_path.map_or("built-in defaults".to_owned(), |p| p.display().to_string());
            r.say(Level::Ok, "config", &format!("valid ({from})"), None);
            c
        }
        Err(e) => {
            r.say(
                Level::Fail,
                "config",
                &format!("{e:#}"),
                Some("correct the lines named above (`sekisho config check FILE` lists every problem)"),
            );
            return Ok(ExitCode::FAILURE);
        }
    };
    database(&mut r, &config).await;
    listeners(&mut r, &config).await;
    certificates(&mut r, &config);
    clock(&mut r, &config).await;
    disk(&mut r, &config);
    udp_buffers(&mut r, &config);
    scanner(&mut r, &config).await;
    smtp(&mut r, &config).await;
    Ok(if r.worst == Level::Fail {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

async fn database(r: &mut Report, config: &Config) {
    let url = config.database_url();
    let shown = super::redact(&url);
    let known = sekisho_store::schema_known();
    match tokio::time::timeout(WAIT * 3, sekisho_store::probe(&url)).await {
        Ok(Ok(v)) if v > known => r.say(
            Level::Fail,
            "database",
            &format!("{shown}: schema {v} is from a newer Sekisho (this one knows up to {known})"),
            Some("run the version that last used it, or restore a backup made by this one"),
        ),
        Ok(Ok(v)) if v < known => r.say(
            Level::Warn,
            "database",
            &format!("{shown} answers, schema {v}: the next start migrates it to {known}"),
            Some("take a backup first (`sekisho backup DIR`)"),
        ),
        Ok(Ok(v)) => r.say(Level::Ok, "database", &format!("{shown} answers, schema {v}"), None),
        Ok(Err(sekisho_store::StoreError::NotFound(what))) => r.say(
            Level::Warn,
            "database",
            &format!("{what} does not exist yet"),
            Some("it is made at the first `sekisho serve`"),
        ),
        Ok(Err(e)) => r.say(
            Level::Fail,
            "database",
            &e.to_string(),
            Some("check [database] url, that the server runs and this machine may reach it, and the account's password"),
        ),
        Err(_) => r.say(
            Level::Fail,
            "database",
            &format!("{shown} did not answer in {} s", (WAIT * 3).as_secs()),
            Some("check that the database server runs and a firewall lets this machine through"),
        ),
    }
}

/// Where to connect to reach a listener bound to `addr`.
fn reachable(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
    } else {
        addr
    }
}

async fn listener(r: &mut Report, name: &str, addr: SocketAddr) {
    if addr.port() == 0 {
        r.say(
            Level::Warn,
            name,
            &format!("{addr}: port 0 (a new port at each start)"),
            Some("set a fixed port so vendors and monitoring can find it"),
        );
        return;
    }
    let connected =
        tokio::time::timeout(WAIT, tokio::net::TcpStream::connect(reachable(addr))).await;
    if matches!(connected, Ok(Ok(_))) {
        r.say(Level::Ok, name, &format!("{addr} answers"), None);
        return;
    }
    match std::net::TcpListener::bind(addr) {
        Ok(_) => r.say(
            Level::Warn,
            name,
            &format!("nothing listens on {addr}"),
            Some("start Sekisho (`sekisho serve`, or `systemctl start sekisho`)"),
        ),
        Err(e) => r.say(
            Level::Fail,
            name,
            &format!("{addr} cannot be used: {e}"),
            Some("another program holds this address, or the port is below 1024 without CAP_NET_BIND_SERVICE: change the port or the other program"),
        ),
    }
}

async fn listeners(r: &mut Report, config: &Config) {
    listener(r, "api listener", config.api.listen).await;
    if config.ssh.enabled {
        listener(r, "ssh listener", config.ssh.listen).await;
    }
    if let Some(m) = &config.metrics {
        listener(r, "metrics listener", m.listen).await;
    }
}

/// Days from now to the end of the PEM certificate at `path`.
fn days_left(path: &Path) -> Result<i64, String> {
    let pem = std::fs::read(path).map_err(|e| e.to_string())?;
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem)
        .map_err(|e| format!("not a PEM certificate: {e}"))?;
    let cert = pem
        .parse_x509()
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let end = cert.validity().not_after.timestamp();
    Ok((end - jiff::Timestamp::now().as_second()) / 86_400)
}

fn certificates(r: &mut Report, config: &Config) {
    let keys = config.data_dir.join("keys");
    let mut certs = vec![
        (
            "designated-client CA",
            keys.join(sekisho_gateway::keys::CA_CERT),
        ),
        (
            "gateway TLS certificate",
            keys.join(sekisho_gateway::keys::TLS_CERT),
        ),
    ];
    match &config.api.tls_cert {
        Some(p) => certs.push(("HTTPS certificate", p.clone())),
        None if config.api.tls => certs.push((
            "HTTPS certificate",
            keys.join(sekisho_gateway::keys::API_TLS_CERT),
        )),
        None => {}
    }
    for (name, path) in certs {
        if !path.exists() && path.starts_with(&keys) {
            r.say(
                Level::Warn,
                name,
                &format!("{} does not exist yet", path.display()),
                Some("it is made at the first `sekisho serve`"),
            );
            continue;
        }
        match days_left(&path) {
            Ok(d) if d < 0 => r.say(Level::Fail, name, &format!("{} expired {} days ago", path.display(), -d), Some("replace it (a configured certificate: renew it; the designated-client CA: see README \"designated client\")")),
            Ok(d) if d < CERT_WARN_DAYS => r.say(Level::Warn, name, &format!("{} expires in {d} days", path.display()), Some("renew it before it expires")),
            Ok(d) => r.say(Level::Ok, name, &format!("valid for {d} more days"), None),
            Err(e) => r.say(Level::Fail, name, &format!("{}: {e}", path.display()), Some("put a readable PEM certificate there")),
        }
    }
}

async fn clock(r: &mut Report, config: &Config) {
    let t = &config.time;
    if t.ntp_servers.is_empty() {
        r.say(
            Level::Warn,
            "clock",
            "not checked: no [time] ntp_servers",
            Some("set the hospital's NTP servers so Sekisho can prove its timestamps"),
        );
        return;
    }
    match sekisho_gateway::clock::offset(&t.ntp_servers).await {
        Some((server, ms)) if ms.unsigned_abs() > u64::from(t.max_offset_ms) => r.say(
            Level::Fail,
            "clock",
            &format!("off by {ms} ms against {server} (at most {} ms)", t.max_offset_ms),
            Some("let chrony or systemd-timesyncd keep this machine's clock in time with the hospital's NTP servers"),
        ),
        Some((server, ms)) => r.say(Level::Ok, "clock", &format!("{ms} ms from {server}"), None),
        None => r.say(
            Level::Warn,
            "clock",
            &format!("no NTP server answered ({})", t.ntp_servers.join(", ")),
            Some("check [time] ntp_servers and that UDP port 123 is open to them"),
        ),
    }
}

/// Under 1 GiB or 5 % free fails, under 15 % warns.
fn disk_level(free: u64, total: u64) -> Level {
    if free < 1 << 30 || free.saturating_mul(100) < total.saturating_mul(5) {
        Level::Fail
    } else if free.saturating_mul(100) < total.saturating_mul(15) {
        Level::Warn
    } else {
        Level::Ok
    }
}

fn disk(r: &mut Report, config: &Config) {
    let dir = config.recordings_dir();
    // The recordings folder, or the nearest folder above it that exists (before a first start).
    let Some(existing) = dir.ancestors().find(|p| p.exists()) else {
        r.say(
            Level::Fail,
            "disk",
            &format!("no part of {} exists", dir.display()),
            None,
        );
        return;
    };
    match rustix::fs::statvfs(existing) {
        Ok(s) => {
            let free = s.f_bavail.saturating_mul(s.f_frsize);
            let total = s.f_blocks.saturating_mul(s.f_frsize).max(1);
            let what = format!(
                "{:.1} GiB free of {:.1} GiB for recordings ({})",
                free as f64 / f64::from(1u32 << 30),
                total as f64 / f64::from(1u32 << 30),
                existing.display()
            );
            let fix = "free space or move [recordings] dir to a larger disk: a session whose recording cannot be written is ended";
            let level = disk_level(free, total);
            r.say(level, "disk", &what, (level != Level::Ok).then_some(fix));
        }
        Err(e) => r.say(
            Level::Fail,
            "disk",
            &format!("{}: {e}", existing.display()),
            None,
        ),
    }
}

fn udp_buffers(r: &mut Report, config: &Config) {
    if !config.quic.enabled {
        return;
    }
    for name in ["rmem_max", "wmem_max"] {
        let path = format!("/proc/sys/net/core/{name}");
        match std::fs::read_to_string(&path)
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
        {
            Some(v) if v < UDP_BUFFER => r.say(
                Level::Warn,
                "udp buffers",
                &format!(
                    "net.core.{name} = {v}: the designated client's QUIC slows on a busy link"
                ),
                Some(&format!(
                    "sysctl -w net.core.{name}=7500000 (and in /etc/sysctl.d/ to keep it)"
                )),
            ),
            Some(v) => r.say(
                Level::Ok,
                "udp buffers",
                &format!("net.core.{name} = {v}"),
                None,
            ),
            None => r.say(
                Level::Warn,
                "udp buffers",
                &format!("cannot read {path}"),
                None,
            ),
        }
    }
}

async fn scanner(r: &mut Report, config: &Config) {
    let Some(scanners) = sekisho_gateway::files::scan::Scanners::from_config(&config.files) else {
        r.say(
            Level::Warn,
            "scanner",
            "no [files] clamd or scan_command: uploads are not scanned",
            Some("install clamav-daemon and set [files] clamd"),
        );
        return;
    };
    let probe = match tempfile::NamedTempFile::new() {
        Ok(mut f) => {
            let _ = std::io::Write::write_all(&mut f, b"sekisho doctor: a harmless file\n");
            f
        }
        Err(e) => {
            r.say(
                Level::Fail,
                "scanner",
                &format!("cannot make a file to scan: {e}"),
                None,
            );
            return;
        }
    };
    match scanners.scan(probe.path()).await {
        sekisho_gateway::files::scan::Verdict::Clean => r.say(Level::Ok, "scanner", "answers and passes a clean file", None),
        sekisho_gateway::files::scan::Verdict::Infected(what) => r.say(Level::Fail, "scanner", &format!("blocks a clean file: {what}"), Some("check the scanner's configuration")),
        sekisho_gateway::files::scan::Verdict::Failed(why) => r.say(
            Level::Fail,
            "scanner",
            &why,
            Some("start the scanner (`systemctl start clamav-daemon`) and check [files] clamd; until it answers, every upload is blocked"),
        ),
    }
}

async fn smtp(r: &mut Report, config: &Config) {
    let Some(smtp) = &config.notifications.smtp else {
        return;
    };
    let addr = format!("{}:{}", smtp.host, smtp.port);
    let fix = "check [notifications] smtp_host and smtp_port, and that the mail server lets this machine connect";
    let greeting = async {
        let mut s = tokio::net::TcpStream::connect(addr.as_str()).await?;
        let mut buf = [0u8; 512];
        let n = s.read(&mut buf).await?;
        let _ = s.write_all(b"QUIT\r\n").await;
        Ok::<_, std::io::Error>(String::from_utf8_lossy(&buf[..n]).trim().to_owned())
    };
    match tokio::time::timeout(WAIT, greeting).await {
        Ok(Ok(g)) if g.starts_with("220") => {
            r.say(Level::Ok, "smtp", &format!("{addr} greets: {g}"), None)
        }
        Ok(Ok(g)) => r.say(
            Level::Fail,
            "smtp",
            &format!("{addr} answered {g:?}, not 220"),
            Some(fix),
        ),
        Ok(Err(e)) => r.say(Level::Fail, "smtp", &format!("{addr}: {e}"), Some(fix)),
        Err(_) => r.say(
            Level::Fail,
            "smtp",
            &format!("{addr} did not greet in {} s", WAIT.as_secs()),
            Some(fix),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_space_fails_under_a_gib_or_five_percent_and_warns_under_fifteen() {
        const GIB: u64 = 1 << 30;
        assert_eq!(disk_level(GIB / 2, 4 * GIB), Level::Fail);
        assert_eq!(disk_level(4 * GIB, 100 * GIB), Level::Fail);
        assert_eq!(disk_level(10 * GIB, 100 * GIB), Level::Warn);
        assert_eq!(disk_level(20 * GIB, 100 * GIB), Level::Ok);
    }
}
