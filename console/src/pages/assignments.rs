//! Who maintains what (issue #18): the administration page's section of vendors assigned to
//! target systems under maintenance contracts.

use jiff::Timestamp;
use maud::{Markup, html};
use sekisho_approval_api::api::assignments::AssignmentView;
use sekisho_approval_api::api::dto::{TargetView, VendorView};
use sekisho_domain::zone::DisplayZone;

use super::layout::{Frame, csrf_field};
use crate::i18n::T;

/// The assignments, with ended and soon-ending contracts marked, and the form to add one.
pub fn section(
    f: &Frame,
    zone: &DisplayZone,
    assignments: &[AssignmentView],
    vendors: &[VendorView],
    targets: &[TargetView],
) -> Markup {
    let t = |k: T| k.get(f.lang);
    let soon = Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30);
    html! {
        section aria-labelledby="assignments" {
            h2 #assignments { (t(T::Assignments)) }
            p { (t(T::AssignmentsAbout)) }
            table {
                thead { tr {
                    th { (t(T::Vendor)) } th { (t(T::Target)) } th { (t(T::Contract)) }
                    th { (t(T::Sla)) } th { (t(T::Boundary)) } th { (t(T::ContractEnds)) } th {}
                } }
                tbody {
                    @for a in assignments {
                        tr.assignment data-vendor=(a.vendor) data-target=(a.target) {
                            td { (a.vendor) }
                            td { (a.target) }
                            td { (a.contract) }
                            td.notes { (a.sla) }
                            td.notes { (a.boundary) }
                            td {
                                @match a.ends_at {
                                    None => { (t(T::NoEndDate)) }
                                    Some(e) => {
                                        (zone.date_time(e))
                                        @if a.ended { " " span.bad.ended { (t(T::ContractEnded)) } }
                                        @else if e < soon { " " span.bad.expiring { (t(T::ExpiresSoon)) } }
                                    }
                                }
                            }
                            td {
                                form method="post" action={ "/console/admin/assignments/" (a.id) "/remove" } {
                                    (csrf_field(f))
                                    button.danger type="submit" { (t(T::Unassign)) }
                                }
                            }
                        }
                    }
                }
            }
            details {
                summary { (t(T::NewAssignment)) }
                form.card.wide method="post" action="/console/admin/assignments" {
                    (csrf_field(f))
                    label for="as-vendor" { (t(T::Vendor)) }
                    select #as-vendor name="vendor_id" required {
                        @for v in vendors { option value=(v.id) { (v.name) } }
                    }
                    label for="as-target" { (t(T::Target)) }
                    select #as-target name="target_id" required {
                        @for x in targets { option value=(x.id) { (x.name) } }
                    }
                    label for="as-contract" { (t(T::Contract)) }
                    input #as-contract name="contract" required;
                    label for="as-sla" { (t(T::Sla)) }
                    textarea #as-sla name="sla" rows="2" {}
                    label for="as-boundary" { (t(T::Boundary)) }
                    textarea #as-boundary name="boundary" rows="2" {}
                    label for="as-ends" { (t(T::ContractLastDay)) }
                    input #as-ends name="last_day" type="date";
                    div.buttons { button.primary type="submit" { (t(T::Create)) } }
                }
            }
        }
    }
}
