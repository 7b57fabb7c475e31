//! Administration: vendors and their attestations, engineers (enrollment codes, disabling),
//! target systems (credentials write-only).

use axum::http::StatusCode;
use axum::response::Response;
use jiff::Timestamp;
use maud::html;
use sekisho_approval_api::api::assignments::AssignmentView;
use sekisho_approval_api::api::dto::{TargetView, UserView, VendorView};
use sekisho_approval_api::api::users::EnrollmentCodeView;
use sekisho_approval_api::api::vendors::ChecklistItemView;
use sekisho_domain::ids::VendorId;
use sekisho_domain::user::{Role, UserStatus};
use sekisho_domain::zone::DisplayZone;

use super::layout::{Frame, csrf_field, page, respond, urlencode, when};
use crate::i18n::T;

/// What the administration page lists.
pub struct AdminView<'a> {
    pub vendors: &'a [VendorView],
    pub users: &'a [UserView],
    pub targets: &'a [TargetView],
    pub assignments: &'a [AssignmentView],
    pub checklist: &'a [ChecklistItemView],
}

/// Vendors (with their attestation and its expiry), engineers (enrollment codes, disable),
/// target systems (credentials write-only).
pub fn admin(f: &Frame, zone: &DisplayZone, v: &AdminView<'_>) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let soon = Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30);
    let vendor_name = |id: Option<VendorId>| {
        v.vendors
            .iter()
            .find(|x| Some(x.id) == id)
            .map_or("?", |x| x.name.as_str())
    };
    let body = html! {
        section aria-labelledby="vendors" {
            h2 #vendors { (t(T::Vendors)) }
            table {
                thead { tr { th { (t(T::Name)) } th { (t(T::Status)) } th { (t(T::Attestation)) } } }
                tbody {
                    @for x in v.vendors {
                        @let expires = x.attestation.as_ref().map(|a| a.expires_at);
                        tr.vendor {
                            td { (x.name) }
                            td { (x.status.as_str()) }
                            td {
                                @if x.qualified {
                                    span.ok { (t(T::AttestationOk)) }
                                } @else {
                                    span.bad { (x.attestation_problem.as_deref().unwrap_or("")) }
                                }
                                @if let Some(e) = expires {
                                    " · " (zone.date(e))
                                    @if e < soon { " " span.bad.expiring { (t(T::ExpiresSoon)) } }
                                }
                            }
                        }
                    }
                }
            }
            details {
                summary { (t(T::NewVendor)) }
                form.card.wide method="post" action="/console/admin/vendors" {
                    (csrf_field(f))
                    label for="vendor-name" { (t(T::Name)) }
                    input #vendor-name name="name" required;
                    label for="vendor-contact" { (t(T::Contact)) }
                    input #vendor-contact name="contact" required;
                    fieldset {
                        legend { (t(T::Attestation)) }
                        @for item in v.checklist {
                            label { input type="checkbox" name={ "check_" (item.key) } value="yes"; " " (item.label) }
                        }
                    }
                    label for="vendor-attested" { (t(T::AttestedBy)) }
                    input #vendor-attested name="attested_by" required;
                    div.buttons { button.primary type="submit" { (t(T::Create)) } }
                }
            }
        }
        section aria-labelledby="engineers" {
            h2 #engineers { (t(T::Engineers)) }
            table {
                thead { tr { th { (t(T::Username)) } th { (t(T::Vendor)) } th { (t(T::Status)) } th { "" } } }
                tbody {
                    @for u in v.users.iter().filter(|u| u.role == Role::Vendor) {
                        @let id = urlencode(&u.id.to_string());
                        @let active = u.status == UserStatus::Active;
                        tr.engineer {
                            td { (u.username) " (" (u.display_name) ")" }
                            td { (vendor_name(u.vendor_id)) }
                            td { (u.status.as_str()) }
                            td.actions {
                                form.inline method="post" action={ "/console/admin/users/" (id) "/enrollment-code" } {
                                    (csrf_field(f))
                                    button type="submit" { (t(T::EnrollmentCode)) }
                                }
                                " "
                                form.inline method="post" action={ "/console/admin/users/" (id) "/status" } {
                                    (csrf_field(f))
                                    input type="hidden" name="status" value=(if active { "disabled" } else { "active" });
                                    button class=(if active { "danger" } else { "" }) type="submit" {
                                        (if active { t(T::Disable) } else { t(T::Enable) })
                                    }
                                }
                            }
                        }
                    }
                }
            }
            details {
                summary { (t(T::NewEngineer)) }
                form.card.wide method="post" action="/console/admin/engineers" {
                    (csrf_field(f))
                    label for="eng-vendor" { (t(T::Vendor)) }
                    select #eng-vendor name="vendor" required {
                        @for x in v.vendors { option value=(x.id.to_string()) { (x.name) } }
                    }
                    label for="eng-username" { (t(T::Username)) }
                    input #eng-username name="username" required;
                    label for="eng-display" { (t(T::DisplayName)) }
                    input #eng-display name="display_name";
                    label for="eng-password" { (t(T::Password)) }
                    input #eng-password type="password" name="password" autocomplete="new-password" required;
                    div.buttons { button.primary type="submit" { (t(T::Create)) } }
                }
            }
        }
        section aria-labelledby="targets" {
            h2 #targets { (t(T::Targets)) }
            table {
                thead { tr { th { (t(T::Name)) } th { (t(T::Host)) } th { (t(T::Level)) } th { (t(T::HostKey)) } } }
                tbody {
                    @for x in v.targets {
                        tr.target {
                            td { (x.name) }
                            td {
                                (x.host) ":" (x.port)
                                @if let Some(p) = x.rdp_port { " · RDP " (p) }
                                @if let Some(site) = &x.site { " · " (t(T::Site)) ": " (site) }
                            }
                            td {
                                @for (class, label, level) in [("reference", T::Reference, &x.reference), ("change", T::Change, &x.change)] {
                                    @if let Some(l) = level {
                                        span class={ "badge " (class) } { (t(label)) } " "
                                        (l.account) " "
                                        @if l.file_upload { "(" (t(T::Upload)) ") " }
                                        @if !l.file_download { "(" (t(T::Download)) " ✕) " }
                                    }
                                }
                                @if [&x.reference, &x.change].iter().any(|l| l.as_ref().is_some_and(|l| l.file_upload)) {
                                    p.upload-scanning {
                                        @match &x.upload_scanning {
                                            Some(s) => { (t(T::UploadsScanned)) " " (s) }
                                            None => strong { (t(T::UploadsNotScanned)) }
                                        }
                                    }
                                }
                            }
                            td { code.hostkey { (x.host_key.as_deref().map_or_else(|| "—".to_owned(), |k| k.chars().take(40).collect::<String>() + "…")) } }
                        }
                    }
                }
            }
            details {
                summary { (t(T::NewTarget)) }
                form.card.wide method="post" action="/console/admin/targets" {
                    (csrf_field(f))
                    p { (t(T::WriteOnly)) }
                    label for="tg-name" { (t(T::Name)) }
                    input #tg-name name="name" required;
                    label for="tg-host" { (t(T::Host)) }
                    input #tg-host name="host" required;
                    label for="tg-port" { (t(T::Port)) }
                    input #tg-port name="port" inputmode="numeric" value="22";
                    label for="tg-hostkey" { (t(T::HostKey)) }
                    input #tg-hostkey name="host_key";
                    label for="tg-rdp-port" { (t(T::RdpPort)) }
                    input #tg-rdp-port name="rdp_port" inputmode="numeric";
                    label for="tg-site" { (t(T::Site)) }
                    input #tg-site name="site";
                    fieldset {
                        legend { (t(T::Reference)) }
                        label for="tg-ref-account" { (t(T::Account)) }
                        input #tg-ref-account name="reference_account";
                        label for="tg-ref-key" { (t(T::PrivateKey)) }
                        textarea #tg-ref-key name="reference_key" rows="3" autocomplete="off" {}
                        label { input type="checkbox" name="reference_download" value="yes" checked; " " (t(T::FileDownload)) }
                        label { input type="checkbox" name="reference_rdp" value="yes"; " " (t(T::RemoteDesktop)) }
                    }
                    fieldset {
                        legend { (t(T::Change)) }
                        label for="tg-chg-account" { (t(T::Account)) }
                        input #tg-chg-account name="change_account";
                        label for="tg-chg-key" { (t(T::PrivateKey)) }
                        textarea #tg-chg-key name="change_key" rows="3" autocomplete="off" {}
                        label { input type="checkbox" name="file_upload" value="yes"; " " (t(T::FileUpload)) }
                        label { input type="checkbox" name="change_download" value="yes" checked; " " (t(T::FileDownload)) }
                        label { input type="checkbox" name="port_forwarding" value="yes"; " " (t(T::PortForwarding)) }
                        label { input type="checkbox" name="change_rdp" value="yes"; " " (t(T::RemoteDesktop)) }
                        label { input type="checkbox" name="rdp_clipboard" value="yes"; " " (t(T::RdpClipboard)) }
                        label { input type="checkbox" name="rdp_drives" value="yes"; " " (t(T::RdpDrives)) }
                        label for="tg-ports" { (t(T::AllowedPorts)) }
                        input #tg-ports name="allowed_ports";
                    }
                    div.buttons { button.primary type="submit" { (t(T::Create)) } }
                }
            }
        }
        (super::assignments::section(f, zone, v.assignments, v.vendors, v.targets))
    };
    respond(StatusCode::OK, page(lang, t(T::Admin), Some(f), body))
}

/// A fresh enrollment code, shown once, with what the engineer runs.
pub fn enrollment_code(f: &Frame, zone: &DisplayZone, code: &EnrollmentCodeView) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let command = format!(
        "sekisho-client enroll --gateway {} --code {} --fingerprint {}",
        code.gateway, code.code, code.gateway_fingerprint
    );
    let body = html! {
        div.card.wide {
            p.alert { (t(T::EnrollmentCodeOnce)) }
            dl {
                dt { (t(T::Username)) } dd { (code.username) }
                dt { (t(T::EnrollmentCode)) } dd { code.enrollment-code { (code.code) } }
                dt { "Gateway" } dd { (code.gateway) }
                dt { "SHA-256" } dd { code { (code.gateway_fingerprint) } }
                dt { (t(T::Until)) } dd { (when(zone, Some(code.expires_at))) }
            }
            pre.command { (command) }
            p { a href="/console/admin" { (t(T::Admin)) } }
        }
    };
    respond(
        StatusCode::OK,
        page(lang, t(T::EnrollmentCode), Some(f), body),
    )
}
