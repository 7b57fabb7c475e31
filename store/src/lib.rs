//! Sekisho's storage: one schema on SQLite (embedded default) or PostgreSQL (several gateway
//! nodes), chosen by the URL, through sqlx's `Any` driver with embedded migrations; and what
//! lives with the data: the hash-chained audit log ([`audit`]), password hashing
//! ([`password`]), credential sealing at rest ([`crypto`]), the events that end live
//! sessions ([`events`]) and the audit of unauthenticated failures ([`failures`]).
//!
//! The HTTP API and the gateway both use it; neither reaches the database another way.
//!
//! **Architecture invariant:** every query here is portable SQL that runs unchanged on both
//! databases; times are microseconds since the epoch (UTC), ids are UUID text. The test suite
//! runs the storage tests against both.

pub mod assignments;
pub mod at_rest;
pub mod audit;
pub mod certs;
pub mod crypto;
pub mod directory;
pub mod events;
pub mod failures;
pub mod files;
pub mod lines;
pub mod mfa;
pub mod nodes;
pub mod outbox;
pub mod password;
pub mod report;
pub mod requests;
pub mod sessions;
pub mod syslog;
pub mod targets;
pub mod throttle;
pub mod token_keys;
pub mod users;
pub mod vendors;

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::any::{AnyPoolOptions, install_default_drivers};
use sqlx::{Any, AnyPool, Transaction};

/// Which database a store talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DbKind {
    Sqlite,
    Postgres,
}

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error: {0}")]
    Database(sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Conflict(String),
    #[error("{0} not found")]
    NotFound(String),
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("cannot connect to the database at {url}: {source}")]
    Connect { url: String, source: sqlx::Error },
    #[error("unsupported database url `{0}`: use sqlite:... or postgres://...")]
    UnsupportedUrl(String),
    #[error(
        "the database was last used by a newer Sekisho (schema {found}; this version knows up to {known}): \
         going back is not supported; run that version or a newer one, or restore a backup made by this one"
    )]
    NewerSchema { found: i64, known: i64 },
    #[error(
        "this node's keys are not those of the nodes already using this database (group keys {group}, this node's {node}): \
         on an existing node run `sekisho node export FILE`, then `sekisho node join FILE` here with an empty data directory"
    )]
    KeysDiffer { group: String, node: String },
    #[error("cannot create database directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        if is_file_error(&e) {
            discard_connections();
        }
        StoreError::Database(e)
    }
}

/// Whether SQLite says its files failed it: read-only (8), I/O error (10, and its extended
/// codes such as 778), full (13), cannot open (14). A connection opened while the file was
/// not writable stays read-only for good, so after such an error every connection opened
/// before it is replaced (see [`clean`]): once the disk or the file is fixed, the service is
/// back without a restart.
fn is_file_error(e: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = e else {
        return false;
    };
    db.code()
        .and_then(|c| c.parse::<i64>().ok())
        .is_some_and(|code| matches!(code & 0xff, 8 | 10 | 13 | 14))
}

/// The process's clock for connection ages, and the moment (on it, in microseconds) before
/// which every pooled connection is to be replaced.
fn epoch() -> std::time::Instant {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *EPOCH.get_or_init(std::time::Instant::now)
}
static DISCARD_BEFORE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn discard_connections() {
    let now = u64::try_from(epoch().elapsed().as_micros()).unwrap_or(u64::MAX);
    DISCARD_BEFORE.fetch_max(now, std::sync::atomic::Ordering::AcqRel);
}

/// Whether a connection of age `age` was opened before the last file error.
fn opened_before_a_file_error(age: Duration) -> bool {
    let discard = DISCARD_BEFORE.load(std::sync::atomic::Ordering::Acquire);
    if discard == 0 {
        return false;
    }
    let opened = epoch().elapsed().saturating_sub(age);
    u64::try_from(opened.as_micros()).unwrap_or(u64::MAX) <= discard
}

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
    kind: DbKind,
    /// PostgreSQL's URL, for the connection that listens to other nodes' events.
    url: Option<std::sync::Arc<sekisho_domain::secret::Secret<String>>>,
}

static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations");

/// SQLite's journal: the classic rollback journal, not WAL. WAL keeps its index in a file
/// (`-shm`) that SQLite memory-maps, and a write to that mapping when the file cannot grow
/// (a full disk) or may not change (`chattr +i`) kills the whole process with SIGBUS: no
/// log line, no refusal, every session gone. With a rollback journal nothing is
/// memory-mapped, so those conditions are ordinary I/O errors, answered "database
/// unavailable" (fail closed) and logged, and the service comes back when the disk does.
/// The cost is less read/write concurrency, which a single hospital's gateway does not
/// need; several nodes use PostgreSQL.
const SQLITE_JOURNAL: &str = "PRAGMA journal_mode=DELETE";

/// The newest schema version this build knows (its last migration).
pub fn schema_known() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The newest migration applied to the database (0 for a new one).
async fn applied_schema<'e>(db: impl sqlx::Executor<'e, Database = Any>) -> i64 {
    sqlx::query_scalar::<Any, i64>("SELECT MAX(version) FROM _sqlx_migrations")
        .fetch_one(db)
        .await
        .unwrap_or(0)
}

/// Which database a URL names.
fn kind_of(url: &str) -> Result<DbKind> {
    if url.starts_with("sqlite:") {
        Ok(DbKind::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(DbKind::Postgres)
    } else {
        Err(StoreError::UnsupportedUrl(url.to_owned()))
    }
}

/// One direct connection: its error names the real cause (refused, bad password, no such
/// database) where a pool would only report a timeout.
async fn connect_one(url: &str) -> Result<sqlx::AnyConnection> {
    use sqlx::Connection;
    sqlx::AnyConnection::connect(url)
        .await
        .map_err(|source| StoreError::Connect {
            url: redact_url(url),
            source,
        })
}

/// Connects to the database at `url` without creating or migrating anything (a SQLite file
/// is opened read-only) and returns the newest migration applied to it (`sekisho doctor`).
pub async fn probe(url: &str) -> Result<i64> {
    use sqlx::Connection;
    install_default_drivers();
    let url = match kind_of(url)? {
        DbKind::Sqlite => {
            let file =
                sqlite_file(url).ok_or_else(|| StoreError::UnsupportedUrl(url.to_owned()))?;
            if !file.exists() {
                return Err(StoreError::NotFound(format!(
                    "the database file {}",
                    file.display()
                )));
            }
            format!("sqlite://{}?mode=ro", file.display())
        }
        DbKind::Postgres => url.to_owned(),
    };
    let mut conn = connect_one(&url).await?;
    let version = applied_schema(&mut conn).await;
    conn.close().await?;
    Ok(version)
}

impl Store {
    /// The newest migration applied to this database.
    pub async fn schema_version(&self) -> i64 {
        applied_schema(&self.pool).await
    }

    /// A consistent copy of a SQLite database into the new file `to` while it is in use
    /// (`VACUUM INTO`). PostgreSQL is backed up with its own tools.
    pub async fn backup_sqlite(&self, to: &std::path::Path) -> Result<()> {
        if self.kind != DbKind::Sqlite {
            return Err(StoreError::Conflict(
                "only a SQLite database is copied by Sekisho; use pg_dump for PostgreSQL".into(),
            ));
        }
        let to = to
            .to_str()
            .ok_or_else(|| StoreError::Conflict(format!("{} is not UTF-8", to.display())))?;
        sqlx::query("VACUUM INTO $1")
            .bind(to.to_owned())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Connects and brings the schema up to date. A SQLite file (and its directory) is
    /// created if missing and kept in rollback-journal mode (see [`SQLITE_JOURNAL`]).
    pub async fn open(url: &str, max_connections: u32) -> Result<Self> {
        install_default_drivers();
        let kind = kind_of(url)?;
        let url = if kind == DbKind::Sqlite {
            if let Some(file) = sqlite_file(url)
                && let Some(dir) = file.parent().filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|source| StoreError::CreateDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            if url.contains('?') {
                url.to_owned()
            } else {
                format!("{url}?mode=rwc")
            }
        } else {
            url.to_owned()
        };
        let in_memory = url.contains(":memory:");
        // One direct connection first, for the real cause of a failure.
        {
            use sqlx::Connection;
            let mut conn = connect_one(&url).await?;
            // Persistent for WAL, so set once here, before the pool opens its connections; a
            // database an earlier version left in WAL mode is converted.
            if kind == DbKind::Sqlite && !url.contains(":memory:") {
                sqlx::query(SQLITE_JOURNAL)
                    .fetch_optional(&mut conn)
                    .await?;
            }
            conn.close().await?;
        }
        // A connection must never go back to the pool inside a transaction. When a COMMIT
        // fails (a full disk: SQLite answers SQLITE_FULL and may roll back by itself), the
        // transaction's rollback-on-drop can fail too and leave the connection believing it is
        // still in one; every later `begin` on it would fail ("attempted to call begin_with at
        // non-zero transaction depth") long after the disk has space again. Such a connection
        // is closed instead, and a fresh one opened when needed.
        let pool = AnyPoolOptions::new()
            .max_connections(if in_memory { 1 } else { max_connections.max(1) })
            .acquire_timeout(Duration::from_secs(10))
            .after_release(|conn, meta| Box::pin(clean(conn, meta.age)))
            .before_acquire(|conn, meta| Box::pin(clean(conn, meta.age)))
            .connect(&url)
            .await?;
        // A database a newer version migrated is refused with the reason, before anything
        // touches it (sqlx would only say a migration is missing).
        let found = applied_schema(&pool).await;
        if found > schema_known() {
            return Err(StoreError::NewerSchema {
                found,
                known: schema_known(),
            });
        }
        MIGRATOR.run(&pool).await?;
        let url = (kind == DbKind::Postgres)
            .then(|| std::sync::Arc::new(sekisho_domain::secret::Secret::new(url)));
        Ok(Self { pool, kind, url })
    }

    pub fn kind(&self) -> DbKind {
        self.kind
    }

    pub(crate) fn url(&self) -> Option<std::sync::Arc<sekisho_domain::secret::Secret<String>>> {
        self.url.clone()
    }

    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Starts a transaction: a state change and its audit event commit together or not at all.
    /// On SQLite it takes the write lock at once (`BEGIN IMMEDIATE`): a deferred transaction
    /// that reads and then writes fails with "database is locked" when another writer got in
    /// between, where an immediate one waits its turn (busy timeout).
    pub async fn begin(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.kind {
            DbKind::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            DbKind::Postgres => self.pool.begin().await?,
        })
    }

    /// Answers when the database answers (health checks). On SQLite, where the database is
    /// a file of this machine, also when it takes a write: a full disk or a file made
    /// read-only must show as unhealthy, not only as refused sessions.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").fetch_one(&self.pool).await?;
        if self.kind == DbKind::Sqlite {
            let mut tx = self.begin().await?;
            sqlx::query("UPDATE audit_head SET hash = hash WHERE id = 1")
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Whether a pooled connection may be used again: not left inside a transaction. A dropped
/// transaction's rollback is queued on the connection; a ping runs after it, so the depth
/// read afterwards is the rollback's outcome.
async fn clean(conn: &mut sqlx::AnyConnection, age: Duration) -> Result<bool, sqlx::Error> {
    use sqlx::Connection;
    if opened_before_a_file_error(age) {
        tracing::info!("replacing a database connection opened before a file error");
        return Ok(false);
    }
    if conn.is_in_transaction() {
        conn.ping().await?;
    }
    let clean = !conn.is_in_transaction();
    if !clean {
        tracing::warn!("closing a database connection left inside a failed transaction");
    }
    Ok(clean)
}

/// The current instant at the precision the database keeps (microseconds), so a value
/// returned to a caller equals the value read back later.
pub(crate) fn now() -> Timestamp {
    Timestamp::from_microsecond(Timestamp::now().as_microsecond()).unwrap_or(Timestamp::UNIX_EPOCH)
}

/// The file of a `sqlite:` URL; `None` for `:memory:` and other databases.
pub fn sqlite_file(url: &str) -> Option<PathBuf> {
    let rest = url.strip_prefix("sqlite:")?;
    let path = rest.trim_start_matches("//").split('?').next()?;
    (!path.is_empty() && path != ":memory:").then(|| PathBuf::from(path))
}

/// A database URL with its password replaced by `***`, for messages and logs.
pub fn redact_url(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match url[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
            None => url.to_owned(),
        },
        _ => url.to_owned(),
    }
}

/// Stored form of an instant.
pub(crate) fn micros(t: Timestamp) -> i64 {
    t.as_microsecond()
}

pub(crate) fn from_micros(us: i64) -> Result<Timestamp> {
    Timestamp::from_microsecond(us).map_err(|e| StoreError::Corrupt(format!("timestamp {us}: {e}")))
}

/// A value as stored JSON text.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// Stored JSON text back into a value.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(what: &str, s: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// Parses a stored enum or id, turning garbage into a `Corrupt` error rather than a panic.
pub(crate) fn parse<T: FromStr>(what: &str, s: &str) -> Result<T> {
    s.parse()
        .map_err(|_| StoreError::Corrupt(format!("{what} `{s}`")))
}

/// Maps a unique-constraint violation to a readable conflict.
pub(crate) fn conflict(e: sqlx::Error, message: impl FnOnce() -> String) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => StoreError::Conflict(message()),
        _ => StoreError::Database(e),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn passwords_in_urls_are_hidden() {
        assert_eq!(
            super::redact_url("postgres://u:secret@h/db"),
            "postgres://u:***@h/db"
        );
        assert_eq!(super::redact_url("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(super::redact_url("sqlite://./x.db"), "sqlite://./x.db");
    }
}
