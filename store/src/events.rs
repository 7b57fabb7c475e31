//! Events that must end live sessions at once: revocation, a disabled account, a suspended
//! vendor, an approver's terminate.
//!
//! Within one process the API and the gateway share a broadcast channel. Between nodes on one
//! PostgreSQL database, [`Events::send`] also publishes the event with `NOTIFY` on
//! [`CHANNEL`], and every node's [`listen`](crate::Store::listen) loop hands what it hears to
//! its own broadcast. Neither is the only safeguard: the database row is the truth (the
//! request revoked, the account disabled, the session's `terminate_requested_at`) and each live
//! session re-checks it periodically, and at once ([`GatewayEvent::Recheck`]) when the
//! listener had to reconnect and may have missed something.

use sekisho_domain::ids::{RequestId, SessionId, UserId, VendorId};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::{DbKind, Store};

/// The PostgreSQL notification channel the nodes share.
pub const CHANNEL: &str = "sekisho_events";

/// Something that may end live sessions.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum GatewayEvent {
    /// The request was revoked (or rejected after emergency use).
    RequestEnded { request: RequestId },
    /// The account was disabled.
    UserDisabled { user: UserId },
    /// The vendor was suspended or offboarded.
    VendorBlocked { vendor: VendorId },
    /// An approver asked for this session to end (or another node ended it in the database).
    TerminateSession { session: SessionId },
    /// Events from other nodes may have been missed: every live session re-checks now.
    Recheck,
}

/// The sending side, cloned into the API state; `subscribe()` for the gateway.
#[derive(Clone, Debug)]
pub struct Events {
    local: broadcast::Sender<GatewayEvent>,
    /// Set on PostgreSQL: events are published to the other nodes too.
    nodes: Option<Store>,
}

impl Events {
    /// Events for this process only.
    pub fn new() -> Self {
        Self {
            local: broadcast::channel(1024).0,
            nodes: None,
        }
    }

    /// Events that also reach the other nodes using `store`'s database (PostgreSQL; on SQLite,
    /// which one node owns, the same as [`Events::new`]).
    pub fn across_nodes(store: &Store) -> Self {
        Self {
            local: broadcast::channel(1024).0,
            nodes: (store.kind() == DbKind::Postgres).then(|| store.clone()),
        }
    }

    /// Tells this process's sessions at once and publishes to the other nodes in the
    /// background (a lost notification is caught by the sessions' re-check of the database).
    pub fn send(&self, event: GatewayEvent) {
        self.deliver(event.clone());
        if let Some(store) = &self.nodes {
            let store = store.clone();
            tokio::spawn(async move {
                if let Err(e) = store.notify(&event).await {
                    tracing::warn!(error = %e, ?event, "cannot tell the other nodes; their sessions re-check the database");
                }
            });
        }
    }

    /// Tells this process's sessions only (what the listener heard from another node).
    pub fn deliver(&self, event: GatewayEvent) {
        // No subscriber (no gateway listener yet) is not an error.
        let _ = self.local.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.local.subscribe()
    }
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}

impl Store {
    /// Publishes `event` to every node listening (PostgreSQL `NOTIFY`, delivered on commit
    /// to every session of the database, this one included).
    pub async fn notify(&self, event: &GatewayEvent) -> crate::Result<()> {
        if self.kind() != DbKind::Postgres {
            return Ok(());
        }
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(crate::json(event)?)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Hands every event another node publishes to `events` until `stop` is cancelled. A lost
    /// connection is reopened (once a second at most); each (re)connection is followed by a
    /// [`GatewayEvent::Recheck`], since notifications sent meanwhile are lost. Returns at once
    /// on SQLite.
    pub async fn listen(&self, events: Events, stop: tokio_util::sync::CancellationToken) {
        let Some(url) = self.url() else {
            return;
        };
        let mut failing_since: Option<std::time::Instant> = None;
        while !stop.is_cancelled() {
            let listener = async {
                let mut l = sqlx::postgres::PgListener::connect(url.expose()).await?;
                l.listen(CHANNEL).await?;
                Ok::<_, sqlx::Error>(l)
            };
            let mut listener = match listener.await {
                Ok(l) => l,
                Err(e) => {
                    if failing_since.is_none() {
                        tracing::warn!(error = %e, "cannot listen for other nodes' events; retrying");
                        failing_since = Some(std::time::Instant::now());
                    }
                    tokio::select! {
                        () = stop.cancelled() => return,
                        () = tokio::time::sleep(std::time::Duration::from_secs(1)) => continue,
                    }
                }
            };
            if let Some(since) = failing_since.take() {
                tracing::info!(
                    after_seconds = since.elapsed().as_secs(),
                    "listening for other nodes' events again"
                );
            }
            events.deliver(GatewayEvent::Recheck);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    n = listener.try_recv() => match n {
                        Ok(Some(n)) => match serde_json::from_str::<GatewayEvent>(n.payload()) {
                            Ok(ev) => events.deliver(ev),
                            Err(e) => tracing::warn!(error = %e, payload = n.payload(), "ignoring an event that does not parse"),
                        },
                        // The connection was lost and is being reopened: events may be missed.
                        Ok(None) => events.deliver(GatewayEvent::Recheck),
                        Err(e) => {
                            tracing::warn!(error = %e, "lost the connection for other nodes' events; reconnecting");
                            failing_since = Some(std::time::Instant::now());
                            break;
                        }
                    }
                }
            }
            // Not in a tight loop against a server that accepts and then fails at once.
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(std::time::Duration::from_secs(1)) => {}
            }
        }
    }
}
