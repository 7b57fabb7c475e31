//! `sekisho-client`: the hospital's designated client for vendor engineers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use sekisho_client::connect;
use sekisho_client::files::{ClientDir, Enrollment, HOST_ALIAS};
use sekisho_protocol::{ClientMessage, NewRequest, RequestSummary, ServerMessage, Service};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(
    name = "sekisho-client",
    version,
    about = "The designated client for remote maintenance through Sekisho"
)]
struct Cli {
    /// Where the enrollment lives (default: SEKISHO_CLIENT_DIR or ~/.config/sekisho).
    #[arg(long, global = true)]
    dir: Option<PathBuf>,
    /// Your account's one-time code (authenticator app, or a recovery code), when it has a
    /// second factor; without it you are asked on the terminal when the gateway wants one.
    #[arg(long, global = true, env = "SEKISHO_OTP", hide_env_values = true)]
    otp: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Enroll this machine with a one-time code from the hospital.
    Enroll {
        /// The gateway's QUIC address, HOST:PORT (given with the code).
        #[arg(long)]
        gateway: String,
        #[arg(long)]
        code: String,
        /// The gateway certificate fingerprint given with the code (SHA256:...).
        #[arg(long)]
        fingerprint: String,
        /// Read your Sekisho password from the first line of standard input instead of
        /// asking for it (the code alone does not enroll: your own password must come too).
        #[arg(long)]
        password_stdin: bool,
    },
    /// Show the enrollment and whether the gateway answers.
    Status,
    /// Replace the certificate (before it expires) with a new one for a new key.
    Renew,
    /// List your vendor's work requests and their state.
    Requests,
    /// File a work request; the hospital's IT approves or rejects it.
    Request {
        #[arg(long)]
        target: String,
        /// `reference` (look only) or `change`.
        #[arg(long)]
        level: String,
        /// Window start, RFC 3339 (e.g. 2026-11-26T10:00:00+09:00).
        #[arg(long)]
        from: String,
        /// Window end, RFC 3339.
        #[arg(long)]
        until: String,
        #[arg(long)]
        reason: String,
        /// A file with the work plan.
        #[arg(long)]
        plan: Option<PathBuf>,
    },
    /// Run OpenSSH to TARGET through the gateway (arguments after `--` go to ssh).
    Ssh {
        target: String,
        #[arg(last = true)]
        args: Vec<String>,
    },
    /// Upload FILE to TARGET (to REMOTE_PATH, default your home directory) through the
    /// gateway: logged with its hash and, where the hospital configured a scanner, scanned
    /// in quarantine before it reaches the target. Runs OpenSSH's scp (its progress meter).
    Put {
        target: String,
        file: PathBuf,
        remote_path: Option<String>,
    },
    /// Download REMOTE_PATH of TARGET (to FILE, default the current directory) through the
    /// gateway, logged with its hash. Runs OpenSSH's scp (its progress meter).
    Get {
        target: String,
        remote_path: String,
        file: Option<PathBuf>,
    },
    /// The stdio ProxyCommand that `ssh` uses (stdin/stdout carry the SSH connection).
    Proxy { target: String },
    /// Forward a local TCP port to PORT of TARGET (device web UI, DICOM, a database...).
    Tunnel {
        target: String,
        port: u16,
        /// Local address to listen on (default 127.0.0.1 and the same port, if free).
        #[arg(long)]
        local: Option<std::net::SocketAddr>,
    },
    /// Open the remote desktop of TARGET on a local port for your own RDP client (xfreerdp,
    /// mstsc); the gateway logs in to the target, you need no Windows password.
    Rdp {
        target: String,
        /// Local address to listen on (default: 127.0.0.1 and a free port).
        #[arg(long)]
        local: Option<std::net::SocketAddr>,
        /// Start xfreerdp on the local port (arguments after `--` are added, e.g.
        /// `/size:1280x800`); the session ends when it exits.
        #[arg(long)]
        launch: bool,
        /// The RDP client `--launch` starts.
        #[arg(long, default_value = "xfreerdp", requires = "launch")]
        client: String,
        #[arg(last = true)]
        args: Vec<String>,
    },
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sekisho-client: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let dir = ClientDir::resolve(cli.dir)?;
    let otp = cli.otp;
    match cli.command {
        Command::Enroll {
            gateway,
            code,
            fingerprint,
            password_stdin,
        } => {
            let password = read_password(password_stdin)?;
            enroll(&dir, &gateway, &code, &fingerprint, password).await
        }
        Command::Status => status(&dir).await,
        Command::Renew => renew(&dir).await,
        Command::Requests => requests(&dir).await,
        Command::Request {
            target,
            level,
            from,
            until,
            reason,
            plan,
        } => {
            let plan = match plan {
                Some(path) => {
                    let text = std::fs::read_to_string(&path)
                        .with_context(|| format!("cannot read the plan {}", path.display()))?;
                    if text.len() > MAX_PLAN {
                        bail!(
                            "the plan {} is larger than {MAX_PLAN} bytes",
                            path.display()
                        );
                    }
                    Some(text)
                }
                None => None,
            };
            let request = NewRequest {
                target,
                level,
                window_start: from,
                window_end: until,
                reason,
                plan,
            };
            match ask(&dir, ClientMessage::FileRequest { request }).await? {
                ServerMessage::Filed { request: r } => {
                    println!(
                        "Filed R-{} for {} ({}), {}: {}; the hospital's IT approves or rejects it.",
                        r.number,
                        r.target,
                        r.level,
                        window(&r),
                        r.status
                    );
                    Ok(ExitCode::SUCCESS)
                }
                other => bail!("unexpected answer from the gateway: {other:?}"),
            }
        }
        Command::Ssh { target, args } => ssh(&dir, &target, otp, &args),
        Command::Put {
            target,
            file,
            remote_path,
        } => {
            let remote = remote_path.unwrap_or_default();
            copy(&dir, &target, otp, Copy::Put(file, remote))
        }
        Command::Get {
            target,
            remote_path,
            file,
        } => copy(
            &dir,
            &target,
            otp,
            Copy::Get(remote_path, file.unwrap_or_else(|| PathBuf::from("."))),
        ),
        Command::Proxy { target } => proxy(&dir, &target, otp).await,
        Command::Tunnel {
            target,
            port,
            local,
        } => {
            let e = dir.enrollment()?;
            if let Some(w) = Expiry::warning(&e) {
                eprintln!("{w}");
            }
            let t = sekisho_client::tunnel::Tunnel {
                gateway: e.gateway,
                fingerprint: e.fingerprint,
                identity: Box::new(move || dir.identity()),
                target,
                service: Service::Tcp { port },
                codes: connect::OneTimeCode::new(otp),
                launch: None,
            };
            sekisho_client::tunnel::run(t, local).await?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rdp {
            target,
            local,
            launch,
            client,
            args,
        } => {
            let e = dir.enrollment()?;
            if let Some(w) = Expiry::warning(&e) {
                eprintln!("{w}");
            }
            let launch = launch.then(|| {
                let mut command = vec![client, "/sec:tls".into(), "/cert:ignore".into()];
                command.extend(args);
                command
            });
            let t = sekisho_client::tunnel::Tunnel {
                gateway: e.gateway,
                fingerprint: e.fingerprint,
                identity: Box::new(move || dir.identity()),
                target,
                service: Service::Rdp,
                codes: connect::OneTimeCode::new(otp),
                launch,
            };
            sekisho_client::tunnel::run(t, local).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The largest work plan sent (the control protocol's frames are at most 64 KiB).
const MAX_PLAN: usize = 32 * 1024;

/// A new key pair and a CSR for it. The key is made here; only the public half leaves this
/// machine, in the CSR.
fn key_and_csr() -> anyhow::Result<(rcgen::KeyPair, String)> {
    let key = rcgen::KeyPair::generate().context("cannot generate a key pair")?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sekisho-client");
    let csr = params.serialize_request(&key)?.pem()?;
    Ok((key, csr))
}

/// One request and its answer over a connection with our certificate; a refusal is an error
/// carrying the gateway's reason.
async fn ask(dir: &ClientDir, msg: ClientMessage) -> anyhow::Result<ServerMessage> {
    let e = dir.enrollment()?;
    let link = connect::connect(&e.gateway, &e.fingerprint, Some(dir.identity()?)).await?;
    let (mut send, mut recv) = connect::hello(&link.conn).await?;
    sekisho_protocol::write(&mut send, &msg)
        .await
        .map_err(|err| connect::refused(&link.conn, err))?;
    let answer = sekisho_protocol::read::<ServerMessage, _>(&mut recv)
        .await
        .map_err(|err| connect::refused(&link.conn, err));
    link.close("done").await;
    match answer? {
        ServerMessage::Denied { message, .. } => bail!("{message}"),
        other => Ok(other),
    }
}

async fn requests(dir: &ClientDir) -> anyhow::Result<ExitCode> {
    let ServerMessage::Requests { requests } = ask(dir, ClientMessage::ListRequests).await? else {
        bail!("unexpected answer from the gateway");
    };
    if requests.is_empty() {
        println!(
            "No requests yet: file one with `sekisho-client request --target ... --level ... --from ... --until ... --reason ...`."
        );
    }
    for r in requests {
        println!(
            "R-{:<5} {:<12} {:<9} {:<10} {}  {}",
            r.number,
            r.target,
            r.level,
            r.status,
            window(&r),
            r.reason
        );
    }
    Ok(ExitCode::SUCCESS)
}

async fn renew(dir: &ClientDir) -> anyhow::Result<ExitCode> {
    let (key, csr_pem) = key_and_csr()?;
    let answer = ask(dir, ClientMessage::Renew { csr_pem }).await?;
    let ServerMessage::Enrolled {
        certificate_pem,
        expires_at,
        ..
    } = answer
    else {
        bail!("unexpected answer from the gateway: {answer:?}");
    };
    let mut e = dir.enrollment()?;
    dir.write("client.key", key.serialize_pem().as_bytes())?;
    dir.write("client.crt", certificate_pem.as_bytes())?;
    e.expires_at.clone_from(&expires_at);
    dir.write(
        "enrollment.json",
        serde_json::to_string_pretty(&e)?.as_bytes(),
    )?;
    println!(
        "Renewed: the new certificate is valid until {}; the old one no longer works.",
        local(&expires_at)
    );
    Ok(ExitCode::SUCCESS)
}

/// The engineer's Sekisho password: the first line of stdin, or asked for on the terminal.
fn read_password(from_stdin: bool) -> anyhow::Result<String> {
    let password = if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        rpassword::prompt_password(
            "Your Sekisho password (the one you log in to the console with): ",
        )
        .context("cannot ask for your password here; pass it with --password-stdin")?
    };
    if password.is_empty() {
        bail!("no password given: enrollment needs your Sekisho password as well as the code");
    }
    Ok(password)
}

async fn enroll(
    dir: &ClientDir,
    gateway: &str,
    code: &str,
    fingerprint: &str,
    password: String,
) -> anyhow::Result<ExitCode> {
    let (key, csr) = key_and_csr()?;
    let link = connect::connect(gateway, fingerprint, None).await?;
    let (mut send, mut recv) = connect::hello(&link.conn).await?;
    sekisho_protocol::write(
        &mut send,
        &ClientMessage::Enroll {
            code: code.trim().to_owned(),
            csr_pem: csr,
            password: Some(sekisho_protocol::Password(password)),
        },
    )
    .await
    .map_err(|e| connect::refused(&link.conn, e))?;
    let answer = sekisho_protocol::read::<ServerMessage, _>(&mut recv)
        .await
        .map_err(|e| connect::refused(&link.conn, e))?;
    link.close("done").await;
    let ServerMessage::Enrolled {
        certificate_pem,
        ca_pem,
        username,
        expires_at,
        ssh_host_key,
    } = answer
    else {
        match answer {
            ServerMessage::Denied { message, .. } => bail!("enrollment refused: {message}"),
            other => bail!("unexpected answer from the gateway: {other:?}"),
        }
    };
    dir.write("client.key", key.serialize_pem().as_bytes())?;
    dir.write("client.crt", certificate_pem.as_bytes())?;
    dir.write("ca.crt", ca_pem.as_bytes())?;
    dir.write(
        "known_hosts",
        format!("{HOST_ALIAS} {}\n", ssh_host_key.trim()).as_bytes(),
    )?;
    let enrollment = Enrollment {
        gateway: gateway.to_owned(),
        fingerprint: fingerprint.trim().to_owned(),
        username: username.clone(),
        expires_at: expires_at.clone(),
    };
    dir.write(
        "enrollment.json",
        serde_json::to_string_pretty(&enrollment)?.as_bytes(),
    )?;
    println!(
        "Enrolled as {username}; the certificate is valid until {}.",
        local(&expires_at)
    );
    println!("Files are in {} (private key never sent).", dir.0.display());
    Ok(ExitCode::SUCCESS)
}

/// A time from the gateway (RFC 3339) in this machine's time zone, to the minute.
fn local(rfc3339: &str) -> String {
    match rfc3339.parse::<jiff::Timestamp>() {
        Ok(t) => t
            .to_zoned_datetime(jiff::tz::TimeZone::system())
            .strftime("%Y-%m-%d %H:%M %Z")
            .to_string(),
        Err(_) => rfc3339.to_owned(),
    }
}

/// A request's window, in this machine's time zone.
fn window(r: &RequestSummary) -> String {
    format!("{} to {}", local(&r.window_start), local(&r.window_end))
}

/// Renewal is suggested this many days before the certificate expires.
const RENEW_DAYS: i64 = 14;

/// Where the enrolled certificate stands.
enum Expiry {
    Valid {
        days_left: i64,
    },
    Expired,
    /// `enrollment.json` has no readable expiry; the gateway still decides.
    Unknown,
}

impl Expiry {
    fn of(e: &Enrollment) -> Self {
        let Ok(until) = e.expires_at.parse::<jiff::Timestamp>() else {
            return Self::Unknown;
        };
        let left = until.duration_since(jiff::Timestamp::now());
        if left.is_negative() || left.is_zero() {
            Self::Expired
        } else {
            // Whole days, rounded down: 9 days and 23 hours is "9 days left".
            Self::Valid {
                days_left: left.as_secs() / 86_400,
            }
        }
    }

    fn describe(&self, e: &Enrollment) -> String {
        let until = local(&e.expires_at);
        match self {
            Self::Valid { days_left } if *days_left < RENEW_DAYS => format!(
                "valid until {until} ({days_left} days left: renew now with `sekisho-client renew`)"
            ),
            Self::Valid { days_left } => format!("valid until {until} ({days_left} days left)"),
            Self::Expired => {
                format!("EXPIRED on {until}: ask the hospital's IT for a new enrollment code")
            }
            Self::Unknown => format!("valid until {}", e.expires_at),
        }
    }

    /// A line for stderr when the certificate needs attention.
    fn warning(e: &Enrollment) -> Option<String> {
        let expiry = Self::of(e);
        match expiry {
            Self::Valid { days_left } if days_left < RENEW_DAYS => Some(format!(
                "sekisho-client: the certificate is {}",
                expiry.describe(e)
            )),
            Self::Expired => Some(format!(
                "sekisho-client: the certificate {}",
                expiry.describe(e)
            )),
            _ => None,
        }
    }
}

async fn status(dir: &ClientDir) -> anyhow::Result<ExitCode> {
    let e = dir.enrollment()?;
    println!("enrolled as:   {}", e.username);
    println!("gateway:       {} ({})", e.gateway, e.fingerprint);
    let expiry = Expiry::of(&e);
    println!("certificate:   {}", expiry.describe(&e));
    if let Expiry::Expired = expiry {
        return Ok(ExitCode::FAILURE);
    }
    // Non-zero unless the gateway answered and accepted this certificate, for scripts.
    match connect::connect(&e.gateway, &e.fingerprint, Some(dir.identity()?)).await {
        Ok(link) => {
            let answer = connect::hello(&link.conn).await;
            link.close("done").await;
            match answer {
                Ok(_) => {
                    println!("gateway:       reachable, certificate accepted");
                    Ok(ExitCode::SUCCESS)
                }
                Err(err) => {
                    println!("gateway:       answers, but: {err:#}");
                    Ok(ExitCode::FAILURE)
                }
            }
        }
        Err(err) => {
            println!("gateway:       not reachable: {err:#}");
            Ok(ExitCode::FAILURE)
        }
    }
}

/// OpenSSH (`program`: ssh or scp) set up to reach TARGET through this client: the client
/// itself as ProxyCommand, the gateway's pinned host key, no keys or passwords offered (the
/// client certificate is the credential). Returns the command and the login to use.
fn openssh(
    dir: &ClientDir,
    target: &str,
    program: &str,
    otp: Option<String>,
) -> anyhow::Result<(std::process::Command, String)> {
    let e = dir.enrollment()?;
    if let Some(w) = Expiry::warning(&e) {
        eprintln!("{w}");
    }
    let me = std::env::current_exe().context("cannot find this program's path")?;
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let proxy = format!(
        "{} --dir {} proxy {}",
        quote(&me.display().to_string()),
        quote(&dir.0.display().to_string()),
        quote(target)
    );
    let mut cmd = std::process::Command::new(program);
    // The proxy (ssh's child) reads the one-time code from its environment, never from its
    // command line, which others on this machine can see.
    if let Some(code) = otp {
        cmd.env("SEKISHO_OTP", code);
    }
    cmd.arg("-o")
        .arg(format!("ProxyCommand={proxy}"))
        .arg("-o")
        .arg(format!(
            "UserKnownHostsFile={}",
            dir.path("known_hosts").display()
        ))
        .args([
            "-o",
            &format!("HostKeyAlias={HOST_ALIAS}"),
            "-o",
            "StrictHostKeyChecking=yes",
        ])
        .args([
            "-o",
            "PubkeyAuthentication=no",
            "-o",
            "PasswordAuthentication=no",
        ])
        .args([
            "-o",
            "KbdInteractiveAuthentication=no",
            "-o",
            "GSSAPIAuthentication=no",
        ]);
    Ok((cmd, format!("{}+{target}@{HOST_ALIAS}", e.username)))
}

fn ssh(
    dir: &ClientDir,
    target: &str,
    otp: Option<String>,
    args: &[String],
) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let (mut cmd, login) = openssh(dir, target, "ssh", otp)?;
    let err = cmd.arg(login).args(args).exec();
    bail!("cannot run ssh: {err}")
}

/// Which way `put` / `get` copies.
enum Copy {
    /// Local file → remote path ("" for the home directory).
    Put(PathBuf, String),
    /// Remote path → local file or directory.
    Get(String, PathBuf),
}

/// `scp` (its sftp protocol, so the gateway logs each file and scans uploads) through the
/// gateway, with scp's own progress meter on a terminal.
fn copy(
    dir: &ClientDir,
    target: &str,
    otp: Option<String>,
    what: Copy,
) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let (mut cmd, login) = openssh(dir, target, "scp", otp)?;
    // No `-O`: the legacy protocol is refused where uploads are scanned.
    match what {
        Copy::Put(file, remote) => {
            if !file.is_file() {
                bail!("{} is not a file", file.display());
            }
            cmd.arg("--").arg(&file).arg(format!("{login}:{remote}"));
        }
        Copy::Get(remote, file) => {
            if remote.is_empty() {
                bail!("name the file to download from {target}");
            }
            cmd.arg("--").arg(format!("{login}:{remote}")).arg(&file);
        }
    }
    let err = cmd.exec();
    bail!("cannot run scp: {err}")
}

async fn proxy(dir: &ClientDir, target: &str, otp: Option<String>) -> anyhow::Result<ExitCode> {
    let e = dir.enrollment()?;
    let opened = connect::open_session(
        &e.gateway,
        &e.fingerprint,
        &|| dir.identity(),
        target,
        Service::Ssh,
        &connect::OneTimeCode::new(otp),
    )
    .await
    .map_err(|(connect::Failure::Refused(e) | connect::Failure::Unreachable(e))| e)?;
    let connect::Opened {
        link,
        mut send,
        mut recv,
    } = opened;
    let upload = async {
        let mut stdin = tokio::io::stdin();
        let _ = tokio::io::copy(&mut stdin, &mut send).await;
        let _ = send.finish();
    };
    let download = async {
        let mut stdout = tokio::io::stdout();
        let r = tokio::io::copy(&mut recv, &mut stdout).await;
        let _ = tokio::io::AsyncWriteExt::flush(&mut stdout).await;
        r
    };
    // The session is over when the gateway's side ends, or when ssh is done with us: it
    // closes our stdin, or (on its way out) sends SIGHUP. Either way the gateway is told at
    // once by closing the QUIC connection, so the session ends there too.
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let down = tokio::select! {
        d = download => d,
        () = async {
            upload.await;
            tokio::time::sleep(Duration::from_secs(2)).await;
        } => Ok(0),
        _ = hangup.recv() => Ok(0),
        _ = terminate.recv() => Ok(0),
    };
    link.close("done").await;
    down.map_err(|err| connect::refused(&link.conn, err))?;
    Ok(ExitCode::SUCCESS)
}
