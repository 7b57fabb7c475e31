//! Scanning an upload before it may reach the target: ClamAV's `clamd` over its socket
//! protocol (`zINSTREAM`), and a command of the hospital's own (exit status decides). Every
//! configured scanner must pass. A scanner that cannot answer (down, timed out, an answer it
//! cannot parse) is a failure, and a failure blocks the upload: fail closed.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use sekisho_config::FilesConfig;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Chunks sent to clamd (its default `StreamMaxLength` is 25 MiB; chunk size is ours).
const CHUNK: usize = 64 * 1024;
/// The longest answer read from clamd.
const MAX_REPLY: usize = 4096;

/// Where clamd listens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Clamd {
    Unix(PathBuf),
    Tcp(String),
}

impl Clamd {
    pub fn parse(s: &str) -> Self {
        match s.strip_prefix("tcp:") {
            Some(addr) => Clamd::Tcp(addr.to_owned()),
            None => Clamd::Unix(PathBuf::from(s)),
        }
    }
}

impl std::fmt::Display for Clamd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Clamd::Unix(p) => write!(f, "clamd at {}", p.display()),
            Clamd::Tcp(a) => write!(f, "clamd at {a}"),
        }
    }
}

/// What a scan found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Clean,
    /// Found something: the words for people ("Eicar-Test-Signature found by clamd").
    Infected(String),
    /// Could not scan: why ("clamd at /run/clamav/clamd.ctl: connection refused").
    Failed(String),
}

/// The scanners configured in `[files]`.
#[derive(Clone, Debug)]
pub struct Scanners {
    clamd: Option<Clamd>,
    command: Vec<String>,
    timeout: Duration,
}

impl Scanners {
    pub fn from_config(c: &FilesConfig) -> Option<Self> {
        c.scanning().then(|| Self {
            clamd: c.clamd.as_deref().map(Clamd::parse),
            command: c.scan_command.clone(),
            timeout: Duration::from_secs(u64::from(c.scan_timeout_seconds)),
        })
    }

    /// Scans the file at `path` with every scanner; the first that does not say clean decides.
    pub async fn scan(&self, path: &Path) -> Verdict {
        if let Some(clamd) = &self.clamd {
            let v = match tokio::time::timeout(self.timeout, clamd_scan(clamd, path)).await {
                Ok(v) => v,
                Err(_) => Verdict::Failed(format!(
                    "{clamd} did not answer within {} seconds",
                    self.timeout.as_secs()
                )),
            };
            if v != Verdict::Clean {
                return v;
            }
        }
        if !self.command.is_empty() {
            return self.command_scan(path).await;
        }
        Verdict::Clean
    }

    async fn command_scan(&self, path: &Path) -> Verdict {
        let program = &self.command[0];
        let child = tokio::process::Command::new(program)
            .args(&self.command[1..])
            .arg(path)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => return Verdict::Failed(format!("scan command {program}: {e}")),
        };
        let output = match tokio::time::timeout(self.timeout, child.wait_with_output()).await {
            Ok(Ok(o)) => o,
            Ok(Err(e)) => return Verdict::Failed(format!("scan command {program}: {e}")),
            Err(_) => {
                return Verdict::Failed(format!(
                    "scan command {program} did not finish within {} seconds",
                    self.timeout.as_secs()
                ));
            }
        };
        let said = |b: &[u8]| {
            String::from_utf8_lossy(b)
                .lines()
                .find(|l| !l.trim().is_empty())
                .map(|l| l.trim().chars().take(200).collect::<String>())
        };
        match output.status.code() {
            Some(0) => Verdict::Clean,
            Some(1) => Verdict::Infected(match said(&output.stdout) {
                Some(s) => format!("{s} (scan command {program})"),
                None => format!("refused by scan command {program}"),
            }),
            code => Verdict::Failed(format!(
                "scan command {program} failed ({}){}",
                code.map_or_else(
                    || "killed by a signal".into(),
                    |c| format!("exit status {c}")
                ),
                said(&output.stderr)
                    .map(|s| format!(": {s}"))
                    .unwrap_or_default()
            )),
        }
    }
}

async fn clamd_scan(clamd: &Clamd, path: &Path) -> Verdict {
    let result = match clamd {
        Clamd::Unix(sock) => match tokio::net::UnixStream::connect(sock).await {
            Ok(s) => instream(s, path).await,
            Err(e) => Err(e.to_string()),
        },
        Clamd::Tcp(addr) => match tokio::net::TcpStream::connect(addr.as_str()).await {
            Ok(s) => instream(s, path).await,
            Err(e) => Err(e.to_string()),
        },
    };
    match result {
        Ok(reply) => parse_reply(&reply, clamd),
        Err(e) => Verdict::Failed(format!("{clamd}: {e}")),
    }
}

/// `zINSTREAM`: the file in length-prefixed chunks, a zero length, then clamd's answer.
async fn instream<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    path: &Path,
) -> Result<String, String> {
    let mut file = tokio::fs::File::open(path)
        .await
        .map_err(|e| format!("the staged file: {e}"))?;
    s.write_all(b"zINSTREAM\0")
        .await
        .map_err(|e| e.to_string())?;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file
            .read(&mut buf)
            .await
            .map_err(|e| format!("the staged file: {e}"))?;
        s.write_all(&(n as u32).to_be_bytes())
            .await
            .map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        // clamd closes early when the stream is over its limit: its answer says so.
        if s.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let mut reply = Vec::new();
    let mut chunk = [0u8; 512];
    loop {
        let n = s.read(&mut chunk).await.map_err(|e| e.to_string())?;
        if n == 0 {
            break;
        }
        reply.extend_from_slice(&chunk[..n]);
        if reply.contains(&0) || reply.len() > MAX_REPLY {
            break;
        }
    }
    let end = reply.iter().position(|&b| b == 0).unwrap_or(reply.len());
    Ok(String::from_utf8_lossy(&reply[..end]).trim().to_owned())
}

/// `stream: OK`, `stream: NAME FOUND`, or an error such as
/// `INSTREAM size limit exceeded. ERROR`.
fn parse_reply(reply: &str, clamd: &Clamd) -> Verdict {
    let body = reply.strip_prefix("stream:").map(str::trim);
    match body {
        Some("OK") => Verdict::Clean,
        Some(b) if b.ends_with(" FOUND") => {
            let name = b.trim_end_matches(" FOUND");
            let name = name.strip_suffix(".UNOFFICIAL").unwrap_or(name);
            Verdict::Infected(format!("{name} found by clamd"))
        }
        _ if reply.is_empty() => Verdict::Failed(format!("{clamd} closed without an answer")),
        _ => Verdict::Failed(format!("{clamd}: {reply}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clamd_answers_are_read() {
        let c = Clamd::parse("/run/clamav/clamd.ctl");
        assert_eq!(parse_reply("stream: OK", &c), Verdict::Clean);
        assert_eq!(
            parse_reply("stream: Eicar-Test-Signature.UNOFFICIAL FOUND", &c),
            Verdict::Infected("Eicar-Test-Signature found by clamd".into())
        );
        assert!(matches!(
            parse_reply("INSTREAM size limit exceeded. ERROR", &c),
            Verdict::Failed(m) if m.contains("size limit")
        ));
        assert!(matches!(parse_reply("", &c), Verdict::Failed(_)));
        assert_eq!(
            Clamd::parse("tcp:127.0.0.1:3310"),
            Clamd::Tcp("127.0.0.1:3310".into())
        );
    }
}
