//! How far the audit log has been streamed to the SIEM (issue #18), and which node streams
//! it: one at a time, holding a lease that it renews while it works and that another node
//! takes over when it runs out.

use jiff::SignedDuration;
use sqlx::Row;

use super::{Result, Store, micros, now};

impl Store {
    /// Takes or renews the streaming lease for `node` for `lease`; the last sequence number
    /// sent when it is this node's, `None` while another node holds it.
    pub async fn syslog_claim(&self, node: &str, lease: SignedDuration) -> Result<Option<i64>> {
        let at = now();
        let claimed = sqlx::query(
            "UPDATE syslog_cursor SET holder = $1, lease_until = $2 \
             WHERE id = 1 AND (holder IS NULL OR holder = $1 OR lease_until < $3)",
        )
        .bind(node)
        .bind(micros(at + lease))
        .bind(micros(at))
        .execute(&self.pool)
        .await?
        .rows_affected();
        if claimed == 0 {
            return Ok(None);
        }
        let row = sqlx::query("SELECT last_seq FROM syslog_cursor WHERE id = 1 AND holder = $1")
            .bind(node)
            .fetch_optional(&self.pool)
            .await?;
        Ok(match row {
            Some(r) => Some(r.try_get("last_seq")?),
            None => None,
        })
    }

    /// Records that everything up to `seq` was sent, if `node` still holds the lease; whether
    /// it did.
    pub async fn syslog_advance(&self, node: &str, seq: i64) -> Result<bool> {
        Ok(sqlx::query(
            "UPDATE syslog_cursor SET last_seq = $1 WHERE id = 1 AND holder = $2 AND last_seq < $1",
        )
        .bind(seq)
        .bind(node)
        .execute(&self.pool)
        .await?
        .rows_affected()
            == 1)
    }

    /// Gives the lease up (a node that stops), so that another node takes over at once.
    pub async fn syslog_release(&self, node: &str) -> Result<()> {
        sqlx::query(
            "UPDATE syslog_cursor SET holder = NULL, lease_until = 0 WHERE id = 1 AND holder = $1",
        )
        .bind(node)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
