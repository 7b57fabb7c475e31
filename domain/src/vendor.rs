//! Vendors and their security attestation (case 6: IDs only for vendors meeting the rules).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::VendorId;
use crate::policy::ChecklistItem;

/// Whether a vendor may work for the hospital.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VendorStatus {
    Active,
    /// Temporarily barred; may be reactivated.
    Suspended,
    /// The contract ended; final.
    Offboarded,
}

impl VendorStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            VendorStatus::Active => "active",
            VendorStatus::Suspended => "suspended",
            VendorStatus::Offboarded => "offboarded",
        }
    }
}

/// A person to call about a vendor's work.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Contact {
    pub name: String,
    pub email: Option<String>,
    pub phone: Option<String>,
}

/// One answered checklist item.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttestationAnswer {
    pub key: String,
    pub met: bool,
    pub note: Option<String>,
}

/// A vendor's signed statement that it implements the hospital's security measures.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attestation {
    pub answers: Vec<AttestationAnswer>,
    /// Who signed it on the vendor's side.
    pub attested_by: String,
    pub attested_at: Timestamp,
    pub expires_at: Timestamp,
}

/// Why an attestation does not (or no longer) qualify the vendor.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum AttestationProblem {
    Missing,
    /// A required item was not answered "met"; the label says which.
    Incomplete {
        item: String,
    },
    Expired {
        on: Timestamp,
    },
}

impl Attestation {
    /// Checks the attestation against the hospital's checklist at `now`.
    /// Every required item must be answered and met.
    pub fn problem(
        &self,
        checklist: &[ChecklistItem],
        now: Timestamp,
    ) -> Option<AttestationProblem> {
        if now >= self.expires_at {
            return Some(AttestationProblem::Expired {
                on: self.expires_at,
            });
        }
        checklist
            .iter()
            .find(|item| !self.answers.iter().any(|a| a.key == item.key && a.met))
            .map(|item| AttestationProblem::Incomplete {
                item: item.label.clone(),
            })
    }
}

/// A company registered for remote maintenance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vendor {
    pub id: VendorId,
    pub name: String,
    pub contact: Contact,
    pub attestation: Option<Attestation>,
    pub status: VendorStatus,
    pub created_at: Timestamp,
}

impl Vendor {
    /// The reason the attestation does not qualify this vendor, if any.
    pub fn attestation_problem(
        &self,
        checklist: &[ChecklistItem],
        now: Timestamp,
    ) -> Option<AttestationProblem> {
        match &self.attestation {
            None => Some(AttestationProblem::Missing),
            Some(a) => a.problem(checklist, now),
        }
    }
}
