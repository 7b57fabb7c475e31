//! Accounts: staff and vendor engineers, with their password hashes.

use jiff::Timestamp;
use sekisho_domain::audit::{Actor, AuditEvent};
use sekisho_domain::ids::{UserId, VendorId};
use sekisho_domain::notify::Language;
use sekisho_domain::user::{
    AccountSource, CredentialIssue, CredentialKind, Role, SshKeyStatus, User, UserStatus,
};
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{self, NewAuditEvent};
use super::{Result, Store, StoreError, conflict, from_micros, micros, parse};

/// What is needed to create an account.
#[derive(Debug)]
pub struct NewUser {
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub role: Role,
    pub vendor_id: Option<VendorId>,
    pub expires_at: Option<Timestamp>,
    /// Argon2 PHC string, or `None` for accounts that never log in with a password.
    pub password_hash: Option<String>,
    /// The site a staff account is limited to; `None`: every site.
    pub site: Option<String>,
}

pub(crate) const COLUMNS: &str = "id, username, display_name, email, role, vendor_id, status, expires_at, created_at, site, language, source";

pub(crate) fn row_to_user(row: &AnyRow) -> Result<User> {
    let vendor: Option<String> = row.try_get("vendor_id")?;
    let expires: Option<i64> = row.try_get("expires_at")?;
    Ok(User {
        id: parse("user id", &row.try_get::<String, _>("id")?)?,
        username: row.try_get("username")?,
        display_name: row.try_get("display_name")?,
        email: row.try_get("email")?,
        role: parse("role", &row.try_get::<String, _>("role")?)?,
        vendor_id: vendor.map(|v| parse("vendor id", &v)).transpose()?,
        status: match row.try_get::<String, _>("status")?.as_str() {
            "active" => UserStatus::Active,
            "disabled" => UserStatus::Disabled,
            other => return Err(StoreError::Corrupt(format!("user status `{other}`"))),
        },
        expires_at: expires.map(from_micros).transpose()?,
        created_at: from_micros(row.try_get("created_at")?)?,
        site: row.try_get("site")?,
        language: row
            .try_get::<Option<String>, _>("language")?
            .map(|l| {
                Language::parse(&l).ok_or_else(|| StoreError::Corrupt(format!("language `{l}`")))
            })
            .transpose()?,
        source: match row.try_get::<String, _>("source")?.as_str() {
            "local" => AccountSource::Local,
            "directory" => AccountSource::Directory,
            other => return Err(StoreError::Corrupt(format!("account source `{other}`"))),
        },
    })
}

impl Store {
    /// Creates an account and audits it in one transaction.
    pub async fn create_user(
        &self,
        new: NewUser,
        actor: &Actor,
        source: Option<&str>,
    ) -> Result<User> {
        let now = super::now();
        let user = User {
            id: UserId::new(),
            username: new.username,
            display_name: new.display_name,
            email: new.email,
            role: new.role,
            vendor_id: new.vendor_id,
            status: UserStatus::Active,
            expires_at: new.expires_at,
            created_at: now,
            site: new.site,
            language: None,
            source: AccountSource::Local,
        };
        let has_password = new.password_hash.is_some();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO users (id, username, display_name, email, role, vendor_id, status, expires_at, password_hash, created_at, updated_at, site) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
        )
        .bind(user.id.to_string())
        .bind(&user.username)
        .bind(&user.display_name)
        .bind(&user.email)
        .bind(user.role.as_str())
        .bind(user.vendor_id.map(|v| v.to_string()))
        .bind(user.status.as_str())
        .bind(user.expires_at.map(micros))
        .bind(new.password_hash)
        .bind(micros(now))
        .bind(micros(now))
        .bind(&user.site)
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, || format!("username `{}` is already taken", user.username)))?;
        if has_password
            && user.role == Role::Vendor
            && let Some(by) = actor.user_id()
        {
            credential_event(&mut tx, user.id, by, CredentialKind::InitialPassword).await?;
        }
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                actor.clone(),
                user.vendor_id,
                source,
                AuditEvent::UserCreated {
                    user: user.id,
                    username: user.username.clone(),
                    role: user.role,
                    vendor: user.vendor_id,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    pub async fn user_by_username(&self, username: &str) -> Result<Option<User>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE username = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(row_to_user)
            .transpose()
    }

    pub async fn user(&self, id: UserId) -> Result<Option<User>> {
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(row_to_user)
            .transpose()
    }

    /// The stored password hash of an account, if it has one.
    pub async fn password_hash(&self, id: UserId) -> Result<Option<String>> {
        Ok(sqlx::query("SELECT password_hash FROM users WHERE id = $1")
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .map(|row| row.try_get::<Option<String>, _>("password_hash"))
            .transpose()?
            .flatten())
    }

    pub async fn count_users_with_role(&self, role: Role) -> Result<i64> {
        Ok(
            sqlx::query("SELECT COUNT(*) AS n FROM users WHERE role = $1")
                .bind(role.as_str())
                .fetch_one(&self.pool)
                .await?
                .try_get("n")?,
        )
    }
}

/// What may change on an account.
#[derive(Debug, Default)]
pub struct UserChanges {
    pub display_name: Option<String>,
    pub email: Option<Option<String>>,
    pub status: Option<UserStatus>,
    pub expires_at: Option<Option<Timestamp>>,
    pub password_hash: Option<String>,
    /// `Some(None)`: every site again.
    pub site: Option<Option<String>>,
    /// `Some(None)`: the configured default again.
    pub language: Option<Option<Language>>,
}

/// A registered SSH public key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SshKey {
    pub id: String,
    pub user_id: UserId,
    pub public_key: String,
    pub fingerprint: String,
    pub comment: Option<String>,
    pub created_at: Timestamp,
    /// Only an active key logs in.
    pub status: SshKeyStatus,
}

/// Records that `actor` gave `user` a credential (separation of duties).
async fn credential_event(
    conn: &mut sqlx::AnyConnection,
    user: UserId,
    actor: UserId,
    kind: CredentialKind,
) -> Result<()> {
    sqlx::query("INSERT INTO credential_events (id, user_id, actor_id, kind, at) VALUES ($1, $2, $3, $4, $5)")
        .bind(uuid::Uuid::new_v4().to_string())
        .bind(user.to_string())
        .bind(actor.to_string())
        .bind(kind.as_str())
        .bind(micros(super::now()))
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Who gave `user` credentials, and when (inside a transaction of the caller's).
pub(crate) async fn credential_issues(
    conn: &mut sqlx::AnyConnection,
    user: UserId,
) -> Result<Vec<CredentialIssue>> {
    sqlx::query("SELECT actor_id, kind, at FROM credential_events WHERE user_id = $1 ORDER BY at")
        .bind(user.to_string())
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|row| {
            Ok(CredentialIssue {
                user,
                actor: parse("user id", &row.try_get::<String, _>("actor_id")?)?,
                kind: parse("credential kind", &row.try_get::<String, _>("kind")?)?,
                at: from_micros(row.try_get("at")?)?,
            })
        })
        .collect()
}

fn row_to_key(row: &AnyRow) -> Result<SshKey> {
    Ok(SshKey {
        id: row.try_get("id")?,
        user_id: parse("user id", &row.try_get::<String, _>("user_id")?)?,
        public_key: row.try_get("public_key")?,
        fingerprint: row.try_get("fingerprint")?,
        comment: row.try_get("comment")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        status: match row.try_get::<String, _>("status")?.as_str() {
            "pending" => SshKeyStatus::Pending,
            "active" => SshKeyStatus::Active,
            other => return Err(StoreError::Corrupt(format!("ssh key status `{other}`"))),
        },
    })
}

const KEY_COLUMNS: &str = "id, user_id, public_key, fingerprint, comment, created_at, status";

impl Store {
    /// Accounts, optionally of one vendor, by username.
    pub async fn users(&self, vendor: Option<VendorId>) -> Result<Vec<User>> {
        let sql = match vendor {
            Some(_) => {
                format!("SELECT {COLUMNS} FROM users WHERE vendor_id = $1 ORDER BY username")
            }
            None => format!("SELECT {COLUMNS} FROM users ORDER BY username"),
        };
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(v) = vendor {
            q = q.bind(v.to_string());
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_to_user)
            .collect()
    }

    pub async fn update_user(
        &self,
        id: UserId,
        changes: UserChanges,
        actor: &Actor,
        source: Option<&str>,
    ) -> Result<User> {
        let mut tx = self.begin().await?;
        let sql = format!("SELECT {COLUMNS} FROM users WHERE id = $1");
        let mut user = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(row_to_user)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("user {id}")))?;
        let mut changed = vec![];
        if let Some(d) = changes.display_name {
            changed.push("display_name".to_owned());
            user.display_name = d;
        }
        if let Some(e) = changes.email {
            changed.push("email".to_owned());
            user.email = e;
        }
        if let Some(s) = changes.status
            && s != user.status
        {
            changed.push(format!(
                "status: {} -> {}",
                user.status.as_str(),
                s.as_str()
            ));
            user.status = s;
        }
        if let Some(e) = changes.expires_at {
            changed.push("expires_at".to_owned());
            user.expires_at = e;
        }
        if let Some(site) = changes.site {
            changed.push(match &site {
                Some(s) => format!("site {s}"),
                None => "site removed".to_owned(),
            });
            user.site = site;
        }
        if let Some(language) = changes.language {
            changed.push(format!(
                "language {}",
                language.map_or("default", Language::as_str)
            ));
            user.language = language;
        }
        sqlx::query("UPDATE users SET display_name = $1, email = $2, status = $3, expires_at = $4, updated_at = $5, site = $6, language = $7 WHERE id = $8")
            .bind(&user.display_name)
            .bind(&user.email)
            .bind(user.status.as_str())
            .bind(user.expires_at.map(micros))
            .bind(micros(super::now()))
            .bind(&user.site)
            .bind(user.language.map(Language::as_str))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        let mut revoke_tokens = user.status == UserStatus::Disabled;
        if let Some(hash) = changes.password_hash {
            changed.push("password".to_owned());
            revoke_tokens = true;
            sqlx::query("UPDATE users SET password_hash = $1, failed_logins = 0, locked_until = NULL WHERE id = $2")
                .bind(hash)
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
            if user.role == Role::Vendor
                && let Some(by) = actor.user_id().filter(|by| *by != id)
            {
                credential_event(&mut tx, id, by, CredentialKind::PasswordReset).await?;
            }
        }
        // A new password or a disabled account ends every token issued before.
        if revoke_tokens {
            sqlx::query("UPDATE users SET token_generation = token_generation + 1 WHERE id = $1")
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                actor.clone(),
                user.vendor_id,
                source,
                AuditEvent::UserUpdated {
                    user: id,
                    username: user.username.clone(),
                    changes: changed,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(user)
    }

    /// Registers a key for `user`. Added by staff it is active at once (and counts as giving
    /// the engineer a credential); added by the engineer themself it is pending until IT
    /// approves it, so a password alone never yields SSH access.
    pub async fn add_ssh_key(
        &self,
        user: &User,
        public_key: String,
        fingerprint: String,
        comment: Option<String>,
        actor: &Actor,
        source: Option<&str>,
    ) -> Result<SshKey> {
        let by_self = actor.user_id() == Some(user.id);
        let key = SshKey {
            id: uuid::Uuid::new_v4().to_string(),
            user_id: user.id,
            public_key,
            fingerprint,
            comment,
            created_at: super::now(),
            status: if by_self {
                SshKeyStatus::Pending
            } else {
                SshKeyStatus::Active
            },
        };
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO ssh_keys (id, user_id, public_key, fingerprint, comment, created_at, status, added_by) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)")
            .bind(&key.id)
            .bind(user.id.to_string())
            .bind(&key.public_key)
            .bind(&key.fingerprint)
            .bind(&key.comment)
            .bind(micros(key.created_at))
            .bind(key.status.as_str())
            .bind(actor.user_id().map(|u| u.to_string()))
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, || format!("the key {} is already registered", key.fingerprint)))?;
        if !by_self && let Some(by) = actor.user_id() {
            credential_event(&mut tx, user.id, by, CredentialKind::SshKey).await?;
        }
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                actor.clone(),
                user.vendor_id,
                source,
                AuditEvent::SshKeyAdded {
                    user: user.id,
                    username: user.username.clone(),
                    fingerprint: key.fingerprint.clone(),
                    pending: by_self,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(key)
    }

    /// IT approves a pending key: from now on it logs in.
    pub async fn approve_ssh_key(
        &self,
        user: &User,
        key_id: &str,
        by: &User,
        source: Option<&str>,
    ) -> Result<SshKey> {
        let mut tx = self.begin().await?;
        let sql = format!("SELECT {KEY_COLUMNS} FROM ssh_keys WHERE id = $1 AND user_id = $2");
        let mut key = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(key_id)
            .bind(user.id.to_string())
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(row_to_key)
            .transpose()?
            .ok_or_else(|| StoreError::NotFound(format!("ssh key {key_id}")))?;
        if key.status == SshKeyStatus::Active {
            return Err(StoreError::Conflict(format!(
                "the key {} is already approved",
                key.fingerprint
            )));
        }
        sqlx::query("UPDATE ssh_keys SET status = 'active', approved_by = $1, approved_at = $2 WHERE id = $3")
            .bind(by.id.to_string())
            .bind(micros(super::now()))
            .bind(key_id)
            .execute(&mut *tx)
            .await?;
        credential_event(&mut tx, user.id, by.id, CredentialKind::SshKey).await?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                Actor::user(by),
                user.vendor_id,
                source,
                AuditEvent::SshKeyApproved {
                    user: user.id,
                    username: user.username.clone(),
                    fingerprint: key.fingerprint.clone(),
                },
            ),
        )
        .await?;
        tx.commit().await?;
        key.status = SshKeyStatus::Active;
        Ok(key)
    }

    /// Every key of `user`, pending ones included.
    pub async fn ssh_keys(&self, user: UserId) -> Result<Vec<SshKey>> {
        let sql =
            format!("SELECT {KEY_COLUMNS} FROM ssh_keys WHERE user_id = $1 ORDER BY created_at");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(user.to_string())
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_to_key)
            .collect()
    }

    /// Who gave `user` credentials, and when.
    pub async fn credential_issues(&self, user: UserId) -> Result<Vec<CredentialIssue>> {
        let mut conn = self.pool.acquire().await?;
        credential_issues(&mut conn, user).await
    }

    /// The current token generation of an account (tokens carry it; a bump revokes them).
    pub async fn token_generation(&self, user: UserId) -> Result<i64> {
        Ok(
            sqlx::query("SELECT token_generation FROM users WHERE id = $1")
                .bind(user.to_string())
                .fetch_optional(&self.pool)
                .await?
                .map(|row| row.try_get::<i64, _>("token_generation"))
                .transpose()?
                .unwrap_or(-1),
        )
    }

    /// Whether the token `jti` was revoked by a logout.
    pub async fn token_revoked(&self, jti: &str) -> Result<bool> {
        Ok(sqlx::query("SELECT jti FROM revoked_tokens WHERE jti = $1")
            .bind(jti)
            .fetch_optional(&self.pool)
            .await?
            .is_some())
    }

    /// Revokes the token `jti` (kept until it would have expired anyway), audited.
    pub async fn revoke_token(
        &self,
        jti: &str,
        expires_at: Timestamp,
        user: &User,
        source: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO revoked_tokens (jti, expires_at) VALUES ($1, $2)")
            .bind(jti)
            .bind(micros(expires_at))
            .execute(&mut *tx)
            .await
            .map_err(|e| conflict(e, || "this token is already revoked".into()))?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                Actor::user(user),
                user.vendor_id,
                source,
                AuditEvent::LoggedOut {
                    username: user.username.clone(),
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Forgets revocations of tokens that have expired anyway.
    pub async fn purge_revoked_tokens(&self, now: Timestamp) -> Result<u64> {
        Ok(
            sqlx::query("DELETE FROM revoked_tokens WHERE expires_at < $1")
                .bind(micros(now))
                .execute(&self.pool)
                .await?
                .rows_affected(),
        )
    }
}

impl Store {
    /// Stores a one-time enrollment code (only its SHA-256) for a vendor engineer, audited.
    pub async fn create_enrollment_code(
        &self,
        user: &User,
        code_sha256: &str,
        expires_at: Timestamp,
        by: &User,
        source: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("INSERT INTO enrollment_codes (code_hash, user_id, created_by, expires_at, created_at) VALUES ($1, $2, $3, $4, $5)")
            .bind(code_sha256)
            .bind(user.id.to_string())
            .bind(by.id.to_string())
            .bind(micros(expires_at))
            .bind(micros(super::now()))
            .execute(&mut *tx)
            .await?;
        credential_event(&mut tx, user.id, by.id, CredentialKind::EnrollmentCode).await?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                Actor::user(by),
                user.vendor_id,
                source,
                AuditEvent::EnrollmentCodeCreated {
                    user: user.id,
                    username: user.username.clone(),
                    expires_at,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
