//! The words of a session's activity on its review page (what the vendor did, beside the
//! plan): kept apart from the main list so each file stays readable.

use super::Lang;

/// A visible string about a session's activity.
#[derive(Clone, Copy, Debug)]
pub enum A {
    WhatHappened,
    OutsideWindowFor,
    InsideWindow,
    Minutes,
    Seconds,
    ChannelsOpened,
    NoChannels,
    Kind,
    Detail,
    From,
    Until,
    Typed,
    NothingTyped,
    NotIndexed,
    NotRecorded,
    Refused,
    NothingRefused,
    SourceInput,
    SourceCommand,
    SourceClipboard,
    SourceFlag,
    KindTerminal,
    KindExec,
    KindSftp,
    KindTcp,
    KindRdp,
}

impl A {
    pub fn get(self, lang: Lang) -> &'static str {
        let (en, ja) = match self {
            A::WhatHappened => ("What happened", "実施内容"),
            A::OutsideWindowFor => (
                "Time outside the request's window",
                "申請した時間帯の外での作業時間",
            ),
            A::InsideWindow => ("none: inside the window", "なし（時間帯内）"),
            A::Minutes => ("min", "分"),
            A::Seconds => ("s", "秒"),
            A::ChannelsOpened => ("Channels opened", "開かれたチャネル"),
            A::NoChannels => (
                "No channel was recorded.",
                "記録されたチャネルはありません。",
            ),
            A::Kind => ("Kind", "種類"),
            A::Detail => ("Detail", "内容"),
            A::From => ("First data", "最初の通信"),
            A::Until => ("Last data", "最後の通信"),
            A::Typed => ("Commands typed", "入力されたコマンド"),
            A::NothingTyped => ("Nothing was typed.", "入力はありません。"),
            A::NotIndexed => (
                "The recording has no index yet (it is built when the recording closes).",
                "録画の索引はまだありません（録画の終了時に作成されます）。",
            ),
            A::NotRecorded => (
                "No recording of this session is kept (removed by retention).",
                "このセッションの録画は保存されていません（保存期間により削除）。",
            ),
            A::Refused => ("Refused by the gateway", "ゲートウェイが拒否した操作"),
            A::NothingRefused => ("Nothing was refused.", "拒否された操作はありません。"),
            A::SourceInput => ("typed", "入力"),
            A::SourceCommand => ("command", "コマンド実行"),
            A::SourceClipboard => ("clipboard", "クリップボード"),
            A::SourceFlag => ("flag", "注意"),
            A::KindTerminal => ("terminal", "端末"),
            A::KindExec => ("command", "コマンド実行"),
            A::KindSftp => ("file transfer (sftp)", "ファイル転送（sftp）"),
            A::KindTcp => ("TCP connection", "TCP接続"),
            A::KindRdp => ("remote desktop", "リモートデスクトップ"),
        };
        match lang {
            Lang::En => en,
            Lang::Ja => ja,
        }
    }
}

/// `2000 of 2513 shown` / `2513件中2000件を表示`.
pub fn shown(n: usize, total: usize, lang: Lang) -> String {
    match lang {
        Lang::En => format!("{n} of {total} shown; the transcript and the index have all."),
        Lang::Ja => format!("{total}件中{n}件を表示。全件は画面記録と索引にあります。"),
    }
}
