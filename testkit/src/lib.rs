//! Test support shared by every Sekisho test suite: throwaway databases (a temporary SQLite
//! file, or a database in a private PostgreSQL cluster this process starts) and helpers for
//! running the real binaries. Used only as a dev-dependency.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod accounts;
pub use port::free_port;
pub mod api;
pub mod clamd;
pub mod desktop;
pub mod fs;
pub mod ntp;
pub mod port;
pub mod postgres;
pub mod rsyslog;
pub mod slapd;
pub mod smtp;
pub mod sshd;
pub mod tls;

use sekisho_store::Store;

/// Runs `f` once on every available database (see [`all_databases`]) and returns the labels
/// of those it ran on. In CI it fails unless both SQLite and PostgreSQL ran.
pub async fn for_each_db<F, Fut>(f: F) -> Vec<&'static str>
where
    F: Fn(TestDb) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let mut ran = vec![];
    for db in all_databases().await {
        let label = db.label;
        eprintln!("--- on {label}: {}", db.url);
        let keep_alive = db.clone();
        f(db).await;
        drop(keep_alive);
        ran.push(label);
    }
    if std::env::var_os("CI").is_some() {
        assert_eq!(
            ran,
            ["sqlite", "postgres"],
            "CI must run every storage test on both databases"
        );
    }
    ran
}

/// A database for one test, with whatever keeps it alive. Clone it to hold the database
/// open while a closure that only captures `store` runs (closures capture fields precisely).
#[derive(Clone)]
pub struct TestDb {
    pub store: Store,
    pub url: String,
    pub label: &'static str,
    _dir: Option<std::sync::Arc<tempfile::TempDir>>,
}

/// A fresh SQLite database in a temporary directory.
pub async fn sqlite() -> TestDb {
    let dir = tempfile::tempdir().expect("temp dir");
    let url = format!("sqlite://{}", dir.path().join("test.db").display());
    let store = Store::open(&url, 4).await.expect("open sqlite");
    TestDb {
        store,
        url,
        label: "sqlite",
        _dir: Some(std::sync::Arc::new(dir)),
    }
}

/// A fresh database in this process's throwaway PostgreSQL cluster, or `None` when no
/// PostgreSQL server binaries exist and we are not in CI (in CI that is a failure).
pub async fn postgres() -> Option<TestDb> {
    let url = postgres::fresh_database_url().await?;
    let store = Store::open(&url, 4).await.expect("open postgres");
    Some(TestDb {
        store,
        url,
        label: "postgres",
        _dir: None,
    })
}

/// Every database kind available: SQLite always, PostgreSQL where its binaries exist
/// (and always in CI).
pub async fn all_databases() -> Vec<TestDb> {
    let mut dbs = vec![sqlite().await];
    dbs.extend(postgres().await);
    dbs
}
