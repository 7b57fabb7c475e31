//! Enrolling a second factor (TOTP): before logging in, with the account's password at each
//! step (the console keeps no state between them). The QR code is an SVG the API drew.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{PreEscaped, html};

use super::layout::{page, respond};
use crate::i18n::{Lang, T};

/// Step 1: the account's name and password.
pub fn enroll_start(lang: Lang, username: &str, notice: Option<&str>) -> Response {
    let t = |k: T| k.get(lang);
    let body = html! {
        @if let Some(n) = notice {
            p.alert role="alert" { (n) }
        }
        p { (t(T::MfaAbout)) }
        form.card method="post" action="/console/mfa/enroll" {
            label for="username" { (t(T::Username)) }
            input #username name="username" autocomplete="username" required value=(username);
            label for="password" { (t(T::Password)) }
            input #password type="password" name="password" autocomplete="current-password" required;
            button.primary type="submit" { (t(T::MfaStart)) }
        }
    };
    let status = if notice.is_some() {
        StatusCode::FORBIDDEN
    } else {
        StatusCode::OK
    };
    respond(status, page(lang, t(T::MfaEnrol), None, body))
}

/// Step 2: the QR code and the secret; the first code, with the password again.
pub fn enroll_scan(lang: Lang, username: &str, secret: &str, qr_svg: &str) -> Response {
    let t = |k: T| k.get(lang);
    let body = html! {
        p { (t(T::MfaScan)) }
        // Drawn by the API from the otpauth URI: only a path of squares, no text from users.
        div.qr { (PreEscaped(qr_svg)) }
        p { (t(T::MfaSecret)) " " code.secret { (secret) } }
        form.card method="post" action="/console/mfa/confirm" {
            input type="hidden" name="username" value=(username);
            label for="password" { (t(T::Password)) }
            input #password type="password" name="password" autocomplete="current-password" required;
            label for="code" { (t(T::AuthenticatorCode)) }
            input #code name="code" autocomplete="one-time-code" inputmode="numeric" required maxlength="6";
            button.primary type="submit" { (t(T::MfaConfirm)) }
        }
    };
    respond(StatusCode::OK, page(lang, t(T::MfaEnrol), None, body))
}

/// Step 3: on, with the recovery codes shown once.
pub fn enroll_done(lang: Lang, codes: &[String]) -> Response {
    let t = |k: T| k.get(lang);
    let body = html! {
        p.notice role="status" { (t(T::MfaOn)) }
        p { (t(T::MfaRecovery)) }
        ul.recovery { @for c in codes { li { code { (c) } } } }
        p { a href="/console/login" { (t(T::LogIn)) } }
    };
    respond(StatusCode::OK, page(lang, t(T::MfaEnrol), None, body))
}
