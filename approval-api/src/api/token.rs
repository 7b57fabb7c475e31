//! Bearer tokens: the keys that sign and check them (rotatable by `kid`), what they claim,
//! and the [`Caller`] a checked token stands for.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jiff::Timestamp;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use sekisho_domain::audit::Actor;
use sekisho_domain::secret::Secret;
use sekisho_domain::user::{Role, User};
use sekisho_domain::vendor::Vendor;
use serde::{Deserialize, Serialize};
use std::sync::{Mutex, RwLock};
use std::time::{Duration, Instant};

use super::error::ApiError;

/// The gateway's token keys: this node's signing key, and every key accepted for checking,
/// each with its `kid`: this node's, and those the other nodes of the group published in the
/// database (reloaded when a token names a key not known yet, at most once a second, and
/// every minute so that retired keys stop being accepted). A node's key can so be rotated
/// without logging anyone out.
pub struct TokenKeys {
    signing: RwLock<Signing>,
    decoding: RwLock<Vec<(String, DecodingKey)>>,
    /// When the published keys were last read: at all, and for a token naming an unknown key.
    reloaded: Mutex<(Option<Instant>, Option<Instant>)>,
}

/// The key this node signs with now.
struct Signing {
    kid: String,
    encoding: EncodingKey,
    own: DecodingKey,
}

impl Signing {
    fn ed25519(
        kid: String,
        private_pem: &Secret<String>,
        public_pem: &str,
    ) -> Result<Self, TokenKeyError> {
        Ok(Self {
            encoding: EncodingKey::from_ed_pem(private_pem.expose().as_bytes())
                .map_err(|e| TokenKeyError(e.to_string()))?,
            own: DecodingKey::from_ed_pem(public_pem.as_bytes())
                .map_err(|e| TokenKeyError(e.to_string()))?,
            kid,
        })
    }
}

/// What [`TokenKeys::verify`] answers for a token signed with a key not known here.
pub const UNKNOWN_KEY: &str = "token signed by an unknown key";

/// How often the published keys are read again, and how soon again for an unknown `kid`.
const RELOAD_EVERY: Duration = Duration::from_secs(60);
const RELOAD_UNKNOWN: Duration = Duration::from_secs(1);

impl std::fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenKeys")
            .field("kid", &self.kid())
            .finish_non_exhaustive()
    }
}

/// Why token keys could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("invalid token key: {0}")]
pub struct TokenKeyError(String);

impl TokenKeys {
    /// From the Ed25519 private key (PKCS#8 PEM) and its public key (SPKI PEM).
    pub fn ed25519(
        kid: String,
        private_pem: &Secret<String>,
        public_pem: &str,
    ) -> Result<Self, TokenKeyError> {
        let signing = Signing::ed25519(kid, private_pem, public_pem)?;
        Ok(Self {
            decoding: RwLock::new(vec![(signing.kid.clone(), signing.own.clone())]),
            signing: RwLock::new(signing),
            reloaded: Mutex::new((None, None)),
        })
    }

    /// Signs with another key from now on (its file was replaced: `sekisho node
    /// rotate-token-key` while the node serves). The previous key goes on being accepted, as
    /// the database lists it, until the tokens it signed have expired. Returns whether the
    /// key changed.
    pub fn sign_with(
        &self,
        kid: String,
        private_pem: &Secret<String>,
        public_pem: &str,
    ) -> Result<bool, TokenKeyError> {
        if self.kid() == kid {
            return Ok(false);
        }
        let signing = Signing::ed25519(kid, private_pem, public_pem)?;
        let mut keys = self.decoding.write().unwrap_or_else(|e| e.into_inner());
        keys.retain(|(k, _)| *k != signing.kid);
        keys.push((signing.kid.clone(), signing.own.clone()));
        *self.signing.write().unwrap_or_else(|e| e.into_inner()) = signing;
        Ok(true)
    }

    fn signing(&self) -> std::sync::RwLockReadGuard<'_, Signing> {
        self.signing.read().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether the published keys should be read again: for a token naming a key not known
    /// here (`unknown`, what [`TokenKeys::verify`] answers with [`UNKNOWN_KEY`]) at most once a
    /// second, so that made-up key ids cannot flood the database; otherwise when the last
    /// reading is a minute old. Claims the reload, so that concurrent requests do not all read.
    pub fn reload_due(&self, unknown: bool) -> bool {
        let mut last = self.reloaded.lock().unwrap_or_else(|e| e.into_inner());
        let (regular, for_unknown) = &mut *last;
        let now = Instant::now();
        let recent =
            |at: &Option<Instant>, every| at.is_some_and(|at| now.duration_since(at) < every);
        if unknown {
            if recent(for_unknown, RELOAD_UNKNOWN) {
                return false;
            }
            *for_unknown = Some(now);
        } else if recent(regular, RELOAD_EVERY) {
            return false;
        }
        *regular = Some(now);
        true
    }

    /// Accepts exactly this node's key and `published` (`(kid, public key PEM)`, as the
    /// database lists the keys not retired); a key that does not parse is skipped and logged.
    pub fn accept(&self, published: &[(String, String)]) {
        let (own_kid, own) = {
            let signing = self.signing();
            (signing.kid.clone(), signing.own.clone())
        };
        let mut keys = vec![(own_kid.clone(), own)];
        for (kid, pem) in published {
            if *kid == own_kid {
                continue;
            }
            match DecodingKey::from_ed_pem(pem.as_bytes()) {
                Ok(k) => keys.push((kid.clone(), k)),
                Err(e) => {
                    tracing::warn!(kid = %kid, error = %e, "ignoring a published token key that does not parse")
                }
            }
        }
        *self.decoding.write().unwrap_or_else(|e| e.into_inner()) = keys;
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<(String, DecodingKey)>> {
        self.decoding.read().unwrap_or_else(|e| e.into_inner())
    }

    /// The id of the key this node signs with now.
    pub fn kid(&self) -> String {
        self.signing().kid.clone()
    }

    pub fn issue(&self, claims: &Claims) -> Result<String, ApiError> {
        let signing = self.signing();
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(signing.kid.clone());
        jsonwebtoken::encode(&header, claims, &signing.encoding)
            .map_err(|e| ApiError::Internal(format!("signing token: {e}")))
    }

    /// Checks a token: EdDSA only (so `none` and HMAC are refused), a known `kid`, a valid
    /// signature and an unexpired `exp`.
    pub fn verify(&self, token: &str) -> Result<Claims, &'static str> {
        // Read `alg` ourselves first: a header naming an algorithm the library does not know
        // (`none`) should be refused as such, not as "malformed".
        let head = token.split('.').next().ok_or("malformed token")?;
        let head: serde_json::Value = URL_SAFE_NO_PAD
            .decode(head)
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok())
            .ok_or("malformed token")?;
        if head.get("alg").and_then(|a| a.as_str()) != Some("EdDSA") {
            return Err("token algorithm not accepted");
        }
        let header = jsonwebtoken::decode_header(token).map_err(|_| "malformed token")?;
        let kid = header.kid.ok_or("token has no key id")?;
        let key = self
            .read()
            .iter()
            .find(|(k, _)| *k == kid)
            .map(|(_, key)| key.clone())
            .ok_or(UNKNOWN_KEY)?;
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub", "iat", "jti"]);
        jsonwebtoken::decode::<Claims>(token, &key, &validation)
            .map(|d| d.claims)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "token expired; log in again",
                jsonwebtoken::errors::ErrorKind::InvalidSignature => "token signature is invalid",
                _ => "invalid token",
            })
    }
}

/// What a token says.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The user id.
    pub sub: String,
    pub role: Role,
    /// The vendor, for vendor engineers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vendor: Option<String>,
    pub iat: i64,
    pub exp: i64,
    /// This token's id: a logout revokes exactly it.
    pub jti: String,
    /// The account's token generation when it was issued: a password change or disabling
    /// the account bumps the generation and so revokes every earlier token.
    pub tgen: i64,
}

impl Claims {
    /// When the token stops working anyway.
    pub fn expires_at(&self) -> Timestamp {
        Timestamp::from_second(self.exp).unwrap_or(Timestamp::UNIX_EPOCH)
    }
}

/// The authenticated account making a request, re-read from the database on every request.
#[derive(Clone, Debug)]
pub struct Caller {
    pub user: User,
    /// The caller's vendor, for vendor engineers.
    pub vendor: Option<Vendor>,
    pub source: Option<String>,
    /// The token this request came with.
    pub claims: Claims,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor::user(&self.user)
    }

    pub fn role(&self) -> Role {
        self.user.role
    }

    /// The vendor a vendor engineer is limited to; `None` for staff.
    pub fn vendor_scope(&self) -> Option<sekisho_domain::ids::VendorId> {
        if self.user.role == Role::Vendor {
            self.user.vendor_id
        } else {
            None
        }
    }

    pub fn source(&self) -> Option<&str> {
        self.source.as_deref()
    }
}
