//! The reads of recordings audited lately (see `reads.rs`), so that a repeat is not written
//! again within [`QUIET`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sekisho_domain::audit::RecordingUse;

/// A repeat of the same read within this is not written again.
pub const QUIET: Duration = Duration::from_secs(600);
/// Entries kept before the oldest are forgotten.
const MAX_ENTRIES: usize = 20_000;

pub(crate) type Key = (String, Option<String>, RecordingUse, Option<String>);

/// The reads written lately, per node.
#[derive(Debug, Default)]
pub struct ReadLog {
    seen: Mutex<HashMap<Key, Instant>>,
}

impl ReadLog {
    /// Whether this read is to be written now (and remembers it).
    pub(crate) fn fresh(&self, key: Key) -> bool {
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
