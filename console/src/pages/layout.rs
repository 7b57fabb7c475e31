//! What every page shares: the frame (navigation, who is logged in, notices), the error and
//! login pages, and the small renderings (times, sizes, badges).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use jiff::Timestamp;
use maud::{DOCTYPE, Markup, html};
use sekisho_domain::target::AccessLevel;
use sekisho_domain::user::Role;
use sekisho_domain::zone::DisplayZone;

use crate::i18n::{Lang, T};

/// What a page shows besides its content: who is logged in, the CSRF token, a notice.
pub struct Frame {
    pub lang: Lang,
    pub username: String,
    pub role: Role,
    pub csrf: String,
    pub done: Option<String>,
    pub error: Option<String>,
}

impl Frame {
    /// Whether the caller decides requests (approves, rejects, terminates, signs off).
    pub(crate) fn decider(&self) -> bool {
        matches!(self.role, Role::Admin | Role::Approver)
    }
}

/// A time in the hospital's zone; `?` when there is none.
pub(crate) fn when(zone: &DisplayZone, t: Option<Timestamp>) -> String {
    t.map_or_else(|| "?".into(), |t| zone.date_time(t))
}

pub(crate) fn bytes(n: u64) -> String {
    match n {
        0..1_024 => format!("{n} B"),
        1_024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

pub(crate) fn page(lang: Lang, title: &str, frame: Option<&Frame>, body: Markup) -> Markup {
    page_with(lang, title, frame, body, None)
}

/// A page; `refresh` is `(seconds, url)` for a player that is playing (no JavaScript).
pub(crate) fn page_with(
    lang: Lang,
    title: &str,
    frame: Option<&Frame>,
    body: Markup,
    refresh: Option<(f64, String)>,
) -> Markup {
    let t = |k: T| k.get(lang);
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — " (t(T::Title)) }
                link rel="stylesheet" href="/console/static/app.css";
                @if let Some((secs, url)) = &refresh {
                    meta http-equiv="refresh" content={ (format!("{secs:.1}")) "; url=" (url) };
                }
            }
            body {
                header.top {
                    span.brand { (t(T::Title)) }
                    @if let Some(f) = frame {
                        nav aria-label="main" {
                            a href="/console/approvals" {
                                (if f.role == Role::Vendor { t(T::MyRequests) } else { t(T::Approvals) })
                            }
                            a href="/console/sessions" { (t(T::LiveSessions)) }
                            @if f.role != Role::Vendor {
                                a href="/console/recordings" { (t(T::Recordings)) }
                                a href="/console/reviews" { (t(T::ReviewQueue)) }
                                a href="/console/audit" { (t(T::AuditLog)) }
                                a href="/console/quarantine" { (t(T::Quarantine)) }
                                a href="/console/lines" { (t(T::Lines)) }
                                a href="/console/reports/monthly" { (t(T::MonthlyReport)) }
                            }
                            @if f.role == Role::Admin {
                                a href="/console/notifications" { (t(T::Notifications)) }
                                a href="/console/admin" { (t(T::Admin)) }
                            }
                        }
                        span.who { (f.username) " (" (f.role.as_str()) ")" }
                        form.inline method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(f.csrf);
                            button type="submit" { (t(T::Logout)) }
                        }
                    }
                    a.lang href={ "/console/lang/" (lang.other().code()) } lang=(lang.other().code()) {
                        (t(T::SwitchLanguage))
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(f) = frame {
                        @if let Some(done) = &f.done {
                            p.notice role="status" {
                                (match done.as_str() {
                                    "approved" => t(T::DoneApproved),
                                    "rejected" => t(T::DoneRejected),
                                    "terminated" => t(T::DoneTerminated),
                                    "filed" => t(T::DoneFiled),
                                    "signed_off" => t(T::DoneSignedOff),
                                    "ok" => t(T::Done),
                                    _ => "",
                                })
                            }
                        }
                        @if let Some(e) = &f.error {
                            p.alert role="alert" { (t(T::Error)) ": " (e) }
                        }
                    }
                    (body)
                }
            }
        }
    }
}

pub(crate) fn respond(status: StatusCode, m: Markup) -> Response {
    (status, Html(m.into_string())).into_response()
}

pub fn error(lang: Lang, message: &str, status: StatusCode) -> Response {
    let body = html! {
        p.alert role="alert" { (message) }
        p { a href="/console/approvals" { (T::Approvals.get(lang)) } }
    };
    respond(status, page(lang, T::Error.get(lang), None, body))
}

pub fn login(lang: Lang, failure: Option<&str>) -> Response {
    let t = |k: T| k.get(lang);
    let body = html! {
        @if let Some(f) = failure {
            p.alert role="alert" { (f) }
        }
        form.card method="post" action="/console/login" {
            label for="username" { (t(T::Username)) }
            input #username name="username" autocomplete="username" required autofocus;
            label for="password" { (t(T::Password)) }
            input #password type="password" name="password" autocomplete="current-password" required;
            label for="otp" { (t(T::OneTimeCode)) }
            input #otp name="otp" autocomplete="one-time-code" inputmode="numeric" maxlength="20";
            button.primary type="submit" { (t(T::LogIn)) }
        }
        p { a href="/console/mfa" { (t(T::MfaEnrol)) } }
    };
    let status = if failure.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    respond(status, page(lang, t(T::LoginTitle), None, body))
}

pub(crate) fn level_badge(level: AccessLevel, lang: Lang) -> Markup {
    let (class, label) = match level {
        AccessLevel::Change => ("badge change", T::Change.get(lang)),
        AccessLevel::Reference => ("badge reference", T::Reference.get(lang)),
    };
    html! { span class=(class) { (label) } }
}

pub(crate) fn csrf_field(f: &Frame) -> Markup {
    html! { input type="hidden" name="csrf" value=(f.csrf); }
}

/// Everything but the unreserved characters of RFC 3986.
const RESERVED: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encodes everything but unreserved characters (for paths and query values).
pub(crate) fn urlencode(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, RESERVED).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urlencode_keeps_unreserved_only() {
        assert_eq!(urlencode("R-1 ok/?&"), "R-1%20ok%2F%3F%26");
        assert_eq!(urlencode("日"), "%E6%97%A5");
    }
}
