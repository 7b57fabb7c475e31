//! `sekisho-client tunnel pacs 443`: a local TCP port forwarded to a port of the target.
//!
//! One QUIC connection per tunnel: its control stream holds the session open, and each local
//! TCP connection is one more QUIC stream (see `sekisho-protocol`). The gateway decides,
//! connects, relays and records; the client only copies bytes and reports.

use std::io::{IsTerminal, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use bytes::BytesMut;
use sekisho_protocol::Service;
use sekisho_protocol::transport::{CLOSE_GATEWAY_STOPPING, ChunkSink, next_chunk};
use tokio::io::AsyncRead;
use tokio::net::{TcpListener, TcpStream};
use tokio::signal::unix::{SignalKind, signal};

use crate::connect::{self, Failure, Identity, Link};

/// Reconnection attempts after the network is lost, with doubling delays up to 30 s.
const RECONNECTS: u32 = 8;

/// What `tunnel` needs to (re)connect.
pub struct Tunnel {
    pub gateway: String,
    pub fingerprint: String,
    pub identity: Box<dyn Fn() -> anyhow::Result<Identity> + Send + Sync>,
    pub target: String,
    /// `Service::Tcp { port }` or `Service::Rdp`.
    pub service: Service,
    /// The account's one-time code, if given (else asked for when the gateway wants one).
    pub codes: connect::OneTimeCode,
    /// For `Service::Rdp`: start this RDP client (program and arguments; the local address is
    /// added as `/v:`) and stop when it exits.
    pub launch: Option<Vec<String>>,
}

impl Tunnel {
    fn what(&self) -> String {
        match self.service {
            Service::Tcp { port } => format!("{} port {port}", self.target),
            Service::Rdp => format!("the remote desktop of {}", self.target),
            Service::Ssh => format!("SSH on {}", self.target),
        }
    }
}

#[derive(Default)]
struct Counts {
    connections: AtomicU64,
    up: AtomicU64,
    down: AtomicU64,
}

impl Counts {
    fn line(&self) -> String {
        format!(
            "{} connection(s), {} sent, {} received",
            self.connections.load(Ordering::Relaxed),
            bytes(self.up.load(Ordering::Relaxed)),
            bytes(self.down.load(Ordering::Relaxed)),
        )
    }
}

fn bytes(n: u64) -> String {
    #[allow(clippy::cast_precision_loss)]
    let f = n as f64;
    match n {
        0..1_024 => format!("{n} B"),
        1_024..1_048_576 => format!("{:.1} KiB", f / 1024.0),
        _ => format!("{:.1} MiB", f / 1_048_576.0),
    }
}

/// How a connection to the gateway ended.
enum Ended {
    /// ctrl-c or SIGTERM.
    ByUser,
    /// The gateway ended the session and said why.
    ByGateway(String),
    /// The network failed, or the gateway is restarting; worth reconnecting.
    Lost(String),
}

/// Binds `local` (default: 127.0.0.1 and the same port when it is unprivileged, else any
/// free port) and forwards until ctrl-c or the gateway ends the session.
pub async fn run(t: Tunnel, local: Option<SocketAddr>) -> anyhow::Result<()> {
    // Ask first, so that a refusal is reported before anything listens.
    let mut session = match establish(&t).await {
        Ok(s) => s,
        Err(Failure::Refused(e) | Failure::Unreachable(e)) => return Err(e),
    };
    let listener = match local {
        Some(addr) => TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?,
        None => match t.service {
            Service::Tcp { port } if port >= 1024 => {
                match TcpListener::bind(("127.0.0.1", port)).await {
                    Ok(l) => l,
                    Err(_) => TcpListener::bind(("127.0.0.1", 0)).await?,
                }
            }
            _ => TcpListener::bind(("127.0.0.1", 0)).await?,
        },
    };
    let addr = listener.local_addr()?;
    println!(
        "Forwarding {addr} -> {} through {} (ctrl-c to stop)",
        t.what(),
        t.gateway
    );
    if t.service == Service::Rdp {
        println!(
            "Connect your RDP client to {addr}; the gateway logs in to {} for you (no Windows password):\n  xfreerdp /v:{addr} /sec:tls /cert:ignore\n  mstsc /v:{addr}",
            t.target
        );
    }
    std::io::stdout().flush()?;
    let stop = Arc::new(tokio::sync::Notify::new());
    if let Some(command) = &t.launch {
        launch(command, addr, stop.clone())?;
    }
    let counts = Arc::new(Counts::default());
    let progress = tokio::spawn(report(counts.clone()));
    let mut attempt = 0;
    let outcome = loop {
        match serve(&t, &session.link, &listener, &counts, &stop).await? {
            Ended::ByUser => {
                session.link.close("closed by the user").await;
                break Ok(());
            }
            Ended::ByGateway(reason) => break Err(anyhow::anyhow!("{reason}")),
            Ended::Lost(why) => loop {
                attempt += 1;
                if attempt > RECONNECTS {
                    progress.abort();
                    bail!(
                        "the connection to the gateway was lost ({why}) and could not be re-established"
                    );
                }
                let delay = Duration::from_secs((1u64 << attempt.min(5)).min(30));
                eprintln!(
                    "sekisho-client: connection to the gateway lost ({why}); reconnecting in {} s (attempt {attempt} of {RECONNECTS})",
                    delay.as_secs()
                );
                tokio::time::sleep(delay).await;
                match establish(&t).await {
                    Ok(s) => {
                        eprintln!(
                            "sekisho-client: reconnected; open connections were lost, new ones are forwarded"
                        );
                        session = s;
                        attempt = 0;
                        break;
                    }
                    Err(Failure::Refused(e)) => {
                        progress.abort();
                        return Err(e);
                    }
                    Err(Failure::Unreachable(e)) => eprintln!("sekisho-client: {e:#}"),
                }
            },
        }
    };
    progress.abort();
    eprintln!("sekisho-client: tunnel closed: {}", counts.line());
    outcome
}

/// An admitted tunnel session: the connection and its control stream, which stays open for
/// the session's life.
struct Session {
    link: Link,
    _control: quinn::SendStream,
    /// Prints the gateway's notices; dropping the set stops it with the session.
    _notices: tokio::task::JoinSet<()>,
}

/// Prints what the gateway says on the control stream while the session lasts (the window
/// closes soon).
async fn notices(mut recv: quinn::RecvStream) {
    while let Ok(message) =
        sekisho_protocol::read::<sekisho_protocol::ServerMessage, _>(&mut recv).await
    {
        if let sekisho_protocol::ServerMessage::Notice { message } = message {
            eprintln!("\nsekisho-client: {message}");
        }
    }
}

/// Connects, says hello and asks for the tunnel on the control stream.
async fn establish(t: &Tunnel) -> Result<Session, Failure> {
    let opened = connect::open_session(
        &t.gateway,
        &t.fingerprint,
        &*t.identity,
        &t.target,
        t.service,
        &t.codes,
    )
    .await?;
    let mut printer = tokio::task::JoinSet::new();
    printer.spawn(notices(opened.recv));
    Ok(Session {
        link: opened.link,
        _control: opened.send,
        _notices: printer,
    })
}

/// Accepts local connections until the user stops, the gateway ends the session, or the
/// network fails.
async fn serve(
    t: &Tunnel,
    link: &Link,
    listener: &TcpListener,
    counts: &Arc<Counts>,
    stop: &tokio::sync::Notify,
) -> anyhow::Result<Ended> {
    let mut terminate = signal(SignalKind::terminate())?;
    loop {
        let (tcp, from) = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(Ended::ByUser),
            () = stop.notified() => return Ok(Ended::ByUser),
            _ = terminate.recv() => return Ok(Ended::ByUser),
            e = link.conn.closed() => return Ok(match e {
                quinn::ConnectionError::ApplicationClosed(c)
                    if c.error_code == CLOSE_GATEWAY_STOPPING.into() =>
                {
                    Ended::Lost(String::from_utf8_lossy(&c.reason).into_owned())
                }
                quinn::ConnectionError::ApplicationClosed(c) => {
                    Ended::ByGateway(String::from_utf8_lossy(&c.reason).into_owned())
                }
                quinn::ConnectionError::ConnectionClosed(c) => {
                    Ended::ByGateway(format!("the gateway closed the connection: {c}"))
                }
                other => Ended::Lost(other.to_string()),
            }),
            a = listener.accept() => match a {
                Ok(x) => x,
                Err(e) => {
                    eprintln!("sekisho-client: cannot accept a local connection: {e}");
                    continue;
                }
            },
        };
        let conn = link.conn.clone();
        let counts = counts.clone();
        let target = t.target.clone();
        let service = t.service;
        tokio::spawn(async move {
            if let Err(e) = forward(&conn, tcp, &target, service, &counts).await {
                eprintln!("sekisho-client: connection from {from}: {e:#}");
            }
        });
    }
}

/// One local TCP connection: a new stream, the gateway's answer, then bytes both ways.
async fn forward(
    conn: &quinn::Connection,
    tcp: TcpStream,
    target: &str,
    service: Service,
    counts: &Counts,
) -> anyhow::Result<()> {
    let _ = tcp.set_nodelay(true);
    let (mut send, mut recv) = conn
        .open_bi()
        .await
        .map_err(|e| connect::refused(conn, e))?;
    connect::open(conn, &mut send, &mut recv, target, service, None).await?;
    counts.connections.fetch_add(1, Ordering::Relaxed);
    let (tcp_read, mut tcp_write) = tcp.into_split();
    let (up, down) = tokio::join!(
        copy(tcp_read, &mut send, &counts.up),
        copy(recv, &mut tcp_write, &counts.down),
    );
    up.and(down).context("connection interrupted")
}

/// Starts the vendor's RDP client on `addr`; `stop` is notified when it exits.
fn launch(
    command: &[String],
    addr: SocketAddr,
    stop: Arc<tokio::sync::Notify>,
) -> anyhow::Result<()> {
    let Some((program, args)) = command.split_first() else {
        bail!("no RDP client to launch");
    };
    let mut child = tokio::process::Command::new(program)
        .arg(format!("/v:{addr}"))
        .args(args)
        .kill_on_drop(true)
        .spawn()
        .with_context(|| format!("cannot start the RDP client `{program}`"))?;
    eprintln!("sekisho-client: started {program}");
    tokio::spawn(async move {
        match child.wait().await {
            Ok(status) => eprintln!("sekisho-client: the RDP client exited ({status})"),
            Err(e) => eprintln!("sekisho-client: the RDP client failed: {e}"),
        }
        stop.notify_one();
    });
    Ok(())
}

/// Copies until end of input, then ends the output (TCP half-close, QUIC stream finish).
async fn copy(
    mut from: impl AsyncRead + Unpin,
    to: &mut impl ChunkSink,
    count: &AtomicU64,
) -> std::io::Result<()> {
    let mut buf = BytesMut::new();
    while let Some(chunk) = next_chunk(&mut from, &mut buf).await? {
        let n = chunk.len() as u64;
        to.put(chunk).await?;
        count.fetch_add(n, Ordering::Relaxed);
    }
    to.end().await;
    Ok(())
}

/// The running byte count: rewritten in place on a terminal, a line every 5 s otherwise
/// (when it changed).
async fn report(counts: Arc<Counts>) {
    let tty = std::io::stderr().is_terminal();
    let every = Duration::from_secs(if tty { 1 } else { 5 });
    let mut last = String::new();
    loop {
        tokio::time::sleep(every).await;
        let line = counts.line();
        if line != last {
            if tty {
                eprint!("\r{line}   ");
            } else {
                eprintln!("{line}");
            }
            last = line;
        }
    }
}
