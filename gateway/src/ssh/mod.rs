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
use sekisho_config::SshConfig;
use sekisho_domain::policy::Policy;
use sekisho_domain::zone::DisplayZone;
use sekisho_recorder::Recorder;
use sekisho_store::Store;
use sekisho_store::crypto::AtRestKey;
use sekisho_store::events::Events;
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
    pub failures: Arc<sekisho_store::failures::FailureLog>,
    /// Password checks (enrollment) go through the same bounded pool as API logins.
    pub hasher: sekisho_store::password::Hasher,
    pub policy: Policy,
    pub zone: DisplayZone,
    pub ssh: SshConfig,
    /// What a vendor may send at a level without uploads.
    pub input_limits: sekisho_domain::upload::InputLimits,
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

/// Connections that have not authenticated yet, per source address and in all: the gate in
/// front of the SSH port. Idle connections cannot crowd out a real vendor: each address may
/// hold only a few unauthenticated connections, all of them together only a bounded number,
/// and each must authenticate within the login grace time.
#[derive(Debug)]
pub struct Unauthenticated {
    per_source: std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>,
    max_per_source: usize,
    max_total: usize,
}

/// One unauthenticated connection's place at the gate; given back when dropped (the
/// connection authenticated or ended).
#[derive(Debug)]
pub struct UnauthSlot {
    gate: Arc<Unauthenticated>,
    source: std::net::IpAddr,
}

impl Drop for UnauthSlot {
    fn drop(&mut self) {
        let mut map = self
            .gate
            .per_source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(n) = map.get_mut(&self.source) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.source);
            }
        }
    }
}

/// Why a connection was not let through the gate.
#[derive(Debug, PartialEq, Eq)]
pub enum GateRefusal {
    Source,
    Total,
}

impl Unauthenticated {
    pub fn new(max_per_source: usize, max_total: usize) -> Arc<Self> {
        Arc::new(Self {
            per_source: std::sync::Mutex::default(),
            max_per_source: max_per_source.max(1),
            max_total: max_total.max(1),
        })
    }

    /// A place for a new connection from `source`, or why not.
    pub fn enter(self: &Arc<Self>, source: std::net::IpAddr) -> Result<UnauthSlot, GateRefusal> {
        let mut map = self
            .per_source
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let total: usize = map.values().sum();
        let mine = map.get(&source).copied().unwrap_or(0);
        if mine >= self.max_per_source {
            return Err(GateRefusal::Source);
        }
        if total >= self.max_total {
            return Err(GateRefusal::Total);
        }
        *map.entry(source).or_insert(0) += 1;
        Ok(UnauthSlot {
            gate: self.clone(),
            source,
        })
    }
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

/// Audits (aggregated per address) a connection turned away at the gate.
fn refused_at_gate(shared: &Arc<Shared>, peer: std::net::SocketAddr, why: GateRefusal) {
    let failures = shared.failures.clone();
    tokio::spawn(async move {
        let reason = match why {
            GateRefusal::Source => "too many unauthenticated connections from this address",
            GateRefusal::Total => "too many unauthenticated connections in all",
        };
        let ev = sekisho_store::audit::NewAuditEvent {
            actor: sekisho_domain::audit::Actor::Anonymous {
                claimed: String::new(),
            },
            outcome: sekisho_domain::audit::Outcome::Denied,
            vendor_id: None,
            source_addr: Some(peer.ip().to_string()),
            reason: Some(reason.into()),
            event: sekisho_domain::audit::AuditEvent::AccessDenied {
                target: None,
                request: None,
                channel: "ssh".into(),
                code: "too_many_unauthenticated".into(),
            },
        };
        if let Err(e) = failures.record("ssh", ev).await {
            tracing::error!(error = %e, "cannot audit a connection refused at the gate");
        }
    });
}
