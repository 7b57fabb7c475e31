//! The token keys of a group: the public halves of the keys the nodes sign API tokens with.
//! Every node accepts a token signed by any key published here and not yet retired, so a
//! node's key can be replaced while the others keep serving (a rolling restart).

use std::time::Duration;

use jiff::Timestamp;
use sekisho_domain::audit::AuditEvent;
use sqlx::Row;

use super::audit::{self, NewAuditEvent};
use super::{Result, Store, micros, now};

/// Keys still accepted that no node signs with any more.
const UNUSED: &str =
    "retired_at IS NULL AND kid NOT IN (SELECT token_kid FROM nodes WHERE token_kid IS NOT NULL)";

impl Store {
    /// Says that `node` signs tokens with `kid` (its public key `public_pem`) from now on.
    /// A key used again is accepted again; keys no node signs with any more are retired as of
    /// `now + keep` (the tokens they signed stay valid until they expire). What changed is
    /// audited (`token_key_published`). Returns the kids retired now. The node's row must
    /// exist ([`Store::heartbeat`] when starting).
    pub async fn publish_token_key(
        &self,
        node: &str,
        kid: &str,
        public_pem: &str,
        keep: Duration,
    ) -> Result<Vec<String>> {
        let at = now();
        let mut tx = self.begin().await?;
        let known: Option<Option<i64>> =
            sqlx::query("SELECT retired_at FROM token_keys WHERE kid = $1")
                .bind(kid)
                .fetch_optional(&mut *tx)
                .await?
                .map(|r| r.try_get::<Option<i64>, _>("retired_at"))
                .transpose()?;
        let changed = match known {
            None => {
                sqlx::query("INSERT INTO token_keys (kid, public_pem, node, created_at) VALUES ($1, $2, $3, $4)")
                    .bind(kid)
                    .bind(public_pem)
                    .bind(node)
                    .bind(micros(at))
                    .execute(&mut *tx)
                    .await?;
                true
            }
            Some(Some(_)) => {
                sqlx::query("UPDATE token_keys SET retired_at = NULL WHERE kid = $1")
                    .bind(kid)
                    .execute(&mut *tx)
                    .await?;
                true
            }
            Some(None) => false,
        };
        sqlx::query("UPDATE nodes SET token_kid = $1 WHERE id = $2")
            .bind(kid)
            .bind(node)
            .execute(&mut *tx)
            .await?;
        let retired: Vec<String> = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT kid FROM token_keys WHERE {UNUSED} ORDER BY created_at"
        )))
        .fetch_all(&mut *tx)
        .await?
        .iter()
        .map(|r| r.try_get("kid"))
        .collect::<std::result::Result<_, _>>()?;
        let retired_at = (!retired.is_empty()).then(|| {
            at + jiff::SignedDuration::try_from(keep).unwrap_or(jiff::SignedDuration::ZERO)
        });
        if let Some(until) = retired_at {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "UPDATE token_keys SET retired_at = $1 WHERE {UNUSED}"
            )))
            .bind(micros(until))
            .execute(&mut *tx)
            .await?;
        }
        if changed || !retired.is_empty() {
            audit::append(
                &mut tx,
                NewAuditEvent::system(AuditEvent::TokenKeyPublished {
                    node: node.to_owned(),
                    kid: kid.to_owned(),
                    retired: retired.clone(),
                    retired_at,
                }),
            )
            .await?;
        }
        tx.commit().await?;
        Ok(retired)
    }

    /// The keys tokens may be signed with now: `(kid, public key PEM)`.
    pub async fn token_keys(&self) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT kid, public_pem FROM token_keys WHERE retired_at IS NULL OR retired_at > $1",
        )
        .bind(micros(Timestamp::now()))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok((r.try_get("kid")?, r.try_get("public_pem")?)))
            .collect()
    }
}
