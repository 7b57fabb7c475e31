//! Sealing of secrets at rest (target credentials, second-factor secrets) with AES-256-GCM.
//!
//! A sealed value is `v2:KID:` followed by base64 of nonce ‖ ciphertext ‖ tag, where `KID`
//! names the key that sealed it (see [`key_id`]). Values sealed before keys had ids are
//! `v1:` and open with whichever key of the ring sealed them. The caller passes a context
//! string (e.g. the target id and level) as associated data, so a sealed value moved to
//! another row no longer opens.
//!
//! The at-rest key is a ring so that it can be replaced while the group serves: the first
//! key seals, every key of the ring opens (`sekisho node rotate-at-rest-key`).

use std::sync::RwLock;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use sekisho_domain::secret::Secret;

/// Length of the at-rest key in bytes.
pub const KEY_LEN: usize = 32;

/// Why a secret could not be sealed or opened.
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("at-rest key must be {KEY_LEN} bytes")]
    KeyLength,
    #[error("sealed value is malformed")]
    Malformed,
    #[error("sealed value does not open with this key and context (wrong key, or altered)")]
    Open,
    #[error(
        "sealed with at-rest key {0}, which this node does not hold (a key replaced while this node was away: join the group again)"
    )]
    UnknownKey(String),
    #[error("the at-rest key {0} is the one sealing; make another key current first")]
    Current(String),
    #[error("random number generator failed")]
    Random,
}

/// A code people type (an enrollment code, a recovery code): `groups` groups of `len`
/// characters from a 32-letter alphabet without look-alikes (5 bits each, no bias), joined
/// with `-`, e.g. `K7Q2M-X9W4P`.
pub fn typed_code(groups: usize, len: usize) -> Result<String, CryptoError> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut raw = vec![0u8; groups * len];
    SystemRandom::new()
        .fill(&mut raw)
        .map_err(|_| CryptoError::Random)?;
    let letters: Vec<char> = raw
        .iter()
        .map(|b| ALPHABET[usize::from(*b % 32)] as char)
        .collect();
    Ok(letters
        .chunks(len)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

/// The id of an at-rest key: the first 16 hex digits of a SHA-256 over a label and the key.
/// Names the key in sealed values, the key file and the audit log; shows nothing of it.
pub fn key_id(bytes: &[u8]) -> String {
    let mut input = b"sekisho at-rest key id\n".to_vec();
    input.extend_from_slice(bytes);
    hex::encode(&digest(&SHA256, &input).as_ref()[..8])
}

/// The id of the key that sealed `sealed`, if it says (`v2:` values).
pub fn sealed_key_id(sealed: &str) -> Option<&str> {
    sealed
        .strip_prefix("v2:")?
        .split_once(':')
        .map(|(kid, _)| kid)
}

/// nonce ‖ ciphertext ‖ tag of `plain` under `key`, bound to `context`, with a fresh random
/// nonce: the one sealing format of this module.
fn aead_seal(key: &LessSafeKey, plain: &[u8], context: &str) -> Result<Vec<u8>, CryptoError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| CryptoError::Random)?;
    let mut buf = plain.to_vec();
    key.seal_in_place_append_tag(
        Nonce::assume_unique_for_key(nonce),
        Aad::from(context.as_bytes()),
        &mut buf,
    )
    .map_err(|_| CryptoError::Open)?;
    let mut out = nonce.to_vec();
    out.extend_from_slice(&buf);
    Ok(out)
}

/// Opens what [`aead_seal`] made.
fn aead_open(key: &LessSafeKey, raw: &[u8], context: &str) -> Result<Vec<u8>, CryptoError> {
    if raw.len() < NONCE_LEN {
        return Err(CryptoError::Malformed);
    }
    let (nonce, sealed) = raw.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Malformed)?;
    let mut buf = sealed.to_vec();
    let plain = key
        .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
        .map_err(|_| CryptoError::Open)?;
    Ok(plain.to_vec())
}

struct RingKey {
    kid: String,
    key: LessSafeKey,
    bytes: Secret<Vec<u8>>,
}

impl RingKey {
    fn new(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::KeyLength);
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| CryptoError::KeyLength)?;
        Ok(Self {
            kid: key_id(bytes),
            key: LessSafeKey::new(key),
            bytes: Secret::new(bytes.to_vec()),
        })
    }
}

/// The keys that seal secrets at rest: the first seals, all open. Kept in
/// `DATA_DIR/keys/at-rest.key` (0600), one hex key per line, the sealing one first.
pub struct AtRestKey(RwLock<Vec<RingKey>>);

impl std::fmt::Debug for AtRestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AtRestKey({:?}, <secret>)", self.kids())
    }
}

impl AtRestKey {
    /// A ring of one key.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        Ok(Self(RwLock::new(vec![RingKey::new(bytes)?])))
    }

    /// A ring from its file's text: one hex key per line, the sealing key first (blank
    /// lines ignored). `Err` names the line that is not a key.
    pub fn from_ring_text(text: &str) -> Result<Self, String> {
        let mut ring: Vec<RingKey> = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let bytes = hex::decode(line).map_err(|e| format!("line {}: {e}", n + 1))?;
            let key = RingKey::new(&bytes).map_err(|e| format!("line {}: {e}", n + 1))?;
            if !ring.iter().any(|k| k.kid == key.kid) {
                ring.push(key);
            }
        }
        if ring.is_empty() {
            return Err("no key".into());
        }
        Ok(Self(RwLock::new(ring)))
    }

    /// The ring as its file holds it.
    pub fn ring_text(&self) -> Secret<String> {
        let ring = self.read();
        let mut text = String::new();
        for k in ring.iter() {
            text.push_str(&hex::encode(k.bytes.expose()));
            text.push('\n');
        }
        Secret::new(text)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<RingKey>> {
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<RingKey>> {
        self.0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A fresh random key's bytes (for first start, and for a rotation).
    pub fn generate() -> Result<Secret<Vec<u8>>, CryptoError> {
        let mut bytes = vec![0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| CryptoError::Random)?;
        Ok(Secret::new(bytes))
    }

    /// The id of the key that seals.
    pub fn current_kid(&self) -> String {
        self.read()
            .first()
            .map(|k| k.kid.clone())
            .unwrap_or_default()
    }

    /// The ids of the ring's keys, the sealing one first.
    pub fn kids(&self) -> Vec<String> {
        self.read().iter().map(|k| k.kid.clone()).collect()
    }

    /// Whether the ring holds key `kid`.
    pub fn holds(&self, kid: &str) -> bool {
        self.read().iter().any(|k| k.kid == kid)
    }

    /// Adds a key (it opens at once, and seals once made current). Returns its id; adding a
    /// key held already changes nothing.
    pub fn install(&self, bytes: &[u8]) -> Result<String, CryptoError> {
        let key = RingKey::new(bytes)?;
        let kid = key.kid.clone();
        let mut ring = self.write();
        if !ring.iter().any(|k| k.kid == kid) {
            ring.push(key);
        }
        Ok(kid)
    }

    /// Makes the held key `kid` the sealing one; `false` if the ring does not hold it.
    pub fn make_current(&self, kid: &str) -> bool {
        let mut ring = self.write();
        match ring.iter().position(|k| k.kid == kid) {
            Some(i) => {
                let key = ring.remove(i);
                ring.insert(0, key);
                true
            }
            None => false,
        }
    }

    /// Forgets key `kid` (values it sealed no longer open); never the sealing key. Returns
    /// whether it was held.
    pub fn remove(&self, kid: &str) -> Result<bool, CryptoError> {
        let mut ring = self.write();
        if ring.first().is_some_and(|k| k.kid == kid) {
            return Err(CryptoError::Current(kid.to_owned()));
        }
        let before = ring.len();
        ring.retain(|k| k.kid != kid);
        Ok(ring.len() != before)
    }

    pub fn seal(&self, plaintext: &Secret<String>, context: &str) -> Result<String, CryptoError> {
        self.seal_bytes(plaintext.expose().as_bytes(), context)
    }

    fn seal_bytes(&self, plaintext: &[u8], context: &str) -> Result<String, CryptoError> {
        let ring = self.read();
        let current = ring.first().ok_or(CryptoError::KeyLength)?;
        let out = aead_seal(&current.key, plaintext, context)?;
        Ok(format!("v2:{}:{}", current.kid, STANDARD.encode(out)))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Secret<String>, CryptoError> {
        let plain = self.open_bytes(sealed, context)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| CryptoError::Malformed)
    }

    fn open_bytes(&self, sealed: &str, context: &str) -> Result<Vec<u8>, CryptoError> {
        let (kid, b64) = if let Some(rest) = sealed.strip_prefix("v2:") {
            let (kid, b64) = rest.split_once(':').ok_or(CryptoError::Malformed)?;
            (Some(kid), b64)
        } else {
            (
                None,
                sealed.strip_prefix("v1:").ok_or(CryptoError::Malformed)?,
            )
        };
        let raw = STANDARD.decode(b64).map_err(|_| CryptoError::Malformed)?;
        if raw.len() < NONCE_LEN {
            return Err(CryptoError::Malformed);
        }
        let ring = self.read();
        match kid {
            Some(kid) => aead_open(
                &ring
                    .iter()
                    .find(|k| k.kid == kid)
                    .ok_or_else(|| CryptoError::UnknownKey(kid.to_owned()))?
                    .key,
                &raw,
                context,
            ),
            // Sealed before keys had ids: whichever key of the ring it opens with.
            None => ring
                .iter()
                .find_map(|k| aead_open(&k.key, &raw, context).ok())
                .ok_or(CryptoError::Open),
        }
    }

    /// The key `kid` (held by this ring) sealed under the sealing key, to hand it to the
    /// other nodes of a group through the database.
    pub fn wrap(&self, kid: &str) -> Result<String, CryptoError> {
        let bytes = self
            .read()
            .iter()
            .find(|k| k.kid == kid)
            .map(|k| k.bytes.expose().clone())
            .ok_or_else(|| CryptoError::UnknownKey(kid.to_owned()))?;
        self.seal_bytes(&bytes, &wrap_context(kid))
    }

    /// Opens a key [`AtRestKey::wrap`] made and adds it to the ring; checks it is key `kid`.
    pub fn unwrap_into(&self, wrapped: &str, kid: &str) -> Result<(), CryptoError> {
        let bytes = Secret::new(self.open_bytes(wrapped, &wrap_context(kid))?);
        if key_id(bytes.expose()) != kid {
            return Err(CryptoError::Open);
        }
        self.install(bytes.expose()).map(drop)
    }
}

fn wrap_context(kid: &str) -> String {
    format!("sekisho:at-rest-key:{kid}")
}

/// Shortest passphrase accepted for a key export.
pub const MIN_PASSPHRASE_CHARS: usize = 12;

/// Data sealed under a passphrase: Argon2id turns the passphrase into an AES-256-GCM key.
/// Written into files people carry (a node's key export); the parameters travel with it.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct PassphraseSealed {
    /// `argon2id`.
    pub kdf: String,
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
    /// base64.
    pub salt: String,
    /// base64 of nonce ‖ ciphertext ‖ tag.
    pub sealed: String,
}

/// Why something sealed under a passphrase could not be made or opened.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    #[error("the passphrase is too short: at least {MIN_PASSPHRASE_CHARS} characters")]
    TooShort,
    #[error("wrong passphrase, or the file was altered")]
    Open,
    #[error("unsupported key derivation `{0}` (expected argon2id)")]
    Kdf(String),
    #[error("key derivation parameters out of range: {0}")]
    Params(String),
    #[error("sealed data is malformed")]
    Malformed,
    #[error("random number generator failed")]
    Random,
}

impl From<CryptoError> for PassphraseError {
    fn from(e: CryptoError) -> Self {
        match e {
            CryptoError::Random => PassphraseError::Random,
            CryptoError::Open => PassphraseError::Open,
            _ => PassphraseError::Malformed,
        }
    }
}

/// Argon2id at 64 MiB, 3 passes: a guess costs an attacker what it costs us (~0.2 s).
const EXPORT_MEMORY_KIB: u32 = 64 * 1024;
const EXPORT_ITERATIONS: u32 = 3;
/// The most a file may ask for (a hostile file must not make us allocate without bound).
const MAX_MEMORY_KIB: u32 = 1024 * 1024;
const MAX_ITERATIONS: u32 = 64;

fn passphrase_key(
    passphrase: &Secret<String>,
    salt: &[u8],
    memory_kib: u32,
    iterations: u32,
    parallelism: u32,
) -> Result<LessSafeKey, PassphraseError> {
    if memory_kib > MAX_MEMORY_KIB || iterations > MAX_ITERATIONS || parallelism > 16 {
        return Err(PassphraseError::Params(format!(
            "{memory_kib} KiB, {iterations} passes, {parallelism} lanes"
        )));
    }
    let params = argon2::Params::new(memory_kib, iterations, parallelism, Some(KEY_LEN))
        .map_err(|e| PassphraseError::Params(e.to_string()))?;
    let mut key = [0u8; KEY_LEN];
    argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params)
        .hash_password_into(passphrase.expose().as_bytes(), salt, &mut key)
        .map_err(|e| PassphraseError::Params(e.to_string()))?;
    let unbound = UnboundKey::new(&AES_256_GCM, &key).map_err(|_| PassphraseError::Malformed)?;
    key.fill(0);
    Ok(LessSafeKey::new(unbound))
}

/// Seals `plain` under `passphrase`, bound to `context` (e.g. the file's format and the
/// group's fingerprint, which stay readable beside it).
pub fn seal_with_passphrase(
    plain: &[u8],
    passphrase: &Secret<String>,
    context: &str,
) -> Result<PassphraseSealed, PassphraseError> {
    if passphrase.expose().chars().count() < MIN_PASSPHRASE_CHARS {
        return Err(PassphraseError::TooShort);
    }
    let mut salt = [0u8; 16];
    SystemRandom::new()
        .fill(&mut salt)
        .map_err(|_| PassphraseError::Random)?;
    let key = passphrase_key(passphrase, &salt, EXPORT_MEMORY_KIB, EXPORT_ITERATIONS, 1)?;
    let out = aead_seal(&key, plain, context).map_err(PassphraseError::from)?;
    Ok(PassphraseSealed {
        kdf: "argon2id".into(),
        memory_kib: EXPORT_MEMORY_KIB,
        iterations: EXPORT_ITERATIONS,
        parallelism: 1,
        salt: STANDARD.encode(salt),
        sealed: STANDARD.encode(out),
    })
}

/// Opens what [`seal_with_passphrase`] made.
pub fn open_with_passphrase(
    sealed: &PassphraseSealed,
    passphrase: &Secret<String>,
    context: &str,
) -> Result<Secret<Vec<u8>>, PassphraseError> {
    if sealed.kdf != "argon2id" {
        return Err(PassphraseError::Kdf(sealed.kdf.clone()));
    }
    let salt = STANDARD
        .decode(&sealed.salt)
        .map_err(|_| PassphraseError::Malformed)?;
    let raw = STANDARD
        .decode(&sealed.sealed)
        .map_err(|_| PassphraseError::Malformed)?;
    if raw.len() < NONCE_LEN {
        return Err(PassphraseError::Malformed);
    }
    let key = passphrase_key(
        passphrase,
        &salt,
        sealed.memory_kib,
        sealed.iterations,
        sealed.parallelism,
    )?;
    aead_open(&key, &raw, context)
        .map(Secret::new)
        .map_err(PassphraseError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> AtRestKey {
        AtRestKey::from_bytes(AtRestKey::generate().unwrap().expose()).unwrap()
    }

    #[test]
    fn round_trip_and_ciphertext_hides_the_value() {
        let k = key();
        let secret = Secret::new("s3cr3t-password".to_owned());
        let sealed = k.seal(&secret, "target:1:reference").unwrap();
        assert!(!sealed.contains("s3cr3t"));
        assert_ne!(
            sealed,
            k.seal(&secret, "target:1:reference").unwrap(),
            "nonce is random"
        );
        assert_eq!(
            k.open(&sealed, "target:1:reference").unwrap().expose(),
            "s3cr3t-password"
        );
    }

    #[test]
    fn wrong_context_wrong_key_and_tampering_fail() {
        let k = key();
        let sealed = k.seal(&Secret::new("pw".into()), "a").unwrap();
        assert!(matches!(k.open(&sealed, "b"), Err(CryptoError::Open)));
        assert!(matches!(
            key().open(&sealed, "a"),
            Err(CryptoError::UnknownKey(_))
        ));
        let (head, b64) = sealed.rsplit_once(':').unwrap();
        let mut raw = STANDARD.decode(b64).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let tampered = format!("{head}:{}", STANDARD.encode(raw));
        assert!(matches!(k.open(&tampered, "a"), Err(CryptoError::Open)));
        assert!(matches!(k.open("v2:xx", "a"), Err(CryptoError::Malformed)));
        assert!(matches!(
            AtRestKey::from_bytes(&[0; 16]),
            Err(CryptoError::KeyLength)
        ));
    }

    /// A value sealed the old way (`v1:`, no key id), as earlier versions wrote it.
    fn seal_v1(bytes: &[u8], plain: &str, context: &str) -> String {
        let key = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, bytes).unwrap());
        let nonce = [7u8; NONCE_LEN];
        let mut buf = plain.as_bytes().to_vec();
        key.seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(context.as_bytes()),
            &mut buf,
        )
        .unwrap();
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        format!("v1:{}", STANDARD.encode(out))
    }

    #[test]
    fn a_ring_seals_with_its_first_key_and_opens_with_any() {
        let old = AtRestKey::generate().unwrap();
        let new = AtRestKey::generate().unwrap();
        let ring = AtRestKey::from_bytes(old.expose()).unwrap();
        let old_kid = key_id(old.expose());
        assert_eq!(ring.current_kid(), old_kid);
        let by_old = ring.seal(&Secret::new("pw-old".into()), "c").unwrap();
        assert_eq!(sealed_key_id(&by_old), Some(old_kid.as_str()));
        let legacy = seal_v1(old.expose(), "pw-legacy", "c");
        assert_eq!(sealed_key_id(&legacy), None);

        // Handed over wrapped under the sealing key, as through the database.
        let staging = AtRestKey::from_bytes(old.expose()).unwrap();
        let new_kid = staging.install(new.expose()).unwrap();
        let wrapped = staging.wrap(&new_kid).unwrap();
        assert!(!wrapped.contains(&hex::encode(new.expose())));
        assert!(matches!(
            ring.unwrap_into(&wrapped, &old_kid),
            Err(CryptoError::Open)
        ));
        ring.unwrap_into(&wrapped, &new_kid).unwrap();
        assert_eq!(ring.kids(), [old_kid.clone(), new_kid.clone()]);
        assert_eq!(ring.current_kid(), old_kid, "installing does not seal yet");

        assert!(ring.make_current(&new_kid));
        let by_new = ring.seal(&Secret::new("pw-new".into()), "c").unwrap();
        assert_eq!(sealed_key_id(&by_new), Some(new_kid.as_str()));
        for (sealed, plain) in [
            (&by_old, "pw-old"),
            (&legacy, "pw-legacy"),
            (&by_new, "pw-new"),
        ] {
            assert_eq!(ring.open(sealed, "c").unwrap().expose(), plain);
        }
        // The file's text gives the same ring back.
        let text = ring.ring_text();
        let again = AtRestKey::from_ring_text(text.expose()).unwrap();
        assert_eq!(again.kids(), [new_kid.clone(), old_kid.clone()]);

        // The sealing key cannot be removed; once the old one is, its values do not open.
        assert!(matches!(
            ring.remove(&new_kid),
            Err(CryptoError::Current(_))
        ));
        assert!(ring.remove(&old_kid).unwrap());
        assert!(!ring.remove(&old_kid).unwrap());
        assert!(matches!(ring.open(&by_old, "c"), Err(CryptoError::UnknownKey(k)) if k == old_kid));
        assert!(matches!(ring.open(&legacy, "c"), Err(CryptoError::Open)));
        assert_eq!(ring.open(&by_new, "c").unwrap().expose(), "pw-new");

        assert!(AtRestKey::from_ring_text("\n").is_err());
        let err =
            AtRestKey::from_ring_text(&format!("{}\nzz\n", hex::encode(new.expose()))).unwrap_err();
        assert!(err.starts_with("line 2:"), "{err}");
    }

    #[test]
    fn a_passphrase_seals_and_only_that_passphrase_and_context_open() {
        let pass = Secret::new("correct horse battery".to_owned());
        let sealed = seal_with_passphrase(b"the keys", &pass, "ctx").unwrap();
        assert_eq!(sealed.memory_kib, 64 * 1024);
        assert_eq!(
            open_with_passphrase(&sealed, &pass, "ctx")
                .unwrap()
                .expose(),
            b"the keys"
        );
        let wrong = Secret::new("correct horse battery!".to_owned());
        assert!(matches!(
            open_with_passphrase(&sealed, &wrong, "ctx"),
            Err(PassphraseError::Open)
        ));
        assert!(matches!(
            open_with_passphrase(&sealed, &pass, "other"),
            Err(PassphraseError::Open)
        ));
        assert!(matches!(
            seal_with_passphrase(b"x", &Secret::new("short".into()), "ctx"),
            Err(PassphraseError::TooShort)
        ));
        let mut hostile = sealed.clone();
        hostile.memory_kib = u32::MAX;
        assert!(matches!(
            open_with_passphrase(&hostile, &pass, "ctx"),
            Err(PassphraseError::Params(_))
        ));
    }
}
