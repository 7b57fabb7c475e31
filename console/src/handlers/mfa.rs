//! Enrolling a second factor from the console, before logging in (see `pages::mfa`).

use axum::Form;
use axum::extract::State;
use axum::http::{Method, StatusCode};
use axum::response::Response;
use sekisho_approval_api::api::mfa::{ConfirmBody, ConfirmResponse, EnrollBody, EnrollResponse};
use serde::Deserialize;

use crate::client::Console;
use crate::context::Ctx;
use crate::pages::layout;
use crate::pages::mfa as page;

#[derive(Deserialize)]
pub(crate) struct EnrollForm {
    username: String,
    password: String,
}

#[derive(Deserialize)]
pub(crate) struct ConfirmForm {
    username: String,
    password: String,
    code: String,
}

pub(crate) async fn start(ctx: Ctx) -> Response {
    page::enroll_start(ctx.lang, "", None)
}

pub(crate) async fn enroll(
    State(console): State<Console>,
    ctx: Ctx,
    Form(form): Form<EnrollForm>,
) -> Response {
    if !ctx.same_origin {
        return layout::error(ctx.lang, "cross-origin form refused", StatusCode::FORBIDDEN);
    }
    let anonymous = Ctx { token: None, ..ctx };
    let body = EnrollBody {
        username: form.username.clone(),
        password: form.password,
    };
    match console
        .send::<EnrollResponse>(&anonymous, Method::POST, "/api/v1/auth/mfa/enroll", &body)
        .await
    {
        Ok(e) => page::enroll_scan(anonymous.lang, &form.username, &e.secret, &e.qr_svg),
        Err(r) => page::enroll_start(anonymous.lang, &form.username, Some(&r.message)),
    }
}

pub(crate) async fn confirm(
    State(console): State<Console>,
    ctx: Ctx,
    Form(form): Form<ConfirmForm>,
) -> Response {
    if !ctx.same_origin {
        return layout::error(ctx.lang, "cross-origin form refused", StatusCode::FORBIDDEN);
    }
    let anonymous = Ctx { token: None, ..ctx };
    let body = ConfirmBody {
        username: form.username.clone(),
        password: form.password,
        code: form.code,
    };
    match console
        .send::<ConfirmResponse>(&anonymous, Method::POST, "/api/v1/auth/mfa/confirm", &body)
        .await
    {
        Ok(c) => page::enroll_done(anonymous.lang, &c.recovery_codes),
        Err(r) => page::enroll_start(anonymous.lang, &form.username, Some(&r.message)),
    }
}
