//! The JSON shapes of the API: what clients send and what they get back. Kept apart from the
//! domain types so the contract stays stable and never carries a secret.

use std::collections::BTreeMap;

use jiff::Timestamp;
use sekisho_domain::audit::Outcome;
use sekisho_domain::ids::{RequestId, SessionId, TargetId, UserId, VendorId};
use sekisho_domain::notify::Language;
use sekisho_domain::policy::Policy;
use sekisho_domain::request::{ApprovalState, RequestStatus, Verdict, WorkRequest};
use sekisho_domain::session::{SessionEnd, Transport};
use sekisho_domain::target::AccessLevel;
use sekisho_domain::user::{AccountSource, Role, User, UserStatus};
use sekisho_domain::vendor::{Vendor, VendorStatus};
use sekisho_domain::zone::DisplayZone;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use sekisho_store::audit::StoredAuditEvent;
use sekisho_store::requests::StoredRequest;
use sekisho_store::sessions::{Review, StoredSession};
use sekisho_store::users::SshKey;

use super::target_dto::double_option;
pub use super::target_dto::*;

// ---- users ---------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct UserView {
    #[schema(value_type = String, format = Uuid)]
    pub id: UserId,
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub role: Role,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub vendor_id: Option<VendorId>,
    pub status: UserStatus,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// The site a staff account is limited to; `null`: every site.
    #[serde(default)]
    pub site: Option<String>,
    /// The language of the mail Sekisho sends them; `null`: the configured default.
    #[serde(default)]
    pub language: Option<Language>,
    /// `local`: made in Sekisho with its own password (vendor engineers; staff's break-glass
    /// accounts); `directory`: from the hospital's directory, which holds its password.
    #[serde(default)]
    pub source: AccountSource,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            username: u.username.clone(),
            display_name: u.display_name.clone(),
            email: u.email.clone(),
            role: u.role,
            vendor_id: u.vendor_id,
            status: u.status,
            expires_at: u.expires_at,
            created_at: u.created_at,
            site: u.site.clone(),
            language: u.language,
            source: u.source,
        }
    }
}

/// A vendor engineer's account.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVendorUserBody {
    pub username: String,
    pub display_name: Option<String>,
    pub email: Option<String>,
    /// At least 12 characters and hard to guess (strength 3 of 4).
    #[schema(format = Password, min_length = 12, max_length = 1024)]
    pub password: String,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

/// Your current password and the new one.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PasswordChangeBody {
    #[schema(format = Password)]
    pub current_password: String,
    /// At least 12 characters and hard to guess (strength 3 of 4).
    #[schema(format = Password, min_length = 12, max_length = 1024)]
    pub new_password: String,
}

/// Changes to an account; absent fields stay as they are.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserPatchBody {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub display_name: Option<String>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub email: Option<Option<String>>,
    /// `disabled` cuts the account off at once, live sessions included.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<UserStatus>,
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Option<Timestamp>>,
    /// At least 12 characters and hard to guess (strength 3 of 4).
    #[schema(format = Password, min_length = 12, max_length = 1024)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Staff only: limit the account to one site of a hospital group, or `null` for every
    /// site.
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<String>)]
    pub site: Option<Option<String>>,
    /// The language of the mail Sekisho sends this person (`ja` or `en`), or `null` for the
    /// configured default (`[notifications] language`).
    #[serde(
        default,
        deserialize_with = "double_option",
        skip_serializing_if = "Option::is_none"
    )]
    #[schema(value_type = Option<Language>)]
    pub language: Option<Option<Language>>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SshKeyBody {
    /// One OpenSSH public key line, e.g. `ssh-ed25519 AAAA... alice@laptop`.
    pub public_key: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SshKeyView {
    pub id: String,
    /// `SHA256:...`, as `ssh-keygen -l` shows it.
    pub fingerprint: String,
    pub public_key: String,
    pub comment: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// `pending` keys (registered by the engineer themself) log in only once IT approves.
    pub status: sekisho_domain::user::SshKeyStatus,
}

impl From<SshKey> for SshKeyView {
    fn from(k: SshKey) -> Self {
        Self {
            id: k.id,
            fingerprint: k.fingerprint,
            public_key: k.public_key,
            comment: k.comment,
            created_at: k.created_at,
            status: k.status,
        }
    }
}

// ---- vendors -------------------------------------------------------------------------

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ContactBody {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// A vendor's answers to the hospital's security checklist.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AttestationBody {
    /// Checklist key → whether the measure is in place (see `GET /api/v1/policy`).
    pub answers: BTreeMap<String, bool>,
    /// Who signed for the vendor.
    pub attested_by: String,
    /// Defaults to now.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub attested_at: Option<Timestamp>,
    /// Defaults to `attested_at` plus `[policy] attestation_validity_days`.
    #[schema(value_type = Option<String>, format = DateTime)]
    pub expires_at: Option<Timestamp>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewVendorBody {
    pub name: String,
    #[serde(default)]
    pub contact: ContactBody,
    pub attestation: Option<AttestationBody>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct VendorPatchBody {
    pub name: Option<String>,
    pub contact: Option<ContactBody>,
    pub attestation: Option<AttestationBody>,
    /// `suspended` or `offboarded` ends the vendor's live sessions at once; offboarding is final.
    pub status: Option<VendorStatus>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AttestationView {
    pub answers: BTreeMap<String, bool>,
    pub attested_by: String,
    #[schema(value_type = String, format = DateTime)]
    pub attested_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub expires_at: Timestamp,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct VendorView {
    #[schema(value_type = String, format = Uuid)]
    pub id: VendorId,
    pub name: String,
    pub contact: ContactBody,
    pub status: VendorStatus,
    pub attestation: Option<AttestationView>,
    /// Whether the attestation currently meets the hospital's checklist.
    pub qualified: bool,
    /// Why not, in words (e.g. "expired on 2026-10-01").
    pub attestation_problem: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl VendorView {
    pub fn new(v: &Vendor, policy: &Policy, zone: &DisplayZone) -> Self {
        let problem = v.attestation_problem(&policy.checklist, Timestamp::now());
        Self {
            id: v.id,
            name: v.name.clone(),
            contact: ContactBody {
                name: v.contact.name.clone(),
                email: v.contact.email.clone(),
                phone: v.contact.phone.clone(),
            },
            status: v.status,
            attestation: v.attestation.as_ref().map(|a| AttestationView {
                answers: a.answers.iter().map(|x| (x.key.clone(), x.met)).collect(),
                attested_by: a.attested_by.clone(),
                attested_at: a.attested_at,
                expires_at: a.expires_at,
            }),
            qualified: problem.is_none(),
            attestation_problem: problem
                .map(|p| sekisho_domain::request::describe_attestation(&p, zone)),
            created_at: v.created_at,
        }
    }
}

// ---- targets -------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRequestBody {
    /// Target name (or id).
    pub target: String,
    pub level: AccessLevel,
    #[schema(value_type = String, format = DateTime)]
    pub window_start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub window_end: Timestamp,
    pub reason: String,
    #[serde(default)]
    pub plan: String,
    /// Usable before approval where `[policy] emergency_access` allows; approved afterwards.
    #[serde(default)]
    pub emergency: bool,
}

#[derive(Debug, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    pub comment: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReportBody {
    /// What was done.
    pub text: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalView {
    #[schema(value_type = String, format = Uuid)]
    pub approver: UserId,
    pub verdict: Verdict,
    pub comment: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
}

/// Where a request's approvals stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalProgress {
    Pending,
    Approved,
    Rejected,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct ApprovalStateView {
    pub state: ApprovalProgress,
    pub have: u8,
    pub need: u8,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct RequestView {
    #[schema(value_type = String, format = Uuid)]
    pub id: RequestId,
    /// `R-12`.
    pub reference: String,
    pub number: i64,
    #[schema(value_type = String, format = Uuid)]
    pub requester: UserId,
    #[schema(value_type = String, format = Uuid)]
    pub vendor_id: VendorId,
    #[schema(value_type = String, format = Uuid)]
    pub target_id: TargetId,
    pub target: String,
    pub level: AccessLevel,
    #[schema(value_type = String, format = DateTime)]
    pub window_start: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub window_end: Timestamp,
    pub reason: String,
    pub plan: String,
    pub emergency: bool,
    pub status: RequestStatus,
    pub approval: ApprovalStateView,
    pub approvals: Vec<ApprovalView>,
    /// An emergency request not approved within the policy's deadline.
    pub overdue: bool,
    pub report: Option<String>,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
}

impl RequestView {
    pub fn new(r: &WorkRequest, report: Option<String>, policy: &Policy) -> Self {
        let need = r.approvals_needed(policy);
        let approval = match r.approval_state(policy) {
            ApprovalState::Pending { have, need } => ApprovalStateView {
                state: ApprovalProgress::Pending,
                have,
                need,
            },
            ApprovalState::Approved => ApprovalStateView {
                state: ApprovalProgress::Approved,
                have: need,
                need,
            },
            ApprovalState::Rejected => ApprovalStateView {
                state: ApprovalProgress::Rejected,
                have: 0,
                need,
            },
        };
        Self {
            id: r.id,
            reference: r.reference(),
            number: r.number,
            requester: r.requester,
            vendor_id: r.vendor_id,
            target_id: r.target_id,
            target: r.target_name.clone(),
            level: r.level,
            window_start: r.window.start,
            window_end: r.window.end,
            reason: r.reason.clone(),
            plan: r.plan.clone(),
            emergency: r.emergency,
            status: r.status,
            approval,
            approvals: r
                .approvals
                .iter()
                .map(|a| ApprovalView {
                    approver: a.approver,
                    verdict: a.verdict,
                    comment: a.comment.clone(),
                    at: a.at,
                })
                .collect(),
            overdue: r.is_overdue(policy, Timestamp::now()),
            report,
            created_at: r.created_at,
        }
    }

    pub fn stored(s: &StoredRequest, policy: &Policy) -> Self {
        Self::new(&s.request, s.report.clone(), policy)
    }
}

// ---- sessions ------------------------------------------------------------------------

/// Whether IT has signed off a session's review.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ReviewState {
    Pending,
    SignedOff,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    #[schema(value_type = String, format = Uuid)]
    pub id: SessionId,
    #[schema(value_type = String, format = Uuid)]
    pub request_id: RequestId,
    #[schema(value_type = String, format = Uuid)]
    pub user_id: UserId,
    #[schema(value_type = String, format = Uuid)]
    pub vendor_id: VendorId,
    #[schema(value_type = String, format = Uuid)]
    pub target_id: TargetId,
    /// The vendor engineer's username.
    pub username: String,
    /// The target's name.
    pub target: String,
    /// The work request's number (`R-n`).
    pub request_number: i64,
    pub level: AccessLevel,
    pub transport: Transport,
    pub source_addr: String,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub ended_at: Option<Timestamp>,
    pub end: Option<SessionEnd>,
    pub bytes_to_target: u64,
    pub bytes_from_target: u64,
    pub review: ReviewState,
    pub reviewed_by: Option<String>,
    pub review_comment: Option<String>,
}

impl From<&StoredSession> for SessionView {
    fn from(s: &StoredSession) -> Self {
        let x = &s.session;
        let (review, reviewed_by, review_comment) = match &s.review {
            Review::Pending => (ReviewState::Pending, None, None),
            Review::SignedOff { by, comment, .. } => {
                (ReviewState::SignedOff, Some(by.clone()), comment.clone())
            }
        };
        Self {
            id: x.id,
            request_id: x.request_id,
            user_id: x.user_id,
            vendor_id: x.vendor_id,
            target_id: x.target_id,
            username: s.username.clone(),
            target: s.target_name.clone(),
            request_number: s.request_number,
            level: x.level,
            transport: x.transport,
            source_addr: x.source_addr.clone(),
            started_at: x.started_at,
            ended_at: x.ended_at,
            end: x.end,
            bytes_to_target: x.bytes_to_target,
            bytes_from_target: x.bytes_from_target,
            review,
            reviewed_by,
            review_comment,
        }
    }
}

// ---- audit ---------------------------------------------------------------------------

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditEventView {
    pub seq: i64,
    #[schema(value_type = String, format = DateTime)]
    pub at: Timestamp,
    pub kind: String,
    pub outcome: Outcome,
    /// Who: a username, `system`, `cli:<os user>` or `anonymous:<claimed name>`.
    pub actor: String,
    pub user_id: Option<String>,
    pub vendor_id: Option<String>,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub source_addr: Option<String>,
    pub reason: Option<String>,
    /// The event's own fields.
    #[schema(value_type = Object)]
    pub details: serde_json::Value,
    pub hash: String,
}

impl From<&StoredAuditEvent> for AuditEventView {
    fn from(s: &StoredAuditEvent) -> Self {
        let e = &s.entry;
        let actor = serde_json::from_str::<sekisho_domain::audit::Actor>(&e.actor)
            .map(|a| a.label())
            .unwrap_or_else(|_| e.actor.clone());
        Self {
            seq: e.seq,
            at: e.at,
            kind: e.kind.clone(),
            outcome: e.outcome,
            actor,
            user_id: e.user_id.clone(),
            vendor_id: e.vendor_id.clone(),
            target_id: e.target_id.clone(),
            request_id: e.request_id.clone(),
            source_addr: e.source_addr.clone(),
            reason: e.reason.clone(),
            details: serde_json::from_str(&e.details).unwrap_or(serde_json::Value::Null),
            hash: s.hash.clone(),
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct AuditPage {
    pub events: Vec<AuditEventView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    pub next_cursor: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize, ToSchema)]
pub struct VerifyView {
    /// When the walk that this report describes finished.
    #[schema(value_type = String, format = DateTime)]
    pub verified_at: Timestamp,
    pub intact: bool,
    pub rows: i64,
    pub last_seq: i64,
    /// The first break, in words.
    pub problem: Option<String>,
    /// Signed checkpoints (on the recordings share) that match the log.
    pub checkpoints: usize,
    /// Checkpoints that do not: a rewritten tail, removed rows, a forged checkpoint.
    pub checkpoint_problems: Vec<String>,
}
