//! The gate in front of the SSH port: connections that have not logged in yet are limited
//! per source address and in all, so idle connections cannot lock vendors out; each must
//! log in within the grace time (the accept loop enforces that).

use std::sync::Arc;

use sekisho_domain::refusal::{Channel, Code};

use crate::session::Shared;

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
    /// The listener holds `[server] max_connections` connections (logged in or not).
    Full,
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

/// Audits (aggregated per address) a connection turned away at the gate.
pub(super) fn refused_at_gate(shared: &Arc<Shared>, peer: std::net::SocketAddr, why: GateRefusal) {
    let failures = shared.failures.clone();
    tokio::spawn(async move {
        let reason = match why {
            GateRefusal::Source => "too many unauthenticated connections from this address",
            GateRefusal::Total => "too many unauthenticated connections in all",
            GateRefusal::Full => "the gateway holds [server] max_connections connections",
        };
        let code = match why {
            GateRefusal::Source | GateRefusal::Total => Code::TooManyUnauthenticated,
            GateRefusal::Full => Code::GatewayFull,
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
                channel: Channel::Ssh,
                code,
            },
        };
        if let Err(e) = failures.record(Channel::Ssh, ev).await {
            tracing::error!(error = %e, "cannot audit a connection refused at the gate");
        }
    });
}
