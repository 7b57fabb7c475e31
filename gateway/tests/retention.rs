//! Retention deletes only reviewed, unheld recordings past the period, and audits it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use jiff::{SignedDuration, Timestamp};
use sekisho_domain::audit::Actor;
use sekisho_domain::ids::SessionId;
use sekisho_domain::request::Window;
use sekisho_domain::secret::Secret;
use sekisho_domain::target::AccessLevel;
use sekisho_domain::user::Role;
use sekisho_gateway::retention::sweep;
use sekisho_recorder::manifest::RecordingKey;
use sekisho_recorder::{Library, Recorder, SessionMeta};
use sekisho_store::password;
use sekisho_store::users::NewUser;
use sekisho_testkit::for_each_db;

#[tokio::test]
async fn only_reviewed_recordings_without_hold_are_deleted_and_each_deletion_is_audited() {
    for_each_db(|db| async move {
        let store = db.store.clone();
        let sys = Actor::System;
        let vendor = store
            .create_vendor("Acme".into(), Default::default(), None, &sys, None)
            .await
            .unwrap();
        let staff = |name: &str, role| NewUser {
            username: name.into(),
            display_name: name.into(),
            email: None,
            role,
            vendor_id: None,
            expires_at: None,
            password_hash: Some(password::hash(&Secret::new("x".repeat(12))).unwrap()),
            site: None,
        };
        let approver = store
            .create_user(staff("hana", Role::Approver), &sys, None)
            .await
            .unwrap();
        let mut eng = staff("alice", Role::Vendor);
        eng.vendor_id = Some(vendor.id);
        let alice = store.create_user(eng, &sys, None).await.unwrap();
        let target =
            sekisho_testkit::api::ssh_target(&store, "pacs", None, AccessLevel::Reference).await;
        let now = Timestamp::now();
        let window = Window {
            start: now,
            end: now + SignedDuration::from_hours(1),
        };
        let request = sekisho_testkit::api::file_request(
            &store,
            &alice,
            &target,
            AccessLevel::Reference,
            window,
            false,
        )
        .await;

        let dir = tempfile::tempdir().unwrap();
        let rkey =
            Arc::new(RecordingKey::from_pkcs8(&RecordingKey::generate_pkcs8().unwrap()).unwrap());
        let recorder = Recorder::new(dir.path(), rkey).unwrap();
        let mut ids = vec![];
        for _ in 0..4 {
            let id = SessionId::new();
            let rec = recorder
                .open(SessionMeta {
                    session: id.to_string(),
                    request: request.id.to_string(),
                    request_number: request.number,
                    vendor: "Acme".into(),
                    vendor_user: "alice".into(),
                    target: "pacs".into(),
                    level: "reference".into(),
                    source_addr: "127.0.0.1".into(),
                })
                .await
                .unwrap();
            rec.terminal(0, 80, 24, "t".into(), None).await.unwrap();
            rec.close("closed").await.unwrap();
            ids.push(id);
        }
        let [reviewed, pending, held, unknown] = [ids[0], ids[1], ids[2], ids[3]];
        for id in [reviewed, pending, held] {
            sekisho_testkit::api::closed_session(&store, id, &request, &alice).await;
        }
        store
            .sign_off_session(reviewed, &approver, Some("ok".into()), None)
            .await
            .unwrap();
        store
            .sign_off_session(held, &approver, None, None)
            .await
            .unwrap();
        store
            .set_legal_hold(held, true, &approver, None)
            .await
            .unwrap();

        let lib = Library::new(dir.path());
        // Within the period nothing goes.
        let s = sweep(&store, &lib, 30, now).await.unwrap();
        assert!(s.deleted.is_empty() && s.kept.is_empty(), "{s:?}");
        // Past it, only the reviewed one without hold.
        let later = now + SignedDuration::from_hours(24 * 31);
        let s = sweep(&store, &lib, 30, later).await.unwrap();
        assert_eq!(s.deleted, [reviewed.to_string()]);
        let mut kept = s.kept.clone();
        kept.sort();
        let mut expected = vec![
            (pending.to_string(), "review not signed off"),
            (held.to_string(), "legal hold"),
            (unknown.to_string(), "session unknown to the database"),
        ];
        expected.sort();
        assert_eq!(kept, expected);
        assert!(!dir.path().join(reviewed.to_string()).exists());
        assert!(dir.path().join(held.to_string()).exists());
        let events = store.recent_audit_events(5).await.unwrap();
        assert_eq!(events[0].entry.kind, "recording_deleted");
        assert!(events[0].entry.details.contains(&reviewed.to_string()));
        assert!(store.verify_audit_chain(|_| {}).await.unwrap().is_intact());
        // 0 keeps everything.
        assert_eq!(
            sweep(
                &store,
                &lib,
                0,
                later + SignedDuration::from_hours(24 * 3650)
            )
            .await
            .unwrap()
            .deleted
            .len(),
            0
        );
    })
    .await;
}
