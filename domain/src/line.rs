//! The inventory of external connection lines (外部接続回線の一覧, issue #18): every line or
//! device through which a vendor reaches the hospital, Sekisho's own and the exceptions that do
//! not go through it, with who owns it, where it is, the device and its firmware, and for an
//! exception the vendor's security measures. A line not reviewed for a year is flagged.

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::ids::{LineId, VendorId};

/// How long a review holds.
pub const REVIEW_VALID: SignedDuration = SignedDuration::from_hours(24 * 365);

/// Whether a vendor's traffic on the line goes through Sekisho.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Route {
    /// Through Sekisho: requests, approvals, recordings.
    Sekisho,
    /// A line outside Sekisho the hospital allows as an exception (a vendor's own VPN, a
    /// modem): its security measures must be submitted and reviewed.
    Exception,
}

impl Route {
    pub fn as_str(self) -> &'static str {
        match self {
            Route::Sekisho => "sekisho",
            Route::Exception => "exception",
        }
    }
}

/// Whether a line is in use.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineStatus {
    Active,
    /// Taken out of service; kept for the record.
    Retired,
}

impl LineStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            LineStatus::Active => "active",
            LineStatus::Retired => "retired",
        }
    }
}

/// One line or device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    pub id: LineId,
    pub name: String,
    pub route: Route,
    /// The vendor that uses it, if one does.
    pub vendor_id: Option<VendorId>,
    /// Who at the hospital is responsible for it.
    pub owner: String,
    /// Where it is (building, room, rack).
    pub location: String,
    /// The device (router, VPN appliance, modem): maker and model.
    pub device: String,
    pub firmware: String,
    /// When the device's firmware was last updated.
    pub firmware_updated_at: Option<Timestamp>,
    /// For an exception: the security measures the vendor submitted.
    pub measures: String,
    /// When the line (and an exception's measures) was last reviewed.
    pub reviewed_at: Option<Timestamp>,
    pub status: LineStatus,
    pub notes: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// What a reviewer should see about a line.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineFlag {
    /// Never reviewed.
    NeverReviewed,
    /// Last reviewed more than a year ago.
    ReviewOverdue,
    /// An exception without the vendor's security measures.
    MeasuresMissing,
    /// No record of when the firmware was last updated.
    FirmwareUnknown,
}

impl Line {
    /// The flags of an active line at `now` (a retired line has none).
    pub fn flags(&self, now: Timestamp) -> Vec<LineFlag> {
        let mut out = vec![];
        if self.status == LineStatus::Retired {
            return out;
        }
        match self.reviewed_at {
            None => out.push(LineFlag::NeverReviewed),
            Some(at) if now.duration_since(at) > REVIEW_VALID => out.push(LineFlag::ReviewOverdue),
            Some(_) => {}
        }
        if self.route == Route::Exception && self.measures.trim().is_empty() {
            out.push(LineFlag::MeasuresMissing);
        }
        if self.firmware_updated_at.is_none() {
            out.push(LineFlag::FirmwareUnknown);
        }
        out
    }

    /// Whether the line is due for review at `now` (never reviewed, or over a year ago).
    pub fn review_due(&self, now: Timestamp) -> bool {
        self.flags(now)
            .iter()
            .any(|f| matches!(f, LineFlag::NeverReviewed | LineFlag::ReviewOverdue))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn line(route: Route, reviewed: Option<&str>) -> Line {
        Line {
            id: LineId::new(),
            name: "CT vendor VPN".into(),
            route,
            vendor_id: None,
            owner: "IT".into(),
            location: "B1 server room".into(),
            device: "YAMAHA RTX1300".into(),
            firmware: "Rev.23.01.02".into(),
            firmware_updated_at: Some(at("2026-06-01T00:00:00Z")),
            measures: String::new(),
            reviewed_at: reviewed.map(at),
            status: LineStatus::Active,
            notes: String::new(),
            created_at: at("2025-01-01T00:00:00Z"),
            updated_at: at("2025-01-01T00:00:00Z"),
        }
    }

    #[test]
    fn a_review_holds_for_a_year() {
        let now = at("2026-12-01T00:00:00Z");
        assert!(
            line(Route::Sekisho, Some("2025-12-02T00:00:00Z"))
                .flags(now)
                .is_empty()
        );
        assert_eq!(
            line(Route::Sekisho, Some("2025-11-30T00:00:00Z")).flags(now),
            [LineFlag::ReviewOverdue]
        );
        assert_eq!(
            line(Route::Sekisho, None).flags(now),
            [LineFlag::NeverReviewed]
        );
        assert!(line(Route::Sekisho, None).review_due(now));
    }

    #[test]
    fn an_exception_needs_its_measures_and_a_retired_line_is_quiet() {
        let now = at("2026-12-01T00:00:00Z");
        let mut l = line(Route::Exception, Some("2026-11-01T00:00:00Z"));
        l.firmware_updated_at = None;
        assert_eq!(
            l.flags(now),
            [LineFlag::MeasuresMissing, LineFlag::FirmwareUnknown]
        );
        l.measures = "MFA on the VPN; logs sent monthly".into();
        l.firmware_updated_at = Some(now);
        assert!(l.flags(now).is_empty());
        l.status = LineStatus::Retired;
        l.reviewed_at = None;
        assert!(l.flags(now).is_empty());
    }
}
