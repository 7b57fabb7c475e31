//! This node's signed checkpoints of the audit chain's head (issue #18), written to the
//! recordings share every `[audit] checkpoint_minutes` (when the head moved) and when the
//! node stops, after its last audit row. See `sekisho_recorder::checkpoint`.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sekisho_recorder::RecordingKey;
use sekisho_store::Store;
use tokio_util::sync::CancellationToken;

/// What writing a checkpoint needs.
#[derive(Clone)]
pub struct Checkpoints {
    pub store: Store,
    pub recordings: PathBuf,
    pub key: Arc<RecordingKey>,
    pub node: String,
    /// Where each checkpoint goes besides the share (the SIEM stream), as its JSON line.
    pub sink: Option<tokio::sync::mpsc::Sender<String>>,
}

impl Checkpoints {
    /// Writes the current head unless it is `last`; returns the head written (or `last`).
    pub async fn write(&self, last: Option<i64>) -> Option<i64> {
        let (seq, hash) = match self.store.audit_head().await {
            Ok(h) => h,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the audit chain's head for a checkpoint");
                return last;
            }
        };
        if seq == 0 || Some(seq) == last {
            return last;
        }
        let at = jiff::Timestamp::now().to_string();
        let c = self.key.checkpoint(seq, &hash, &at, &self.node);
        let line = serde_json::to_string(&c).ok();
        let dir = self.recordings.clone();
        let written =
            tokio::task::spawn_blocking(move || sekisho_recorder::checkpoint::append(&dir, &c))
                .await;
        match written {
            Ok(Ok(())) => {
                tracing::debug!(seq, "audit checkpoint written");
                if let (Some(sink), Some(line)) = (&self.sink, line)
                    && sink.try_send(line).is_err()
                {
                    tracing::warn!(
                        seq,
                        "the syslog stream is not keeping up; this checkpoint is only in the recordings share"
                    );
                }
                Some(seq)
            }
            Ok(Err(e)) => {
                tracing::error!(error = %e, "cannot write an audit checkpoint");
                last
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot write an audit checkpoint");
                last
            }
        }
    }

    /// Writes a checkpoint now and then every `every` until `shutdown` (the last one is
    /// the caller's, after the node's last audit row).
    pub async fn run(self, every: Duration, shutdown: CancellationToken) {
        let mut last = self.write(None).await;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(every) => last = self.write(last).await,
            }
        }
    }
}
