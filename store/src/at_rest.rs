//! The group's at-rest keys, named by id, and their replacement while the group serves
//! (`sekisho node rotate-at-rest-key`). The keys stay in each node's keys directory; the
//! database says which one seals, hands a new key to the nodes sealed under the current one,
//! and holds what each node reported it has, so that no node is asked to open a value sealed
//! with a key it does not hold yet.
//!
//! A rotation, each step audited:
//! 1. **staged**: a new key, wrapped under the active one; every node adds it to its ring
//!    (it opens, it does not seal yet).
//! 2. **activated** once every live node holds it: it seals; the old key is `previous`.
//! 3. **resealed** once every live node seals with it: every sealed value in the database is
//!    sealed again under it.
//! 4. **retired**: the old key; the wrapped copy is deleted and the nodes forget the old key.

use sekisho_domain::audit::{Actor, AuditEvent};
use sqlx::Row;

use super::audit::{self, NewAuditEvent};
use super::crypto::{AtRestKey, sealed_key_id};
use super::{Result, Store, StoreError, micros, now};

/// Where a key of the group stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AtRestKeyState {
    /// Handed to the nodes; opens, does not seal yet.
    Staged,
    /// Seals.
    Active,
    /// Replaced; still opens values not yet sealed again.
    Previous,
    /// Forgotten.
    Retired,
}

impl AtRestKeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Staged => "staged",
            Self::Active => "active",
            Self::Previous => "previous",
            Self::Retired => "retired",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "staged" => Self::Staged,
            "active" => Self::Active,
            "previous" => Self::Previous,
            "retired" => Self::Retired,
            other => return Err(StoreError::Corrupt(format!("at-rest key state `{other}`"))),
        })
    }
}

/// One key of the group, as the database knows it (never the key itself).
#[derive(Clone, Debug)]
pub struct AtRestKeyRow {
    pub kid: String,
    pub state: AtRestKeyState,
    /// The key sealed under the key that was active when it was made (while it is handed over).
    pub wrapped: Option<String>,
}

/// How many sealed values a re-seal rewrote.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Resealed {
    pub credentials: u64,
    pub second_factors: u64,
}

/// Where a sealed value lives: its table, key columns, sealed column and the context it is
/// bound to.
struct SealedColumn {
    select: &'static str,
    update: &'static str,
    context: fn(&str, &str) -> String,
}

const SEALED: [SealedColumn; 2] = [
    SealedColumn {
        select: "SELECT target_id AS a, level AS b, credential_sealed AS sealed FROM target_levels",
        update: "UPDATE target_levels SET credential_sealed = $1 WHERE target_id = $2 AND level = $3 AND credential_sealed = $4",
        context: super::targets::credential_context,
    },
    SealedColumn {
        select: "SELECT id AS a, '' AS b, mfa_secret_sealed AS sealed FROM users WHERE mfa_secret_sealed IS NOT NULL",
        update: "UPDATE users SET mfa_secret_sealed = $1 WHERE id = $2 AND '' = $3 AND mfa_secret_sealed = $4",
        context: |user, _| super::mfa::secret_context(user),
    },
];

impl Store {
    /// The group's keys, newest first.
    pub async fn at_rest_keys(&self) -> Result<Vec<AtRestKeyRow>> {
        let rows =
            sqlx::query("SELECT kid, state, wrapped FROM at_rest_keys ORDER BY created_at DESC")
                .fetch_all(self.pool())
                .await?;
        rows.iter()
            .map(|r| {
                Ok(AtRestKeyRow {
                    kid: r.try_get("kid")?,
                    state: AtRestKeyState::parse(&r.try_get::<String, _>("state")?)?,
                    wrapped: r.try_get("wrapped")?,
                })
            })
            .collect()
    }

    /// The first node to use the database names its sealing key the group's (audited).
    /// Returns whether it did; a database that names one already is left as it is.
    pub async fn claim_at_rest_key(&self, node: &str, kid: &str) -> Result<bool> {
        let mut tx = self.begin().await?;
        // Nodes of a group starting at once for the first time hold the same key: the second
        // insert finds the first one's row and does nothing.
        let inserted = sqlx::query(
            "INSERT INTO at_rest_keys (kid, state, wrapped, created_at, changed_at) \
             SELECT $1, 'active', NULL, $2, $2 WHERE NOT EXISTS (SELECT 1 FROM at_rest_keys) \
             ON CONFLICT (kid) DO NOTHING",
        )
        .bind(kid)
        .bind(micros(now()))
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() != 1 {
            tx.commit().await?;
            return Ok(false);
        }
        audit::append(
            &mut tx,
            NewAuditEvent::system(AuditEvent::AtRestKeyClaimed {
                node: node.to_owned(),
                kid: kid.to_owned(),
            }),
        )
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Step 1: `kid`, wrapped under the active key `previous`, is handed to the nodes.
    /// Refused while another rotation is under way or when `previous` is not the active key.
    pub async fn stage_at_rest_key(
        &self,
        kid: &str,
        wrapped: &str,
        previous: &str,
        actor: Actor,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let rows = sqlx::query("SELECT kid, state FROM at_rest_keys WHERE state <> 'retired'")
            .fetch_all(&mut *tx)
            .await?;
        let mut active = None;
        for r in &rows {
            let state = AtRestKeyState::parse(&r.try_get::<String, _>("state")?)?;
            let id: String = r.try_get("kid")?;
            match state {
                AtRestKeyState::Active => active = Some(id),
                _ => {
                    return Err(StoreError::Conflict(format!(
                        "a rotation of the at-rest key is under way (key {id} is {}); run the command again to finish it",
                        state.as_str()
                    )));
                }
            }
        }
        if active.as_deref() != Some(previous) {
            return Err(StoreError::Conflict(format!(
                "the group's at-rest key is {}, not this node's {previous}",
                active.as_deref().unwrap_or("unnamed")
            )));
        }
        let at = micros(now());
        sqlx::query("INSERT INTO at_rest_keys (kid, state, wrapped, created_at, changed_at) VALUES ($1, 'staged', $2, $3, $3)")
            .bind(kid)
            .bind(wrapped)
            .bind(at)
            .execute(&mut *tx)
            .await?;
        step(
            &mut tx,
            actor,
            AuditEvent::AtRestKeyStaged {
                kid: kid.to_owned(),
                previous_kid: previous.to_owned(),
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Step 2: the staged `kid` seals from now on; the active key becomes `previous`.
    /// `nodes` are the live nodes that were seen holding it.
    pub async fn activate_at_rest_key(
        &self,
        kid: &str,
        nodes: Vec<String>,
        actor: Actor,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let previous: String = sqlx::query("SELECT kid FROM at_rest_keys WHERE state = 'active'")
            .fetch_optional(&mut *tx)
            .await?
            .ok_or_else(|| StoreError::Conflict("the group has no active at-rest key".into()))?
            .try_get("kid")?;
        let at = micros(now());
        let staged = sqlx::query(
            "UPDATE at_rest_keys SET state = 'active', changed_at = $1 WHERE kid = $2 AND state = 'staged'",
        )
        .bind(at)
        .bind(kid)
        .execute(&mut *tx)
        .await?;
        if staged.rows_affected() != 1 {
            return Err(StoreError::Conflict(format!(
                "at-rest key {kid} is not staged"
            )));
        }
        sqlx::query("UPDATE at_rest_keys SET state = 'previous', changed_at = $1 WHERE kid = $2")
            .bind(at)
            .bind(&previous)
            .execute(&mut *tx)
            .await?;
        step(
            &mut tx,
            actor,
            AuditEvent::AtRestKeyActivated {
                kid: kid.to_owned(),
                previous_kid: previous,
                nodes,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Step 3: seals every sealed value not sealed by `key`'s sealing key again under it
    /// (a value changed meanwhile is read again). Audited with the counts.
    pub async fn reseal_at_rest(&self, key: &AtRestKey, actor: Actor) -> Result<Resealed> {
        let current = key.current_kid();
        let mut counts = [0u64; 2];
        for (column, count) in SEALED.iter().zip(counts.iter_mut()) {
            // Every node seals with `key`'s sealing key by now, so a value changed meanwhile
            // (the update below then matches nothing) is sealed under it already; a value a
            // node sealed a moment before it switched is caught by the retirement's check.
            for r in sqlx::query(column.select).fetch_all(self.pool()).await? {
                let sealed: String = r.try_get("sealed")?;
                if sealed_key_id(&sealed) == Some(current.as_str()) {
                    continue;
                }
                let (a, b): (String, String) = (r.try_get("a")?, r.try_get("b")?);
                let context = (column.context)(&a, &b);
                let plain = key
                    .open(&sealed, &context)
                    .map_err(|e| StoreError::Corrupt(format!("sealed value of {a} {b}: {e}")))?;
                let again = key
                    .seal(&plain, &context)
                    .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let done = sqlx::query(column.update)
                    .bind(again)
                    .bind(&a)
                    .bind(&b)
                    .bind(&sealed)
                    .execute(self.pool())
                    .await?;
                *count += done.rows_affected();
            }
        }
        let resealed = Resealed {
            credentials: counts[0],
            second_factors: counts[1],
        };
        let mut tx = self.begin().await?;
        step(
            &mut tx,
            actor,
            AuditEvent::AtRestKeyResealed {
                kid: current,
                credentials: resealed.credentials,
                second_factors: resealed.second_factors,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(resealed)
    }

    /// How many sealed values `kid` did not seal (0 once a re-seal under `kid` is complete).
    pub async fn sealed_by_other_keys(&self, kid: &str) -> Result<u64> {
        let mut n = 0;
        for column in &SEALED {
            for r in sqlx::query(column.select).fetch_all(self.pool()).await? {
                let sealed: String = r.try_get("sealed")?;
                if sealed_key_id(&sealed) != Some(kid) {
                    n += 1;
                }
            }
        }
        Ok(n)
    }

    /// Step 4: the previous key is retired and every wrapped copy deleted. Refused while a
    /// sealed value still needs a key other than the active one. Returns the retired key.
    pub async fn retire_previous_at_rest_key(&self, actor: Actor) -> Result<Option<String>> {
        let keys = self.at_rest_keys().await?;
        let Some(active) = keys.iter().find(|k| k.state == AtRestKeyState::Active) else {
            return Err(StoreError::Conflict(
                "the group has no active at-rest key".into(),
            ));
        };
        let left = self.sealed_by_other_keys(&active.kid).await?;
        if left > 0 {
            return Err(StoreError::Conflict(format!(
                "{left} sealed values are not sealed under at-rest key {} yet",
                active.kid
            )));
        }
        let mut tx = self.begin().await?;
        let previous: Option<String> =
            sqlx::query("SELECT kid FROM at_rest_keys WHERE state = 'previous'")
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get("kid"))
                .transpose()?;
        let at = micros(now());
        sqlx::query(
            "UPDATE at_rest_keys SET wrapped = NULL, changed_at = $1 WHERE wrapped IS NOT NULL",
        )
        .bind(at)
        .execute(&mut *tx)
        .await?;
        if let Some(previous) = &previous {
            sqlx::query(
                "UPDATE at_rest_keys SET state = 'retired', changed_at = $1 WHERE kid = $2",
            )
            .bind(at)
            .bind(previous)
            .execute(&mut *tx)
            .await?;
            step(
                &mut tx,
                actor,
                AuditEvent::AtRestKeyRetired {
                    kid: previous.clone(),
                    current_kid: active.kid.clone(),
                },
            )
            .await?;
        }
        tx.commit().await?;
        Ok(previous)
    }
}

/// Audits a step of a rotation by `actor`, in the step's transaction.
async fn step(conn: &mut sqlx::AnyConnection, actor: Actor, event: AuditEvent) -> Result<()> {
    audit::append(conn, NewAuditEvent::success(actor, None, None, event))
        .await
        .map(drop)
}
