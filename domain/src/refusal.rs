//! Refusals: the closed set of reasons the gateway turns someone away, and where.
//!
//! Every refusal is audited with a [`Code`] (for machines and filters) and a message (for the
//! person refused). Both are enums with `snake_case` serde names, so the audit log's JSON is
//! exactly what the strings of earlier versions were, and the hash chain of existing data
//! still verifies (`store/tests/audit_compat.rs`).

use std::fmt;

use serde::{Deserialize, Serialize};

/// Why access was refused.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    // The access rule (`authorize`).
    NotAVendorUser,
    UserDisabled,
    UserExpired,
    VendorUnknown,
    VendorInactive,
    Attestation,
    NotAssigned,
    ContractEnded,
    NoRequest,
    PendingApproval,
    EmergencyDisabled,
    NotYetOpen,
    RequestClosed,
    LevelNotOffered,
    SshNotAllowed,
    UploadNotAllowed,
    /// A file download where the level denies downloads (or past its limit).
    DownloadNotAllowed,
    RdpNotAllowed,
    PortForwardingNotAllowed,
    PortNotAllowed,
    RemoteForwardRefused,
    AgentForwardRefused,
    X11ForwardRefused,
    // Who is connecting.
    BadLoginName,
    UnknownUser,
    UnknownKey,
    NoKey,
    KeyPending,
    CertificateUserMismatch,
    CertificateUnknown,
    CertificateRequired,
    CertificateRefused,
    CertificateExpired,
    CertificateUnknownIssuer,
    CertificateBadSignature,
    TooManyUnauthenticated,
    /// The listener holds `[server] max_connections` connections already.
    GatewayFull,
    BadEnrollmentCode,
    EnrollmentPassword,
    /// The account has a second factor and its one-time code was not given.
    MfaRequired,
    /// The account's role must use a second factor and none is enrolled.
    MfaEnrollmentRequired,
    WrongOneTimeCode,
    /// A one-time code that was right but has been used already.
    OneTimeCodeReplayed,
    /// Too many failed second factors from this address: it must wait.
    TooManyFailures,
    // The target and the gateway itself.
    /// The gateway's clock is off by more than `[time] max_offset_ms` against NTP.
    ClockOff,
    UnknownTarget,
    DatabaseUnavailable,
    RecordingUnavailable,
    NoCredential,
    TargetUnreachable,
    TargetLoginFailed,
    HostKeyMismatch,
    HostKeyUnreadable,
    // What a channel asked for.
    SftpMalformed,
    SubsystemNotOffered,
    ForwardHostNotAllowed,
    RdpChannelRefused,
    TargetCertificateMismatch,
    RdpNegotiation,
    // What the designated client is told besides (its control protocol).
    UnsupportedVersion,
    PasswordRequired,
    WrongPassword,
    NotEligible,
    Forbidden,
    Invalid,
    BadRequest,
    Busy,
    ProtocolError,
    Timeout,
    ConnectFailed,
}

impl Code {
    pub const ALL: [Code; 70] = [
        Code::NotAVendorUser,
        Code::UserDisabled,
        Code::UserExpired,
        Code::VendorUnknown,
        Code::VendorInactive,
        Code::Attestation,
        Code::NotAssigned,
        Code::ContractEnded,
        Code::NoRequest,
        Code::PendingApproval,
        Code::EmergencyDisabled,
        Code::NotYetOpen,
        Code::RequestClosed,
        Code::LevelNotOffered,
        Code::SshNotAllowed,
        Code::UploadNotAllowed,
        Code::DownloadNotAllowed,
        Code::RdpNotAllowed,
        Code::PortForwardingNotAllowed,
        Code::PortNotAllowed,
        Code::RemoteForwardRefused,
        Code::AgentForwardRefused,
        Code::X11ForwardRefused,
        Code::BadLoginName,
        Code::UnknownUser,
        Code::UnknownKey,
        Code::NoKey,
        Code::KeyPending,
        Code::CertificateUserMismatch,
        Code::CertificateUnknown,
        Code::CertificateRequired,
        Code::CertificateRefused,
        Code::CertificateExpired,
        Code::CertificateUnknownIssuer,
        Code::CertificateBadSignature,
        Code::TooManyUnauthenticated,
        Code::GatewayFull,
        Code::BadEnrollmentCode,
        Code::EnrollmentPassword,
        Code::MfaRequired,
        Code::MfaEnrollmentRequired,
        Code::WrongOneTimeCode,
        Code::OneTimeCodeReplayed,
        Code::TooManyFailures,
        Code::ClockOff,
        Code::UnknownTarget,
        Code::DatabaseUnavailable,
        Code::RecordingUnavailable,
        Code::NoCredential,
        Code::TargetUnreachable,
        Code::TargetLoginFailed,
        Code::HostKeyMismatch,
        Code::HostKeyUnreadable,
        Code::SftpMalformed,
        Code::SubsystemNotOffered,
        Code::ForwardHostNotAllowed,
        Code::RdpChannelRefused,
        Code::TargetCertificateMismatch,
        Code::RdpNegotiation,
        Code::UnsupportedVersion,
        Code::PasswordRequired,
        Code::WrongPassword,
        Code::NotEligible,
        Code::Forbidden,
        Code::Invalid,
        Code::BadRequest,
        Code::Busy,
        Code::ProtocolError,
        Code::Timeout,
        Code::ConnectFailed,
    ];

    /// The code named `name`, if there is one.
    pub fn from_name(name: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The stable name (what the JSON says).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::NotAVendorUser => "not_a_vendor_user",
            Code::UserDisabled => "user_disabled",
            Code::UserExpired => "user_expired",
            Code::VendorUnknown => "vendor_unknown",
            Code::VendorInactive => "vendor_inactive",
            Code::Attestation => "attestation",
            Code::NotAssigned => "not_assigned",
            Code::ContractEnded => "contract_ended",
            Code::NoRequest => "no_request",
            Code::PendingApproval => "pending_approval",
            Code::EmergencyDisabled => "emergency_disabled",
            Code::NotYetOpen => "not_yet_open",
            Code::RequestClosed => "request_closed",
            Code::LevelNotOffered => "level_not_offered",
            Code::SshNotAllowed => "ssh_not_allowed",
            Code::UploadNotAllowed => "upload_not_allowed",
            Code::DownloadNotAllowed => "download_not_allowed",
            Code::RdpNotAllowed => "rdp_not_allowed",
            Code::PortForwardingNotAllowed => "port_forwarding_not_allowed",
            Code::PortNotAllowed => "port_not_allowed",
            Code::RemoteForwardRefused => "remote_forward_refused",
            Code::AgentForwardRefused => "agent_forward_refused",
            Code::X11ForwardRefused => "x11_forward_refused",
            Code::BadLoginName => "bad_login_name",
            Code::UnknownUser => "unknown_user",
            Code::UnknownKey => "unknown_key",
            Code::NoKey => "no_key",
            Code::KeyPending => "key_pending",
            Code::CertificateUserMismatch => "certificate_user_mismatch",
            Code::CertificateUnknown => "certificate_unknown",
            Code::CertificateRequired => "certificate_required",
            Code::CertificateRefused => "certificate_refused",
            Code::CertificateExpired => "certificate_expired",
            Code::CertificateUnknownIssuer => "certificate_unknown_issuer",
            Code::CertificateBadSignature => "certificate_bad_signature",
            Code::TooManyUnauthenticated => "too_many_unauthenticated",
            Code::GatewayFull => "gateway_full",
            Code::BadEnrollmentCode => "bad_enrollment_code",
            Code::EnrollmentPassword => "enrollment_password",
            Code::MfaRequired => "mfa_required",
            Code::MfaEnrollmentRequired => "mfa_enrollment_required",
            Code::WrongOneTimeCode => "wrong_one_time_code",
            Code::OneTimeCodeReplayed => "one_time_code_replayed",
            Code::TooManyFailures => "too_many_failures",
            Code::ClockOff => "clock_off",
            Code::UnknownTarget => "unknown_target",
            Code::DatabaseUnavailable => "database_unavailable",
            Code::RecordingUnavailable => "recording_unavailable",
            Code::NoCredential => "no_credential",
            Code::TargetUnreachable => "target_unreachable",
            Code::TargetLoginFailed => "target_login_failed",
            Code::HostKeyMismatch => "host_key_mismatch",
            Code::HostKeyUnreadable => "host_key_unreadable",
            Code::SftpMalformed => "sftp_malformed",
            Code::SubsystemNotOffered => "subsystem_not_offered",
            Code::ForwardHostNotAllowed => "forward_host_not_allowed",
            Code::RdpChannelRefused => "rdp_channel_refused",
            Code::TargetCertificateMismatch => "target_certificate_mismatch",
            Code::RdpNegotiation => "rdp_negotiation",
            Code::UnsupportedVersion => "unsupported_version",
            Code::PasswordRequired => "password_required",
            Code::WrongPassword => "wrong_password",
            Code::NotEligible => "not_eligible",
            Code::Forbidden => "forbidden",
            Code::Invalid => "invalid",
            Code::BadRequest => "bad_request",
            Code::Busy => "busy",
            Code::ProtocolError => "protocol_error",
            Code::Timeout => "timeout",
            Code::ConnectFailed => "connect_failed",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a refusal (or a failure counted against an address) happened.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    /// An SSH connection or its session.
    Ssh,
    /// The designated client's QUIC connection.
    Quic,
    /// A designated-client tunnel.
    Tunnel,
    /// Enrolling the designated client.
    Enroll,
    /// A file transfer.
    FileUpload,
    /// A file read over sftp.
    FileDownload,
    /// A `direct-tcpip` channel.
    PortForward,
    /// An SSH subsystem.
    Subsystem,
    X11Forward,
    AgentForward,
    RemoteForward,
    /// Password logins to the API and console.
    ApiLogin,
    /// A Remote Desktop session.
    Rdp,
    /// A Remote Desktop virtual channel (clipboard, drives, ...).
    RdpChannel,
}

impl Channel {
    pub const ALL: [Channel; 14] = [
        Channel::Ssh,
        Channel::Quic,
        Channel::Tunnel,
        Channel::Enroll,
        Channel::FileUpload,
        Channel::FileDownload,
        Channel::PortForward,
        Channel::Subsystem,
        Channel::X11Forward,
        Channel::AgentForward,
        Channel::RemoteForward,
        Channel::ApiLogin,
        Channel::Rdp,
        Channel::RdpChannel,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Ssh => "ssh",
            Channel::Quic => "quic",
            Channel::Tunnel => "tunnel",
            Channel::Enroll => "enroll",
            Channel::FileUpload => "file_upload",
            Channel::FileDownload => "file_download",
            Channel::PortForward => "port_forward",
            Channel::Subsystem => "subsystem",
            Channel::X11Forward => "x11_forward",
            Channel::AgentForward => "agent_forward",
            Channel::RemoteForward => "remote_forward",
            Channel::ApiLogin => "api_login",
            Channel::Rdp => "rdp",
            Channel::RdpChannel => "rdp_channel",
        }
    }
}

impl fmt::Display for Channel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refusal: its code, and what the person refused reads.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub code: Code,
    pub message: String,
}

impl Refusal {
    pub fn new(code: Code, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    /// The gateway cannot decide because its database does not answer (fail closed).
    pub fn database_unavailable() -> Self {
        Self::new(
            Code::DatabaseUnavailable,
            "the gateway cannot check your permission right now (database unavailable); try again later",
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_serde_names() {
        for code in Code::ALL {
            assert_eq!(
                serde_json::to_string(&code).unwrap(),
                format!("\"{}\"", code.as_str())
            );
        }
        for channel in Channel::ALL {
            assert_eq!(
                serde_json::to_string(&channel).unwrap(),
                format!("\"{}\"", channel.as_str())
            );
        }
    }
}
