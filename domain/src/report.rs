//! The monthly report for the hospital's security committee (issue #18): which vendors worked
//! on which systems and for how long, emergency uses and how long their approval took, what
//! was refused and why, how the reviews stand, files that crossed, and what is about to lapse
//! (attestations, contracts) or has gone stale (unused accounts, lines not reviewed). A pure
//! function of plain rows; the store gathers them, the console and the CLI render the result.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use crate::files::Direction;
use crate::target::AccessLevel;

/// A calendar month of the hospital's zone.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Month {
    first: Date,
}

impl Month {
    /// `2026-11`.
    ///
    /// # Errors
    /// What is wrong with `s`.
    pub fn parse(s: &str) -> Result<Month, String> {
        let bad = || format!("`{s}` is not a month: write it as YYYY-MM, e.g. 2026-11");
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        let (year, month) = (
            y.parse::<i16>().map_err(|_| bad())?,
            m.parse::<i8>().map_err(|_| bad())?,
        );
        if y.len() != 4 || m.len() != 2 {
            return Err(bad());
        }
        Date::new(year, month, 1)
            .map(|first| Month { first })
            .map_err(|_| bad())
    }

    /// The month `at` falls in, in `zone`.
    pub fn of(at: Timestamp, zone: &TimeZone) -> Month {
        let d = zone.to_datetime(at).date();
        Month {
            first: d.first_of_month(),
        }
    }

    /// The month before this one.
    pub fn previous(self) -> Month {
        Month {
            first: self
                .first
                .checked_sub(jiff::Span::new().months(1))
                .unwrap_or(self.first),
        }
    }

    /// When it starts and when the next one starts, in `zone`.
    pub fn bounds(self, zone: &TimeZone) -> (Timestamp, Timestamp) {
        let start = |d: Date| {
            zone.to_ambiguous_timestamp(d.to_datetime(jiff::civil::Time::midnight()))
                .compatible()
                .unwrap_or(Timestamp::UNIX_EPOCH)
        };
        let next = self
            .first
            .checked_add(jiff::Span::new().months(1))
            .unwrap_or(self.first);
        (start(self.first), start(next))
    }

    /// Its days.
    pub fn days(self) -> impl Iterator<Item = Date> {
        let first = self.first;
        std::iter::successors(Some(first), move |d| {
            d.tomorrow().ok().filter(|n| n.month() == first.month())
        })
    }
}

impl std::fmt::Display for Month {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04}-{:02}", self.first.year(), self.first.month())
    }
}

/// A session started in the month, with its request.
#[derive(Clone, Debug)]
pub struct SessionRow {
    pub vendor: String,
    pub target: String,
    pub level: AccessLevel,
    pub started_at: Timestamp,
    pub ended_at: Option<Timestamp>,
    pub request_number: i64,
    pub emergency: bool,
    pub request_filed_at: Timestamp,
    pub approved_at: Option<Timestamp>,
    /// When the review was signed off; `None` while pending.
    pub reviewed_at: Option<Timestamp>,
}

/// A file that crossed in the month.
#[derive(Clone, Debug)]
pub struct TransferRow {
    pub direction: Direction,
    pub bytes: u64,
    /// Refused, or held for a scanner's verdict.
    pub blocked: bool,
}

/// Everything the report is made of.
#[derive(Clone, Debug)]
pub struct Inputs {
    pub month: Month,
    /// The site the report is limited to (`None`: the whole hospital group).
    pub site: Option<String>,
    pub now: Timestamp,
    pub sessions: Vec<SessionRow>,
    /// The refusal code of each `access_denied` in the month.
    pub refusals: Vec<String>,
    pub transfers: Vec<TransferRow>,
    /// Vendors and when their attestation ends.
    pub attestations: Vec<(String, Timestamp)>,
    /// "vendor → target" and when its contract ends.
    pub contracts: Vec<(String, Timestamp)>,
    /// Accounts not used for the configured days at the month's end: username, vendor, last use.
    pub unused_accounts: Vec<(String, String, Option<Timestamp>)>,
    /// Lines due for review at the month's end.
    pub lines_due: Vec<String>,
    /// How long a review may take.
    pub review_deadline: SignedDuration,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Tally {
    pub key: String,
    pub sessions: u64,
    /// Hours of work, to the hundredth.
    pub hours: f64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Count {
    pub key: String,
    pub count: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Emergency {
    pub request_number: i64,
    pub vendor: String,
    pub target: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub used_at: Timestamp,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub approved_at: Option<Timestamp>,
    /// Hours from filing to approval (`null`: not approved).
    pub approval_delay_hours: Option<f64>,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reviews {
    pub in_time: u64,
    pub late: u64,
    /// Waiting, not yet due.
    pub pending: u64,
    /// Waiting past the deadline.
    pub overdue: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Files {
    pub uploads: u64,
    pub upload_bytes: u64,
    pub downloads: u64,
    pub download_bytes: u64,
    pub blocked: u64,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lapse {
    pub name: String,
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub at: Timestamp,
}

#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unused {
    pub username: String,
    pub vendor: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = DateTime))]
    pub last_seen: Option<Timestamp>,
}

/// The report.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MonthlyReport {
    /// `2026-11`.
    pub month: String,
    /// The site it covers; `None` for the whole hospital group.
    pub site: Option<String>,
    /// Nothing happened: no session, refusal or file.
    pub empty: bool,
    pub sessions: u64,
    pub hours: f64,
    pub by_vendor: Vec<Tally>,
    pub by_target: Vec<Tally>,
    pub by_level: Vec<Tally>,
    /// Sessions started each day of the month.
    pub per_day: Vec<Count>,
    pub emergencies: Vec<Emergency>,
    /// Refusals by reason code.
    pub refusals: Vec<Count>,
    pub reviews: Reviews,
    pub files: Files,
    /// Attestations ending from the month's start to 30 days after its end.
    pub attestations_expiring: Vec<Lapse>,
    /// Maintenance contracts ending in the same span.
    pub contracts_expiring: Vec<Lapse>,
    pub unused_accounts: Vec<Unused>,
    pub lines_not_reviewed: Vec<String>,
}

fn hours(d: SignedDuration) -> f64 {
    (d.as_secs_f64() / 36.0).round() / 100.0
}

fn tallies<'a>(rows: impl Iterator<Item = (String, &'a SessionRow)>) -> Vec<Tally> {
    let mut m: BTreeMap<String, (u64, SignedDuration)> = BTreeMap::new();
    for (key, s) in rows {
        let e = m.entry(key).or_default();
        e.0 += 1;
        e.1 += s
            .ended_at
            .map_or(SignedDuration::ZERO, |end| end.duration_since(s.started_at));
    }
    let mut out: Vec<Tally> = m
        .into_iter()
        .map(|(key, (sessions, d))| Tally {
            key,
            sessions,
            hours: hours(d),
        })
        .collect();
    out.sort_by(|a, b| b.sessions.cmp(&a.sessions).then(a.key.cmp(&b.key)));
    out
}

/// Builds the report of `i.month` (times read in `zone`).
pub fn monthly(i: &Inputs, zone: &TimeZone) -> MonthlyReport {
    let (start, end) = i.month.bounds(zone);
    let horizon = end
        .saturating_add(SignedDuration::from_hours(24 * 30))
        .unwrap_or(end);
    let total: SignedDuration = i
        .sessions
        .iter()
        .filter_map(|s| s.ended_at.map(|e| e.duration_since(s.started_at)))
        .sum();
    let mut per_day: BTreeMap<Date, u64> = i.month.days().map(|d| (d, 0)).collect();
    for s in &i.sessions {
        *per_day
            .entry(zone.to_datetime(s.started_at).date())
            .or_default() += 1;
    }
    let mut emergencies: Vec<Emergency> = vec![];
    for s in i.sessions.iter().filter(|s| s.emergency) {
        if emergencies
            .iter()
            .any(|e| e.request_number == s.request_number)
        {
            continue;
        }
        emergencies.push(Emergency {
            request_number: s.request_number,
            vendor: s.vendor.clone(),
            target: s.target.clone(),
            used_at: s.started_at,
            approved_at: s.approved_at,
            approval_delay_hours: s
                .approved_at
                .map(|a| hours(a.duration_since(s.request_filed_at))),
        });
    }
    let mut refusals: BTreeMap<&str, u64> = BTreeMap::new();
    for r in &i.refusals {
        *refusals.entry(r).or_default() += 1;
    }
    let mut refusals: Vec<Count> = refusals
        .into_iter()
        .map(|(k, count)| Count {
            key: k.to_owned(),
            count,
        })
        .collect();
    refusals.sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
    let mut reviews = Reviews::default();
    for s in &i.sessions {
        let Some(ended) = s.ended_at else { continue };
        let due = ended.saturating_add(i.review_deadline).unwrap_or(ended);
        match s.reviewed_at {
            Some(at) if at <= due => reviews.in_time += 1,
            Some(_) => reviews.late += 1,
            None if i.now > due => reviews.overdue += 1,
            None => reviews.pending += 1,
        }
    }
    let mut files = Files::default();
    for t in &i.transfers {
        match t.direction {
            Direction::Upload => {
                files.uploads += 1;
                files.upload_bytes += t.bytes;
            }
            Direction::Download => {
                files.downloads += 1;
                files.download_bytes += t.bytes;
            }
        }
        files.blocked += u64::from(t.blocked);
    }
    let lapsing = |rows: &[(String, Timestamp)]| -> Vec<Lapse> {
        let mut out: Vec<Lapse> = rows
            .iter()
            .filter(|(_, at)| *at >= start && *at < horizon)
            .map(|(name, at)| Lapse {
                name: name.clone(),
                at: *at,
            })
            .collect();
        out.sort_by_key(|l| l.at);
        out
    };
    MonthlyReport {
        month: i.month.to_string(),
        site: i.site.clone(),
        empty: i.sessions.is_empty() && i.refusals.is_empty() && i.transfers.is_empty(),
        sessions: i.sessions.len() as u64,
        hours: hours(total),
        by_vendor: tallies(i.sessions.iter().map(|s| (s.vendor.clone(), s))),
        by_target: tallies(i.sessions.iter().map(|s| (s.target.clone(), s))),
        by_level: tallies(i.sessions.iter().map(|s| (s.level.to_string(), s))),
        per_day: per_day
            .into_iter()
            .filter(|(d, _)| d.month() == i.month.first.month())
            .map(|(d, count)| Count {
                key: d.to_string(),
                count,
            })
            .collect(),
        emergencies,
        refusals,
        reviews,
        files,
        attestations_expiring: lapsing(&i.attestations),
        contracts_expiring: lapsing(&i.contracts),
        unused_accounts: i
            .unused_accounts
            .iter()
            .map(|(username, vendor, last_seen)| Unused {
                username: username.clone(),
                vendor: vendor.clone(),
                last_seen: *last_seen,
            })
            .collect(),
        lines_not_reviewed: i.lines_due.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn tokyo() -> TimeZone {
        TimeZone::get("Asia/Tokyo").unwrap()
    }

    fn empty(month: &str) -> Inputs {
        Inputs {
            month: Month::parse(month).unwrap(),
            site: None,
            now: at("2026-12-20T00:00:00Z"),
            sessions: vec![],
            refusals: vec![],
            transfers: vec![],
            attestations: vec![],
            contracts: vec![],
            unused_accounts: vec![],
            lines_due: vec![],
            review_deadline: SignedDuration::from_hours(24 * 7),
        }
    }

    fn session(vendor: &str, start: &str, minutes: i64) -> SessionRow {
        let started_at = at(start);
        SessionRow {
            vendor: vendor.into(),
            target: "pacs".into(),
            level: AccessLevel::Reference,
            started_at,
            ended_at: Some(started_at + SignedDuration::from_mins(minutes)),
            request_number: 1,
            emergency: false,
            request_filed_at: started_at,
            approved_at: Some(started_at),
            reviewed_at: None,
        }
    }

    #[test]
    fn months_are_read_and_bounded_in_the_hospitals_zone() {
        let m = Month::parse("2026-11").unwrap();
        assert_eq!(m.to_string(), "2026-11");
        assert_eq!(
            m.bounds(&tokyo()),
            (at("2026-10-31T15:00:00Z"), at("2026-11-30T15:00:00Z"))
        );
        assert_eq!(m.days().count(), 30);
        assert_eq!(Month::parse("2026-12").unwrap().previous(), m);
        for bad in ["2026-13", "2026-1", "11-2026", "november", "2026-11-01"] {
            assert!(Month::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Month::of(at("2026-11-30T15:00:00Z"), &tokyo()).to_string(),
            "2026-12"
        );
    }

    #[test]
    fn an_empty_month_says_so_with_every_day_at_zero() {
        let r = monthly(&empty("2026-02"), &tokyo());
        assert!(r.empty);
        assert_eq!(r.sessions, 0);
        assert_eq!(r.per_day.len(), 28);
        assert!(r.per_day.iter().all(|d| d.count == 0));
    }

    #[test]
    fn sessions_hours_reviews_emergencies_and_lapses_are_counted() {
        let mut i = empty("2026-11");
        let mut a = session("Acme", "2026-11-02T01:00:00Z", 90);
        a.reviewed_at = Some(at("2026-11-03T00:00:00Z"));
        let mut b = session("Acme", "2026-11-02T03:00:00Z", 30);
        b.reviewed_at = Some(at("2026-11-20T00:00:00Z"));
        let mut c = session("Globex", "2026-11-30T14:00:00Z", 60);
        c.emergency = true;
        c.request_number = 7;
        c.request_filed_at = at("2026-11-30T13:50:00Z");
        c.approved_at = Some(at("2026-11-30T16:20:00Z"));
        i.sessions = vec![a, b, c];
        i.refusals = vec![
            "no_request".into(),
            "not_assigned".into(),
            "no_request".into(),
        ];
        i.transfers = vec![
            TransferRow {
                direction: Direction::Download,
                bytes: 100,
                blocked: false,
            },
            TransferRow {
                direction: Direction::Upload,
                bytes: 5,
                blocked: true,
            },
        ];
        i.attestations = vec![
            ("Acme".into(), at("2026-12-15T00:00:00Z")),
            ("Old".into(), at("2026-10-01T00:00:00Z")),
            ("Later".into(), at("2027-06-01T00:00:00Z")),
        ];
        let r = monthly(&i, &tokyo());
        assert!(!r.empty);
        assert_eq!((r.sessions, r.hours), (3, 3.0));
        assert_eq!(
            r.by_vendor,
            [
                Tally {
                    key: "Acme".into(),
                    sessions: 2,
                    hours: 2.0
                },
                Tally {
                    key: "Globex".into(),
                    sessions: 1,
                    hours: 1.0
                }
            ]
        );
        // 2026-11-30T14:00Z is 23:00 JST on the 30th.
        assert_eq!(
            r.per_day[1],
            Count {
                key: "2026-11-02".into(),
                count: 2
            }
        );
        assert_eq!(
            r.per_day[29],
            Count {
                key: "2026-11-30".into(),
                count: 1
            }
        );
        assert_eq!(r.emergencies.len(), 1);
        assert_eq!(r.emergencies[0].approval_delay_hours, Some(2.5));
        assert_eq!(
            r.refusals[0],
            Count {
                key: "no_request".into(),
                count: 2
            }
        );
        assert_eq!(
            r.reviews,
            Reviews {
                in_time: 1,
                late: 1,
                pending: 0,
                overdue: 1
            }
        );
        assert_eq!(
            (r.files.downloads, r.files.upload_bytes, r.files.blocked),
            (1, 5, 1)
        );
        assert_eq!(r.attestations_expiring.len(), 1);
        assert_eq!(r.attestations_expiring[0].name, "Acme");
    }
}
