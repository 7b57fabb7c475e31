//! Who maintains what: a vendor is assigned to a target under a maintenance contract, with the
//! contract's reference, its service level, the responsibility boundary (責任分界点) and an end
//! date. A vendor engineer sees, files requests for and connects to only the targets assigned
//! to their vendor whose contract has not ended.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::ids::{AssignmentId, TargetId, VendorId};

/// The longest contract reference.
pub const MAX_CONTRACT: usize = 200;
/// The longest service-level or responsibility-boundary text.
pub const MAX_NOTES: usize = 4000;

/// A vendor assigned to a target.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Assignment {
    pub id: AssignmentId,
    pub vendor_id: VendorId,
    pub target_id: TargetId,
    /// The maintenance contract's reference (number or title).
    pub contract: String,
    /// The service level agreed (response times, hours covered).
    pub sla: String,
    /// Where the vendor's responsibility ends and the hospital's begins.
    pub boundary: String,
    /// The contract ends at this instant; `None` for a contract without an end date.
    pub ends_at: Option<Timestamp>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Assignment {
    /// Whether the contract has ended at `now`.
    pub fn ended(&self, now: Timestamp) -> bool {
        self.ends_at.is_some_and(|end| now >= end)
    }

    /// Whether the contract ends within `days` days of `now` (and has not ended yet).
    pub fn ends_within(&self, now: Timestamp, days: i64) -> bool {
        self.ends_at.is_some_and(|end| {
            now < end && end.duration_since(now) <= jiff::SignedDuration::from_hours(24 * days)
        })
    }
}

/// What is wrong with an assignment for the use asked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ScopeProblem {
    /// The vendor is not assigned to the target.
    NotAssigned,
    /// The contract ended.
    ContractEnded { on: Timestamp },
}

/// Whether a vendor with `assignment` (its assignment to one target, if any) may work on that
/// target at `now`.
///
/// # Errors
/// Why not.
pub fn check(assignment: Option<&Assignment>, now: Timestamp) -> Result<&Assignment, ScopeProblem> {
    let a = assignment.ok_or(ScopeProblem::NotAssigned)?;
    match a.ends_at {
        Some(on) if now >= on => Err(ScopeProblem::ContractEnded { on }),
        _ => Ok(a),
    }
}

/// Whether a work window ending at `window_end` stays inside the contract.
///
/// # Errors
/// The contract's end, when the window goes past it.
pub fn check_window(assignment: &Assignment, window_end: Timestamp) -> Result<(), Timestamp> {
    match assignment.ends_at {
        Some(on) if window_end > on => Err(on),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn assignment(ends_at: Option<&str>) -> Assignment {
        Assignment {
            id: AssignmentId::new(),
            vendor_id: VendorId::new(),
            target_id: TargetId::new(),
            contract: "MC-2026-014".into(),
            sla: "4 h on-site".into(),
            boundary: "up to the PACS server's OS".into(),
            ends_at: ends_at.map(at),
            created_at: at("2026-01-01T00:00:00Z"),
            updated_at: at("2026-01-01T00:00:00Z"),
        }
    }

    #[test]
    fn no_assignment_is_no_scope() {
        assert_eq!(
            check(None, at("2026-12-01T00:00:00Z")),
            Err(ScopeProblem::NotAssigned)
        );
    }

    #[test]
    fn a_contract_holds_until_its_end_and_not_at_it() {
        let a = assignment(Some("2026-12-31T15:00:00Z"));
        assert!(check(Some(&a), at("2026-12-31T14:59:59Z")).is_ok());
        assert_eq!(
            check(Some(&a), at("2026-12-31T15:00:00Z")),
            Err(ScopeProblem::ContractEnded {
                on: at("2026-12-31T15:00:00Z")
            })
        );
        let open = assignment(None);
        assert!(check(Some(&open), at("2099-01-01T00:00:00Z")).is_ok());
    }

    #[test]
    fn a_window_may_end_at_the_contract_end_but_not_after() {
        let a = assignment(Some("2026-12-31T15:00:00Z"));
        assert!(check_window(&a, at("2026-12-31T15:00:00Z")).is_ok());
        assert_eq!(
            check_window(&a, at("2026-12-31T15:00:01Z")),
            Err(at("2026-12-31T15:00:00Z"))
        );
        assert!(check_window(&assignment(None), at("2099-01-01T00:00:00Z")).is_ok());
    }

    #[test]
    fn ending_soon_counts_days_ahead_only() {
        let a = assignment(Some("2026-12-31T00:00:00Z"));
        assert!(a.ends_within(at("2026-12-01T00:00:00Z"), 30));
        assert!(!a.ends_within(at("2026-11-30T00:00:00Z"), 30));
        assert!(!a.ends_within(at("2027-01-01T00:00:00Z"), 30));
        assert!(!assignment(None).ends_within(at("2026-12-01T00:00:00Z"), 30));
    }
}
