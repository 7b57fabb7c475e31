//! Sealing of secrets at rest (target credentials) with AES-256-GCM.
//!
//! A sealed value is `v1:` followed by base64 of nonce ‖ ciphertext ‖ tag. The caller passes
//! a context string (e.g. the target id and level) as associated data, so a sealed value moved
//! to another row no longer opens.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
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

/// The key that seals target credentials. Kept in `DATA_DIR/keys/at-rest.key` (0600).
pub struct AtRestKey(LessSafeKey);

impl std::fmt::Debug for AtRestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AtRestKey(<secret>)")
    }
}

impl AtRestKey {
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CryptoError> {
        if bytes.len() != KEY_LEN {
            return Err(CryptoError::KeyLength);
        }
        let key = UnboundKey::new(&AES_256_GCM, bytes).map_err(|_| CryptoError::KeyLength)?;
        Ok(Self(LessSafeKey::new(key)))
    }

    /// A fresh random key's bytes (for first start).
    pub fn generate() -> Result<Secret<Vec<u8>>, CryptoError> {
        let mut bytes = vec![0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| CryptoError::Random)?;
        Ok(Secret::new(bytes))
    }

    pub fn seal(&self, plaintext: &Secret<String>, context: &str) -> Result<String, CryptoError> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| CryptoError::Random)?;
        let mut buf = plaintext.expose().as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(context.as_bytes()),
                &mut buf,
            )
            .map_err(|_| CryptoError::Open)?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!("v1:{}", STANDARD.encode(out)))
    }

    pub fn open(&self, sealed: &str, context: &str) -> Result<Secret<String>, CryptoError> {
        let b64 = sealed.strip_prefix("v1:").ok_or(CryptoError::Malformed)?;
        let raw = STANDARD.decode(b64).map_err(|_| CryptoError::Malformed)?;
        if raw.len() < NONCE_LEN {
            return Err(CryptoError::Malformed);
        }
        let (nonce, rest) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| CryptoError::Malformed)?;
        let mut buf = rest.to_vec();
        let plain = self
            .0
            .open_in_place(nonce, Aad::from(context.as_bytes()), &mut buf)
            .map_err(|_| CryptoError::Open)?;
        String::from_utf8(plain.to_vec())
            .map(Secret::new)
            .map_err(|_| CryptoError::Malformed)
    }
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
        assert!(matches!(key().open(&sealed, "a"), Err(CryptoError::Open)));
        let mut raw = STANDARD.decode(&sealed[3..]).unwrap();
        let last = raw.len() - 1;
        raw[last] ^= 1;
        let tampered = format!("v1:{}", STANDARD.encode(raw));
        assert!(matches!(k.open(&tampered, "a"), Err(CryptoError::Open)));
        assert!(matches!(k.open("v2:xx", "a"), Err(CryptoError::Malformed)));
        assert!(matches!(
            AtRestKey::from_bytes(&[0; 16]),
            Err(CryptoError::KeyLength)
        ));
    }
}
