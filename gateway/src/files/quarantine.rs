//! The quarantine directory: uploads staged while they are scanned (`staging/`, bounded per
//! session and in all), and the files a scanner blocked, kept for IT (`blocked/<id>`).
//!
//! Staged bytes are on disk, never in memory: a staged upload costs one packet of memory
//! whatever its size. A file's room is reserved before each write that grows it, so the
//! bounds hold for sparse writes too; it is given back when the file is delivered, blocked
//! (kept files no longer count: IT deletes them) or abandoned.

use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The staging bounds and the bytes staged now.
#[derive(Clone, Debug)]
pub struct Quarantine {
    staging: PathBuf,
    blocked: PathBuf,
    session_limit: u64,
    total_limit: u64,
    total: Arc<AtomicU64>,
}

/// Takes `n` bytes of `used` if that stays within `limit`.
fn reserve(used: &AtomicU64, n: u64, limit: u64) -> bool {
    used.fetch_update(Ordering::AcqRel, Ordering::Acquire, |u| {
        u.checked_add(n).filter(|&v| v <= limit)
    })
    .is_ok()
}

fn private_dir(p: &Path) -> io::Result<()> {
    std::fs::create_dir_all(p)?;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o700))
}

impl Quarantine {
    /// Creates the directories; files left in `staging/` by a crash are removed (they never
    /// reached the target and their sessions ended).
    pub fn open(dir: &Path, session_limit: u64, total_limit: u64) -> io::Result<Self> {
        let staging = dir.join("staging");
        let blocked = dir.join("blocked");
        private_dir(dir)?;
        private_dir(&staging)?;
        private_dir(&blocked)?;
        for entry in std::fs::read_dir(&staging)?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        Ok(Self {
            staging,
            blocked,
            session_limit,
            total_limit,
            total: Arc::new(AtomicU64::new(0)),
        })
    }

    /// Bytes staged by every session now.
    pub fn staged_bytes(&self) -> u64 {
        self.total.load(Ordering::Acquire)
    }

    /// Where a blocked file is kept.
    pub fn blocked_path(&self, id: &str) -> PathBuf {
        self.blocked.join(id)
    }

    /// A new staged file counted against `session` (the session's staged bytes).
    pub fn stage(&self, session: Arc<AtomicU64>) -> io::Result<Staged> {
        let path = self.staging.join(uuid::Uuid::new_v4().to_string());
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        Ok(Staged {
            path: Some(path),
            file,
            size: 0,
            quarantine: self.clone(),
            session,
        })
    }
}

/// One upload on the gateway's disk.
#[derive(Debug)]
pub struct Staged {
    /// `None` once the file was kept or removed.
    path: Option<PathBuf>,
    file: std::fs::File,
    size: u64,
    quarantine: Quarantine,
    session: Arc<AtomicU64>,
}

impl Staged {
    pub fn size(&self) -> u64 {
        self.size
    }

    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// Writes `data` at `offset`, within the session's and the gateway's bounds.
    pub fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), String> {
        let end = offset
            .checked_add(data.len() as u64)
            .ok_or_else(|| "offset out of range".to_owned())?;
        let growth = end.saturating_sub(self.size);
        let q = &self.quarantine;
        if growth > 0 {
            if !reserve(&self.session, growth, q.session_limit) {
                return Err(format!(
                    "this session's uploads being scanned would exceed {} bytes",
                    q.session_limit
                ));
            }
            if !reserve(&q.total, growth, q.total_limit) {
                self.session.fetch_sub(growth, Ordering::AcqRel);
                return Err(format!(
                    "the quarantine is full ({} bytes of uploads being scanned)",
                    q.total_limit
                ));
            }
        }
        if let Err(e) = self.file.write_all_at(data, offset) {
            if growth > 0 {
                self.session.fetch_sub(growth, Ordering::AcqRel);
                q.total.fetch_sub(growth, Ordering::AcqRel);
            }
            return Err(format!("the quarantine could not store it: {e}"));
        }
        self.size = self.size.max(end);
        Ok(())
    }

    /// Reads up to `buf.len()` bytes at `offset`.
    pub fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        self.file.read_at(buf, offset)
    }

    fn release(&mut self) {
        let n = std::mem::take(&mut self.size);
        self.session.fetch_sub(n, Ordering::AcqRel);
        self.quarantine.total.fetch_sub(n, Ordering::AcqRel);
    }

    /// Keeps the file as blocked entry `id`; returns where it is.
    pub fn keep(mut self, id: &str) -> io::Result<PathBuf> {
        let to = self.quarantine.blocked_path(id);
        if let Some(from) = self.path.take() {
            std::fs::rename(&from, &to)?;
        }
        self.release();
        Ok(to)
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        self.release();
        if let Some(p) = self.path.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_is_bounded_per_session_and_in_all_and_given_back() {
        let dir = tempfile::tempdir().unwrap();
        let q = Quarantine::open(dir.path(), 100, 150).unwrap();
        let a_session = Arc::new(AtomicU64::new(0));
        let b_session = Arc::new(AtomicU64::new(0));
        let mut a = q.stage(a_session.clone()).unwrap();
        a.write_at(0, &[1; 60]).unwrap();
        a.write_at(0, &[2; 60]).unwrap(); // rewriting takes no more room
        assert_eq!(q.staged_bytes(), 60);
        let err = a.write_at(60, &[3; 41]).unwrap_err();
        assert!(err.contains("this session"), "{err}");
        let err = a.write_at(1 << 40, &[3; 1]).unwrap_err();
        assert!(err.contains("this session"), "{err}");
        let mut b = q.stage(b_session.clone()).unwrap();
        b.write_at(0, &[4; 90]).unwrap();
        let err = b.write_at(90, &[4; 1]).unwrap_err();
        assert!(err.contains("quarantine is full"), "{err}");
        let kept = a.keep("blocked-1").unwrap();
        assert_eq!(std::fs::read(&kept).unwrap(), vec![2; 60]);
        assert_eq!(a_session.load(Ordering::Acquire), 0);
        let staged = b.path().unwrap().to_owned();
        drop(b);
        assert!(!staged.exists());
        assert_eq!(q.staged_bytes(), 0);
        assert_eq!(b_session.load(Ordering::Acquire), 0);
    }
}
