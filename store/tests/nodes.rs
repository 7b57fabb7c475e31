//! Several nodes on one database, at the storage level, on SQLite and PostgreSQL: the group's
//! keys, heartbeats and taking over from a silent node.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use sekisho_store::audit::StoredAuditEvent;
use sekisho_store::nodes::{GroupKeys, Heartbeat, NodeInfo};
use sekisho_store::{Store, StoreError};
use sekisho_testkit::for_each_db;

fn node(id: &str) -> NodeInfo {
    NodeInfo {
        id: id.into(),
        name: format!("gw-{id}"),
        version: "0.1.0".into(),
    }
}

/// The audit rows of `kind`, newest first.
async fn audited(s: &Store, kind: &str) -> Vec<StoredAuditEvent> {
    s.recent_audit_events(100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.entry.kind == kind)
        .collect()
}

#[tokio::test]
async fn the_first_node_claims_the_database_for_its_keys_and_a_stranger_is_refused() {
    for_each_db(|db| async move {
        let s = &db.store;
        assert_eq!(s.claim_group_keys("a", "fp-1").await.unwrap(), GroupKeys::Claimed);
        assert_eq!(s.claim_group_keys("b", "fp-1").await.unwrap(), GroupKeys::Same);
        assert_eq!(s.claim_group_keys("a", "fp-1").await.unwrap(), GroupKeys::Same);
        let err = s.claim_group_keys("c", "fp-2").await.unwrap_err();
        assert!(
            matches!(&err, StoreError::KeysDiffer { group, node } if group == "fp-1" && node == "fp-2"),
            "{err}"
        );
        assert!(err.to_string().contains("sekisho node join"), "{err}");
        // Claimed once, audited once.
        assert_eq!(audited(s, "group_keys_claimed").await.len(), 1);
    })
    .await;
}

#[tokio::test]
async fn a_silent_node_is_taken_over_once_and_a_stopped_one_never() {
    for_each_db(|db| async move {
        let s = &db.store;
        for id in ["a", "b", "c"] {
            s.heartbeat(&node(id), true, &[]).await.unwrap();
        }
        s.node_stopped("c").await.unwrap();
        tokio::time::sleep(Duration::from_millis(300)).await;
        // Only "a" goes on heartbeating.
        assert_eq!(
            s.heartbeat(&node("a"), false, &[]).await.unwrap(),
            Heartbeat::Alive
        );
        let taken = s
            .take_over_silent_nodes("a", Duration::from_millis(200))
            .await
            .unwrap();
        let ids: Vec<_> = taken.iter().map(|(n, _)| n.id.as_str()).collect();
        assert_eq!(ids, ["b"], "a is the caller, c stopped on purpose");
        // A second taker (another node, or the same one again) finds nothing to do.
        assert!(
            s.take_over_silent_nodes("a", Duration::from_millis(200))
                .await
                .unwrap()
                .is_empty()
        );
        let listed = s.nodes().await.unwrap();
        let b = listed.iter().find(|n| n.id == "b").unwrap();
        assert!(b.down_at.is_some() && b.stopped_at.is_none());
        let down = audited(s, "node_down").await;
        assert_eq!(down.len(), 1);
        assert!(
            down[0].entry.details.contains("gw-b"),
            "{}",
            down[0].entry.details
        );
        // "b" comes back: it learns it was marked down, and is up again.
        assert_eq!(
            s.heartbeat(&node("b"), false, &[]).await.unwrap(),
            Heartbeat::WasMarkedDown
        );
        let listed = s.nodes().await.unwrap();
        assert!(
            listed
                .iter()
                .find(|n| n.id == "b")
                .unwrap()
                .down_at
                .is_none()
        );
        assert!(s.verify_audit_chain(|_| {}).await.unwrap().is_intact());
    })
    .await;
}

#[tokio::test]
async fn a_token_key_retires_when_no_node_signs_with_it_and_returns_when_one_does_again() {
    for_each_db(|db| async move {
        let s = &db.store;
        for id in ["a", "b"] {
            s.heartbeat(&node(id), true, &[]).await.unwrap();
        }
        let keep = Duration::ZERO;
        let kids = || async {
            let mut k: Vec<String> = s
                .token_keys()
                .await
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            k.sort();
            k
        };
        // Both nodes start with the group's key (a joined node copies it).
        assert!(
            s.publish_token_key("a", "k0", "pem0", keep)
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            s.publish_token_key("b", "k0", "pem0", keep)
                .await
                .unwrap()
                .is_empty()
        );
        // b rotates: k0 is still a's, so nothing retires.
        assert!(
            s.publish_token_key("b", "k1", "pem1", keep)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(kids().await, ["k0", "k1"]);
        // a rotates too: nobody signs with k0 any more.
        assert_eq!(
            s.publish_token_key("a", "k2", "pem2", keep).await.unwrap(),
            ["k0"]
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(kids().await, ["k1", "k2"]);
        // a goes back to k0 (a restored backup): k0 is accepted again and k2 retires.
        assert_eq!(
            s.publish_token_key("a", "k0", "pem0", keep).await.unwrap(),
            ["k2"]
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert_eq!(kids().await, ["k0", "k1"]);
        // Kept while the tokens they signed may still be valid.
        assert_eq!(
            s.publish_token_key("b", "k3", "pem3", Duration::from_secs(3600))
                .await
                .unwrap(),
            ["k1"]
        );
        assert_eq!(kids().await, ["k0", "k1", "k3"]);
        assert_eq!(
            audited(s, "token_key_published").await.len(),
            5,
            "every change, and only changes, audited"
        );
    })
    .await;
}

/// Two nodes of a group starting at once for the first time claim the same at-rest key: both
/// start, one claim is audited.
#[tokio::test]
async fn nodes_starting_at_once_claim_the_at_rest_key_once() {
    for_each_db(|db| async move {
        let s = &db.store;
        for _ in 0..20 {
            sqlx::query("DELETE FROM at_rest_keys")
                .execute(s.pool())
                .await
                .unwrap();
            let (a, b) = tokio::join!(
                s.claim_at_rest_key("a", "kid-1"),
                s.claim_at_rest_key("b", "kid-1")
            );
            let (a, b) = (a.unwrap(), b.unwrap());
            assert!(a ^ b, "claimed by a: {a}, by b: {b}");
        }
        assert_eq!(s.at_rest_keys().await.unwrap().len(), 1);
    })
    .await;
}
