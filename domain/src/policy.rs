//! The hospital's rule settings that the pure rules consult.

use jiff::SignedDuration;
use serde::{Deserialize, Serialize};

/// One item of the hospital's security checklist that a vendor must attest to.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChecklistItem {
    /// Stable key stored with each answer, e.g. `mfa`.
    pub key: String,
    /// What a person reads, e.g. "MFA on engineer accounts".
    pub label: String,
}

/// The policy knobs the rules depend on (a subset of the `[policy]` config section).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// Distinct approvers a `change` request needs (a `reference` request needs one).
    pub approvals_for_change: u8,
    /// Whether emergency requests may be used before they are approved.
    pub emergency_access: bool,
    /// How long after filing an emergency request must be approved before it shows as overdue.
    pub emergency_approval_deadline: SignedDuration,
    /// The longest window a request may ask for.
    pub max_window: SignedDuration,
    /// The checklist every vendor attestation must answer "yes" to.
    pub checklist: Vec<ChecklistItem>,
    /// Whoever issued or reset a vendor engineer's credentials (initial password, password
    /// reset, enrollment code, SSH key) may not approve that engineer's requests for this
    /// long afterwards: separation of duties, so that no one person can give themselves
    /// vendor access. Zero turns the rule off (a hospital with a single IT person).
    pub credential_separation: SignedDuration,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            approvals_for_change: 1,
            emergency_access: false,
            emergency_approval_deadline: SignedDuration::from_hours(24),
            max_window: SignedDuration::from_hours(12),
            checklist: default_checklist(),
            credential_separation: SignedDuration::from_hours(24 * 30),
        }
    }
}

/// The checklist shipped as the default; hospitals replace it in `[policy]`.
pub fn default_checklist() -> Vec<ChecklistItem> {
    [
        ("mfa", "MFA on engineer accounts"),
        (
            "malware_protection",
            "Malware protection on maintenance PCs",
        ),
        ("confidentiality", "Staff confidentiality agreement"),
        ("patching", "Maintenance PCs patched within 30 days"),
    ]
    .into_iter()
    .map(|(key, label)| ChecklistItem {
        key: key.into(),
        label: label.into(),
    })
    .collect()
}
