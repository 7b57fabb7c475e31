//! Sessions (written by the gateway) and their review sign-off (written by approvers).

use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::ids::{SessionId, VendorId};
use sekisho_domain::session::{Session, SessionEnd, Transport};
use sekisho_domain::user::User;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{self, NewAuditEvent};
use super::{Result, Store, StoreError, from_micros, micros, now, parse};

/// A session with its review state.
#[derive(Clone, Debug)]
pub struct StoredSession {
    pub session: Session,
    pub review: Review,
    /// Names for people: the vendor engineer, the target, the request number.
    pub username: String,
    pub target_name: String,
    pub request_number: i64,
}

/// Whether IT has checked what was done (case 6: 作業内容のチェック).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Review {
    Pending,
    SignedOff {
        by: String,
        at: jiff::Timestamp,
        comment: Option<String>,
    },
}

const COLUMNS: &str = "s.id, s.request_id, s.user_id, s.vendor_id, s.target_id, s.level, s.transport, s.source_addr, \
    s.started_at, s.ended_at, s.end_reason, s.bytes_to_target, s.bytes_from_target, s.review_status, \
    u.username AS reviewer, s.reviewed_at, s.review_comment, \
    who.username AS session_user, t.name AS target_name, r.number AS request_number";

/// The sessions with the names [`COLUMNS`] shows.
const FROM: &str = "FROM sessions s LEFT JOIN users u ON u.id = s.reviewed_by \
    JOIN users who ON who.id = s.user_id JOIN targets t ON t.id = s.target_id \
    JOIN work_requests r ON r.id = s.request_id";

fn end_from(s: &str) -> Result<SessionEnd> {
    Ok(match s {
        "closed" => SessionEnd::Closed,
        "window_ended" => SessionEnd::WindowEnded,
        "terminated" => SessionEnd::Terminated,
        "revoked" => SessionEnd::Revoked,
        "recording_failed" => SessionEnd::RecordingFailed,
        "aborted" => SessionEnd::Aborted,
        other => return Err(StoreError::Corrupt(format!("session end `{other}`"))),
    })
}

fn row_to_session(row: &AnyRow) -> Result<StoredSession> {
    let ended: Option<i64> = row.try_get("ended_at")?;
    let end: Option<String> = row.try_get("end_reason")?;
    let to: i64 = row.try_get("bytes_to_target")?;
    let from: i64 = row.try_get("bytes_from_target")?;
    let review = match row.try_get::<String, _>("review_status")?.as_str() {
        "signed_off" => Review::SignedOff {
            by: row
                .try_get::<Option<String>, _>("reviewer")?
                .unwrap_or_default(),
            at: from_micros(
                row.try_get::<Option<i64>, _>("reviewed_at")?
                    .unwrap_or_default(),
            )?,
            comment: row.try_get("review_comment")?,
        },
        _ => Review::Pending,
    };
    Ok(StoredSession {
        session: Session {
            id: parse("session id", &row.try_get::<String, _>("id")?)?,
            request_id: parse("request id", &row.try_get::<String, _>("request_id")?)?,
            user_id: parse("user id", &row.try_get::<String, _>("user_id")?)?,
            vendor_id: parse("vendor id", &row.try_get::<String, _>("vendor_id")?)?,
            target_id: parse("target id", &row.try_get::<String, _>("target_id")?)?,
            level: parse("access level", &row.try_get::<String, _>("level")?)?,
            transport: match row.try_get::<String, _>("transport")?.as_str() {
                "quic" => Transport::Quic,
                _ => Transport::Ssh,
            },
            source_addr: row.try_get("source_addr")?,
            started_at: from_micros(row.try_get("started_at")?)?,
            ended_at: ended.map(from_micros).transpose()?,
            end: end.as_deref().map(end_from).transpose()?,
            bytes_to_target: u64::try_from(to).unwrap_or_default(),
            bytes_from_target: u64::try_from(from).unwrap_or_default(),
        },
        review,
        username: row.try_get("session_user")?,
        target_name: row.try_get("target_name")?,
        request_number: row.try_get("request_number")?,
    })
}

impl Store {
    /// Sessions, newest first; only open ones with `active_only`; one vendor's with `vendor`;
    /// those on one site's targets with `site`.
    pub async fn sessions(
        &self,
        active_only: bool,
        vendor: Option<VendorId>,
        site: Option<&str>,
        limit: i64,
    ) -> Result<Vec<StoredSession>> {
        let mut sql = format!("SELECT {COLUMNS} {FROM} WHERE 1 = 1");
        let mut args: Vec<String> = vec![];
        if active_only {
            sql.push_str(" AND s.ended_at IS NULL");
        }
        if let Some(v) = vendor {
            args.push(v.to_string());
            sql.push_str(&format!(" AND s.vendor_id = ${}", args.len()));
        }
        if let Some(site) = site {
            args.push(site.to_owned());
            sql.push_str(&format!(" AND t.site = ${}", args.len()));
        }
        sql.push_str(&format!(
            " ORDER BY s.started_at DESC LIMIT {}",
            limit.clamp(1, 1000)
        ));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in args {
            q = q.bind(a);
        }
        q.fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_to_session)
            .collect()
    }

    /// Sessions started from `from` until `to`, oldest first (the monthly report).
    pub async fn sessions_started_between(
        &self,
        from: jiff::Timestamp,
        to: jiff::Timestamp,
    ) -> Result<Vec<StoredSession>> {
        let sql = format!(
            "SELECT {COLUMNS} {FROM} WHERE s.started_at >= $1 AND s.started_at < $2 ORDER BY s.started_at"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(micros(from))
            .bind(micros(to))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_to_session)
            .collect()
    }

    /// Sessions that ended before `ended_before` and nobody has signed off yet, with the site
    /// of their target; oldest first.
    pub async fn unreviewed_sessions(
        &self,
        ended_before: jiff::Timestamp,
        limit: i64,
    ) -> Result<Vec<(StoredSession, Option<String>)>> {
        let sql = format!(
            "SELECT {COLUMNS}, t.site AS target_site {FROM} WHERE s.ended_at IS NOT NULL AND s.ended_at < $1 \
             AND s.review_status = 'pending' ORDER BY s.ended_at LIMIT {}",
            limit.clamp(1, 10_000)
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(micros(ended_before))
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| Ok((row_to_session(row)?, row.try_get("target_site")?)))
            .collect()
    }

    pub async fn session(&self, id: SessionId) -> Result<Option<StoredSession>> {
        let sql = format!("SELECT {COLUMNS} {FROM} WHERE s.id = $1");
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(row_to_session)
            .transpose()
    }

    /// An approver signs off the review of a finished session.
    pub async fn sign_off_session(
        &self,
        id: SessionId,
        by: &User,
        comment: Option<String>,
        source: Option<&str>,
    ) -> Result<StoredSession> {
        let current = self
            .session(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("session {id}")))?;
        if current.session.ended_at.is_none() {
            return Err(StoreError::Conflict(format!(
                "session {id} is still open; review it after it ends"
            )));
        }
        if current.review != Review::Pending {
            return Err(StoreError::Conflict(format!(
                "session {id} is already signed off"
            )));
        }
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE sessions SET review_status = 'signed_off', reviewed_by = $1, reviewed_at = $2, review_comment = $3 WHERE id = $4")
            .bind(by.id.to_string())
            .bind(micros(now()))
            .bind(&comment)
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            NewAuditEvent {
                actor: Actor::user(by),
                outcome: Outcome::Success,
                vendor_id: Some(current.session.vendor_id),
                source_addr: source.map(str::to_owned),
                reason: comment,
                event: AuditEvent::SessionReviewed {
                    session: id,
                    request: current.session.request_id,
                    target: current.session.target_id,
                },
            },
        )
        .await?;
        tx.commit().await?;
        self.session(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("session {id}")))
    }
}

/// Whether a session's recording may be deleted by retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Retention {
    /// Reviewed and not on hold.
    Deletable,
    /// Review not signed off yet.
    UnderReview,
    LegalHold,
    /// No such session in the database: kept, since nothing says it may go.
    Unknown,
}

impl Store {
    /// Records a session that has started on gateway `node` (the gateway calls this), audited
    /// as `session_started`.
    pub async fn start_session(&self, s: &Session, user: &User, node: &str) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id, request_id, user_id, vendor_id, target_id, level, transport, source_addr, started_at, node) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        )
        .bind(s.id.to_string())
        .bind(s.request_id.to_string())
        .bind(s.user_id.to_string())
        .bind(s.vendor_id.to_string())
        .bind(s.target_id.to_string())
        .bind(s.level.as_str())
        .bind(s.transport.as_str())
        .bind(&s.source_addr)
        .bind(micros(s.started_at))
        .bind(node)
        .execute(&mut *tx)
        .await?;
        // The first session under an approved request makes it active.
        sqlx::query("UPDATE work_requests SET status = 'active', updated_at = $1 WHERE id = $2 AND status = 'approved'")
            .bind(micros(s.started_at))
            .bind(s.request_id.to_string())
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            NewAuditEvent {
                actor: Actor::user(user),
                outcome: Outcome::Success,
                vendor_id: Some(s.vendor_id),
                source_addr: Some(s.source_addr.clone()),
                reason: None,
                event: AuditEvent::SessionStarted {
                    session: s.id,
                    request: s.request_id,
                    target: s.target_id,
                    level: s.level,
                },
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Records the end of a session, audited as `session_ended`.
    pub async fn end_session(
        &self,
        id: SessionId,
        end: SessionEnd,
        bytes_to_target: u64,
        bytes_from_target: u64,
    ) -> Result<()> {
        let current = self
            .session(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("session {id}")))?;
        let ended = now();
        let duration_seconds =
            u64::try_from(ended.duration_since(current.session.started_at).as_secs()).unwrap_or(0);
        let mut tx = self.begin().await?;
        let updated = sqlx::query("UPDATE sessions SET ended_at = $1, end_reason = $2, bytes_to_target = $3, bytes_from_target = $4 WHERE id = $5 AND ended_at IS NULL")
            .bind(micros(ended))
            .bind(end.as_str())
            .bind(i64::try_from(bytes_to_target).unwrap_or(i64::MAX))
            .bind(i64::try_from(bytes_from_target).unwrap_or(i64::MAX))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        if updated.rows_affected() == 0 {
            // Already ended (e.g. marked aborted): the first end stands.
            return Ok(());
        }
        audit::append(
            &mut tx,
            NewAuditEvent {
                actor: Actor::System,
                outcome: Outcome::Success,
                vendor_id: Some(current.session.vendor_id),
                source_addr: None,
                reason: None,
                event: AuditEvent::SessionEnded {
                    session: id,
                    request: current.session.request_id,
                    target: current.session.target_id,
                    how: end,
                    bytes_to_target,
                    bytes_from_target,
                    duration_seconds,
                },
            },
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// Stores live sessions' byte counts `(session, to target, from target)` so listings of
    /// active sessions show them: all in one transaction (one wait for the disk).
    pub async fn sessions_progress(&self, counts: &[(SessionId, u64, u64)]) -> Result<()> {
        let mut tx = self.begin().await?;
        for (id, to, from) in counts {
            sqlx::query("UPDATE sessions SET bytes_to_target = $1, bytes_from_target = $2 WHERE id = $3 AND ended_at IS NULL")
                .bind(i64::try_from(*to).unwrap_or(i64::MAX))
                .bind(i64::try_from(*from).unwrap_or(i64::MAX))
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Marks the sessions `node` left open (it stopped or crashed) as aborted, each audited.
    pub async fn abort_open_sessions(&self, node: &str) -> Result<Vec<SessionId>> {
        let rows = sqlx::query(
            "SELECT id, bytes_to_target, bytes_from_target FROM sessions WHERE node = $1 AND ended_at IS NULL",
        )
        .bind(node)
        .fetch_all(&self.pool)
        .await?;
        let mut aborted = Vec::with_capacity(rows.len());
        for row in rows {
            let id: SessionId = parse("session id", &row.try_get::<String, _>("id")?)?;
            let to: i64 = row.try_get("bytes_to_target")?;
            let from: i64 = row.try_get("bytes_from_target")?;
            self.end_session(
                id,
                SessionEnd::Aborted,
                u64::try_from(to).unwrap_or_default(),
                u64::try_from(from).unwrap_or_default(),
            )
            .await?;
            aborted.push(id);
        }
        Ok(aborted)
    }

    /// Audits a sealed recording: the SHA-256 of its signed manifest.
    pub async fn audit_recording_closed(
        &self,
        session: &Session,
        manifest_sha256: String,
        files: u32,
        bytes: u64,
    ) -> Result<()> {
        self.audit(NewAuditEvent {
            actor: Actor::System,
            outcome: Outcome::Success,
            vendor_id: Some(session.vendor_id),
            source_addr: None,
            reason: None,
            event: AuditEvent::RecordingClosed {
                session: session.id,
                request: session.request_id,
                target: session.target_id,
                manifest_sha256,
                files,
                bytes,
            },
        })
        .await
        .map(|_| ())
    }

    /// Puts a session's recording on (or off) legal hold.
    pub async fn set_legal_hold(
        &self,
        id: SessionId,
        on: bool,
        by: &User,
        source: Option<&str>,
    ) -> Result<()> {
        let current = self
            .session(id)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("session {id}")))?;
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE sessions SET legal_hold = $1 WHERE id = $2")
            .bind(i64::from(on))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                Actor::user(by),
                Some(current.session.vendor_id),
                source,
                AuditEvent::LegalHoldChanged {
                    session: id,
                    request: current.session.request_id,
                    target: current.session.target_id,
                    on,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn retention(&self, id: &str) -> Result<Retention> {
        let row = sqlx::query("SELECT review_status, legal_hold FROM sessions WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else {
            return Ok(Retention::Unknown);
        };
        if row.try_get::<i64, _>("legal_hold")? != 0 {
            return Ok(Retention::LegalHold);
        }
        if row.try_get::<String, _>("review_status")? != "signed_off" {
            return Ok(Retention::UnderReview);
        }
        Ok(Retention::Deletable)
    }

    /// Audits the deletion of a recording by retention.
    pub async fn audit_recording_deleted(
        &self,
        session: SessionId,
        target: String,
        files: Vec<String>,
    ) -> Result<()> {
        self.audit(NewAuditEvent {
            actor: Actor::System,
            outcome: Outcome::Success,
            vendor_id: None,
            source_addr: None,
            reason: Some("retention period over".into()),
            event: AuditEvent::RecordingDeleted {
                session,
                target,
                files,
            },
        })
        .await
        .map(|_| ())
    }
}
