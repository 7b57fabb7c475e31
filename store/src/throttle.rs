//! Slowing password guessing down without locking the rightful user out.
//!
//! A hard lock of an account after N failures is a weapon: anyone who knows the name `admin`
//! can keep it locked. And locking only accounts that exist tells an attacker which exist.
//! So the throttle works on what an attacker controls least, their address:
//! - **per source address**: after `max_failures` failures in a row (whatever the names,
//!   existing or not), that address must wait before its next attempt is even checked: 1 s,
//!   then 2, 4, ... up to `max_delay`. A success from the address clears it. The rightful
//!   user, at another address, is not affected.
//! - **per name** (the same for names that exist and names that do not): each failure in a
//!   row makes the answer to the next failure slower (200 ms, 400 ms, ... up to 3 s), which
//!   costs an attacker time per guess but never refuses the right password.
//!
//! - **per account, for the second factor**: whoever is asked for a one-time code has proved
//!   the first factor (password, key or certificate), so holding that account's second factor
//!   back after `max_failures` wrong codes in a row (1 s, 2, 4, ... up to `max_delay`) is no
//!   weapon for a stranger, and it stops a thief of the first factor from trying the million
//!   codes from many addresses at once. A right code clears it.
//!
//! A distributed attacker (many addresses) is limited by the per-name slowdown, by the
//! bounded password hashers ([`crate::password::Hasher`]) and, above all, by password
//! strength (`zxcvbn` at registration). The state is in memory, per gateway node, and
//! bounded: old entries are dropped first when it grows.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Entries kept per map before the oldest are dropped.
const MAX_ENTRIES: usize = 50_000;
/// The longest per-name slowdown of an answer.
const MAX_SLOWDOWN: Duration = Duration::from_secs(3);

#[derive(Clone, Copy, Debug)]
struct Entry {
    failures: u32,
    last: Instant,
    /// Nothing from this source is checked before then.
    until: Option<Instant>,
}

#[derive(Debug, Default)]
struct Maps {
    sources: HashMap<String, Entry>,
    names: HashMap<String, Entry>,
    /// Accounts whose second factor failed (by name key).
    second: HashMap<String, Entry>,
}

/// The login throttle of one node.
#[derive(Debug)]
pub struct LoginThrottle {
    maps: Mutex<Maps>,
    max_failures: u32,
    max_delay: Duration,
}

/// The map key of an address (router-level tests have none).
fn source_key(source: Option<&str>) -> String {
    source.unwrap_or("-").to_owned()
}

/// The map key of a claimed name: the same for a name that exists and one that does not.
fn name_key(name: &str) -> String {
    name.chars().take(64).collect::<String>().to_lowercase()
}

impl LoginThrottle {
    /// `max_failures` in a row before an address must wait; waits double up to `max_delay`.
    pub fn new(max_failures: u32, max_delay: Duration) -> Self {
        Self {
            maps: Mutex::default(),
            max_failures: max_failures.max(1),
            max_delay,
        }
    }

    fn maps(&self) -> std::sync::MutexGuard<'_, Maps> {
        self.maps.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// `Err(wait)` when `source` must wait before trying again.
    pub fn check(&self, source: Option<&str>) -> Result<(), Duration> {
        held(&self.maps().sources, &source_key(source))
    }

    /// `Err(wait)` when `source`, or the second factor of account `name`, must wait.
    pub fn check_second_factor(&self, source: Option<&str>, name: &str) -> Result<(), Duration> {
        let maps = self.maps();
        held(&maps.sources, &source_key(source))?;
        held(&maps.second, &name_key(name))
    }

    /// Counts a failure; returns how long to hold the answer back (the per-name slowdown).
    pub fn failed(&self, source: Option<&str>, name: &str) -> Duration {
        self.count(&mut self.maps(), source, name, Instant::now())
    }

    /// [`Self::failed`] on maps already locked.
    fn count(&self, maps: &mut Maps, source: Option<&str>, name: &str, now: Instant) -> Duration {
        let forget = self.forget();
        let name = bump(&mut maps.names, name_key(name), now, forget);
        let doublings = name.failures.clamp(1, 5) - 1;
        let slowdown = (Duration::from_millis(200) * (1u32 << doublings)).min(MAX_SLOWDOWN);
        // The wait runs from the answer, which the slowdown holds back.
        let source = bump(&mut maps.sources, source_key(source), now, forget);
        self.hold(source, now + slowdown);
        slowdown
    }

    /// Counts a wrong one-time code of account `name`: as [`Self::failed`], and the account's
    /// second factor is held back too after `max_failures` in a row.
    pub fn failed_second_factor(&self, source: Option<&str>, name: &str) -> Duration {
        let now = Instant::now();
        let mut maps = self.maps();
        let slowdown = self.count(&mut maps, source, name, now);
        let account = bump(&mut maps.second, name_key(name), now, self.forget());
        self.hold(account, now + slowdown);
        slowdown
    }

    /// A success clears the address and the name.
    pub fn succeeded(&self, source: Option<&str>, name: &str) {
        let mut maps = self.maps();
        maps.sources.remove(&source_key(source));
        maps.names.remove(&name_key(name));
        maps.second.remove(&name_key(name));
    }

    /// How long a quiet spell must be to start counting afresh.
    fn forget(&self) -> Duration {
        self.max_delay.max(Duration::from_secs(60))
    }

    /// After `max_failures` in a row, nothing more is checked for a while (doubling) from
    /// `from`, when the failure is answered.
    fn hold(&self, entry: &mut Entry, from: Instant) {
        if entry.failures >= self.max_failures {
            let doublings = (entry.failures - self.max_failures).min(30);
            let wait = Duration::from_secs(1u64 << doublings).min(self.max_delay);
            entry.until = Some(from + wait);
        }
    }
}

/// `Err(wait)` while the entry for `key` is held back.
fn held(map: &HashMap<String, Entry>, key: &str) -> Result<(), Duration> {
    let now = Instant::now();
    match map.get(key) {
        Some(Entry {
            until: Some(until), ..
        }) if *until > now => Err(*until - now),
        _ => Ok(()),
    }
}

/// The entry for `key` after one more failure (a quiet spell of `forget` starts it afresh).
fn bump(
    map: &mut HashMap<String, Entry>,
    key: String,
    now: Instant,
    forget: Duration,
) -> &mut Entry {
    if map.len() >= MAX_ENTRIES && !map.contains_key(&key) {
        map.retain(|_, e| now.duration_since(e.last) < forget);
        if map.len() >= MAX_ENTRIES {
            let mut ages: Vec<Instant> = map.values().map(|e| e.last).collect();
            ages.sort_unstable();
            let cut = ages[ages.len() / 2];
            map.retain(|_, e| e.last > cut);
        }
    }
    let entry = map.entry(key).or_insert(Entry {
        failures: 0,
        last: now,
        until: None,
    });
    if now.duration_since(entry.last) >= forget {
        *entry = Entry {
            failures: 0,
            last: now,
            until: None,
        };
    }
    entry.failures = entry.failures.saturating_add(1);
    entry.last = now;
    entry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_waits_after_its_failures_and_others_do_not() {
        let t = LoginThrottle::new(3, Duration::from_secs(900));
        let attacker = Some("192.0.2.1");
        for _ in 0..2 {
            t.failed(attacker, "admin");
            assert_eq!(t.check(attacker), Ok(()));
        }
        t.failed(attacker, "admin");
        // 1 s from the answer, which the third failure of the name held back 800 ms.
        let wait = t.check(attacker).unwrap_err();
        assert!(
            wait <= Duration::from_millis(1800) && wait > Duration::from_millis(1700),
            "{wait:?}"
        );
        // The next failure doubles it (2 s after an answer held back 1.6 s).
        t.failed(attacker, "admin");
        assert!(t.check(attacker).unwrap_err() > Duration::from_millis(3500));
        // The rightful admin elsewhere is not held up; a success clears only their address.
        assert_eq!(t.check(Some("192.0.2.9")), Ok(()));
        t.succeeded(Some("192.0.2.9"), "admin");
        assert!(t.check(attacker).is_err());
    }

    #[test]
    fn names_that_exist_and_names_that_do_not_slow_down_alike() {
        let t = LoginThrottle::new(100, Duration::from_secs(900));
        let slow = |name: &str| -> Vec<Duration> {
            (0..6)
                .map(|i| t.failed(Some(&format!("10.0.0.{i}")), name))
                .collect()
        };
        let ms = |v: &[u64]| {
            v.iter()
                .map(|m| Duration::from_millis(*m))
                .collect::<Vec<_>>()
        };
        assert_eq!(slow("admin"), ms(&[200, 400, 800, 1600, 3000, 3000]));
        assert_eq!(slow("no-such-user"), ms(&[200, 400, 800, 1600, 3000, 3000]));
    }

    #[test]
    fn the_maps_stay_bounded() {
        let t = LoginThrottle::new(3, Duration::from_secs(900));
        for i in 0..(MAX_ENTRIES + 10) {
            t.failed(Some(&format!("s{i}")), &format!("n{i}"));
        }
        let maps = t.maps();
        assert!(maps.sources.len() <= MAX_ENTRIES);
        assert!(maps.names.len() <= MAX_ENTRIES);
    }

    #[test]
    fn wrong_codes_hold_the_account_back_from_every_address() {
        let t = LoginThrottle::new(3, Duration::from_secs(900));
        for i in 0..3 {
            assert_eq!(
                t.check_second_factor(Some(&format!("10.1.0.{i}")), "eng"),
                Ok(())
            );
            t.failed_second_factor(Some(&format!("10.1.0.{i}")), "eng");
        }
        // A fourth address, never seen, is held back for this account only.
        assert!(t.check_second_factor(Some("10.1.0.99"), "eng").is_err());
        assert_eq!(t.check_second_factor(Some("10.1.0.99"), "other"), Ok(()));
        assert_eq!(t.check(Some("10.1.0.99")), Ok(()));
        // Wrong passwords alone never hold an account back.
        for i in 0..5 {
            t.failed(Some(&format!("10.2.0.{i}")), "pw");
        }
        assert_eq!(t.check_second_factor(Some("10.3.0.1"), "pw"), Ok(()));
        t.succeeded(Some("10.1.0.99"), "eng");
        assert_eq!(t.check_second_factor(Some("10.1.0.98"), "eng"), Ok(()));
    }
}
