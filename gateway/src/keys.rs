//! The gateway's keys, created on first start in `DATA_DIR/keys` (directory 0700, files 0600):
//!
//! | file | what it is for |
//! | --- | --- |
//! | `jwt-signing.pem` | Ed25519 key signing API login tokens (EdDSA); its `kid` is derived from the public key |
//! | `ssh-host-ed25519` | the SSH host key vendors see (OpenSSH format) |
//! | `client-ca.key`, `client-ca.crt` | the CA that signs designated-client certificates (ECDSA P-256) |
//! | `at-rest.key` | the AES-256 keys sealing target credentials and second-factor secrets in the database, one hex key per line, the sealing one first (more than one only while `sekisho node rotate-at-rest-key` replaces it) |
//! | `gateway-tls.key`, `gateway-tls.crt` | the certificate the designated client pins (QUIC/TLS), self-signed ECDSA P-256 |
//! | `recording-ed25519.pk8`, `.pub` | Ed25519 key signing recording manifests (base64 PKCS#8; public key base64) |
//! | `api-tls.key`, `api-tls.crt` | the HTTPS certificate of the API and console when the hospital configured none: self-signed ECDSA P-256 for `localhost`, the loopback addresses, the listen address and this machine's name |
//!
//! Existing files are never overwritten; a file that exists but does not parse stops start-up
//! rather than being silently replaced (that would invalidate every credential sealed with it).

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose, PublicKeyData,
};
use russh::keys::ssh_key::LineEnding;
use russh::keys::ssh_key::private::{Ed25519Keypair, KeypairData};
use russh::keys::{HashAlg, PrivateKey};
use sekisho_domain::secret::Secret;
use sekisho_store::crypto::AtRestKey;

/// Why keys could not be created or loaded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not a valid {what}: {detail}; restore it from backup (it is never regenerated over)"
    )]
    Invalid {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
    #[error("cannot generate {what}: {detail}")]
    Generate { what: &'static str, detail: String },
}

type Result<T> = std::result::Result<T, KeyError>;

pub const JWT_KEY: &str = "jwt-signing.pem";
pub const SSH_HOST_KEY: &str = "ssh-host-ed25519";
pub const CA_KEY: &str = "client-ca.key";
pub const CA_CERT: &str = "client-ca.crt";
pub const AT_REST_KEY: &str = "at-rest.key";
pub const RECORDING_KEY: &str = "recording-ed25519.pk8";
pub const TLS_KEY: &str = "gateway-tls.key";
pub const TLS_CERT: &str = "gateway-tls.crt";
pub const RECORDING_PUBLIC_KEY: &str = "recording-ed25519.pub";
pub const API_TLS_KEY: &str = "api-tls.key";
pub const API_TLS_CERT: &str = "api-tls.crt";

/// This machine's name (the kernel's host name), when it is a usable host name.
pub fn machine_name() -> Option<String> {
    let host = fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let host = host.trim();
    (!host.is_empty() && sekisho_domain::text::check_host(host).is_ok()).then(|| host.to_owned())
}

/// The self-signed HTTPS certificate and key files in `dir`, made if missing (never replaced:
/// browsers that accepted it keep accepting it). `listen` and this machine's name go into its
/// names. Returns the two paths and whether they were made now.
pub fn ensure_api_certificate(
    dir: &Path,
    listen: std::net::IpAddr,
) -> Result<(PathBuf, PathBuf, bool)> {
    create_private_dir(dir)?;
    let mut created = Vec::new();
    let pair = ensure_key_pair(
        dir,
        API_TLS_KEY,
        &rcgen::PKCS_ECDSA_P256_SHA256,
        "HTTPS key",
        &mut created,
    )?;
    ensure(dir, API_TLS_CERT, &mut created, || {
        const WHAT: &str = "HTTPS certificate";
        let mut names = vec![
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
            "::1".to_owned(),
        ];
        if !listen.is_unspecified() && !listen.is_loopback() {
            names.push(listen.to_string());
        }
        if let Some(host) = machine_name() {
            names.push(host);
        }
        let mut params = CertificateParams::new(names).map_err(|e| gen_err(WHAT, e))?;
        params
            .distinguished_name
            .push(DnType::CommonName, "Sekisho console (self-signed)");
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Sekisho gateway");
        self_signed(params, &pair, WHAT)
    })?;
    Ok((
        dir.join(API_TLS_CERT),
        dir.join(API_TLS_KEY),
        !created.is_empty(),
    ))
}

/// The loaded keys.
pub struct GatewayKeys {
    pub dir: PathBuf,
    /// PKCS#8 PEM of the Ed25519 token-signing key.
    pub jwt_pem: Secret<String>,
    /// SPKI PEM of the token-signing key's public half.
    pub jwt_public_pem: String,
    /// Key id put in token headers, so keys can rotate.
    pub jwt_kid: String,
    pub ssh_host: PrivateKey,
    pub ca_key_pem: Secret<String>,
    pub ca_cert_pem: String,
    pub at_rest: std::sync::Arc<AtRestKey>,
    pub recording: std::sync::Arc<sekisho_recorder::RecordingKey>,
    pub tls_key_pem: Secret<String>,
    pub tls_cert_pem: String,
    /// `SHA256:` hex fingerprint of the TLS certificate's DER, shown with enrollment codes.
    pub tls_fingerprint: String,
}

impl std::fmt::Debug for GatewayKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayKeys")
            .field("dir", &self.dir)
            .field("jwt_kid", &self.jwt_kid)
            .field("ssh_host", &self.ssh_host_fingerprint())
            .finish_non_exhaustive()
    }
}

impl GatewayKeys {
    /// `SHA256:...` fingerprint of the SSH host key, as `ssh` shows it.
    pub fn ssh_host_fingerprint(&self) -> String {
        self.ssh_host
            .public_key()
            .fingerprint(HashAlg::Sha256)
            .to_string()
    }

    /// Loads the keys in `dir`, creating any that do not exist yet. Returns the keys and the
    /// names of the files created (empty on an ordinary restart).
    pub fn load_or_create(dir: &Path) -> Result<(Self, Vec<String>)> {
        create_private_dir(dir)?;
        let mut created = Vec::new();

        let jwt_pair = ensure_key_pair(
            dir,
            JWT_KEY,
            &rcgen::PKCS_ED25519,
            "token-signing key",
            &mut created,
        )?;
        let TokenKey {
            kid: jwt_kid,
            private_pem: jwt_pem,
            public_pem: jwt_public_pem,
        } = TokenKey::of(&jwt_pair);

        let ssh_pem = ensure(dir, SSH_HOST_KEY, &mut created, || {
            let mut seed = [0u8; 32];
            SystemRandom::new()
                .fill(&mut seed)
                .map_err(|e| gen_err("SSH host key", e))?;
            let key = PrivateKey::new(
                KeypairData::Ed25519(Ed25519Keypair::from_seed(&seed)),
                "sekisho-gateway",
            )
            .map_err(|e| gen_err("SSH host key", e))?;
            key.to_openssh(LineEnding::LF)
                .map(|s| s.to_string())
                .map_err(|e| gen_err("SSH host key", e))
        })?;
        let ssh_host = PrivateKey::from_openssh(&ssh_pem)
            .map_err(|e| invalid(dir, SSH_HOST_KEY, "OpenSSH private key", e))?;

        let ca_pair = ensure_key_pair(
            dir,
            CA_KEY,
            &rcgen::PKCS_ECDSA_P256_SHA256,
            "client CA key",
            &mut created,
        )?;
        let ca_key_pem = ca_pair.serialize_pem();
        let ca_cert_pem = ensure(dir, CA_CERT, &mut created, || ca_certificate(&ca_pair))?;

        let at_rest_hex = ensure(dir, AT_REST_KEY, &mut created, || {
            AtRestKey::generate()
                .map(|k| hex::encode(k.expose()))
                .map_err(|e| gen_err("at-rest key", e))
        })?;
        let at_rest = AtRestKey::from_ring_text(&at_rest_hex)
            .map_err(|e| invalid(dir, AT_REST_KEY, "at-rest key ring", e))?;

        let recording_b64 = ensure(dir, RECORDING_KEY, &mut created, || {
            sekisho_recorder::RecordingKey::generate_pkcs8()
                .map(|der| STANDARD.encode(der))
                .map_err(|e| gen_err("recording key", e))
        })?;
        let recording_der = STANDARD
            .decode(recording_b64.trim())
            .map_err(|e| invalid(dir, RECORDING_KEY, "base64 key", e))?;
        let recording = sekisho_recorder::RecordingKey::from_pkcs8(&recording_der)
            .map_err(|e| invalid(dir, RECORDING_KEY, "Ed25519 key", e))?;
        let public = format!("{}\n", recording.public_key_b64());
        if fs::read_to_string(dir.join(RECORDING_PUBLIC_KEY))
            .ok()
            .as_deref()
            != Some(public.as_str())
        {
            write_private(&dir.join(RECORDING_PUBLIC_KEY), public.as_bytes()).map_err(
                |source| KeyError::Io {
                    action: "write",
                    path: dir.join(RECORDING_PUBLIC_KEY),
                    source,
                },
            )?;
        }

        let tls_pair = ensure_key_pair(
            dir,
            TLS_KEY,
            &rcgen::PKCS_ECDSA_P256_SHA256,
            "gateway TLS key",
            &mut created,
        )?;
        let tls_key_pem = tls_pair.serialize_pem();
        let tls_cert_pem = ensure(dir, TLS_CERT, &mut created, || tls_certificate(&tls_pair))?;
        let tls_der = pem_der(&tls_cert_pem)
            .ok_or_else(|| invalid(dir, TLS_CERT, "PEM certificate", "no CERTIFICATE block"))?;
        let tls_fingerprint = format!("SHA256:{}", hex::encode(digest(&SHA256, &tls_der).as_ref()));

        Ok((
            Self {
                dir: dir.to_owned(),
                jwt_pem,
                jwt_public_pem,
                jwt_kid,
                ssh_host,
                ca_key_pem: Secret::new(ca_key_pem),
                ca_cert_pem,
                at_rest: std::sync::Arc::new(at_rest),
                recording: std::sync::Arc::new(recording),
                tls_key_pem: Secret::new(tls_key_pem),
                tls_cert_pem,
                tls_fingerprint,
            },
            created,
        ))
    }
}

/// Reads the key pair in `dir/name`, or generates one with `alg` and stores it.
fn ensure_key_pair(
    dir: &Path,
    name: &str,
    alg: &'static rcgen::SignatureAlgorithm,
    what: &'static str,
    created: &mut Vec<String>,
) -> Result<KeyPair> {
    let pem = ensure(dir, name, created, || {
        KeyPair::generate_for(alg)
            .map(|k| k.serialize_pem())
            .map_err(|e| gen_err(what, e))
    })?;
    KeyPair::from_pem(&pem).map_err(|e| invalid(dir, name, "PEM key", e))
}

/// A self-signed certificate valid for ten years (from an hour ago, for clock skew).
fn self_signed(mut params: CertificateParams, key: &KeyPair, what: &'static str) -> Result<String> {
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now - time::Duration::hours(1);
    params.not_after = now + time::Duration::days(3650);
    params
        .self_signed(key)
        .map(|c| c.pem())
        .map_err(|e| gen_err(what, e))
}

fn ca_certificate(key: &KeyPair) -> Result<String> {
    const WHAT: &str = "client CA certificate";
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| gen_err(WHAT, e))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Sekisho vendor client CA");
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Sekisho gateway");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    self_signed(params, key, WHAT)
}

fn tls_certificate(key: &KeyPair) -> Result<String> {
    const WHAT: &str = "gateway TLS certificate";
    let names = vec!["localhost".to_owned(), "127.0.0.1".to_owned()];
    let mut params = CertificateParams::new(names).map_err(|e| gen_err(WHAT, e))?;
    params
        .distinguished_name
        .push(DnType::CommonName, "Sekisho gateway");
    self_signed(params, key, WHAT)
}

/// The DER bytes of the first PEM block.
fn pem_der(pem: &str) -> Option<Vec<u8>> {
    let body: String = pem
        .lines()
        .skip_while(|l| !l.starts_with("-----BEGIN"))
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    STANDARD.decode(body).ok()
}

fn gen_err(what: &'static str, e: impl std::fmt::Display) -> KeyError {
    KeyError::Generate {
        what,
        detail: e.to_string(),
    }
}

fn invalid(dir: &Path, name: &str, what: &'static str, e: impl std::fmt::Display) -> KeyError {
    KeyError::Invalid {
        path: dir.join(name),
        what,
        detail: e.to_string(),
    }
}

/// The recording-signing public key (base64) for offline commands, without creating anything.
pub fn recording_public_key(dir: &Path) -> Result<String> {
    let path = dir.join(RECORDING_PUBLIC_KEY);
    fs::read_to_string(&path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| KeyError::Io {
            action: "read",
            path,
            source,
        })
}

/// Creates `dir` (and parents) and restricts it to its owner.
pub fn create_private_dir(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|source| KeyError::Io {
        action: "create directory",
        path: dir.to_owned(),
        source,
    })?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(|source| KeyError::Io {
        action: "restrict permissions of",
        path: dir.to_owned(),
        source,
    })
}

/// Reads `dir/name`, or creates it with `make` (mode 0600, written to a temporary file and
/// renamed, so a crash never leaves half a key).
fn ensure(
    dir: &Path,
    name: &str,
    created: &mut Vec<String>,
    make: impl FnOnce() -> Result<String>,
) -> Result<String> {
    let path = dir.join(name);
    match fs::read_to_string(&path) {
        Ok(s) => {
            if let Ok(meta) = fs::metadata(&path)
                && meta.permissions().mode() & 0o077 != 0
            {
                tracing::warn!(path = %path.display(), "key file is readable by group or others; run chmod 600 on it");
            }
            return Ok(s);
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(KeyError::Io {
                action: "read",
                path,
                source,
            });
        }
    }
    let content = make()?;
    write_private(&path, content.as_bytes()).map_err(|source| KeyError::Io {
        action: "write",
        path: path.clone(),
        source,
    })?;
    tracing::info!(path = %path.display(), "created key");
    created.push(name.to_owned());
    Ok(content)
}

/// A token-signing key as the API uses it.
pub struct TokenKey {
    /// The first 16 hex digits of a SHA-256 over the public key (SPKI).
    pub kid: String,
    pub private_pem: Secret<String>,
    pub public_pem: String,
}

impl TokenKey {
    fn of(pair: &KeyPair) -> Self {
        Self {
            kid: hex::encode(&digest(&SHA256, &pair.subject_public_key_info()).as_ref()[..8]),
            private_pem: Secret::new(pair.serialize_pem()),
            public_pem: pair.public_key_pem(),
        }
    }

    /// The token key in `dir` as it is now, if its file exists (it is missing for a moment
    /// while `sekisho node rotate-token-key` replaces it); never creates one.
    pub fn read(dir: &Path) -> Result<Option<Self>> {
        let path = dir.join(JWT_KEY);
        let pem = match fs::read_to_string(&path) {
            Ok(pem) => pem,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(KeyError::Io {
                    action: "read",
                    path,
                    source,
                });
            }
        };
        let pair = KeyPair::from_pem(&pem).map_err(|e| invalid(dir, JWT_KEY, "PEM key", e))?;
        Ok(Some(Self::of(&pair)))
    }
}

/// Writes the at-rest key ring to `dir/at-rest.key` (0600, atomically), the sealing key
/// first. Only the process holding the data directory's lock writes it.
pub fn save_at_rest_ring(dir: &Path, ring: &AtRestKey) -> Result<()> {
    let path = dir.join(AT_REST_KEY);
    write_private(&path, ring.ring_text().expose().as_bytes()).map_err(|source| KeyError::Io {
        action: "write",
        path,
        source,
    })
}

/// Writes a file only its owner can read, atomically.
pub fn write_private(path: &Path, content: &[u8]) -> std::io::Result<()> {
    // `name.tmp`, not `with_extension`: `x.key` and `x.crt` must not share a temporary file.
    let mut tmp_name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_default();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    let mut f = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(content)?;
    f.sync_all()?;
    fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_created_once_private_and_stable() {
        let dir = tempfile::tempdir().unwrap();
        let kd = dir.path().join("keys");
        let (first, created) = GatewayKeys::load_or_create(&kd).unwrap();
        assert_eq!(
            created,
            vec![
                JWT_KEY,
                SSH_HOST_KEY,
                CA_KEY,
                CA_CERT,
                AT_REST_KEY,
                RECORDING_KEY,
                TLS_KEY,
                TLS_CERT
            ]
        );
        assert_eq!(
            recording_public_key(&kd).unwrap(),
            first.recording.public_key_b64()
        );
        assert_eq!(
            fs::metadata(&kd).unwrap().permissions().mode() & 0o777,
            0o700
        );
        for name in &created {
            let mode = fs::metadata(kd.join(name)).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{name}");
        }
        let (second, created) = GatewayKeys::load_or_create(&kd).unwrap();
        assert!(created.is_empty());
        assert_eq!(first.jwt_kid, second.jwt_kid);
        assert_eq!(first.ssh_host_fingerprint(), second.ssh_host_fingerprint());
        assert!(first.ssh_host_fingerprint().starts_with("SHA256:"));
        assert!(first.ca_cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert_eq!(first.tls_fingerprint, second.tls_fingerprint);
        assert_eq!(first.tls_fingerprint.len(), "SHA256:".len() + 64);
        // A credential sealed before a restart opens after it.
        let sealed = first
            .at_rest
            .seal(&Secret::new("pw".into()), "ctx")
            .unwrap();
        assert_eq!(second.at_rest.open(&sealed, "ctx").unwrap().expose(), "pw");
    }

    #[test]
    fn a_damaged_key_stops_start_up_and_is_not_replaced() {
        let dir = tempfile::tempdir().unwrap();
        GatewayKeys::load_or_create(dir.path()).unwrap();
        fs::write(dir.path().join(AT_REST_KEY), "zz").unwrap();
        let err = GatewayKeys::load_or_create(dir.path()).unwrap_err();
        assert!(
            err.to_string()
                .contains("at-rest.key is not a valid at-rest key ring: line 1:"),
            "{err}"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join(AT_REST_KEY)).unwrap(),
            "zz"
        );
    }
}
