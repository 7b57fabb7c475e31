//! One identity for several nodes: the keys every node of a group must hold, their
//! fingerprint (kept in the database by the first node, checked by every later start), and
//! the export a new node joins with.
//!
//! Shared: the SSH host key, the client CA, the at-rest key, the recording key and the
//! designated client's TLS certificate (clients pin it); these make the fingerprint. The
//! token-signing key is copied to a joining node too, but each node may rotate its own
//! (`sekisho node rotate-token-key`): every node accepts the keys the others published in
//! the database, so it is not part of the fingerprint. Not shared: the HTTPS certificate the
//! gateway makes for itself (it names this machine) and `node-id`.
//!
//! The export is a JSON file holding those key files as they are on disk, written 0600: it is
//! exactly as secret as the keys directory and is handled like it (copied over SSH, deleted
//! once the node joined).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use crate::keys::{self, GatewayKeys, KeyError};

/// The key files a group shares.
pub const GROUP_FILES: &[&str] = &[
    keys::JWT_KEY,
    keys::SSH_HOST_KEY,
    keys::CA_KEY,
    keys::CA_CERT,
    keys::AT_REST_KEY,
    keys::RECORDING_KEY,
    keys::RECORDING_PUBLIC_KEY,
    keys::TLS_KEY,
    keys::TLS_CERT,
];

const FORMAT: &str = "sekisho-group-keys/2";

/// Why an export or a join failed.
#[derive(Debug, thiserror::Error)]
pub enum GroupError {
    #[error(transparent)]
    Keys(#[from] KeyError),
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a Sekisho group key export: {detail}")]
    NotAnExport { path: PathBuf, detail: String },
    #[error(
        "{path} exists and differs from the group's: a node joins with a data directory that has no keys of its own (move this one away first)"
    )]
    Differs { path: PathBuf },
    #[error("{0} exists already; choose another file (an export is never overwritten)")]
    Exists(PathBuf),
    #[error("the keys written do not give the export's fingerprint ({expected}, got {got})")]
    Fingerprint { expected: String, got: String },
}

#[derive(Serialize, Deserialize)]
struct Export {
    format: String,
    fingerprint: String,
    files: BTreeMap<String, String>,
}

/// SHA-256 (hex) over the group's public keys (but the token key) and a digest of the at-rest
/// key: equal on two nodes exactly when they hold the same group keys. Shows nothing secret.
pub fn fingerprint(keys: &GatewayKeys) -> Result<String, GroupError> {
    let at_rest = read(&keys.dir.join(keys::AT_REST_KEY))?;
    let at_rest_digest = hex::encode(digest(&SHA256, at_rest.as_bytes()));
    let ssh_public = keys
        .ssh_host
        .public_key()
        .to_openssh()
        .map_err(|e| KeyError::Invalid {
            path: keys.dir.join(keys::SSH_HOST_KEY),
            what: "SSH host key",
            detail: e.to_string(),
        })?;
    let parts = [
        FORMAT,
        &ssh_public,
        &keys.ca_cert_pem,
        &at_rest_digest,
        &keys.recording.public_key_b64(),
        &keys.tls_cert_pem,
    ];
    Ok(hex::encode(digest(&SHA256, parts.join("\n").as_bytes())))
}

/// Writes the group's keys from `keys` to `out` (0600; never over an existing file).
pub fn export(keys: &GatewayKeys, out: &Path) -> Result<String, GroupError> {
    if out.exists() {
        return Err(GroupError::Exists(out.to_owned()));
    }
    let mut files = BTreeMap::new();
    for name in GROUP_FILES {
        files.insert((*name).to_owned(), read(&keys.dir.join(name))?);
    }
    let fp = fingerprint(keys)?;
    let export = Export {
        format: FORMAT.into(),
        fingerprint: fp.clone(),
        files,
    };
    let json = serde_json::to_vec_pretty(&export).map_err(|e| GroupError::Io {
        action: "write",
        path: out.to_owned(),
        source: std::io::Error::other(e),
    })?;
    keys::write_private(out, &json).map_err(|source| GroupError::Io {
        action: "write",
        path: out.to_owned(),
        source,
    })?;
    Ok(fp)
}

/// Puts the keys of `export` into `data_dir/keys`: files the directory lacks are written,
/// files it has must be identical (a node never loses its keys to a join). Returns the
/// group's fingerprint, checked against the keys as loaded.
pub fn join(export: &Path, data_dir: &Path) -> Result<String, GroupError> {
    let text = read(export)?;
    let not = |detail: String| GroupError::NotAnExport {
        path: export.to_owned(),
        detail,
    };
    let parsed: Export = serde_json::from_str(&text).map_err(|e| not(e.to_string()))?;
    if parsed.format != FORMAT {
        return Err(not(format!(
            "format `{}`, expected `{FORMAT}`",
            parsed.format
        )));
    }
    let dir = data_dir.join("keys");
    keys::create_private_dir(data_dir)?;
    keys::create_private_dir(&dir)?;
    // Check everything before writing anything.
    for name in GROUP_FILES {
        let content = parsed
            .files
            .get(*name)
            .ok_or_else(|| not(format!("{name} is missing")))?;
        let path = dir.join(name);
        match std::fs::read_to_string(&path) {
            Ok(existing) if existing == *content => {}
            Ok(_) => return Err(GroupError::Differs { path }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => {
                return Err(GroupError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        }
    }
    for name in GROUP_FILES {
        let path = dir.join(name);
        if !path.exists()
            && let Some(content) = parsed.files.get(*name)
        {
            keys::write_private(&path, content.as_bytes()).map_err(|source| GroupError::Io {
                action: "write",
                path: path.clone(),
                source,
            })?;
        }
    }
    let (loaded, _) = GatewayKeys::load_or_create(&dir)?;
    let got = fingerprint(&loaded)?;
    if got != parsed.fingerprint {
        return Err(GroupError::Fingerprint {
            expected: parsed.fingerprint,
            got,
        });
    }
    Ok(got)
}

fn read(path: &Path) -> Result<String, GroupError> {
    std::fs::read_to_string(path).map_err(|source| GroupError::Io {
        action: "read",
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joined_node_holds_the_same_keys_and_a_node_with_its_own_keys_cannot_join() {
        let a = tempfile::tempdir().unwrap();
        let (keys_a, _) = GatewayKeys::load_or_create(&a.path().join("keys")).unwrap();
        let out = a.path().join("group.json");
        let fp = export(&keys_a, &out).unwrap();
        assert!(matches!(export(&keys_a, &out), Err(GroupError::Exists(_))));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let b = tempfile::tempdir().unwrap();
        assert_eq!(join(&out, b.path()).unwrap(), fp);
        let (keys_b, _) = GatewayKeys::load_or_create(&b.path().join("keys")).unwrap();
        assert_eq!(fingerprint(&keys_b).unwrap(), fp);
        assert_eq!(keys_b.ssh_host_fingerprint(), keys_a.ssh_host_fingerprint());
        assert_eq!(keys_b.tls_fingerprint, keys_a.tls_fingerprint);
        // Joining again is harmless.
        assert_eq!(join(&out, b.path()).unwrap(), fp);

        // A node that made its own keys keeps them: the join is refused, nothing is written.
        let c = tempfile::tempdir().unwrap();
        let (keys_c, _) = GatewayKeys::load_or_create(&c.path().join("keys")).unwrap();
        let before = std::fs::read(c.path().join("keys").join(keys::AT_REST_KEY)).unwrap();
        let err = join(&out, c.path()).unwrap_err();
        assert!(matches!(err, GroupError::Differs { .. }), "{err}");
        assert_eq!(
            std::fs::read(c.path().join("keys").join(keys::AT_REST_KEY)).unwrap(),
            before
        );
        assert_ne!(fingerprint(&keys_c).unwrap(), fp);

        // Not an export.
        let junk = c.path().join("junk.json");
        std::fs::write(&junk, "{\"format\":\"other\"}").unwrap();
        assert!(matches!(
            join(&junk, b.path()),
            Err(GroupError::NotAnExport { .. })
        ));
    }
}
