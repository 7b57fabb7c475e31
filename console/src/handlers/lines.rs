//! The inventory of external connection lines (issue #18).

use axum::extract::{Path, Query, State};
use axum::http::Method;
use axum::response::{IntoResponse, Redirect, Response};
use sekisho_approval_api::api::dto::VendorView;
use sekisho_approval_api::api::lines::{LineReviewBody, LineView, NewLineBody};
use sekisho_domain::line::Route;

use crate::client::{Console, Ignored};
use crate::extract::{Fields, LoggedIn, Notice, Posted, back_to, field, frame, unix_newlines};
use crate::pages::layout::urlencode;
use crate::pages::lines as page;

pub(crate) async fn lines(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(notice): Query<Notice>,
) -> Result<Response, Response> {
    let all: Vec<LineView> = console.fetch(&ctx, "/api/v1/lines").await?;
    let vendors: Vec<VendorView> = console
        .get(&ctx, "/api/v1/vendors")
        .await
        .unwrap_or_default();
    Ok(page::lines(
        &frame(&ctx, &me, notice),
        &console.zone,
        &all,
        &vendors,
    ))
}

fn form_problem(message: &str) -> Response {
    Redirect::to(&format!("/console/lines?error={}", urlencode(message))).into_response()
}

pub(crate) async fn create_line(
    State(console): State<Console>,
    Posted { ctx, form: f }: Posted<Fields>,
) -> Response {
    let route = match field(&f, "route") {
        "" | "sekisho" => Route::Sekisho,
        "exception" => Route::Exception,
        other => {
            return form_problem(&format!(
                "route: `{other}` is neither sekisho nor exception"
            ));
        }
    };
    let firmware_updated_at = match field(&f, "firmware_updated") {
        "" => None,
        // The day it was updated: its start in the hospital's zone.
        day => match console.zone.parse_local(&format!("{day}T00:00")) {
            Ok(at) => Some(at),
            Err(_) => {
                return form_problem(&format!("firmware last updated: `{day}` is not a date"));
            }
        },
    };
    let body = NewLineBody {
        name: field(&f, "name").to_owned(),
        route: Some(route),
        vendor_id: Some(field(&f, "vendor_id").to_owned()).filter(|v| !v.is_empty()),
        owner: field(&f, "owner").to_owned(),
        location: field(&f, "location").to_owned(),
        device: field(&f, "device").to_owned(),
        firmware: field(&f, "firmware").to_owned(),
        firmware_updated_at,
        measures: unix_newlines(field(&f, "measures")),
        notes: unix_newlines(field(&f, "notes")),
    };
    back_to(
        "/console/lines",
        "ok",
        &console
            .send::<Ignored>(&ctx, Method::POST, "/api/v1/lines", &body)
            .await,
    )
}

pub(crate) async fn review_line(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { ctx, form: f }: Posted<Fields>,
) -> Response {
    let body = LineReviewBody {
        note: Some(field(&f, "note").to_owned()).filter(|n| !n.trim().is_empty()),
    };
    let path = format!("/api/v1/lines/{}/review", urlencode(&id));
    back_to(
        "/console/lines",
        "ok",
        &console
            .send::<Ignored>(&ctx, Method::POST, &path, &body)
            .await,
    )
}
