//! The notifications page (admins).

use axum::extract::{Query, State};
use axum::response::Response;
use sekisho_approval_api::api::notifications::NotificationView;

use crate::client::Console;
use crate::extract::{LoggedIn, Notice, frame};
use crate::pages::notifications as page;

pub(crate) async fn notifications(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(notice): Query<Notice>,
) -> Result<Response, Response> {
    let all: Vec<NotificationView> = console
        .fetch(&ctx, "/api/v1/notifications?limit=500")
        .await?;
    Ok(page::notifications(
        &frame(&ctx, &me, notice),
        &console.zone,
        &all,
    ))
}
