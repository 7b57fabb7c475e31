//! What every stream of a tunnel or remote desktop session starts with: the `Open` that says
//! what it is for, checked against what the session was admitted for.

use std::time::Duration;

use sekisho_domain::refusal::{Code, Refusal};
use sekisho_protocol::{ClientMessage, Service};

use crate::session::Live;

/// How long a new stream has to say what it is.
const OPEN_TIMEOUT: Duration = Duration::from_secs(15);

/// Reads a new stream's `Open`, which must ask for `service` on the session's target; `only`
/// says what the session is for when it asks for something else.
pub(super) async fn expect_open(
    live: &Live,
    service: Service,
    only: impl FnOnce() -> String,
    recv: &mut quinn::RecvStream,
) -> Result<(), Refusal> {
    let asked = tokio::time::timeout(
        OPEN_TIMEOUT,
        sekisho_protocol::read::<ClientMessage, _>(recv),
    )
    .await;
    match asked {
        Ok(Ok(ClientMessage::Open {
            target, service: s, ..
        })) if target == live.target.name && s == service => Ok(()),
        Ok(Ok(_)) => Err(Refusal::new(Code::ProtocolError, only())),
        Ok(Err(e)) => Err(Refusal::new(Code::ProtocolError, e.to_string())),
        Err(_) => Err(Refusal::new(Code::Timeout, "no open request within 15 s")),
    }
}
