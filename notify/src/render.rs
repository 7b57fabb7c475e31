//! What a notification says, in Japanese and in English: a subject line, a text body with a
//! link to the console page, and the JSON a webhook receives.

use sekisho_domain::notify::{Language, NotificationKind};
use sekisho_domain::request::{RequestStatus, WorkRequest};
use sekisho_domain::vendor::Vendor;
use sekisho_domain::zone::DisplayZone;
use serde_json::{Value, json};

/// One notification's content in one language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Text {
    pub subject: String,
    pub body: String,
}

/// What a notification is about, with what it needs to say it.
#[derive(Clone, Debug)]
pub enum Subject<'a> {
    Request {
        kind: NotificationKind,
        request: &'a WorkRequest,
        vendor: &'a str,
        requester: &'a str,
    },
    Session {
        kind: NotificationKind,
        session: String,
        request: &'a WorkRequest,
        vendor: &'a str,
        /// How it ended, for `session_ended`.
        how: Option<String>,
    },
    Attestation {
        vendor: &'a Vendor,
        expires_at: jiff::Timestamp,
        /// Days left; `None` once expired.
        days_left: Option<u32>,
    },
    /// A vendor engineer's account nobody has used for `days` days.
    Account {
        username: &'a str,
        vendor: &'a str,
        last_seen: Option<jiff::Timestamp>,
        days: u32,
    },
    /// A session's recording nobody has reviewed.
    Recording {
        session: String,
        reference: String,
        target: &'a str,
        engineer: &'a str,
        ended_at: jiff::Timestamp,
    },
}

impl Subject<'_> {
    pub fn kind(&self) -> NotificationKind {
        match self {
            Subject::Request { kind, .. } | Subject::Session { kind, .. } => *kind,
            Subject::Attestation { days_left, .. } => match days_left {
                Some(_) => NotificationKind::AttestationExpiring,
                None => NotificationKind::AttestationExpired,
            },
            Subject::Account { .. } => NotificationKind::AccountUnused,
            Subject::Recording { .. } => NotificationKind::RecordingUnreviewed,
        }
    }

    /// The console page to open, from `base` (`https://host:port`).
    fn link(&self, base: Option<&str>) -> Option<String> {
        let base = base?;
        Some(match self {
            Subject::Request {
                kind: NotificationKind::RequestDecided,
                ..
            } => format!("{base}/console"),
            Subject::Request { .. } => format!("{base}/console/approvals"),
            Subject::Session { session, .. } => format!("{base}/console/recordings/{session}"),
            Subject::Attestation { .. } => format!("{base}/console/admin/vendors"),
            Subject::Account { .. } => format!("{base}/console/admin/engineers"),
            Subject::Recording { session, .. } => format!("{base}/console/recordings/{session}"),
        })
    }

    /// The subject line and the body in `lang`.
    pub fn text(&self, lang: Language, zone: &DisplayZone, console: Option<&str>) -> Text {
        let ja = lang == Language::Ja;
        let (subject, mut lines) = match self {
            Subject::Request {
                kind,
                request: r,
                vendor,
                requester,
            } => {
                let reference = r.reference();
                let target = &r.target_name;
                let subject = match (kind, ja) {
                    (NotificationKind::RequestFiled, true) => {
                        format!("作業申請 {reference}（{target}）が承認を待っています")
                    }
                    (NotificationKind::RequestFiled, false) => {
                        format!("Work request {reference} ({target}) waits for your decision")
                    }
                    (NotificationKind::EmergencyAccess, true) => {
                        format!("緊急アクセス {reference}（{target}）: 事後承認が必要です")
                    }
                    (NotificationKind::EmergencyAccess, false) => format!(
                        "Emergency access {reference} ({target}): after-the-fact approval needed"
                    ),
                    (NotificationKind::EmergencyApprovalOverdue, true) => {
                        format!("緊急作業 {reference}（{target}）の事後承認が期限を過ぎています")
                    }
                    (NotificationKind::EmergencyApprovalOverdue, false) => format!(
                        "Emergency work {reference} ({target}): after-the-fact approval is overdue"
                    ),
                    (_, true) => format!(
                        "作業申請 {reference}（{target}）は{}",
                        decision(r.status, true)
                    ),
                    (_, false) => format!(
                        "Work request {reference} ({target}) was {}",
                        decision(r.status, false)
                    ),
                };
                let window = format!(
                    "{} – {}",
                    zone.date_time(r.window.start),
                    zone.date_time(r.window.end)
                );
                let lines = if ja {
                    vec![
                        format!("申請: {reference}"),
                        format!("対象システム: {target}"),
                        format!("区分: {}", level(r, true)),
                        format!("業者: {vendor}（申請者 {requester}）"),
                        format!("作業時間帯: {window}"),
                        format!("理由: {}", r.reason),
                    ]
                } else {
                    vec![
                        format!("Request: {reference}"),
                        format!("Target: {target}"),
                        format!("Level: {}", level(r, false)),
                        format!("Vendor: {vendor} (filed by {requester})"),
                        format!("Window: {window}"),
                        format!("Reason: {}", r.reason),
                    ]
                };
                (subject, lines)
            }
            Subject::Session {
                kind,
                session,
                request: r,
                vendor,
                how,
            } => {
                let target = &r.target_name;
                let started = *kind == NotificationKind::SessionStarted;
                let subject = match (started, ja) {
                    (true, true) => format!("{vendor} が {target} で作業を開始しました"),
                    (true, false) => format!("{vendor} started a session on {target}"),
                    (false, true) => format!("{vendor} の {target} での作業が終了しました"),
                    (false, false) => format!("{vendor}'s session on {target} ended"),
                };
                let mut lines = vec![
                    format!("{}: {session}", if ja { "セッション" } else { "Session" }),
                    format!("{}: {}", if ja { "申請" } else { "Request" }, r.reference()),
                ];
                if let Some(how) = how {
                    lines.push(format!("{}: {how}", if ja { "終了" } else { "Ended" }));
                }
                (subject, lines)
            }
            Subject::Attestation {
                vendor,
                expires_at,
                days_left,
            } => {
                let date = zone.date(*expires_at);
                let name = &vendor.name;
                let subject = match (days_left, ja) {
                    (Some(d), true) => {
                        format!(
                            "{name} のセキュリティ申告は {date} に期限切れになります（あと{d}日）"
                        )
                    }
                    (Some(d), false) => {
                        format!("{name}'s security attestation expires on {date} (in {d} days)")
                    }
                    (None, true) => format!(
                        "{name} のセキュリティ申告は期限切れです: 更新されるまで接続できません"
                    ),
                    (None, false) => format!(
                        "{name}'s security attestation has expired: it cannot connect until it is renewed"
                    ),
                };
                let lines = if ja {
                    vec![
                        format!("業者: {name}"),
                        format!("期限: {date}"),
                        "更新: 業者の担当者が新しい申告を提出し、病院の管理者が登録します。"
                            .to_owned(),
                    ]
                } else {
                    vec![
                        format!("Vendor: {name}"),
                        format!("Expires: {date}"),
                        "To renew: the vendor submits a new attestation and the hospital's admin records it."
                            .to_owned(),
                    ]
                };
                (subject, lines)
            }
            Subject::Account {
                username,
                vendor,
                last_seen,
                days,
            } => {
                let seen = last_seen.map_or_else(
                    || {
                        if ja {
                            "一度もありません".to_owned()
                        } else {
                            "never".to_owned()
                        }
                    },
                    |t| zone.date(t),
                );
                if ja {
                    (
                        format!("{vendor} の保守アカウント {username} は{days}日以上使われていません"),
                        vec![
                            format!("アカウント: {username}（{vendor}）"),
                            format!("最後の利用: {seen}"),
                            "不要であれば無効化または削除してください（使われないアカウントは速やかに削除することが求められています）。".to_owned(),
                        ],
                    )
                } else {
                    (
                        format!("{vendor}'s maintenance account {username} has not been used for {days} days"),
                        vec![
                            format!("Account: {username} ({vendor})"),
                            format!("Last used: {seen}"),
                            "If it is no longer needed, disable or remove it (unused accounts are to be removed promptly).".to_owned(),
                        ],
                    )
                }
            }
            Subject::Recording {
                session,
                reference,
                target,
                engineer,
                ended_at,
            } => {
                let ended = zone.date_time(*ended_at);
                if ja {
                    (
                        format!("{target} での作業（{reference}）の記録がまだ確認されていません"),
                        vec![
                            format!("セッション: {session}"),
                            format!("作業者: {engineer}"),
                            format!("終了: {ended}"),
                        ],
                    )
                } else {
                    (
                        format!(
                            "The recording of the work on {target} ({reference}) has not been reviewed"
                        ),
                        vec![
                            format!("Session: {session}"),
                            format!("Engineer: {engineer}"),
                            format!("Ended: {ended}"),
                        ],
                    )
                }
            }
        };
        if let Some(link) = self.link(console) {
            lines.push(String::new());
            lines.push(link);
        }
        lines.push(String::new());
        lines.push(if ja {
            "— Sekisho（病院の保守接続ゲートウェイ）からの自動送信です。".to_owned()
        } else {
            "— sent automatically by Sekisho, the hospital's maintenance gateway.".to_owned()
        });
        Text {
            subject: format!("[Sekisho] {subject}"),
            body: lines.join("\n"),
        }
    }

    /// What a webhook receives besides the id and kind: the text for chat tools and the
    /// facts for ticket systems.
    pub fn data(&self, text: &Text) -> Value {
        let mut data = match self {
            Subject::Request {
                request: r, vendor, ..
            } => json!({
                "request": {"id": r.id.to_string(), "reference": r.reference(), "status": r.status.as_str(),
                            "target": r.target_name, "level": r.level.as_str(), "emergency": r.emergency,
                            "window_start": r.window.start.to_string(), "window_end": r.window.end.to_string()},
                "vendor": vendor,
            }),
            Subject::Session {
                session,
                request: r,
                vendor,
                how,
                ..
            } => json!({
                "session": session, "request": {"id": r.id.to_string(), "reference": r.reference()},
                "target": r.target_name, "vendor": vendor, "how": how,
            }),
            Subject::Attestation {
                vendor,
                expires_at,
                days_left,
            } => json!({
                "vendor": {"id": vendor.id.to_string(), "name": vendor.name},
                "expires_at": expires_at.to_string(), "days_left": days_left,
            }),
            Subject::Account {
                username,
                vendor,
                last_seen,
                days,
            } => json!({
                "account": username, "vendor": vendor, "days": days,
                "last_seen": last_seen.map(|t| t.to_string()),
            }),
            Subject::Recording {
                session,
                reference,
                target,
                engineer,
                ended_at,
            } => json!({
                "session": session, "request": {"reference": reference}, "target": target,
                "engineer": engineer, "ended_at": ended_at.to_string(),
            }),
        };
        data["text"] = json!(text.subject);
        data
    }
}

fn decision(status: RequestStatus, ja: bool) -> &'static str {
    match (status, ja) {
        (RequestStatus::Rejected, true) => "却下されました",
        (RequestStatus::Rejected, false) => "rejected",
        (_, true) => "承認されました",
        (_, false) => "approved",
    }
}

fn level(r: &WorkRequest, ja: bool) -> &'static str {
    use sekisho_domain::target::AccessLevel;
    match (r.level, ja) {
        (AccessLevel::Reference, true) => "参照のみ",
        (AccessLevel::Change, true) => "変更あり",
        (AccessLevel::Reference, false) => "reference (look only)",
        (AccessLevel::Change, false) => "change",
    }
}
