//! The gateway's own SSH connection to a target: the host key must match the pinned one (or
//! is pinned on first use), and the gateway logs in with the credential of the granted level.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::client;
use russh::keys::{HashAlg, PrivateKeyWithHashAlg, PublicKey, PublicKeyOrCertificate};
use sekisho_domain::target::Target;
use sekisho_store::targets::Credential;

/// Why the target could not be reached; `message` is what the vendor reads.
#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "the host key of {target} does not match the pinned key (expected {expected}, got {got}); the session is refused"
    )]
    HostKeyMismatch {
        target: String,
        expected: String,
        got: String,
    },
    #[error("the pinned host key of {target} cannot be read: {detail}")]
    BadPin { target: String, detail: String },
    #[error("{target} ({addr}) did not answer within {seconds} s")]
    Timeout {
        target: String,
        addr: String,
        seconds: u64,
    },
    #[error("cannot connect to {target} ({addr}): {detail}")]
    Connect {
        target: String,
        addr: String,
        detail: String,
    },
    #[error("{target} refused the gateway's {account} credential")]
    AuthFailed { target: String, account: String },
    #[error("the stored credential for {target} is unusable: {detail}")]
    BadCredential { target: String, detail: String },
}

impl TargetError {
    /// The audit code.
    pub fn code(&self) -> sekisho_domain::refusal::Code {
        use sekisho_domain::refusal::Code;
        match self {
            TargetError::HostKeyMismatch { .. } => Code::HostKeyMismatch,
            TargetError::BadPin { .. } => Code::HostKeyUnreadable,
            TargetError::Timeout { .. } | TargetError::Connect { .. } => Code::TargetUnreachable,
            TargetError::AuthFailed { .. } | TargetError::BadCredential { .. } => {
                Code::TargetLoginFailed
            }
        }
    }
}

/// What the target presented, for pinning on first use.
#[derive(Clone, Debug)]
pub struct SeenKey {
    pub openssh: String,
    pub fingerprint: String,
}

pub struct TargetHandler {
    pinned: Option<PublicKey>,
    seen: Arc<Mutex<Option<SeenKey>>>,
}

impl client::Handler for TargetHandler {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let PublicKeyOrCertificate::PublicKey { key, .. } = key else {
            return Ok(false);
        };
        if let Ok(mut seen) = self.seen.lock() {
            *seen = Some(SeenKey {
                openssh: key.to_openssh().unwrap_or_default(),
                fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
            });
        }
        Ok(match &self.pinned {
            Some(pinned) => pinned.key_data() == key.key_data(),
            // Nothing pinned yet: trust on first use; the caller pins and audits it.
            None => true,
        })
    }
}

/// A logged-in connection to a target.
pub struct Connected {
    pub handle: client::Handle<TargetHandler>,
    /// Set when nothing was pinned and this key was accepted.
    pub first_use: Option<SeenKey>,
}

/// Ciphers for the target leg, where the gateway chooses: AES-GCM first (hardware AES through
/// aws-lc-rs is the fastest here), then russh's usual order.
const TARGET_CIPHERS: &[russh::cipher::Name] = &[
    russh::cipher::AES_256_GCM,
    russh::cipher::CHACHA20_POLY1305,
    russh::cipher::AES_256_CTR,
    russh::cipher::AES_192_CTR,
    russh::cipher::AES_128_CTR,
];

fn client_config() -> Arc<client::Config> {
    Arc::new(client::Config {
        preferred: russh::Preferred {
            cipher: std::borrow::Cow::Borrowed(TARGET_CIPHERS),
            ..russh::Preferred::default()
        },
        window_size: super::limits::WINDOW,
        maximum_packet_size: super::limits::PACKET,
        channel_buffer_size: super::limits::CHANNEL_BUFFER,
        nodelay: true,
        inactivity_timeout: None,
        keepalive_interval: Some(Duration::from_secs(30)),
        keepalive_max: 4,
        ..client::Config::default()
    })
}

/// Connects, checks the host key, and logs in as `account`.
pub async fn connect(
    target: &Target,
    account: &str,
    credential: &Credential,
    timeout: Duration,
) -> Result<Connected, TargetError> {
    let name = target.name.clone();
    let addr = format!("{}:{}", target.host, target.port);
    let pinned = target
        .host_key
        .as_deref()
        .map(PublicKey::from_openssh)
        .transpose()
        .map_err(|e| TargetError::BadPin {
            target: name.clone(),
            detail: e.to_string(),
        })?;
    let seen = Arc::new(Mutex::new(None));
    let handler = TargetHandler {
        pinned: pinned.clone(),
        seen: seen.clone(),
    };
    let seen_key = || seen.lock().ok().and_then(|s| s.clone());
    let connecting = client::connect(client_config(), addr.clone(), handler);
    let mut handle = match tokio::time::timeout(timeout, connecting).await {
        Err(_) => {
            return Err(TargetError::Timeout {
                target: name,
                addr,
                seconds: timeout.as_secs(),
            });
        }
        Ok(Err(e)) => {
            if let (Some(pinned), Some(got)) = (&pinned, seen_key()) {
                return Err(TargetError::HostKeyMismatch {
                    target: name,
                    expected: pinned.fingerprint(HashAlg::Sha256).to_string(),
                    got: got.fingerprint,
                });
            }
            return Err(TargetError::Connect {
                target: name,
                addr,
                detail: e.to_string(),
            });
        }
        Ok(Ok(h)) => h,
    };
    let auth = async {
        match credential {
            Credential::Password(p) => handle.authenticate_password(account, p.expose()).await,
            Credential::PrivateKey(k) => {
                let key =
                    russh::keys::decode_secret_key(k.expose(), None).map_err(russh::Error::from)?;
                let hash = handle.best_supported_rsa_hash().await?.flatten();
                handle
                    .authenticate_publickey(
                        account,
                        PrivateKeyWithHashAlg::new(Arc::new(key), hash),
                    )
                    .await
            }
        }
    };
    let result = tokio::time::timeout(timeout, auth).await;
    match result {
        Ok(Ok(r)) if r.success() => {}
        Ok(Ok(_)) => {
            return Err(TargetError::AuthFailed {
                target: name,
                account: account.to_owned(),
            });
        }
        Ok(Err(e)) => {
            return Err(TargetError::BadCredential {
                target: name,
                detail: e.to_string(),
            });
        }
        Err(_) => {
            return Err(TargetError::Timeout {
                target: name,
                addr,
                seconds: timeout.as_secs(),
            });
        }
    }
    Ok(Connected {
        handle,
        first_use: if pinned.is_none() { seen_key() } else { None },
    })
}
