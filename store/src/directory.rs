//! Accounts that come from the hospital's directory (issue #17): made at a person's first
//! directory login with the role of their group, kept up to date at each login, and cut off
//! when the directory no longer puts them in a Sekisho group. No password is kept for them.

use sekisho_domain::audit::{Actor, AuditEvent};
use sekisho_domain::ids::UserId;
use sekisho_domain::user::{AccountSource, Role, User, UserStatus};

use super::audit::{self, NewAuditEvent};
use super::users::{COLUMNS, row_to_user};
use super::{Result, Store, StoreError, conflict, micros};

/// What the directory says about a person who just logged in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirectoryPerson {
    pub username: String,
    pub display_name: String,
    pub email: Option<String>,
    pub role: Role,
    /// Their entry's DN, for the audit log.
    pub dn: String,
}

impl Store {
    /// The account of `p`, made (audited `user_created`, actor the directory) or brought up
    /// to date (audited `user_updated`, only when something changed). A local account of the
    /// same name is never taken over.
    pub async fn sync_directory_user(
        &self,
        p: &DirectoryPerson,
        source: Option<&str>,
    ) -> Result<User> {
        let now = super::now();
        let mut tx = self.begin().await?;
        let sql = format!("SELECT {COLUMNS} FROM users WHERE username = $1");
        let existing = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(&p.username)
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(row_to_user)
            .transpose()?;
        let from = format!("from the directory entry {}", p.dn);
        let event = |event: AuditEvent| {
            let mut ev = NewAuditEvent::success(Actor::System, None, source, event);
            ev.reason = Some(from.clone());
            ev
        };
        let user = match existing {
            Some(u) if u.source == AccountSource::Local => {
                return Err(StoreError::Conflict(format!(
                    "`{}` is a local account, not one from the directory",
                    u.username
                )));
            }
            Some(mut u) => {
                let mut changes = vec![];
                if u.role != p.role {
                    changes.push(format!(
                        "role: {} -> {} (directory group)",
                        u.role.as_str(),
                        p.role.as_str()
                    ));
                    u.role = p.role;
                }
                if u.display_name != p.display_name {
                    changes.push("display_name (directory)".to_owned());
                    u.display_name = p.display_name.clone();
                }
                if p.email.is_some() && u.email != p.email {
                    changes.push("email (directory)".to_owned());
                    u.email = p.email.clone();
                }
                if changes.is_empty() {
                    return Ok(u);
                }
                sqlx::query(
                    "UPDATE users SET role = $1, display_name = $2, email = $3, updated_at = $4 WHERE id = $5",
                )
                .bind(u.role.as_str())
                .bind(&u.display_name)
                .bind(&u.email)
                .bind(micros(now))
                .bind(u.id.to_string())
                .execute(&mut *tx)
                .await?;
                audit::append(
                    &mut tx,
                    event(AuditEvent::UserUpdated {
                        user: u.id,
                        username: u.username.clone(),
                        changes,
                    }),
                )
                .await?;
                u
            }
            None => {
                let u = User {
                    id: UserId::new(),
                    username: p.username.clone(),
                    display_name: p.display_name.clone(),
                    email: p.email.clone(),
                    role: p.role,
                    vendor_id: None,
                    status: UserStatus::Active,
                    expires_at: None,
                    created_at: now,
                    site: None,
                    language: None,
                    source: AccountSource::Directory,
                };
                sqlx::query(
                    "INSERT INTO users (id, username, display_name, email, role, status, created_at, updated_at, source) \
                     VALUES ($1, $2, $3, $4, $5, 'active', $6, $6, 'directory')",
                )
                .bind(u.id.to_string())
                .bind(&u.username)
                .bind(&u.display_name)
                .bind(&u.email)
                .bind(u.role.as_str())
                .bind(micros(now))
                .execute(&mut *tx)
                .await
                .map_err(|e| conflict(e, || format!("username `{}` is already taken", u.username)))?;
                audit::append(
                    &mut tx,
                    event(AuditEvent::UserCreated {
                        user: u.id,
                        username: u.username.clone(),
                        role: u.role,
                        vendor: None,
                    }),
                )
                .await?;
                u
            }
        };
        tx.commit().await?;
        Ok(user)
    }

    /// The directory no longer puts `user` in a Sekisho group: every token they hold stops
    /// working now (the login itself is refused by the caller); audited.
    pub async fn directory_removed(&self, user: &User, source: Option<&str>) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE users SET token_generation = token_generation + 1 WHERE id = $1")
            .bind(user.id.to_string())
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                Actor::System,
                None,
                source,
                AuditEvent::UserUpdated {
                    user: user.id,
                    username: user.username.clone(),
                    changes: vec![
                        "in no Sekisho group of the directory any more: access removed".into(),
                    ],
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }
}
