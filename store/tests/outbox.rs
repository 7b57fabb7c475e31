//! The notification outbox (issue #17) on SQLite and PostgreSQL: a notification is made once
//! however often it is planned, the audit cursor moves with the rows it made, a due row is
//! claimed by one node only, a failed try is scheduled again, and the last one is given up
//! and audited.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use sekisho_domain::audit::{AuditEvent, Outcome};
use sekisho_domain::notify::{DeliveryChannel, Language, NotificationKind};
use sekisho_domain::user::Role;
use sekisho_store::audit::NewAuditEvent;
use sekisho_store::outbox::{DeliveryStatus, NewNotification};
use sekisho_testkit::for_each_db;

fn note(key: &str) -> NewNotification {
    NewNotification {
        dedup_key: key.into(),
        kind: NotificationKind::RequestFiled,
        channel: DeliveryChannel::Email,
        recipient: "hana@hospital.test".into(),
        language: Language::En,
        subject: "[Sekisho] Work request R-1 (pacs) waits for your decision".into(),
        body: "Request: R-1".into(),
    }
}

#[tokio::test]
async fn notifications_are_made_once_claimed_once_retried_and_given_up_audited() {
    for_each_db(|db| async move {
        let s = &db.store;
        // The cursor starts at the log's end: a new installation does not send its history.
        s.audit(NewAuditEvent::system(AuditEvent::GatewayStarted {
            version: "test".into(),
            listeners: vec![],
        }))
        .await
        .unwrap();
        let start = s.notify_cursor().await.unwrap();
        assert!(start >= 1);
        // Made twice (a restart, or two nodes): one row; the cursor moves forward only.
        assert_eq!(
            s.enqueue_notifications(&[note("audit:9:email:hana")], Some(start + 5))
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            s.enqueue_notifications(&[note("audit:9:email:hana")], Some(start + 2))
                .await
                .unwrap(),
            0
        );
        assert_eq!(s.notify_cursor().await.unwrap(), start + 5);

        // Two nodes claim at once: one gets the row.
        let (a, b) = tokio::join!(
            s.claim_notifications(Duration::from_secs(60), 10),
            s.claim_notifications(Duration::from_secs(60), 10)
        );
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(a.len() + b.len(), 1, "{a:?} {b:?}");
        let n = a.into_iter().chain(b).next().unwrap();
        assert!(
            s.claim_notifications(Duration::from_secs(60), 10)
                .await
                .unwrap()
                .is_empty()
        );

        // A failed try is due again at its time; the last one is given up and audited.
        s.notification_failed(&n, "connection refused", Some(jiff::Timestamp::now()))
            .await
            .unwrap();
        let again = s
            .claim_notifications(Duration::from_secs(60), 10)
            .await
            .unwrap();
        assert_eq!(again.len(), 1);
        assert_eq!(again[0].attempts, 1);
        assert_eq!(again[0].last_error.as_deref(), Some("connection refused"));
        s.notification_failed(&again[0], "connection refused", None)
            .await
            .unwrap();
        let failed = s
            .notifications(Some(DeliveryStatus::Failed), 10)
            .await
            .unwrap();
        assert_eq!(failed.len(), 1);
        assert_eq!(failed[0].attempts, 2);
        assert!(
            s.claim_notifications(Duration::from_secs(60), 10)
                .await
                .unwrap()
                .is_empty()
        );
        let audit = s.recent_audit_events(1).await.unwrap();
        assert_eq!(audit[0].entry.kind, "notification_failed");
        assert_eq!(audit[0].entry.outcome, Outcome::Failure);
        assert!(audit[0].entry.details.contains("hana@hospital.test"));

        // A delivered one is not claimed again.
        s.enqueue_notifications(&[note("audit:10:email:hana")], None)
            .await
            .unwrap();
        let n = s
            .claim_notifications(Duration::from_secs(60), 10)
            .await
            .unwrap();
        s.notification_delivered(&n[0]).await.unwrap();
        let delivered = s
            .notifications(Some(DeliveryStatus::Delivered), 10)
            .await
            .unwrap();
        assert_eq!(delivered.len(), 1);
        assert_eq!(delivered[0].status(), DeliveryStatus::Delivered);

        // Recipients: usable accounts of the role with an address, seeing the site.
        for (name, site) in [
            ("hana", None),
            ("kenji", Some("east")),
            ("yui", Some("west")),
        ] {
            let mut u = sekisho_testkit::api::staff_user(name, Role::Approver, None);
            u.email = Some(format!("{name}@hospital.test"));
            u.site = site.map(Into::into);
            s.create_user(u, &sekisho_domain::audit::Actor::System, None)
                .await
                .unwrap();
        }
        let east: Vec<String> = s
            .recipients(Role::Approver, Some("east"))
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.email)
            .collect();
        assert_eq!(east, ["hana@hospital.test", "kenji@hospital.test"]);
        let everywhere = s.recipients(Role::Approver, None).await.unwrap();
        assert_eq!(everywhere.len(), 1);
    })
    .await;
}
