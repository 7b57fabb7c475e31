//! Reading recordings is audited (issue #18): who listed, searched, opened, downloaded,
//! replayed, exported or verified which recording. A person watching a live session polls
//! its screen every second: one row per person, recording and kind of use every
//! [`super::read_log::QUIET`] is the record (the first read of each spell), not one per poll.

use sekisho_domain::audit::{AuditEvent, RecordingUse};
use sekisho_store::audit::NewAuditEvent;

use super::error::ApiResult;
use super::state::ApiState;
use super::token::Caller;

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
