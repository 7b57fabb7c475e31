//! The inventory of external connection lines (issue #18): lines due for review first, each
//! with its flags; admins add lines, admins and approvers record reviews.

use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use sekisho_approval_api::api::dto::VendorView;
use sekisho_approval_api::api::lines::LineView;
use sekisho_domain::line::{LineFlag, LineStatus, Route};
use sekisho_domain::user::Role;
use sekisho_domain::zone::DisplayZone;

use super::layout::{Frame, csrf_field, page, respond, when};
use crate::i18n::T;

pub fn lines(f: &Frame, zone: &DisplayZone, all: &[LineView], vendors: &[VendorView]) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let flag = |x: LineFlag| match x {
        LineFlag::NeverReviewed => t(T::NeverReviewed),
        LineFlag::ReviewOverdue => t(T::ReviewOverdue),
        LineFlag::MeasuresMissing => t(T::MeasuresMissing),
        LineFlag::FirmwareUnknown => t(T::FirmwareUnknown),
    };
    let due = |l: &LineView| {
        l.flags
            .iter()
            .any(|x| matches!(x, LineFlag::NeverReviewed | LineFlag::ReviewOverdue))
    };
    let mut rows: Vec<&LineView> = all.iter().collect();
    rows.sort_by_key(|l| (l.status == LineStatus::Retired, !due(l)));
    let count = rows.iter().filter(|l| due(l)).count();
    let body = html! {
        p { (t(T::LinesAbout)) }
        @if count > 0 {
            p.error role="alert" { (t(T::LinesDue)) " " (count) }
        }
        table {
            thead { tr {
                th { (t(T::Name)) } th { (t(T::LineRoute)) } th { (t(T::Vendor)) } th { (t(T::Owner)) }
                th { (t(T::Location)) } th { (t(T::Device)) } th { (t(T::LastReviewed)) } th {}
            } }
            tbody {
                @for l in rows {
                    tr.line data-name=(l.name) class=(if due(l) { "blocked" } else { "" }) {
                        td { (l.name) @if l.status == LineStatus::Retired { " " span.badge { (t(T::Retired)) } } }
                        td { (match l.route { Route::Sekisho => t(T::RouteSekisho), Route::Exception => t(T::RouteException) }) }
                        td { (l.vendor.as_deref().unwrap_or("—")) }
                        td { (l.owner) }
                        td { (l.location) }
                        td {
                            (l.device)
                            @if !l.firmware.is_empty() { br; (t(T::Firmware)) ": " (l.firmware) }
                            @if let Some(at) = l.firmware_updated_at { " (" (zone.date(at)) ")" }
                            @if !l.measures.is_empty() { br; (t(T::Measures)) ": " (l.measures) }
                        }
                        td {
                            (when(zone, l.reviewed_at))
                            @for x in &l.flags { br; span.bad.flag { (flag(*x)) } }
                        }
                        td {
                            @if f.role == Role::Admin || f.role == Role::Approver {
                                form method="post" action={ "/console/lines/" (l.id) "/review" } {
                                    (csrf_field(f))
                                    input name="note" aria-label=(t(T::ReviewNote)) placeholder=(t(T::ReviewNote));
                                    button type="submit" { (t(T::RecordReview)) }
                                }
                            }
                        }
                    }
                }
            }
        }
        @if f.role == Role::Admin {
            details {
                summary { (t(T::NewLine)) }
                form.card.wide method="post" action="/console/lines" {
                    (csrf_field(f))
                    label for="ln-name" { (t(T::Name)) }
                    input #ln-name name="name" required;
                    label for="ln-route" { (t(T::LineRoute)) }
                    select #ln-route name="route" {
                        option value="sekisho" { (t(T::RouteSekisho)) }
                        option value="exception" { (t(T::RouteException)) }
                    }
                    label for="ln-vendor" { (t(T::Vendor)) }
                    select #ln-vendor name="vendor_id" {
                        option value="" { "—" }
                        @for v in vendors { option value=(v.id) { (v.name) } }
                    }
                    label for="ln-owner" { (t(T::Owner)) }
                    input #ln-owner name="owner" required;
                    label for="ln-location" { (t(T::Location)) }
                    input #ln-location name="location" required;
                    label for="ln-device" { (t(T::Device)) }
                    input #ln-device name="device" required;
                    label for="ln-firmware" { (t(T::Firmware)) }
                    input #ln-firmware name="firmware";
                    label for="ln-firmware-date" { (t(T::FirmwareUpdated)) }
                    input #ln-firmware-date name="firmware_updated" type="date";
                    label for="ln-measures" { (t(T::Measures)) }
                    textarea #ln-measures name="measures" rows="3" {}
                    label for="ln-notes" { (t(T::Notes)) }
                    textarea #ln-notes name="notes" rows="2" {}
                    div.buttons { button.primary type="submit" { (t(T::Create)) } }
                }
            }
        }
    };
    respond(StatusCode::OK, page(lang, t(T::Lines), Some(f), body))
}
