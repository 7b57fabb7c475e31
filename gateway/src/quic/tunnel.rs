//! Designated-client TCP tunnels (`sekisho-client tunnel pacs 443`).
//!
//! The connection's control stream asks for `Open { target, Tcp { port } }`; the gateway
//! decides it with `authorize` for [`ChannelKind::Tunnel`], starts a session (recording,
//! session row, supervisor) and answers `Accepted`. The control stream then stays open for
//! the session's life. Each TCP connection the vendor makes is one further bidirectional
//! QUIC stream that starts with the same `Open`, answered `Accepted` once the gateway has
//! connected to the target's port; after that the stream carries the raw bytes, recorded in
//! both directions as a TCP stream recording (exportable to pcap).
//!
//! The session ends like an SSH session (revocation, window end, terminate, shutdown): the
//! supervisor closes the QUIC connection with the reason, which the client prints.

use std::sync::Arc;
use std::time::Duration;

use sekisho_domain::authorize::ChannelKind;
use sekisho_domain::session::{SessionEnd, Transport};
use sekisho_domain::target::Target;
use sekisho_domain::user::User;
use sekisho_protocol::{ServerMessage, Service};
use sekisho_recorder::stream::{Direction, StreamKind};

use bytes::BytesMut;
use sekisho_protocol::transport::{ChunkSink, next_chunk};
use tokio::io::AsyncRead;
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use sekisho_domain::refusal::{Channel, Code, Refusal};
use sekisho_protocol::transport;

use crate::session::{Link, LinkFuture, Live, Shared, admit};

fn denied(code: Code, message: impl Into<String>) -> ServerMessage {
    ServerMessage::Denied {
        code: code.as_str().to_owned(),
        message: message.into(),
    }
}

/// What each stream of the session carries.
#[derive(Clone)]
pub enum Kind {
    /// Raw bytes to a TCP port of the target.
    Tcp { port: u16 },
    /// One RDP connection, relayed by [`super::rdp`] with the gateway's TLS settings.
    Rdp { tls: Arc<rustls::ServerConfig> },
}

impl Kind {
    fn channel(&self) -> (ChannelKind, Channel) {
        match self {
            Kind::Tcp { port } => (ChannelKind::Tunnel { port: *port }, Channel::Tunnel),
            Kind::Rdp { .. } => (ChannelKind::Rdp, Channel::Rdp),
        }
    }

    fn describe(&self, target: &str) -> String {
        match self {
            Kind::Tcp { port } => format!("tunnel to {target} port {port}"),
            Kind::Rdp { .. } => format!("remote desktop to {target}"),
        }
    }
}

/// Runs one tunnel or remote desktop session on `conn` for `user`, whose control stream
/// asked for `kind` on `target_name`. Returns when the session is over.
pub async fn run(
    shared: Arc<Shared>,
    conn: quinn::Connection,
    user: User,
    target_name: &str,
    kind: Kind,
    peer: String,
    mut control: quinn::SendStream,
) {
    let live = match admit(&shared, &user, target_name, &kind, &peer).await {
        Ok(live) => live,
        Err(message) => {
            let _ = sekisho_protocol::write(&mut control, &message).await;
            let _ = control.finish();
            // Let the refusal reach the client before the connection goes.
            let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
            return;
        }
    };
    let gone = CancellationToken::new();
    shared.sessions.spawn(crate::session::supervise::supervise(
        live.clone(),
        shared.clone(),
        Box::new(QuicLink(conn.clone())),
        gone.clone(),
    ));
    if sekisho_protocol::write(&mut control, &ServerMessage::Accepted)
        .await
        .is_err()
    {
        live.end(SessionEnd::Closed, "");
    }
    tokio::spawn(notices(live.clone(), control));
    loop {
        let (send, recv) = tokio::select! {
            () = live.ended.cancelled() => break,
            accepted = conn.accept_bi() => match accepted {
                Ok(s) => s,
                Err(e) => {
                    tracing::debug!(session = %live.session.id, error = %e, "tunnel connection closed");
                    break;
                }
            },
        };
        let live2 = live.clone();
        let host = live.target.host.clone();
        let timeout = Duration::from_secs(u64::from(shared.ssh.connect_timeout_seconds));
        let kind = kind.clone();
        let shared = shared.clone();
        live.pumps.spawn(async move {
            match kind {
                Kind::Tcp { port } => connection(&live2, &host, port, timeout, send, recv).await,
                Kind::Rdp { tls } => {
                    super::rdp::connection(&shared, &live2, tls, send, recv).await;
                }
            }
        });
    }
    gone.cancel();
}

/// Sends the supervisor's notices (the window closes soon) on the control stream, where the
/// client prints them, until the session ends.
async fn notices(live: Arc<Live>, mut control: quinn::SendStream) {
    let mut notices = live.notices.subscribe();
    loop {
        tokio::select! {
            () = live.ended.cancelled() => return,
            changed = notices.changed() => {
                if changed.is_err() {
                    return;
                }
                let message = notices.borrow_and_update().clone();
                let notice = ServerMessage::Notice { message };
                if sekisho_protocol::write(&mut control, &notice).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Decides and starts the session, or says why not (audited).
async fn admit(
    shared: &Shared,
    user: &User,
    target_name: &str,
    kind: &Kind,
    peer: &str,
) -> Result<Arc<Live>, ServerMessage> {
    let refused = |target: Option<&Target>, refusal: Refusal| {
        let name = target.map_or(target_name, |t| t.name.as_str());
        denied(
            refusal.code,
            format!("{} refused: {}", kind.describe(name), refusal.message),
        )
    };
    let (channel, audited_as) = kind.channel();
    let (target, grant) =
        match admit::admit(shared, user, target_name, channel, None, audited_as, peer).await {
            Ok(admitted) => admitted,
            Err((target, refusal)) => return Err(refused(target.as_ref(), refusal)),
        };
    let (session, recording) =
        match admit::begin(shared, user, &target, &grant, Transport::Quic, peer).await {
            Ok(x) => x,
            Err(refusal) => {
                admit::audit_denied(shared, user, Some(target.id), audited_as, &refusal, peer)
                    .await;
                return Err(refused(Some(&target), refusal));
            }
        };
    Ok(Arc::new(Live::new(
        session,
        grant,
        user.clone(),
        target,
        channel,
        recording,
    )))
}

/// How a tunnel session's end reaches the vendor: the QUIC connection is closed with the
/// reason, which the client prints; its code says whether the gateway is only stopping (then
/// the tunnel reconnects). There is no gateway connection to a target to close: each TCP
/// connection belongs to its relay task.
pub struct QuicLink(pub quinn::Connection);

impl Link for QuicLink {
    fn close_vendor<'a>(
        &'a self,
        how: SessionEnd,
        message: &'a str,
        _vendor_gone: &'a CancellationToken,
    ) -> LinkFuture<'a> {
        Box::pin(async move {
            let code = if how == SessionEnd::Aborted {
                transport::CLOSE_GATEWAY_STOPPING
            } else {
                transport::CLOSE_SESSION_ENDED
            };
            let text = if message.is_empty() {
                "session closed"
            } else {
                message
            };
            self.0
                .close(code.into(), format!("Sekisho: {text}").as_bytes());
        })
    }

    fn close_target(&self) -> LinkFuture<'_> {
        Box::pin(async {})
    }
}

/// One vendor TCP connection: check the stream's `Open`, connect, relay and record.
async fn connection(
    live: &Live,
    host: &str,
    port: u16,
    timeout: Duration,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let (tcp, ch) = match open(live, host, port, timeout, &mut recv).await {
        Ok(opened) => opened,
        Err(refusal) => {
            let _ = sekisho_protocol::write(&mut send, &refusal).await;
            let _ = send.finish();
            return;
        }
    };
    if sekisho_protocol::write(&mut send, &ServerMessage::Accepted)
        .await
        .is_err()
    {
        return;
    }
    tracing::info!(session = %live.session.id, channel = ch, host, port, "tunnel connection opened");
    let (tcp_read, mut tcp_write) = tcp.into_split();
    let up = relay(live, ch, Direction::ToTarget, recv, &mut tcp_write);
    let down = async {
        if relay(live, ch, Direction::FromTarget, tcp_read, &mut send)
            .await
            .is_err()
        {
            // The target's side failed: the vendor's side is reset, not ended cleanly.
            let _ = send.reset(0u32.into());
        }
    };
    // Both directions run until each ends (half-close is kept); the session's end stops both.
    tokio::select! {
        _ = async { tokio::join!(up, down) } => {}
        () = live.ended.cancelled() => {}
    }
    tracing::info!(session = %live.session.id, channel = ch, "tunnel connection closed");
}

/// Checks the stream asks for this tunnel, connects to the target's port and starts the
/// connection's recording channel; or says why not.
async fn open(
    live: &Live,
    host: &str,
    port: u16,
    timeout: Duration,
    recv: &mut quinn::RecvStream,
) -> Result<(TcpStream, u32), ServerMessage> {
    let only = || format!("this tunnel is for {} port {port} only", live.target.name);
    super::open::expect_open(live, Service::Tcp { port }, only, recv)
        .await
        .map_err(|r| denied(r.code, r.message))?;
    let addr = format!("{host}:{port}");
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(session = %live.session.id, addr = %addr, error = %e, "tunnel target refused the connection");
            let m = format!(
                "{} port {port} refused the connection: {e}",
                live.target.name
            );
            return Err(denied(Code::ConnectFailed, m));
        }
        Err(_) => {
            let m = format!(
                "{} port {port} did not answer within {} s",
                live.target.name,
                timeout.as_secs()
            );
            return Err(denied(Code::ConnectFailed, m));
        }
    };
    let _ = tcp.set_nodelay(true);
    let ch = live.next_channel();
    if let Err(e) = live.recording.stream(ch, StreamKind::Tcp, addr).await {
        live.recording_failed(&e);
        let m = format!(
            "the connection cannot be recorded ({e}); access without a recording is not allowed"
        );
        return Err(denied(Code::RecordingUnavailable, m));
    }
    Ok((tcp, ch))
}

/// Copies `from` to `to`, each chunk recorded (as `direction` on channel `ch`) before it is
/// passed on, and counted. At the end of `from`, ends `to` (TCP half-close, QUIC stream
/// finish). `Err` when either side failed; a recording failure also ends the session.
async fn relay(
    live: &Live,
    ch: u32,
    direction: Direction,
    mut from: impl AsyncRead + Unpin,
    to: &mut impl ChunkSink,
) -> Result<(), ()> {
    let mut buf = BytesMut::new();
    loop {
        let Some(chunk) = next_chunk(&mut from, &mut buf).await.map_err(|_| ())? else {
            to.end().await;
            return Ok(());
        };
        let n = chunk.len();
        // The recording shares the chunk: no copy.
        if let Err(e) = live
            .recording
            .frame_shared(ch, direction, chunk.clone())
            .await
        {
            live.recording_failed(&e);
            return Err(());
        }
        to.put(chunk).await.map_err(|_| ())?;
        live.relayed(direction, n);
    }
}
