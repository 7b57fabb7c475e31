//! The notification outbox as admins see it (issue #17): what was sent to whom, what waits
//! for another try, and what was given up.

use axum::Extension;
use axum::extract::{Query, State};
use jiff::Timestamp;
use sekisho_domain::notify::{DeliveryChannel, Language, NotificationKind};
use sekisho_store::outbox::{DeliveryStatus, Notification};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody, Json};
use super::state::ApiState;
use super::token::Caller;

/// Where a notification stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum StatusView {
    Pending,
    Delivered,
    Failed,
}

impl From<DeliveryStatus> for StatusView {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => StatusView::Pending,
            DeliveryStatus::Delivered => StatusView::Delivered,
            DeliveryStatus::Failed => StatusView::Failed,
        }
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NotificationView {
    /// Stable across retries: receivers drop a repeat by it.
    pub id: String,
    pub kind: NotificationKind,
    pub channel: DeliveryChannel,
    /// An email address, or a webhook's name.
    pub recipient: String,
    pub language: Language,
    pub subject: String,
    pub status: StatusView,
    pub attempts: u32,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    /// When the next try is due (pending ones).
    #[schema(value_type = String, format = DateTime)]
    pub next_attempt_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub delivered_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub failed_at: Option<Timestamp>,
    /// Why the last try failed.
    pub last_error: Option<String>,
}

impl From<Notification> for NotificationView {
    fn from(n: Notification) -> Self {
        Self {
            status: n.status().into(),
            id: n.id,
            kind: n.kind,
            channel: n.channel,
            recipient: n.recipient,
            language: n.language,
            subject: n.subject,
            attempts: n.attempts,
            created_at: n.created_at,
            next_attempt_at: n.next_attempt_at,
            delivered_at: n.delivered_at,
            failed_at: n.failed_at,
            last_error: n.last_error,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct NotificationQuery {
    /// Only notifications in this state.
    pub status: Option<StatusView>,
    /// At most this many, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Notifications, newest first.
#[utoipa::path(get, path = "/api/v1/notifications", tag = "notifications", params(NotificationQuery),
    responses((status = 200, body = Vec<NotificationView>), (status = 400, body = ErrorBody)))]
pub async fn list_notifications(
    State(state): State<ApiState>,
    Extension(_caller): Extension<Caller>,
    query: Result<Query<NotificationQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<NotificationView>>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let status = q.status.map(|s| match s {
        StatusView::Pending => DeliveryStatus::Pending,
        StatusView::Delivered => DeliveryStatus::Delivered,
        StatusView::Failed => DeliveryStatus::Failed,
    });
    let limit = super::extract::page_limit(q.limit, 100)?;
    let rows = state.store.notifications(status, limit).await?;
    Ok(Json(rows.into_iter().map(NotificationView::from).collect()))
}
