//! The quarantine: uploads a scanner blocked, kept for IT to inspect or delete.

use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use sekisho_approval_api::api::files::QuarantineView;
use sekisho_domain::user::Role;
use sekisho_domain::zone::DisplayZone;

use super::layout::{Frame, bytes, page, respond, urlencode, when};
use crate::i18n::T;

/// Blocked files, newest first; admins may download (to inspect) and delete them.
pub fn quarantine(f: &Frame, zone: &DisplayZone, entries: &[QuarantineView]) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let admin = f.role == Role::Admin;
    let body = html! {
        p { (t(T::QuarantineAbout)) }
        @if entries.is_empty() {
            p.empty { (t(T::QuarantineEmpty)) }
        } @else {
            table {
                thead { tr {
                    th { (t(T::Time)) } th { (t(T::Path)) } th { (t(T::Size)) } th { "SHA-256" }
                    th { (t(T::Reason)) } th { (t(T::Recordings)) }
                    @if admin { th {} }
                } }
                tbody {
                    @for e in entries {
                        tr.blocked {
                            td { (when(zone, Some(e.created_at))) }
                            td { code { (e.path) } }
                            td { (bytes(e.bytes)) }
                            td { code.hash { (e.sha256) } }
                            td { (e.reason) }
                            td { a href={ "/console/recordings/" (urlencode(&e.session)) } { (t(T::OpenIt)) } }
                            @if admin {
                                td {
                                    a href={ "/console/quarantine/" (urlencode(&e.id)) "/content" } download { (t(T::Download)) }
                                    form.inline method="post" action={ "/console/quarantine/" (urlencode(&e.id)) "/delete" } {
                                        input type="hidden" name="csrf" value=(f.csrf);
                                        button.danger type="submit" { (t(T::Delete)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, page(lang, t(T::Quarantine), Some(f), body))
}
