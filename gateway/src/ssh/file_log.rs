//! Logging a file that crossed, whatever carried it (sftp or legacy scp): the recording's
//! `files.jsonl`, the database row and its `file_transferred` audit row, and the log line.

use sekisho_domain::files::FileRecord;
use sekisho_store::Store;
use sekisho_store::files::TransferContext;

use crate::session::Live;

#[derive(Clone)]
pub struct FileLog {
    store: Store,
    node: String,
}

impl FileLog {
    pub fn new(store: Store, node: String) -> Self {
        Self { store, node }
    }

    pub async fn log(&self, live: &Live, record: &FileRecord) {
        if let Err(e) = live.recording.file(record).await {
            live.recording_failed(&e);
        }
        let ctx = TransferContext {
            session: live.session.id,
            request: live.session.request_id,
            target: live.session.target_id,
            vendor: Some(live.session.vendor_id),
            source_addr: Some(live.session.source_addr.clone()),
        };
        tracing::info!(
            session = %live.session.id,
            direction = record.direction.as_str(),
            path = %record.path,
            bytes = record.bytes,
            sha256 = record.sha256.as_deref().unwrap_or("-"),
            outcome = record.outcome.as_str(),
            "file transfer"
        );
        if let Err(e) = self
            .store
            .record_transfer(&ctx, &live.user, record, &self.node)
            .await
        {
            tracing::error!(session = %live.session.id, path = %record.path, error = %e, "file transfer not stored");
        }
    }
}
