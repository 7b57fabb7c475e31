//! What can go wrong in a relayed or replayed RDP connection.

use thiserror::Error;

#[derive(Debug, Error)]
pub enum RdpError {
    /// A message could not be decoded or was not the one the sequence expects here.
    #[error("{what}: {detail}")]
    Protocol { what: &'static str, detail: String },
    /// A message could not be encoded after it was rewritten.
    #[error("encoding {what}: {detail}")]
    Encode { what: &'static str, detail: String },
    /// A PDU announced a length beyond what RDP allows.
    #[error("a PDU of {0} bytes is larger than RDP allows")]
    TooLarge(usize),
    /// The peer closed the connection in the middle of a PDU.
    #[error("the connection closed in the middle of a PDU")]
    Truncated,
    /// NLA (CredSSP) toward the target failed: wrong credential, or the target refused it.
    #[error("NLA (CredSSP) with the target failed: {0}")]
    Credssp(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl RdpError {
    pub(crate) fn protocol(what: &'static str, detail: impl ToString) -> Self {
        RdpError::Protocol {
            what,
            detail: detail.to_string(),
        }
    }

    pub(crate) fn encode(what: &'static str, detail: impl ToString) -> Self {
        RdpError::Encode {
            what,
            detail: detail.to_string(),
        }
    }
}
