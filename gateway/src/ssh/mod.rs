//! The SSH gateway: vendors connect with stock OpenSSH (`ssh -p 2222 alice+pacs@gateway`),
//! the gateway authenticates them by their registered keys, decides with
//! [`sekisho_domain::authorize::authorize`], logs into the target with the credential of the
//! granted level, and relays and records every channel.
//!
//! One connection is one [`conn::Conn`] (the russh handler: authentication, channel requests,
//! vendor→target data) plus, once admitted, one [`crate::session::Live`] session whose supervisor task
//! ends it (window end, revocation, terminate, shutdown) and one pump task per channel
//! (target→vendor data). Flow control is russh's: a relay write waits for the other side's
//! window, so a slow peer slows the other and memory stays bounded.

mod auth;
mod chan;
mod channel;
pub mod conn;
mod file_log;
mod forward;
mod gate;
mod limits;
mod link;
pub mod login;
mod notice;
mod pump;
mod scp;
pub mod sftp;
pub mod target;
mod transfers;
mod uplink;

use gate::refused_at_gate;
pub use gate::{GateRefusal, UnauthSlot, Unauthenticated};

use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::session::Shared;
use limits::{CHANNEL_BUFFER, PACKET, WINDOW};

/// Sent to a connection turned away at `[server] max_connections`, before closing it.
const FULL: &str = "Sekisho: the gateway is at its connection limit; try again later / 接続数の上限に達しています。しばらくしてから接続してください\r\n";

/// The russh server configuration.
pub fn server_config(host_key: PrivateKey) -> Arc<server::Config> {
    let mut methods = russh::MethodSet::empty();
    methods.push(russh::MethodKind::PublicKey);
    Arc::new(server::Config {
        methods,
        keys: vec![host_key],
        auth_rejection_time: Duration::from_millis(500),
        auth_rejection_time_initial: Some(Duration::ZERO),
        max_auth_attempts: 6,
        window_size: WINDOW,
        maximum_packet_size: PACKET,
        channel_buffer_size: CHANNEL_BUFFER,
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        nodelay: true,
        ..server::Config::default()
    })
}

/// Accepts SSH connections until `shared.shutdown` is cancelled, at most `max_connections`
/// at once (further ones wait in the kernel's backlog). Unauthenticated connections pass
/// [`Unauthenticated`] first and must log in within `[ssh] login_grace_seconds`.
pub async fn serve(
    listener: TcpListener,
    config: Arc<server::Config>,
    shared: Arc<Shared>,
    max_connections: usize,
) {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let gate = Unauthenticated::new(
        shared.ssh.max_unauthenticated_per_source as usize,
        shared.ssh.max_unauthenticated as usize,
    );
    let grace = Duration::from_secs(u64::from(shared.ssh.login_grace_seconds));
    loop {
        let (stream, peer) = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "ssh accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // At the limit a connection is turned away at once, told why (a line before the
        // version exchange, which `ssh -v` shows), rather than left waiting in the backlog.
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, max_connections, "ssh connection refused: at [server] max_connections");
            let _ = stream.try_write(FULL.as_bytes());
            refused_at_gate(&shared, peer, GateRefusal::Full);
            continue;
        };
        let slot = match gate.enter(peer.ip()) {
            Ok(slot) => slot,
            Err(why) => {
                // Closed before the banner: it costs the gateway nothing more.
                tracing::warn!(peer = %peer, limit = ?why, "ssh connection refused: too many unauthenticated connections");
                refused_at_gate(&shared, peer, why);
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let authenticated = tokio_util::sync::CancellationToken::new();
        let handler =
            conn::Conn::new(shared.clone(), peer.to_string()).at_gate(slot, authenticated.clone());
        let config = config.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // The version exchange must finish within the grace time too.
            let session =
                tokio::time::timeout(grace, server::run_stream(config, stream, handler)).await;
            let mut running = match session {
                Ok(Ok(running)) => running,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer, error = %e, "ssh handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "ssh handshake timed out");
                    return;
                }
            };
            let handle = running.handle();
            let ended = tokio::select! {
                r = &mut running => Some(r),
                () = authenticated.cancelled() => None,
                () = tokio::time::sleep(grace) => {
                    tracing::info!(peer = %peer, grace_seconds = grace.as_secs(), "ssh connection did not log in in time; closed");
                    let _ = handle
                        .disconnect(
                            russh::Disconnect::ByApplication,
                            "Sekisho: login took too long".into(),
                            "en".into(),
                        )
                        .await;
                    Some((&mut running).await)
                }
            };
            let result = match ended {
                Some(r) => r,
                None => running.await,
            };
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "ssh connection ended with an error");
            }
        });
    }
}
