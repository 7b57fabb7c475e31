//! Reading recordings is audited (issue #18): who listed, searched, opened, downloaded,
//! replayed, exported or verified which recording. A person watching a live session polls
//! its screen every second: one row per person, recording and kind of use every
//! [`QUIET`] is the record (the first read of each spell), not one per poll.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sekisho_domain::audit::{AuditEvent, RecordingUse};
use sekisho_store::audit::NewAuditEvent;

use super::error::ApiResult;
use super::state::ApiState;
use super::token::Caller;

/// A repeat of the same read within this is not written again.
pub const QUIET: Duration = Duration::from_secs(600);
/// Entries kept before the oldest are forgotten.
const MAX_ENTRIES: usize = 20_000;

type Key = (String, Option<String>, RecordingUse, Option<String>);

/// The reads written lately, per node.
#[derive(Debug, Default)]
pub struct ReadLog {
    seen: Mutex<HashMap<Key, Instant>>,
}

impl ReadLog {
    /// Whether this read is to be written now (and remembers it).
    fn fresh(&self, key: Key) -> bool {
        let now = Instant::now();
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() >= MAX_ENTRIES {
            seen.retain(|_, at| now.duration_since(*at) < QUIET);
        }
        match seen.get(&key) {
            Some(at) if now.duration_since(*at) < QUIET => false,
            _ => {
                seen.insert(key, now);
                true
            }
        }
    }
}

/// Audits that `caller` read recordings (`recording` and `what`, with `detail`); a read
/// that cannot be audited is refused (the error is the store's, answered 503).
pub(crate) async fn recording_read(
    state: &ApiState,
    caller: &Caller,
    recording: Option<&str>,
    what: RecordingUse,
    detail: Option<String>,
) -> ApiResult<()> {
    let key = (
        caller.user.id.to_string(),
        recording.map(ToOwned::to_owned),
        what,
        detail.clone(),
    );
    if !state.reads.fresh(key) {
        return Ok(());
    }
    state
        .store
        .audit(NewAuditEvent::success(
            caller.actor(),
            caller.user.vendor_id,
            caller.source(),
            AuditEvent::RecordingsRead {
                recording: recording.map(ToOwned::to_owned),
                what,
                detail,
            },
        ))
        .await?;
    Ok(())
}
