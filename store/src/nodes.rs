//! Several gateway nodes on one database (PostgreSQL): the keys the group shares, each node's
//! heartbeat, taking over from a node that went silent, and an approver's terminate kept with
//! the session so that whichever node carries it honours it.

use std::collections::HashSet;
use std::time::Duration;

use jiff::Timestamp;
use sekisho_domain::audit::AuditEvent;
use sekisho_domain::ids::SessionId;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{self, NewAuditEvent};
use super::{Result, Store, StoreError, from_micros, micros, now, parse};

/// What this node tells the others about itself.
#[derive(Clone, Debug)]
pub struct NodeInfo {
    pub id: String,
    /// For people: the machine's name.
    pub name: String,
    pub version: String,
}

/// A node as the database knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NodeRow {
    pub id: String,
    pub name: String,
    pub version: String,
    pub started_at: Timestamp,
    pub heartbeat_at: Timestamp,
    /// Stopped on purpose (shutdown).
    pub stopped_at: Option<Timestamp>,
    /// Marked down by another node after it stopped heartbeating.
    pub down_at: Option<Timestamp>,
    pub live_sessions: u64,
    /// The at-rest keys it reported holding, the sealing one first.
    pub at_rest_kids: Vec<String>,
}

const SELECT_NODES: &str = "SELECT n.id, n.name, n.version, n.started_at, n.heartbeat_at, n.stopped_at, n.down_at, n.at_rest_kids, \
     (SELECT COUNT(*) FROM sessions s WHERE s.node = n.id AND s.ended_at IS NULL) AS live FROM nodes n";

fn row_to_node(r: &AnyRow) -> Result<NodeRow> {
    let opt = |col: &str| -> Result<Option<Timestamp>> {
        r.try_get::<Option<i64>, _>(col)?
            .map(from_micros)
            .transpose()
    };
    Ok(NodeRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        version: r.try_get("version")?,
        started_at: from_micros(r.try_get("started_at")?)?,
        heartbeat_at: from_micros(r.try_get("heartbeat_at")?)?,
        stopped_at: opt("stopped_at")?,
        down_at: opt("down_at")?,
        live_sessions: u64::try_from(r.try_get::<i64, _>("live")?).unwrap_or(0),
        at_rest_kids: r
            .try_get::<Option<String>, _>("at_rest_kids")?
            .map(|k| {
                k.split(',')
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default(),
    })
}

impl NodeRow {
    /// How the node is doing at `now`, a silent node being taken over after `down_after`.
    pub fn state(&self, now: Timestamp, down_after: Duration) -> sekisho_domain::node::NodeState {
        sekisho_domain::node::NodeState::of(
            self.stopped_at.is_some(),
            self.down_at.is_some(),
            now.duration_since(self.heartbeat_at),
            down_after,
        )
    }
}

/// Whether this node's keys were the group's already or made them the group's now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GroupKeys {
    Claimed,
    Same,
}

/// What a heartbeat learnt.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Heartbeat {
    Alive,
    /// Another node had marked this one down (and ended its sessions): it is back now.
    WasMarkedDown,
}

/// Whether a live session still stands in the database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Standing {
    Live,
    /// An approver asked for it to end.
    TerminateRequested,
    /// Its end is stored already (another node took over from this one).
    Ended,
}

impl Store {
    /// The first node to use the database makes its keys the group's (audited); every later
    /// start must present the same fingerprint.
    pub async fn claim_group_keys(&self, node: &str, fingerprint: &str) -> Result<GroupKeys> {
        let mut tx = self.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO group_keys (id, fingerprint, claimed_at, claimed_by) VALUES (1, $1, $2, $3) ON CONFLICT (id) DO NOTHING",
        )
        .bind(fingerprint)
        .bind(micros(now()))
        .bind(node)
        .execute(&mut *tx)
        .await?;
        if inserted.rows_affected() == 1 {
            audit::append(
                &mut tx,
                NewAuditEvent::system(AuditEvent::GroupKeysClaimed {
                    node: node.to_owned(),
                    fingerprint: fingerprint.to_owned(),
                }),
            )
            .await?;
            tx.commit().await?;
            return Ok(GroupKeys::Claimed);
        }
        let group: String = sqlx::query("SELECT fingerprint FROM group_keys WHERE id = 1")
            .fetch_one(&mut *tx)
            .await?
            .try_get("fingerprint")?;
        tx.commit().await?;
        if group == fingerprint {
            Ok(GroupKeys::Same)
        } else {
            Err(StoreError::KeysDiffer {
                group,
                node: fingerprint.to_owned(),
            })
        }
    }

    /// Says this node is alive and which at-rest keys it holds (`at_rest_kids`, the sealing one
    /// first); `starting` also (re)sets its start time and clears a stop or a "down" mark.
    pub async fn heartbeat(
        &self,
        node: &NodeInfo,
        starting: bool,
        at_rest_kids: &[String],
    ) -> Result<Heartbeat> {
        let at = micros(now());
        let kids = at_rest_kids.join(",");
        if starting {
            sqlx::query(
                "INSERT INTO nodes (id, name, version, started_at, heartbeat_at, at_rest_kids) VALUES ($1, $2, $3, $4, $4, $5) \
                 ON CONFLICT (id) DO UPDATE SET name = excluded.name, version = excluded.version, \
                 started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, stopped_at = NULL, down_at = NULL, \
                 at_rest_kids = excluded.at_rest_kids",
            )
            .bind(&node.id)
            .bind(&node.name)
            .bind(&node.version)
            .bind(at)
            .bind(kids)
            .execute(self.pool())
            .await?;
            return Ok(Heartbeat::Alive);
        }
        let mut tx = self.begin().await?;
        let down: Option<i64> = sqlx::query("SELECT down_at FROM nodes WHERE id = $1")
            .bind(&node.id)
            .fetch_optional(&mut *tx)
            .await?
            .map(|r| r.try_get::<Option<i64>, _>("down_at"))
            .transpose()?
            .flatten();
        sqlx::query(
            "UPDATE nodes SET heartbeat_at = $1, down_at = NULL, at_rest_kids = $2 WHERE id = $3",
        )
        .bind(at)
        .bind(kids)
        .bind(&node.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(if down.is_some() {
            Heartbeat::WasMarkedDown
        } else {
            Heartbeat::Alive
        })
    }

    /// Marks this node stopped on purpose (after its sessions ended).
    pub async fn node_stopped(&self, node: &str) -> Result<()> {
        sqlx::query("UPDATE nodes SET stopped_at = $1 WHERE id = $2")
            .bind(micros(now()))
            .bind(node)
            .execute(self.pool())
            .await?;
        Ok(())
    }

    /// Every node that ever used the database, with its live sessions, first started first.
    pub async fn nodes(&self) -> Result<Vec<NodeRow>> {
        let sql = format!("{SELECT_NODES} ORDER BY n.started_at, n.id");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(self.pool())
            .await?;
        rows.iter().map(row_to_node).collect()
    }

    /// Marks down every other node silent for longer than `timeout` that neither stopped nor
    /// was marked down already, audits it (`node_down`) and ends its open sessions as
    /// aborted. Several nodes may try at once: the one whose mark lands does the rest.
    /// Returns the nodes taken over, with their sessions.
    pub async fn take_over_silent_nodes(
        &self,
        me: &str,
        timeout: Duration,
    ) -> Result<Vec<(NodeRow, Vec<SessionId>)>> {
        let cutoff = micros(now()) - i64::try_from(timeout.as_micros()).unwrap_or(i64::MAX);
        // Runs at every heartbeat: only the silent ones are read.
        let sql = format!(
            "{SELECT_NODES} WHERE n.id <> $1 AND n.stopped_at IS NULL AND n.down_at IS NULL AND n.heartbeat_at < $2"
        );
        let silent = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(me)
            .bind(cutoff)
            .fetch_all(self.pool())
            .await?
            .iter()
            .map(row_to_node)
            .collect::<Result<Vec<_>>>()?;
        let mut taken = Vec::new();
        for node in silent {
            let mut tx = self.begin().await?;
            let marked = sqlx::query(
                "UPDATE nodes SET down_at = $1 WHERE id = $2 AND down_at IS NULL AND stopped_at IS NULL AND heartbeat_at < $3",
            )
            .bind(micros(now()))
            .bind(&node.id)
            .bind(cutoff)
            .execute(&mut *tx)
            .await?;
            if marked.rows_affected() == 0 {
                continue;
            }
            let sessions =
                sqlx::query("SELECT id FROM sessions WHERE node = $1 AND ended_at IS NULL")
                    .bind(&node.id)
                    .fetch_all(&mut *tx)
                    .await?
                    .iter()
                    .map(|r| parse::<SessionId>("session id", &r.try_get::<String, _>("id")?))
                    .collect::<Result<Vec<_>>>()?;
            audit::append(
                &mut tx,
                NewAuditEvent::system(AuditEvent::NodeDown {
                    node: node.id.clone(),
                    name: node.name.clone(),
                    last_heartbeat: node.heartbeat_at,
                    sessions: sessions.clone(),
                }),
            )
            .await?;
            tx.commit().await?;
            let ended = self.abort_open_sessions(&node.id).await?;
            taken.push((node, ended));
        }
        Ok(taken)
    }

    /// Open sessions carried by other nodes that are up: their recordings are being written.
    pub async fn live_sessions_elsewhere(&self, me: &str) -> Result<HashSet<String>> {
        let rows = sqlx::query(
            "SELECT s.id FROM sessions s JOIN nodes n ON n.id = s.node \
             WHERE s.ended_at IS NULL AND s.node <> $1 AND n.stopped_at IS NULL AND n.down_at IS NULL",
        )
        .bind(me)
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| Ok(r.try_get::<String, _>("id")?))
            .collect()
    }

    /// Keeps an approver's terminate with the session and audits it, in one transaction.
    /// `false` if the session had ended already.
    pub async fn request_terminate(&self, id: SessionId, audited: NewAuditEvent) -> Result<bool> {
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "UPDATE sessions SET terminate_requested_at = COALESCE(terminate_requested_at, $1) WHERE id = $2 AND ended_at IS NULL",
        )
        .bind(micros(now()))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Ok(false);
        }
        audit::append(&mut tx, audited).await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Whether a live session still stands in the database (its node re-checks this).
    pub async fn standing(&self, id: SessionId) -> Result<Standing> {
        let row =
            sqlx::query("SELECT ended_at, terminate_requested_at FROM sessions WHERE id = $1")
                .bind(id.to_string())
                .fetch_optional(self.pool())
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("session {id}")))?;
        if row
            .try_get::<Option<i64>, _>("terminate_requested_at")?
            .is_some()
        {
            Ok(Standing::TerminateRequested)
        } else if row.try_get::<Option<i64>, _>("ended_at")?.is_some() {
            Ok(Standing::Ended)
        } else {
            Ok(Standing::Live)
        }
    }
}
