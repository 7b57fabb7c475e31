//! What the gateway does in the background until it stops: request expiry, recording
//! retention, summaries of repeated failures, and reloading the HTTPS certificate on SIGHUP.

use std::sync::Arc;
use std::time::Duration;

use sekisho_store::Store;
use tokio_util::sync::CancellationToken;

/// Reads the HTTPS certificate files again on each SIGHUP (new connections get the new
/// certificate; open ones are not dropped), until shutdown.
pub(crate) async fn reload_on_sighup(
    certs: Arc<crate::https::CertSource>,
    shutdown: CancellationToken,
) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; the HTTPS certificate reloads only on restart");
            return;
        }
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        match certs.reload() {
            Ok(()) => {
                tracing::info!(fingerprint = %certs.fingerprint(), "SIGHUP: HTTPS certificate reloaded")
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: cannot reload the HTTPS certificate; keeping the current one")
            }
        }
    }
}

/// Writes the summaries of repeated failures once their minute is over, until shutdown.
pub(crate) async fn flush_failures(
    failures: Arc<sekisho_store::failures::FailureLog>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = failures.flush(false).await {
            tracing::warn!(error = %e, "cannot write failure summaries; retrying at the next tick");
        }
    }
}

/// How often windows that have ended are swept to `expired`.
const EXPIRY_SWEEP: Duration = Duration::from_secs(15);

/// Expires requests whose window has ended, until shutdown. A failed sweep is logged and
/// retried at the next tick; the rules never depend on the sweep (authorize checks windows).
pub(crate) async fn expire_requests(
    store: Store,
    policy: sekisho_domain::policy::Policy,
    zone: sekisho_domain::zone::DisplayZone,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(EXPIRY_SWEEP);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.expire_requests(&policy, &zone).await {
            Ok(ids) if !ids.is_empty() => {
                tracing::info!(count = ids.len(), "expired requests whose window ended")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "expiry sweep failed; retrying at the next tick"),
        }
        if let Err(e) = store.purge_revoked_tokens(jiff::Timestamp::now()).await {
            tracing::warn!(error = %e, "cannot forget expired token revocations; retrying later");
        }
    }
}

/// Runs the retention sweep hourly until shutdown.
pub(crate) async fn retention_loop(
    store: Store,
    library: sekisho_recorder::Library,
    retain_days: u32,
    shutdown: CancellationToken,
) {
    if retain_days == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match crate::retention::sweep(&store, &library, retain_days, jiff::Timestamp::now()).await {
            Ok(s) if !s.deleted.is_empty() || !s.kept.is_empty() => {
                tracing::info!(
                    deleted = s.deleted.len(),
                    kept = s.kept.len(),
                    "retention sweep"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; retrying in an hour"),
        }
    }
}
