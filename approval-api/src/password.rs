//! Password hashing with Argon2id (the crate's recommended parameters).

use argon2::Argon2;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use sekisho_domain::secret::Secret;

/// Why a password could not be hashed.
#[derive(Debug, thiserror::Error)]
#[error("cannot hash password: {0}")]
pub struct HashError(String);

/// Passwords shorter than this are refused when set.
pub const MIN_LENGTH: usize = 12;

/// Hashes a password into a PHC string (`$argon2id$v=19$...`).
pub fn hash(password: &Secret<String>) -> Result<String, HashError> {
    Argon2::default()
        .hash_password(password.expose().as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| HashError(e.to_string()))
}

/// Whether `password` matches `phc`. A malformed stored hash never matches.
pub fn verify(password: &Secret<String>, phc: &str) -> bool {
    Argon2::default()
        .verify_password(password.expose().as_bytes(), phc)
        .is_ok()
}

/// A random password for generated accounts (the initial admin): 24 characters, ~143 bits.
pub fn generate() -> Result<Secret<String>, HashError> {
    use aws_lc_rs::rand::{SecureRandom, SystemRandom};
    const ALPHABET: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    let mut bytes = [0u8; 24];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| HashError("random number generator failed".into()))?;
    // 256 % 57 != 0 leaves a tiny bias; 24 characters keep well over 128 bits regardless.
    let s = bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect();
    Ok(Secret::new(s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_then_verify() {
        let pw = Secret::new("correct horse battery".to_owned());
        let h = hash(&pw).unwrap();
        assert!(h.starts_with("$argon2id$"));
        assert!(verify(&pw, &h));
        assert!(!verify(&Secret::new("wrong".into()), &h));
        assert!(!verify(&pw, "not a hash"));
    }

    #[test]
    fn generated_passwords_differ_and_are_long() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_eq!(a.expose().len(), 24);
        assert_ne!(a.expose(), b.expose());
    }
}
