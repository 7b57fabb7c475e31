//! Issue #19, upgrades: a database a newer Sekisho migrated is refused with a clear message
//! (going back is not supported), before anything touches it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sekisho_store::{Store, StoreError, schema_known};

#[tokio::test]
async fn a_database_from_a_newer_version_is_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("s.db").display());
    let store = Store::open(&url, 1).await.unwrap();
    assert_eq!(store.schema_version().await, schema_known());
    let newer = schema_known() + 1;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ($1, 'from the future', TRUE, x'00', 0)",
    )
    .bind(newer)
    .execute(store.pool())
    .await
    .unwrap();
    store.pool().close().await;
    let err = Store::open(&url, 1).await.unwrap_err();
    assert!(
        matches!(err, StoreError::NewerSchema { found, known } if found == newer && known == schema_known()),
        "{err}"
    );
    assert!(err.to_string().contains("newer Sekisho"), "{err}");
    // Opening it again does not change it: still refused.
    assert!(Store::open(&url, 1).await.is_err());
}
