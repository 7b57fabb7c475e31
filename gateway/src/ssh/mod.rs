//! The SSH gateway: vendors connect with stock OpenSSH (`ssh -p 2222 alice+pacs@gateway`),
//! the gateway authenticates them by their registered keys, decides with
//! [`sekisho_domain::authorize::authorize`], logs into the target with the credential of the
//! granted level, and relays and records every channel.
//!
//! One connection is one [`conn::Conn`] (the russh handler: authentication, channel requests,
//! vendor→target data) plus, once admitted, one [`crate::live::Live`] session whose supervisor task
//! ends it (window end, revocation, terminate, shutdown) and one pump task per channel
//! (target→vendor data). Flow control is russh's: a relay write waits for the other side's
//! window, so a slow peer slows the other and memory stays bounded.

pub mod conn;
pub mod login;
mod pump;
pub mod sftp;
pub mod target;
mod uplink;

use std::sync::Arc;
use std::time::Duration;

use russh::keys::PrivateKey;
use russh::server;
use sekisho_approval_api::Store;
use sekisho_approval_api::crypto::AtRestKey;
use sekisho_approval_api::events::Events;
use sekisho_config::SshConfig;
use sekisho_domain::policy::Policy;
use sekisho_domain::zone::DisplayZone;
use sekisho_recorder::Recorder;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// SSH channel window (bytes) on both legs (OpenSSH's sshd uses the same).
pub(crate) const WINDOW: u32 = 2 * 1024 * 1024;
/// Largest SSH packet payload on both legs.
pub(crate) const PACKET: u32 = 32 * 1024;
/// Messages buffered per channel inside russh before it stops reading the socket.
pub(crate) const CHANNEL_BUFFER: usize = 64;
/// Session channels (shells, execs, sftp, forwards) one connection may hold at once.
pub(crate) const MAX_CHANNELS: usize = 16;
/// How long a refused connection stays open so the vendor can read why.
pub(crate) const REFUSED_LINGER: Duration = Duration::from_secs(10);

/// Everything a connection needs, shared by all of them.
pub struct Shared {
    pub store: Store,
    pub at_rest: Arc<AtRestKey>,
    pub recorder: Recorder,
    pub events: Events,
    /// Refused logins are audited through it, so that a flood of them cannot flood the log.
    pub failures: Arc<sekisho_approval_api::failures::FailureLog>,
    /// Password checks (enrollment) go through the same bounded pool as API logins.
    pub hasher: sekisho_approval_api::password::Hasher,
    pub policy: Policy,
    pub zone: DisplayZone,
    pub ssh: SshConfig,
    /// Minutes before the window end at which vendors are warned.
    pub warnings: Vec<u32>,
    /// This gateway node (sessions it leaves open are aborted on its next start).
    pub node: String,
    /// Cancelled when the gateway stops: live sessions end as aborted.
    pub shutdown: CancellationToken,
    /// Session supervisors, awaited (within the grace period) before the gateway exits.
    pub sessions: tokio_util::task::TaskTracker,
}

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
/// at once (further ones wait in the kernel's backlog).
pub async fn serve(
    listener: TcpListener,
    config: Arc<server::Config>,
    shared: Arc<Shared>,
    max_connections: usize,
) {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    loop {
        let permit = tokio::select! {
            () = shared.shutdown.cancelled() => return,
            p = slots.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
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
        let _ = stream.set_nodelay(true);
        let handler = conn::Conn::new(shared.clone(), peer.to_string());
        let config = config.clone();
        tokio::spawn(async move {
            let _permit = permit;
            // The version exchange and key exchange must finish in time.
            let session = tokio::time::timeout(
                Duration::from_secs(30),
                server::run_stream(config, stream, handler),
            )
            .await;
            match session {
                Ok(Ok(running)) => {
                    if let Err(e) = running.await {
                        tracing::debug!(peer = %peer, error = %e, "ssh connection ended with an error");
                    }
                }
                Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "ssh handshake failed"),
                Err(_) => tracing::debug!(peer = %peer, "ssh handshake timed out"),
            }
        });
    }
}
