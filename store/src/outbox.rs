//! The notification outbox (issue #17): what is to be sent, durably, until it is delivered
//! or given up.
//!
//! Each row has a stable id (sent with it, for the receiver's de-duplication) and a
//! `dedup_key` naming what it is about and for whom (`audit:SEQ:email:ADDRESS`,
//! `attestation:VENDOR:UNTIL:7:webhook:NAME`, ...): making the same notification twice, on
//! one node after a restart or on two nodes at once, inserts it once. The audit log's
//! sequence number the notifier has read up to is kept in the same transaction as the rows it
//! made, so nothing is lost or made twice across a restart. Delivery claims a row for a
//! lease (another node takes it over if this one dies), and a failed try is scheduled again
//! or, after the last one, given up and audited.

use std::time::Duration;

use jiff::Timestamp;
use sekisho_domain::audit::{AuditEvent, Outcome};
use sekisho_domain::notify::{DeliveryChannel, Language, NotificationKind};
use sekisho_domain::user::Role;
use sqlx::Row;
use sqlx::any::AnyRow;

use super::audit::{self, NewAuditEvent};
use super::{Result, Store, StoreError, from_micros, micros};

/// A notification to be made.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewNotification {
    pub dedup_key: String,
    pub kind: NotificationKind,
    pub channel: DeliveryChannel,
    /// An email address, or a webhook's name.
    pub recipient: String,
    pub language: Language,
    pub subject: String,
    /// The mail's text, or the webhook's JSON.
    pub body: String,
}

/// Where a notification stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Not delivered yet; tried `attempts` times.
    Pending,
    Delivered,
    /// Given up after the last try.
    Failed,
}

/// A notification in the outbox.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notification {
    pub id: String,
    pub kind: NotificationKind,
    pub channel: DeliveryChannel,
    pub recipient: String,
    pub language: Language,
    pub subject: String,
    pub body: String,
    pub created_at: Timestamp,
    pub attempts: u32,
    pub next_attempt_at: Timestamp,
    pub delivered_at: Option<Timestamp>,
    pub failed_at: Option<Timestamp>,
    pub last_error: Option<String>,
}

impl Notification {
    pub fn status(&self) -> DeliveryStatus {
        match (self.delivered_at, self.failed_at) {
            (Some(_), _) => DeliveryStatus::Delivered,
            (None, Some(_)) => DeliveryStatus::Failed,
            (None, None) => DeliveryStatus::Pending,
        }
    }
}

/// Someone to write to: their address and language (`None`: the configured default).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recipient {
    pub email: String,
    pub language: Option<Language>,
}

const COLUMNS: &str = "id, kind, channel, recipient, language, subject, body, created_at, attempts, \
     next_attempt_at, delivered_at, failed_at, last_error";

fn corrupt(what: &str, v: &str) -> StoreError {
    StoreError::Corrupt(format!("notification {what} `{v}`"))
}

fn row_to_notification(row: &AnyRow) -> Result<Notification> {
    let kind: String = row.try_get("kind")?;
    let channel: String = row.try_get("channel")?;
    let language: String = row.try_get("language")?;
    let optional = |col: &str| -> Result<Option<Timestamp>> {
        row.try_get::<Option<i64>, _>(col)?
            .map(from_micros)
            .transpose()
    };
    Ok(Notification {
        id: row.try_get("id")?,
        kind: NotificationKind::parse(&kind).ok_or_else(|| corrupt("kind", &kind))?,
        channel: DeliveryChannel::parse(&channel).ok_or_else(|| corrupt("channel", &channel))?,
        recipient: row.try_get("recipient")?,
        language: Language::parse(&language).ok_or_else(|| corrupt("language", &language))?,
        subject: row.try_get("subject")?,
        body: row.try_get("body")?,
        created_at: from_micros(row.try_get("created_at")?)?,
        attempts: u32::try_from(row.try_get::<i64, _>("attempts")?).unwrap_or(u32::MAX),
        next_attempt_at: from_micros(row.try_get("next_attempt_at")?)?,
        delivered_at: optional("delivered_at")?,
        failed_at: optional("failed_at")?,
        last_error: row.try_get("last_error")?,
    })
}

impl Store {
    /// The audit sequence number notifications have been made up to. The first call starts
    /// at the log's end: a new installation does not send its history.
    pub async fn notify_cursor(&self) -> Result<i64> {
        if let Some(row) = sqlx::query("SELECT last_seq FROM notify_cursor WHERE id = 1")
            .fetch_optional(&self.pool)
            .await?
        {
            return Ok(row.try_get("last_seq")?);
        }
        let end: i64 = sqlx::query("SELECT COALESCE(MAX(seq), 0) AS n FROM audit_events")
            .fetch_one(&self.pool)
            .await?
            .try_get("n")?;
        sqlx::query(
            "INSERT INTO notify_cursor (id, last_seq) VALUES (1, $1) ON CONFLICT (id) DO NOTHING",
        )
        .bind(end)
        .execute(&self.pool)
        .await?;
        let row = sqlx::query("SELECT last_seq FROM notify_cursor WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get("last_seq")?)
    }

    /// Adds `batch` (each once: a `dedup_key` already there is skipped) and, in the same
    /// transaction, moves the audit cursor forward to `cursor`. Returns how many rows are new.
    pub async fn enqueue_notifications(
        &self,
        batch: &[NewNotification],
        cursor: Option<i64>,
    ) -> Result<u64> {
        let now = micros(super::now());
        let mut tx = self.begin().await?;
        let mut added = 0;
        for n in batch {
            added += sqlx::query(
                "INSERT INTO notifications (id, dedup_key, kind, channel, recipient, language, subject, body, created_at, attempts, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 0, $9) ON CONFLICT (dedup_key) DO NOTHING",
            )
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(&n.dedup_key)
            .bind(n.kind.as_str())
            .bind(n.channel.as_str())
            .bind(&n.recipient)
            .bind(n.language.as_str())
            .bind(&n.subject)
            .bind(&n.body)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        }
        if let Some(seq) = cursor {
            sqlx::query("UPDATE notify_cursor SET last_seq = $1 WHERE id = 1 AND last_seq < $1")
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(added)
    }

    /// Claims up to `limit` notifications that are due, for `lease` (a node that dies while
    /// delivering leaves them to be claimed again when it runs out).
    pub async fn claim_notifications(
        &self,
        lease: Duration,
        limit: i64,
    ) -> Result<Vec<Notification>> {
        let now = micros(super::now());
        let until = now.saturating_add(i64::try_from(lease.as_micros()).unwrap_or(i64::MAX));
        let sql = format!(
            "SELECT {COLUMNS} FROM notifications WHERE delivered_at IS NULL AND failed_at IS NULL \
             AND next_attempt_at <= $1 AND (claimed_until IS NULL OR claimed_until < $1) \
             ORDER BY next_attempt_at LIMIT $2"
        );
        let due = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        let mut claimed = vec![];
        for row in &due {
            let n = row_to_notification(row)?;
            // Only one node wins a row: the claim is conditional.
            let won = sqlx::query(
                "UPDATE notifications SET claimed_until = $1 WHERE id = $2 AND delivered_at IS NULL \
                 AND failed_at IS NULL AND (claimed_until IS NULL OR claimed_until < $3)",
            )
            .bind(until)
            .bind(&n.id)
            .bind(now)
            .execute(&self.pool)
            .await?
            .rows_affected();
            if won == 1 {
                claimed.push(n);
            }
        }
        Ok(claimed)
    }

    /// `n` reached its recipient.
    pub async fn notification_delivered(&self, n: &Notification) -> Result<()> {
        sqlx::query(
            "UPDATE notifications SET delivered_at = $1, attempts = attempts + 1, claimed_until = NULL, last_error = NULL WHERE id = $2",
        )
        .bind(micros(super::now()))
        .bind(&n.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A try of `n` failed with `error`: tried again at `retry_at`, or (`None`) given up and
    /// audited, in one transaction.
    pub async fn notification_failed(
        &self,
        n: &Notification,
        error: &str,
        retry_at: Option<Timestamp>,
    ) -> Result<()> {
        let error: String = error.chars().take(1000).collect();
        let mut tx = self.begin().await?;
        match retry_at {
            Some(at) => {
                sqlx::query(
                    "UPDATE notifications SET attempts = attempts + 1, next_attempt_at = $1, claimed_until = NULL, last_error = $2 WHERE id = $3",
                )
                .bind(micros(at))
                .bind(&error)
                .bind(&n.id)
                .execute(&mut *tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "UPDATE notifications SET attempts = attempts + 1, failed_at = $1, claimed_until = NULL, last_error = $2 WHERE id = $3",
                )
                .bind(micros(super::now()))
                .bind(&error)
                .bind(&n.id)
                .execute(&mut *tx)
                .await?;
                let mut ev = NewAuditEvent::system(AuditEvent::NotificationFailed {
                    notification: n.id.clone(),
                    about: n.kind,
                    channel: n.channel,
                    recipient: n.recipient.clone(),
                    attempts: n.attempts.saturating_add(1),
                    error: error.clone(),
                });
                ev.outcome = Outcome::Failure;
                ev.reason = Some(error);
                audit::append(&mut tx, ev).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// How many notifications wait to be delivered (neither delivered nor given up).
    pub async fn notification_backlog(&self) -> Result<i64> {
        let row = sqlx::query(
            "SELECT COUNT(*) AS n FROM notifications WHERE delivered_at IS NULL AND failed_at IS NULL",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(row.try_get("n")?)
    }

    /// The newest `limit` notifications, of `status` when given.
    pub async fn notifications(
        &self,
        status: Option<DeliveryStatus>,
        limit: i64,
    ) -> Result<Vec<Notification>> {
        let cond = match status {
            None => "1 = 1",
            Some(DeliveryStatus::Pending) => "delivered_at IS NULL AND failed_at IS NULL",
            Some(DeliveryStatus::Delivered) => "delivered_at IS NOT NULL",
            Some(DeliveryStatus::Failed) => "failed_at IS NOT NULL",
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM notifications WHERE {cond} ORDER BY created_at DESC, id LIMIT $1"
        );
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(limit.clamp(1, 1000))
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_to_notification)
            .collect()
    }

    /// Usable accounts of `role` with an email address, that see `site` (accounts limited
    /// to another site do not; `None`: only accounts that see every site).
    pub async fn recipients(&self, role: Role, site: Option<&str>) -> Result<Vec<Recipient>> {
        let now = micros(super::now());
        let rows = sqlx::query(
            "SELECT email, language, site FROM users WHERE role = $1 AND status = 'active' \
             AND email IS NOT NULL AND email <> '' AND (expires_at IS NULL OR expires_at > $2) \
             ORDER BY username",
        )
        .bind(role.as_str())
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let mut out = vec![];
        for row in &rows {
            let limited: Option<String> = row.try_get("site")?;
            if limited.is_some() && limited.as_deref() != site {
                continue;
            }
            let language: Option<String> = row.try_get("language")?;
            out.push(Recipient {
                email: row.try_get("email")?,
                language: language.as_deref().and_then(Language::parse),
            });
        }
        Ok(out)
    }

    /// Usable vendor engineer accounts with no login and no session since `since` (counted
    /// from their creation when they never had one), with when they were last seen.
    pub async fn idle_vendor_accounts(
        &self,
        since: Timestamp,
    ) -> Result<Vec<(sekisho_domain::user::User, Option<Timestamp>)>> {
        let rows = sqlx::query(
            "SELECT u.id AS id, u.created_at AS created_at, \
               (SELECT MAX(a.at) FROM audit_events a WHERE a.user_id = u.id \
                AND a.kind IN ('login_succeeded', 'session_started')) AS last_seen \
             FROM users u WHERE u.role = 'vendor' AND u.status = 'active' \
             AND (u.expires_at IS NULL OR u.expires_at > $1) ORDER BY u.username",
        )
        .bind(micros(super::now()))
        .fetch_all(&self.pool)
        .await?;
        let mut out = vec![];
        for row in &rows {
            let last: Option<i64> = row.try_get("last_seen")?;
            let created: i64 = row.try_get("created_at")?;
            if last.unwrap_or(created) >= micros(since) {
                continue;
            }
            let id: String = row.try_get("id")?;
            let id = super::parse("user id", &id)?;
            if let Some(user) = self.user(id).await? {
                out.push((user, last.map(from_micros).transpose()?));
            }
        }
        Ok(out)
    }
}
