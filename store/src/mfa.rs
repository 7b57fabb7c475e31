//! The second factor of a login (issue #17): TOTP (RFC 6238: HMAC-SHA1, 6 digits, 30 s),
//! with ten one-time recovery codes.
//!
//! The secret is sealed with the at-rest key, bound to the user's row. Enrolment is two steps:
//! [`Store::mfa_begin`] keeps a new secret pending, [`Store::mfa_confirm`] turns it on when the
//! user proves their authenticator holds it. [`Store::mfa_check`] accepts a code of the
//! current step or one step either side, once: the step it matched is stored, and a code of
//! that step or an earlier one is refused as replayed (an atomic conditional update, so two
//! logins racing with one code cannot both pass). A recovery code is accepted once.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use sekisho_domain::audit::{Actor, AuditEvent};
use sekisho_domain::ids::UserId;
use sekisho_domain::secret::Secret;
use sekisho_domain::user::User;
use sqlx::Row;
use totp_rs::{Algorithm, TOTP};

use super::audit::{self, NewAuditEvent};
use super::crypto::AtRestKey;
use super::throttle::LoginThrottle;
use super::{Result, Store, StoreError};

/// Seconds per code.
pub const STEP: u64 = 30;
/// Recovery codes made at enrolment.
pub const RECOVERY_CODES: usize = 10;

/// What a presented code was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MfaCheck {
    /// A valid code, now used.
    Accepted,
    /// A recovery code, now used; this many are left.
    RecoveryCode {
        left: u32,
    },
    /// A code that was valid but has been used already.
    Replayed,
    Wrong,
}

/// A presented code, through the login throttle ([`Store::second_factor`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CodeVerdict {
    /// Right (a code of its step, or a recovery code), now used; the throttle is cleared.
    Accepted,
    /// Not checked: the address, or the account's second factor, must wait this long.
    Held(std::time::Duration),
    /// Wrong, or used already: counted, and the answer is to be held back `slowdown`.
    Refused {
        replayed: bool,
        slowdown: std::time::Duration,
    },
}

/// A user's second factor, as far as a login needs to know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MfaState {
    pub enabled: bool,
    /// A secret made by [`Store::mfa_begin`] and not confirmed yet.
    pub pending: bool,
}

fn context(user: UserId) -> String {
    secret_context(&user.to_string())
}

/// What a user's sealed second-factor secret is bound to: the user's id, as stored.
pub(crate) fn secret_context(user: &str) -> String {
    format!("sekisho:user:{user}:totp")
}

fn totp(secret: &[u8]) -> TOTP {
    TOTP::new_unchecked(Algorithm::SHA1, 6, 1, STEP, secret.to_vec())
}

fn random(n: usize) -> Result<Vec<u8>> {
    let mut b = vec![0u8; n];
    SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| StoreError::Corrupt("random number generator failed".into()))?;
    Ok(b)
}

/// A recovery code: two groups of five typed characters (`K7Q2M-X9W4P`), 50 bits.
fn recovery_code() -> Result<String> {
    super::crypto::typed_code(2, 5).map_err(|e| StoreError::Corrupt(e.to_string()))
}

fn code_digest(code: &str) -> String {
    let normal: String = code
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    hex::encode(digest(&SHA256, normal.as_bytes()).as_ref())
}

/// The `otpauth://` URI an authenticator app reads (from the QR code).
pub fn otpauth_uri(username: &str, secret_base32: &str) -> String {
    let label: String = username
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect();
    format!(
        "otpauth://totp/Sekisho:{label}?secret={secret_base32}&issuer=Sekisho&algorithm=SHA1&digits=6&period={STEP}"
    )
}

/// The code for `secret` (base32) at `unix_seconds`: for tests and tools.
pub fn code_at(secret_base32: &str, unix_seconds: u64) -> Option<String> {
    let bytes = totp_rs::Secret::Encoded(secret_base32.to_owned())
        .to_bytes()
        .ok()?;
    Some(totp(&bytes).generate(unix_seconds))
}

impl Store {
    pub async fn mfa_state(&self, user: UserId) -> Result<MfaState> {
        let row = sqlx::query("SELECT mfa_enabled, mfa_secret_sealed FROM users WHERE id = $1")
            .bind(user.to_string())
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("user {user}")))?;
        let enabled = row.try_get::<i64, _>("mfa_enabled")? != 0;
        let secret: Option<String> = row.try_get("mfa_secret_sealed")?;
        Ok(MfaState {
            enabled,
            pending: !enabled && secret.is_some(),
        })
    }

    /// A new pending secret for `user` (base32); refused while a second factor is on (an
    /// admin resets it first). Audited.
    pub async fn mfa_begin(
        &self,
        user: &User,
        key: &AtRestKey,
        source: Option<&str>,
    ) -> Result<String> {
        if self.mfa_state(user.id).await?.enabled {
            return Err(StoreError::Conflict(format!(
                "{} already has a second factor; an admin resets it before a new one is enrolled",
                user.username
            )));
        }
        let secret = totp_rs::Secret::Raw(random(20)?).to_encoded().to_string();
        let sealed = key
            .seal(&Secret::new(secret.clone()), &context(user.id))
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE users SET mfa_secret_sealed = $1, mfa_last_step = NULL WHERE id = $2 AND mfa_enabled = 0",
        )
        .bind(sealed)
        .bind(user.id.to_string())
        .execute(&mut *tx)
        .await?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                Actor::user(user),
                user.vendor_id,
                source,
                AuditEvent::MfaEnrollmentStarted {
                    user: user.id,
                    username: user.username.clone(),
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(secret)
    }

    async fn mfa_secret(&self, user: UserId, key: &AtRestKey) -> Result<Option<String>> {
        let sealed: Option<String> =
            sqlx::query("SELECT mfa_secret_sealed FROM users WHERE id = $1")
                .bind(user.to_string())
                .fetch_optional(&self.pool)
                .await?
                .map(|r| r.try_get("mfa_secret_sealed"))
                .transpose()?
                .flatten();
        sealed
            .map(|s| {
                key.open(&s, &context(user))
                    .map(|s| s.expose().clone())
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .transpose()
    }

    /// The step of `code` for `user`'s secret at `now` (unix seconds), if it is one.
    async fn matching_step(
        &self,
        user: UserId,
        key: &AtRestKey,
        code: &str,
        now: u64,
    ) -> Result<Option<u64>> {
        let Some(secret) = self.mfa_secret(user, key).await? else {
            return Ok(None);
        };
        let bytes = totp_rs::Secret::Encoded(secret)
            .to_bytes()
            .map_err(|_| StoreError::Corrupt("a stored TOTP secret is not base32".into()))?;
        let t = totp(&bytes);
        let step = now / STEP;
        Ok([step.saturating_sub(1), step, step + 1]
            .into_iter()
            .find(|s| {
                let expected = t.generate(s * STEP);
                aws_lc_rs::constant_time::verify_slices_are_equal(
                    expected.as_bytes(),
                    code.trim().as_bytes(),
                )
                .is_ok()
            }))
    }

    /// Turns the pending secret on with a first `code`; returns the recovery codes (shown
    /// once; only their SHA-256 is kept). Audited.
    pub async fn mfa_confirm(
        &self,
        user: &User,
        key: &AtRestKey,
        code: &str,
        now: u64,
        source: Option<&str>,
    ) -> Result<Option<Vec<String>>> {
        let state = self.mfa_state(user.id).await?;
        if state.enabled || !state.pending {
            return Err(StoreError::Conflict(format!(
                "{} has no enrolment waiting for a first code",
                user.username
            )));
        }
        let Some(step) = self.matching_step(user.id, key, code, now).await? else {
            return Ok(None);
        };
        let codes = (0..RECOVERY_CODES)
            .map(|_| recovery_code())
            .collect::<Result<Vec<_>>>()?;
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "UPDATE users SET mfa_enabled = 1, mfa_last_step = $1 WHERE id = $2 AND mfa_enabled = 0",
        )
        .bind(i64::try_from(step).unwrap_or(i64::MAX))
        .bind(user.id.to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::Conflict(format!(
                "{} already has a second factor",
                user.username
            )));
        }
        sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
            .bind(user.id.to_string())
            .execute(&mut *tx)
            .await?;
        for c in &codes {
            sqlx::query("INSERT INTO mfa_recovery_codes (user_id, code_sha256) VALUES ($1, $2)")
                .bind(user.id.to_string())
                .bind(code_digest(c))
                .execute(&mut *tx)
                .await?;
        }
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                Actor::user(user),
                user.vendor_id,
                source,
                AuditEvent::MfaEnabled {
                    user: user.id,
                    username: user.username.clone(),
                    recovery_codes: RECOVERY_CODES as u32,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(Some(codes))
    }

    /// Checks a login's second factor: a code (used once), or a recovery code (used once).
    pub async fn mfa_check(
        &self,
        user: &User,
        key: &AtRestKey,
        code: &str,
        now: u64,
        source: Option<&str>,
    ) -> Result<MfaCheck> {
        let code = code.trim();
        if code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()) {
            let Some(step) = self.matching_step(user.id, key, code, now).await? else {
                return Ok(MfaCheck::Wrong);
            };
            let step = i64::try_from(step).unwrap_or(i64::MAX);
            let taken = sqlx::query(
                "UPDATE users SET mfa_last_step = $1 WHERE id = $2 AND mfa_enabled = 1 \
                 AND (mfa_last_step IS NULL OR mfa_last_step < $1)",
            )
            .bind(step)
            .bind(user.id.to_string())
            .execute(&self.pool)
            .await?;
            return Ok(if taken.rows_affected() == 1 {
                MfaCheck::Accepted
            } else {
                MfaCheck::Replayed
            });
        }
        let mut tx = self.begin().await?;
        let used = sqlx::query(
            "UPDATE mfa_recovery_codes SET used_at = $1 WHERE user_id = $2 AND code_sha256 = $3 AND used_at IS NULL",
        )
        .bind(super::micros(super::now()))
        .bind(user.id.to_string())
        .bind(code_digest(code))
        .execute(&mut *tx)
        .await?;
        if used.rows_affected() == 0 {
            return Ok(MfaCheck::Wrong);
        }
        let left: i64 = sqlx::query(
            "SELECT COUNT(*) AS n FROM mfa_recovery_codes WHERE user_id = $1 AND used_at IS NULL",
        )
        .bind(user.id.to_string())
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
        let left = u32::try_from(left).unwrap_or(0);
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                Actor::user(user),
                user.vendor_id,
                source,
                AuditEvent::MfaRecoveryCodeUsed {
                    user: user.id,
                    username: user.username.clone(),
                    left,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(MfaCheck::RecoveryCode { left })
    }

    /// Checks a login's or a session's one-time `code` for `user` through `throttle`, the
    /// one rule for the API and the gateway: nothing is checked while the address
    /// (`throttle_source`) or the account's second factor is held back; a wrong or replayed
    /// code counts toward both; a right one clears them. `source` is what the audit log
    /// records.
    pub async fn second_factor(
        &self,
        throttle: &LoginThrottle,
        user: &User,
        key: &AtRestKey,
        code: &str,
        throttle_source: Option<&str>,
        source: Option<&str>,
    ) -> Result<CodeVerdict> {
        if let Err(wait) = throttle.check_second_factor(throttle_source, &user.username) {
            return Ok(CodeVerdict::Held(wait));
        }
        let now = u64::try_from(jiff::Timestamp::now().as_second()).unwrap_or(0);
        let replayed = match self.mfa_check(user, key, code, now, source).await? {
            MfaCheck::Accepted | MfaCheck::RecoveryCode { .. } => {
                throttle.succeeded(throttle_source, &user.username);
                return Ok(CodeVerdict::Accepted);
            }
            MfaCheck::Replayed => true,
            MfaCheck::Wrong => false,
        };
        let slowdown = throttle.failed_second_factor(throttle_source, &user.username);
        Ok(CodeVerdict::Refused { replayed, slowdown })
    }

    /// Removes `user`'s second factor (an admin, for a lost phone); audited.
    pub async fn mfa_reset(&self, user: &User, by: &User, source: Option<&str>) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE users SET mfa_enabled = 0, mfa_secret_sealed = NULL, mfa_last_step = NULL WHERE id = $1",
        )
        .bind(user.id.to_string())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM mfa_recovery_codes WHERE user_id = $1")
            .bind(user.id.to_string())
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                Actor::user(by),
                user.vendor_id,
                source,
                AuditEvent::MfaReset {
                    user: user.id,
                    username: user.username.clone(),
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc_6238_sha1_vectors_and_the_uri() {
        // RFC 6238 appendix B, SHA-1, the ASCII secret "12345678901234567890", 8 digits there;
        // the last 6 of them here.
        let secret = totp_rs::Secret::Raw(b"12345678901234567890".to_vec())
            .to_encoded()
            .to_string();
        assert_eq!(code_at(&secret, 59).as_deref(), Some("287082"));
        assert_eq!(code_at(&secret, 1_111_111_109).as_deref(), Some("081804"));
        assert_eq!(code_at(&secret, 2_000_000_000).as_deref(), Some("279037"));
        let uri = otpauth_uri("hana sato", &secret);
        assert!(
            uri.starts_with("otpauth://totp/Sekisho:hana%20sato?secret="),
            "{uri}"
        );
        assert!(uri.ends_with("&period=30"), "{uri}");
    }

    #[test]
    fn recovery_codes_are_compared_without_case_or_dashes() {
        let c = recovery_code().unwrap();
        assert_eq!(c.len(), 11);
        assert_eq!(
            code_digest(&c),
            code_digest(&c.to_uppercase().replace('-', " "))
        );
        assert_ne!(code_digest(&c), code_digest("k7q2m-x9w4q"));
    }
}
