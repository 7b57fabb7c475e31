//! Auditing failures of people not yet authenticated (failed logins, refused SSH keys)
//! without letting a flood of them flood the log.
//!
//! Every failure is audited, but from one source address and channel only the first
//! [`PER_WINDOW`] in a minute get a row each; the rest of that minute are counted and written
//! as one `failures_summarized` row (with a sample of the names claimed) when the minute is
//! over. 50 parallel logins with 900,000-character names grew the database by 109 MB in
//! 1.6 s before; now they cost a few short rows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::refusal::Channel;

use crate::audit::NewAuditEvent;
use crate::{Result, Store};

/// Rows per source and channel per window before failures are only counted.
pub const PER_WINDOW: u32 = 10;
/// The counting window.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Names kept as a sample in a summary row.
const SAMPLE: usize = 5;

#[derive(Debug)]
struct Window {
    started: Instant,
    first_at: Timestamp,
    last_at: Timestamp,
    logged: u32,
    suppressed: u64,
    claimed: Vec<String>,
}

/// The failure log of one node; share it (`Arc`) between the API and the gateway.
#[derive(Debug)]
pub struct FailureLog {
    store: Store,
    windows: Mutex<HashMap<(String, Channel), Window>>,
}

/// What `ev` says its actor claimed to be.
fn claimed_of(ev: &NewAuditEvent) -> Option<String> {
    match (&ev.actor, &ev.event) {
        (Actor::Anonymous { claimed }, _) => Some(claimed.clone()),
        (_, AuditEvent::LoginFailed { username }) => Some(username.clone()),
        (actor, _) => Some(actor.label()),
    }
}

impl FailureLog {
    pub fn new(store: Store) -> Self {
        Self {
            store,
            windows: Mutex::default(),
        }
    }

    fn windows(&self) -> std::sync::MutexGuard<'_, HashMap<(String, Channel), Window>> {
        self.windows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Audits one failure on `channel` (e.g. `api_login`, `ssh`), or counts it when its
    /// source has already had its rows this minute.
    pub async fn record(&self, channel: Channel, ev: NewAuditEvent) -> Result<()> {
        sekisho_metrics::get()
            .login_failures
            .get_or_create(&sekisho_metrics::ChannelLabels {
                channel: channel.as_str(),
            })
            .inc();
        let key = (ev.source_addr.clone().unwrap_or_default(), channel);
        let now = Instant::now();
        let at = Timestamp::now();
        let (write, due) = {
            let mut windows = self.windows();
            let due = match windows.get(&key) {
                Some(w) if now.duration_since(w.started) >= WINDOW => windows.remove(&key),
                _ => None,
            };
            let w = windows.entry(key.clone()).or_insert(Window {
                started: now,
                first_at: at,
                last_at: at,
                logged: 0,
                suppressed: 0,
                claimed: vec![],
            });
            w.last_at = at;
            if w.logged < PER_WINDOW {
                w.logged += 1;
                (true, due)
            } else {
                w.suppressed += 1;
                if let Some(name) = claimed_of(&ev)
                    && w.claimed.len() < SAMPLE
                    && !w.claimed.contains(&name)
                {
                    w.claimed.push(name);
                }
                (false, due)
            }
        };
        if let Some(w) = due {
            self.summarize(&key, w).await?;
        }
        if write {
            self.store.audit(ev).await?;
        }
        Ok(())
    }

    /// Writes the summaries of windows that are over (all of them when `all`, at shutdown).
    pub async fn flush(&self, all: bool) -> Result<()> {
        let now = Instant::now();
        let due: Vec<_> = {
            let mut windows = self.windows();
            let keys: Vec<_> = windows
                .iter()
                .filter(|(_, w)| all || now.duration_since(w.started) >= WINDOW)
                .map(|(k, _)| k.clone())
                .collect();
            keys.into_iter()
                .filter_map(|k| windows.remove(&k).map(|w| (k, w)))
                .collect()
        };
        for (key, w) in due {
            self.summarize(&key, w).await?;
        }
        Ok(())
    }

    async fn summarize(&self, (source, channel): &(String, Channel), w: Window) -> Result<()> {
        if w.suppressed == 0 {
            return Ok(());
        }
        self.store
            .audit(NewAuditEvent {
                actor: Actor::System,
                outcome: Outcome::Denied,
                vendor_id: None,
                source_addr: (!source.is_empty()).then(|| source.clone()),
                reason: Some(format!(
                    "{} more failures from this address on {channel} within a minute (the first {PER_WINDOW} have their own rows)",
                    w.suppressed
                )),
                event: AuditEvent::FailuresSummarized {
                    channel: *channel,
                    count: w.suppressed,
                    first_at: w.first_at,
                    last_at: w.last_at,
                    claimed: w.claimed,
                },
            })
            .await?;
        Ok(())
    }
}
