//! What a reviewer should see about a finished session (issue #18): activity at night or on a
//! holiday of the hospital's calendar, time outside the request's window, a large download, a
//! change-level session without a work report, emergency access used before approval; and
//! when its review is due.

use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::request::Window;
use crate::target::AccessLevel;

/// The hospital's calendar and thresholds.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewPolicy {
    /// Night: from `night.0` to `night.1` the next morning (or the same day when it is later).
    pub night: Option<(Time, Time)>,
    /// Saturdays and Sundays are days off.
    pub weekends: bool,
    /// Other days off (public holidays, the hospital's own).
    pub holidays: Vec<Date>,
    /// More than this many bytes from the target is a large download.
    pub large_download_bytes: u64,
    /// A finished session must be reviewed within this long.
    pub deadline: SignedDuration,
}

impl Default for ReviewPolicy {
    /// Nights from 22:00 to 06:00, weekends off, 100 MiB, a week to review (the defaults of
    /// `[review]` and `[notifications] review_within_days`).
    fn default() -> Self {
        Self {
            night: Some((Time::constant(22, 0, 0, 0), Time::constant(6, 0, 0, 0))),
            weekends: true,
            holidays: vec![],
            large_download_bytes: 100 << 20,
            deadline: SignedDuration::from_hours(24 * 7),
        }
    }
}

/// What happened, as the review needs it.
#[derive(Clone, Debug)]
pub struct SessionFacts {
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub window: Window,
    pub level: AccessLevel,
    pub emergency: bool,
    /// When the request got its (last needed) approval, if it did.
    pub approved_at: Option<Timestamp>,
    /// Whether the vendor filed a work report.
    pub reported: bool,
    pub bytes_from_target: u64,
}

/// A thing to look at.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
pub enum ReviewFlag {
    /// Part of the session was at night.
    Night,
    /// Part of the session was on a weekend or holiday.
    DayOff {
        date: String,
    },
    /// The session ran outside the request's window.
    OutsideWindow,
    LargeDownload {
        bytes: u64,
    },
    /// A change-level session and no work report.
    NoReport,
    /// Emergency access used before the request was approved.
    EmergencyBeforeApproval,
}

/// The flags of a session, its times read in `zone`.
pub fn flags(s: &SessionFacts, p: &ReviewPolicy, zone: &TimeZone) -> Vec<ReviewFlag> {
    let end = s.ended_at.unwrap_or(s.started_at);
    let mut out = vec![];
    if let Some((from, to)) = p.night
        && at_night(s.started_at, end, from, to, zone)
    {
        out.push(ReviewFlag::Night);
    }
    if let Some(date) = day_off(s.started_at, end, p, zone) {
        out.push(ReviewFlag::DayOff {
            date: date.to_string(),
        });
    }
    if s.started_at < s.window.start || end > s.window.end {
        out.push(ReviewFlag::OutsideWindow);
    }
    if s.bytes_from_target > p.large_download_bytes {
        out.push(ReviewFlag::LargeDownload {
            bytes: s.bytes_from_target,
        });
    }
    if s.level == AccessLevel::Change && s.ended_at.is_some() && !s.reported {
        out.push(ReviewFlag::NoReport);
    }
    if s.emergency && s.approved_at.is_none_or(|a| a > s.started_at) {
        out.push(ReviewFlag::EmergencyBeforeApproval);
    }
    out
}

/// How long the session from `start` to `end` ran outside its request's window: the time
/// before the window opened plus the time after it closed.
pub fn outside_window(start: Timestamp, end: Timestamp, window: &Window) -> SignedDuration {
    let gap = |from: Timestamp, to: Timestamp| {
        if to > from {
            to.duration_since(from)
        } else {
            SignedDuration::ZERO
        }
    };
    let before = gap(start, end.min(window.start));
    let after = gap(start.max(window.end), end);
    before.saturating_add(after)
}

/// When the review of a session that ended at `ended_at` is due.
pub fn due(ended_at: Timestamp, p: &ReviewPolicy) -> Timestamp {
    ended_at.saturating_add(p.deadline).unwrap_or(ended_at)
}

/// The days `start..=end` touches, in `zone`.
fn days(start: Timestamp, end: Timestamp, zone: &TimeZone) -> impl Iterator<Item = Date> {
    let first = zone.to_datetime(start).date();
    let last = zone.to_datetime(end).date();
    std::iter::successors(Some(first), move |d| {
        d.tomorrow().ok().filter(|n| *n <= last)
    })
}

fn day_off(start: Timestamp, end: Timestamp, p: &ReviewPolicy, zone: &TimeZone) -> Option<Date> {
    days(start, end, zone).find(|d| {
        p.holidays.contains(d)
            || (p.weekends
                && matches!(
                    d.weekday(),
                    jiff::civil::Weekday::Saturday | jiff::civil::Weekday::Sunday
                ))
    })
}

/// Whether `start..end` overlaps a night from `from` to `to` in `zone`.
fn at_night(start: Timestamp, end: Timestamp, from: Time, to: Time, zone: &TimeZone) -> bool {
    let instant = |d: Date, t: Time| {
        zone.to_ambiguous_timestamp(d.to_datetime(t))
            .compatible()
            .ok()
    };
    // The night that began the day before the session also counts (a session at 02:00).
    let first = zone.to_datetime(start).date().yesterday().ok();
    first.into_iter().chain(days(start, end, zone)).any(|d| {
        let next = if to > from {
            Some(d)
        } else {
            d.tomorrow().ok()
        };
        match (instant(d, from), next.and_then(|n| instant(n, to))) {
            (Some(a), Some(b)) => start < b && end > a,
            _ => false,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn policy() -> ReviewPolicy {
        ReviewPolicy {
            night: Some((Time::constant(22, 0, 0, 0), Time::constant(6, 0, 0, 0))),
            weekends: true,
            holidays: vec![jiff::civil::date(2026, 12, 31)],
            large_download_bytes: 100 << 20,
            deadline: SignedDuration::from_hours(24 * 7),
        }
    }

    /// A reference session on Tuesday 2026-12-01, 10:00 to 11:00 JST, inside its window.
    fn facts() -> SessionFacts {
        SessionFacts {
            started_at: at("2026-12-01T01:00:00Z"),
            ended_at: Some(at("2026-12-01T02:00:00Z")),
            window: Window {
                start: at("2026-12-01T00:00:00Z"),
                end: at("2026-12-01T03:00:00Z"),
            },
            level: AccessLevel::Reference,
            emergency: false,
            approved_at: Some(at("2026-11-30T00:00:00Z")),
            reported: false,
            bytes_from_target: 1000,
        }
    }

    fn tokyo() -> TimeZone {
        TimeZone::get("Asia/Tokyo").unwrap()
    }

    #[test]
    fn time_outside_the_window_counts_before_its_start_and_after_its_end() {
        let w = facts().window; // 00:00 to 03:00
        let secs = |a: &str, b: &str| outside_window(at(a), at(b), &w).as_secs();
        assert_eq!(secs("2026-12-01T01:00:00Z", "2026-12-01T02:00:00Z"), 0);
        assert_eq!(secs("2026-11-30T23:50:00Z", "2026-12-01T01:00:00Z"), 600);
        assert_eq!(secs("2026-12-01T02:00:00Z", "2026-12-01T03:30:00Z"), 1800);
        // Around the whole window: both sides.
        assert_eq!(secs("2026-11-30T23:00:00Z", "2026-12-01T04:00:00Z"), 7200);
        // Entirely after it: all of it.
        assert_eq!(secs("2026-12-01T05:00:00Z", "2026-12-01T05:10:00Z"), 600);
        // Entirely before it: all of it, not counted twice.
        assert_eq!(secs("2026-11-30T20:00:00Z", "2026-11-30T20:05:00Z"), 300);
    }

    #[test]
    fn a_weekday_session_in_office_hours_inside_its_window_has_no_flags() {
        assert!(flags(&facts(), &policy(), &tokyo()).is_empty());
    }

    #[test]
    fn night_is_read_in_the_hospitals_zone_across_midnight() {
        let mut s = facts();
        // 23:30 to 00:30 JST.
        s.started_at = at("2026-12-01T14:30:00Z");
        s.ended_at = Some(at("2026-12-01T15:30:00Z"));
        s.window.end = at("2026-12-01T16:00:00Z");
        assert_eq!(flags(&s, &policy(), &tokyo()), [ReviewFlag::Night]);
        // 02:00 to 03:00 JST: the night that began the day before.
        s.started_at = at("2026-11-30T17:00:00Z");
        s.ended_at = Some(at("2026-11-30T18:00:00Z"));
        s.window.start = at("2026-11-30T16:00:00Z");
        assert_eq!(flags(&s, &policy(), &tokyo()), [ReviewFlag::Night]);
        // 06:00 to 07:00 JST: morning.
        s.started_at = at("2026-11-30T21:00:00Z");
        s.ended_at = Some(at("2026-11-30T22:00:00Z"));
        assert!(flags(&s, &policy(), &tokyo()).is_empty());
    }

    #[test]
    fn weekends_and_holidays_are_days_off() {
        let mut s = facts();
        s.started_at = at("2026-12-31T01:00:00Z");
        s.ended_at = Some(at("2026-12-31T02:00:00Z"));
        s.window = Window {
            start: at("2026-12-31T00:00:00Z"),
            end: at("2026-12-31T03:00:00Z"),
        };
        assert_eq!(
            flags(&s, &policy(), &tokyo()),
            [ReviewFlag::DayOff {
                date: "2026-12-31".into()
            }]
        );
        // Saturday 2026-12-05, unless weekends are working days.
        s.started_at = at("2026-12-05T01:00:00Z");
        s.ended_at = Some(at("2026-12-05T02:00:00Z"));
        s.window = Window {
            start: at("2026-12-05T00:00:00Z"),
            end: at("2026-12-05T03:00:00Z"),
        };
        assert_eq!(flags(&s, &policy(), &tokyo()).len(), 1);
        let mut p = policy();
        p.weekends = false;
        assert!(flags(&s, &p, &tokyo()).is_empty());
    }

    #[test]
    fn the_rest_of_the_flags() {
        let mut s = facts();
        s.level = AccessLevel::Change;
        s.emergency = true;
        s.approved_at = Some(at("2026-12-01T01:30:00Z"));
        s.bytes_from_target = (100 << 20) + 1;
        s.ended_at = Some(at("2026-12-01T03:30:00Z"));
        assert_eq!(
            flags(&s, &policy(), &tokyo()),
            [
                ReviewFlag::OutsideWindow,
                ReviewFlag::LargeDownload {
                    bytes: (100 << 20) + 1
                },
                ReviewFlag::NoReport,
                ReviewFlag::EmergencyBeforeApproval,
            ]
        );
        s.reported = true;
        s.approved_at = Some(at("2026-12-01T00:59:00Z"));
        s.bytes_from_target = 100 << 20;
        s.ended_at = Some(at("2026-12-01T02:00:00Z"));
        assert!(flags(&s, &policy(), &tokyo()).is_empty());
        assert_eq!(
            due(at("2026-12-01T00:00:00Z"), &policy()),
            at("2026-12-08T00:00:00Z")
        );
    }
}
