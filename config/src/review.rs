//! `[review]`: what flags a session for its reviewer (issue #18): the hospital's night hours,
//! days off, and what counts as a large download. The deadline is `[notifications]
//! review_within_days`, the same one the reminders use.

use jiff::civil::{Date, Time};
use toml_edit::Value;

use crate::model::ReviewConfig;
use crate::reader::{Parsed, Reader};

/// `"HH:MM"`.
fn time(v: &Value) -> Parsed<Time> {
    let s = Reader::non_empty_string(v)?;
    Time::strptime("%H:%M", &s)
        .map_err(|_| format!("expected a time of day as \"HH:MM\", found `{s}`"))
}

/// A list of `"YYYY-MM-DD"`.
fn dates(v: &Value) -> Parsed<Vec<Date>> {
    let arr = v
        .as_array()
        .ok_or_else(|| format!("expected a list of dates, found {}", v.type_name()))?;
    arr.iter()
        .map(|d| {
            let s = Reader::non_empty_string(d)?;
            s.parse::<Date>()
                .map_err(|_| format!("expected dates as \"YYYY-MM-DD\", found `{s}`"))
        })
        .collect()
}

/// `[report] font`: the font file embedded in PDF reports.
pub(crate) fn read_report_font(r: &Reader) -> Option<std::path::PathBuf> {
    let s = r.section("report", &["font"]);
    r.opt(s, "font", Reader::path)
}

pub(crate) fn read(r: &Reader, d: ReviewConfig) -> ReviewConfig {
    let s = r.section(
        "review",
        &[
            "night_start",
            "night_end",
            "weekends_off",
            "holidays",
            "large_download_mib",
        ],
    );
    let night_start = r.opt(s, "night_start", time);
    let night_end = r.opt(s, "night_end", time);
    let c = ReviewConfig {
        night: match (night_start, night_end) {
            (Some(a), Some(b)) => Some((a, b)),
            (None, None) => d.night,
            // One of them did not parse: that is reported already.
            _ if s.has("night_start") && s.has("night_end") => d.night,
            _ => {
                r.problem_at(
                    s,
                    "night_start",
                    "night_start and night_end go together".into(),
                );
                d.night
            }
        },
        weekends_off: r.get(s, "weekends_off", Reader::bool, d.weekends_off),
        holidays: r.get(s, "holidays", dates, d.holidays),
        large_download_mib: r.get(
            s,
            "large_download_mib",
            |v| Reader::int(v, 1, 1 << 20),
            d.large_download_mib,
        ),
    };
    if c.night.is_some_and(|(a, b)| a == b) {
        r.problem_at(
            s,
            "night_start",
            "night_start and night_end must differ".into(),
        );
    }
    c
}
