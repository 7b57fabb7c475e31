//! Unix accounts the test targets log in to, created when missing (root only). Tests of one
//! binary run in parallel threads and `cargo test` runs binaries one after another, but two
//! test processes (or a developer's second `cargo test`) may still meet: the work is done
//! under an exclusive lock on a file every process shares, and an account another process
//! created in between is accepted.

use std::process::Command;

/// Runs `f` holding the lock every test process takes before it creates or changes accounts.
pub(crate) fn under_lock<T>(f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let lock_path = std::env::temp_dir().join("sekisho-test-accounts.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| format!("cannot open {}: {e}", lock_path.display()))?;
    lock.lock()
        .map_err(|e| format!("cannot lock {}: {e}", lock_path.display()))?;
    f()
}

/// Whether the Unix account exists.
pub(crate) fn exists(account: &str) -> bool {
    Command::new("id")
        .arg(account)
        .output()
        .is_ok_and(|o| o.status.success())
}
