//! Recordings: the list, the text search, and one recording with its player, files,
//! verification and review.

use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use sekisho_approval_api::api::dto::{ReviewState, SessionView};
use sekisho_approval_api::api::files::TransferView;
use sekisho_approval_api::api::reviews::{ReviewItem, SessionActivity};
use sekisho_domain::target::AccessLevel;
use sekisho_domain::zone::DisplayZone;
use sekisho_recorder::Manifest;
use sekisho_recorder::index::{Screen, Span};
use sekisho_recorder::library::{Hit, Verification};
use sekisho_recorder::manifest::{FileKind, RecordingState};

use super::layout::{Frame, level_badge, page, page_with, respond, urlencode, when};
use crate::i18n::{Lang, T};

/// A manifest's level (written as text when the session began).
fn level(m: &Manifest) -> AccessLevel {
    m.meta.level.parse().unwrap_or(AccessLevel::Reference)
}

fn verified_badge(v: Option<&Verification>, lang: Lang) -> Markup {
    let t = |k: T| k.get(lang);
    html! {
        @match v {
            None => span { "?" },
            Some(v) if v.problems.is_empty() => span.ok { (t(T::Verified)) },
            Some(v) => span.bad { (t(T::Tampered)) ": " (v.problems.join("; ")) },
        }
    }
}

fn search_form(lang: Lang, q: &str) -> Markup {
    let t = |k: T| k.get(lang);
    html! {
        form.search method="get" action="/console/recordings/search" role="search" {
            label for="q" { (t(T::Search)) }
            input #q type="search" name="q" value=(q) placeholder=(t(T::SearchHint)) required;
            button.primary type="submit" { (t(T::Search)) }
        }
    }
}

/// The recordings list's filters as typed: target, engineer, state.
pub struct Filters<'a> {
    pub target: Option<&'a str>,
    pub user: Option<&'a str>,
    pub state: Option<&'a str>,
}

/// The recordings, newest first, with filters and the text search.
pub fn recordings(
    f: &Frame,
    zone: &DisplayZone,
    list: &[Manifest],
    filters: &Filters<'_>,
) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let states = [
        RecordingState::Closed,
        RecordingState::Open,
        RecordingState::Aborted,
    ];
    let body = html! {
        (search_form(lang, ""))
        form.filters method="get" action="/console/recordings" {
            label { (t(T::Target)) " " input name="target" value=(filters.target.unwrap_or("")); }
            label { (t(T::Engineer)) " " input name="user" value=(filters.user.unwrap_or("")); }
            label { (t(T::Status)) " "
                select name="state" {
                    option value="" { (t(T::All)) }
                    @for s in states {
                        option value=(s.as_str()) selected[filters.state == Some(s.as_str())] { (s.as_str()) }
                    }
                }
            }
            button type="submit" { (t(T::Filter)) }
        }
        table {
            thead { tr {
                th { (t(T::Started)) } th { (t(T::Engineer)) } th { (t(T::Target)) } th { (t(T::Request)) }
                th { (t(T::Level)) } th { (t(T::Status)) } th { (t(T::Files)) }
            } }
            tbody {
                @for m in list {
                    tr.recording {
                        td { a href={ "/console/recordings/" (urlencode(&m.meta.session)) } { (when(zone, Some(m.started_at))) } }
                        td { (m.meta.vendor_user) }
                        td { (m.meta.target) }
                        td { "R-" (m.meta.request_number) }
                        td { (level_badge(level(m), lang)) }
                        td { (m.state.as_str()) }
                        td { (m.files.len()) }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, page(lang, t(T::Recordings), Some(f), body))
}

/// Where a text was typed or shown, each a link to that moment in the player.
pub fn search(f: &Frame, q: &str, hits: &[Hit]) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let body = html! {
        (search_form(lang, q))
        @if !q.trim().is_empty() && hits.is_empty() {
            p.empty { (t(T::NoHits)) }
        }
        @if !hits.is_empty() {
            table {
                thead { tr { th { (t(T::Engineer)) } th { (t(T::Target)) } th { (t(T::At)) } th { (t(T::Kind)) } th { "" } } }
                tbody {
                    @for h in hits {
                        tr.hit {
                            td { (h.vendor_user) }
                            td { (h.target) }
                            td {
                                a href={ "/console/recordings/" (urlencode(&h.session)) "?t=" (h.t) } {
                                    (format!("{:.1}", h.t)) " s"
                                }
                            }
                            td { (h.source.as_str()) }
                            td { code { (h.text) } }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, page(lang, t(T::Search), Some(f), body))
}

/// Everything about one recording the reviewer needs.
pub struct RecordingView<'a> {
    pub id: &'a str,
    pub manifest: &'a Manifest,
    /// `None` when the API could not verify it.
    pub verification: Option<&'a Verification>,
    /// The session the recording is of, when the caller may see it.
    pub session: Option<&'a SessionView>,
    /// The session beside its request's plan and report, with its flags.
    pub review: Option<&'a ReviewItem>,
    pub screen: Option<&'a Drawn>,
    pub t: f64,
    pub playing: bool,
    pub speed: f64,
    /// Watching a live session: the latest screen, refreshed every second.
    pub live: bool,
    /// The files that crossed in the session.
    pub transfers: &'a [TransferView],
    /// What the vendor did: channels, commands typed, refusals.
    pub activity: Option<&'a SessionActivity>,
}

/// What the player shows.
pub enum Drawn {
    /// A terminal drawn by the API.
    Terminal { screen: Screen, t: f64, length: f64 },
    /// A remote desktop: the page shows `screen.png` at `t`.
    Desktop { t: f64, length: f64 },
}

impl Drawn {
    pub fn t(&self) -> f64 {
        match self {
            Drawn::Terminal { t, .. } | Drawn::Desktop { t, .. } => *t,
        }
    }

    pub fn length(&self) -> f64 {
        match self {
            Drawn::Terminal { length, .. } | Drawn::Desktop { length, .. } => *length,
        }
    }
}

/// CSS classes of a terminal span: `f<n>`/`b<n>` (xterm-256 colours, styled in app.css),
/// `bold`, `cursor`. Classes, not inline styles: the CSP allows no inline style.
fn span_class(span: &Span) -> String {
    let mut class = Vec::new();
    if let Some(fg) = span.fg {
        class.push(format!("f{fg}"));
    }
    if let Some(bg) = span.bg {
        class.push(format!("b{bg}"));
    }
    if span.bold {
        class.push("bold".into());
    }
    if span.cursor {
        class.push("cursor".into());
    }
    class.join(" ")
}

fn screen_html(s: &Screen) -> Markup {
    html! {
        pre.terminal aria-label="terminal" {
            @for row in &s.rows {
                @for span in row {
                    span class=(span_class(span)) { (span.text) }
                }
                "\n"
            }
        }
    }
}

fn direction(d: sekisho_domain::files::Direction, lang: Lang) -> &'static str {
    match d {
        sekisho_domain::files::Direction::Upload => T::Upload.get(lang),
        sekisho_domain::files::Direction::Download => T::Download.get(lang),
    }
}

pub fn recording(f: &Frame, zone: &DisplayZone, v: &RecordingView<'_>) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let m = v.manifest;
    let id = urlencode(v.id);
    let here = format!("/console/recordings/{id}");
    let length = v.screen.map_or(0.0, Drawn::length);
    let step = v.speed;
    let next_t = (v.t + step).min(length);
    let open = m.state == RecordingState::Open;
    let refresh = if v.live && open {
        Some((1.0, format!("{here}?live=true")))
    } else {
        (v.playing && v.t < length).then(|| {
            (
                1.0,
                format!("{here}?t={next_t:.2}&play=true&speed={}", v.speed),
            )
        })
    };
    let decider = f.decider();
    let reviewed = v
        .session
        .is_some_and(|s| s.review == ReviewState::SignedOff);
    let end_reason = m
        .end_reason
        .as_deref()
        .filter(|r| !r.is_empty() && *r != m.state.as_str());
    let body = html! {
        dl {
            dt { (t(T::Engineer)) } dd { (m.meta.vendor_user) }
            dt { (t(T::Target)) } dd { (m.meta.target) " " (level_badge(level(m), lang)) }
            dt { (t(T::Request)) } dd { "R-" (m.meta.request_number) }
            dt { (t(T::Window)) } dd { (when(zone, Some(m.started_at))) " – " (when(zone, m.ended_at)) }
            dt { (t(T::Status)) } dd {
                (m.state.as_str())
                @if let Some(reason) = end_reason {
                    " (" (reason) ")"
                }
            }
            dt { (t(T::Source)) } dd { (m.meta.source_addr) }
            dt { "SHA-256" } dd { (verified_badge(v.verification, lang)) }
        }
        section aria-labelledby="player" {
            h2 #player { (t(T::Play)) }
            @if v.live && open {
                p.notice.live role="status" { (t(T::Watching)) }
            }
            @match v.screen {
                None => p.empty { (t(T::NoTerminal)) },
                Some(drawn) => {
                    @match drawn {
                        Drawn::Terminal { screen, .. } => (screen_html(screen)),
                        Drawn::Desktop { .. } => {
                            @let at = if v.live && open { String::new() } else { format!("?t={:.2}", v.t) };
                            img.desktop src={ (here) "/screen.png" (at) } alt=(t(T::RemoteDesktop));
                        }
                    }
                    form.player method="get" action=(here) {
                        label for="t" { (t(T::Seek)) }
                        input #t type="range" name="t" min="0" max=(format!("{length:.1}")) step="0.5" value=(format!("{:.1}", v.t.min(length)));
                        output for="t" { (format!("{:.1} / {length:.1} s", v.t.min(length))) }
                        label for="speed" { (t(T::Speed)) }
                        select #speed name="speed" {
                            @for s in [0.5, 1.0, 2.0, 4.0, 8.0] {
                                option value=(s) selected[(s - v.speed).abs() < f64::EPSILON] { (s) "×" }
                            }
                        }
                        @if v.playing {
                            button type="submit" { (t(T::Pause)) }
                        } @else {
                            button type="submit" { (t(T::Seek)) }
                            button.primary type="submit" name="play" value="true" { (t(T::Play)) }
                        }
                    }
                }
            }
            p {
                a href={ (here) "/text" } { (t(T::Transcript)) }
                " · " (t(T::Files)) ": "
                @for file in &m.files {
                    a href={ (here) "/files/" (urlencode(&file.name)) } download { (file.name) } " "
                    @if file.kind == FileKind::Stream {
                        @if let Some(c) = file.channel {
                            "(" a.pcap href={ (here) "/pcap?channel=" (c) } { "pcap" } ") "
                        }
                    }
                }
                " · "
                a.bundle href={ (here) "/bundle" } { (t(T::Bundle)) }
            }
        }
        section aria-labelledby="transfers" {
            h2 #transfers { (t(T::FilesTransferred)) }
            @if v.transfers.is_empty() {
                p.empty { (t(T::NoFilesTransferred)) }
            } @else {
                table {
                    thead { tr {
                        th { (t(T::Direction)) } th { (t(T::Path)) } th { (t(T::Size)) }
                        th { "SHA-256" } th { (t(T::Outcome)) } th { (t(T::Time)) }
                    } }
                    tbody {
                        @for x in v.transfers {
                            tr {
                                td { (direction(x.direction, lang)) }
                                td { code { (x.path) } }
                                td { (x.bytes) }
                                td { code.hash { (x.sha256.as_deref().unwrap_or("—")) } }
                                td {
                                    (x.outcome.as_str())
                                    @if let Some(d) = &x.detail { " — " (d) }
                                }
                                td { (when(zone, Some(x.ended_at))) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="review" {
            h2 #review { (t(T::Review)) }
            @if let Some(item) = v.review {
                (super::reviews::beside(zone, lang, item))
            }
            (super::activity::section(zone, lang, &here, v.review, v.activity))
            dl {
                @if let Some(s) = v.session.filter(|_| reviewed) {
                    dt { (t(T::SignedOff)) } dd {
                        (s.reviewed_by.as_deref().unwrap_or("")) " — " (s.review_comment.as_deref().unwrap_or(""))
                    }
                }
            }
            @if decider && !reviewed && v.session.is_some() {
                form.decision method="post" action={ "/console/sessions/" (id) "/review" } {
                    input type="hidden" name="csrf" value=(f.csrf);
                    label for="review-comment" { (t(T::Comment)) }
                    textarea #review-comment name="comment" rows="2" {}
                    div.buttons { button.primary type="submit" { (t(T::SignOff)) } }
                }
            }
        }
    };
    let title = format!(
        "{} · {} · R-{}",
        t(T::Recordings),
        m.meta.target,
        m.meta.request_number
    );
    respond(
        StatusCode::OK,
        page_with(lang, &title, Some(f), body, refresh),
    )
}
