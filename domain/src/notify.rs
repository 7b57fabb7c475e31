//! Notifications (issue #17): who is told what, in which language, and how often a delivery
//! is tried. Pure: the outbox is the store's, the sending is `sekisho-notify`'s.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A person's language for what Sekisho sends them.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Language {
    #[default]
    Ja,
    En,
}

impl Language {
    pub fn as_str(self) -> &'static str {
        match self {
            Language::Ja => "ja",
            Language::En => "en",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ja" => Some(Language::Ja),
            "en" => Some(Language::En),
            _ => None,
        }
    }
}

impl fmt::Display for Language {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a notification is about: the names webhooks subscribe to.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotificationKind {
    /// A work request waits for a decision (to approvers).
    RequestFiled,
    /// A request was approved or rejected (to the requester and the vendor's contact).
    RequestDecided,
    /// Emergency access was filed or used before approval (to approvers, at once).
    EmergencyAccess,
    /// Emergency work still has no after-the-fact approval past the deadline (to approvers).
    EmergencyApprovalOverdue,
    /// A session began (webhooks that subscribe).
    SessionStarted,
    /// A session ended (webhooks that subscribe).
    SessionEnded,
    /// A vendor's security attestation expires soon (its contact and admins).
    AttestationExpiring,
    /// A vendor's security attestation has expired: it cannot connect (its contact, admins).
    AttestationExpired,
    /// A vendor engineer's account was not used for a long time (admins: remove it).
    AccountUnused,
    /// A session's recording has not been reviewed in time (approvers).
    RecordingUnreviewed,
}

impl NotificationKind {
    pub const ALL: [NotificationKind; 10] = [
        NotificationKind::RequestFiled,
        NotificationKind::RequestDecided,
        NotificationKind::EmergencyAccess,
        NotificationKind::EmergencyApprovalOverdue,
        NotificationKind::SessionStarted,
        NotificationKind::SessionEnded,
        NotificationKind::AttestationExpiring,
        NotificationKind::AttestationExpired,
        NotificationKind::AccountUnused,
        NotificationKind::RecordingUnreviewed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotificationKind::RequestFiled => "request_filed",
            NotificationKind::RequestDecided => "request_decided",
            NotificationKind::EmergencyAccess => "emergency_access",
            NotificationKind::EmergencyApprovalOverdue => "emergency_approval_overdue",
            NotificationKind::SessionStarted => "session_started",
            NotificationKind::SessionEnded => "session_ended",
            NotificationKind::AttestationExpiring => "attestation_expiring",
            NotificationKind::AttestationExpired => "attestation_expired",
            NotificationKind::AccountUnused => "account_unused",
            NotificationKind::RecordingUnreviewed => "recording_unreviewed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether people are emailed about it (session starts and ends go to webhooks only).
    pub fn is_mailed(self) -> bool {
        !matches!(
            self,
            NotificationKind::SessionStarted | NotificationKind::SessionEnded
        )
    }
}

impl fmt::Display for NotificationKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a notification travels.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryChannel {
    Email,
    Webhook,
}

impl DeliveryChannel {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryChannel::Email => "email",
            DeliveryChannel::Webhook => "webhook",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "email" => Some(DeliveryChannel::Email),
            "webhook" => Some(DeliveryChannel::Webhook),
            _ => None,
        }
    }
}

impl fmt::Display for DeliveryChannel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The wait before the next try after `attempts` failed ones: `base` doubled each time, at
/// most an hour.
pub fn retry_delay(base: Duration, attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(20);
    base.saturating_mul(1u32 << doublings)
        .min(Duration::from_secs(3600))
}

/// The bytes a webhook signature covers: the timestamp (Unix seconds), a dot, the body. A
/// receiver recomputes HMAC-SHA256 over them with the shared secret, compares it with the
/// `X-Sekisho-Signature` header in constant time, and refuses an old timestamp (a replay).
pub fn signed_bytes(timestamp: i64, body: &[u8]) -> Vec<u8> {
    let mut out = format!("{timestamp}.").into_bytes();
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_an_hour() {
        let base = Duration::from_secs(2);
        let waits: Vec<u64> = (1..=4).map(|a| retry_delay(base, a).as_secs()).collect();
        assert_eq!(waits, vec![2, 4, 8, 16]);
        assert_eq!(retry_delay(base, 40), Duration::from_secs(3600));
    }

    #[test]
    fn names_round_trip() {
        for k in NotificationKind::ALL {
            assert_eq!(NotificationKind::parse(k.as_str()), Some(k));
            let json = serde_json::to_string(&k).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", k.as_str()));
        }
        assert_eq!(signed_bytes(7, b"{}"), b"7.{}".to_vec());
    }
}
