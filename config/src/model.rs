//! The configuration tree and its defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use sekisho_domain::policy::{ChecklistItem, default_checklist};
use sekisho_domain::user::Role;

/// `[database]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatabaseConfig {
    /// `sqlite://...` or `postgres://...`; `None` means `DATA_DIR/sekisho.db`.
    pub url: Option<String>,
    pub max_connections: u32,
}

/// `[api]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiConfig {
    pub listen: SocketAddr,
    /// HTTPS (the default). Plain HTTP is allowed only on a loopback address.
    pub tls: bool,
    /// The hospital's certificate (PEM, chain) and key; both or neither. Neither: a
    /// self-signed certificate made at first start in `DATA_DIR/keys/api-tls.crt`.
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// The TLS handshake and each request's headers must arrive within this many seconds.
    pub header_read_timeout_seconds: u32,
    /// Lifetime of a login token.
    pub token_ttl_minutes: u32,
    /// Request bodies larger than this are refused with 413.
    pub max_body_bytes: u32,
    /// Failed logins in a row before an account is locked for `lockout_minutes`.
    pub login_max_failures: u32,
    pub lockout_minutes: u32,
}

/// `[ssh]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshConfig {
    /// `false` leaves the designated client as the only way in.
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Environment variables a vendor's client may pass to the target (`*` ends a prefix).
    pub accept_env: Vec<String>,
    /// How long the gateway waits for a target's SSH server before refusing the session.
    pub connect_timeout_seconds: u32,
    /// At a level without file upload: bytes a vendor may send into commands (exec
    /// channels, shells without a terminal), per session.
    pub upload_ban_command_input_bytes: u64,
    /// At a level without file upload: bytes a vendor may type or paste into terminals,
    /// per session.
    pub upload_ban_terminal_input_bytes: u64,
    /// One terminal input of at least this many bytes is flagged as a paste in the recording.
    pub paste_flag_bytes: u64,
    /// A connection must log in within this many seconds of connecting.
    pub login_grace_seconds: u32,
    /// Connections not yet logged in, per source address.
    pub max_unauthenticated_per_source: u32,
    /// Connections not yet logged in, in all.
    pub max_unauthenticated: u32,
}

impl SshConfig {
    /// Whether the vendor's client may set `name` on the target.
    pub fn env_allowed(&self, name: &str) -> bool {
        self.accept_env.iter().any(|p| match p.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => p == name,
        })
    }
}

/// `[quic]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuicConfig {
    pub enabled: bool,
    pub listen: SocketAddr,
    /// Validity of a client certificate issued at enrollment.
    pub client_cert_days: u32,
    /// Validity of a one-time enrollment code.
    pub enrollment_code_hours: u32,
}

/// `[recordings]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordingsConfig {
    /// `None` means `DATA_DIR/recordings`.
    pub dir: Option<PathBuf>,
    /// Recordings older than this are deleted (unless under review or legal hold); 0 keeps all.
    pub retain_days: u32,
    /// Session data the relay may pass on before it reached the recording's files: if the
    /// disk fails, at most this much went through unrecorded (and the audit log says how much).
    pub in_flight_bytes: u32,
}

/// `[policy]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PolicyConfig {
    pub approvals_for_change: u8,
    pub emergency_access: bool,
    pub emergency_approval_deadline_hours: u32,
    pub max_window_hours: u32,
    /// Minutes before a window ends at which the vendor is warned.
    pub window_end_warnings_minutes: Vec<u32>,
    /// Default validity of a vendor's security attestation.
    pub attestation_validity_days: u32,
    pub checklist: Vec<ChecklistItem>,
    /// Days during which whoever issued or reset a vendor engineer's credentials may not
    /// approve that engineer's requests; 0 turns the rule off.
    pub credential_separation_days: u32,
    /// Roles whose logins need a second factor (TOTP): API and console logins, and for
    /// vendor engineers also every session (SSH keyboard-interactive, the designated client).
    pub mfa_required: Vec<Role>,
}

/// `[time]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeConfig {
    /// IANA zone for display only; everything is stored in UTC.
    pub zone: String,
    /// NTP servers (`HOST:PORT`) the clock is checked against, in order; empty: unchecked.
    pub ntp_servers: Vec<String>,
    /// The largest offset from NTP accepted.
    pub max_offset_ms: u32,
    /// How often the clock is checked.
    pub check_minutes: u32,
    /// Whether new sessions are refused while the clock is off by more than the limit.
    pub refuse_sessions_when_off: bool,
}

/// `[audit]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AuditConfig {
    /// How often each node writes a signed checkpoint of the audit chain's head to the
    /// recordings share (and once more when it stops).
    pub checkpoint_minutes: u32,
}

/// `[server]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// How long open connections may take to finish after SIGINT/SIGTERM.
    pub shutdown_grace_seconds: u32,
    /// Concurrent connections per listener.
    pub max_connections: u32,
}

/// `[nodes]`: several gateway nodes on one PostgreSQL database.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodesConfig {
    /// This node's name for people (`GET /api/v1/nodes`); the machine's name when unset.
    pub name: Option<String>,
    /// How often this node tells the database it is alive.
    pub heartbeat_seconds: u32,
    /// A node silent this long is marked down by another, which ends its open sessions as
    /// aborted and seals their recordings.
    pub down_after_seconds: u32,
}

/// `[files]`: files that cross the gateway (issue #16).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FilesConfig {
    /// ClamAV's `clamd`: a Unix socket path, or `tcp:HOST:PORT`. Uploads are scanned with it.
    pub clamd: Option<String>,
    /// A command run on each staged upload (the file's path is its last argument); exit
    /// status 0 lets the file through, 1 blocks it, anything else is a scanner failure.
    pub scan_command: Vec<String>,
    /// A scan that takes longer fails (and the upload is blocked).
    pub scan_timeout_seconds: u32,
    /// Where uploads are staged and blocked files kept; `DATA_DIR/quarantine` when unset.
    pub quarantine_dir: Option<PathBuf>,
    /// Bytes one session may have staged at once.
    pub quarantine_session_bytes: u64,
    /// Bytes staged by all sessions at once.
    pub quarantine_total_bytes: u64,
}

impl FilesConfig {
    /// Whether uploads are scanned (and so staged in quarantine first).
    pub fn scanning(&self) -> bool {
        self.clamd.is_some() || !self.scan_command.is_empty()
    }

    /// The scanners for people ("clamd at /run/clamav/clamd.ctl, scan command /usr/bin/x");
    /// `None` when uploads are not scanned.
    pub fn describe_scanners(&self) -> Option<String> {
        let mut v = vec![];
        if let Some(c) = &self.clamd {
            match c.strip_prefix("tcp:") {
                Some(addr) => v.push(format!("clamd at {addr}")),
                None => v.push(format!("clamd at {c}")),
            }
        }
        if let Some(p) = self.scan_command.first() {
            v.push(format!("scan command {p}"));
        }
        (!v.is_empty()).then(|| v.join(", "))
    }
}

/// `[log]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogConfig {
    /// A `tracing` filter, e.g. `info` or `sekisho_gateway=debug,info`.
    pub level: String,
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

/// The whole configuration tree.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub data_dir: PathBuf,
    pub database: DatabaseConfig,
    pub api: ApiConfig,
    pub ssh: SshConfig,
    pub quic: QuicConfig,
    pub recordings: RecordingsConfig,
    pub policy: PolicyConfig,
    pub time: TimeConfig,
    pub audit: AuditConfig,
    pub server: ServerConfig,
    pub nodes: NodesConfig,
    pub files: FilesConfig,
    pub notifications: NotificationsConfig,
    /// Staff from the directory; `None`: local accounts only.
    pub directory: Option<DirectoryConfig>,
    /// The audit log streamed to the SIEM; `None`: not streamed.
    pub syslog: Option<SyslogConfig>,
    pub review: ReviewConfig,
    /// `[report] font`: the TrueType/OpenType font embedded in PDF reports; `None`: the first
    /// Japanese font found among Debian's usual places.
    pub report_font: Option<std::path::PathBuf>,
    /// The metrics endpoint; `None`: no metrics listener.
    pub metrics: Option<MetricsConfig>,
    pub log: LogConfig,
}

/// `[metrics]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MetricsConfig {
    /// Where `GET /metrics` answers.
    pub listen: std::net::SocketAddr,
    /// When set, a scrape must send `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
}

fn addr(s: &str) -> SocketAddr {
    // Only called on the literals below; a bad literal would fail the tests, not users.
    s.parse().unwrap_or(SocketAddr::from(([127, 0, 0, 1], 0)))
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./sekisho-data"),
            database: DatabaseConfig {
                url: None,
                max_connections: 8,
            },
            api: ApiConfig {
                listen: addr("127.0.0.1:8443"),
                tls: true,
                tls_cert: None,
                tls_key: None,
                header_read_timeout_seconds: 30,
                token_ttl_minutes: 60,
                max_body_bytes: 1024 * 1024,
                login_max_failures: 5,
                lockout_minutes: 15,
            },
            ssh: SshConfig {
                enabled: true,
                listen: addr("127.0.0.1:2222"),
                accept_env: vec!["LANG".into(), "LC_*".into()],
                connect_timeout_seconds: 10,
                upload_ban_command_input_bytes: 64 * 1024,
                upload_ban_terminal_input_bytes: 1024 * 1024,
                paste_flag_bytes: 1024,
                login_grace_seconds: 20,
                max_unauthenticated_per_source: 8,
                max_unauthenticated: 64,
            },
            quic: QuicConfig {
                enabled: true,
                listen: addr("127.0.0.1:4433"),
                client_cert_days: 90,
                enrollment_code_hours: 24,
            },
            recordings: RecordingsConfig {
                dir: None,
                retain_days: 0,
                in_flight_bytes: 1024 * 1024,
            },
            policy: PolicyConfig {
                approvals_for_change: 1,
                emergency_access: false,
                emergency_approval_deadline_hours: 24,
                max_window_hours: 12,
                window_end_warnings_minutes: vec![5, 1],
                attestation_validity_days: 365,
                checklist: default_checklist(),
                credential_separation_days: 30,
                mfa_required: vec![],
            },
            time: TimeConfig {
                zone: "Asia/Tokyo".into(),
                ntp_servers: vec![],
                max_offset_ms: 1000,
                check_minutes: 10,
                refuse_sessions_when_off: true,
            },
            audit: AuditConfig {
                checkpoint_minutes: 10,
            },
            server: ServerConfig {
                shutdown_grace_seconds: 10,
                max_connections: 2048,
            },
            nodes: NodesConfig {
                name: None,
                heartbeat_seconds: 2,
                down_after_seconds: 30,
            },
            files: FilesConfig {
                clamd: None,
                scan_command: vec![],
                scan_timeout_seconds: 120,
                quarantine_dir: None,
                quarantine_session_bytes: 4 << 30,
                quarantine_total_bytes: 16 << 30,
            },
            notifications: NotificationsConfig::default(),
            directory: None,
            syslog: None,
            review: ReviewConfig {
                night: Some((
                    jiff::civil::Time::constant(22, 0, 0, 0),
                    jiff::civil::Time::constant(6, 0, 0, 0),
                )),
                weekends_off: true,
                holidays: vec![],
                large_download_mib: 100,
            },
            report_font: None,
            metrics: None,
            log: LogConfig {
                level: "info".into(),
                format: LogFormat::Text,
            },
        }
    }
}

// `[notifications]` (issue #17), read by `notifications.rs`.

/// How the SMTP connection is protected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpSecurity {
    /// Plain SMTP upgraded with STARTTLS (required: a server without it is an error).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Tls,
    /// No encryption: only for a relay on this machine or a test.
    None,
}

/// Where mail goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    /// A file holding the SMTP password (kept out of the configuration).
    pub password_file: Option<std::path::PathBuf>,
    /// A PEM file of the CA that signed the server's certificate (besides the system's).
    pub ca_file: Option<std::path::PathBuf>,
    /// The sender, e.g. `Sekisho <sekisho@hospital.example>`.
    pub from: String,
}

/// One webhook: a chat tool or a ticket system.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WebhookConfig {
    /// A name for people and the audit log.
    pub name: String,
    pub url: String,
    /// A file holding the HMAC-SHA256 secret the receiver shares.
    pub secret_file: std::path::PathBuf,
    /// What it is sent; empty: everything.
    pub events: Vec<sekisho_domain::notify::NotificationKind>,
}

/// `[notifications]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NotificationsConfig {
    /// Mail; `None`: nobody is emailed.
    pub smtp: Option<SmtpConfig>,
    pub webhooks: Vec<WebhookConfig>,
    /// The language of mail to people who have not chosen one (and to vendor contacts).
    pub language: sekisho_domain::notify::Language,
    /// The console's address as people reach it, for links in mail; none when unset.
    pub console_url: Option<String>,
    /// Tries before a delivery is given up (and audited).
    pub max_attempts: u32,
    /// The wait after the first failed try; it doubles after each (at most an hour).
    pub retry_seconds: u32,
    /// Days before an attestation expires on which its vendor and the admins are told.
    pub attestation_warning_days: Vec<u32>,
    /// A vendor engineer's account unused (no login, no session) this many days is reported
    /// to the admins for removal.
    pub unused_account_days: u32,
    /// A session not reviewed this many days after it ended is reported to the approvers.
    pub review_within_days: u32,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        Self {
            smtp: None,
            webhooks: vec![],
            language: sekisho_domain::notify::Language::Ja,
            console_url: None,
            max_attempts: 8,
            retry_seconds: 30,
            attestation_warning_days: vec![30, 7],
            unused_account_days: 90,
            review_within_days: 7,
        }
    }
}

impl NotificationsConfig {
    /// Whether anything is sent at all.
    pub fn enabled(&self) -> bool {
        self.smtp.is_some() || !self.webhooks.is_empty()
    }
}

/// `[review]`: what flags a session for its reviewer (issue #18).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReviewConfig {
    /// Night hours in the hospital's zone (start, end the next morning).
    pub night: Option<(jiff::civil::Time, jiff::civil::Time)>,
    /// Saturdays and Sundays are days off.
    pub weekends_off: bool,
    /// Other days off.
    pub holidays: Vec<jiff::civil::Date>,
    /// More than this from the target in one session is a large download.
    pub large_download_mib: u64,
}

/// `[syslog]`: the audit log streamed to the hospital's SIEM (issue #18), RFC 5424 over TCP
/// (RFC 6587 octet counting), with TLS (RFC 5425) unless turned off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SyslogConfig {
    /// The collector's `HOST:PORT`.
    pub address: String,
    pub tls: bool,
    /// A PEM file of the CA that signed the collector's certificate (instead of the system's).
    pub ca_file: Option<std::path::PathBuf>,
    /// The name the collector's certificate is checked against (default: the address's host).
    pub server_name: Option<String>,
    /// The facility number (10, `authpriv`, by default).
    pub facility: u8,
    pub app_name: String,
}

/// `[directory]`: staff from the hospital's LDAP or Active Directory (issue #17).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryConfig {
    /// `ldaps://HOST[:PORT]` or `ldap://HOST[:PORT]` (then with `starttls`).
    pub url: String,
    /// Upgrade an `ldap://` connection with StartTLS (required for anything but a test).
    pub starttls: bool,
    /// A PEM file of the CA that signed the directory's certificate (instead of the system's).
    pub ca_file: Option<std::path::PathBuf>,
    /// The account Sekisho searches with; anonymous when unset.
    pub bind_dn: Option<String>,
    pub bind_password_file: Option<std::path::PathBuf>,
    /// Where people are searched.
    pub base: String,
    /// The search filter, `{username}` replaced by the escaped login name.
    pub user_filter: String,
    /// Group DNs whose members get each role (the first that matches, in this order).
    pub admin_group: Option<String>,
    pub approver_group: Option<String>,
    pub auditor_group: Option<String>,
    pub timeout_seconds: u32,
}
