//! The trusted clock (issue #18): every time in the audit log, a recording and a window
//! check is this machine's, so the gateway checks its offset against the hospital's NTP
//! servers (SNTP, `[time] ntp_servers`) at start and every `check_minutes`. Over
//! `max_offset_ms` it audits it and, with `refuse_sessions_when_off`, new sessions are
//! refused with the reason until a later check finds the clock right again. A server that
//! does not answer is audited (`unchecked`) and leaves sessions alone: it says nothing about
//! this clock. Each verdict is audited when it changes, not at every check.

use std::sync::Mutex;
use std::time::Duration;

use sekisho_config::TimeConfig;
use sekisho_domain::audit::{AuditEvent, ClockVerdict};
use sekisho_domain::refusal::{Code, Refusal};
use sekisho_store::Store;
use sekisho_store::audit::NewAuditEvent;
use tokio_util::sync::CancellationToken;

/// How long one server has to answer.
const TIMEOUT: Duration = Duration::from_secs(3);

/// What the last check found, shared with the session layer.
#[derive(Debug, Default)]
pub struct Clock {
    state: Mutex<Option<Found>>,
}

#[derive(Clone, Debug, PartialEq)]
struct Found {
    verdict: ClockVerdict,
    server: Option<String>,
    offset_ms: Option<i64>,
    max_offset_ms: u32,
    refuse: bool,
}

impl Clock {
    /// Why sessions are refused now, if they are.
    pub fn refusal(&self) -> Option<Refusal> {
        let state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match &*state {
            Some(Found {
                verdict: ClockVerdict::Off,
                offset_ms: Some(off),
                max_offset_ms,
                refuse: true,
                server,
            }) => Some(Refusal::new(
                Code::ClockOff,
                format!(
                    "the gateway's clock is off by {off} ms against {} (at most {max_offset_ms} ms): sessions are refused until it is corrected; tell the hospital's IT",
                    server.as_deref().unwrap_or("NTP")
                ),
            )),
            _ => None,
        }
    }

    /// Records `found`; returns whether the verdict changed (and so is to be audited).
    fn set(&self, found: Found) -> bool {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let changed = state.as_ref().is_none_or(|s| s.verdict != found.verdict);
        *state = Some(found);
        changed
    }
}

/// This clock minus the first answering server's, in milliseconds, with that server.
pub async fn offset(servers: &[String]) -> Option<(String, i64)> {
    let mut client = rsntp::AsyncSntpClient::new();
    client.set_timeout(TIMEOUT);
    for server in servers {
        match client.synchronize(server.as_str()).await {
            Ok(r) => {
                // rsntp's offset is the server's time minus ours.
                let ms = -r.clock_offset().as_secs_f64() * 1000.0;
                if ms.is_finite() {
                    // Within ±2^53 ms by construction of an NTP timestamp.
                    #[allow(clippy::cast_possible_truncation)]
                    return Some((server.clone(), ms.round() as i64));
                }
            }
            Err(e) => tracing::warn!(server, error = %e, "NTP server did not answer"),
        }
    }
    None
}

/// Checks the clock once: sets the verdict and audits it when it changed.
pub async fn check(clock: &Clock, store: &Store, config: &TimeConfig) {
    if config.ntp_servers.is_empty() {
        return;
    }
    let found = match offset(&config.ntp_servers).await {
        Some((server, ms)) => Found {
            verdict: if ms.unsigned_abs() > u64::from(config.max_offset_ms) {
                ClockVerdict::Off
            } else {
                ClockVerdict::Within
            },
            server: Some(server),
            offset_ms: Some(ms),
            max_offset_ms: config.max_offset_ms,
            refuse: config.refuse_sessions_when_off,
        },
        None => Found {
            verdict: ClockVerdict::Unchecked,
            server: None,
            offset_ms: None,
            max_offset_ms: config.max_offset_ms,
            refuse: config.refuse_sessions_when_off,
        },
    };
    if let Some(ms) = found.offset_ms {
        sekisho_metrics::get().clock_offset_ms.set(ms);
    }
    match found.verdict {
        ClockVerdict::Within => {
            tracing::info!(server = ?found.server, offset_ms = ?found.offset_ms, "clock within the limit");
        }
        ClockVerdict::Off => {
            tracing::error!(server = ?found.server, offset_ms = ?found.offset_ms, max_offset_ms = config.max_offset_ms, "clock off against NTP");
        }
        ClockVerdict::Unchecked => tracing::warn!("no NTP server answered: the clock is unchecked"),
    }
    if clock.set(found.clone()) {
        let mut ev = NewAuditEvent::system(AuditEvent::ClockChecked {
            server: found.server,
            offset_ms: found.offset_ms,
            max_offset_ms: found.max_offset_ms,
            verdict: found.verdict,
        });
        if found.verdict != ClockVerdict::Within {
            ev.outcome = sekisho_domain::audit::Outcome::Failure;
        }
        if let Err(e) = store.audit(ev).await {
            tracing::error!(error = %e, "cannot audit the clock check");
        }
    }
}

/// Checks every `check_minutes` until `shutdown`.
pub async fn watch(
    clock: std::sync::Arc<Clock>,
    store: Store,
    config: TimeConfig,
    shutdown: CancellationToken,
) {
    let every = Duration::from_secs(60 * u64::from(config.check_minutes));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = tokio::time::sleep(every) => check(&clock, &store, &config).await,
        }
    }
}
