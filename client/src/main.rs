//! `sekisho-client`: the hospital's designated client for vendor engineers.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sekisho_client::connect::{self, Identity};
use sekisho_client::files::{ClientDir, Enrollment, HOST_ALIAS};
use sekisho_protocol::{ClientMessage, ServerMessage, Service};
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
    },
    /// Show the enrollment and whether the gateway answers.
    Status,
    /// Run OpenSSH to TARGET through the gateway (arguments after `--` go to ssh).
    Ssh {
        target: String,
        #[arg(last = true)]
        args: Vec<String>,
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
}

#[tokio::main]
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
    match cli.command {
        Command::Enroll {
            gateway,
            code,
            fingerprint,
        } => enroll(&dir, &gateway, &code, &fingerprint).await,
        Command::Status => status(&dir).await,
        Command::Ssh { target, args } => ssh(&dir, &target, &args),
        Command::Proxy { target } => proxy(&dir, &target).await,
        Command::Tunnel {
            target,
            port,
            local,
        } => {
            let e = dir.enrollment()?;
            let t = sekisho_client::tunnel::Tunnel {
                gateway: e.gateway,
                fingerprint: e.fingerprint,
                identity: Box::new(move || identity(&dir)),
                target,
                port,
            };
            sekisho_client::tunnel::run(t, local).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn enroll(
    dir: &ClientDir,
    gateway: &str,
    code: &str,
    fingerprint: &str,
) -> anyhow::Result<ExitCode> {
    // The key pair is made here; only the public half leaves this machine, in the CSR.
    let key = rcgen::KeyPair::generate().context("cannot generate a key pair")?;
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "sekisho-client");
    let csr = params.serialize_request(&key)?.pem()?;
    let link = connect::connect(gateway, fingerprint, None).await?;
    let (mut send, mut recv) = connect::hello(&link.conn).await?;
    sekisho_protocol::write(
        &mut send,
        &ClientMessage::Enroll {
            code: code.trim().to_owned(),
            csr_pem: csr,
        },
    )
    .await?;
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
    println!("Enrolled as {username}; the certificate is valid until {expires_at}.");
    println!("Files are in {} (private key never sent).", dir.0.display());
    Ok(ExitCode::SUCCESS)
}

fn identity(dir: &ClientDir) -> anyhow::Result<Identity> {
    let certs = CertificateDer::pem_slice_iter(dir.read("client.crt")?.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .context("client.crt is damaged; enroll again")?;
    let key = PrivateKeyDer::from_pem_slice(dir.read("client.key")?.as_bytes())
        .context("client.key is damaged; enroll again")?;
    Ok(Identity { certs, key })
}

async fn status(dir: &ClientDir) -> anyhow::Result<ExitCode> {
    let e = dir.enrollment()?;
    println!("enrolled as:   {}", e.username);
    println!("gateway:       {} ({})", e.gateway, e.fingerprint);
    println!("certificate:   valid until {}", e.expires_at);
    match connect::connect(&e.gateway, &e.fingerprint, Some(identity(dir)?)).await {
        Ok(link) => {
            match connect::hello(&link.conn).await {
                Ok(_) => println!("gateway:       reachable"),
                Err(err) => println!("gateway:       answers, but: {err:#}"),
            }
            link.close("done").await;
        }
        Err(err) => println!("gateway:       not reachable: {err:#}"),
    }
    Ok(ExitCode::SUCCESS)
}

fn ssh(dir: &ClientDir, target: &str, args: &[String]) -> anyhow::Result<ExitCode> {
    use std::os::unix::process::CommandExt;
    let e = dir.enrollment()?;
    let me = std::env::current_exe().context("cannot find this program's path")?;
    let quote = |s: &str| format!("'{}'", s.replace('\'', "'\\''"));
    let proxy = format!(
        "{} --dir {} proxy {}",
        quote(&me.display().to_string()),
        quote(&dir.0.display().to_string()),
        quote(target)
    );
    let err = std::process::Command::new("ssh")
        .arg("-o")
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
        // The client certificate is the credential: no keys or passwords are offered.
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
        ])
        .arg(format!("{}+{target}@{HOST_ALIAS}", e.username))
        .args(args)
        .exec();
    bail!("cannot run ssh: {err}")
}

async fn proxy(dir: &ClientDir, target: &str) -> anyhow::Result<ExitCode> {
    let e = dir.enrollment()?;
    let link = connect::connect(&e.gateway, &e.fingerprint, Some(identity(dir)?)).await?;
    let (mut send, mut recv) = connect::hello(&link.conn).await?;
    connect::open(&link.conn, &mut send, &mut recv, target, Service::Ssh).await?;
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
