//! The daily checks (issue #17) against a real database (SQLite and PostgreSQL): an
//! attestation about to expire and expired, a vendor account left unused, each told to the
//! right people in their language, and made once however often the check runs.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jiff::{SignedDuration, Timestamp};
use sekisho_config::{NotificationsConfig, SmtpConfig, SmtpSecurity};
use sekisho_domain::audit::Actor;
use sekisho_domain::notify::{DeliveryChannel, Language, NotificationKind};
use sekisho_domain::user::Role;
use sekisho_domain::vendor::{Attestation, Contact};
use sekisho_domain::zone::DisplayZone;
use sekisho_notify::plan::Planner;
use sekisho_store::outbox::NewNotification;
use sekisho_testkit::api::staff_user;
use sekisho_testkit::for_each_db;

fn config() -> NotificationsConfig {
    NotificationsConfig {
        smtp: Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port: 25,
            security: SmtpSecurity::None,
            username: None,
            password_file: None,
            ca_file: None,
            from: "Sekisho <sekisho@hospital.test>".into(),
        }),
        console_url: Some("https://sekisho.hospital.test".into()),
        ..NotificationsConfig::default()
    }
}

fn of(kind: NotificationKind, all: &[NewNotification]) -> Vec<&NewNotification> {
    all.iter().filter(|n| n.kind == kind).collect()
}

#[tokio::test]
async fn attestations_and_unused_accounts_are_reported_once_to_the_right_people() {
    for_each_db(|db| async move {
        let s = &db.store;
        let mut admin = staff_user("kenji", Role::Admin, None);
        admin.email = Some("kenji@hospital.test".into());
        let admin = s.create_user(admin, &Actor::System, None).await.unwrap();
        s.update_user(
            admin.id,
            sekisho_store::users::UserChanges {
                language: Some(Some(Language::En)),
                ..Default::default()
            },
            &Actor::System,
            None,
        )
        .await
        .unwrap();
        let now = Timestamp::now();
        let expires_at = now + SignedDuration::from_hours(24 * 200);
        let vendor = s
            .create_vendor(
                "Acme Medical".into(),
                Contact {
                    name: "Sato".into(),
                    email: Some("sato@acme.test".into()),
                    phone: None,
                },
                Some(Attestation {
                    answers: vec![],
                    attested_by: "Sato (CISO)".into(),
                    attested_at: now,
                    expires_at,
                }),
                &Actor::System,
                None,
            )
            .await
            .unwrap();
        let mut engineer = staff_user("alice", Role::Vendor, None);
        engineer.vendor_id = Some(vendor.id);
        s.create_user(engineer, &Actor::System, None).await.unwrap();

        let config = config();
        let zone = DisplayZone::named("Asia/Tokyo").unwrap();
        let planner = Planner {
            store: s,
            config: &config,
            zone: &zone,
        };
        let policy = sekisho_domain::policy::Policy::default();

        // Today: nothing to say.
        assert!(planner.sweep(&policy, now).await.unwrap().is_empty());

        // Five days before the end: the 7-day warning, to the admin (English) and the
        // vendor's contact (the default, Japanese). And alice's account, never used.
        let at = expires_at - SignedDuration::from_hours(24 * 5);
        let found = planner.sweep(&policy, at).await.unwrap();
        let expiring = of(NotificationKind::AttestationExpiring, &found);
        assert_eq!(expiring.len(), 2, "{found:?}");
        let to_admin = expiring
            .iter()
            .find(|n| n.recipient == "kenji@hospital.test")
            .unwrap();
        assert_eq!(to_admin.language, Language::En);
        assert!(
            to_admin
                .subject
                .starts_with("[Sekisho] Acme Medical's security attestation expires on"),
            "{}",
            to_admin.subject
        );
        assert!(
            to_admin.subject.ends_with("(in 5 days)"),
            "{}",
            to_admin.subject
        );
        let to_vendor = expiring
            .iter()
            .find(|n| n.recipient == "sato@acme.test")
            .unwrap();
        assert_eq!(to_vendor.language, Language::Ja);
        assert!(
            to_vendor.subject.contains("あと5日"),
            "{}",
            to_vendor.subject
        );
        assert!(
            to_vendor
                .body
                .contains("https://sekisho.hospital.test/console/admin/vendors")
        );
        let unused = of(NotificationKind::AccountUnused, &found);
        assert_eq!(unused.len(), 1, "only the admins: {found:?}");
        assert_eq!(unused[0].recipient, "kenji@hospital.test");
        assert!(
            unused[0]
                .subject
                .contains("maintenance account alice has not been used for 90 days"),
            "{}",
            unused[0].subject
        );
        assert!(
            unused[0].body.contains("Last used: never"),
            "{}",
            unused[0].body
        );
        assert!(found.iter().all(|n| n.channel == DeliveryChannel::Email));

        // Kept once, however often the check runs (a restart, or every node of a group).
        assert_eq!(s.enqueue_notifications(&found, None).await.unwrap(), 3);
        let again = planner.sweep(&policy, at).await.unwrap();
        assert_eq!(s.enqueue_notifications(&again, None).await.unwrap(), 0);

        // Expired: a new notification (not the warning again).
        let found = planner
            .sweep(&policy, expires_at + SignedDuration::from_hours(24))
            .await
            .unwrap();
        let expired = of(NotificationKind::AttestationExpired, &found);
        assert_eq!(expired.len(), 2, "{found:?}");
        assert!(of(NotificationKind::AttestationExpiring, &found).is_empty());
        assert_eq!(s.enqueue_notifications(&found, None).await.unwrap(), 2);
    })
    .await;
}

/// Emergency work still unapproved past the deadline, and a session nobody reviewed within
/// `review_within_days`: the approvers who see the target's site are told, once.
#[tokio::test]
async fn overdue_emergency_approvals_and_unreviewed_recordings_go_to_approvers() {
    use sekisho_domain::ids::SessionId;
    use sekisho_domain::request::Window;
    use sekisho_domain::target::AccessLevel;

    for_each_db(|db| async move {
        let s = &db.store;
        let sys = Actor::System;
        for (name, site) in [("hana", None), ("kenji", Some("west"))] {
            let mut u = staff_user(name, Role::Approver, None);
            u.email = Some(format!("{name}@hospital.test"));
            u.site = site.map(Into::into);
            s.create_user(u, &sys, None).await.unwrap();
        }
        let (_, alice) = sekisho_testkit::api::vendor_engineer(s, "Acme Medical", "alice").await;
        let target =
            sekisho_testkit::api::ssh_target(s, "pacs", Some("east"), AccessLevel::Change).await;
        let now = Timestamp::now();
        let window = Window {
            start: now,
            end: now + SignedDuration::from_hours(2),
        };
        let request = sekisho_testkit::api::file_request(
            s,
            &alice,
            &target,
            AccessLevel::Change,
            window,
            true,
        )
        .await;
        let session = SessionId::new();
        sekisho_testkit::api::closed_session(s, session, &request, &alice).await;

        let config = config();
        let zone = DisplayZone::named("Asia/Tokyo").unwrap();
        let planner = Planner {
            store: s,
            config: &config,
            zone: &zone,
        };
        let policy = sekisho_domain::policy::Policy::default();
        // Within the deadline and the review period: nothing.
        let found = planner.sweep(&policy, now).await.unwrap();
        assert!(
            of(NotificationKind::EmergencyApprovalOverdue, &found).is_empty()
                && of(NotificationKind::RecordingUnreviewed, &found).is_empty(),
            "{found:?}"
        );
        // Eight days on: both, to hana only (kenji sees the west site, pacs is east's).
        let later = now + SignedDuration::from_hours(24 * 8);
        let found = planner.sweep(&policy, later).await.unwrap();
        let overdue = of(NotificationKind::EmergencyApprovalOverdue, &found);
        assert_eq!(overdue.len(), 1, "{found:?}");
        assert_eq!(overdue[0].recipient, "hana@hospital.test");
        assert_eq!(
            overdue[0].subject,
            "[Sekisho] 緊急作業 R-1（pacs）の事後承認が期限を過ぎています"
        );
        let unreviewed = of(NotificationKind::RecordingUnreviewed, &found);
        assert_eq!(unreviewed.len(), 1, "{found:?}");
        assert_eq!(unreviewed[0].recipient, "hana@hospital.test");
        assert!(
            unreviewed[0].body.contains(&format!(
                "https://sekisho.hospital.test/console/recordings/{session}"
            )),
            "{}",
            unreviewed[0].body
        );
        // Once, however often the check runs.
        let added = s.enqueue_notifications(&found, None).await.unwrap();
        let again = planner.sweep(&policy, later).await.unwrap();
        assert_eq!(s.enqueue_notifications(&again, None).await.unwrap(), 0);
        assert!(added >= 2);
        // Signed off: no longer reported (a new notification is not made for it).
        let hana = s.user_by_username("hana").await.unwrap().unwrap();
        s.sign_off_session(session, &hana, None, None)
            .await
            .unwrap();
        let after = planner.sweep(&policy, later).await.unwrap();
        assert!(of(NotificationKind::RecordingUnreviewed, &after).is_empty());
    })
    .await;
}
