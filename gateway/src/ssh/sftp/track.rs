//! One file being transferred: the bytes that crossed, and their SHA-256 while they cross in
//! order from the first byte on.
//!
//! Chunks may arrive a little out of order (replies to pipelined reads); those ahead of the
//! next expected offset wait in a bounded buffer. A chunk that goes back (a re-read, an
//! overwrite) or leaves a gap the buffer cannot bridge ends the hash: the transfer is logged
//! as not sequential, without a hash, never with a wrong one.

use std::collections::BTreeMap;

use aws_lc_rs::digest::{Context, SHA256};
use sekisho_domain::files::{Direction, FileRecord, Outcome};

/// Bytes held out of order at most, per file.
const REORDER_BYTES: usize = 8 * 1024 * 1024;

pub struct Tracker {
    pub direction: Direction,
    pub path: String,
    started_us: i64,
    bytes: u64,
    /// `None` once the bytes stopped crossing in order.
    hash: Option<Context>,
    next: u64,
    ahead: BTreeMap<u64, Vec<u8>>,
    ahead_bytes: usize,
    /// Why the transfer failed or was refused, when it did.
    pub failure: Option<(Outcome, String)>,
}

pub fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

impl Tracker {
    pub fn new(direction: Direction, path: String) -> Self {
        Self {
            direction,
            path,
            started_us: now_us(),
            bytes: 0,
            hash: Some(Context::new(&SHA256)),
            next: 0,
            ahead: BTreeMap::new(),
            ahead_bytes: 0,
            failure: None,
        }
    }

    /// Bytes that crossed so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// `data` crossed at `offset`.
    pub fn feed(&mut self, offset: u64, data: &[u8]) {
        self.bytes += data.len() as u64;
        if self.hash.is_none() || data.is_empty() {
            return;
        }
        if offset == self.next {
            self.take(data);
            while let Some(chunk) = self.ahead.remove(&self.next) {
                self.ahead_bytes -= chunk.len();
                self.take(&chunk);
            }
        } else if offset > self.next
            && self.ahead_bytes + data.len() <= REORDER_BYTES
            && !self.ahead.contains_key(&offset)
        {
            self.ahead_bytes += data.len();
            self.ahead.insert(offset, data.to_vec());
        } else {
            self.out_of_order();
        }
    }

    fn take(&mut self, data: &[u8]) {
        if let Some(h) = self.hash.as_mut() {
            h.update(data);
        }
        self.next += data.len() as u64;
    }

    fn out_of_order(&mut self) {
        self.hash = None;
        self.ahead.clear();
        self.ahead_bytes = 0;
    }

    /// The first failure stands.
    pub fn fail(&mut self, outcome: Outcome, why: String) {
        if self.failure.is_none() {
            self.failure = Some((outcome, why));
        }
    }

    /// The record of this transfer, ended with `outcome` unless it failed before.
    pub fn finish(mut self, outcome: Outcome, detail: Option<String>) -> FileRecord {
        if !self.ahead.is_empty() {
            self.out_of_order(); // a gap never filled
        }
        let (outcome, detail) = match self.failure.take() {
            Some((o, why)) => (o, Some(why)),
            None => (outcome, detail),
        };
        let sequential = self.hash.is_some();
        FileRecord {
            direction: self.direction,
            path: self.path,
            bytes: self.bytes,
            sha256: self
                .hash
                .filter(|_| self.bytes > 0)
                .map(|h| hex::encode(h.finish().as_ref())),
            sequential,
            started_at_us: self.started_us,
            ended_at_us: now_us(),
            outcome,
            detail,
            quarantine: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha(data: &[u8]) -> String {
        hex::encode(aws_lc_rs::digest::digest(&SHA256, data).as_ref())
    }

    #[test]
    fn in_order_and_slightly_reordered_chunks_hash_the_file() {
        let file: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
        let mut t = Tracker::new(Direction::Download, "/f".into());
        t.feed(0, &file[..30_000]);
        t.feed(60_000, &file[60_000..]);
        t.feed(30_000, &file[30_000..60_000]);
        let r = t.finish(Outcome::Completed, None);
        assert_eq!(r.bytes, 100_000);
        assert!(r.sequential);
        assert_eq!(r.sha256, Some(sha(&file)));
    }

    #[test]
    fn a_read_back_or_a_gap_gives_no_hash() {
        let mut t = Tracker::new(Direction::Download, "/f".into());
        t.feed(0, b"abcd");
        t.feed(0, b"abcd");
        let r = t.finish(Outcome::Completed, None);
        assert!(!r.sequential);
        assert_eq!(r.sha256, None);
        assert_eq!(r.bytes, 8);

        let mut t = Tracker::new(Direction::Upload, "/f".into());
        t.feed(0, b"ab");
        t.feed(10, b"cd");
        let r = t.finish(Outcome::Completed, None);
        assert!(!r.sequential);
        assert_eq!(r.sha256, None);
    }

    #[test]
    fn the_first_failure_stands() {
        let mut t = Tracker::new(Direction::Upload, "/f".into());
        t.fail(Outcome::Failed, "disk full".into());
        t.fail(Outcome::Refused, "later".into());
        let r = t.finish(Outcome::Completed, None);
        assert_eq!(r.outcome, Outcome::Failed);
        assert_eq!(r.detail.as_deref(), Some("disk full"));
    }
}
