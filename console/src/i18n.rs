//! The console's words in English and Japanese. Every visible string is here, so a missing
//! translation is a compile error rather than an English word on a Japanese page.

use sekisho_domain::request::RequestStatus;

/// The page language: from the `lang` cookie, else the browser's `Accept-Language`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lang {
    En,
    Ja,
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Ja => "ja",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "en" => Some(Lang::En),
            "ja" => Some(Lang::Ja),
            _ => None,
        }
    }

    /// The first of `ja` or `en` in an `Accept-Language` header (Japanese for a Japanese
    /// browser, English otherwise).
    pub fn from_accept_language(header: &str) -> Self {
        let mut best = (Lang::En, -1.0f32);
        for part in header.split(',') {
            let mut it = part.trim().split(';');
            let tag = it.next().unwrap_or("").trim().to_ascii_lowercase();
            let q = it
                .find_map(|p| p.trim().strip_prefix("q="))
                .and_then(|q| q.parse::<f32>().ok())
                .unwrap_or(1.0);
            let lang = if tag == "ja" || tag.starts_with("ja-") {
                Some(Lang::Ja)
            } else if tag == "en" || tag.starts_with("en-") {
                Some(Lang::En)
            } else {
                None
            };
            if let Some(l) = lang
                && q > best.1
            {
                best = (l, q);
            }
        }
        best.0
    }

    pub fn other(self) -> Self {
        match self {
            Lang::En => Lang::Ja,
            Lang::Ja => Lang::En,
        }
    }
}

/// A visible string.
#[derive(Clone, Copy, Debug)]
pub enum T {
    Title,
    Approvals,
    LiveSessions,
    Logout,
    LoginTitle,
    Username,
    Password,
    LogIn,
    SwitchLanguage,
    Pending,
    NothingPending,
    Decided,
    All,
    Request,
    Vendor,
    Engineer,
    Target,
    Level,
    Reference,
    Change,
    Window,
    Reason,
    Plan,
    Status,
    ApprovalCount,
    Attestation,
    AttestationOk,
    Emergency,
    EmergencyAwaiting,
    Overdue,
    Comment,
    Approve,
    Reject,
    Since,
    Bytes,
    TimeLeft,
    Terminate,
    NoSessions,
    GatewayNodes,
    NodeUp,
    NodeLate,
    NodeStopped,
    NodeDown,
    LiveCount,
    ConfirmTerminate,
    ConfirmTerminateText,
    Cancel,
    DoneApproved,
    DoneRejected,
    DoneTerminated,
    VendorNoDecisions,
    Minutes,
    Ended,
    Error,
    Transport,
    MyRequests,
    NewRequest,
    FileRequest,
    From,
    Until,
    CanConnect,
    NoteWaiting,
    NoteFrom,
    NoteNow,
    NoteOver,
    NoteClosed,
    NoteAttestation,
    DoneFiled,
    Recordings,
    AuditLog,
    Search,
    SearchHint,
    NoHits,
    OpenIt,
    Started,
    Files,
    Verified,
    Tampered,
    Transcript,
    Play,
    Pause,
    Speed,
    Seek,
    Review,
    SignOff,
    SignedOff,
    WorkReport,
    NoTerminal,
    Kind,
    Outcome,
    Actor,
    Source,
    Older,
    Export,
    ChainIntact,
    ChainBroken,
    Filter,
    DoneSignedOff,
    At,
    Watch,
    Watching,
    Admin,
    Vendors,
    Engineers,
    Targets,
    NewVendor,
    NewEngineer,
    NewTarget,
    Name,
    Contact,
    AttestedBy,
    Create,
    DisplayName,
    EnrollmentCode,
    EnrollmentCodeOnce,
    Disable,
    Enable,
    Host,
    Port,
    HostKey,
    Account,
    PrivateKey,
    WriteOnly,
    FileUpload,
    FileDownload,
    FilesTransferred,
    OneTimeCode,
    AuthenticatorCode,
    MfaEnrol,
    MfaAbout,
    MfaStart,
    MfaScan,
    MfaSecret,
    MfaConfirm,
    MfaOn,
    MfaRecovery,
    Notifications,
    NotificationsAbout,
    NotificationsEmpty,
    NotificationsFailedCount,
    NotificationPending,
    NotificationDelivered,
    NotificationFailed,
    Recipient,
    Subject,
    Attempts,
    Quarantine,
    QuarantineAbout,
    QuarantineEmpty,
    Delete,
    NoFilesTransferred,
    Direction,
    Path,
    Size,
    Time,
    Upload,
    Download,
    UploadsScanned,
    UploadsNotScanned,
    PortForwarding,
    AllowedPorts,
    RdpPort,
    Site,
    RemoteDesktop,
    RdpClipboard,
    RdpDrives,
    ExpiresSoon,
    Assignments,
    Lines,
    LinesAbout,
    NewLine,
    LineRoute,
    RouteSekisho,
    RouteException,
    Owner,
    Location,
    Device,
    Firmware,
    FirmwareUpdated,
    Measures,
    Notes,
    LastReviewed,
    RecordReview,
    ReviewNote,
    NeverReviewed,
    ReviewOverdue,
    MeasuresMissing,
    FirmwareUnknown,
    Retired,
    LinesDue,
    AssignmentsAbout,
    NewAssignment,
    Contract,
    Sla,
    Boundary,
    ContractEnds,
    ContractLastDay,
    ContractEnded,
    NoEndDate,
    Unassign,
    Done,
    Bundle,
}

impl T {
    pub fn get(self, lang: Lang) -> &'static str {
        let (en, ja) = match self {
            T::Title => ("Sekisho", "関所"),
            T::Approvals => ("Approvals", "承認"),
            T::LiveSessions => ("Live sessions", "接続中のセッション"),
            T::Logout => ("Log out", "ログアウト"),
            T::LoginTitle => ("Log in to Sekisho", "関所にログイン"),
            T::Username => ("Username", "ユーザー名"),
            T::Password => ("Password", "パスワード"),
            T::LogIn => ("Log in", "ログイン"),
            T::SwitchLanguage => ("日本語", "English"),
            T::Pending => ("Waiting for a decision", "承認待ち"),
            T::NothingPending => (
                "No request is waiting for a decision.",
                "承認待ちの作業申請はありません。",
            ),
            T::Decided => ("Decided requests", "処理済みの作業申請"),
            T::All => ("All", "すべて"),
            T::Request => ("Request", "申請"),
            T::Vendor => ("Vendor", "保守業者"),
            T::Engineer => ("Engineer", "作業者"),
            T::Target => ("Target", "対象システム"),
            T::Level => ("Access", "作業区分"),
            T::Reference => ("Reference (look only)", "参照"),
            T::Change => ("Change", "変更"),
            T::Window => ("Window", "作業時間帯"),
            T::Reason => ("Reason", "理由"),
            T::Plan => ("Work plan", "作業計画"),
            T::Status => ("State", "状態"),
            T::ApprovalCount => ("Approvals", "承認数"),
            T::Attestation => ("Security attestation", "セキュリティ誓約"),
            T::AttestationOk => ("meets the checklist", "要件を満たしています"),
            T::Emergency => ("Emergency", "緊急"),
            T::EmergencyAwaiting => (
                "Emergency access: already usable, awaiting after-the-fact approval",
                "緊急対応：承認前に利用可能。事後承認が必要です",
            ),
            T::Overdue => (
                "after-the-fact approval is overdue",
                "事後承認の期限を過ぎています",
            ),
            T::Comment => ("Comment", "コメント"),
            T::Approve => ("Approve", "承認する"),
            T::Reject => ("Reject", "却下する"),
            T::Since => ("Since", "開始"),
            T::Bytes => ("Bytes (to / from target)", "転送量（送信／受信）"),
            T::TimeLeft => ("Window left", "残り時間"),
            T::Terminate => ("Terminate", "切断する"),
            T::NoSessions => ("Nobody is connected.", "接続中のセッションはありません。"),
            T::GatewayNodes => ("Gateway nodes", "ゲートウェイノード"),
            T::NodeUp => ("up", "稼働中"),
            T::NodeLate => ("late (no heartbeat)", "応答遅延"),
            T::NodeStopped => ("stopped", "停止"),
            T::NodeDown => (
                "down (sessions taken over)",
                "ダウン（セッションは打ち切り済み）",
            ),
            T::LiveCount => ("connected", "接続中"),
            T::ConfirmTerminate => ("Terminate this session?", "このセッションを切断しますか？"),
            T::ConfirmTerminateText => (
                "The vendor is disconnected within a second and sees that an approver ended the session.",
                "1秒以内に切断され、保守業者には承認者が切断したことが表示されます。",
            ),
            T::Cancel => ("Cancel", "キャンセル"),
            T::DoneApproved => ("Approved.", "承認しました。"),
            T::DoneRejected => ("Rejected.", "却下しました。"),
            T::DoneTerminated => (
                "The session is being terminated.",
                "セッションを切断しています。",
            ),
            T::VendorNoDecisions => (
                "Your vendor's requests. Hospital IT approves or rejects them.",
                "自社の作業申請です。承認・却下は病院の情報システム担当が行います。",
            ),
            T::Minutes => ("min", "分"),
            T::Ended => ("ended", "終了"),
            T::Error => ("Error", "エラー"),
            T::Transport => ("Via", "接続方法"),
            T::MyRequests => ("Your requests", "作業申請"),
            T::NewRequest => ("New request", "新しい作業申請"),
            T::FileRequest => ("File the request", "申請する"),
            T::From => ("From", "開始"),
            T::Until => ("Until", "終了"),
            T::CanConnect => ("Can you connect?", "接続できるか"),
            T::NoteWaiting => ("Not yet: waiting for approval", "まだです：承認待ち"),
            T::NoteFrom => ("Not yet: usable from", "まだです：利用開始"),
            T::NoteNow => ("Yes, until", "はい：終了"),
            T::NoteOver => ("No: the window is over", "いいえ：作業時間帯が終わりました"),
            T::NoteClosed => ("No: the request is", "いいえ：申請の状態は"),
            T::NoteAttestation => (
                "No: your company's security attestation does not meet the checklist",
                "いいえ：自社のセキュリティ誓約が要件を満たしていません",
            ),
            T::Recordings => ("Recordings", "操作記録"),
            T::AuditLog => ("Audit log", "監査ログ"),
            T::Search => ("Search", "検索"),
            T::SearchHint => (
                "Text typed or shown on screen, e.g. a command",
                "入力または画面に表示された文字列（コマンドなど）",
            ),
            T::NoHits => (
                "Not found in any recording.",
                "どの記録にも見つかりません。",
            ),
            T::OpenIt => ("Open", "開く"),
            T::Started => ("Started", "開始"),
            T::Files => ("Files", "ファイル"),
            T::Verified => (
                "Verified: every file matches its signed manifest",
                "検証済み：すべてのファイルが署名付きマニフェストと一致します",
            ),
            T::Tampered => ("Verification FAILED", "検証に失敗しました"),
            T::Transcript => ("Text transcript", "テキスト記録"),
            T::Play => ("Play", "再生"),
            T::Pause => ("Pause", "一時停止"),
            T::Speed => ("Speed", "速度"),
            T::Seek => ("Go to", "移動"),
            T::Review => ("Review", "作業内容の確認"),
            T::SignOff => ("Sign off the review", "確認済みにする"),
            T::SignedOff => ("Signed off by", "確認者"),
            T::WorkReport => ("Vendor's work report", "保守業者の作業報告"),
            T::NoTerminal => (
                "This session has no terminal recording (exec, sftp or tunnel streams only).",
                "このセッションには端末の記録がありません（コマンド実行・ファイル転送・トンネルのみ）。",
            ),
            T::Kind => ("Event", "イベント"),
            T::Outcome => ("Outcome", "結果"),
            T::Actor => ("Who", "実行者"),
            T::Source => ("From", "接続元"),
            T::Older => ("Older events", "さらに古いイベント"),
            T::Export => ("Export", "エクスポート"),
            T::ChainIntact => (
                "Hash chain intact",
                "ハッシュチェーンは改ざんされていません",
            ),
            T::ChainBroken => ("Hash chain BROKEN", "ハッシュチェーンが壊れています"),
            T::Filter => ("Filter", "絞り込み"),
            T::DoneSignedOff => ("Review signed off.", "確認済みにしました。"),
            T::At => ("At", "日時"),
            T::Admin => ("Administration", "管理"),
            T::Vendors => ("Vendors", "保守業者"),
            T::Engineers => ("Vendor engineers", "作業者"),
            T::Targets => ("Target systems", "対象システム"),
            T::NewVendor => ("Register a vendor", "保守業者を登録"),
            T::NewEngineer => ("Register an engineer", "作業者を登録"),
            T::NewTarget => ("Register a target system", "対象システムを登録"),
            T::Name => ("Name", "名称"),
            T::Contact => ("Contact person", "担当者"),
            T::AttestedBy => ("Attested by", "誓約者"),
            T::Create => ("Register", "登録する"),
            T::DisplayName => ("Display name", "表示名"),
            T::EnrollmentCode => ("Enrollment code", "登録コード"),
            T::EnrollmentCodeOnce => (
                "Give this to the engineer once, by a channel you trust. It is not shown again.",
                "信頼できる方法で作業者に一度だけ伝えてください。再表示はできません。",
            ),
            T::Disable => ("Disable", "無効にする"),
            T::Enable => ("Enable", "有効にする"),
            T::Host => ("Host", "ホスト"),
            T::Port => ("SSH port", "SSHポート"),
            T::HostKey => (
                "Host key (optional; pinned on first use if empty)",
                "ホスト鍵（空欄なら初回接続時に固定）",
            ),
            T::Account => ("Account", "アカウント"),
            T::PrivateKey => ("Private key", "秘密鍵"),
            T::WriteOnly => (
                "Credentials are write-only: stored sealed, never shown again.",
                "認証情報は書き込み専用です：暗号化して保存され、表示されることはありません。",
            ),
            T::FileUpload => ("File upload allowed", "ファイルのアップロードを許可"),
            T::FilesTransferred => ("Files transferred", "転送されたファイル"),
            T::OneTimeCode => (
                "One-time code (if your account has a second factor)",
                "ワンタイムコード（二要素認証を設定している場合）",
            ),
            T::AuthenticatorCode => (
                "The code your authenticator shows",
                "認証アプリに表示されたコード",
            ),
            T::MfaEnrol => ("Set up a second factor", "二要素認証の設定"),
            T::MfaAbout => (
                "A second factor protects your account even if your password leaks: an authenticator app on your phone shows a new 6-digit code every 30 seconds.",
                "パスワードが漏えいしてもアカウントを守るため、スマートフォンの認証アプリが30秒ごとに表示する6桁のコードを併用します。",
            ),
            T::MfaStart => ("Start", "開始"),
            T::MfaScan => (
                "Scan this code with your authenticator app (or type the secret below), then enter the code it shows, with your password again.",
                "認証アプリでこのQRコードを読み取るか、下の秘密鍵を入力してください。表示されたコードとパスワードをもう一度入力します。",
            ),
            T::MfaSecret => ("Secret:", "秘密鍵:"),
            T::MfaConfirm => ("Turn on", "有効にする"),
            T::MfaOn => ("Your second factor is on.", "二要素認証を有効にしました。"),
            T::MfaRecovery => (
                "Keep these recovery codes somewhere safe: each one logs you in once if you lose your phone. They are shown only now.",
                "以下の回復コードを安全な場所に保管してください。端末を紛失した場合、各コードで一度だけログインできます。表示はこの一度限りです。",
            ),
            T::Notifications => ("Notifications", "通知"),
            T::NotificationsAbout => (
                "Mail and webhooks Sekisho sent, or is still trying to send (each is tried again with a growing wait). Those it gave up on are listed first and in the audit log: these people were not told.",
                "Sekisho が送信した、または送信を再試行中のメールと Webhook です（再試行の間隔は徐々に長くなります）。送信をあきらめたものを先頭に表示し、監査ログにも記録します。これらの宛先には通知が届いていません。",
            ),
            T::NotificationsEmpty => (
                "Nothing has been sent yet.",
                "送信した通知はまだありません。",
            ),
            T::NotificationsFailedCount => ("Notifications given up:", "送信をあきらめた通知:"),
            T::NotificationPending => ("waiting to be sent", "送信待ち"),
            T::NotificationDelivered => ("delivered", "送信済み"),
            T::NotificationFailed => ("given up", "送信失敗"),
            T::Recipient => ("To", "宛先"),
            T::Subject => ("Subject", "件名"),
            T::Attempts => ("Tries", "試行回数"),
            T::Quarantine => ("Quarantine", "隔離ファイル"),
            T::QuarantineAbout => (
                "Uploads a scanner blocked: they never reached the target. Downloading one to inspect it and deleting it are audited.",
                "検査で遮断されたアップロードです（ターゲットには書き込まれていません）。調査のためのダウンロードと削除は監査ログに記録されます。",
            ),
            T::QuarantineEmpty => (
                "No blocked file is kept.",
                "保管中の遮断ファイルはありません。",
            ),
            T::Delete => ("Delete", "削除"),
            T::NoFilesTransferred => (
                "No file crossed in this session.",
                "このセッションで転送されたファイルはありません。",
            ),
            T::Direction => ("Direction", "方向"),
            T::Path => ("Path", "パス"),
            T::Size => ("Bytes", "バイト数"),
            T::Time => ("Time", "時刻"),
            T::Upload => ("upload", "アップロード"),
            T::Download => ("download", "ダウンロード"),
            T::UploadsScanned => (
                "Uploads are scanned in quarantine by",
                "アップロードは隔離領域で検査されます:",
            ),
            T::UploadsNotScanned => (
                "Uploads are not scanned: no scanner is configured ([files] clamd or scan_command), so allowed uploads go straight to the target (logged with their hash).",
                "アップロードは検査されません（[files] の clamd / scan_command が未設定）。許可されたアップロードは直接ターゲットに書き込まれます（ハッシュ値は記録されます）。",
            ),
            T::FileDownload => (
                "File download allowed (logged with its hash)",
                "ファイルのダウンロードを許可（ハッシュ値を記録）",
            ),
            T::PortForwarding => ("Port forwarding allowed", "ポート転送を許可"),
            T::Site => (
                "Site (hospital group; empty: the group's own)",
                "拠点（病院グループ。空欄：グループ共通）",
            ),
            T::RdpPort => (
                "Remote Desktop port (empty: none)",
                "リモートデスクトップのポート（空欄：なし）",
            ),
            T::RemoteDesktop => ("Remote Desktop allowed", "リモートデスクトップを許可"),
            T::RdpClipboard => (
                "Desktop clipboard allowed",
                "リモートデスクトップのクリップボードを許可",
            ),
            T::RdpDrives => ("Drive redirection allowed", "ドライブのリダイレクトを許可"),
            T::AllowedPorts => (
                "Allowed ports (comma-separated)",
                "許可するポート（カンマ区切り）",
            ),
            T::ExpiresSoon => ("expires within 30 days", "30日以内に期限切れ"),
            T::Assignments => ("Who maintains what", "保守担当と契約"),
            T::Lines => ("External lines", "外部接続回線"),
            T::LinesAbout => (
                "Every line or device through which a vendor reaches the hospital, Sekisho's and the exceptions. Review each at least once a year.",
                "保守業者が院内に接続するすべての回線・機器（関所経由および例外）。少なくとも年に一度確認してください。",
            ),
            T::NewLine => ("Add a line", "回線を登録"),
            T::LineRoute => ("Route", "経路"),
            T::RouteSekisho => ("through Sekisho", "関所経由"),
            T::RouteException => (
                "exception (not through Sekisho)",
                "例外（関所を経由しない）",
            ),
            T::Owner => ("Owner", "管理責任者"),
            T::Location => ("Location", "設置場所"),
            T::Device => ("Device", "機器"),
            T::Firmware => ("Firmware version", "ファームウェア版数"),
            T::FirmwareUpdated => ("Firmware last updated", "ファームウェア最終更新日"),
            T::Measures => ("Vendor's security measures", "保守業者のセキュリティ対策"),
            T::Notes => ("Notes", "備考"),
            T::LastReviewed => ("Last reviewed", "最終確認日"),
            T::RecordReview => ("Record a review", "確認を記録"),
            T::ReviewNote => ("What was checked", "確認内容"),
            T::NeverReviewed => ("never reviewed", "未確認"),
            T::ReviewOverdue => ("not reviewed for a year", "1年以上未確認"),
            T::MeasuresMissing => (
                "no security measures submitted",
                "セキュリティ対策の提出なし",
            ),
            T::FirmwareUnknown => ("firmware update date unknown", "ファームウェア更新日不明"),
            T::Retired => ("retired", "廃止"),
            T::LinesDue => ("Lines due for review:", "確認が必要な回線:"),
            T::AssignmentsAbout => (
                "A vendor's engineers see, request and reach only the systems assigned to their vendor, while its contract runs.",
                "保守業者の作業者は、契約期間中、割り当てられた対象システムだけを閲覧・申請・接続できます。",
            ),
            T::NewAssignment => (
                "Assign a vendor to a system",
                "保守業者を対象システムに割り当て",
            ),
            T::Contract => ("Maintenance contract", "保守契約"),
            T::Sla => ("Service level (SLA)", "サービスレベル（SLA）"),
            T::Boundary => ("Responsibility boundary", "責任分界点"),
            T::ContractEnds => ("Contract ends", "契約終了"),
            T::ContractLastDay => (
                "Last day of the contract (empty: no end date)",
                "契約の最終日（空欄なら期限なし）",
            ),
            T::ContractEnded => ("ended", "終了"),
            T::NoEndDate => ("no end date", "期限なし"),
            T::Unassign => ("Remove", "割り当てを解除"),
            T::Done => ("Done.", "完了しました。"),
            T::Bundle => (
                "Bundle for auditors (offline verification)",
                "監査用アーカイブ（オフライン検証用）",
            ),
            T::Watch => ("Watch", "画面を見る"),
            T::Watching => (
                "Live: the screen refreshes every second (read-only).",
                "ライブ表示：1秒ごとに更新されます（閲覧のみ）。",
            ),
            T::DoneFiled => (
                "Filed. Hospital IT will approve or reject it.",
                "申請しました。病院の情報システム担当が承認または却下します。",
            ),
        };
        match lang {
            Lang::En => en,
            Lang::Ja => ja,
        }
    }
}

/// A work request's state, in words: every state has both, or this does not compile.
pub fn request_status(status: RequestStatus, lang: Lang) -> &'static str {
    let (en, ja) = match status {
        RequestStatus::Submitted => ("submitted", "申請中"),
        RequestStatus::Approved => ("approved", "承認済"),
        RequestStatus::Rejected => ("rejected", "却下"),
        RequestStatus::Cancelled => ("cancelled", "取下げ"),
        RequestStatus::Active => ("in progress", "作業中"),
        RequestStatus::Completed => ("completed", "完了"),
        RequestStatus::Expired => ("expired", "期限切れ"),
        RequestStatus::Revoked => ("revoked", "承認取消"),
    };
    match lang {
        Lang::En => en,
        Lang::Ja => ja,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_language_picks_the_preferred_of_ja_and_en() {
        assert_eq!(Lang::from_accept_language("ja,en-US;q=0.9"), Lang::Ja);
        assert_eq!(
            Lang::from_accept_language("en-US,en;q=0.9,ja;q=0.8"),
            Lang::En
        );
        assert_eq!(Lang::from_accept_language("fr-FR,ja;q=0.5"), Lang::Ja);
        assert_eq!(Lang::from_accept_language("de"), Lang::En);
        assert_eq!(Lang::from_accept_language(""), Lang::En);
    }
}
