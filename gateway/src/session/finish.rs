//! Ending a session: its channels closed, both sides told and disconnected, the recording
//! sealed (its manifest's SHA-256 audited; a failed recording's unrecorded bytes audited to
//! the byte), and the end stored with duration and byte counts.

use std::time::Duration;

use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::session::SessionEnd;
use sekisho_store::audit::NewAuditEvent;
use tokio_util::sync::CancellationToken;

use super::{Link, Live, Shared};

/// Closes channels, disconnects both sides, seals the recording and stores the end.
pub async fn finish(
    live: &Live,
    shared: &Shared,
    link: &dyn Link,
    vendor_gone: &CancellationToken,
) {
    let (how, message) = live.reason();
    live.pumps.close();
    if tokio::time::timeout(Duration::from_secs(3), live.pumps.wait())
        .await
        .is_err()
    {
        tracing::warn!(session = %live.session.id, "channels did not close in time");
    }
    link.close_vendor(how, &message, vendor_gone).await;
    link.close_target().await;
    let (to, from) = live.bytes();
    if how == SessionEnd::RecordingFailed {
        let unrecorded = live.recording.unrecorded_bytes();
        tracing::error!(session = %live.session.id, unrecorded_bytes = unrecorded, "session data went through unrecorded before the recording failed");
        let ev = NewAuditEvent {
            actor: Actor::System,
            outcome: Outcome::Failure,
            vendor_id: Some(live.session.vendor_id),
            source_addr: None,
            reason: Some(format!(
                "{message}; {unrecorded} bytes were relayed but not recorded"
            )),
            event: AuditEvent::RecordingFailed {
                session: live.session.id,
                request: live.session.request_id,
                target: live.session.target_id,
                unrecorded_bytes: unrecorded,
                error: message.clone(),
            },
        };
        if let Err(e) = shared.store.audit(ev).await {
            tracing::error!(session = %live.session.id, error = %e, "cannot audit the failed recording");
        }
    }
    match live.recording.clone().close(how.as_str()).await {
        Ok(_) if !live.recording.is_recorded() => {} // benchmarks only
        Ok(manifest) => {
            let path = live
                .recording
                .dir()
                .join(sekisho_recorder::manifest::MANIFEST);
            let sealed =
                tokio::task::spawn_blocking(move || sekisho_recorder::manifest::hash_file(&path))
                    .await;
            match sealed {
                Ok(Ok((_, sha))) => {
                    let files = u32::try_from(manifest.files.len()).unwrap_or(u32::MAX);
                    let bytes = manifest.files.iter().map(|f| f.size).sum();
                    if let Err(e) = shared
                        .store
                        .audit_recording_closed(&live.session, sha, files, bytes)
                        .await
                    {
                        tracing::error!(session = %live.session.id, error = %e, "cannot audit the sealed recording");
                    }
                }
                Ok(Err(e)) => {
                    tracing::error!(session = %live.session.id, error = %e, "cannot hash the sealed manifest")
                }
                Err(e) => {
                    tracing::error!(session = %live.session.id, error = %e, "cannot hash the sealed manifest")
                }
            }
        }
        Err(e) => {
            tracing::error!(session = %live.session.id, error = %e, "cannot seal the recording; it is sealed as aborted on the next start");
        }
    }
    if let Err(e) = shared
        .store
        .end_session(live.session.id, how, to, from)
        .await
    {
        tracing::error!(session = %live.session.id, error = %e, "cannot record the session end; it is marked aborted on the next start");
    }
    tracing::info!(session = %live.session.id, how = how.as_str(), bytes_to_target = to, bytes_from_target = from, "session ended");
}
