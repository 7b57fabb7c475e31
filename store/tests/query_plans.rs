//! Issue #20: the audit log's pages stay cheap at millions of rows. A page is the newest 100
//! events matching one filter; the database must read them straight from an index in `seq`
//! order, not collect every matching row and sort it (what `cargo bench --bench database`
//! found: an index on the filter column alone made one vendor's page sort its 20,000 rows).
//! Checked with the databases' own planners, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sekisho_store::DbKind;
use sekisho_store::audit::{AuditFilter, Page};
use sekisho_testkit::for_each_db;

#[tokio::test]
async fn every_filtered_audit_page_is_read_from_an_index_in_order() {
    for_each_db(|db| async move {
        let id = "9d8cb253-ed13-417f-aa16-dbe3a8c951a6".to_owned();
        let cases = [
            (
                "vendor",
                AuditFilter {
                    vendor_id: Some(id.clone()),
                    ..AuditFilter::default()
                },
                "audit_events_vendor",
            ),
            (
                "target",
                AuditFilter {
                    target_id: Some(id.clone()),
                    ..AuditFilter::default()
                },
                "audit_events_target",
            ),
            (
                "user",
                AuditFilter {
                    user_id: Some(id.clone()),
                    ..AuditFilter::default()
                },
                "audit_events_user",
            ),
            (
                "request",
                AuditFilter {
                    request_id: Some(id.clone()),
                    ..AuditFilter::default()
                },
                "audit_events_request",
            ),
            (
                "kind",
                AuditFilter {
                    kind: Some("login_failed".into()),
                    ..AuditFilter::default()
                },
                "audit_events_kind",
            ),
        ];
        for (label, filter, index) in cases {
            for page in [Page::NewestBefore(None), Page::NewestBefore(Some(500_000))] {
                let plan = db.store.audit_page_plan(&filter, page).await.unwrap();
                let text = plan.join("\n");
                assert!(
                    text.contains(index),
                    "{label}, {page:?}: not {index}:\n{text}"
                );
                let sorts = match db.store.kind() {
                    DbKind::Sqlite => text.contains("TEMP B-TREE"),
                    DbKind::Postgres => plan.iter().any(|l| l.trim_start().starts_with("Sort")),
                };
                assert!(!sorts, "{label}, {page:?}: sorts its rows:\n{text}");
            }
        }
    })
    .await;
}

/// A search by time (a month five years ago) reads only the `seq` interval of its days
/// (`audit_days`), not the log backwards from its newest row; every append keeps the days
/// exact, and the search finds exactly the events of its time.
#[tokio::test]
async fn a_search_by_time_reads_only_the_seq_interval_of_its_days() {
    for_each_db(|db| async move {
        let now = jiff::Timestamp::now();
        let month_ago = now - jiff::SignedDuration::from_hours(24 * 30);
        let filter = AuditFilter {
            from: Some(month_ago - jiff::SignedDuration::from_hours(24 * 30)),
            to: Some(month_ago),
            ..AuditFilter::default()
        };
        let plan = db
            .store
            .audit_page_plan(&filter, Page::NewestBefore(None))
            .await
            .unwrap();
        let text = plan.join("\n");
        eprintln!("{:?}: {text}", db.store.kind());
        assert!(text.contains("audit_days"), "{text}");
        match db.store.kind() {
            DbKind::Sqlite => assert!(
                plan.iter()
                    .any(|l| l.contains("SEARCH audit_events") && l.contains("seq>?")),
                "{text}"
            ),
            DbKind::Postgres => assert!(
                plan.iter()
                    .any(|l| l.contains("Index Cond") && l.contains("seq >=")),
                "{text}"
            ),
        }

        for i in 0..5 {
            db.store
                .audit(sekisho_store::audit::NewAuditEvent::system(
                    sekisho_domain::audit::AuditEvent::AtRestKeyClaimed {
                        node: format!("n{i}"),
                        kid: "k".into(),
                    },
                ))
                .await
                .unwrap();
        }
        let days = |sql: &'static str| {
            let pool = db.store.pool().clone();
            async move {
                sqlx::query(sql)
                    .fetch_all(&pool)
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| {
                        use sqlx::Row;
                        (
                            r.get::<i64, _>(0),
                            r.get::<i64, _>(1),
                            r.get::<i64, _>(2),
                        )
                    })
                    .collect::<Vec<_>>()
            }
        };
        let kept = days("SELECT day, min_seq, max_seq FROM audit_days ORDER BY day").await;
        let actual = days(
            "SELECT at / 86400000000 AS d, MIN(seq), MAX(seq) FROM audit_events GROUP BY at / 86400000000 ORDER BY d",
        )
        .await;
        assert!(!kept.is_empty());
        assert_eq!(kept, actual);

        let found = |filter: AuditFilter| {
            let store = db.store.clone();
            async move {
                store
                    .audit_page(&filter, Page::NewestBefore(None), 100)
                    .await
                    .unwrap()
                    .len()
            }
        };
        let hour = jiff::SignedDuration::from_hours(1);
        let around = AuditFilter {
            from: Some(now - hour),
            to: Some(jiff::Timestamp::now() + hour),
            kind: Some("at_rest_key_claimed".into()),
            ..AuditFilter::default()
        };
        assert_eq!(found(around).await, 5);
        assert_eq!(found(filter).await, 0);
        let since = AuditFilter {
            from: Some(now - hour),
            kind: Some("at_rest_key_claimed".into()),
            ..AuditFilter::default()
        };
        assert_eq!(found(since).await, 5);
    })
    .await;
}
