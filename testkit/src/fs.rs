//! Small filesystems for tests of what happens when the disk fills: a private `tmpfs` of a
//! given size, mounted on a temporary directory (root only) and unmounted when dropped.
//!
//! Without root (outside CI) tests skip with a loud message; in CI it is a failure.

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a `size_mib` MiB tmpfs, or `None` (outside CI) when this process cannot mount.
    pub fn mount(size_mib: u32) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().expect("temp dir");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o"])
            .arg(format!("size={size_mib}m,mode=0700"))
            .arg("tmpfs")
            .arg(dir.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { dir }),
            other => {
                let why = match other {
                    Ok(o) => String::from_utf8_lossy(&o.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                assert!(
                    std::env::var_os("CI").is_none(),
                    "cannot mount a tmpfs in CI (root needed): {why}"
                );
                eprintln!("SKIPPING: cannot mount a tmpfs (root needed): {why}");
                None
            }
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes zeros to `name` until the filesystem is full; returns its path.
    pub fn fill(&self, name: &str) -> PathBuf {
        use std::io::Write;
        let path = self.dir.path().join(name);
        let mut file = std::fs::File::create(&path).expect("create filler");
        let block = vec![0u8; 64 * 1024];
        loop {
            if file.write_all(&block).is_err() {
                break;
            }
        }
        // Fill the last partial block too, byte by byte in small steps.
        for size in [4096usize, 512, 1] {
            while file.write_all(&block[..size]).is_ok() {}
        }
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazy: a process still holding a file there (a server being killed) cannot keep
        // the mount point busy.
        let _ = Command::new("umount")
            .arg("--lazy")
            .arg(self.dir.path())
            .status();
    }
}
