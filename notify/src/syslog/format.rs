//! RFC 5424 messages and RFC 6587 octet-counted frames: pure functions of an audit row.

use sekisho_domain::audit::Outcome;
use sekisho_store::audit::StoredAuditEvent;
use serde_json::{Value, json};

/// The structured-data ID of Sekisho's parameters. 32473 is the private enterprise number
/// RFC 5612 sets aside for documentation: Sekisho has none of its own.
pub const SD_ID: &str = "sekisho@32473";

/// What every message of this node starts with.
#[derive(Clone, Debug)]
pub struct Origin {
    /// The facility number (0 to 23).
    pub facility: u8,
    /// HOSTNAME: this node's name.
    pub hostname: String,
    pub app_name: String,
    pub procid: u32,
}

/// Severity: informational for what happened, warning for a refusal, error for a failure.
pub fn severity(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Success => 6,
        Outcome::Denied => 4,
        Outcome::Failure => 3,
    }
}

/// A header field: printable US-ASCII without spaces, at most `max` characters, or `-`.
fn header_field(value: &str, max: usize) -> String {
    let clean: String = value
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(max)
        .collect();
    if clean.is_empty() { "-".into() } else { clean }
}

/// A PARAM-VALUE with `"`, `\` and `]` escaped (RFC 5424 6.3.3).
fn param_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if matches!(c, '"' | '\\' | ']') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

fn header(origin: &Origin, severity: u8, at: jiff::Timestamp, msgid: &str) -> String {
    let pri = u16::from(origin.facility) * 8 + u16::from(severity);
    format!(
        "<{pri}>1 {} {} {} {} {}",
        at.strftime("%Y-%m-%dT%H:%M:%S%.6fZ"),
        header_field(&origin.hostname, 255),
        header_field(&origin.app_name, 48),
        origin.procid,
        header_field(msgid, 32),
    )
}

/// JSON kept as JSON when it parses, as a string when it does not.
fn embedded(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()))
}

/// One audit row as a message: MSGID the event's kind; structured data its sequence number,
/// outcome and chain hashes (for a collector to see a gap, a repeat or a rewritten row); the
/// message the whole row as JSON.
pub fn audit_message(origin: &Origin, row: &StoredAuditEvent) -> String {
    let e = &row.entry;
    let body = json!({
        "seq": e.seq,
        "at": e.at,
        "kind": e.kind,
        "outcome": e.outcome,
        "actor": embedded(&e.actor),
        "user_id": e.user_id,
        "vendor_id": e.vendor_id,
        "target_id": e.target_id,
        "request_id": e.request_id,
        "source_addr": e.source_addr,
        "reason": e.reason,
        "details": embedded(&e.details),
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    });
    format!(
        "{} [{SD_ID} seq=\"{}\" outcome=\"{}\" hash=\"{}\" prev=\"{}\"] \u{feff}{body}",
        header(origin, severity(e.outcome), e.at, &e.kind),
        e.seq,
        param_value(e.outcome.as_str()),
        param_value(&row.hash),
        param_value(&row.prev_hash),
    )
}

/// A signed checkpoint of the chain's head (its JSON line as written to the recordings share),
/// as a notice with MSGID `checkpoint`.
pub fn checkpoint_message(origin: &Origin, at: jiff::Timestamp, line: &str) -> String {
    let seq = serde_json::from_str::<Value>(line)
        .ok()
        .and_then(|v| v["seq"].as_i64());
    let sd = match seq {
        Some(seq) => format!("[{SD_ID} checkpoint=\"{seq}\"]"),
        None => "-".to_owned(),
    };
    format!(
        "{} {sd} \u{feff}{line}",
        header(origin, 5, at, "checkpoint")
    )
}

/// The frame on the wire: the message's length in octets, a space, the message.
pub fn frame(message: &str) -> Vec<u8> {
    let mut out = format!("{} ", message.len()).into_bytes();
    out.extend_from_slice(message.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use sekisho_domain::audit::AuditEntry;

    fn origin() -> Origin {
        Origin {
            facility: 10,
            hostname: "gw 1\n".into(),
            app_name: "sekisho".into(),
            procid: 4242,
        }
    }

    fn row() -> StoredAuditEvent {
        StoredAuditEvent {
            entry: AuditEntry {
                seq: 7,
                at: "2026-12-01T01:02:03.000456Z".parse().unwrap(),
                kind: "access_denied".into(),
                outcome: Outcome::Denied,
                actor: r#"{"type":"user","username":"alice"}"#.into(),
                user_id: None,
                vendor_id: None,
                target_id: None,
                request_id: None,
                source_addr: Some("127.0.0.1:5000".into()),
                reason: Some("no approved request for pacs covers 10:32 JST".into()),
                details: r#"{"code":"no_request"}"#.into(),
            },
            prev_hash: "ab".into(),
            hash: "cd".into(),
        }
    }

    #[test]
    fn an_audit_row_is_an_rfc5424_message_with_its_sequence_and_hashes() {
        let m = audit_message(&origin(), &row());
        // authpriv (10) * 8 + warning (4) = 84; the host name loses its space and newline.
        assert!(
            m.starts_with(
                "<84>1 2026-12-01T01:02:03.000456Z gw1 sekisho 4242 access_denied [sekisho@32473 seq=\"7\" outcome=\"denied\" hash=\"cd\" prev=\"ab\"] \u{feff}{"
            ),
            "{m}"
        );
        let json: Value = serde_json::from_str(m.split_once('\u{feff}').unwrap().1).unwrap();
        assert_eq!(json["actor"]["username"], "alice");
        assert_eq!(json["details"]["code"], "no_request");
        assert_eq!(json["seq"], 7);
    }

    #[test]
    fn param_values_escape_quotes_backslashes_and_brackets() {
        assert_eq!(param_value(r#"a"b\c]d"#), r#"a\"b\\c\]d"#);
        assert_eq!(header_field("", 10), "-");
        assert_eq!(
            header_field("session_terminate_requested_and_more_than_32", 32).len(),
            32
        );
    }

    #[test]
    fn frames_count_octets_not_characters() {
        let f = frame("日本");
        assert_eq!(f, "6 日本".as_bytes());
    }

    #[test]
    fn a_checkpoint_names_its_sequence_number() {
        let at = "2026-12-01T00:00:00Z".parse().unwrap();
        let m = checkpoint_message(&origin(), at, r#"{"seq":12,"hash":"ff"}"#);
        assert!(
            m.starts_with("<85>1 2026-12-01T00:00:00.000000Z gw1 sekisho 4242 checkpoint [sekisho@32473 checkpoint=\"12\"] \u{feff}{\"seq\":12"),
            "{m}"
        );
    }
}
