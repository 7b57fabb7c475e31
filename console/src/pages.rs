//! The console's pages (maud: every interpolated value is HTML-escaped).

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use jiff::Timestamp;
use maud::{DOCTYPE, Markup, html};
use sekisho_domain::zone::DisplayZone;
use serde_json::Value;

use super::i18n::{Lang, T};
use super::{Frame, urlencode};

fn status_label(status: &str, lang: Lang) -> &str {
    let (en, ja) = match status {
        "submitted" => ("submitted", "申請中"),
        "approved" => ("approved", "承認済"),
        "rejected" => ("rejected", "却下"),
        "cancelled" => ("cancelled", "取下げ"),
        "active" => ("in progress", "作業中"),
        "completed" => ("completed", "完了"),
        "expired" => ("expired", "期限切れ"),
        "revoked" => ("revoked", "承認取消"),
        other => (other, other),
    };
    match lang {
        Lang::En => en,
        Lang::Ja => ja,
    }
}

fn when(zone: &DisplayZone, v: &Value) -> String {
    v.as_str()
        .and_then(|s| s.parse::<Timestamp>().ok())
        .map_or_else(|| "?".into(), |t| zone.date_time(t))
}

fn text<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key].as_str().unwrap_or("")
}

fn bytes(n: u64) -> String {
    match n {
        0..1_024 => format!("{n} B"),
        1_024..1_048_576 => format!("{:.1} KiB", n as f64 / 1024.0),
        _ => format!("{:.1} MiB", n as f64 / 1_048_576.0),
    }
}

fn page(lang: Lang, title: &str, frame: Option<&Frame>, body: Markup) -> Markup {
    page_with(lang, title, frame, body, None)
}

/// A page; `refresh` is `(seconds, url)` for a player that is playing (no JavaScript).
fn page_with(
    lang: Lang,
    title: &str,
    frame: Option<&Frame>,
    body: Markup,
    refresh: Option<(f64, String)>,
) -> Markup {
    let t = |k: T| k.get(lang);
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " — " (t(T::Title)) }
                link rel="stylesheet" href="/console/static/app.css";
                @if let Some((secs, url)) = &refresh {
                    meta http-equiv="refresh" content={ (format!("{secs:.1}")) "; url=" (url) };
                }
            }
            body {
                header.top {
                    span.brand { (t(T::Title)) }
                    @if let Some(f) = frame {
                        nav aria-label="main" {
                            a href="/console/approvals" {
                                (if f.role == "vendor" { t(T::MyRequests) } else { t(T::Approvals) })
                            }
                            a href="/console/sessions" { (t(T::LiveSessions)) }
                            @if f.role != "vendor" {
                                a href="/console/recordings" { (t(T::Recordings)) }
                                a href="/console/audit" { (t(T::AuditLog)) }
                            }
                            @if f.role == "admin" {
                                a href="/console/admin" { (t(T::Admin)) }
                            }
                        }
                        span.who { (f.username) " (" (f.role) ")" }
                        form.inline method="post" action="/console/logout" {
                            input type="hidden" name="csrf" value=(f.csrf);
                            button type="submit" { (t(T::Logout)) }
                        }
                    }
                    a.lang href={ "/console/lang/" (lang.other().code()) } lang=(lang.other().code()) {
                        (t(T::SwitchLanguage))
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(f) = frame {
                        @if let Some(done) = &f.done {
                            p.notice role="status" {
                                (match done.as_str() {
                                    "approved" => t(T::DoneApproved),
                                    "rejected" => t(T::DoneRejected),
                                    "terminated" => t(T::DoneTerminated),
                                    "filed" => t(T::DoneFiled),
                                    "signed_off" => t(T::DoneSignedOff),
                                    "ok" => t(T::Done),
                                    _ => "",
                                })
                            }
                        }
                        @if let Some(e) = &f.error {
                            p.alert role="alert" { (t(T::Error)) ": " (e) }
                        }
                    }
                    (body)
                }
            }
        }
    }
}

fn respond(status: StatusCode, m: Markup) -> Response {
    (status, Html(m.into_string())).into_response()
}

pub fn error(lang: Lang, message: &str, status: StatusCode) -> Response {
    let body = html! {
        p.alert role="alert" { (message) }
        p { a href="/console/approvals" { (T::Approvals.get(lang)) } }
    };
    respond(status, page(lang, T::Error.get(lang), None, body))
}

pub fn login(lang: Lang, failure: Option<&str>) -> Response {
    let t = |k: T| k.get(lang);
    let body = html! {
        @if let Some(f) = failure {
            p.alert role="alert" { (f) }
        }
        form.card method="post" action="/console/login" {
            label for="username" { (t(T::Username)) }
            input #username name="username" autocomplete="username" required autofocus;
            label for="password" { (t(T::Password)) }
            input #password type="password" name="password" autocomplete="current-password" required;
            button.primary type="submit" { (t(T::LogIn)) }
        }
    };
    let status = if failure.is_some() {
        StatusCode::UNAUTHORIZED
    } else {
        StatusCode::OK
    };
    respond(status, page(lang, t(T::LoginTitle), None, body))
}

fn level_badge(level: &str, lang: Lang) -> Markup {
    let (class, label) = if level == "change" {
        ("badge change", T::Change.get(lang))
    } else {
        ("badge reference", T::Reference.get(lang))
    };
    html! { span class=(class) { (label) } }
}

/// Pending first (emergency ones at the very top), then decided ones, filterable by state.
pub fn approvals(
    f: &Frame,
    zone: &DisplayZone,
    requests: &[Value],
    vendors: &[Value],
    users: &[Value],
    filter: Option<&str>,
) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    if f.role == "vendor" {
        return vendor_requests(f, zone, requests, vendors.first());
    }
    let decider = f.role == "admin" || f.role == "approver";
    let vendor = |id: &Value| vendors.iter().find(|v| v["id"] == *id);
    let user = |id: &Value| users.iter().find(|u| u["id"] == *id);
    let is_pending = |r: &&Value| {
        r["approval"]["state"] == "pending"
            && matches!(text(r, "status"), "submitted" | "active" | "approved")
    };
    let mut pending: Vec<&Value> = requests.iter().filter(is_pending).collect();
    pending.sort_by_key(|r| !r["emergency"].as_bool().unwrap_or(false));
    let decided: Vec<&Value> = requests
        .iter()
        .filter(|r| !is_pending(r))
        .filter(|r| filter.is_none_or(|s| text(r, "status") == s))
        .collect();
    let body = html! {
        section aria-labelledby="pending" {
            h2 #pending { (t(T::Pending)) " (" (pending.len()) ")" }
            @if pending.is_empty() {
                p.empty { (t(T::NothingPending)) }
            }
            @for r in &pending {
                @let id = text(r, "id");
                @let v = vendor(&r["vendor_id"]);
                @let u = user(&r["requester"]);
                @let emergency = r["emergency"].as_bool().unwrap_or(false);
                article class=(if emergency { "card request emergency" } else { "card request" })
                    aria-label=(text(r, "reference")) {
                    h3 {
                        (text(r, "reference")) " · " (text(r, "target")) " "
                        (level_badge(text(r, "level"), lang))
                    }
                    @if emergency {
                        p.alert {
                            (t(T::EmergencyAwaiting))
                            @if r["overdue"].as_bool().unwrap_or(false) { " — " (t(T::Overdue)) }
                        }
                    }
                    dl {
                        dt { (t(T::Vendor)) }
                        dd { (v.map_or("?", |v| text(v, "name"))) }
                        dt { (t(T::Attestation)) }
                        dd {
                            @match v {
                                Some(v) if v["qualified"].as_bool().unwrap_or(false) => {
                                    span.ok { (t(T::AttestationOk)) }
                                }
                                Some(v) => span.bad { (text(v, "attestation_problem")) },
                                None => "?",
                            }
                        }
                        dt { (t(T::Engineer)) }
                        dd { (u.map_or("?", |u| text(u, "display_name"))) " (" (u.map_or("?", |u| text(u, "username"))) ")" }
                        dt { (t(T::Window)) }
                        dd { (when(zone, &r["window_start"])) " – " (when(zone, &r["window_end"])) }
                        dt { (t(T::Reason)) }
                        dd { (text(r, "reason")) }
                        dt { (t(T::Plan)) }
                        dd { pre { (text(r, "plan")) } }
                        dt { (t(T::ApprovalCount)) }
                        dd { (r["approval"]["have"]) " / " (r["approval"]["need"]) }
                    }
                    @if decider {
                        form.decision method="post" action={ "/console/requests/" (urlencode(id)) "/approve" } {
                            input type="hidden" name="csrf" value=(f.csrf);
                            label for={ "comment-" (id) } { (t(T::Comment)) }
                            textarea id={ "comment-" (id) } name="comment" rows="2" {}
                            div.buttons {
                                button.primary type="submit" { (t(T::Approve)) }
                                button.danger type="submit"
                                    formaction={ "/console/requests/" (urlencode(id)) "/reject" } { (t(T::Reject)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="decided" {
            h2 #decided { (t(T::Decided)) }
            nav.filters aria-label=(t(T::Status)) {
                a href="/console/approvals" aria-current=[filter.is_none().then_some("page")] { (t(T::All)) }
                @for s in ["approved", "active", "completed", "rejected", "revoked", "expired", "cancelled"] {
                    a href={ "/console/approvals?status=" (s) } aria-current=[(filter == Some(s)).then_some("page")] {
                        (status_label(s, lang))
                    }
                }
            }
            table {
                thead { tr {
                    th { (t(T::Request)) } th { (t(T::Target)) } th { (t(T::Level)) }
                    th { (t(T::Vendor)) } th { (t(T::Window)) } th { (t(T::Status)) }
                } }
                tbody {
                    @for r in &decided {
                        tr {
                            td { (text(r, "reference")) }
                            td { (text(r, "target")) }
                            td { (level_badge(text(r, "level"), lang)) }
                            td { (vendor(&r["vendor_id"]).map_or("?", |v| text(v, "name"))) }
                            td { (when(zone, &r["window_start"])) " – " (when(zone, &r["window_end"])) }
                            td { (status_label(text(r, "status"), lang)) }
                        }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, page(lang, t(T::Approvals), Some(f), body))
}

/// Whether the vendor engineer can connect under `r` now, and if not, why.
fn usable_note(
    r: &Value,
    vendor: Option<&Value>,
    zone: &DisplayZone,
    lang: Lang,
) -> (bool, String) {
    let t = |k: T| k.get(lang);
    let now = Timestamp::now();
    let at = |k: &str| r[k].as_str().and_then(|s| s.parse::<Timestamp>().ok());
    let status = text(r, "status");
    if !matches!(status, "submitted" | "approved" | "active") {
        return (
            false,
            format!("{} {}", t(T::NoteClosed), status_label(status, lang)),
        );
    }
    if r["approval"]["state"] == "pending" && !r["emergency"].as_bool().unwrap_or(false) {
        let counts = format!("({}/{})", r["approval"]["have"], r["approval"]["need"]);
        return (false, format!("{} {counts}", t(T::NoteWaiting)));
    }
    if vendor.is_some_and(|v| !v["qualified"].as_bool().unwrap_or(true)) {
        let problem = vendor.map_or("", |v| text(v, "attestation_problem"));
        return (false, format!("{} ({problem})", t(T::NoteAttestation)));
    }
    match (at("window_start"), at("window_end")) {
        (Some(s), _) if now < s => (false, format!("{} {}", t(T::NoteFrom), zone.date_time(s))),
        (_, Some(e)) if now >= e => (false, t(T::NoteOver).to_owned()),
        (_, Some(e)) => (true, format!("{} {}", t(T::NoteNow), zone.date_time(e))),
        _ => (false, "?".into()),
    }
}

/// A vendor engineer's view: their vendor's requests (the API scopes them), whether each can
/// be used now and why not, and filing a new one.
fn vendor_requests(
    f: &Frame,
    zone: &DisplayZone,
    requests: &[Value],
    vendor: Option<&Value>,
) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let body = html! {
        p { (t(T::VendorNoDecisions)) }
        p { a.button.primary href="/console/requests/new" { (t(T::NewRequest)) } }
        table {
            thead { tr {
                th { (t(T::Request)) } th { (t(T::Target)) } th { (t(T::Level)) }
                th { (t(T::Window)) } th { (t(T::Reason)) } th { (t(T::Status)) } th { (t(T::CanConnect)) }
            } }
            tbody {
                @for r in requests {
                    @let (ok, note) = usable_note(r, vendor, zone, lang);
                    tr.request {
                        td { (text(r, "reference")) }
                        td { (text(r, "target")) }
                        td { (level_badge(text(r, "level"), lang)) }
                        td { (when(zone, &r["window_start"])) " – " (when(zone, &r["window_end"])) }
                        td { (text(r, "reason")) }
                        td { (status_label(text(r, "status"), lang)) }
                        td class=(if ok { "ok" } else { "bad" }) { (note) }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, page(lang, t(T::MyRequests), Some(f), body))
}

/// What the new-request form shows again after a refusal.
pub struct Draft {
    pub target: String,
    pub level: String,
    pub from: String,
    pub until: String,
    pub reason: String,
    pub plan: String,
}

pub fn new_request(f: &Frame, targets: &[Value], d: &Draft, status: StatusCode) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let body = html! {
        form.card.wide method="post" action="/console/requests/new" {
            input type="hidden" name="csrf" value=(f.csrf);
            label for="target" { (t(T::Target)) }
            select #target name="target" required {
                @for tg in targets {
                    @let name = text(tg, "name");
                    option value=(name) selected[name == d.target] { (name) }
                }
            }
            fieldset {
                legend { (t(T::Level)) }
                label { input type="radio" name="level" value="reference" checked[d.level != "change"]; " " (t(T::Reference)) }
                label { input type="radio" name="level" value="change" checked[d.level == "change"]; " " (t(T::Change)) }
            }
            label for="from" { (t(T::From)) }
            input #from type="datetime-local" name="from" value=(d.from) required;
            label for="until" { (t(T::Until)) }
            input #until type="datetime-local" name="until" value=(d.until) required;
            label for="reason" { (t(T::Reason)) }
            input #reason name="reason" value=(d.reason) required;
            label for="plan" { (t(T::Plan)) }
            textarea #plan name="plan" rows="5" { (d.plan) }
            div.buttons { button.primary type="submit" { (t(T::FileRequest)) } }
        }
    };
    respond(status, page(lang, t(T::NewRequest), Some(f), body))
}

/// Who is connected to what, with a terminate button (confirmed on the next page).
pub fn sessions(f: &Frame, zone: &DisplayZone, live: &[Value], requests: &[Value]) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let decider = f.role == "admin" || f.role == "approver";
    let now = Timestamp::now();
    let left = |s: &Value| {
        let r = requests.iter().find(|r| r["id"] == s["request_id"])?;
        let end: Timestamp = r["window_end"].as_str()?.parse().ok()?;
        Some(end.duration_since(now).as_mins().max(0))
    };
    let body = html! {
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
                        tr.session {
                            td { (text(s, "username")) }
                            td { (text(s, "target")) }
                            td { "R-" (s["request_number"]) }
                            td { (level_badge(text(s, "level"), lang)) }
                            td { (text(s, "transport")) }
                            td { (when(zone, &s["started_at"])) }
                            td {
                                (bytes(s["bytes_to_target"].as_u64().unwrap_or(0))) " / "
                                (bytes(s["bytes_from_target"].as_u64().unwrap_or(0)))
                            }
                            td { @if let Some(m) = left(s) { (m) " " (t(T::Minutes)) } }
                            td.actions {
                                @if f.role != "vendor" {
                                    a.button.watch href={ "/console/recordings/" (urlencode(text(s, "id"))) "?live=true" } {
                                        (t(T::Watch))
                                    }
                                }
                                @if decider {
                                    " "
                                    a.button.danger href={ "/console/sessions/" (urlencode(text(s, "id"))) "/terminate" } {
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

pub fn confirm_terminate(f: &Frame, s: &Value) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let body = html! {
        div.card {
            p {
                strong { (text(s, "username")) } " → " strong { (text(s, "target")) }
                " (R-" (s["request_number"]) ")"
            }
            p { (t(T::ConfirmTerminateText)) }
            form method="post" action={ "/console/sessions/" (urlencode(text(s, "id"))) "/terminate" } {
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

fn verified_badge(v: &Value, lang: Lang) -> Markup {
    let t = |k: T| k.get(lang);
    let problems = v["problems"].as_array().map_or(0, Vec::len);
    html! {
        @if v.is_null() {
            span { "?" }
        } @else if problems == 0 {
            span.ok { (t(T::Verified)) }
        } @else {
            span.bad { (t(T::Tampered)) ": " (v["problems"].as_array().map(|p| p.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("; ")).unwrap_or_default()) }
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

/// The recordings, newest first, with filters and the text search.
pub fn recordings(
    f: &Frame,
    zone: &DisplayZone,
    list: &[Value],
    filters: (Option<&str>, Option<&str>, Option<&str>),
) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let body = html! {
        (search_form(lang, ""))
        form.filters method="get" action="/console/recordings" {
            label { (t(T::Target)) " " input name="target" value=(filters.0.unwrap_or("")); }
            label { (t(T::Engineer)) " " input name="user" value=(filters.1.unwrap_or("")); }
            label { (t(T::Status)) " "
                select name="state" {
                    option value="" { (t(T::All)) }
                    @for s in ["closed", "open", "aborted"] {
                        option value=(s) selected[filters.2 == Some(s)] { (s) }
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
                        td { a href={ "/console/recordings/" (urlencode(text(m, "session"))) } { (when(zone, &m["started_at"])) } }
                        td { (text(m, "vendor_user")) }
                        td { (text(m, "target")) }
                        td { "R-" (m["request_number"]) }
                        td { (level_badge(text(m, "level"), lang)) }
                        td { (text(m, "state")) }
                        td { (m["files"].as_array().map_or(0, Vec::len)) }
                    }
                }
            }
        }
    };
    respond(StatusCode::OK, page(lang, t(T::Recordings), Some(f), body))
}

/// Where a text was typed or shown, each a link to that moment in the player.
pub fn search(f: &Frame, q: &str, hits: &[Value]) -> Response {
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
                        @let at = h["t"].as_f64().unwrap_or(0.0);
                        tr.hit {
                            td { (text(h, "vendor_user")) }
                            td { (text(h, "target")) }
                            td {
                                a href={ "/console/recordings/" (urlencode(text(h, "session"))) "?t=" (at) } {
                                    (format!("{at:.1}")) " s"
                                }
                            }
                            td { (h["source"].as_str().unwrap_or("")) }
                            td { code { (text(h, "text")) } }
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
    pub manifest: &'a Value,
    pub verification: &'a Value,
    pub session: &'a Value,
    pub report: &'a Value,
    pub screen: Option<&'a (sekisho_recorder::index::Screen, f64)>,
    pub t: f64,
    pub playing: bool,
    pub speed: f64,
    /// Watching a live session: the latest screen, refreshed every second.
    pub live: bool,
}

/// CSS classes of a terminal span: `f<n>`/`b<n>` (xterm-256 colours, styled in app.css),
/// `bold`, `cursor`. Classes, not inline styles: the CSP allows no inline style.
fn span_class(span: &sekisho_recorder::index::Span) -> String {
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

fn screen_html(s: &sekisho_recorder::index::Screen) -> Markup {
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

pub fn recording(f: &Frame, zone: &DisplayZone, v: &RecordingView<'_>) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let m = v.manifest;
    let id = urlencode(v.id);
    let here = format!("/console/recordings/{id}");
    let length = v.screen.map_or(0.0, |s| s.1);
    let step = v.speed;
    let next_t = (v.t + step).min(length);
    let open = text(m, "state") == "open";
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
    let decider = f.role == "admin" || f.role == "approver";
    let reviewed = v.session["review"] == "signed_off";
    let body = html! {
        dl {
            dt { (t(T::Engineer)) } dd { (text(m, "vendor_user")) }
            dt { (t(T::Target)) } dd { (text(m, "target")) " " (level_badge(text(m, "level"), lang)) }
            dt { (t(T::Request)) } dd { "R-" (m["request_number"]) }
            dt { (t(T::Window)) } dd { (when(zone, &m["started_at"])) " – " (when(zone, &m["ended_at"])) }
            dt { (t(T::Status)) } dd {
                (text(m, "state"))
                @if !text(m, "end_reason").is_empty() && text(m, "end_reason") != text(m, "state") {
                    " (" (text(m, "end_reason")) ")"
                }
            }
            dt { (t(T::Source)) } dd { (text(m, "source_addr")) }
            dt { "SHA-256" } dd { (verified_badge(v.verification, lang)) }
        }
        section aria-labelledby="player" {
            h2 #player { (t(T::Play)) }
            @if v.live && open {
                p.notice.live role="status" { (t(T::Watching)) }
            }
            @match v.screen {
                None => p.empty { (t(T::NoTerminal)) },
                Some((screen, _)) => {
                    (screen_html(screen))
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
                @for file in m["files"].as_array().map_or(&[][..], Vec::as_slice) {
                    a href={ (here) "/files/" (urlencode(text(file, "name"))) } download { (text(file, "name")) } " "
                    @if file["kind"] == "stream" {
                        @if let Some(c) = file["channel"].as_u64() {
                            "(" a.pcap href={ (here) "/pcap?channel=" (c) } { "pcap" } ") "
                        }
                    }
                }
                " · "
                a.bundle href={ (here) "/bundle" } { (t(T::Bundle)) }
            }
        }
        section aria-labelledby="review" {
            h2 #review { (t(T::Review)) }
            dl {
                dt { (t(T::WorkReport)) } dd { pre { (v.report.as_str().unwrap_or("—")) } }
                @if reviewed {
                    dt { (t(T::SignedOff)) } dd { (text(v.session, "reviewed_by")) " — " (text(v.session, "review_comment")) }
                }
            }
            @if decider && !reviewed && !v.session.is_null() {
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
        text(m, "target"),
        m["request_number"]
    );
    respond(
        StatusCode::OK,
        page_with(lang, &title, Some(f), body, refresh),
    )
}

/// The audit log page's inputs.
pub struct AuditView<'a> {
    pub events: &'a [Value],
    pub chain: Option<&'a Value>,
    /// kind, outcome, user, target, from, to (as typed).
    pub filters: [&'a str; 6],
    /// The API query of the filters, for the export links.
    pub export: &'a str,
    pub next: Option<&'a str>,
}

pub fn audit(f: &Frame, zone: &DisplayZone, v: &AuditView<'_>) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let [kind, outcome, user, target, from, to] = v.filters;
    let sep = if v.export.is_empty() { "?" } else { "&" };
    let body = html! {
        @if let Some(c) = v.chain {
            @if c["intact"].as_bool().unwrap_or(false) {
                p.notice.chain { (t(T::ChainIntact)) " (" (c["rows"]) ")" }
            } @else {
                p.alert.chain role="alert" { (t(T::ChainBroken)) ": " (text(c, "problem")) }
            }
        }
        form.filters method="get" action="/console/audit" {
            label { (t(T::Kind)) " " input name="kind" value=(kind) placeholder="request_decided"; }
            label { (t(T::Outcome)) " "
                select name="outcome" {
                    option value="" { (t(T::All)) }
                    @for o in ["success", "denied", "failure"] { option value=(o) selected[outcome == o] { (o) } }
                }
            }
            label { (t(T::Engineer)) " " input name="user" value=(user); }
            label { (t(T::Target)) " " input name="target" value=(target); }
            label { (t(T::From)) " " input type="datetime-local" name="from" value=(from); }
            label { (t(T::Until)) " " input type="datetime-local" name="to" value=(to); }
            button type="submit" { (t(T::Filter)) }
        }
        p {
            (t(T::Export)) ": "
            a href={ "/console/audit/export" (v.export) (sep) "format=csv" } { "CSV" } " · "
            a href={ "/console/audit/export" (v.export) (sep) "format=jsonl" } { "JSONL" }
        }
        table {
            thead { tr { th { "#" } th { (t(T::At)) } th { (t(T::Actor)) } th { (t(T::Kind)) } th { (t(T::Outcome)) } th { (t(T::Reason)) } th { (t(T::Source)) } } }
            tbody {
                @for e in v.events {
                    tr.event class=(if e["outcome"] == "success" { "" } else { "denied" }) {
                        td { (e["seq"]) }
                        td { (when(zone, &e["at"])) }
                        td { (text(e, "actor")) }
                        td { (text(e, "kind")) }
                        td { (text(e, "outcome")) }
                        td { (text(e, "reason")) }
                        td { (text(e, "source_addr")) }
                    }
                }
            }
        }
        @if let Some(next) = v.next {
            p { a href=(next) { (t(T::Older)) } }
        }
    };
    respond(StatusCode::OK, page(lang, t(T::AuditLog), Some(f), body))
}

/// What the administration page lists.
pub struct AdminView<'a> {
    pub vendors: &'a [Value],
    pub users: &'a [Value],
    pub targets: &'a [Value],
    pub checklist: &'a [Value],
}

fn csrf_field(f: &Frame) -> Markup {
    html! { input type="hidden" name="csrf" value=(f.csrf); }
}

/// Vendors (with their attestation and its expiry), engineers (enrollment codes, disable),
/// target systems (credentials write-only).
pub fn admin(f: &Frame, zone: &DisplayZone, v: &AdminView<'_>) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let soon = Timestamp::now() + jiff::SignedDuration::from_hours(24 * 30);
    let vendor_name = |id: &Value| {
        v.vendors
            .iter()
            .find(|x| x["id"] == *id)
            .map_or("?", |x| text(x, "name"))
    };
    let body = html! {
        section aria-labelledby="vendors" {
            h2 #vendors { (t(T::Vendors)) }
            table {
                thead { tr { th { (t(T::Name)) } th { (t(T::Status)) } th { (t(T::Attestation)) } } }
                tbody {
                    @for x in v.vendors {
                        @let expires = x["attestation"]["expires_at"].as_str().and_then(|s| s.parse::<Timestamp>().ok());
                        tr.vendor {
                            td { (text(x, "name")) }
                            td { (text(x, "status")) }
                            td {
                                @if x["qualified"].as_bool().unwrap_or(false) {
                                    span.ok { (t(T::AttestationOk)) }
                                } @else {
                                    span.bad { (text(x, "attestation_problem")) }
                                }
                                @if let Some(e) = expires {
                                    " · " (zone.date(e))
                                    @if e < soon { " " span.bad.expiring { (t(T::ExpiresSoon)) } }
                                }
                            }
                        }
                    }
                }
            }
            details {
                summary { (t(T::NewVendor)) }
                form.card.wide method="post" action="/console/admin/vendors" {
                    (csrf_field(f))
                    label for="vendor-name" { (t(T::Name)) }
                    input #vendor-name name="name" required;
                    label for="vendor-contact" { (t(T::Contact)) }
                    input #vendor-contact name="contact" required;
                    fieldset {
                        legend { (t(T::Attestation)) }
                        @for item in v.checklist {
                            @let key = text(item, "key");
                            label { input type="checkbox" name={ "check_" (key) } value="yes"; " " (text(item, "label")) }
                        }
                    }
                    label for="vendor-attested" { (t(T::AttestedBy)) }
                    input #vendor-attested name="attested_by" required;
                    div.buttons { button.primary type="submit" { (t(T::Create)) } }
                }
            }
        }
        section aria-labelledby="engineers" {
            h2 #engineers { (t(T::Engineers)) }
            table {
                thead { tr { th { (t(T::Username)) } th { (t(T::Vendor)) } th { (t(T::Status)) } th { "" } } }
                tbody {
                    @for u in v.users.iter().filter(|u| u["role"] == "vendor") {
                        @let id = urlencode(text(u, "id"));
                        @let active = u["status"] == "active";
                        tr.engineer {
                            td { (text(u, "username")) " (" (text(u, "display_name")) ")" }
                            td { (vendor_name(&u["vendor_id"])) }
                            td { (text(u, "status")) }
                            td.actions {
                                form.inline method="post" action={ "/console/admin/users/" (id) "/enrollment-code" } {
                                    (csrf_field(f))
                                    button type="submit" { (t(T::EnrollmentCode)) }
                                }
                                " "
                                form.inline method="post" action={ "/console/admin/users/" (id) "/status" } {
                                    (csrf_field(f))
                                    input type="hidden" name="status" value=(if active { "disabled" } else { "active" });
                                    button class=(if active { "danger" } else { "" }) type="submit" {
                                        (if active { t(T::Disable) } else { t(T::Enable) })
                                    }
                                }
                            }
                        }
                    }
                }
            }
            details {
                summary { (t(T::NewEngineer)) }
                form.card.wide method="post" action="/console/admin/engineers" {
                    (csrf_field(f))
                    label for="eng-vendor" { (t(T::Vendor)) }
                    select #eng-vendor name="vendor" required {
                        @for x in v.vendors { option value=(text(x, "id")) { (text(x, "name")) } }
                    }
                    label for="eng-username" { (t(T::Username)) }
                    input #eng-username name="username" required;
                    label for="eng-display" { (t(T::DisplayName)) }
                    input #eng-display name="display_name";
                    label for="eng-password" { (t(T::Password)) }
                    input #eng-password type="password" name="password" autocomplete="new-password" required;
                    div.buttons { button.primary type="submit" { (t(T::Create)) } }
                }
            }
        }
        section aria-labelledby="targets" {
            h2 #targets { (t(T::Targets)) }
            table {
                thead { tr { th { (t(T::Name)) } th { (t(T::Host)) } th { (t(T::Level)) } th { (t(T::HostKey)) } } }
                tbody {
                    @for x in v.targets {
                        tr.target {
                            td { (text(x, "name")) }
                            td { (text(x, "host")) ":" (x["port"]) }
                            td {
                                @for (level, label) in [("reference", T::Reference), ("change", T::Change)] {
                                    @if let Some(l) = x[level].as_object() {
                                        span class={ "badge " (level) } { (t(label)) } " "
                                        (l.get("account").and_then(Value::as_str).unwrap_or("")) " "
                                    }
                                }
                            }
                            td { code.hostkey { (x["host_key"].as_str().map_or_else(|| "—".to_owned(), |k| k.chars().take(40).collect::<String>() + "…")) } }
                        }
                    }
                }
            }
            details {
                summary { (t(T::NewTarget)) }
                form.card.wide method="post" action="/console/admin/targets" {
                    (csrf_field(f))
                    p { (t(T::WriteOnly)) }
                    label for="tg-name" { (t(T::Name)) }
                    input #tg-name name="name" required;
                    label for="tg-host" { (t(T::Host)) }
                    input #tg-host name="host" required;
                    label for="tg-port" { (t(T::Port)) }
                    input #tg-port name="port" inputmode="numeric" value="22";
                    label for="tg-hostkey" { (t(T::HostKey)) }
                    input #tg-hostkey name="host_key";
                    fieldset {
                        legend { (t(T::Reference)) }
                        label for="tg-ref-account" { (t(T::Account)) }
                        input #tg-ref-account name="reference_account";
                        label for="tg-ref-key" { (t(T::PrivateKey)) }
                        textarea #tg-ref-key name="reference_key" rows="3" autocomplete="off" {}
                    }
                    fieldset {
                        legend { (t(T::Change)) }
                        label for="tg-chg-account" { (t(T::Account)) }
                        input #tg-chg-account name="change_account";
                        label for="tg-chg-key" { (t(T::PrivateKey)) }
                        textarea #tg-chg-key name="change_key" rows="3" autocomplete="off" {}
                        label { input type="checkbox" name="file_upload" value="yes"; " " (t(T::FileUpload)) }
                        label { input type="checkbox" name="port_forwarding" value="yes"; " " (t(T::PortForwarding)) }
                        label for="tg-ports" { (t(T::AllowedPorts)) }
                        input #tg-ports name="allowed_ports";
                    }
                    div.buttons { button.primary type="submit" { (t(T::Create)) } }
                }
            }
        }
    };
    respond(StatusCode::OK, page(lang, t(T::Admin), Some(f), body))
}

/// A fresh enrollment code, shown once, with what the engineer runs.
pub fn enrollment_code(f: &Frame, zone: &DisplayZone, code: &Value) -> Response {
    let lang = f.lang;
    let t = |k: T| k.get(lang);
    let command = format!(
        "sekisho-client enroll --gateway {} --code {} --fingerprint {}",
        text(code, "gateway"),
        text(code, "code"),
        text(code, "gateway_fingerprint")
    );
    let body = html! {
        div.card.wide {
            p.alert { (t(T::EnrollmentCodeOnce)) }
            dl {
                dt { (t(T::Username)) } dd { (text(code, "username")) }
                dt { (t(T::EnrollmentCode)) } dd { code.enrollment-code { (text(code, "code")) } }
                dt { "Gateway" } dd { (text(code, "gateway")) }
                dt { "SHA-256" } dd { code { (text(code, "gateway_fingerprint")) } }
                dt { (t(T::Until)) } dd { (when(zone, &code["expires_at"])) }
            }
            pre.command { (command) }
            p { a href="/console/admin" { (t(T::Admin)) } }
        }
    };
    respond(
        StatusCode::OK,
        page(lang, t(T::EnrollmentCode), Some(f), body),
    )
}
