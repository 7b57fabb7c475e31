//! Work requests: the approver's queue, a vendor engineer's own requests, filing a new one.

use axum::http::StatusCode;
use axum::response::Response;
use jiff::Timestamp;
use maud::html;
use sekisho_approval_api::api::dto::{
    ApprovalProgress, RequestView, TargetView, UserView, VendorView,
};
use sekisho_domain::ids::{UserId, VendorId};
use sekisho_domain::request::RequestStatus;
use sekisho_domain::target::AccessLevel;
use sekisho_domain::user::Role;
use sekisho_domain::zone::DisplayZone;

use super::layout::{Frame, level_badge, page, respond, urlencode, when};
use crate::i18n::{Lang, T, request_status};

/// The states the decided list can be filtered by, in this order.
const FILTERS: [RequestStatus; 7] = [
    RequestStatus::Approved,
    RequestStatus::Active,
    RequestStatus::Completed,
    RequestStatus::Rejected,
    RequestStatus::Revoked,
    RequestStatus::Expired,
    RequestStatus::Cancelled,
];

fn is_pending(r: &RequestView) -> bool {
    r.approval.state == ApprovalProgress::Pending
        && matches!(
            r.status,
            RequestStatus::Submitted | RequestStatus::Active | RequestStatus::Approved
        )
}

/// Pending first (emergency ones at the very top), then decided ones, filterable by state.
pub fn approvals(
    f: &Frame,
    zone: &DisplayZone,
    requests: &[RequestView],
    vendors: &[VendorView],
    users: &[UserView],
    filter: Option<RequestStatus>,
) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    if f.role == Role::Vendor {
        return vendor_requests(f, zone, requests, vendors.first());
    }
    let decider = f.decider();
    let vendor = |id: VendorId| vendors.iter().find(|v| v.id == id);
    let user = |id: UserId| users.iter().find(|u| u.id == id);
    let mut pending: Vec<&RequestView> = requests.iter().filter(|r| is_pending(r)).collect();
    pending.sort_by_key(|r| !r.emergency);
    let decided: Vec<&RequestView> = requests
        .iter()
        .filter(|r| !is_pending(r))
        .filter(|r| filter.is_none_or(|s| r.status == s))
        .collect();
    let body = html! {
        section aria-labelledby="pending" {
            h2 #pending { (t(T::Pending)) " (" (pending.len()) ")" }
            @if pending.is_empty() {
                p.empty { (t(T::NothingPending)) }
            }
            @for r in &pending {
                @let id = r.id.to_string();
                @let v = vendor(r.vendor_id);
                @let u = user(r.requester);
                article class=(if r.emergency { "card request emergency" } else { "card request" })
                    aria-label=(r.reference) {
                    h3 {
                        (r.reference) " · " (r.target) " "
                        (level_badge(r.level, lang))
                    }
                    @if r.emergency {
                        p.alert {
                            (t(T::EmergencyAwaiting))
                            @if r.overdue { " — " (t(T::Overdue)) }
                        }
                    }
                    dl {
                        dt { (t(T::Vendor)) }
                        dd { (v.map_or("?", |v| v.name.as_str())) }
                        dt { (t(T::Attestation)) }
                        dd {
                            @match v {
                                Some(v) if v.qualified => {
                                    span.ok { (t(T::AttestationOk)) }
                                }
                                Some(v) => span.bad { (v.attestation_problem.as_deref().unwrap_or("")) },
                                None => "?",
                            }
                        }
                        dt { (t(T::Engineer)) }
                        dd { (u.map_or("?", |u| u.display_name.as_str())) " (" (u.map_or("?", |u| u.username.as_str())) ")" }
                        dt { (t(T::Window)) }
                        dd { (when(zone, Some(r.window_start))) " – " (when(zone, Some(r.window_end))) }
                        dt { (t(T::Reason)) }
                        dd { (r.reason) }
                        dt { (t(T::Plan)) }
                        dd { pre { (r.plan) } }
                        dt { (t(T::ApprovalCount)) }
                        dd { (r.approval.have) " / " (r.approval.need) }
                    }
                    @if decider {
                        form.decision method="post" action={ "/console/requests/" (urlencode(&id)) "/approve" } {
                            input type="hidden" name="csrf" value=(f.csrf);
                            label for={ "comment-" (id) } { (t(T::Comment)) }
                            textarea id={ "comment-" (id) } name="comment" rows="2" {}
                            div.buttons {
                                button.primary type="submit" { (t(T::Approve)) }
                                button.danger type="submit"
                                    formaction={ "/console/requests/" (urlencode(&id)) "/reject" } { (t(T::Reject)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="decided" {
            h2 #decided { (t(T::Decided)) }
            nav.filters aria-label=(t(T::Status)) {
                a href="/console/approvals" aria-current=[filter.is_none().then_some("page")] { (t(T::All)) }
                @for s in FILTERS {
                    a href={ "/console/approvals?status=" (s.as_str()) } aria-current=[(filter == Some(s)).then_some("page")] {
                        (request_status(s, lang))
                    }
                }
            }
            table {
                thead { tr {
                    th { (t(T::Request)) } th { (t(T::Target)) } th { (t(T::Level)) }
                    th { (t(T::Vendor)) } th { (t(T::Window)) } th { (t(T::Status)) }
                } }
                tbody {
                    @for r in &decided {
                        tr {
                            td { (r.reference) }
                            td { (r.target) }
                            td { (level_badge(r.level, lang)) }
                            td { (vendor(r.vendor_id).map_or("?", |v| v.name.as_str())) }
                            td { (when(zone, Some(r.window_start))) " – " (when(zone, Some(r.window_end))) }
                            td { (request_status(r.status, lang)) }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, page(lang, t(T::Approvals), Some(f), body))
}

/// Whether the vendor engineer can connect under `r` now, and if not, why.
fn usable_note(
    r: &RequestView,
    vendor: Option<&VendorView>,
    zone: &DisplayZone,
    lang: Lang,
) -> (bool, String) {
    let t = |k: T| k.get(lang);
    let now = Timestamp::now();
    if !matches!(
        r.status,
        RequestStatus::Submitted | RequestStatus::Approved | RequestStatus::Active
    ) {
        return (
            false,
            format!("{} {}", t(T::NoteClosed), request_status(r.status, lang)),
        );
    }
    if r.approval.state == ApprovalProgress::Pending && !r.emergency {
        let counts = format!("({}/{})", r.approval.have, r.approval.need);
        return (false, format!("{} {counts}", t(T::NoteWaiting)));
    }
    if let Some(v) = vendor.filter(|v| !v.qualified) {
        let problem = v.attestation_problem.as_deref().unwrap_or("");
        return (false, format!("{} ({problem})", t(T::NoteAttestation)));
    }
    if now < r.window_start {
        (
            false,
            format!("{} {}", t(T::NoteFrom), zone.date_time(r.window_start)),
        )
    } else if now >= r.window_end {
        (false, t(T::NoteOver).to_owned())
    } else {
        (
            true,
            format!("{} {}", t(T::NoteNow), zone.date_time(r.window_end)),
        )
    }
}

/// A vendor engineer's view: their vendor's requests (the API scopes them), whether each can
/// be used now and why not, and filing a new one.
fn vendor_requests(
    f: &Frame,
    zone: &DisplayZone,
    requests: &[RequestView],
    vendor: Option<&VendorView>,
) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let body = html! {
        p { (t(T::VendorNoDecisions)) }
        p { a.button.primary href="/console/requests/new" { (t(T::NewRequest)) } }
        table {
            thead { tr {
                th { (t(T::Request)) } th { (t(T::Target)) } th { (t(T::Level)) }
                th { (t(T::Window)) } th { (t(T::Reason)) } th { (t(T::Status)) } th { (t(T::CanConnect)) }
            } }
            tbody {
                @for r in requests {
                    @let (ok, note) = usable_note(r, vendor, zone, lang);
                    tr.request {
                        td { (r.reference) }
                        td { (r.target) }
                        td { (level_badge(r.level, lang)) }
                        td { (when(zone, Some(r.window_start))) " – " (when(zone, Some(r.window_end))) }
                        td { (r.reason) }
                        td { (request_status(r.status, lang)) }
                        td class=(if ok { "ok" } else { "bad" }) { (note) }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, page(lang, t(T::MyRequests), Some(f), body))
}

/// What the new-request form shows again after a refusal.
pub struct Draft {
    pub target: String,
    pub level: AccessLevel,
    pub from: String,
    pub until: String,
    pub reason: String,
    pub plan: String,
}

pub fn new_request(f: &Frame, targets: &[TargetView], d: &Draft, status: StatusCode) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let change = d.level == AccessLevel::Change;
    let body = html! {
        form.card.wide method="post" action="/console/requests/new" {
            input type="hidden" name="csrf" value=(f.csrf);
            label for="target" { (t(T::Target)) }
            select #target name="target" required {
                @for tg in targets {
                    option value=(tg.name) selected[tg.name == d.target] { (tg.name) }
                }
            }
            fieldset {
                legend { (t(T::Level)) }
                label { input type="radio" name="level" value="reference" checked[!change]; " " (t(T::Reference)) }
                label { input type="radio" name="level" value="change" checked[change]; " " (t(T::Change)) }
            }
            label for="from" { (t(T::From)) }
            input #from type="datetime-local" name="from" value=(d.from) required;
            label for="until" { (t(T::Until)) }
            input #until type="datetime-local" name="until" value=(d.until) required;
            label for="reason" { (t(T::Reason)) }
            input #reason name="reason" value=(d.reason) required;
            label for="plan" { (t(T::Plan)) }
            textarea #plan name="plan" rows="5" { (d.plan) }
            div.buttons { button.primary type="submit" { (t(T::FileRequest)) } }
        }
    };
    respond(status, page(lang, t(T::NewRequest), Some(f), body))
}
