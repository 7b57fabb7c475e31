//! The append-only, hash-chained audit log.
//!
//! Row `n` stores `prev_hash` (row `n-1`'s hash) and `hash = SHA-256(prev_hash ‖ canonical(row))`
//! where `canonical` is [`AuditEntry::canonical`]. [`Store::verify_audit_chain`] walks the
//! rows in order and names the first one that was altered, removed or inserted.
//!
//! **Architecture invariant:** audit rows are only ever inserted by [`append`], inside the
//! same transaction as the change they record; nothing updates or deletes them.

use aws_lc_rs::digest::{Context, SHA256};
use sekisho_domain::audit::{Actor, AuditEntry, AuditEvent, Outcome};
use sekisho_domain::ids::VendorId;
use sqlx::any::AnyRow;
use sqlx::{Any, AnyConnection, Row};

use super::{Result, Store, StoreError, from_micros, micros};

/// The hash `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// An event to append; the store fills in sequence number, time and hashes.
#[derive(Clone, Debug)]
pub struct NewAuditEvent {
    pub actor: Actor,
    pub outcome: Outcome,
    /// The vendor concerned (for vendor-scoped reading and filters).
    pub vendor_id: Option<VendorId>,
    pub source_addr: Option<String>,
    /// For denials and failures: why, in words a person reads.
    pub reason: Option<String>,
    pub event: AuditEvent,
}

impl NewAuditEvent {
    /// A successful action by `actor`, from `source` (the client's address), about `vendor`.
    pub fn success(
        actor: Actor,
        vendor_id: Option<VendorId>,
        source: Option<&str>,
        event: AuditEvent,
    ) -> Self {
        Self {
            actor,
            outcome: Outcome::Success,
            vendor_id,
            source_addr: source.map(str::to_owned),
            reason: None,
            event,
        }
    }

    /// A successful event by the gateway itself.
    pub fn system(event: AuditEvent) -> Self {
        Self {
            actor: Actor::System,
            outcome: Outcome::Success,
            vendor_id: None,
            source_addr: None,
            reason: None,
            event,
        }
    }
}

/// A stored row: the entry and its chain hashes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredAuditEvent {
    pub entry: AuditEntry,
    pub prev_hash: String,
    pub hash: String,
}

/// The chain hash of an entry following `prev_hash`.
pub fn chain_hash(prev_hash: &str, entry: &AuditEntry) -> String {
    let mut ctx = Context::new(&SHA256);
    ctx.update(prev_hash.as_bytes());
    ctx.update(&entry.canonical());
    hex::encode(ctx.finish().as_ref())
}

/// Appends one event inside `conn`'s transaction. Locks the chain head so concurrent appends
/// (also from other nodes on PostgreSQL) serialise.
pub async fn append(conn: &mut AnyConnection, ev: NewAuditEvent) -> Result<StoredAuditEvent> {
    let head = sqlx::query("UPDATE audit_head SET seq = seq + 1 WHERE id = 1 RETURNING seq, hash")
        .fetch_one(&mut *conn)
        .await?;
    let seq: i64 = head.try_get("seq")?;
    let prev_hash: String = head.try_get("hash")?;
    let actor = serde_json::to_string(&ev.actor).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let details =
        serde_json::to_string(&ev.event).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let at = super::now();
    let entry = AuditEntry {
        seq,
        at,
        kind: ev.event.kind().to_owned(),
        outcome: ev.outcome,
        actor,
        user_id: ev.actor.user_id().map(|u| u.to_string()),
        vendor_id: ev.vendor_id.map(|v| v.to_string()),
        target_id: ev.event.target().map(|t| t.to_string()),
        request_id: ev.event.request().map(|r| r.to_string()),
        source_addr: ev.source_addr,
        reason: ev.reason,
        details,
    };
    let hash = chain_hash(&prev_hash, &entry);
    sqlx::query(
        "INSERT INTO audit_events (seq, at, kind, outcome, actor, user_id, vendor_id, target_id, request_id, source_addr, reason, details, prev_hash, hash) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(entry.seq)
    .bind(micros(entry.at))
    .bind(&entry.kind)
    .bind(entry.outcome.as_str())
    .bind(&entry.actor)
    .bind(&entry.user_id)
    .bind(&entry.vendor_id)
    .bind(&entry.target_id)
    .bind(&entry.request_id)
    .bind(&entry.source_addr)
    .bind(&entry.reason)
    .bind(&entry.details)
    .bind(&prev_hash)
    .bind(&hash)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO audit_days (day, min_seq, max_seq) VALUES ($1, $2, $2) ON CONFLICT (day) DO UPDATE SET \
         min_seq = CASE WHEN excluded.min_seq < audit_days.min_seq THEN excluded.min_seq ELSE audit_days.min_seq END, \
         max_seq = CASE WHEN excluded.max_seq > audit_days.max_seq THEN excluded.max_seq ELSE audit_days.max_seq END",
    )
    .bind(day(micros(entry.at)))
    .bind(entry.seq)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&hash)
        .execute(&mut *conn)
        .await?;
    tracing::debug!(seq, kind = %entry.kind, outcome = %entry.outcome, "audit event appended");
    count(&entry, &ev.event);
    Ok(StoredAuditEvent {
        entry,
        prev_hash,
        hash,
    })
}

/// Counts an appended event in the process's metrics: by outcome, and a refusal by its
/// channel and code.
fn count(entry: &AuditEntry, event: &AuditEvent) {
    let m = sekisho_metrics::get();
    m.audit_events
        .get_or_create(&sekisho_metrics::OutcomeLabels {
            outcome: entry.outcome.as_str(),
        })
        .inc();
    if let AuditEvent::AccessDenied { channel, code, .. } = event {
        m.refused
            .get_or_create(&sekisho_metrics::RefusalLabels {
                channel: channel.as_str(),
                reason: code.as_str(),
            })
            .inc();
    }
}

fn row_to_stored(row: &AnyRow) -> Result<StoredAuditEvent> {
    let outcome: String = row.try_get("outcome")?;
    Ok(StoredAuditEvent {
        entry: AuditEntry {
            seq: row.try_get("seq")?,
            at: from_micros(row.try_get("at")?)?,
            kind: row.try_get("kind")?,
            outcome: match outcome.as_str() {
                "success" => Outcome::Success,
                "denied" => Outcome::Denied,
                "failure" => Outcome::Failure,
                other => return Err(StoreError::Corrupt(format!("audit outcome `{other}`"))),
            },
            actor: row.try_get("actor")?,
            user_id: row.try_get("user_id")?,
            vendor_id: row.try_get("vendor_id")?,
            target_id: row.try_get("target_id")?,
            request_id: row.try_get("request_id")?,
            source_addr: row.try_get("source_addr")?,
            reason: row.try_get("reason")?,
            details: row.try_get("details")?,
        },
        prev_hash: row.try_get("prev_hash")?,
        hash: row.try_get("hash")?,
    })
}

const AUDIT_COLUMNS: &str = "seq, at, kind, outcome, actor, user_id, vendor_id, target_id, request_id, source_addr, reason, details, prev_hash, hash";

/// The first break found in the chain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "problem", rename_all = "snake_case")]
pub enum ChainBreak {
    /// The row's content no longer matches its hash.
    Altered { seq: i64 },
    /// Rows are missing between two rows.
    Missing { from_seq: i64, to_seq: i64 },
    /// The row does not follow the row before it: one was inserted, or replaced wholesale.
    Unlinked { seq: i64 },
    /// Rows are missing at the end: the chain head records more than the table holds.
    Truncated { last_seq: i64, head_seq: i64 },
    /// The row's time is earlier than the row before it by more than [`CLOCK_TOLERANCE`]:
    /// the clock of the node that wrote it was set back (or the log rewritten).
    TimeWentBack { seq: i64, by_ms: i64 },
}

/// How far a row's time may be behind the row before it: the clocks of the nodes of a group
/// differ a little (their offset is checked against NTP), a set-back clock differs more.
pub const CLOCK_TOLERANCE: jiff::SignedDuration = jiff::SignedDuration::from_secs(2);

impl std::fmt::Display for ChainBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChainBreak::Altered { seq } => write!(
                f,
                "row {seq} was altered: its content does not match its hash"
            ),
            ChainBreak::Missing { from_seq, to_seq } if from_seq == to_seq => {
                write!(f, "row {from_seq} was deleted: the log jumps over it")
            }
            ChainBreak::Missing { from_seq, to_seq } => {
                write!(
                    f,
                    "rows {from_seq} to {to_seq} were deleted: the log jumps over them"
                )
            }
            ChainBreak::Unlinked { seq } => write!(
                f,
                "row {seq} does not follow the row before it: a row was inserted or replaced"
            ),
            ChainBreak::Truncated { last_seq, head_seq } => write!(
                f,
                "the log ends at row {last_seq} but the chain head records row {head_seq}: rows were deleted from the end"
            ),
            ChainBreak::TimeWentBack { seq, by_ms } => write!(
                f,
                "row {seq} is dated {by_ms} ms before the row before it: the clock was set back, or the log rewritten"
            ),
        }
    }
}

/// The result of walking the chain.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct ChainReport {
    /// Rows checked.
    pub rows: i64,
    pub last_seq: i64,
    /// `None` when the chain is intact.
    pub first_break: Option<ChainBreak>,
}

impl ChainReport {
    pub fn is_intact(&self) -> bool {
        self.first_break.is_none()
    }
}

/// Rows are read in pages, so a long log never loads into memory at once.
const PAGE: i64 = 1000;

impl Store {
    /// Appends an event in its own transaction (for events that change nothing else).
    pub async fn audit(&self, ev: NewAuditEvent) -> Result<StoredAuditEvent> {
        let started = std::time::Instant::now();
        let mut tx = self.begin().await?;
        let stored = append(&mut tx, ev).await?;
        tx.commit().await?;
        sekisho_metrics::db_timed("audit_append", started.elapsed());
        Ok(stored)
    }

    /// Walks the whole chain and names the first row that was altered, deleted or inserted.
    /// `progress` is called after each page with the rows checked so far.
    pub async fn verify_audit_chain(&self, mut progress: impl FnMut(i64)) -> Result<ChainReport> {
        let mut prev_hash = GENESIS.to_owned();
        let mut prev_at: Option<jiff::Timestamp> = None;
        let mut expected = 1i64;
        let mut rows = 0i64;
        let mut after = 0i64;
        loop {
            let sql = format!(
                "SELECT {AUDIT_COLUMNS} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2"
            );
            let page = sqlx::query::<Any>(sqlx::AssertSqlSafe(sql))
                .bind(after)
                .bind(PAGE)
                .fetch_all(&self.pool)
                .await?;
            if page.is_empty() {
                break;
            }
            for row in &page {
                let stored = row_to_stored(row)?;
                let seq = stored.entry.seq;
                rows += 1;
                let report = |b| ChainReport {
                    rows,
                    last_seq: seq,
                    first_break: Some(b),
                };
                if chain_hash(&stored.prev_hash, &stored.entry) != stored.hash {
                    return Ok(report(ChainBreak::Altered { seq }));
                }
                if seq > expected {
                    return Ok(report(ChainBreak::Missing {
                        from_seq: expected,
                        to_seq: seq - 1,
                    }));
                }
                if stored.prev_hash != prev_hash {
                    return Ok(report(ChainBreak::Unlinked { seq }));
                }
                if let Some(before) = prev_at
                    && before.duration_since(stored.entry.at) > CLOCK_TOLERANCE
                {
                    let by_ms = i64::try_from(before.duration_since(stored.entry.at).as_millis())
                        .unwrap_or(i64::MAX);
                    return Ok(report(ChainBreak::TimeWentBack { seq, by_ms }));
                }
                prev_at = Some(stored.entry.at);
                prev_hash = stored.hash;
                expected = seq + 1;
                after = seq;
            }
            progress(rows);
        }
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        let head_seq: i64 = head.try_get("seq")?;
        let head_hash: String = head.try_get("hash")?;
        let last_seq = expected - 1;
        let first_break = if head_seq != last_seq {
            Some(ChainBreak::Truncated { last_seq, head_seq })
        } else if head_hash != prev_hash {
            Some(ChainBreak::Unlinked { seq: last_seq })
        } else {
            None
        };
        Ok(ChainReport {
            rows,
            last_seq,
            first_break,
        })
    }

    /// The chain head: the last row's sequence number and hash.
    pub async fn audit_head(&self) -> Result<(i64, String)> {
        let head = sqlx::query("SELECT seq, hash FROM audit_head WHERE id = 1")
            .fetch_one(&self.pool)
            .await?;
        Ok((head.try_get("seq")?, head.try_get("hash")?))
    }

    /// The hash of row `seq`, if the row exists.
    pub async fn audit_hash_at(&self, seq: i64) -> Result<Option<String>> {
        Ok(sqlx::query("SELECT hash FROM audit_events WHERE seq = $1")
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?
            .map(|r| r.try_get("hash"))
            .transpose()?)
    }

    /// The newest `limit` events, newest first (the full filtered API comes with the HTTP API).
    pub async fn recent_audit_events(&self, limit: i64) -> Result<Vec<StoredAuditEvent>> {
        let sql = format!("SELECT {AUDIT_COLUMNS} FROM audit_events ORDER BY seq DESC LIMIT $1");
        sqlx::query::<Any>(sqlx::AssertSqlSafe(sql))
            .bind(limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_to_stored)
            .collect()
    }
}

/// Which audit events to read.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    pub from: Option<jiff::Timestamp>,
    pub to: Option<jiff::Timestamp>,
    pub vendor_id: Option<String>,
    pub user_id: Option<String>,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub kind: Option<String>,
    pub outcome: Option<Outcome>,
    /// Only events about targets of this site.
    pub site: Option<String>,
}

/// Which way to page.
#[derive(Clone, Copy, Debug)]
pub enum Page {
    /// Newest first, rows with `seq < before` (all when `None`).
    NewestBefore(Option<i64>),
    /// Oldest first, rows with `seq > after` (exports).
    OldestAfter(i64),
}

/// The UTC day of `at` (microseconds), as `audit_days` keys it (SQL's integer division, which
/// truncates toward zero, as Rust's does).
fn day(at: i64) -> i64 {
    at / 86_400_000_000
}

/// The query of one page of events matching `filter`, after `prefix` (`EXPLAIN …` or nothing),
/// with its values bound.
fn page_query(
    prefix: &str,
    filter: &AuditFilter,
    page: Page,
    limit: i64,
) -> sqlx::query::Query<'static, Any, sqlx::any::AnyArguments> {
    let mut sql = format!("{prefix}SELECT {AUDIT_COLUMNS} FROM audit_events WHERE 1 = 1");
    let mut texts: Vec<String> = vec![];
    let mut ints: Vec<i64> = vec![];
    let mut n = 0usize;
    let mut text = |col: &str, v: &Option<String>, sql: &mut String| {
        if let Some(v) = v {
            n += 1;
            sql.push_str(&format!(" AND {col} = ${n}"));
            texts.push(v.clone());
        }
    };
    text("vendor_id", &filter.vendor_id, &mut sql);
    text("user_id", &filter.user_id, &mut sql);
    text("target_id", &filter.target_id, &mut sql);
    text("request_id", &filter.request_id, &mut sql);
    text("kind", &filter.kind, &mut sql);
    text(
        "outcome",
        &filter.outcome.map(|o| o.as_str().to_owned()),
        &mut sql,
    );
    if let Some(site) = &filter.site {
        texts.push(site.clone());
        sql.push_str(&format!(
            " AND target_id IN (SELECT id FROM targets WHERE site = ${})",
            texts.len()
        ));
    }
    // Integer conditions follow the text ones, so placeholders stay in order.
    let base = texts.len();
    let mut add_int = |cond: &str, v: i64, sql: &mut String| {
        ints.push(v);
        sql.push_str(&cond.replace("$?", &format!("${}", base + ints.len())));
    };
    if let Some(f) = filter.from {
        add_int(" AND at >= $?", micros(f), &mut sql);
    }
    if let Some(t) = filter.to {
        add_int(" AND at < $?", micros(t), &mut sql);
    }
    // The `seq` interval of the days searched (`audit_days`): implied by the conditions on
    // `at`, it lets the database read only that part of the log.
    if filter.from.is_some() || filter.to.is_some() {
        let first = filter.from.map_or(i64::MIN, |f| day(micros(f)));
        let last = filter.to.map_or(i64::MAX, |t| day(micros(t)));
        for bound in ["seq >= (SELECT MIN(min_seq)", "seq <= (SELECT MAX(max_seq)"] {
            add_int(
                &format!(" AND {bound} FROM audit_days WHERE day >= $?"),
                first,
                &mut sql,
            );
            add_int(" AND day <= $?)", last, &mut sql);
        }
    }
    match page {
        Page::NewestBefore(Some(b)) => add_int(" AND seq < $?", b, &mut sql),
        Page::NewestBefore(None) => {}
        Page::OldestAfter(a) => add_int(" AND seq > $?", a, &mut sql),
    }
    sql.push_str(match page {
        Page::NewestBefore(_) => " ORDER BY seq DESC",
        Page::OldestAfter(_) => " ORDER BY seq ASC",
    });
    sql.push_str(&format!(" LIMIT {}", limit.clamp(1, 10_000)));
    let mut q = sqlx::query::<Any>(sqlx::AssertSqlSafe(sql));
    for t in texts {
        q = q.bind(t);
    }
    for v in ints {
        q = q.bind(v);
    }
    q
}

impl Store {
    /// How the database would read one page of events matching `filter`, one line per step:
    /// SQLite's `EXPLAIN QUERY PLAN`, or PostgreSQL's `EXPLAIN` with sequential scans
    /// discouraged (as they are on a table of millions of rows, whatever its size now).
    pub async fn audit_page_plan(&self, filter: &AuditFilter, page: Page) -> Result<Vec<String>> {
        let mut conn = self.pool.acquire().await?;
        let (prefix, column) = match self.kind {
            super::DbKind::Sqlite => ("EXPLAIN QUERY PLAN ", "detail"),
            super::DbKind::Postgres => {
                sqlx::query("SET enable_seqscan = off")
                    .execute(&mut *conn)
                    .await?;
                ("EXPLAIN ", "QUERY PLAN")
            }
        };
        let rows = page_query(prefix, filter, page, 100)
            .fetch_all(&mut *conn)
            .await;
        if self.kind == super::DbKind::Postgres {
            sqlx::query("RESET enable_seqscan")
                .execute(&mut *conn)
                .await?;
        }
        rows?
            .iter()
            .map(|r| r.try_get::<String, _>(column).map_err(StoreError::from))
            .collect()
    }

    /// One page of events matching `filter`.
    pub async fn audit_page(
        &self,
        filter: &AuditFilter,
        page: Page,
        limit: i64,
    ) -> Result<Vec<StoredAuditEvent>> {
        page_query("", filter, page, limit)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(row_to_stored)
            .collect()
    }
}
