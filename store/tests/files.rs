//! Files that crossed and the quarantine, at the storage level, on SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use sekisho_domain::audit::Actor;
use sekisho_domain::files::{Direction, FileRecord, Outcome};
use sekisho_domain::ids::{RequestId, SessionId, TargetId};
use sekisho_domain::user::Role;
use sekisho_store::files::{TransferContext, TransferFilter};
use sekisho_testkit::for_each_db;

fn record(path: &str, outcome: Outcome, quarantine: Option<&str>) -> FileRecord {
    FileRecord {
        direction: Direction::Upload,
        path: path.into(),
        bytes: 68,
        sha256: Some("ab".repeat(32)),
        sequential: true,
        started_at_us: 1_000_000,
        ended_at_us: 2_000_000,
        outcome,
        detail: quarantine.map(|_| "blocked: Eicar-Test-Signature found by clamd".into()),
        quarantine: quarantine.map(Into::into),
    }
}

#[tokio::test]
async fn transfers_are_stored_with_their_audit_row_searched_by_name_and_quarantine_kept() {
    for_each_db(|db| async move {
        let s = &db.store;
        let alice = s
            .create_user(
                sekisho_testkit::api::staff_user("alice", Role::Approver, None),
                &Actor::System,
                None,
            )
            .await
            .unwrap();
        let ctx = TransferContext {
            session: SessionId::new(),
            request: RequestId::new(),
            target: TargetId::new(),
            vendor: None,
            source_addr: Some("127.0.0.1".into()),
        };
        s.record_transfer(
            &ctx,
            &alice,
            &record("/srv/Report_1.csv", Outcome::Completed, None),
            "n1",
        )
        .await
        .unwrap();
        s.record_transfer(
            &ctx,
            &alice,
            &record("/tmp/eicar.com", Outcome::Blocked, Some("q-1")),
            "n1",
        )
        .await
        .unwrap();
        // A name is matched in any case; `_` and `%` are taken literally.
        let by_name = |name: &str| TransferFilter {
            session: None,
            name: Some(name.into()),
            limit: 10,
        };
        let found = s.file_transfers(&by_name("report_1")).await.unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(
            found[0].record,
            record("/srv/Report_1.csv", Outcome::Completed, None)
        );
        assert!(
            s.file_transfers(&by_name("report%"))
                .await
                .unwrap()
                .is_empty()
        );
        let all = s
            .file_transfers(&TransferFilter {
                session: Some(ctx.session),
                name: None,
                limit: 10,
            })
            .await
            .unwrap();
        assert_eq!(all.len(), 2);
        // The blocked one is in quarantine until deleted; deleting twice is refused.
        let kept = s.quarantine(false).await.unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].id, "q-1");
        assert_eq!(kept[0].node, "n1");
        s.quarantine_deleted(&kept[0], &alice, None).await.unwrap();
        assert!(s.quarantine(false).await.unwrap().is_empty());
        assert_eq!(s.quarantine(true).await.unwrap().len(), 1);
        assert!(s.quarantine_deleted(&kept[0], &alice, None).await.is_err());
        let kinds: Vec<String> = s
            .recent_audit_events(100)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.entry.kind)
            .collect();
        assert_eq!(kinds.iter().filter(|k| *k == "file_transferred").count(), 2);
        assert_eq!(
            kinds.iter().filter(|k| *k == "quarantine_deleted").count(),
            1
        );
        assert!(s.verify_audit_chain(|_| {}).await.unwrap().is_intact());
    })
    .await;
}
