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
