//! The audit log's JSON stays byte-identical when its free-form fields become enums (issue
//! #13): a chain written before (`fixtures/audit-chain-v1.jsonl`, every kind of event with the
//! values the gateway and the API wrote) still verifies, and every row's `details` reads back
//! as an `AuditEvent` that writes the very same bytes.
//!
//! `SEKISHO_WRITE_AUDIT_FIXTURE=1 cargo test -p sekisho-store --test audit_compat -- --ignored`
//! wrote the fixture with the code of the time; it is never regenerated.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;

use sekisho_domain::audit::{Actor, AuditEntry, AuditEvent, Outcome};
use sekisho_store::audit::{NewAuditEvent, StoredAuditEvent, chain_hash};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/audit-chain-v1.jsonl")
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Row {
    seq: i64,
    at_us: i64,
    kind: String,
    outcome: String,
    actor: String,
    user_id: Option<String>,
    vendor_id: Option<String>,
    target_id: Option<String>,
    request_id: Option<String>,
    source_addr: Option<String>,
    reason: Option<String>,
    details: String,
    prev_hash: String,
    hash: String,
}

/// An enum value by its audit name (the writer kept its strings; they are the enums' names).
fn named<T: serde::de::DeserializeOwned>(name: &str) -> T {
    serde_json::from_value(serde_json::Value::String(name.into())).unwrap()
}

fn row(s: &StoredAuditEvent) -> Row {
    let e = &s.entry;
    Row {
        seq: e.seq,
        at_us: e.at.as_microsecond(),
        kind: e.kind.clone(),
        outcome: e.outcome.as_str().to_owned(),
        actor: e.actor.clone(),
        user_id: e.user_id.clone(),
        vendor_id: e.vendor_id.clone(),
        target_id: e.target_id.clone(),
        request_id: e.request_id.clone(),
        source_addr: e.source_addr.clone(),
        reason: e.reason.clone(),
        details: e.details.clone(),
        prev_hash: s.prev_hash.clone(),
        hash: s.hash.clone(),
    }
}

#[tokio::test]
#[ignore = "writes the fixture; run once, by hand"]
async fn write_fixture() {
    if std::env::var_os("SEKISHO_WRITE_AUDIT_FIXTURE").is_none() {
        return;
    }
    let db = sekisho_testkit::sqlite().await;
    let store = &db.store;
    let ids = || uuid::Uuid::new_v4().to_string();
    let session: sekisho_domain::ids::SessionId = ids().parse().unwrap();
    let request: sekisho_domain::ids::RequestId = ids().parse().unwrap();
    let target: sekisho_domain::ids::TargetId = ids().parse().unwrap();
    let denied = |channel: &str, code: &str| NewAuditEvent {
        actor: Actor::Anonymous {
            claimed: "alice+pacs".into(),
        },
        outcome: Outcome::Denied,
        vendor_id: None,
        source_addr: Some("127.0.0.1".into()),
        reason: Some(format!("refused: {code}")),
        event: AuditEvent::AccessDenied {
            target: Some(target),
            request: None,
            channel: named(channel),
            code: named(code),
        },
    };
    let mut events = vec![];
    for (channel, code) in [
        ("ssh", "unknown_user"),
        ("ssh", "unknown_key"),
        ("ssh", "bad_login_name"),
        ("ssh", "no_request"),
        ("ssh", "pending_approval"),
        ("ssh", "database_unavailable"),
        ("ssh", "certificate_user_mismatch"),
        ("quic", "vendor_inactive"),
        ("quic", "user_disabled"),
        ("quic", "certificate_unknown"),
        ("tunnel", "port_not_allowed"),
        ("enroll", "bad_enrollment_code"),
        ("file_upload", "upload_not_allowed"),
        ("port_forward", "forward_host_not_allowed"),
        ("subsystem", "subsystem_not_offered"),
        ("agent_forward", "agent_forward_refused"),
        ("x11_forward", "x11_forward_refused"),
        ("remote_forward", "remote_forward_refused"),
    ] {
        events.push(denied(channel, code));
    }
    for (action, status) in [
        ("approve", "approved"),
        ("approve", "submitted"),
        ("reject", "rejected"),
        ("cancel", "cancelled"),
        ("revoke", "revoked"),
        ("expire", "expired"),
        ("complete", "completed"),
    ] {
        events.push(NewAuditEvent::system(AuditEvent::RequestDecided {
            request,
            number: 7,
            action: named(action),
            status: named(status),
        }));
    }
    for how in [
        "closed",
        "window_ended",
        "terminated",
        "revoked",
        "recording_failed",
        "aborted",
    ] {
        events.push(NewAuditEvent::system(AuditEvent::SessionEnded {
            session,
            request,
            target,
            how: named(how),
            bytes_to_target: 10,
            bytes_from_target: 20,
            duration_seconds: 30,
        }));
    }
    events.push(NewAuditEvent::system(AuditEvent::LoginFailed {
        username: "admin".into(),
    }));
    for ev in events {
        store.audit(ev).await.unwrap();
    }
    let mut rows = store.recent_audit_events(10_000).await.unwrap();
    rows.reverse();
    let mut out = String::new();
    for r in &rows {
        out.push_str(&serde_json::to_string(&row(r)).unwrap());
        out.push('\n');
    }
    std::fs::write(fixture(), out).unwrap();
}

#[tokio::test]
async fn a_chain_written_before_the_enums_still_verifies_and_reads_back_byte_identical() {
    let text = std::fs::read_to_string(fixture()).unwrap();
    let rows: Vec<Row> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(rows.len() >= 30, "{} rows", rows.len());
    let mut prev = sekisho_store::audit::GENESIS.to_owned();
    for r in &rows {
        // Every event reads back, and writes the bytes that were hashed.
        let event: AuditEvent = serde_json::from_str(&r.details)
            .unwrap_or_else(|e| panic!("row {}: {e}: {}", r.seq, r.details));
        assert_eq!(
            serde_json::to_string(&event).unwrap(),
            r.details,
            "row {}",
            r.seq
        );
        assert_eq!(event.kind(), r.kind);
        let entry = AuditEntry {
            seq: r.seq,
            at: jiff::Timestamp::from_microsecond(r.at_us).unwrap(),
            kind: r.kind.clone(),
            outcome: match r.outcome.as_str() {
                "success" => Outcome::Success,
                "denied" => Outcome::Denied,
                _ => Outcome::Failure,
            },
            actor: r.actor.clone(),
            user_id: r.user_id.clone(),
            vendor_id: r.vendor_id.clone(),
            target_id: r.target_id.clone(),
            request_id: r.request_id.clone(),
            source_addr: r.source_addr.clone(),
            reason: r.reason.clone(),
            details: serde_json::to_string(&event).unwrap(),
        };
        assert_eq!(r.prev_hash, prev, "row {}", r.seq);
        assert_eq!(chain_hash(&prev, &entry), r.hash, "row {}", r.seq);
        prev = r.hash.clone();
    }
}
