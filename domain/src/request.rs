//! Work requests and the state machine they move through.
//!
//! ```text
//! submitted ─┬─ approve (enough approvers) ─→ approved ─ activate ─→ active ─┬─ complete → completed
//!            ├─ reject ─→ rejected            │  ├─ cancel → cancelled       ├─ expire   → expired
//!            ├─ cancel ─→ cancelled           │  ├─ revoke → revoked         └─ revoke   → revoked
//!            ├─ expire ─→ expired             │  └─ expire → expired
//!            └─ activate (emergency only) ─→ active
//! ```
//! An emergency request may become active before it is approved; it must still be approved
//! afterwards (approvals are then recorded without a status change) and stays flagged.

use std::fmt;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{RequestId, TargetId, UserId, VendorId};
use crate::policy::Policy;
use crate::target::AccessLevel;
use crate::user::{CredentialIssue, CredentialKind, User};
use crate::vendor::{AttestationProblem, Vendor, VendorStatus};

/// Where a request is in its life.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestStatus {
    Submitted,
    Approved,
    Rejected,
    Cancelled,
    Active,
    Completed,
    Expired,
    Revoked,
}

impl RequestStatus {
    pub const ALL: [RequestStatus; 8] = [
        RequestStatus::Submitted,
        RequestStatus::Approved,
        RequestStatus::Rejected,
        RequestStatus::Cancelled,
        RequestStatus::Active,
        RequestStatus::Completed,
        RequestStatus::Expired,
        RequestStatus::Revoked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RequestStatus::Submitted => "submitted",
            RequestStatus::Approved => "approved",
            RequestStatus::Rejected => "rejected",
            RequestStatus::Cancelled => "cancelled",
            RequestStatus::Active => "active",
            RequestStatus::Completed => "completed",
            RequestStatus::Expired => "expired",
            RequestStatus::Revoked => "revoked",
        }
    }

    /// No further status change is possible.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            RequestStatus::Rejected
                | RequestStatus::Cancelled
                | RequestStatus::Completed
                | RequestStatus::Expired
                | RequestStatus::Revoked
        )
    }
}

impl fmt::Display for RequestStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for RequestStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RequestStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown request status `{s}`"))
    }
}

/// The time span a request covers: `start <= t < end`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

impl Window {
    pub fn contains(&self, t: Timestamp) -> bool {
        self.start <= t && t < self.end
    }
}

/// Why a window cannot be requested.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WindowError {
    #[error("window end must be after its start")]
    EndNotAfterStart,
    #[error("window is longer than the allowed {max_hours} hours")]
    TooLong { max_hours: i64 },
    #[error("window has already ended")]
    InThePast,
    #[error("window starts more than {max_days} days from now")]
    TooFarAhead { max_days: i64 },
}

/// How far ahead a window may start: work is planned, not booked for decades.
pub const MAX_ADVANCE_DAYS: i64 = 366;

/// Checks a requested window against the policy at filing time.
pub fn validate_window(window: Window, policy: &Policy, now: Timestamp) -> Result<(), WindowError> {
    if window.end <= window.start {
        return Err(WindowError::EndNotAfterStart);
    }
    if window.end.duration_since(window.start) > policy.max_window {
        return Err(WindowError::TooLong {
            max_hours: policy.max_window.as_hours(),
        });
    }
    if window.end <= now {
        return Err(WindowError::InThePast);
    }
    if window.start.duration_since(now) > jiff::SignedDuration::from_hours(24 * MAX_ADVANCE_DAYS) {
        return Err(WindowError::TooFarAhead {
            max_days: MAX_ADVANCE_DAYS,
        });
    }
    Ok(())
}

/// An approver's decision.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Approve,
    Reject,
}

/// One approver's sign-off (or rejection) of a request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    pub approver: UserId,
    pub verdict: Verdict,
    pub comment: Option<String>,
    pub at: Timestamp,
}

/// Where the approvals of a request stand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ApprovalState {
    Pending { have: u8, need: u8 },
    Approved,
    Rejected,
}

/// An application to do one piece of work on one target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkRequest {
    pub id: RequestId,
    /// Human number, shown as `R-<number>`.
    pub number: i64,
    pub requester: UserId,
    pub vendor_id: VendorId,
    pub target_id: TargetId,
    /// The target's name, kept here so messages can name it.
    pub target_name: String,
    pub level: AccessLevel,
    pub window: Window,
    pub reason: String,
    pub plan: String,
    pub emergency: bool,
    pub status: RequestStatus,
    pub approvals: Vec<Approval>,
    pub created_at: Timestamp,
}

/// Something that happens to a request.
#[derive(Clone, Debug)]
pub enum RequestEvent<'a> {
    Approve {
        approver: &'a User,
        comment: Option<String>,
    },
    Reject {
        approver: &'a User,
        comment: Option<String>,
    },
    /// The requester withdraws it.
    Cancel { by: UserId },
    /// A session opened under it.
    Activate,
    /// The requester declares the work done.
    Complete { by: UserId },
    /// Its window ended.
    Expire,
    /// An approver or admin withdraws the permission.
    Revoke { by: &'a User },
}

impl RequestEvent<'_> {
    pub fn name(&self) -> &'static str {
        match self {
            RequestEvent::Approve { .. } => "approve",
            RequestEvent::Reject { .. } => "reject",
            RequestEvent::Cancel { .. } => "cancel",
            RequestEvent::Activate => "activate",
            RequestEvent::Complete { .. } => "complete",
            RequestEvent::Expire => "expire",
            RequestEvent::Revoke { .. } => "revoke",
        }
    }
}

/// What was done to a request, as the audit log names it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Approve,
    Reject,
    Cancel,
    Revoke,
    /// The requester's work report (which completes an active request).
    Report,
    Activate,
    Complete,
    Expire,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Approve => "approve",
            Action::Reject => "reject",
            Action::Cancel => "cancel",
            Action::Revoke => "revoke",
            Action::Report => "report",
            Action::Activate => "activate",
            Action::Complete => "complete",
            Action::Expire => "expire",
        }
    }
}

/// What the rules need to know besides the request itself.
#[derive(Clone, Copy, Debug)]
pub struct RuleContext<'a> {
    pub policy: &'a Policy,
    /// The requesting vendor, as it is now.
    pub vendor: &'a Vendor,
    pub now: Timestamp,
    /// For times and dates in messages.
    pub zone: &'a crate::zone::DisplayZone,
    /// Credentials issued to the requester, and by whom (separation of duties).
    pub credentials: &'a [CredentialIssue],
}

/// The outcome of an allowed event: the new status and an approval to record, if any.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Transition {
    pub status: RequestStatus,
    pub record: Option<Approval>,
}

/// Why an event is not allowed. Messages name the request as people know it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TransitionError {
    #[error("request R-{number} is already {status}")]
    InvalidState {
        number: i64,
        status: RequestStatus,
        event: &'static str,
    },
    #[error("the requester cannot approve or reject their own request R-{number}")]
    SelfApproval { number: i64 },
    #[error("only approvers and admins may decide or revoke requests")]
    NotAnApprover,
    #[error("you have already approved request R-{number}")]
    AlreadyApproved { number: i64 },
    #[error("only the requester may {action} request R-{number}")]
    NotRequester { number: i64, action: &'static str },
    #[error("vendor {vendor} is {status} and cannot have requests approved")]
    VendorInactive {
        vendor: String,
        status: &'static str,
    },
    #[error("vendor {vendor}'s security attestation {problem}")]
    VendorNotQualified { vendor: String, problem: String },
    #[error("request R-{number}'s window has already ended")]
    WindowEnded { number: i64 },
    #[error("request R-{number}'s window has not ended yet")]
    WindowNotEnded { number: i64 },
    #[error("emergency access is disabled by policy; request R-{number} must be approved first")]
    EmergencyDisabled { number: i64 },
    #[error("request R-{number} is not approved")]
    NotApproved { number: i64 },
    #[error(
        "you {} this engineer on {on}: someone else must approve request R-{number} (separation of duties)",
        .kind.describe()
    )]
    IssuedCredentials {
        number: i64,
        kind: CredentialKind,
        /// When, as people read it.
        on: String,
    },
}

/// A short phrase for an attestation problem, used in messages ("... expired on 2026-10-01").
pub fn describe_attestation(
    problem: &AttestationProblem,
    zone: &crate::zone::DisplayZone,
) -> String {
    match problem {
        AttestationProblem::Missing => "is missing".into(),
        AttestationProblem::Incomplete { item } => format!("does not meet \"{item}\""),
        AttestationProblem::Expired { on } => format!("expired on {}", zone.date(*on)),
    }
}

impl WorkRequest {
    /// How many approvals this request needs: one for reference, the policy's number for change.
    pub fn approvals_needed(&self, policy: &Policy) -> u8 {
        match self.level {
            AccessLevel::Reference => 1,
            AccessLevel::Change => policy.approvals_for_change.max(1),
        }
    }

    /// When the request got the last approval it needed, if it got them all (before any
    /// rejection).
    pub fn approved_at(&self, policy: &Policy) -> Option<Timestamp> {
        let mut approvals: Vec<&Approval> = self.approvals.iter().collect();
        approvals.sort_by_key(|a| a.at);
        let needed = usize::from(self.approvals_needed(policy));
        let mut seen = 0;
        for a in approvals {
            match a.verdict {
                Verdict::Reject => return None,
                Verdict::Approve => {
                    seen += 1;
                    if seen == needed {
                        return Some(a.at);
                    }
                }
            }
        }
        None
    }

    pub fn approval_state(&self, policy: &Policy) -> ApprovalState {
        if self.approvals.iter().any(|a| a.verdict == Verdict::Reject) {
            return ApprovalState::Rejected;
        }
        let have = self
            .approvals
            .iter()
            .filter(|a| a.verdict == Verdict::Approve)
            .count();
        let have = u8::try_from(have).unwrap_or(u8::MAX);
        let need = self.approvals_needed(policy);
        if have >= need {
            ApprovalState::Approved
        } else {
            ApprovalState::Pending { have, need }
        }
    }

    /// An emergency request used (or filed) without approval past the policy's deadline.
    pub fn is_overdue(&self, policy: &Policy, now: Timestamp) -> bool {
        self.emergency
            && matches!(self.approval_state(policy), ApprovalState::Pending { .. })
            && !matches!(
                self.status,
                RequestStatus::Cancelled | RequestStatus::Rejected
            )
            && now.duration_since(self.created_at) > policy.emergency_approval_deadline
    }

    /// The display reference, `R-12`.
    pub fn reference(&self) -> String {
        format!("R-{}", self.number)
    }

    /// Decides whether `event` may happen now and what it changes. Pure: the caller stores
    /// the returned status and approval record.
    pub fn apply(
        &self,
        event: &RequestEvent<'_>,
        ctx: &RuleContext<'_>,
    ) -> Result<Transition, TransitionError> {
        use RequestStatus as S;
        let number = self.number;
        let invalid = || TransitionError::InvalidState {
            number,
            status: self.status,
            event: event.name(),
        };
        let stay = |record: Option<Approval>| Transition {
            status: self.status,
            record,
        };
        let go = |status: RequestStatus| Transition {
            status,
            record: None,
        };
        match event {
            RequestEvent::Approve { approver, comment } => {
                self.check_decider(approver)?;
                self.check_separation(approver, ctx)?;
                if self
                    .approvals
                    .iter()
                    .any(|a| a.approver == approver.id && a.verdict == Verdict::Approve)
                {
                    return Err(TransitionError::AlreadyApproved { number });
                }
                let record = Approval {
                    approver: approver.id,
                    verdict: Verdict::Approve,
                    comment: comment.clone(),
                    at: ctx.now,
                };
                let pending = matches!(
                    self.approval_state(ctx.policy),
                    ApprovalState::Pending { .. }
                );
                match self.status {
                    S::Submitted => {
                        self.check_vendor(ctx)?;
                        if self.window.end <= ctx.now {
                            return Err(TransitionError::WindowEnded { number });
                        }
                        let have = self
                            .approvals
                            .iter()
                            .filter(|a| a.verdict == Verdict::Approve)
                            .count()
                            + 1;
                        if have >= usize::from(self.approvals_needed(ctx.policy)) {
                            Ok(Transition {
                                status: S::Approved,
                                record: Some(record),
                            })
                        } else {
                            Ok(stay(Some(record)))
                        }
                    }
                    // After-the-fact approval of emergency work: recorded, status unchanged.
                    S::Active | S::Completed | S::Expired if self.emergency && pending => {
                        Ok(stay(Some(record)))
                    }
                    _ => Err(invalid()),
                }
            }
            RequestEvent::Reject { approver, comment } => {
                self.check_decider(approver)?;
                let record = Some(Approval {
                    approver: approver.id,
                    verdict: Verdict::Reject,
                    comment: comment.clone(),
                    at: ctx.now,
                });
                let pending = matches!(
                    self.approval_state(ctx.policy),
                    ApprovalState::Pending { .. }
                );
                match self.status {
                    S::Submitted => Ok(Transition {
                        status: S::Rejected,
                        record,
                    }),
                    // Rejecting emergency work in progress stops it.
                    S::Active if self.emergency && pending => Ok(Transition {
                        status: S::Revoked,
                        record,
                    }),
                    S::Completed | S::Expired if self.emergency && pending => Ok(stay(record)),
                    _ => Err(invalid()),
                }
            }
            RequestEvent::Cancel { by } => {
                if *by != self.requester {
                    return Err(TransitionError::NotRequester {
                        number,
                        action: "cancel",
                    });
                }
                match self.status {
                    S::Submitted | S::Approved => Ok(go(S::Cancelled)),
                    _ => Err(invalid()),
                }
            }
            RequestEvent::Activate => match self.status {
                S::Approved | S::Active => Ok(go(S::Active)),
                S::Submitted if self.emergency => {
                    if ctx.policy.emergency_access {
                        Ok(go(S::Active))
                    } else {
                        Err(TransitionError::EmergencyDisabled { number })
                    }
                }
                S::Submitted => Err(TransitionError::NotApproved { number }),
                _ => Err(invalid()),
            },
            RequestEvent::Complete { by } => {
                if *by != self.requester {
                    return Err(TransitionError::NotRequester {
                        number,
                        action: "complete",
                    });
                }
                match self.status {
                    S::Active => Ok(go(S::Completed)),
                    _ => Err(invalid()),
                }
            }
            RequestEvent::Expire => {
                if ctx.now < self.window.end {
                    return Err(TransitionError::WindowNotEnded { number });
                }
                match self.status {
                    S::Submitted | S::Approved | S::Active => Ok(go(S::Expired)),
                    _ => Err(invalid()),
                }
            }
            RequestEvent::Revoke { by } => {
                if !by.role.may_approve() {
                    return Err(TransitionError::NotAnApprover);
                }
                match self.status {
                    S::Approved | S::Active => Ok(go(S::Revoked)),
                    _ => Err(invalid()),
                }
            }
        }
    }

    fn check_decider(&self, approver: &User) -> Result<(), TransitionError> {
        if approver.id == self.requester {
            return Err(TransitionError::SelfApproval {
                number: self.number,
            });
        }
        if !approver.role.may_approve() {
            return Err(TransitionError::NotAnApprover);
        }
        Ok(())
    }

    /// Whoever gave the requester a credential within the policy's separation window may not
    /// approve: with it they could act as the engineer and approve their own work.
    fn check_separation(
        &self,
        approver: &User,
        ctx: &RuleContext<'_>,
    ) -> Result<(), TransitionError> {
        let window = ctx.policy.credential_separation;
        if window.is_zero() {
            return Ok(());
        }
        let recent = ctx
            .credentials
            .iter()
            .filter(|c| c.user == self.requester && c.actor == approver.id)
            .filter(|c| ctx.now.duration_since(c.at) < window)
            .max_by_key(|c| c.at);
        match recent {
            Some(c) => Err(TransitionError::IssuedCredentials {
                number: self.number,
                kind: c.kind,
                on: ctx.zone.date(c.at),
            }),
            None => Ok(()),
        }
    }

    fn check_vendor(&self, ctx: &RuleContext<'_>) -> Result<(), TransitionError> {
        let vendor = ctx.vendor;
        if vendor.status != VendorStatus::Active {
            return Err(TransitionError::VendorInactive {
                vendor: vendor.name.clone(),
                status: vendor.status.as_str(),
            });
        }
        if let Some(problem) = vendor.attestation_problem(&ctx.policy.checklist, ctx.now) {
            return Err(TransitionError::VendorNotQualified {
                vendor: vendor.name.clone(),
                problem: describe_attestation(&problem, ctx.zone),
            });
        }
        Ok(())
    }
}
