//! One identity for several nodes: the keys every node of a group must hold, their
//! fingerprint (kept in the database by the first node, checked by every later start), and
//! the export a new node joins with.
//!
//! Shared: the SSH host key, the client CA, the at-rest key, the recording key and the
//! designated client's TLS certificate (clients pin it); all but the at-rest key make the
//! fingerprint (the database names the group's at-rest key by its id). The
//! token-signing key is copied to a joining node too, but each node may rotate its own
//! (`sekisho node rotate-token-key`): every node accepts the keys the others published in
//! the database, so it is not part of the fingerprint. Not shared: the HTTPS certificate the
//! gateway makes for itself (it names this machine) and `node-id`.
//!
//! The export is a JSON file (0600) holding those key files sealed under a passphrase
//! (Argon2id, then AES-256-GCM; the group's fingerprint stays readable and is bound to the
//! sealed part): a copy left on a USB stick or in a mailbox does not give the group's keys
//! away. An unencrypted export (`--no-passphrase`) holds the files as they are on disk and is
//! exactly as secret as the keys directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{SHA256, digest};
use serde::{Deserialize, Serialize};

use sekisho_domain::secret::Secret;
use sekisho_store::crypto::{PassphraseSealed, open_with_passphrase, seal_with_passphrase};

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

const FORMAT: &str = "sekisho-group-keys/3";
/// Exports made before the fingerprint left the at-rest key out (their fingerprint differs).
const OLD_FORMAT: &str = "sekisho-group-keys/2";
/// What the fingerprint covers (changed when the at-rest key left it).
const FINGERPRINT_FORMAT: &str = "sekisho-group-fingerprint/3";

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
    #[error("{path} is sealed under a passphrase: give it (the prompt, or --passphrase-stdin)")]
    PassphraseNeeded { path: PathBuf },
    #[error("{path}: {source}")]
    Passphrase {
        path: PathBuf,
        source: sekisho_store::crypto::PassphraseError,
    },
}

#[derive(Serialize, Deserialize)]
struct Export {
    format: String,
    fingerprint: String,
    /// The key files, unencrypted (`--no-passphrase`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    files: Option<BTreeMap<String, String>>,
    /// The key files (JSON of name → content) sealed under a passphrase.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    encrypted: Option<PassphraseSealed>,
}

/// What the sealed part of an export is bound to: its format and the group's fingerprint.
fn export_context(fingerprint: &str) -> String {
    format!("{FORMAT}\n{fingerprint}")
}

/// Whether the export at `path` is sealed under a passphrase (the CLI asks for one then).
pub fn is_encrypted(path: &Path) -> Result<bool, GroupError> {
    Ok(parse(path)?.encrypted.is_some())
}

fn parse(path: &Path) -> Result<Export, GroupError> {
    let text = read(path)?;
    let not = |detail: String| GroupError::NotAnExport {
        path: path.to_owned(),
        detail,
    };
    let parsed: Export = serde_json::from_str(&text).map_err(|e| not(e.to_string()))?;
    if parsed.format == OLD_FORMAT {
        return Err(not(format!(
            "made by an earlier version of Sekisho (`{OLD_FORMAT}`): make a new export on a node of the group"
        )));
    }
    if parsed.format != FORMAT {
        return Err(not(format!(
            "format `{}`, expected `{FORMAT}`",
            parsed.format
        )));
    }
    Ok(parsed)
}

/// SHA-256 (hex) over the group's public keys (but the token key): equal on two nodes
/// exactly when they hold the same group keys. Shows nothing secret. The at-rest key is not
/// part of it (it is replaced while the group serves): the database names the group's
/// current at-rest key and every node checks it holds that one (`Store::check_at_rest_key`).
pub fn fingerprint(keys: &GatewayKeys) -> Result<String, GroupError> {
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
        FINGERPRINT_FORMAT,
        &ssh_public,
        &keys.ca_cert_pem,
        &keys.recording.public_key_b64(),
        &keys.tls_cert_pem,
    ];
    Ok(hex::encode(digest(&SHA256, parts.join("\n").as_bytes())))
}

/// Writes the group's keys from `keys` to `out` (0600; never over an existing file), sealed
/// under `passphrase` unless it is `None`.
pub fn export(
    keys: &GatewayKeys,
    out: &Path,
    passphrase: Option<&Secret<String>>,
) -> Result<String, GroupError> {
    if out.exists() {
        return Err(GroupError::Exists(out.to_owned()));
    }
    let mut files = BTreeMap::new();
    for name in GROUP_FILES {
        files.insert((*name).to_owned(), read(&keys.dir.join(name))?);
    }
    let fp = fingerprint(keys)?;
    let io = |e: serde_json::Error| GroupError::Io {
        action: "write",
        path: out.to_owned(),
        source: std::io::Error::other(e),
    };
    let export = match passphrase {
        Some(passphrase) => {
            let plain = Secret::new(serde_json::to_vec(&files).map_err(io)?);
            let sealed = seal_with_passphrase(plain.expose(), passphrase, &export_context(&fp))
                .map_err(|source| GroupError::Passphrase {
                    path: out.to_owned(),
                    source,
                })?;
            Export {
                format: FORMAT.into(),
                fingerprint: fp.clone(),
                files: None,
                encrypted: Some(sealed),
            }
        }
        None => Export {
            format: FORMAT.into(),
            fingerprint: fp.clone(),
            files: Some(files),
            encrypted: None,
        },
    };
    let json = serde_json::to_vec_pretty(&export).map_err(io)?;
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
pub fn join(
    export: &Path,
    data_dir: &Path,
    passphrase: Option<&Secret<String>>,
) -> Result<String, GroupError> {
    let parsed = parse(export)?;
    let not = |detail: String| GroupError::NotAnExport {
        path: export.to_owned(),
        detail,
    };
    let files: BTreeMap<String, String> = match (&parsed.encrypted, parsed.files) {
        (Some(sealed), _) => {
            let passphrase = passphrase.ok_or_else(|| GroupError::PassphraseNeeded {
                path: export.to_owned(),
            })?;
            let plain =
                open_with_passphrase(sealed, passphrase, &export_context(&parsed.fingerprint))
                    .map_err(|source| GroupError::Passphrase {
                        path: export.to_owned(),
                        source,
                    })?;
            serde_json::from_slice(plain.expose()).map_err(|e| not(e.to_string()))?
        }
        (None, Some(files)) => files,
        (None, None) => return Err(not("it holds no keys".into())),
    };
    let dir = data_dir.join("keys");
    keys::create_private_dir(data_dir)?;
    keys::create_private_dir(&dir)?;
    // Check everything before writing anything.
    for name in GROUP_FILES {
        let content = files
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
            && let Some(content) = files.get(*name)
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
        let pass = Secret::new("a passphrase for the group".to_owned());
        let fp = export(&keys_a, &out, Some(&pass)).unwrap();
        assert!(matches!(
            export(&keys_a, &out, Some(&pass)),
            Err(GroupError::Exists(_))
        ));
        // Sealed: no key's text is in the file; without the passphrase, or with another,
        // nothing is written.
        let text = std::fs::read_to_string(&out).unwrap();
        let at_rest =
            std::fs::read_to_string(a.path().join("keys").join(keys::AT_REST_KEY)).unwrap();
        assert!(!text.contains(at_rest.trim()) && !text.contains("PRIVATE KEY"));
        assert!(text.contains(&fp));
        assert!(is_encrypted(&out).unwrap());
        let nobody = tempfile::tempdir().unwrap();
        assert!(matches!(
            join(&out, nobody.path(), None),
            Err(GroupError::PassphraseNeeded { .. })
        ));
        let wrong = Secret::new("not the passphrase at all".to_owned());
        let err = join(&out, nobody.path(), Some(&wrong)).unwrap_err();
        assert!(err.to_string().contains("wrong passphrase"), "{err}");
        assert!(!nobody.path().join("keys").join(keys::AT_REST_KEY).exists());
        // Unencrypted on request.
        let plain = a.path().join("plain.json");
        assert_eq!(export(&keys_a, &plain, None).unwrap(), fp);
        assert!(!is_encrypted(&plain).unwrap());
        let d = tempfile::tempdir().unwrap();
        assert_eq!(join(&plain, d.path(), None).unwrap(), fp);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);

        let b = tempfile::tempdir().unwrap();
        assert_eq!(join(&out, b.path(), Some(&pass)).unwrap(), fp);
        let (keys_b, _) = GatewayKeys::load_or_create(&b.path().join("keys")).unwrap();
        assert_eq!(fingerprint(&keys_b).unwrap(), fp);
        assert_eq!(keys_b.ssh_host_fingerprint(), keys_a.ssh_host_fingerprint());
        assert_eq!(keys_b.tls_fingerprint, keys_a.tls_fingerprint);
        // Joining again is harmless.
        assert_eq!(join(&out, b.path(), Some(&pass)).unwrap(), fp);

        // A node that made its own keys keeps them: the join is refused, nothing is written.
        let c = tempfile::tempdir().unwrap();
        let (keys_c, _) = GatewayKeys::load_or_create(&c.path().join("keys")).unwrap();
        let before = std::fs::read(c.path().join("keys").join(keys::AT_REST_KEY)).unwrap();
        let err = join(&out, c.path(), Some(&pass)).unwrap_err();
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
            join(&junk, b.path(), None),
            Err(GroupError::NotAnExport { .. })
        ));
        std::fs::write(
            &junk,
            "{\"format\":\"sekisho-group-keys/2\",\"fingerprint\":\"x\",\"files\":{}}",
        )
        .unwrap();
        let err = join(&junk, b.path(), None).unwrap_err();
        assert!(err.to_string().contains("earlier version"), "{err}");
    }
}
