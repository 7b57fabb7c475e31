//! What enrollment leaves on the vendor's machine, in the client directory (0700; files
//! 0600): `client.key` (the private key, generated here, never sent), `client.crt`,
//! `ca.crt`, `known_hosts` (the gateway's SSH host key) and `enrollment.json`.

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use crate::connect::Identity;

/// The name ssh uses for the gateway in `known_hosts` (`HostKeyAlias`).
pub const HOST_ALIAS: &str = "sekisho-gateway";

/// Where the gateway is and who we are to it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Enrollment {
    /// `host:port` of the QUIC listener.
    pub gateway: String,
    /// The pinned gateway TLS certificate fingerprint (`SHA256:` hex).
    pub fingerprint: String,
    pub username: String,
    /// When the client certificate expires (RFC 3339).
    pub expires_at: String,
}

/// The client directory.
#[derive(Clone, Debug)]
pub struct ClientDir(pub PathBuf);

impl ClientDir {
    /// `--dir`, else `SEKISHO_CLIENT_DIR`, else `$XDG_CONFIG_HOME/sekisho`, else
    /// `$HOME/.config/sekisho`.
    pub fn resolve(explicit: Option<PathBuf>) -> anyhow::Result<Self> {
        if let Some(d) =
            explicit.or_else(|| std::env::var_os("SEKISHO_CLIENT_DIR").map(PathBuf::from))
        {
            return Ok(Self(d));
        }
        if let Some(x) = std::env::var_os("XDG_CONFIG_HOME") {
            return Ok(Self(PathBuf::from(x).join("sekisho")));
        }
        let home = std::env::var_os("HOME")
            .context("neither --dir, SEKISHO_CLIENT_DIR nor HOME is set")?;
        Ok(Self(PathBuf::from(home).join(".config").join("sekisho")))
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `name` with mode 0600, creating the directory (0700) if needed. The file is
    /// replaced whole (written aside, then renamed), so a crash never leaves half a key.
    pub fn write(&self, name: &str, content: &[u8]) -> anyhow::Result<()> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.0)
            .with_context(|| format!("cannot create {}", self.0.display()))?;
        let path = self.path(name);
        let aside = self.path(&format!(".{name}.new"));
        let written = (|| {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&aside)?;
            f.write_all(content)?;
            f.sync_all()?;
            std::fs::rename(&aside, &path)
        })();
        written.with_context(|| format!("cannot write {}", path.display()))
    }

    pub fn read(&self, name: &str) -> anyhow::Result<String> {
        let path = self.path(name);
        std::fs::read_to_string(&path).with_context(|| {
            format!("cannot read {} (enroll first: sekisho-client enroll --gateway HOST:PORT --code CODE --fingerprint SHA256:...)", path.display())
        })
    }

    pub fn enrollment(&self) -> anyhow::Result<Enrollment> {
        serde_json::from_str(&self.read("enrollment.json")?).with_context(|| {
            format!(
                "{} is damaged; enroll again",
                self.path("enrollment.json").display()
            )
        })
    }

    /// The enrolled certificate and key.
    pub fn identity(&self) -> anyhow::Result<Identity> {
        let certs = CertificateDer::pem_slice_iter(self.read("client.crt")?.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .context("client.crt is damaged; enroll again")?;
        let key = PrivateKeyDer::from_pem_slice(self.read("client.key")?.as_bytes())
            .context("client.key is damaged; enroll again")?;
        Ok(Identity { certs, key })
    }

    pub fn exists(path: &Path) -> bool {
        path.exists()
    }
}
