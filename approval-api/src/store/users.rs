//! Accounts: staff and vendor engineers, with their password hashes.

use jiff::Timestamp;
use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::ids::{UserId, VendorId};
use sekisho_domain::user::{Role, User, UserStatus};
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
}

const COLUMNS: &str =
    "id, username, display_name, email, role, vendor_id, status, expires_at, created_at";

fn row_to_user(row: &AnyRow) -> Result<User> {
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
        };
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO users (id, username, display_name, email, role, vendor_id, status, expires_at, password_hash, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
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
        .execute(&mut *tx)
        .await
        .map_err(|e| conflict(e, || format!("username `{}` is already taken", user.username)))?;
        audit::append(
            &mut tx,
            NewAuditEvent {
                actor: actor.clone(),
                outcome: Outcome::Success,
                vendor_id: user.vendor_id,
                source_addr: source.map(str::to_owned),
                reason: None,
                event: AuditEvent::UserCreated {
                    user: user.id,
                    username: user.username.clone(),
                    role: user.role,
                    vendor: user.vendor_id,
                },
            },
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
