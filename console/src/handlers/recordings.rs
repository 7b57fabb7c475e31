//! Recordings: the list, the search, one recording (player, verification, review), its
//! transcript, files and exports.

use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Redirect, Response};
use sekisho_approval_api::api::recordings::ScreenView;
use sekisho_approval_api::api::reviews::{ReviewItem, SessionActivity};
use sekisho_recorder::Manifest;
use sekisho_recorder::library::{Hit, Verification};
use serde::Deserialize;

use crate::client::{Console, Ignored, MAX_ANSWER, refusal_message};
use crate::context::Ctx;
use crate::extract::{DecisionForm, LoggedIn, Notice, Posted, back_to, frame, query};
use crate::pages::layout::urlencode;
use crate::pages::recordings::{self as page, Drawn, Filters, RecordingView};
use sekisho_approval_api::api::files::TransferView;

#[derive(Deserialize)]
pub(crate) struct RecordingsQuery {
    target: Option<String>,
    user: Option<String>,
    state: Option<String>,
}

pub(crate) async fn recordings(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(q): Query<RecordingsQuery>,
) -> Result<Response, Response> {
    let path = format!(
        "/api/v1/recordings{}",
        query(&[
            ("target", q.target.as_deref()),
            ("user", q.user.as_deref()),
            ("state", q.state.as_deref())
        ])
    );
    let list: Vec<Manifest> = console.fetch(&ctx, &path).await?;
    let filters = Filters {
        target: q.target.as_deref(),
        user: q.user.as_deref(),
        state: q.state.as_deref(),
    };
    Ok(page::recordings(
        &frame(&ctx, &me, Notice::default()),
        &console.zone,
        &list,
        &filters,
    ))
}

#[derive(Deserialize)]
pub(crate) struct SearchForm {
    #[serde(default)]
    q: String,
}

pub(crate) async fn search(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(s): Query<SearchForm>,
) -> Result<Response, Response> {
    let hits: Vec<Hit> = if s.q.trim().is_empty() {
        vec![]
    } else {
        let path = format!("/api/v1/recordings/search?q={}", urlencode(s.q.trim()));
        console.fetch(&ctx, &path).await?
    };
    Ok(page::search(
        &frame(&ctx, &me, Notice::default()),
        &s.q,
        &hits,
    ))
}

#[derive(Deserialize)]
pub(crate) struct PlayerQuery {
    t: Option<f64>,
    #[serde(default)]
    play: bool,
    speed: Option<f64>,
    #[serde(default)]
    live: bool,
    done: Option<String>,
    error: Option<String>,
}

pub(crate) async fn recording(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Path(id): Path<String>,
    Query(pq): Query<PlayerQuery>,
) -> Result<Response, Response> {
    let base = format!("/api/v1/recordings/{}", urlencode(&id));
    let manifest: Manifest = console.fetch(&ctx, &base).await?;
    let verification = console
        .get::<Verification>(&ctx, &format!("{base}/verify"))
        .await
        .ok();
    // The session beside its request's plan and report (a recording is its session's id).
    let review = console
        .get::<ReviewItem>(&ctx, &format!("/api/v1/reviews/{}", urlencode(&id)))
        .await
        .ok();
    // The first terminal channel at `t` (or now, watching live), drawn by the API.
    let at = if pq.live {
        String::new()
    } else {
        format!("?t={}", pq.t.unwrap_or(0.0).max(0.0))
    };
    let drawn = drawn(&console, &ctx, &format!("{base}/screen{at}")).await;
    let transfers = console
        .get::<Vec<TransferView>>(
            &ctx,
            &format!("/api/v1/files?session={}&limit=1000", urlencode(&id)),
        )
        .await
        .unwrap_or_default();
    let activity = console
        .get::<SessionActivity>(
            &ctx,
            &format!("/api/v1/reviews/{}/activity", urlencode(&id)),
        )
        .await
        .ok();
    let notice = Notice {
        done: pq.done.clone(),
        error: pq.error.clone(),
    };
    Ok(page::recording(
        &frame(&ctx, &me, notice),
        &console.zone,
        &RecordingView {
            id: &id,
            manifest: &manifest,
            verification: verification.as_ref(),
            session: review.as_ref().map(|r| &r.session),
            review: review.as_ref(),
            screen: drawn.as_ref(),
            t: drawn.as_ref().map_or(0.0, Drawn::t),
            playing: pq.play,
            speed: pq.speed.unwrap_or(1.0).clamp(0.25, 16.0),
            live: pq.live,
            transfers: &transfers,
            activity: activity.as_ref(),
        },
    ))
}

/// The screen the API drew: a terminal (JSON) or a remote desktop (PNG, its moment and
/// length in headers, the picture itself fetched by the page from `screen.png`).
async fn drawn(console: &Console, ctx: &Ctx, path: &str) -> Option<Drawn> {
    let resp = console.raw(ctx, Method::GET, path, None).await;
    if !resp.status().is_success() {
        return None;
    }
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let is_png = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes() == b"image/png");
    if is_png {
        return Some(Drawn::Desktop {
            t: header("x-sekisho-t").unwrap_or(0.0),
            length: header("x-sekisho-length").unwrap_or(0.0),
        });
    }
    let bytes = axum::body::to_bytes(resp.into_body(), MAX_ANSWER)
        .await
        .ok()?;
    let view: ScreenView = serde_json::from_slice(&bytes).ok()?;
    let (t, length) = (view.t, view.length);
    view.screen
        .map(|screen| Drawn::Terminal { screen, t, length })
}

#[derive(Deserialize)]
pub(crate) struct AtQuery {
    t: Option<f64>,
}

/// A remote desktop's screen at `t` (or now), as the API draws it (PNG).
pub(crate) async fn screen_png(
    State(console): State<Console>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<AtQuery>,
) -> Response {
    let at =
        q.t.map(|t| format!("?t={}", t.max(0.0)))
            .unwrap_or_default();
    let path = format!("/api/v1/recordings/{}/screen{at}", urlencode(&id));
    passed_on(&console, &ctx, &path).await
}

/// The API's answer to a GET, as it is (a logged-out caller goes to the login page).
async fn passed_on(console: &Console, ctx: &Ctx, path: &str) -> Response {
    if ctx.token.is_none() {
        return Redirect::to("/console/login").into_response();
    }
    console.raw(ctx, Method::GET, path, None).await
}

pub(crate) async fn transcript(
    State(console): State<Console>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let path = format!("/api/v1/recordings/{}/text", urlencode(&id));
    passed_on(&console, &ctx, &path).await
}

pub(crate) async fn download(
    State(console): State<Console>,
    ctx: Ctx,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    let path = format!(
        "/api/v1/recordings/{}/files/{}",
        urlencode(&id),
        urlencode(&name)
    );
    let mut r = passed_on(&console, &ctx, &path).await;
    if r.status().is_success()
        && let Ok(v) =
            HeaderValue::from_str(&format!("attachment; filename=\"{}\"", urlencode(&name)))
    {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[derive(Deserialize)]
pub(crate) struct ChannelQuery {
    channel: Option<u32>,
}

/// An export from the API, or back to the recording with the API's reason.
async fn export(console: &Console, ctx: &Ctx, id: &str, what: &str) -> Response {
    if ctx.token.is_none() {
        return Redirect::to("/console/login").into_response();
    }
    let r = console
        .raw(
            ctx,
            Method::GET,
            &format!("/api/v1/recordings/{}/{what}", urlencode(id)),
            None,
        )
        .await;
    let status = r.status();
    if status.is_success() {
        return r;
    }
    let message = match axum::body::to_bytes(r.into_body(), MAX_ANSWER).await {
        Ok(b) => refusal_message(status, &b),
        Err(_) => "the export failed".into(),
    };
    Redirect::to(&format!(
        "/console/recordings/{}?error={}",
        urlencode(id),
        urlencode(&message)
    ))
    .into_response()
}

pub(crate) async fn export_pcap(
    State(console): State<Console>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<ChannelQuery>,
) -> Response {
    let what = match q.channel {
        Some(c) => format!("pcap?channel={c}"),
        None => "pcap".into(),
    };
    export(&console, &ctx, &id, &what).await
}

pub(crate) async fn export_bundle(
    State(console): State<Console>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    export(&console, &ctx, &id, "bundle").await
}

pub(crate) async fn sign_off(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { ctx, form }: Posted<DecisionForm>,
) -> Response {
    let path = format!("/api/v1/sessions/{}/review", urlencode(&id));
    let answer = console
        .send::<Ignored>(&ctx, Method::POST, &path, &form.body())
        .await;
    back_to(
        &format!("/console/recordings/{}", urlencode(&id)),
        "signed_off",
        &answer,
    )
}

/// The review queue: finished sessions not yet signed off, oldest first.
pub(crate) async fn review_queue(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(notice): Query<Notice>,
) -> Result<Response, Response> {
    let items: Vec<ReviewItem> = console.fetch(&ctx, "/api/v1/reviews?limit=1000").await?;
    Ok(crate::pages::reviews::queue(
        &frame(&ctx, &me, notice),
        &console.zone,
        &items,
    ))
}
