//! The access decision: may this vendor user open this kind of channel to this target now?
//!
//! **Invariant:** [`authorize`] allows nothing outside an approved (or, where policy permits,
//! emergency) request's window, for a disabled, expired or non-vendor account, for a vendor
//! that is not active or whose attestation does not qualify, or beyond what the request's
//! access level permits on the target. Every denial carries a reason a person can read.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::assignment::{self, Assignment, ScopeProblem};
use crate::ids::RequestId;
use crate::policy::Policy;
use crate::refusal::Code;
use crate::request::{RequestStatus, WorkRequest, describe_attestation};
use crate::target::{AccessLevel, LevelPolicy, Target};
use crate::user::{Role, User, UserStatus};
use crate::vendor::{AttestationProblem, Vendor, VendorStatus};
use crate::zone::DisplayZone;

/// What the vendor wants to open.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "channel", rename_all = "snake_case")]
pub enum ChannelKind {
    /// An SSH session channel: shell, exec or the sftp subsystem (reading).
    Ssh,
    /// Writing a file over sftp or scp.
    FileUpload,
    /// SSH `direct-tcpip` forwarding to a port of the target.
    PortForward { port: u16 },
    /// A designated-client TCP tunnel to a port of the target.
    Tunnel { port: u16 },
    /// SSH `tcpip-forward` (remote forwarding): never allowed.
    RemoteForward,
    /// SSH agent forwarding: never allowed.
    AgentForward,
    /// X11 forwarding: never allowed.
    X11Forward,
    /// A Remote Desktop session through the designated client.
    Rdp,
}

/// Everything the decision depends on, as plain data.
#[derive(Clone, Copy, Debug)]
pub struct AccessQuery<'a> {
    pub now: Timestamp,
    pub user: &'a User,
    /// The user's vendor, as it is now (`None` if it could not be found).
    pub vendor: Option<&'a Vendor>,
    pub target: &'a Target,
    /// The user's vendor's assignment to the target, if there is one.
    pub assignment: Option<&'a Assignment>,
    /// The user's requests for this target, in any state.
    pub requests: &'a [WorkRequest],
    pub channel: ChannelKind,
    /// Restrict to requests of this level (e.g. the client asked for `change`).
    pub level: Option<AccessLevel>,
    pub policy: &'a Policy,
}

/// What an allowed connection may use.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub request: RequestId,
    pub request_number: i64,
    pub level: AccessLevel,
    /// The account on the target the gateway logs in as.
    pub account: String,
    /// The session must end at this instant.
    pub window_end: Timestamp,
    pub emergency: bool,
}

/// The answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    Allow(Grant),
    Deny(DenyReason),
}

impl Decision {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow(_))
    }
}

/// Why access was refused: structured for the audit log, rendered for people by [`DenyReason::message`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum DenyReason {
    NotAVendorUser {
        username: String,
    },
    UserDisabled {
        username: String,
    },
    UserExpired {
        username: String,
        on: Timestamp,
    },
    VendorUnknown,
    VendorInactive {
        vendor: String,
        status: VendorStatus,
    },
    Attestation {
        vendor: String,
        problem: AttestationProblem,
    },
    /// The vendor is not assigned to the target.
    NotAssigned {
        target: String,
    },
    /// The vendor's maintenance contract for the target ended.
    ContractEnded {
        target: String,
        on: Timestamp,
    },
    NoRequest {
        target: String,
        at: Timestamp,
    },
    PendingApproval {
        number: i64,
        target: String,
    },
    EmergencyDisabled {
        number: i64,
        target: String,
    },
    NotYetOpen {
        number: i64,
        target: String,
        opens: Timestamp,
    },
    RequestClosed {
        number: i64,
        target: String,
        status: RequestStatus,
    },
    LevelNotOffered {
        target: String,
        level: AccessLevel,
    },
    SshNotAllowed {
        target: String,
        level: AccessLevel,
    },
    UploadNotAllowed {
        target: String,
        level: AccessLevel,
    },
    RdpNotAllowed {
        target: String,
        level: AccessLevel,
    },
    PortForwardingNotAllowed {
        target: String,
        level: AccessLevel,
    },
    PortNotAllowed {
        target: String,
        level: AccessLevel,
        port: u16,
        allowed: Vec<u16>,
    },
    /// Forwarding to a host other than the target itself.
    ForwardHostNotAllowed {
        target: String,
        host: String,
    },
    RemoteForwardRefused,
    AgentForwardRefused,
    X11ForwardRefused,
}

impl DenyReason {
    /// The stable machine-readable code (audit filters, API error codes).
    pub fn code(&self) -> Code {
        match self {
            DenyReason::NotAVendorUser { .. } => Code::NotAVendorUser,
            DenyReason::UserDisabled { .. } => Code::UserDisabled,
            DenyReason::UserExpired { .. } => Code::UserExpired,
            DenyReason::VendorUnknown => Code::VendorUnknown,
            DenyReason::VendorInactive { .. } => Code::VendorInactive,
            DenyReason::Attestation { .. } => Code::Attestation,
            DenyReason::NotAssigned { .. } => Code::NotAssigned,
            DenyReason::ContractEnded { .. } => Code::ContractEnded,
            DenyReason::NoRequest { .. } => Code::NoRequest,
            DenyReason::PendingApproval { .. } => Code::PendingApproval,
            DenyReason::EmergencyDisabled { .. } => Code::EmergencyDisabled,
            DenyReason::NotYetOpen { .. } => Code::NotYetOpen,
            DenyReason::RequestClosed { .. } => Code::RequestClosed,
            DenyReason::LevelNotOffered { .. } => Code::LevelNotOffered,
            DenyReason::SshNotAllowed { .. } => Code::SshNotAllowed,
            DenyReason::UploadNotAllowed { .. } => Code::UploadNotAllowed,
            DenyReason::RdpNotAllowed { .. } => Code::RdpNotAllowed,
            DenyReason::PortForwardingNotAllowed { .. } => Code::PortForwardingNotAllowed,
            DenyReason::PortNotAllowed { .. } => Code::PortNotAllowed,
            DenyReason::ForwardHostNotAllowed { .. } => Code::ForwardHostNotAllowed,
            DenyReason::RemoteForwardRefused => Code::RemoteForwardRefused,
            DenyReason::AgentForwardRefused => Code::AgentForwardRefused,
            DenyReason::X11ForwardRefused => Code::X11ForwardRefused,
        }
    }

    /// The refusal as audited and shown: the code and the message for the vendor.
    pub fn refusal(&self, zone: &crate::zone::DisplayZone) -> crate::refusal::Refusal {
        crate::refusal::Refusal::new(self.code(), self.message(zone))
    }

    /// What the vendor reads in their terminal, with times in the hospital's zone.
    pub fn message(&self, zone: &DisplayZone) -> String {
        match self {
            DenyReason::NotAVendorUser { username } => {
                format!("account {username} is not a vendor engineer account")
            }
            DenyReason::UserDisabled { username } => format!("account {username} is disabled"),
            DenyReason::UserExpired { username, on } => {
                format!("account {username} expired on {}", zone.date(*on))
            }
            DenyReason::VendorUnknown => "your account is not linked to a registered vendor".into(),
            DenyReason::VendorInactive { vendor, status } => {
                format!("vendor {vendor} is {}", status.as_str())
            }
            DenyReason::Attestation { vendor, problem } => format!(
                "vendor {vendor}'s security attestation {}",
                describe_attestation(problem, zone)
            ),
            DenyReason::NotAssigned { target } => format!(
                "your vendor is not assigned to {target}; the hospital's IT department assigns vendors to the systems they maintain"
            ),
            DenyReason::ContractEnded { target, on } => format!(
                "your vendor's maintenance contract for {target} ended on {}",
                zone.date(*on)
            ),
            DenyReason::NoRequest { target, at } => format!(
                "no approved request for {target} covers {}; file one with `sekisho-client request --target {target} ...` or in the web console",
                zone.time(*at)
            ),
            DenyReason::PendingApproval { number, target } => {
                format!("request R-{number} for {target} is pending approval")
            }
            DenyReason::EmergencyDisabled { number, target } => format!(
                "request R-{number} for {target} is an emergency request, but emergency access is disabled; it must be approved first"
            ),
            DenyReason::NotYetOpen {
                number,
                target,
                opens,
            } => format!(
                "request R-{number} for {target} is approved, but its window opens at {}",
                zone.date_time(*opens)
            ),
            DenyReason::RequestClosed {
                number,
                target,
                status,
            } => {
                format!("request R-{number} for {target} is {status}")
            }
            DenyReason::LevelNotOffered { target, level } => {
                format!("{target} offers no {level} access")
            }
            DenyReason::SshNotAllowed { target, level } => {
                format!("SSH is not allowed on {target} at {level} level")
            }
            DenyReason::UploadNotAllowed { target, level } => {
                format!("file upload to {target} is not allowed at {level} level")
            }
            DenyReason::RdpNotAllowed { target, level } => {
                format!("Remote Desktop is not allowed on {target} at {level} level")
            }
            DenyReason::PortForwardingNotAllowed { target, level } => {
                format!("port forwarding to {target} is not allowed at {level} level")
            }
            DenyReason::PortNotAllowed {
                target,
                level,
                port,
                allowed,
            } => {
                let allowed = if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed
                        .iter()
                        .map(u16::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                };
                format!(
                    "port {port} of {target} is not allowed at {level} level (allowed: {allowed})"
                )
            }
            DenyReason::RemoteForwardRefused => "remote port forwarding is never allowed".into(),
            DenyReason::AgentForwardRefused => "agent forwarding is never allowed".into(),
            DenyReason::X11ForwardRefused => "X11 forwarding is never allowed".into(),
            DenyReason::ForwardHostNotAllowed { target, host } => {
                format!("forwarding goes only to {target} itself, not to {host}")
            }
        }
    }
}

/// Decides one access. See the module documentation for the invariants.
pub fn authorize(q: &AccessQuery<'_>) -> Decision {
    match decide(q) {
        Ok(grant) => Decision::Allow(grant),
        Err(reason) => Decision::Deny(reason),
    }
}

fn decide(q: &AccessQuery<'_>) -> Result<Grant, DenyReason> {
    // Channels no request can permit are refused before anything else is looked at.
    match q.channel {
        ChannelKind::RemoteForward => return Err(DenyReason::RemoteForwardRefused),
        ChannelKind::AgentForward => return Err(DenyReason::AgentForwardRefused),
        ChannelKind::X11Forward => return Err(DenyReason::X11ForwardRefused),
        _ => {}
    }
    check_account(q.user, q.vendor, q.policy, q.now)?;
    check_scope(q.assignment, &q.target.name, q.now)?;
    let request = select_request(q)?;
    let target = &q.target.name;
    let level = request.level;
    let policy = q
        .target
        .level(level)
        .ok_or_else(|| DenyReason::LevelNotOffered {
            target: target.clone(),
            level,
        })?;
    check_channel(q.channel, policy, target, level)?;
    Ok(Grant {
        request: request.id,
        request_number: request.number,
        level,
        account: policy.account.clone(),
        window_end: request.window.end,
        emergency: request.emergency,
    })
}

/// Whether the vendor's assignment to `target` lets it work there at `now`.
///
/// # Errors
/// [`DenyReason::NotAssigned`] or [`DenyReason::ContractEnded`].
pub fn check_scope(
    assignment: Option<&Assignment>,
    target: &str,
    now: Timestamp,
) -> Result<(), DenyReason> {
    match assignment::check(assignment, now) {
        Ok(_) => Ok(()),
        Err(ScopeProblem::NotAssigned) => Err(DenyReason::NotAssigned {
            target: target.to_owned(),
        }),
        Err(ScopeProblem::ContractEnded { on }) => Err(DenyReason::ContractEnded {
            target: target.to_owned(),
            on,
        }),
    }
}

fn check_user(user: &User, now: Timestamp) -> Result<(), DenyReason> {
    let username = || user.username.clone();
    if user.role != Role::Vendor {
        return Err(DenyReason::NotAVendorUser {
            username: username(),
        });
    }
    if user.status == UserStatus::Disabled {
        return Err(DenyReason::UserDisabled {
            username: username(),
        });
    }
    if let Some(on) = user.expires_at.filter(|e| now >= *e) {
        return Err(DenyReason::UserExpired {
            username: username(),
            on,
        });
    }
    Ok(())
}

/// Whether `user` may connect at all, before any target or request is looked at: an active,
/// unexpired vendor engineer of an active vendor whose attestation is in order. The first
/// step of [`authorize`]; the designated client's listener also asks it when a certificate
/// connects, so that a disabled engineer's certificate is refused on every connection.
///
/// # Errors
/// Why not.
pub fn check_account(
    user: &User,
    vendor: Option<&Vendor>,
    policy: &Policy,
    now: Timestamp,
) -> Result<(), DenyReason> {
    check_user(user, now)?;
    check_vendor(user, vendor, policy, now)
}

fn check_vendor(
    user: &User,
    vendor: Option<&Vendor>,
    policy: &Policy,
    now: Timestamp,
) -> Result<(), DenyReason> {
    let vendor = match vendor {
        Some(v) if Some(v.id) == user.vendor_id => v,
        _ => return Err(DenyReason::VendorUnknown),
    };
    if vendor.status != VendorStatus::Active {
        return Err(DenyReason::VendorInactive {
            vendor: vendor.name.clone(),
            status: vendor.status,
        });
    }
    if let Some(problem) = vendor.attestation_problem(&policy.checklist, now) {
        return Err(DenyReason::Attestation {
            vendor: vendor.name.clone(),
            problem,
        });
    }
    Ok(())
}

/// Whether `r` may carry a session right now.
fn usable(r: &WorkRequest, q: &AccessQuery<'_>) -> bool {
    let status_ok = match r.status {
        RequestStatus::Approved | RequestStatus::Active => true,
        RequestStatus::Submitted => r.emergency && q.policy.emergency_access,
        _ => false,
    };
    status_ok && r.window.contains(q.now)
}

/// Picks the request that covers now, or explains the nearest miss.
fn select_request<'a>(q: &AccessQuery<'a>) -> Result<&'a WorkRequest, DenyReason> {
    let target = &q.target.name;
    let mine = || {
        q.requests.iter().filter(|r| {
            r.requester == q.user.id
                && r.target_id == q.target.id
                && r.vendor_id == q.user.vendor_id.unwrap_or_default()
                && q.level.is_none_or(|l| l == r.level)
        })
    };
    // Least privilege: without a level asked for, the lowest level whose policy permits the
    // channel (reference before change); then a normally approved request before an emergency
    // one, then the newest. If no level permits the channel, the lowest level is chosen and
    // its refusal explains why.
    let mut candidates: Vec<&WorkRequest> = mine().filter(|r| usable(r, q)).collect();
    candidates.sort_by_key(|r| {
        (
            r.level == AccessLevel::Change,
            r.emergency,
            std::cmp::Reverse(r.number),
        )
    });
    let permits = |r: &WorkRequest| -> bool {
        q.target
            .level(r.level)
            .is_some_and(|p| check_channel(q.channel, p, target, r.level).is_ok())
    };
    if let Some(r) = candidates
        .iter()
        .copied()
        .find(|r| permits(r))
        .or_else(|| candidates.first().copied())
    {
        return Ok(r);
    }
    let in_window = || mine().filter(|r| r.window.contains(q.now));
    if let Some(r) = in_window()
        .filter(|r| r.status == RequestStatus::Submitted)
        .max_by_key(|r| r.number)
    {
        return Err(if r.emergency {
            DenyReason::EmergencyDisabled {
                number: r.number,
                target: target.clone(),
            }
        } else {
            DenyReason::PendingApproval {
                number: r.number,
                target: target.clone(),
            }
        });
    }
    if let Some(r) = mine()
        .filter(|r| matches!(r.status, RequestStatus::Approved) && r.window.start > q.now)
        .min_by_key(|r| r.window.start)
    {
        return Err(DenyReason::NotYetOpen {
            number: r.number,
            target: target.clone(),
            opens: r.window.start,
        });
    }
    if let Some(r) = in_window().max_by_key(|r| r.number) {
        return Err(DenyReason::RequestClosed {
            number: r.number,
            target: target.clone(),
            status: r.status,
        });
    }
    Err(DenyReason::NoRequest {
        target: target.clone(),
        at: q.now,
    })
}

/// Whether `policy` (the level granted on `target`) permits `channel`.
pub fn check_channel(
    channel: ChannelKind,
    policy: &LevelPolicy,
    target: &str,
    level: AccessLevel,
) -> Result<(), DenyReason> {
    let target = target.to_owned();
    let port_allowed = |port: u16| {
        if policy.allowed_ports.contains(&port) {
            Ok(())
        } else {
            Err(DenyReason::PortNotAllowed {
                target: target.clone(),
                level,
                port,
                allowed: policy.allowed_ports.clone(),
            })
        }
    };
    match channel {
        ChannelKind::Ssh if policy.ssh => Ok(()),
        ChannelKind::Ssh => Err(DenyReason::SshNotAllowed { target, level }),
        ChannelKind::FileUpload if policy.ssh && policy.file_upload => Ok(()),
        ChannelKind::FileUpload => Err(DenyReason::UploadNotAllowed { target, level }),
        ChannelKind::Rdp if policy.rdp => Ok(()),
        ChannelKind::Rdp => Err(DenyReason::RdpNotAllowed { target, level }),
        ChannelKind::PortForward { port } => {
            if !policy.port_forwarding {
                return Err(DenyReason::PortForwardingNotAllowed { target, level });
            }
            port_allowed(port)
        }
        ChannelKind::Tunnel { port } => port_allowed(port),
        ChannelKind::RemoteForward => Err(DenyReason::RemoteForwardRefused),
        ChannelKind::AgentForward => Err(DenyReason::AgentForwardRefused),
        ChannelKind::X11Forward => Err(DenyReason::X11ForwardRefused),
    }
}

/// Whether a session granted `level` on `target` may open `channel`: the level must still be
/// offered by the target, then [`check_channel`] decides.
pub fn check_granted(
    channel: ChannelKind,
    target: &Target,
    level: AccessLevel,
) -> Result<(), DenyReason> {
    let Some(policy) = target.level(level) else {
        return Err(DenyReason::LevelNotOffered {
            target: target.name.clone(),
            level,
        });
    };
    check_channel(channel, policy, &target.name, level)
}

/// Whether an SSH `direct-tcpip` request for `host:port` may be forwarded: only to the target
/// itself (its host, its name or the loopback names the vendor's tools use for it), only
/// where the level allows forwarding, and only to an allowed port. The gateway always
/// connects to the target's registered host, whatever name was asked for.
pub fn check_forward(
    target: &Target,
    level: AccessLevel,
    host: &str,
    port: u32,
) -> Result<u16, DenyReason> {
    // A port beyond u16 is no port of the target; 0 is never in an allowed list.
    let port = u16::try_from(port).unwrap_or(0);
    check_granted(ChannelKind::PortForward { port }, target, level)?;
    let own = [
        target.host.as_str(),
        target.name.as_str(),
        "localhost",
        "127.0.0.1",
    ];
    if own.contains(&host) {
        Ok(port)
    } else {
        Err(DenyReason::ForwardHostNotAllowed {
            target: target.name.clone(),
            host: crate::audit::claimed(host),
        })
    }
}
