//! Sessions: one connection through the gateway under an approved request.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{RequestId, SessionId, TargetId, UserId, VendorId};
use crate::target::AccessLevel;

/// How the vendor reached the gateway.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    /// Stock OpenSSH against the gateway's SSH listener.
    Ssh,
    /// The designated client over QUIC.
    Quic,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Ssh => "ssh",
            Transport::Quic => "quic",
        }
    }
}

/// How a session ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionEnd {
    /// The vendor or the target closed it.
    Closed,
    /// The request's window ended.
    WindowEnded,
    /// An approver terminated it.
    Terminated,
    /// The request was revoked, or the user or vendor lost access.
    Revoked,
    /// The recording could not be written, so access stopped.
    RecordingFailed,
    /// The gateway stopped (or crashed) while it was open.
    Aborted,
}

impl SessionEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            SessionEnd::Closed => "closed",
            SessionEnd::WindowEnded => "window_ended",
            SessionEnd::Terminated => "terminated",
            SessionEnd::Revoked => "revoked",
            SessionEnd::RecordingFailed => "recording_failed",
            SessionEnd::Aborted => "aborted",
        }
    }
}

/// One connection through the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub request_id: RequestId,
    pub user_id: UserId,
    pub vendor_id: VendorId,
    pub target_id: TargetId,
    pub level: AccessLevel,
    pub transport: Transport,
    pub source_addr: String,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub end: Option<SessionEnd>,
    pub bytes_to_target: u64,
    pub bytes_from_target: u64,
}
