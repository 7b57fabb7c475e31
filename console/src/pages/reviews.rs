//! Checking the logs against the plan (issue #18): the review queue, and the section of the
//! recording page that shows the plan beside the report with what a reviewer should look at.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use sekisho_approval_api::api::reviews::ReviewItem;
use sekisho_domain::review::ReviewFlag;
use sekisho_domain::zone::DisplayZone;

use super::layout::{Frame, page, respond, urlencode, when};
use crate::i18n::{Lang, T};

/// A flag as the reviewer reads it.
pub fn flag(x: &ReviewFlag, lang: Lang) -> String {
    let t = |k: T| k.get(lang);
    match x {
        ReviewFlag::Night => t(T::FlagNight).to_owned(),
        ReviewFlag::DayOff { date } => format!("{} ({date})", t(T::FlagDayOff)),
        ReviewFlag::OutsideWindow => t(T::FlagOutsideWindow).to_owned(),
        ReviewFlag::LargeDownload { bytes } => {
            format!("{} ({} MiB)", t(T::FlagLargeDownload), bytes >> 20)
        }
        ReviewFlag::NoReport => t(T::FlagNoReport).to_owned(),
        ReviewFlag::EmergencyBeforeApproval => t(T::FlagEmergency).to_owned(),
    }
}

fn flags(item: &ReviewItem, lang: Lang) -> Markup {
    html! {
        ul.flags {
            @for x in &item.flags { li.bad.flag { (flag(x, lang)) } }
        }
    }
}

/// How long a session has waited: `3 d 4 h`.
fn waited(seconds: i64, lang: Lang) -> String {
    let hours = seconds / 3600;
    format!(
        "{} {} {} {}",
        hours / 24,
        T::Days.get(lang),
        hours % 24,
        T::Hours.get(lang)
    )
}

/// The plan beside the report, what to look at, and when the review is due.
pub fn beside(zone: &DisplayZone, lang: Lang, item: &ReviewItem) -> Markup {
    let t = |k: T| k.get(lang);
    html! {
        div.side-by-side {
            div.plan {
                h3 { (t(T::PlanAsApproved)) }
                dl {
                    dt { (t(T::Window)) } dd { (when(zone, Some(item.window_start))) " – " (when(zone, Some(item.window_end))) }
                    dt { (t(T::Reason)) } dd { (item.reason) }
                }
                pre.plan-text { (item.plan) }
            }
            div.report {
                h3 { (t(T::WorkReport)) }
                pre.report-text { (item.report.as_deref().unwrap_or("—")) }
            }
        }
        h3 { (t(T::ToLookAt)) }
        @if item.flags.is_empty() {
            p.empty.no-flags { (t(T::NothingUnusual)) }
        } @else {
            (flags(item, lang))
        }
        @if let Some(due) = item.due_at {
            p.due {
                (t(T::ReviewDue)) ": " (when(zone, Some(due)))
                @if item.overdue { " " span.bad.overdue { (t(T::ReviewOverdueBadge)) } }
            }
        }
    }
}

/// The sessions waiting for review, oldest first.
pub fn queue(f: &Frame, zone: &DisplayZone, items: &[ReviewItem]) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let body = html! {
        p { (t(T::ReviewQueueAbout)) }
        @if items.is_empty() {
            p.empty { (t(T::ReviewQueueEmpty)) }
        } @else {
            table {
                thead { tr {
                    th { (t(T::Waiting)) } th { (t(T::ReviewDue)) } th { (t(T::Engineer)) } th { (t(T::Target)) }
                    th { (t(T::Request)) } th { (t(T::ToLookAt)) } th {}
                } }
                tbody {
                    @for i in items {
                        @let s = &i.session;
                        tr.review-item data-session=(s.id) class=(if i.overdue { "blocked" } else { "" }) {
                            td { (i.waiting_seconds.map(|w| waited(w, lang)).unwrap_or_default()) }
                            td {
                                (when(zone, i.due_at))
                                @if i.overdue { br; span.bad.overdue { (t(T::ReviewOverdueBadge)) } }
                            }
                            td { (s.username) }
                            td { (s.target) }
                            td { "R-" (s.request_number) }
                            td { (flags(i, lang)) }
                            td { a.button href={ "/console/recordings/" (urlencode(&s.id.to_string())) "#review" } { (t(T::Review)) } }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, page(lang, t(T::ReviewQueue), Some(f), body))
}
