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
use sekisho_protocol::{ClientMessage, ServerMessage, Service};
use sekisho_recorder::stream::{Direction, StreamKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use crate::live::{self, Live, Vendor};
use crate::ssh::Shared;

/// Bytes read at a time from either side (the QUIC and TCP flow control bound the rest).
const CHUNK: usize = 32 * 1024;
/// How long a new stream has to say what it is.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

fn denied(code: &str, message: impl Into<String>) -> ServerMessage {
    ServerMessage::Denied {
        code: code.to_owned(),
        message: message.into(),
    }
}

/// Runs one tunnel session on `conn` for `user`, whose control stream asked for `port` of
/// `target_name`. Returns when the session is over.
pub async fn run(
    shared: Arc<Shared>,
    conn: quinn::Connection,
    user: User,
    target_name: &str,
    port: u16,
    peer: String,
    mut control: quinn::SendStream,
) {
    let live = match admit(&shared, &user, target_name, port, &peer).await {
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
    shared.sessions.spawn(live::supervise(
        live.clone(),
        shared.clone(),
        Vendor::Quic(conn.clone()),
        gone.clone(),
    ));
    if sekisho_protocol::write(&mut control, &ServerMessage::Accepted)
        .await
        .is_err()
    {
        live.end(SessionEnd::Closed, "");
    }
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
        live.pumps.spawn(async move {
            connection(&live2, &host, port, timeout, send, recv).await;
        });
    }
    gone.cancel();
}

/// Decides and starts the session, or says why not (audited).
async fn admit(
    shared: &Shared,
    user: &User,
    target_name: &str,
    port: u16,
    peer: &str,
) -> Result<Arc<Live>, ServerMessage> {
    let refuse = async |target: Option<&Target>, code: &'static str, message: String| {
        live::audit_denied(
            shared,
            user,
            target.map(|t| t.id),
            "tunnel",
            code,
            &message,
            peer,
        )
        .await;
        let name = target.map_or(target_name, |t| t.name.as_str());
        denied(
            code,
            format!("tunnel to {name} port {port} refused: {message}"),
        )
    };
    let unavailable = |e: sekisho_approval_api::store::StoreError| {
        tracing::error!(error = %e, "database failure while admitting a tunnel; refusing it");
        "the gateway cannot check your permission right now (database unavailable); try again later"
            .to_owned()
    };
    let target = match shared.store.target_by_name(target_name).await {
        Ok(Some(t)) => t,
        Ok(None) => {
            let m = format!("no target named {target_name} is registered");
            return Err(refuse(None, "unknown_target", m).await);
        }
        Err(e) => return Err(refuse(None, "database_unavailable", unavailable(e)).await),
    };
    let channel = ChannelKind::Tunnel { port };
    let grant = match live::decide(shared, user, &target, channel, None).await {
        Ok(Ok(g)) => g,
        Ok(Err((code, m))) => return Err(refuse(Some(&target), code, m).await),
        Err(e) => return Err(refuse(Some(&target), "database_unavailable", unavailable(e)).await),
    };
    let (session, recording) =
        match live::begin(shared, user, &target, &grant, Transport::Quic, peer).await {
            Ok(x) => x,
            Err((code, m)) => return Err(refuse(Some(&target), code, m).await),
        };
    Ok(Arc::new(Live::new(
        session,
        grant,
        user.clone(),
        target,
        channel,
        None,
        recording,
    )))
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
    let open = tokio::time::timeout(
        OPEN_TIMEOUT,
        sekisho_protocol::read::<ClientMessage, _>(&mut recv),
    )
    .await;
    let refusal = match open {
        Ok(Ok(ClientMessage::Open {
            target,
            service: Service::Tcp { port: p },
        })) if target == live.target.name && p == port => None,
        Ok(Ok(_)) => Some(denied(
            "protocol_error",
            format!("this tunnel is for {} port {port} only", live.target.name),
        )),
        Ok(Err(e)) => Some(denied("protocol_error", e.to_string())),
        Err(_) => Some(denied("timeout", "no open request within 15 s")),
    };
    if let Some(refusal) = refusal {
        let _ = sekisho_protocol::write(&mut send, &refusal).await;
        let _ = send.finish();
        return;
    }
    let addr = format!("{host}:{port}");
    let tcp = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(session = %live.session.id, addr = %addr, error = %e, "tunnel target refused the connection");
            let m = format!(
                "{} port {port} refused the connection: {e}",
                live.target.name
            );
            let _ = sekisho_protocol::write(&mut send, &denied("connect_failed", m)).await;
            let _ = send.finish();
            return;
        }
        Err(_) => {
            let m = format!(
                "{} port {port} did not answer within {} s",
                live.target.name,
                timeout.as_secs()
            );
            let _ = sekisho_protocol::write(&mut send, &denied("connect_failed", m)).await;
            let _ = send.finish();
            return;
        }
    };
    let _ = tcp.set_nodelay(true);
    let ch = live.next_channel();
    if let Err(e) = live
        .recording
        .stream(ch, StreamKind::Tcp, addr.clone())
        .await
    {
        live.recording_failed(&e);
        let m = format!(
            "the connection cannot be recorded ({e}); access without a recording is not allowed"
        );
        let _ = sekisho_protocol::write(&mut send, &denied("recording_unavailable", m)).await;
        let _ = send.finish();
        return;
    }
    if sekisho_protocol::write(&mut send, &ServerMessage::Accepted)
        .await
        .is_err()
    {
        return;
    }
    tracing::info!(session = %live.session.id, channel = ch, addr = %addr, "tunnel connection opened");
    let (mut tcp_read, mut tcp_write) = tcp.into_split();
    let up = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match recv.read(&mut buf).await {
                Ok(Some(n)) => {
                    let data = buf.get(..n).unwrap_or_default();
                    if let Err(e) = live.recording.frame(ch, Direction::ToTarget, data).await {
                        live.recording_failed(&e);
                        return;
                    }
                    if tcp_write.write_all(data).await.is_err() {
                        return;
                    }
                    live.to_target
                        .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                }
                Ok(None) => {
                    let _ = tcp_write.shutdown().await;
                    return;
                }
                Err(_) => return,
            }
        }
    };
    let down = async {
        let mut buf = vec![0u8; CHUNK];
        loop {
            match tcp_read.read(&mut buf).await {
                Ok(0) => {
                    let _ = send.finish();
                    return;
                }
                Ok(n) => {
                    let data = buf.get(..n).unwrap_or_default();
                    if let Err(e) = live.recording.frame(ch, Direction::FromTarget, data).await {
                        live.recording_failed(&e);
                        return;
                    }
                    if send.write_all(data).await.is_err() {
                        return;
                    }
                    live.from_target
                        .fetch_add(n as u64, std::sync::atomic::Ordering::Relaxed);
                }
                Err(_) => {
                    let _ = send.reset(0u32.into());
                    return;
                }
            }
        }
    };
    // Both directions run until each ends (half-close is kept); the session's end stops both.
    tokio::select! {
        () = async { tokio::join!(up, down); } => {}
        () = live.ended.cancelled() => {}
    }
    tracing::info!(session = %live.session.id, channel = ch, "tunnel connection closed");
}
