//! `[recordings] retain_days`: deletes sealed recordings past the retention period, except
//! those whose session review is not signed off yet or that are under legal hold, or whose
//! session the database does not know. Every deletion is an audit event.

use jiff::{SignedDuration, Timestamp};
use sekisho_recorder::Library;
use sekisho_store::Store;
use sekisho_store::sessions::Retention;

use crate::error::{GatewayError, Result};

/// What one sweep did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    pub deleted: Vec<String>,
    pub kept: Vec<(String, &'static str)>,
}

/// One retention pass. `retain_days == 0` keeps everything.
pub async fn sweep(
    store: &Store,
    library: &Library,
    retain_days: u32,
    now: Timestamp,
) -> Result<Sweep> {
    let mut out = Sweep::default();
    if retain_days == 0 {
        return Ok(out);
    }
    let cutoff = now - SignedDuration::from_hours(24 * i64::from(retain_days));
    let lib = library.clone();
    let candidates = tokio::task::spawn_blocking(move || lib.sealed_before(cutoff))
        .await
        .map_err(|e| GatewayError::Serve(std::io::Error::other(e)))??;
    for (dir, m) in candidates {
        let why = match store.retention(&m.meta.session).await? {
            Retention::Deletable => None,
            Retention::UnderReview => Some("review not signed off"),
            Retention::LegalHold => Some("legal hold"),
            Retention::Unknown => Some("session unknown to the database"),
        };
        if let Some(why) = why {
            out.kept.push((m.meta.session.clone(), why));
            continue;
        }
        let Ok(session) = m.meta.session.parse() else {
            out.kept
                .push((m.meta.session.clone(), "session id is not a UUID"));
            continue;
        };
        let files = m
            .files
            .iter()
            .map(|f| format!("{} sha256:{}", f.name, f.sha256))
            .collect();
        // Audit first: if the deletion then fails, the log says it was attempted.
        store
            .audit_recording_deleted(session, m.meta.target.clone(), files)
            .await?;
        let lib = library.clone();
        tokio::task::spawn_blocking(move || lib.delete(&dir))
            .await
            .map_err(|e| GatewayError::Serve(std::io::Error::other(e)))??;
        tracing::info!(session = %m.meta.session, "deleted recording past retention");
        out.deleted.push(m.meta.session);
    }
    Ok(out)
}
