//! The audit log: the chain's state, filters, the events, exports.

use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use sekisho_approval_api::api::dto::{AuditEventView, VerifyView};
use sekisho_domain::audit::Outcome;
use sekisho_domain::zone::DisplayZone;

use super::layout::{Frame, page, respond, when};
use crate::i18n::T;

/// The audit log page's inputs.
pub struct AuditView<'a> {
    pub events: &'a [AuditEventView],
    pub chain: Option<&'a VerifyView>,
    /// kind, outcome, user, target, site, from, to (as typed).
    pub filters: [&'a str; 7],
    /// The API query of the filters, for the export links.
    pub export: &'a str,
    pub next: Option<&'a str>,
}

pub fn audit(f: &Frame, zone: &DisplayZone, v: &AuditView<'_>) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let [kind, outcome, user, target, site, from, to] = v.filters;
    let sep = if v.export.is_empty() { "?" } else { "&" };
    let outcomes = [Outcome::Success, Outcome::Denied, Outcome::Failure];
    let body = html! {
        @if let Some(c) = v.chain {
            @if c.intact {
                p.notice.chain {
                    (t(T::ChainIntact)) " (" (c.rows) ") · " (t(T::ChainCheckedAt)) " "
                    (zone.date_time(c.verified_at))
                }
            } @else {
                p.alert.chain role="alert" { (t(T::ChainBroken)) ": " (c.problem.as_deref().unwrap_or("")) }
            }
        }
        form.filters method="get" action="/console/audit" {
            label { (t(T::Kind)) " " input name="kind" value=(kind) placeholder="request_decided"; }
            label { (t(T::Outcome)) " "
                select name="outcome" {
                    option value="" { (t(T::All)) }
                    @for o in outcomes {
                        option value=(o.as_str()) selected[outcome == o.as_str()] { (o.as_str()) }
                    }
                }
            }
            label { (t(T::Engineer)) " " input name="user" value=(user); }
            label { (t(T::Target)) " " input name="target" value=(target); }
            label { (t(T::ReportSite)) " " input name="site" value=(site); }
            label { (t(T::From)) " " input type="datetime-local" name="from" value=(from); }
            label { (t(T::Until)) " " input type="datetime-local" name="to" value=(to); }
            button type="submit" { (t(T::Filter)) }
        }
        p {
            (t(T::Export)) ": "
            a href={ "/console/audit/export" (v.export) (sep) "format=csv" } { "CSV" } " · "
            a href={ "/console/audit/export" (v.export) (sep) "format=jsonl" } { "JSONL" }
        }
        table {
            thead { tr { th { "#" } th { (t(T::At)) } th { (t(T::Actor)) } th { (t(T::Kind)) } th { (t(T::Outcome)) } th { (t(T::Reason)) } th { (t(T::Source)) } } }
            tbody {
                @for e in v.events {
                    tr.event class=(if e.outcome == Outcome::Success { "" } else { "denied" }) {
                        td { (e.seq) }
                        td { (when(zone, Some(e.at))) }
                        td { (e.actor) }
                        td { (e.kind) }
                        td { (e.outcome.as_str()) }
                        td { (e.reason.as_deref().unwrap_or("")) }
                        td { (e.source_addr.as_deref().unwrap_or("")) }
                    }
                }
            }
        }
        @if let Some(next) = v.next {
            p { a href=(next) { (t(T::Older)) } }
        }
    };
    respond(StatusCode::OK, page(lang, t(T::AuditLog), Some(f), body))
}
