//! Logging in and out, and the language switch.

use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use sekisho_approval_api::api::auth::{LoginBody, LoginResponse};
use serde::Deserialize;

use crate::client::{Console, Ignored};
use crate::context::{Ctx, LANG_COOKIE, TOKEN_COOKIE};
use crate::extract::{CsrfForm, Posted};
use crate::i18n::Lang;
use crate::pages::layout;

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    otp: String,
}

pub(crate) async fn login_page(ctx: Ctx) -> Response {
    layout::login(ctx.lang, None)
}

pub(crate) async fn login(
    State(console): State<Console>,
    ctx: Ctx,
    Form(form): Form<LoginForm>,
) -> Response {
    if !ctx.same_origin {
        return layout::error(ctx.lang, "cross-origin form refused", StatusCode::FORBIDDEN);
    }
    let origin_https = ctx.origin_https;
    let anonymous = Ctx { token: None, ..ctx };
    let username = form.username.clone();
    let body = LoginBody {
        username: form.username,
        password: form.password,
        otp: Some(form.otp).filter(|o| !o.trim().is_empty()),
    };
    let answer = console
        .send::<LoginResponse>(
            &anonymous,
            axum::http::Method::POST,
            "/api/v1/auth/login",
            &body,
        )
        .await;
    let token = match answer {
        Ok(a) => a.token,
        // A role that must use a second factor and has none yet: enrol first.
        Err(r) if r.code == "mfa_enrollment_required" => {
            return crate::pages::mfa::enroll_start(anonymous.lang, &username, Some(&r.message));
        }
        Err(r) => return layout::login(anonymous.lang, Some(&r.message)),
    };
    // Over TLS (a reverse proxy in front, as the browser's origin shows) the cookie is
    // Secure; on plain HTTP it could not be sent back at all if it were.
    let secure = if origin_https { "; Secure" } else { "" };
    let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
    let mut r = Redirect::to("/console/approvals").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

pub(crate) async fn logout(State(console): State<Console>, posted: Posted<CsrfForm>) -> Response {
    // The token itself stops working, not only the cookie that carried it.
    if let Err(r) = console
        .post::<Ignored>(&posted.ctx, "/api/v1/auth/logout")
        .await
        && r.status != StatusCode::UNAUTHORIZED
    {
        tracing::warn!(status = %r.status, "console: the token could not be revoked at logout");
    }
    let mut r = Redirect::to("/console/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sekisho_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

pub(crate) async fn switch_language(Path(code): Path<String>, headers: HeaderMap) -> Response {
    let Some(lang) = Lang::parse(&code) else {
        return (StatusCode::NOT_FOUND, "no such language").into_response();
    };
    // Back to the page the switch was clicked on, if it was one of ours.
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("/console/").map(|i| r[i..].to_owned()))
        .unwrap_or_else(|| "/console/approvals".into());
    let mut r = Redirect::to(&back).into_response();
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; SameSite=Strict; Max-Age=31536000",
        lang.code()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}
