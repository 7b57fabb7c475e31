//! Targets: the hospital systems behind the gateway, and what each access level may use there.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::ids::TargetId;

/// What a work request asks for (the guideline's 参照 / 変更).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccessLevel {
    /// Look only (参照).
    Reference,
    /// May change the system (変更).
    Change,
}

impl AccessLevel {
    pub const ALL: [AccessLevel; 2] = [AccessLevel::Reference, AccessLevel::Change];

    pub fn as_str(self) -> &'static str {
        match self {
            AccessLevel::Reference => "reference",
            AccessLevel::Change => "change",
        }
    }
}

impl fmt::Display for AccessLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A string that names no access level.
#[derive(Debug, thiserror::Error)]
#[error("unknown access level `{0}`: expected reference or change")]
pub struct UnknownAccessLevel(pub String);

impl FromStr for AccessLevel {
    type Err = UnknownAccessLevel;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AccessLevel::ALL
            .into_iter()
            .find(|l| l.as_str() == s)
            .ok_or_else(|| UnknownAccessLevel(s.to_owned()))
    }
}

/// What one access level may do on a target. The credential itself is stored
/// encrypted by the storage layer; the domain only knows the account it unlocks.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LevelPolicy {
    /// The account on the target the gateway logs in as (e.g. a read-only `maint-ro`).
    pub account: String,
    /// Whether SSH shells, exec and sftp are offered at this level.
    pub ssh: bool,
    /// TCP ports of the target reachable by tunnel or port forwarding.
    pub allowed_ports: Vec<u16>,
    /// Whether SSH `direct-tcpip` forwarding is allowed (to `allowed_ports` only).
    pub port_forwarding: bool,
    /// Whether files may be written over sftp/scp.
    pub file_upload: bool,
    /// Whether files may be read over sftp (every download is logged with its hash).
    #[serde(default = "yes")]
    pub file_download: bool,
    /// The largest file (in bytes) a vendor may download at this level; `None`: no limit.
    #[serde(default)]
    pub download_max_bytes: Option<u64>,
    /// Whether Remote Desktop is offered at this level (the target must have an RDP port).
    #[serde(default)]
    pub rdp: bool,
    /// Whether the desktop's clipboard channel is relayed (text that crosses is recorded).
    #[serde(default)]
    pub rdp_clipboard: bool,
    /// Whether the vendor's drives (and other devices) may be redirected to the desktop.
    #[serde(default)]
    pub rdp_drives: bool,
}

fn yes() -> bool {
    true
}

/// A hospital system reachable through the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Target {
    pub id: TargetId,
    /// Short name used in login names (`alice+pacs`).
    pub name: String,
    pub host: String,
    /// The target's SSH port.
    pub port: u16,
    pub reference: Option<LevelPolicy>,
    pub change: Option<LevelPolicy>,
    /// The pinned SSH host key (OpenSSH public key line), once known.
    pub host_key: Option<String>,
    /// The target's Remote Desktop port, when it offers Remote Desktop.
    #[serde(default)]
    pub rdp_port: Option<u16>,
    /// The SHA-256 fingerprint (hex) of the target's RDP TLS certificate, pinned on first use.
    #[serde(default)]
    pub rdp_certificate: Option<String>,
    /// The site of a hospital group the target belongs to; `None`: the group's own.
    #[serde(default)]
    pub site: Option<String>,
}

impl Target {
    /// What `level` may do here; `None` when the target offers no such level.
    pub fn level(&self, level: AccessLevel) -> Option<&LevelPolicy> {
        match level {
            AccessLevel::Reference => self.reference.as_ref(),
            AccessLevel::Change => self.change.as_ref(),
        }
    }
}
