//! Sekisho's configuration: one TOML file, typed, documented, with a default for everything.
//!
//! [`Config::default`] is what `sekisho serve` runs with when no file is given.
//! [`Config::parse`] reads a file and reports *every* problem at once (unknown keys, bad
//! values, conflicts), each naming its key and line, so an operator fixes a file in one pass.
//! [`DEFAULT_FILE`] is the fully commented default file `sekisho config default` prints.

mod directory;
mod error;
mod metrics;
mod model;
mod notifications;
mod reader;
mod review;
mod syslog;

use std::path::{Path, PathBuf};

use jiff::SignedDuration;
use sekisho_domain::policy::Policy;
use sekisho_domain::zone::DisplayZone;

pub use error::{ConfigError, Problem};
pub use model::{
    ApiConfig, AuditConfig, Config, DatabaseConfig, FilesConfig, LogConfig, LogFormat, NodesConfig,
    PolicyConfig, QuicConfig, RecordingsConfig, ServerConfig, SshConfig, TimeConfig,
};
pub use model::{
    DirectoryConfig, MetricsConfig, NotificationsConfig, SmtpConfig, SmtpSecurity, SyslogConfig,
    WebhookConfig,
};
use reader::Reader;

/// The commented default configuration (`sekisho config default`).
pub const DEFAULT_FILE: &str = include_str!("default.toml");

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
            "audit",
            "server",
            "nodes",
            "files",
            "notifications",
            "directory",
            "syslog",
            "review",
            "report",
            "metrics",
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
                "mfa_required",
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
            mfa_required: r.get(s, "mfa_required", Reader::roles, d.policy.mfa_required),
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

        let s = r.section(
            "time",
            &[
                "zone",
                "ntp_servers",
                "max_offset_ms",
                "check_minutes",
                "refuse_sessions_when_off",
            ],
        );
        let time = TimeConfig {
            zone: r.get(s, "zone", Reader::zone, d.time.zone),
            ntp_servers: r.get(s, "ntp_servers", Reader::host_ports, d.time.ntp_servers),
            max_offset_ms: r.get(
                s,
                "max_offset_ms",
                |v| Reader::int(v, 1, 3_600_000),
                d.time.max_offset_ms,
            ),
            check_minutes: r.get(
                s,
                "check_minutes",
                |v| Reader::int(v, 1, 24 * 60),
                d.time.check_minutes,
            ),
            refuse_sessions_when_off: r.get(
                s,
                "refuse_sessions_when_off",
                Reader::bool,
                d.time.refuse_sessions_when_off,
            ),
        };

        let s = r.section("audit", &["checkpoint_minutes"]);
        let audit = AuditConfig {
            checkpoint_minutes: r.get(
                s,
                "checkpoint_minutes",
                |v| Reader::int(v, 1, 24 * 60),
                d.audit.checkpoint_minutes,
            ),
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

        let s = r.section(
            "nodes",
            &["name", "heartbeat_seconds", "down_after_seconds"],
        );
        let nodes = NodesConfig {
            name: r.opt(s, "name", Reader::non_empty_string).or(d.nodes.name),
            heartbeat_seconds: r.get(
                s,
                "heartbeat_seconds",
                |v| Reader::int(v, 1, 60),
                d.nodes.heartbeat_seconds,
            ),
            down_after_seconds: r.get(
                s,
                "down_after_seconds",
                |v| Reader::int(v, 3, 3600),
                d.nodes.down_after_seconds,
            ),
        };
        if nodes.down_after_seconds < 3 * nodes.heartbeat_seconds {
            r.problem_at(
                s,
                "down_after_seconds",
                format!(
                    "must be at least three heartbeats ({} seconds): a node is not down because one heartbeat was late",
                    3 * nodes.heartbeat_seconds
                ),
            );
        }

        let s = r.section(
            "files",
            &[
                "clamd",
                "scan_command",
                "scan_timeout_seconds",
                "quarantine_dir",
                "quarantine_session_bytes",
                "quarantine_total_bytes",
            ],
        );
        let files = FilesConfig {
            clamd: r
                .opt(s, "clamd", Reader::non_empty_string)
                .or(d.files.clamd),
            scan_command: r.get(s, "scan_command", Reader::command, d.files.scan_command),
            scan_timeout_seconds: r.get(
                s,
                "scan_timeout_seconds",
                |v| Reader::int(v, 1, 3600),
                d.files.scan_timeout_seconds,
            ),
            quarantine_dir: r
                .opt(s, "quarantine_dir", Reader::path)
                .or(d.files.quarantine_dir),
            quarantine_session_bytes: r.get(
                s,
                "quarantine_session_bytes",
                |v| Reader::int(v, 1024 * 1024, i64::MAX),
                d.files.quarantine_session_bytes,
            ),
            quarantine_total_bytes: r.get(
                s,
                "quarantine_total_bytes",
                |v| Reader::int(v, 1024 * 1024, i64::MAX),
                d.files.quarantine_total_bytes,
            ),
        };
        if files.quarantine_session_bytes > files.quarantine_total_bytes {
            r.problem_at(
                s,
                "quarantine_session_bytes",
                "must not be larger than quarantine_total_bytes".into(),
            );
        }

        let notifications = notifications::read(&r);
        let directory = directory::read(&r);
        let syslog = syslog::read(&r);
        let review = review::read(&r, d.review.clone());
        let report_font = review::read_report_font(&r);
        let metrics = metrics::read(&r);

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
            audit,
            server,
            nodes,
            files,
            notifications,
            directory,
            syslog,
            review,
            report_font,
            metrics,
            log,
        };
        // Listeners that would collide.
        let mut listeners = vec![("api.listen", config.api.listen)];
        if config.ssh.enabled {
            listeners.push(("ssh.listen", config.ssh.listen));
        }
        if let Some(m) = &config.metrics {
            listeners.push(("metrics.listen", m.listen));
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

    pub fn quarantine_dir(&self) -> PathBuf {
        self.files
            .quarantine_dir
            .clone()
            .unwrap_or_else(|| self.data_dir.join("quarantine"))
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

    /// What flags a session for its reviewer, and its review deadline.
    pub fn review_policy(&self) -> sekisho_domain::review::ReviewPolicy {
        sekisho_domain::review::ReviewPolicy {
            night: self.review.night,
            weekends: self.review.weekends_off,
            holidays: self.review.holidays.clone(),
            large_download_bytes: self.review.large_download_mib.saturating_mul(1 << 20),
            deadline: SignedDuration::from_hours(
                24 * i64::from(self.notifications.review_within_days),
            ),
        }
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
