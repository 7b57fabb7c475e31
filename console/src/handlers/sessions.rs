//! Live sessions, and terminating one.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use sekisho_approval_api::api::dto::{RequestView, SessionView};
use sekisho_approval_api::api::nodes::NodeView;

use crate::client::{Console, Ignored};
use crate::extract::{CsrfForm, LoggedIn, Notice, Posted, back_to, frame};
use crate::pages::layout::urlencode;
use crate::pages::sessions as page;

pub(crate) async fn sessions(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(notice): Query<Notice>,
) -> Result<Response, Response> {
    let live: Vec<SessionView> = console.fetch(&ctx, "/api/v1/sessions?active=true").await?;
    // The requests live sessions run under: their windows are open (not the newest
    // thousand of years of requests).
    let requests: Vec<RequestView> = console
        .get(&ctx, "/api/v1/requests?open=true&limit=1000")
        .await
        .unwrap_or_default();
    // Staff only (vendors are refused this list, and see none).
    let nodes: Vec<NodeView> = console.get(&ctx, "/api/v1/nodes").await.unwrap_or_default();
    Ok(page::sessions(
        &frame(&ctx, &me, notice),
        &console.zone,
        &live,
        &requests,
        &nodes,
    ))
}

pub(crate) async fn confirm_terminate(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let live: Vec<SessionView> = console.fetch(&ctx, "/api/v1/sessions?active=true").await?;
    let Some(session) = live.iter().find(|s| s.id.to_string() == id) else {
        return Ok(Redirect::to("/console/sessions").into_response());
    };
    Ok(page::confirm_terminate(
        &frame(&ctx, &me, Notice::default()),
        session,
    ))
}

pub(crate) async fn terminate(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { ctx, .. }: Posted<CsrfForm>,
) -> Response {
    let path = format!("/api/v1/sessions/{}/terminate", urlencode(&id));
    let answer = console.post::<Ignored>(&ctx, &path).await;
    back_to("/console/sessions", "terminated", &answer)
}
