//! Storage tests, run against SQLite and a real PostgreSQL (see `sekisho-testkit`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::secret::Secret;
use sekisho_domain::user::Role;
use sekisho_store::StoreError;
use sekisho_store::audit::{ChainBreak, NewAuditEvent};
use sekisho_store::password;
use sekisho_store::users::NewUser;
use sekisho_testkit::{TestDb, for_each_db};

fn staff(username: &str, role: Role) -> NewUser {
    sekisho_testkit::api::staff_user(username, role, None)
}

async fn login_events(db: &TestDb, n: usize) {
    for i in 0..n {
        db.store
            .audit(NewAuditEvent {
                actor: Actor::Anonymous {
                    claimed: format!("user{i}"),
                },
                outcome: Outcome::Denied,
                vendor_id: None,
                source_addr: Some("127.0.0.1".into()),
                reason: Some("wrong password".into()),
                event: AuditEvent::LoginFailed {
                    username: format!("user{i}"),
                },
            })
            .await
            .unwrap();
    }
}

/// Runs one raw statement against the database, the way someone with database access would
/// tamper with it.
async fn tamper(db: &TestDb, sql: &str) {
    sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
        .execute(db.store.pool())
        .await
        .unwrap();
}

#[tokio::test]
async fn users_are_created_found_and_unique() {
    for_each_db(|db| async move {
        let hash = password::hash(&Secret::new("a long enough password".into())).unwrap();
        let mut new = staff("carol", Role::Approver);
        new.password_hash = Some(hash.clone());
        let created = db
            .store
            .create_user(new, &Actor::System, None)
            .await
            .unwrap();
        let found = db.store.user_by_username("carol").await.unwrap().unwrap();
        assert_eq!(found, created);
        assert_eq!(db.store.user(created.id).await.unwrap().unwrap(), created);
        assert_eq!(
            db.store.password_hash(created.id).await.unwrap(),
            Some(hash)
        );
        assert_eq!(
            db.store
                .count_users_with_role(Role::Approver)
                .await
                .unwrap(),
            1
        );
        assert!(db.store.user_by_username("nobody").await.unwrap().is_none());
        let dup = db
            .store
            .create_user(staff("carol", Role::Auditor), &Actor::System, None)
            .await;
        match dup {
            Err(StoreError::Conflict(m)) => assert_eq!(m, "username `carol` is already taken"),
            other => panic!("{other:?}"),
        }
        // The creation was audited in the same transaction; the failed duplicate was not.
        let events = db.store.recent_audit_events(10).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].entry.kind, "user_created");
    })
    .await;
}

#[tokio::test]
async fn the_schema_refuses_vendor_users_without_a_vendor() {
    for_each_db(|db| async move {
        let err = db
            .store
            .create_user(staff("eve", Role::Vendor), &Actor::System, None)
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Database(_)), "{err:?}");
    })
    .await;
}

#[tokio::test]
async fn an_intact_chain_verifies() {
    for_each_db(|db| async move {
        let empty = db.store.verify_audit_chain(|_| {}).await.unwrap();
        assert!(empty.is_intact());
        assert_eq!(empty.rows, 0);
        login_events(&db, 25).await;
        let report = db.store.verify_audit_chain(|_| {}).await.unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!((report.rows, report.last_seq), (25, 25));
    })
    .await;
}

#[tokio::test]
async fn altering_one_row_is_found_and_named() {
    for_each_db(|db| async move {
        login_events(&db, 10).await;
        tamper(
            &db,
            "UPDATE audit_events SET reason = 'nothing happened' WHERE seq = 7",
        )
        .await;
        let report = db.store.verify_audit_chain(|_| {}).await.unwrap();
        assert_eq!(report.first_break, Some(ChainBreak::Altered { seq: 7 }));
        assert_eq!(
            report.first_break.unwrap().to_string(),
            "row 7 was altered: its content does not match its hash"
        );
    })
    .await;
}

#[tokio::test]
async fn deleting_rows_in_the_middle_or_at_the_end_is_found() {
    for_each_db(|db| async move {
        login_events(&db, 10).await;
        tamper(&db, "DELETE FROM audit_events WHERE seq IN (4, 5)").await;
        let report = db.store.verify_audit_chain(|_| {}).await.unwrap();
        assert_eq!(
            report.first_break,
            Some(ChainBreak::Missing {
                from_seq: 4,
                to_seq: 5
            })
        );
    })
    .await;
    for_each_db(|db| async move {
        login_events(&db, 10).await;
        tamper(&db, "DELETE FROM audit_events WHERE seq = 10").await;
        let report = db.store.verify_audit_chain(|_| {}).await.unwrap();
        assert_eq!(
            report.first_break,
            Some(ChainBreak::Truncated {
                last_seq: 9,
                head_seq: 10
            })
        );
    })
    .await;
}

#[tokio::test]
async fn a_forged_row_with_a_recomputed_hash_is_found() {
    for_each_db(|db| async move {
        login_events(&db, 5).await;
        // Someone who knows the algorithm rewrites row 3 and recomputes its own hash: the
        // next row no longer links to it.
        let mut rows = db.store.recent_audit_events(10).await.unwrap();
        rows.reverse();
        let mut forged = rows[2].clone();
        forged.entry.reason = Some("forged".into());
        let hash = sekisho_store::audit::chain_hash(&forged.prev_hash, &forged.entry);
        tamper(
            &db,
            &format!("UPDATE audit_events SET reason = 'forged', hash = '{hash}' WHERE seq = 3"),
        )
        .await;
        let report = db.store.verify_audit_chain(|_| {}).await.unwrap();
        assert_eq!(report.first_break, Some(ChainBreak::Unlinked { seq: 4 }));
    })
    .await;
}

#[tokio::test]
async fn a_consistent_rewrite_dated_into_the_past_is_found_by_its_time() {
    for_each_db(|db| async move {
        login_events(&db, 8).await;
        // Someone rewrites the tail from row 5 with every hash recomputed and the head moved
        // along (as a clock set back an hour would have written it): only the time shows it.
        let mut rows = db.store.recent_audit_events(10).await.unwrap();
        rows.reverse();
        let mut prev = rows[3].hash.clone();
        for row in &mut rows[4..] {
            row.entry.at -= jiff::SignedDuration::from_hours(1);
            row.prev_hash = prev.clone();
            row.hash = sekisho_store::audit::chain_hash(&row.prev_hash, &row.entry);
            let at = row.entry.at.as_microsecond();
            tamper(
                &db,
                &format!(
                    "UPDATE audit_events SET at = {at}, prev_hash = '{}', hash = '{}' WHERE seq = {}",
                    row.prev_hash, row.hash, row.entry.seq
                ),
            )
            .await;
            prev = row.hash.clone();
        }
        tamper(&db, &format!("UPDATE audit_head SET hash = '{prev}' WHERE id = 1")).await;
        let report = db.store.verify_audit_chain(|_| {}).await.unwrap();
        match report.first_break {
            Some(ChainBreak::TimeWentBack { seq: 5, by_ms }) => {
                assert!((3_599_000..3_601_000).contains(&by_ms), "{by_ms}");
            }
            other => panic!("{other:?}"),
        }
    })
    .await;
}

#[tokio::test]
async fn concurrent_appends_keep_one_unbroken_chain() {
    for_each_db(|db| async move {
        let mut tasks = vec![];
        for i in 0..8 {
            let store = db.store.clone();
            tasks.push(tokio::spawn(async move {
                for j in 0..10 {
                    store
                        .audit(NewAuditEvent::system(AuditEvent::LoginSucceeded {
                            username: format!("u{i}-{j}"),
                        }))
                        .await
                        .unwrap();
                }
            }));
        }
        for t in tasks {
            t.await.unwrap();
        }
        let report = db.store.verify_audit_chain(|_| {}).await.unwrap();
        assert!(report.is_intact(), "{report:?}");
        assert_eq!(report.rows, 80);
    })
    .await;
}

#[tokio::test]
async fn verification_pages_through_long_logs() {
    for_each_db(|db| async move {
        login_events(&db, 2100).await;
        let mut calls = vec![];
        let report = db
            .store
            .verify_audit_chain(|n| calls.push(n))
            .await
            .unwrap();
        assert!(report.is_intact());
        assert_eq!(calls, vec![1000, 2000, 2100]);
    })
    .await;
}

#[tokio::test]
async fn audit_filters_combine() {
    use sekisho_store::audit::{AuditFilter, Page};
    for_each_db(|db| async move {
        login_events(&db, 3).await;
        db.store
            .audit(NewAuditEvent::system(AuditEvent::GatewayStopped {
                reason: "test".into(),
            }))
            .await
            .unwrap();
        let page = |kind: Option<&str>, outcome: Option<Outcome>| {
            let store = db.store.clone();
            let filter = AuditFilter {
                kind: kind.map(str::to_owned),
                outcome,
                ..AuditFilter::default()
            };
            async move {
                store
                    .audit_page(&filter, Page::NewestBefore(None), 100)
                    .await
                    .unwrap()
                    .len()
            }
        };
        assert_eq!(page(Some("login_failed"), Some(Outcome::Denied)).await, 3);
        assert_eq!(page(Some("login_failed"), Some(Outcome::Success)).await, 0);
        assert_eq!(page(None, Some(Outcome::Denied)).await, 3);
        assert_eq!(page(Some("gateway_stopped"), None).await, 1);
        assert_eq!(page(Some("login_failed"), Some(Outcome::Denied)).await, 3);
    })
    .await;
}
