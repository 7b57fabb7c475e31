//! Live sessions: who is connected to what, watching and terminating.

use axum::http::StatusCode;
use axum::response::Response;
use jiff::Timestamp;
use maud::html;
use sekisho_approval_api::api::dto::{RequestView, SessionView};
use sekisho_approval_api::api::nodes::NodeView;
use sekisho_domain::node::NodeState;
use sekisho_domain::user::Role;
use sekisho_domain::zone::DisplayZone;

use super::layout::{Frame, bytes, level_badge, page, respond, urlencode, when};
use crate::i18n::T;

/// Who is connected to what, with a terminate button (confirmed on the next page).
pub fn sessions(
    f: &Frame,
    zone: &DisplayZone,
    live: &[SessionView],
    requests: &[RequestView],
    nodes: &[NodeView],
) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let decider = f.decider();
    let now = Timestamp::now();
    let left = |s: &SessionView| {
        let r = requests.iter().find(|r| r.id == s.request_id)?;
        Some(r.window_end.duration_since(now).as_mins().max(0))
    };
    let state = |s: NodeState| match s {
        NodeState::Up => t(T::NodeUp),
        NodeState::Late => t(T::NodeLate),
        NodeState::Stopped => t(T::NodeStopped),
        NodeState::Down => t(T::NodeDown),
    };
    let body = html! {
        @if !nodes.is_empty() {
            p.nodes {
                (t(T::GatewayNodes)) ": "
                @for (i, n) in nodes.iter().enumerate() {
                    @if i > 0 { " · " }
                    span class={ "node " (n.state.as_str()) } {
                        (n.name) " " (state(n.state))
                        @if n.live_sessions > 0 { " (" (t(T::LiveCount)) " " (n.live_sessions) ")" }
                    }
                }
            }
        }
        @if live.is_empty() {
            p.empty { (t(T::NoSessions)) }
        } @else {
            table {
                thead { tr {
                    th { (t(T::Engineer)) } th { (t(T::Target)) } th { (t(T::Request)) }
                    th { (t(T::Level)) } th { (t(T::Transport)) } th { (t(T::Since)) }
                    th { (t(T::Bytes)) } th { (t(T::TimeLeft)) }
                    th { span.visually-hidden { (t(T::Watch)) } }
                } }
                tbody {
                    @for s in live {
                        @let id = s.id.to_string();
                        tr.session {
                            td { (s.username) }
                            td { (s.target) }
                            td { "R-" (s.request_number) }
                            td { (level_badge(s.level, lang)) }
                            td { (s.transport.as_str()) }
                            td { (when(zone, Some(s.started_at))) }
                            td {
                                (bytes(s.bytes_to_target)) " / "
                                (bytes(s.bytes_from_target))
                            }
                            td { @if let Some(m) = left(s) { (m) " " (t(T::Minutes)) } }
                            td.actions {
                                @if f.role != Role::Vendor {
                                    a.button.watch href={ "/console/recordings/" (urlencode(&id)) "?live=true" } {
                                        (t(T::Watch))
                                    }
                                }
                                @if decider {
                                    " "
                                    a.button.danger href={ "/console/sessions/" (urlencode(&id)) "/terminate" } {
                                        (t(T::Terminate))
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        page(lang, t(T::LiveSessions), Some(f), body),
    )
}

pub fn confirm_terminate(f: &Frame, s: &SessionView) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let id = s.id.to_string();
    let body = html! {
        div.card {
            p {
                strong { (s.username) } " → " strong { (s.target) }
                " (R-" (s.request_number) ")"
            }
            p { (t(T::ConfirmTerminateText)) }
            form method="post" action={ "/console/sessions/" (urlencode(&id)) "/terminate" } {
                input type="hidden" name="csrf" value=(f.csrf);
                div.buttons {
                    button.danger type="submit" { (t(T::Terminate)) }
                    a.button href="/console/sessions" { (t(T::Cancel)) }
                }
            }
        }
    };
    respond(
        StatusCode::OK,
        page(lang, t(T::ConfirmTerminate), Some(f), body),
    )
}
