//! Enrollment of the designated client: redeeming a one-time code for a client certificate.

use jiff::Timestamp;
use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::refusal::{Channel, Code};
use sekisho_domain::user::{Role, User, UserStatus};
use sqlx::Row;

use super::audit::{self, NewAuditEvent};
use super::{Store, StoreError, micros, now, parse};

/// A certificate the gateway's CA issued.
#[derive(Clone, Debug)]
pub struct IssuedCert {
    /// PEM of the certificate.
    pub pem: String,
    /// SHA-256 of the DER, hex.
    pub fingerprint: String,
    /// Serial number, hex.
    pub serial: String,
    pub expires_at: Timestamp,
}

/// Why a code was not redeemed.
#[derive(Debug, thiserror::Error)]
pub enum RedeemError {
    #[error("the enrollment code is unknown, already used or expired")]
    BadCode,
    #[error("account {0} may not enroll: {1}")]
    NotEligible(String, &'static str),
    #[error("the certificate request was refused: {0}")]
    Issue(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for RedeemError {
    fn from(e: sqlx::Error) -> Self {
        RedeemError::Store(e.into())
    }
}

/// Only active vendor engineers hold client certificates.
fn eligible(user: &User, at: Timestamp) -> Result<(), RedeemError> {
    if user.role != Role::Vendor {
        return Err(RedeemError::NotEligible(
            user.username.clone(),
            "not a vendor engineer account",
        ));
    }
    if user.status != UserStatus::Active || user.expires_at.is_some_and(|e| e <= at) {
        return Err(RedeemError::NotEligible(
            user.username.clone(),
            "the account is disabled or expired",
        ));
    }
    Ok(())
}

impl Store {
    /// Checks that `user_id` may hold a certificate, has `issue` sign it and records it.
    async fn issue_for(
        &self,
        tx: &mut sqlx::Transaction<'static, sqlx::Any>,
        user_id: &str,
        at: Timestamp,
        issue: impl FnOnce(&User) -> Result<IssuedCert, String>,
    ) -> Result<(User, IssuedCert), RedeemError> {
        let user = self
            .user(parse("user id", user_id)?)
            .await?
            .ok_or_else(|| {
                StoreError::Corrupt(format!("client certificate for missing user {user_id}"))
            })?;
        eligible(&user, at)?;
        let cert = issue(&user).map_err(RedeemError::Issue)?;
        sqlx::query("INSERT INTO client_certs (fingerprint, user_id, serial, issued_at, expires_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(&cert.fingerprint)
            .bind(user.id.to_string())
            .bind(&cert.serial)
            .bind(micros(at))
            .bind(micros(cert.expires_at))
            .execute(&mut **tx)
            .await?;
        Ok((user, cert))
    }

    /// Renews the (valid, unrevoked) certificate `old_fingerprint`: in one transaction
    /// `issue` signs a new one for the same user, it is recorded, the old one revoked and the
    /// renewal audited.
    pub async fn renew_client_cert(
        &self,
        old_fingerprint: &str,
        source: Option<&str>,
        issue: impl FnOnce(&User) -> Result<IssuedCert, String>,
    ) -> Result<(User, IssuedCert), RedeemError> {
        let at = now();
        let mut tx = self.begin().await?;
        let revoked = sqlx::query(
            "UPDATE client_certs SET revoked_at = $1 WHERE fingerprint = $2 AND revoked_at IS NULL RETURNING user_id",
        )
        .bind(micros(at))
        .bind(old_fingerprint)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(row) = revoked else {
            return Err(RedeemError::NotEligible(
                "this certificate".into(),
                "it is not (or no longer) enrolled",
            ));
        };
        let user_id: String = row.try_get("user_id")?;
        let (user, cert) = self.issue_for(&mut tx, &user_id, at, issue).await?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                Actor::user(&user),
                user.vendor_id,
                source,
                AuditEvent::ClientRenewed {
                    user: user.id,
                    username: user.username.clone(),
                    fingerprint: cert.fingerprint.clone(),
                    replaces: old_fingerprint.to_owned(),
                    expires_at: cert.expires_at,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok((user, cert))
    }

    /// Redeems the code whose SHA-256 is `code_sha256`: in one transaction the code is used up,
    /// `issue` signs the certificate for its user, the certificate is recorded and the
    /// enrollment audited. Any failure leaves the code unused; a bad code is audited as a
    /// denial.
    pub async fn redeem_enrollment_code(
        &self,
        code_sha256: &str,
        source: Option<&str>,
        issue: impl FnOnce(&User) -> Result<IssuedCert, String>,
    ) -> Result<(User, IssuedCert), RedeemError> {
        let at = now();
        let mut tx = self.begin().await?;
        let used = sqlx::query(
            "UPDATE enrollment_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL AND expires_at > $3",
        )
        .bind(micros(at))
        .bind(code_sha256)
        .bind(micros(at))
        .execute(&mut *tx)
        .await?;
        if used.rows_affected() != 1 {
            drop(tx);
            self.audit(NewAuditEvent {
                actor: Actor::Anonymous {
                    claimed: "enrollment code".into(),
                },
                outcome: Outcome::Denied,
                vendor_id: None,
                source_addr: source.map(str::to_owned),
                reason: Some(RedeemError::BadCode.to_string()),
                event: AuditEvent::AccessDenied {
                    target: None,
                    request: None,
                    channel: Channel::Enroll,
                    code: Code::BadEnrollmentCode,
                },
            })
            .await?;
            return Err(RedeemError::BadCode);
        }
        let user_id: String =
            sqlx::query("SELECT user_id FROM enrollment_codes WHERE code_hash = $1")
                .bind(code_sha256)
                .fetch_one(&mut *tx)
                .await?
                .try_get("user_id")?;
        let (user, cert) = self.issue_for(&mut tx, &user_id, at, issue).await?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                Actor::user(&user),
                user.vendor_id,
                source,
                AuditEvent::ClientEnrolled {
                    user: user.id,
                    username: user.username.clone(),
                    fingerprint: cert.fingerprint.clone(),
                    expires_at: cert.expires_at,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok((user, cert))
    }

    /// The account an unused, unexpired enrollment code is for (the code is not used up).
    pub async fn enrollment_code_owner(
        &self,
        code_sha256: &str,
    ) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(
            "SELECT user_id FROM enrollment_codes WHERE code_hash = $1 AND used_at IS NULL AND expires_at > $2",
        )
        .bind(code_sha256)
        .bind(micros(now()))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(r) => {
                self.user(parse("user id", &r.try_get::<String, _>("user_id")?)?)
                    .await
            }
            None => Ok(None),
        }
    }

    /// Uses a code up without enrolling anything (the engineer's password was wrong), audited
    /// as a denial: a code and a guessed password give one try, not many.
    pub async fn void_enrollment_code(
        &self,
        code_sha256: &str,
        user: &User,
        source: Option<&str>,
        reason: &str,
    ) -> Result<(), StoreError> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "UPDATE enrollment_codes SET used_at = $1 WHERE code_hash = $2 AND used_at IS NULL",
        )
        .bind(micros(now()))
        .bind(code_sha256)
        .execute(&mut *tx)
        .await?;
        audit::append(
            &mut tx,
            NewAuditEvent {
                actor: Actor::Anonymous {
                    claimed: user.username.clone(),
                },
                outcome: Outcome::Denied,
                vendor_id: user.vendor_id,
                source_addr: source.map(str::to_owned),
                reason: Some(reason.to_owned()),
                event: AuditEvent::AccessDenied {
                    target: None,
                    request: None,
                    channel: Channel::Enroll,
                    code: Code::EnrollmentPassword,
                },
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Whose certificate this was (revoked or not), for auditing a refusal.
    pub async fn client_cert_owner(&self, fingerprint: &str) -> Result<Option<User>, StoreError> {
        self.cert_user(
            "SELECT user_id FROM client_certs WHERE fingerprint = $1",
            fingerprint,
        )
        .await
    }

    /// The user a client certificate (by fingerprint) was issued to, if it is not revoked.
    pub async fn client_cert_user(&self, fingerprint: &str) -> Result<Option<User>, StoreError> {
        self.cert_user(
            "SELECT user_id FROM client_certs WHERE fingerprint = $1 AND revoked_at IS NULL",
            fingerprint,
        )
        .await
    }

    async fn cert_user(
        &self,
        query: &'static str,
        fingerprint: &str,
    ) -> Result<Option<User>, StoreError> {
        let row = sqlx::query(query)
            .bind(fingerprint)
            .fetch_optional(&self.pool)
            .await?;
        match row {
            Some(r) => {
                self.user(parse("user id", &r.try_get::<String, _>("user_id")?)?)
                    .await
            }
            None => Ok(None),
        }
    }
}
