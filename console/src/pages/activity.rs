//! What the vendor did in a session, on its review page beside the plan (issue #18): time
//! outside the window, the channels opened, the commands typed (each a link that seeks the
//! player to its moment) and what the gateway refused.

use maud::{Markup, html};
use sekisho_approval_api::api::reviews::{ReviewItem, SessionActivity};
use sekisho_domain::zone::DisplayZone;

use super::layout::when;
use crate::i18n::Lang;
use crate::i18n::activity::{A, shown};

fn duration(seconds: i64, lang: Lang) -> String {
    let a = |k: A| k.get(lang);
    if seconds < 60 {
        format!("{seconds} {}", a(A::Seconds))
    } else {
        format!("{} {}", seconds / 60, a(A::Minutes))
    }
}

fn kind(k: &str, lang: Lang) -> &str {
    let word = match k {
        "terminal" => A::KindTerminal,
        "exec" => A::KindExec,
        "sftp" => A::KindSftp,
        "tcp" => A::KindTcp,
        "rdp" => A::KindRdp,
        other => return other,
    };
    word.get(lang)
}

fn source(s: &str, lang: Lang) -> &str {
    let word = match s {
        "input" => A::SourceInput,
        "command" => A::SourceCommand,
        "clipboard" => A::SourceClipboard,
        "flag" => A::SourceFlag,
        other => return other,
    };
    word.get(lang)
}

/// The section; `here` is the recording page (links seek its player).
pub fn section(
    zone: &DisplayZone,
    lang: Lang,
    here: &str,
    item: Option<&ReviewItem>,
    activity: Option<&SessionActivity>,
) -> Markup {
    let a = |k: A| k.get(lang);
    html! {
        h3 #activity { (a(A::WhatHappened)) }
        @if let Some(item) = item {
            p.outside-window {
                (a(A::OutsideWindowFor)) ": "
                @if item.outside_window_seconds > 0 {
                    span.bad { (duration(item.outside_window_seconds, lang)) }
                } @else {
                    (a(A::InsideWindow))
                }
            }
        }
        @if let Some(act) = activity {
            @if !act.recorded {
                p.empty { (a(A::NotRecorded)) }
            }
            h4 { (a(A::ChannelsOpened)) }
            @if act.channels.is_empty() {
                p.empty { (a(A::NoChannels)) }
            } @else {
                table.channels {
                    thead { tr {
                        th { "#" } th { (a(A::Kind)) } th { (a(A::Detail)) }
                        th { (a(A::From)) } th { (a(A::Until)) }
                    } }
                    tbody {
                        @for c in &act.channels {
                            tr.channel data-kind=(c.kind) {
                                td { (c.channel.map(|n| n.to_string()).unwrap_or_default()) }
                                td { (kind(&c.kind, lang)) }
                                td { code { (c.detail) } }
                                td {
                                    @if let Some(t) = c.first_t {
                                        a href={ (here) "?t=" (format!("{t:.1}")) } { (when(zone, c.first_at)) }
                                    } @else { "—" }
                                }
                                td { (when(zone, c.last_at)) }
                            }
                        }
                    }
                }
            }
            h4 { (a(A::Typed)) }
            @if !act.indexed && act.recorded {
                p.empty { (a(A::NotIndexed)) }
            } @else if act.typed.is_empty() {
                p.empty { (a(A::NothingTyped)) }
            } @else {
                @if act.typed_total > act.typed.len() {
                    p.truncated { (shown(act.typed.len(), act.typed_total, lang)) }
                }
                ol.typed {
                    @for x in &act.typed {
                        li data-source=(x.source) {
                            a href={ (here) "?t=" (format!("{:.1}", x.t)) } { (when(zone, Some(x.at))) }
                            " " span.source { (source(&x.source, lang)) } " "
                            code { (x.text) }
                        }
                    }
                }
            }
            h4 { (a(A::Refused)) }
            @if act.refused.is_empty() {
                p.empty { (a(A::NothingRefused)) }
            } @else {
                ul.refused {
                    @for r in &act.refused {
                        li.bad {
                            (when(zone, Some(r.at))) " " code { (r.channel.as_str()) }
                            @if let Some(c) = r.code { " (" (c.as_str()) ")" }
                            " — " (r.detail)
                        }
                    }
                }
            }
        }
    }
}
