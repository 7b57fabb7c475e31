//! The quarantine of blocked uploads: the list, a file to inspect, deleting one.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use sekisho_approval_api::api::files::QuarantineView;

use crate::client::{Console, Ignored};
use crate::context::Ctx;
use crate::extract::{CsrfForm, LoggedIn, Notice, Posted, back_to, frame};
use crate::pages::layout::urlencode;
use crate::pages::quarantine as page;

pub(crate) async fn quarantine(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(notice): Query<Notice>,
) -> Result<Response, Response> {
    let entries: Vec<QuarantineView> = console.fetch(&ctx, "/api/v1/quarantine").await?;
    Ok(page::quarantine(
        &frame(&ctx, &me, notice),
        &console.zone,
        &entries,
    ))
}

/// The blocked file, as an attachment (the API audits it).
pub(crate) async fn content(
    State(console): State<Console>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    if ctx.token.is_none() {
        return Redirect::to("/console/login").into_response();
    }
    let path = format!("/api/v1/quarantine/{}/content", urlencode(&id));
    let mut r = console.raw(&ctx, Method::GET, &path, None).await;
    if r.status().is_success()
        && let Ok(v) = HeaderValue::from_str(&format!(
            "attachment; filename=\"quarantine-{}\"",
            urlencode(&id)
        ))
    {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

pub(crate) async fn delete(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { ctx, .. }: Posted<CsrfForm>,
) -> Response {
    let path = format!("/api/v1/quarantine/{}", urlencode(&id));
    let answer = console.delete::<Ignored>(&ctx, &path).await;
    back_to("/console/quarantine", "ok", &answer)
}
