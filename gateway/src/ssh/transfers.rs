//! Which way files may cross in a session, and what watches them: the sftp relay of a
//! channel, and the legacy scp stream of an `scp -t` / `scp -f` command.

use std::sync::Arc;

use sekisho_domain::files::{self, DownloadMode, ScpMode, UploadMode};
use sekisho_domain::refusal::{Code, Refusal};

use super::file_log::FileLog;
use super::scp::ScpStream;
use super::sftp::relay::SftpRelay;
use crate::session::{Live, Shared};

/// How files may cross at a session's level.
pub(super) fn file_modes(shared: &Shared, live: &Live) -> (UploadMode, DownloadMode) {
    match live.target.level(live.grant.level) {
        Some(policy) => (
            files::upload_mode(policy, shared.scanners.is_some()),
            files::download_mode(policy),
        ),
        None => (UploadMode::Deny, DownloadMode::Deny),
    }
}

/// The sftp relay for a channel of a session.
pub(super) fn sftp_relay(shared: &Shared, live: &Live) -> Arc<SftpRelay> {
    let (upload, download) = file_modes(shared, live);
    Arc::new(SftpRelay::new(
        upload,
        download,
        FileLog::new(shared.store.clone(), shared.node.clone()),
        shared.scanners.clone(),
        shared.quarantine.clone(),
    ))
}

/// The scp stream to log an exec command's files with, if the command is legacy scp; a
/// refusal for `scp -f` where the level denies downloads.
pub(super) fn scp_stream(
    shared: &Shared,
    live: &Live,
    command: &str,
) -> Result<Option<ScpStream>, Refusal> {
    let Some((mode, path)) = files::scp_command(command) else {
        return Ok(None);
    };
    let (upload, download) = file_modes(shared, live);
    match (mode, download) {
        (ScpMode::Source, DownloadMode::Deny) => Err(Refusal::new(
            Code::DownloadNotAllowed,
            format!(
                "file download from {} is not allowed at {} level (scp -f {path})",
                live.target.name, live.grant.level
            ),
        )),
        (ScpMode::Source, DownloadMode::Allow(limit)) => {
            Ok(Some(ScpStream::new(mode, path).with_limit(limit)))
        }
        // Uploads where they may go straight to the target; elsewhere the watch refuses them.
        (ScpMode::Sink, _) if upload == UploadMode::Direct => Ok(Some(ScpStream::new(mode, path))),
        (ScpMode::Sink, _) => Ok(None),
    }
}
