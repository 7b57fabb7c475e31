//! Sekisho's configuration: one TOML file, typed, documented, with a default for everything.
//!
//! [`Config::default`] is what `sekisho serve` runs with when no file is given.
//! [`Config::parse`] reads a file and reports *every* problem at once (unknown keys, bad
//! values, conflicts), each naming its key and line, so an operator fixes a file in one pass.
//! [`DEFAULT_FILE`] is the fully commented default file `sekisho config default` prints.

mod reader;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use sekisho_domain::policy::{ChecklistItem, Policy, default_checklist};
use sekisho_domain::zone::DisplayZone;

use reader::Reader;

/// The commented default configuration (`sekisho config default`).
pub const DEFAULT_FILE: &str = include_str!("default.toml");

/// One problem found in a configuration file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line of the offending key or value, when known.
    pub line: Option<usize>,
    /// Dotted key, e.g. `api.listen`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: `{}`: {}", self.key, self.message),
            None => write!(f, "`{}`: {}", self.key, self.message),
        }
    }
}

/// Why a configuration could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}", render_problems(.path, .problems))]
    Invalid {
        path: Option<PathBuf>,
        problems: Vec<Problem>,
    },
}

fn render_problems(path: &Option<PathBuf>, problems: &[Problem]) -> String {
    let name = path
        .as_ref()
        .map_or_else(|| "configuration".to_owned(), |p| p.display().to_string());
    let mut out = format!(
        "{name}: {} problem{}",
        problems.len(),
        if problems.len() == 1 { "" } else { "s" }
    );
    for p in problems {
        out.push_str("\n  ");
        out.push_str(&p.to_string());
    }
    out
}

impl ConfigError {
    /// The problems found, empty for a read error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Read { .. } => &[],
            ConfigError::Invalid { problems, .. } => problems,
        }
    }
}

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
}

/// `[time]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeConfig {
    /// IANA zone for display only; everything is stored in UTC.
    pub zone: String,
}

/// `[server]`
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerConfig {
    /// How long open connections may take to finish after SIGINT/SIGTERM.
    pub shutdown_grace_seconds: u32,
    /// Concurrent connections per listener.
    pub max_connections: u32,
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
    pub server: ServerConfig,
    pub log: LogConfig,
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
            },
            time: TimeConfig {
                zone: "Asia/Tokyo".into(),
            },
            server: ServerConfig {
                shutdown_grace_seconds: 10,
                max_connections: 512,
            },
            log: LogConfig {
                level: "info".into(),
                format: LogFormat::Text,
            },
        }
    }
}

impl Config {
    /// Reads and validates a file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Self::parse(&text).map_err(|problems| ConfigError::Invalid {
            path: Some(path.to_owned()),
            problems,
        })
    }

    /// The file at `path`, or the defaults when there is none.
    pub fn load_or_default(path: Option<&Path>) -> Result<Self, ConfigError> {
        match path {
            Some(p) => Self::load(p),
            None => Ok(Self::default()),
        }
    }

    /// Parses TOML text; on failure returns every problem found.
    pub fn parse(text: &str) -> Result<Self, Vec<Problem>> {
        let r = Reader::new(text)?;
        let d = Config::default();
        r.known_root(&[
            "data_dir",
            "database",
            "api",
            "ssh",
            "quic",
            "recordings",
            "policy",
            "time",
            "server",
            "log",
        ]);
        let data_dir = r.root_value("data_dir", Reader::path).unwrap_or(d.data_dir);

        let s = r.section("database", &["url", "max_connections"]);
        let database = DatabaseConfig {
            url: r.opt(s, "url", Reader::database_url).or(d.database.url),
            max_connections: r.get(
                s,
                "max_connections",
                |v| Reader::int(v, 1, 1000),
                d.database.max_connections,
            ),
        };

        let s = r.section(
            "api",
            &[
                "listen",
                "tls",
                "tls_cert",
                "tls_key",
                "header_read_timeout_seconds",
                "token_ttl_minutes",
                "max_body_bytes",
                "login_max_failures",
                "lockout_minutes",
            ],
        );
        let api = ApiConfig {
            listen: r.get(s, "listen", Reader::socket_addr, d.api.listen),
            tls: r.get(s, "tls", Reader::bool, d.api.tls),
            tls_cert: r.opt(s, "tls_cert", Reader::path),
            tls_key: r.opt(s, "tls_key", Reader::path),
            header_read_timeout_seconds: r.get(
                s,
                "header_read_timeout_seconds",
                |v| Reader::int(v, 1, 300),
                d.api.header_read_timeout_seconds,
            ),
            token_ttl_minutes: r.get(
                s,
                "token_ttl_minutes",
                |v| Reader::int(v, 1, 24 * 60),
                d.api.token_ttl_minutes,
            ),
            max_body_bytes: r.get(
                s,
                "max_body_bytes",
                |v| Reader::int(v, 1024, 64 * 1024 * 1024),
                d.api.max_body_bytes,
            ),
            login_max_failures: r.get(
                s,
                "login_max_failures",
                |v| Reader::int(v, 1, 100),
                d.api.login_max_failures,
            ),
            lockout_minutes: r.get(
                s,
                "lockout_minutes",
                |v| Reader::int(v, 1, 24 * 60),
                d.api.lockout_minutes,
            ),
        };

        if !api.tls && !api.listen.ip().is_loopback() {
            r.problem_at(
                s,
                "tls",
                format!(
                    "plain HTTP is allowed only on a loopback address, not {}: passwords and session cookies would cross the network in clear; set tls = true",
                    api.listen
                ),
            );
        }
        if api.tls_cert.is_some() != api.tls_key.is_some() {
            r.problem_at(
                s,
                if api.tls_cert.is_some() {
                    "tls_cert"
                } else {
                    "tls_key"
                },
                "give both tls_cert and tls_key, or neither (a self-signed certificate is made)"
                    .into(),
            );
        }

        let s = r.section(
            "ssh",
            &[
                "enabled",
                "listen",
                "accept_env",
                "connect_timeout_seconds",
                "upload_ban_command_input_bytes",
                "upload_ban_terminal_input_bytes",
                "paste_flag_bytes",
                "login_grace_seconds",
                "max_unauthenticated_per_source",
                "max_unauthenticated",
            ],
        );
        let ssh = SshConfig {
            enabled: r.get(s, "enabled", Reader::bool, d.ssh.enabled),
            listen: r.get(s, "listen", Reader::socket_addr, d.ssh.listen),
            accept_env: r.get(s, "accept_env", Reader::env_patterns, d.ssh.accept_env),
            connect_timeout_seconds: r.get(
                s,
                "connect_timeout_seconds",
                |v| Reader::int(v, 1, 300),
                d.ssh.connect_timeout_seconds,
            ),
            upload_ban_command_input_bytes: r.get(
                s,
                "upload_ban_command_input_bytes",
                |v| Reader::int(v, 0, 1 << 30),
                d.ssh.upload_ban_command_input_bytes,
            ),
            upload_ban_terminal_input_bytes: r.get(
                s,
                "upload_ban_terminal_input_bytes",
                |v| Reader::int(v, 0, 1 << 30),
                d.ssh.upload_ban_terminal_input_bytes,
            ),
            paste_flag_bytes: r.get(
                s,
                "paste_flag_bytes",
                |v| Reader::int(v, 1, 1 << 30),
                d.ssh.paste_flag_bytes,
            ),
            login_grace_seconds: r.get(
                s,
                "login_grace_seconds",
                |v| Reader::int(v, 1, 600),
                d.ssh.login_grace_seconds,
            ),
            max_unauthenticated_per_source: r.get(
                s,
                "max_unauthenticated_per_source",
                |v| Reader::int(v, 1, 10_000),
                d.ssh.max_unauthenticated_per_source,
            ),
            max_unauthenticated: r.get(
                s,
                "max_unauthenticated",
                |v| Reader::int(v, 1, 100_000),
                d.ssh.max_unauthenticated,
            ),
        };

        let s = r.section(
            "quic",
            &[
                "enabled",
                "listen",
                "client_cert_days",
                "enrollment_code_hours",
            ],
        );
        let quic = QuicConfig {
            enabled: r.get(s, "enabled", Reader::bool, d.quic.enabled),
            listen: r.get(s, "listen", Reader::socket_addr, d.quic.listen),
            client_cert_days: r.get(
                s,
                "client_cert_days",
                |v| Reader::int(v, 1, 825),
                d.quic.client_cert_days,
            ),
            enrollment_code_hours: r.get(
                s,
                "enrollment_code_hours",
                |v| Reader::int(v, 1, 24 * 14),
                d.quic.enrollment_code_hours,
            ),
        };

        let s = r.section("recordings", &["dir", "retain_days", "in_flight_bytes"]);
        let recordings = RecordingsConfig {
            dir: r.opt(s, "dir", Reader::path).or(d.recordings.dir),
            retain_days: r.get(
                s,
                "retain_days",
                |v| Reader::int(v, 0, 365 * 100),
                d.recordings.retain_days,
            ),
            in_flight_bytes: r.get(
                s,
                "in_flight_bytes",
                |v| Reader::int(v, 64 * 1024, 256 * 1024 * 1024),
                d.recordings.in_flight_bytes,
            ),
        };

        let s = r.section(
            "policy",
            &[
                "approvals_for_change",
                "emergency_access",
                "emergency_approval_deadline_hours",
                "max_window_hours",
                "window_end_warnings_minutes",
                "attestation_validity_days",
                "checklist",
                "credential_separation_days",
            ],
        );
        let policy = PolicyConfig {
            approvals_for_change: r.get(
                s,
                "approvals_for_change",
                |v| Reader::int(v, 1, 10),
                d.policy.approvals_for_change,
            ),
            emergency_access: r.get(
                s,
                "emergency_access",
                Reader::bool,
                d.policy.emergency_access,
            ),
            emergency_approval_deadline_hours: r.get(
                s,
                "emergency_approval_deadline_hours",
                |v| Reader::int(v, 1, 24 * 30),
                d.policy.emergency_approval_deadline_hours,
            ),
            max_window_hours: r.get(
                s,
                "max_window_hours",
                |v| Reader::int(v, 1, 24 * 31),
                d.policy.max_window_hours,
            ),
            window_end_warnings_minutes: r.get(
                s,
                "window_end_warnings_minutes",
                |v| Reader::int_list(v, 1, 24 * 60),
                d.policy.window_end_warnings_minutes,
            ),
            attestation_validity_days: r.get(
                s,
                "attestation_validity_days",
                |v| Reader::int(v, 1, 365 * 5),
                d.policy.attestation_validity_days,
            ),
            checklist: r.checklist(s).unwrap_or(d.policy.checklist),
            credential_separation_days: r.get(
                s,
                "credential_separation_days",
                |v| Reader::int(v, 0, 365 * 5),
                d.policy.credential_separation_days,
            ),
        };
        if let Some(max) = policy.window_end_warnings_minutes.iter().max()
            && u64::from(*max) >= u64::from(policy.max_window_hours) * 60
        {
            r.problem_at(
                s,
                "window_end_warnings_minutes",
                format!("a warning {max} minutes before the end is longer than the longest window ({} hours)", policy.max_window_hours),
            );
        }

        let s = r.section("time", &["zone"]);
        let time = TimeConfig {
            zone: r.get(s, "zone", Reader::zone, d.time.zone),
        };

        let s = r.section("server", &["shutdown_grace_seconds", "max_connections"]);
        let server = ServerConfig {
            shutdown_grace_seconds: r.get(
                s,
                "shutdown_grace_seconds",
                |v| Reader::int(v, 0, 600),
                d.server.shutdown_grace_seconds,
            ),
            max_connections: r.get(
                s,
                "max_connections",
                |v| Reader::int(v, 1, 100_000),
                d.server.max_connections,
            ),
        };

        let s = r.section("log", &["level", "format"]);
        let log = LogConfig {
            level: r.get(s, "level", Reader::non_empty_string, d.log.level),
            format: r.get(s, "format", Reader::log_format, d.log.format),
        };

        let config = Config {
            data_dir,
            database,
            api,
            ssh,
            quic,
            recordings,
            policy,
            time,
            server,
            log,
        };
        // Listeners that would collide.
        let mut listeners = vec![("api.listen", config.api.listen)];
        if config.ssh.enabled {
            listeners.push(("ssh.listen", config.ssh.listen));
        }
        for (i, (key, a)) in listeners.iter().enumerate() {
            if let Some((other, _)) = listeners[..i].iter().find(|(_, b)| b == a && a.port() != 0) {
                r.problem_key(key, format!("{a} is already used by `{other}`"));
            }
        }
        r.finish(config)
    }

    /// The database URL in effect.
    pub fn database_url(&self) -> String {
        match &self.database.url {
            Some(url) => url.clone(),
            None => format!("sqlite://{}", self.data_dir.join("sekisho.db").display()),
        }
    }

    pub fn recordings_dir(&self) -> PathBuf {
        self.recordings
            .dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("recordings"))
    }

    /// The zone for messages; validated at parse time, so the fallback is never used in practice.
    pub fn display_zone(&self) -> DisplayZone {
        DisplayZone::named(&self.time.zone).unwrap_or_else(|_| DisplayZone::utc())
    }

    /// The rule settings the domain consults.
    pub fn domain_policy(&self) -> Policy {
        let p = &self.policy;
        Policy {
            approvals_for_change: p.approvals_for_change,
            emergency_access: p.emergency_access,
            emergency_approval_deadline: SignedDuration::from_hours(i64::from(
                p.emergency_approval_deadline_hours,
            )),
            max_window: SignedDuration::from_hours(i64::from(p.max_window_hours)),
            checklist: p.checklist.clone(),
            credential_separation: SignedDuration::from_hours(
                24 * i64::from(p.credential_separation_days),
            ),
        }
    }
}

#[cfg(test)]
mod tests;
