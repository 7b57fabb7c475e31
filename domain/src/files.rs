//! Files that cross the gateway: what is logged of each, and what a level lets through.
//!
//! Every file a vendor uploads or downloads over SFTP (and so `scp` in its modern form) is
//! logged with its direction, path on the target, size and the SHA-256 of the bytes that
//! crossed. A hash is given only when those bytes form the file from its first byte on, in
//! order: reads or writes out of order, or with gaps, are logged as such, never with a wrong
//! hash.

use serde::{Deserialize, Serialize};

use crate::target::LevelPolicy;

/// Which way a file crossed.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Vendor → target.
    Upload,
    /// Target → vendor.
    Download,
}

impl Direction {
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upload => "upload",
            Direction::Download => "download",
        }
    }
}

/// How a transfer ended.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The file was closed normally (for an upload: it reached the target).
    Completed,
    /// The scanner found something, or could not scan: the file never reached the target.
    Blocked,
    /// The level does not allow it (a download where downloads are denied, over the limit).
    Refused,
    /// The target refused or failed it (permissions, disk full, …).
    Failed,
    /// The channel ended while the file was still open.
    Incomplete,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Completed => "completed",
            Outcome::Blocked => "blocked",
            Outcome::Refused => "refused",
            Outcome::Failed => "failed",
            Outcome::Incomplete => "incomplete",
        }
    }
}

/// One file that crossed (or tried to).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileRecord {
    pub direction: Direction,
    /// The path as the vendor named it to the target.
    pub path: String,
    /// Bytes that crossed (for a blocked upload: the bytes staged in quarantine).
    pub bytes: u64,
    /// SHA-256 (hex) of the file's bytes from the first on; `None` when they did not cross
    /// in order (see `sequential`) or nothing crossed.
    pub sha256: Option<String>,
    /// Whether the bytes crossed from offset 0, in order, without gaps.
    pub sequential: bool,
    /// Microseconds since the epoch.
    pub started_at_us: i64,
    pub ended_at_us: i64,
    pub outcome: Outcome,
    /// The reason of a refusal, a block or a failure, for people.
    pub detail: Option<String>,
    /// The quarantine entry of a blocked upload.
    pub quarantine: Option<String>,
}

/// How uploads are handled at a level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadMode {
    /// No file may be written.
    Deny,
    /// Written to the target as they arrive, logged (no scanner configured: the admin chose it).
    Direct,
    /// Staged on the gateway, scanned, and only then written to the target.
    Quarantine,
}

/// Uploads at `policy`, with or without a scanner configured.
pub fn upload_mode(policy: &LevelPolicy, scanner: bool) -> UploadMode {
    match (policy.file_upload, scanner) {
        (false, _) => UploadMode::Deny,
        (true, false) => UploadMode::Direct,
        (true, true) => UploadMode::Quarantine,
    }
}

/// What a level allows of downloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DownloadMode {
    Deny,
    /// Allowed, up to this many bytes per file when set.
    Allow(Option<u64>),
}

pub fn download_mode(policy: &LevelPolicy) -> DownloadMode {
    if policy.file_download {
        DownloadMode::Allow(policy.download_max_bytes)
    } else {
        DownloadMode::Deny
    }
}

/// Which side of the legacy scp protocol a command runs on the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ScpMode {
    /// `scp -t PATH`: the target receives (an upload).
    Sink,
    /// `scp -f PATH`: the target sends (a download).
    Source,
}

/// The legacy scp command in an exec command line (`scp -t /tmp/x`, `scp -r -f /var/log`),
/// and the path it names. Read as a shell would split it, roughly: the first `scp` whose
/// flags include `t` or `f`.
pub fn scp_command(cmd: &str) -> Option<(ScpMode, String)> {
    let words = crate::upload::shell_words(cmd);
    words.iter().enumerate().find_map(|(i, w)| {
        if crate::upload::program(w) != "scp" {
            return None;
        }
        let rest = &words[i + 1..];
        let flags: Vec<&&str> = rest.iter().take_while(|a| a.starts_with('-')).collect();
        let path = rest.get(flags.len()).map(|p| (*p).to_owned())?;
        let short = |c: char| {
            flags
                .iter()
                .any(|a| !a.starts_with("--") && a[1..].contains(c))
        };
        if short('t') {
            Some((ScpMode::Sink, path))
        } else if short('f') {
            Some((ScpMode::Source, path))
        } else {
            None
        }
    })
}

/// Whether a read of `len` bytes at `offset` stays within `limit` (a file's first `limit`
/// bytes may be read; a read reaching past them is refused whole).
pub fn read_within(limit: Option<u64>, offset: u64, len: u64) -> bool {
    limit.is_none_or(|l| offset.saturating_add(len) <= l)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn level(upload: bool, download: bool, max: Option<u64>) -> LevelPolicy {
        LevelPolicy {
            account: "maint".into(),
            ssh: true,
            allowed_ports: vec![],
            port_forwarding: false,
            file_upload: upload,
            file_download: download,
            download_max_bytes: max,
            rdp: false,
            rdp_clipboard: false,
            rdp_drives: false,
        }
    }

    #[test]
    fn uploads_go_through_quarantine_only_where_a_scanner_is_configured() {
        assert_eq!(
            upload_mode(&level(false, true, None), true),
            UploadMode::Deny
        );
        assert_eq!(
            upload_mode(&level(true, true, None), false),
            UploadMode::Direct
        );
        assert_eq!(
            upload_mode(&level(true, true, None), true),
            UploadMode::Quarantine
        );
    }

    #[test]
    fn legacy_scp_commands_are_read_with_their_path() {
        assert_eq!(
            scp_command("scp -t /tmp/x"),
            Some((ScpMode::Sink, "/tmp/x".into()))
        );
        assert_eq!(
            scp_command("scp -r -p -f /var/log/app"),
            Some((ScpMode::Source, "/var/log/app".into()))
        );
        assert_eq!(
            scp_command("sh -c '/usr/bin/scp -pf /etc/hostname'"),
            Some((ScpMode::Source, "/etc/hostname".into()))
        );
        assert_eq!(scp_command("scp -t"), None);
        assert_eq!(scp_command("ls -t /tmp"), None);
        assert_eq!(scp_command("cat /tmp/scp"), None);
    }

    #[test]
    fn downloads_follow_the_level_and_its_limit() {
        assert_eq!(
            download_mode(&level(false, false, None)),
            DownloadMode::Deny
        );
        assert_eq!(
            download_mode(&level(false, true, Some(10))),
            DownloadMode::Allow(Some(10))
        );
        assert!(read_within(Some(10), 0, 10));
        assert!(!read_within(Some(10), 8, 4));
        assert!(read_within(None, u64::MAX, 1));
        assert!(!read_within(Some(10), u64::MAX, 1));
    }
}
