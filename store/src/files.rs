//! Files that crossed the gateway, and the quarantine of blocked uploads (issue #16).
//!
//! Each transfer is a row of `file_transfers` written in the transaction of its
//! `file_transferred` audit row; a blocked upload also gets a `quarantine` row naming the file
//! the gateway kept. Deleting a quarantined file marks the row (it stays, for the record).

use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::files::{Direction, FileRecord, Outcome as FileOutcome};
use sekisho_domain::ids::{RequestId, SessionId, TargetId, UserId, VendorId};
use sekisho_domain::user::User;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{self, NewAuditEvent};
use super::{Result, Store, StoreError, from_micros, micros, now, parse};

/// Who moved a file, in which session.
#[derive(Clone, Debug)]
pub struct TransferContext {
    pub session: SessionId,
    pub request: RequestId,
    pub target: TargetId,
    pub vendor: Option<VendorId>,
    pub source_addr: Option<String>,
}

/// A transfer as stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredTransfer {
    pub id: String,
    pub session: SessionId,
    pub target: TargetId,
    pub user: UserId,
    pub record: FileRecord,
}

/// A blocked upload kept in quarantine.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuarantineEntry {
    pub id: String,
    pub session: SessionId,
    pub request: RequestId,
    pub target: TargetId,
    pub user: UserId,
    pub vendor: Option<VendorId>,
    /// The node whose quarantine directory holds the file.
    pub node: String,
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    pub reason: String,
    pub created_at: jiff::Timestamp,
    pub deleted_at: Option<jiff::Timestamp>,
}

/// Which transfers to list.
#[derive(Clone, Debug, Default)]
pub struct TransferFilter {
    pub session: Option<SessionId>,
    /// A part of the path, matched without regard to case.
    pub name: Option<String>,
    pub limit: u32,
}

fn direction(s: &str) -> Result<Direction> {
    match s {
        "upload" => Ok(Direction::Upload),
        "download" => Ok(Direction::Download),
        other => Err(StoreError::Corrupt(format!("file direction `{other}`"))),
    }
}

fn outcome(s: &str) -> Result<FileOutcome> {
    Ok(match s {
        "completed" => FileOutcome::Completed,
        "blocked" => FileOutcome::Blocked,
        "refused" => FileOutcome::Refused,
        "failed" => FileOutcome::Failed,
        "incomplete" => FileOutcome::Incomplete,
        other => return Err(StoreError::Corrupt(format!("file outcome `{other}`"))),
    })
}

fn size(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn row_to_transfer(row: &AnyRow) -> Result<StoredTransfer> {
    Ok(StoredTransfer {
        id: row.try_get("id")?,
        session: parse("session id", &row.try_get::<String, _>("session_id")?)?,
        target: parse("target id", &row.try_get::<String, _>("target_id")?)?,
        user: parse("user id", &row.try_get::<String, _>("user_id")?)?,
        record: FileRecord {
            direction: direction(&row.try_get::<String, _>("direction")?)?,
            path: row.try_get("path")?,
            bytes: u64::try_from(row.try_get::<i64, _>("bytes")?).unwrap_or(0),
            sha256: row.try_get("sha256")?,
            sequential: row.try_get::<i64, _>("sequential")? != 0,
            started_at_us: row.try_get("started_at")?,
            ended_at_us: row.try_get("ended_at")?,
            outcome: outcome(&row.try_get::<String, _>("outcome")?)?,
            detail: row.try_get("detail")?,
            quarantine: row.try_get("quarantine_id")?,
        },
    })
}

fn row_to_quarantine(row: &AnyRow) -> Result<QuarantineEntry> {
    let vendor: Option<String> = row.try_get("vendor_id")?;
    let deleted: Option<i64> = row.try_get("deleted_at")?;
    Ok(QuarantineEntry {
        id: row.try_get("id")?,
        session: parse("session id", &row.try_get::<String, _>("session_id")?)?,
        request: parse("request id", &row.try_get::<String, _>("request_id")?)?,
        target: parse("target id", &row.try_get::<String, _>("target_id")?)?,
        user: parse("user id", &row.try_get::<String, _>("user_id")?)?,
        vendor: vendor.map(|v| parse("vendor id", &v)).transpose()?,
        node: row.try_get("node_id")?,
        path: row.try_get("path")?,
        bytes: u64::try_from(row.try_get::<i64, _>("bytes")?).unwrap_or(0),
        sha256: row.try_get("sha256")?,
        reason: row.try_get("reason")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        deleted_at: deleted.map(from_micros).transpose()?,
    })
}

const QUARANTINE_COLUMNS: &str = "id, session_id, request_id, target_id, user_id, vendor_id, node_id, path, bytes, sha256, reason, created_at, deleted_at";

impl Store {
    /// Stores one file that crossed (or tried to), audited as `file_transferred`; a blocked
    /// upload kept by `node` also gets its quarantine row (`quarantine`: id and reason).
    pub async fn record_transfer(
        &self,
        ctx: &TransferContext,
        user: &User,
        record: &FileRecord,
        node: &str,
    ) -> Result<String> {
        let id = uuid::Uuid::new_v4().to_string();
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO file_transfers (id, session_id, target_id, user_id, direction, path, bytes, sha256, sequential, started_at, ended_at, outcome, detail, quarantine_id) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(&id)
        .bind(ctx.session.to_string())
        .bind(ctx.target.to_string())
        .bind(user.id.to_string())
        .bind(record.direction.as_str())
        .bind(&record.path)
        .bind(size(record.bytes))
        .bind(record.sha256.clone())
        .bind(i64::from(record.sequential))
        .bind(record.started_at_us)
        .bind(record.ended_at_us)
        .bind(record.outcome.as_str())
        .bind(record.detail.clone())
        .bind(record.quarantine.clone())
        .execute(&mut *tx)
        .await?;
        if let (Some(q), Some(sha256)) = (&record.quarantine, &record.sha256) {
            sqlx::query(
                "INSERT INTO quarantine (id, session_id, request_id, target_id, user_id, vendor_id, node_id, path, bytes, sha256, reason, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            )
            .bind(q)
            .bind(ctx.session.to_string())
            .bind(ctx.request.to_string())
            .bind(ctx.target.to_string())
            .bind(user.id.to_string())
            .bind(ctx.vendor.map(|v| v.to_string()))
            .bind(node)
            .bind(&record.path)
            .bind(size(record.bytes))
            .bind(sha256)
            .bind(record.detail.clone().unwrap_or_default())
            .bind(micros(now()))
            .execute(&mut *tx)
            .await?;
        }
        let denied = matches!(record.outcome, FileOutcome::Blocked | FileOutcome::Refused);
        audit::append(
            &mut tx,
            NewAuditEvent {
                actor: Actor::user(user),
                outcome: if denied {
                    Outcome::Denied
                } else if record.outcome == FileOutcome::Failed {
                    Outcome::Failure
                } else {
                    Outcome::Success
                },
                vendor_id: ctx.vendor,
                source_addr: ctx.source_addr.clone(),
                reason: record.detail.clone(),
                event: AuditEvent::FileTransferred {
                    session: ctx.session,
                    request: ctx.request,
                    target: ctx.target,
                    transfer: id.clone(),
                    direction: record.direction,
                    path: record.path.clone(),
                    bytes: record.bytes,
                    sha256: record.sha256.clone(),
                    sequential: record.sequential,
                    outcome: record.outcome,
                    quarantine: record.quarantine.clone(),
                },
            },
        )
        .await?;
        tx.commit().await?;
        Ok(id)
    }

    /// Transfers, newest first.
    pub async fn file_transfers(&self, filter: &TransferFilter) -> Result<Vec<StoredTransfer>> {
        let mut sql = String::from(
            "SELECT id, session_id, target_id, user_id, direction, path, bytes, sha256, sequential, started_at, ended_at, outcome, detail, quarantine_id \
             FROM file_transfers WHERE 1 = 1",
        );
        let mut args = vec![];
        if let Some(s) = filter.session {
            args.push(s.to_string());
            sql.push_str(&format!(" AND session_id = ${}", args.len()));
        }
        if let Some(name) = &filter.name {
            let escaped = name
                .to_lowercase()
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            args.push(format!("%{escaped}%"));
            sql.push_str(&format!(
                " AND LOWER(path) LIKE ${} ESCAPE '\\'",
                args.len()
            ));
        }
        sql.push_str(&format!(
            " ORDER BY ended_at DESC, id LIMIT {}",
            filter.limit.max(1)
        ));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in args {
            q = q.bind(a);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_to_transfer)
            .collect()
    }

    /// Transfers that ended from `from` until `to` (the monthly report).
    pub async fn transfers_between(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<Vec<StoredTransfer>> {
        sqlx::query(
            "SELECT id, session_id, target_id, user_id, direction, path, bytes, sha256, sequential, started_at, ended_at, outcome, detail, quarantine_id \
             FROM file_transfers WHERE ended_at >= $1 AND ended_at < $2 ORDER BY ended_at, id",
        )
        .bind(micros(from))
        .bind(micros(to))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(row_to_transfer)
        .collect()
    }

    /// The quarantine, newest first; deleted entries only when asked.
    pub async fn quarantine(&self, include_deleted: bool) -> Result<Vec<QuarantineEntry>> {
        let sql = format!(
            "SELECT {QUARANTINE_COLUMNS} FROM quarantine {} ORDER BY created_at DESC, id",
            if include_deleted {
                ""
            } else {
                "WHERE deleted_at IS NULL"
            }
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_to_quarantine)
            .collect()
    }

    pub async fn quarantine_entry(&self, id: &str) -> Result<Option<QuarantineEntry>> {
        let sql = format!("SELECT {QUARANTINE_COLUMNS} FROM quarantine WHERE id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(row_to_quarantine)
            .transpose()
    }

    /// Marks a quarantined file deleted (the caller removes the file), audited.
    pub async fn quarantine_deleted(
        &self,
        entry: &QuarantineEntry,
        by: &User,
        source: Option<&str>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let updated = sqlx::query(
            "UPDATE quarantine SET deleted_at = $1 WHERE id = $2 AND deleted_at IS NULL",
        )
        .bind(micros(now()))
        .bind(&entry.id)
        .execute(&mut *tx)
        .await?;
        if updated.rows_affected() == 0 {
            return Err(StoreError::NotFound(format!(
                "quarantine entry {}",
                entry.id
            )));
        }
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                Actor::user(by),
                entry.vendor,
                source,
                AuditEvent::QuarantineDeleted {
                    quarantine: entry.id.clone(),
                    path: entry.path.clone(),
                    sha256: entry.sha256.clone(),
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Audits that `by` took a copy of a quarantined file.
    pub async fn quarantine_retrieved(
        &self,
        entry: &QuarantineEntry,
        by: &User,
        source: Option<&str>,
    ) -> Result<()> {
        self.audit(NewAuditEvent::success(
            Actor::user(by),
            entry.vendor,
            source,
            AuditEvent::QuarantineRetrieved {
                quarantine: entry.id.clone(),
                path: entry.path.clone(),
                sha256: entry.sha256.clone(),
            },
        ))
        .await
        .map(|_| ())
    }
}
