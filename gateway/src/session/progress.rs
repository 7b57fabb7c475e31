//! Live sessions' byte counts, stored for `GET /api/v1/sessions?active=true`: every session
//! notes its counts when they changed, and whichever session finds the period over writes
//! everything noted, for the whole node, in one transaction. One transaction per session and
//! period was, at 1,000 sessions, 200 write transactions a second, each waiting for the disk:
//! the database's writer and the threads handing it work took most of the node's CPU and
//! keystroke echoes waited up to seconds behind them (`cargo bench --bench sessions`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sekisho_domain::ids::SessionId;

/// How often the counts are written.
pub const PERIOD: Duration = Duration::from_secs(5);

/// Counts noted since the last write, and when that was.
type Noted = (HashMap<SessionId, (u64, u64)>, Option<Instant>);

/// What the node's sessions noted since the last write.
pub struct Progress {
    noted: Mutex<Noted>,
}

impl Default for Progress {
    fn default() -> Self {
        Self {
            noted: Mutex::new((HashMap::new(), None)),
        }
    }
}

impl Progress {
    /// Notes `session`'s counts; returns everything noted when the period is over (the
    /// caller writes it), `None` otherwise.
    pub fn note(
        &self,
        session: SessionId,
        to: u64,
        from: u64,
    ) -> Option<Vec<(SessionId, u64, u64)>> {
        let mut noted = self.noted.lock().unwrap_or_else(|e| e.into_inner());
        let (counts, written) = &mut *noted;
        counts.insert(session, (to, from));
        if written.is_some_and(|at| at.elapsed() < PERIOD) {
            return None;
        }
        *written = Some(Instant::now());
        Some(
            std::mem::take(counts)
                .into_iter()
                .map(|(id, (to, from))| (id, to, from))
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_written_together_once_a_period() {
        let p = Progress::default();
        let (a, b) = (SessionId::new(), SessionId::new());
        assert_eq!(
            p.note(a, 1, 2).map(|v| v.len()),
            Some(1),
            "the first note writes"
        );
        assert!(p.note(b, 3, 4).is_none());
        assert!(p.note(a, 5, 6).is_none());
        *p.noted.lock().unwrap() = {
            let (counts, _) = std::mem::take(&mut *p.noted.lock().unwrap());
            (counts, Some(Instant::now() - PERIOD))
        };
        let mut batch = p.note(b, 7, 8).unwrap();
        batch.sort_by_key(|(_, to, _)| *to);
        assert_eq!(batch, [(a, 5, 6), (b, 7, 8)]);
    }
}
