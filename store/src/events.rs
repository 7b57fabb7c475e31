//! Events the API raises for the gateway: things that must end live sessions at once.
//!
//! The API and the gateway run in one process and share a broadcast channel; issue #5's
//! session actors subscribe. A lagging subscriber loses old events, so the gateway also
//! re-checks `authorize` periodically: the channel is for speed, not the only safeguard.

use sekisho_domain::ids::{RequestId, SessionId, UserId, VendorId};
use tokio::sync::broadcast;

/// Something that may end live sessions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum GatewayEvent {
    /// The request was revoked (or rejected after emergency use).
    RequestEnded { request: RequestId },
    /// The account was disabled.
    UserDisabled { user: UserId },
    /// The vendor was suspended or offboarded.
    VendorBlocked { vendor: VendorId },
    /// An approver asked for this session to end.
    TerminateSession { session: SessionId },
}

/// The sending side, cloned into the API state; `subscribe()` for the gateway.
#[derive(Clone, Debug)]
pub struct Events(broadcast::Sender<GatewayEvent>);

impl Events {
    pub fn new() -> Self {
        Self(broadcast::channel(1024).0)
    }

    pub fn send(&self, event: GatewayEvent) {
        // No subscriber (no gateway listener yet) is not an error.
        let _ = self.0.send(event);
    }

    pub fn subscribe(&self) -> broadcast::Receiver<GatewayEvent> {
        self.0.subscribe()
    }
}

impl Default for Events {
    fn default() -> Self {
        Self::new()
    }
}
