//! What an audit event is called (the `kind` column) and which target and request it concerns
//! (the filter columns).

use super::AuditEvent;
use crate::ids::{RequestId, TargetId};

impl AuditEvent {
    /// The stable name stored in the `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            AuditEvent::GatewayInitialized { .. } => "gateway_initialized",
            AuditEvent::GatewayStarted { .. } => "gateway_started",
            AuditEvent::GatewayStopped { .. } => "gateway_stopped",
            AuditEvent::GroupKeysClaimed { .. } => "group_keys_claimed",
            AuditEvent::NodeDown { .. } => "node_down",
            AuditEvent::TokenKeyPublished { .. } => "token_key_published",
            AuditEvent::TokenKeyRotated { .. } => "token_key_rotated",
            AuditEvent::AtRestKeyClaimed { .. } => "at_rest_key_claimed",
            AuditEvent::AtRestKeyStaged { .. } => "at_rest_key_staged",
            AuditEvent::AtRestKeyActivated { .. } => "at_rest_key_activated",
            AuditEvent::AtRestKeyResealed { .. } => "at_rest_key_resealed",
            AuditEvent::AtRestKeyRetired { .. } => "at_rest_key_retired",
            AuditEvent::LoginSucceeded { .. } => "login_succeeded",
            AuditEvent::LoginFailed { .. } => "login_failed",
            AuditEvent::MfaEnrollmentStarted { .. } => "mfa_enrollment_started",
            AuditEvent::MfaEnabled { .. } => "mfa_enabled",
            AuditEvent::MfaRecoveryCodeUsed { .. } => "mfa_recovery_code_used",
            AuditEvent::MfaReset { .. } => "mfa_reset",
            AuditEvent::NotificationFailed { .. } => "notification_failed",
            AuditEvent::UserCreated { .. } => "user_created",
            AuditEvent::UserUpdated { .. } => "user_updated",
            AuditEvent::VendorCreated { .. } => "vendor_created",
            AuditEvent::VendorUpdated { .. } => "vendor_updated",
            AuditEvent::TargetCreated { .. } => "target_created",
            AuditEvent::TargetUpdated { .. } => "target_updated",
            AuditEvent::AssignmentCreated { .. } => "assignment_created",
            AuditEvent::AssignmentUpdated { .. } => "assignment_updated",
            AuditEvent::AssignmentRemoved { .. } => "assignment_removed",
            AuditEvent::LineCreated { .. } => "line_created",
            AuditEvent::LineUpdated { .. } => "line_updated",
            AuditEvent::LineReviewed { .. } => "line_reviewed",
            AuditEvent::HostKeyPinned { .. } => "host_key_pinned",
            AuditEvent::RequestFiled { .. } => "request_filed",
            AuditEvent::RequestDecided { .. } => "request_decided",
            AuditEvent::AccessDenied { .. } => "access_denied",
            AuditEvent::SessionStarted { .. } => "session_started",
            AuditEvent::SessionEnded { .. } => "session_ended",
            AuditEvent::RecordingClosed { .. } => "recording_closed",
            AuditEvent::RecordingFailed { .. } => "recording_failed",
            AuditEvent::SessionTerminateRequested { .. } => "session_terminate_requested",
            AuditEvent::FileTransferred { .. } => "file_transferred",
            AuditEvent::QuarantineDeleted { .. } => "quarantine_deleted",
            AuditEvent::QuarantineRetrieved { .. } => "quarantine_retrieved",
            AuditEvent::SessionReviewed { .. } => "session_reviewed",
            AuditEvent::RdpChannels { .. } => "rdp_channels",
            AuditEvent::SshKeyAdded { .. } => "ssh_key_added",
            AuditEvent::SshKeyApproved { .. } => "ssh_key_approved",
            AuditEvent::LoggedOut { .. } => "logged_out",
            AuditEvent::LegalHoldChanged { .. } => "legal_hold_changed",
            AuditEvent::EnrollmentCodeCreated { .. } => "enrollment_code_created",
            AuditEvent::ClientEnrolled { .. } => "client_enrolled",
            AuditEvent::ClientRenewed { .. } => "client_renewed",
            AuditEvent::RecordingDeleted { .. } => "recording_deleted",
            AuditEvent::FailuresSummarized { .. } => "failures_summarized",
            AuditEvent::RecordingsRead { .. } => "recordings_read",
            AuditEvent::AuditExported { .. } => "audit_exported",
            AuditEvent::ClockChecked { .. } => "clock_checked",
        }
    }

    /// The target an event concerns, for filtering.
    pub fn target(&self) -> Option<TargetId> {
        match self {
            AuditEvent::TargetCreated { target, .. }
            | AuditEvent::TargetUpdated { target, .. }
            | AuditEvent::HostKeyPinned { target, .. }
            | AuditEvent::AssignmentCreated { target, .. }
            | AuditEvent::AssignmentUpdated { target, .. }
            | AuditEvent::AssignmentRemoved { target, .. }
            | AuditEvent::RequestFiled { target, .. }
            | AuditEvent::SessionStarted { target, .. }
            | AuditEvent::SessionEnded { target, .. }
            | AuditEvent::RecordingClosed { target, .. }
            | AuditEvent::RecordingFailed { target, .. }
            | AuditEvent::SessionTerminateRequested { target, .. }
            | AuditEvent::SessionReviewed { target, .. }
            | AuditEvent::RdpChannels { target, .. }
            | AuditEvent::FileTransferred { target, .. }
            | AuditEvent::LegalHoldChanged { target, .. } => Some(*target),
            AuditEvent::AccessDenied { target, .. } => *target,
            _ => None,
        }
    }

    /// The work request an event concerns, for filtering.
    pub fn request(&self) -> Option<RequestId> {
        match self {
            AuditEvent::RequestFiled { request, .. }
            | AuditEvent::RequestDecided { request, .. }
            | AuditEvent::SessionStarted { request, .. }
            | AuditEvent::SessionEnded { request, .. }
            | AuditEvent::RecordingClosed { request, .. }
            | AuditEvent::RecordingFailed { request, .. }
            | AuditEvent::SessionTerminateRequested { request, .. }
            | AuditEvent::SessionReviewed { request, .. }
            | AuditEvent::RdpChannels { request, .. }
            | AuditEvent::FileTransferred { request, .. }
            | AuditEvent::LegalHoldChanged { request, .. } => Some(*request),
            AuditEvent::AccessDenied { request, .. } => *request,
            _ => None,
        }
    }
}
