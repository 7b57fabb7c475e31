//! Notifications: what Sekisho sent to whom, what waits for another try, and what it gave up
//! on (those first, so that IT sees who was not told).

use axum::http::StatusCode;
use axum::response::Response;
use maud::html;
use sekisho_approval_api::api::notifications::{NotificationView, StatusView};
use sekisho_domain::zone::DisplayZone;

use super::layout::{Frame, page, respond, when};
use crate::i18n::T;

pub fn notifications(f: &Frame, zone: &DisplayZone, all: &[NotificationView]) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let state = |s: StatusView| match s {
        StatusView::Pending => t(T::NotificationPending),
        StatusView::Delivered => t(T::NotificationDelivered),
        StatusView::Failed => t(T::NotificationFailed),
    };
    let failed = all
        .iter()
        .filter(|n| n.status == StatusView::Failed)
        .count();
    let mut rows: Vec<&NotificationView> = all.iter().collect();
    // Given up first, then waiting, then delivered; newest first within each.
    rows.sort_by_key(|n| match n.status {
        StatusView::Failed => 0,
        StatusView::Pending => 1,
        StatusView::Delivered => 2,
    });
    let body = html! {
        p { (t(T::NotificationsAbout)) }
        @if failed > 0 {
            p.error role="alert" { (t(T::NotificationsFailedCount)) " " (failed) }
        }
        @if rows.is_empty() {
            p.empty { (t(T::NotificationsEmpty)) }
        } @else {
            table {
                thead { tr {
                    th { (t(T::Time)) } th { (t(T::Kind)) } th { (t(T::Recipient)) }
                    th { (t(T::Subject)) } th { (t(T::Status)) } th { (t(T::Attempts)) } th { (t(T::Error)) }
                } }
                tbody {
                    @for n in rows {
                        tr class=(if n.status == StatusView::Failed { "blocked" } else { "" }) {
                            td { (when(zone, Some(n.created_at))) }
                            td { code { (n.kind.as_str()) } }
                            td { (n.channel.as_str()) ": " (n.recipient) }
                            td { (n.subject) }
                            td { (state(n.status)) }
                            td { (n.attempts) }
                            td { (n.last_error.as_deref().unwrap_or("")) }
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        page(lang, t(T::Notifications), Some(f), body),
    )
}
