//! Audit events: the closed set of things the append-only log records.
//!
//! Each event is an [`AuditEvent`] variant, never a free-form string. The storage layer
//! stores it as an [`AuditEntry`] and chains entries by hashing [`AuditEntry::canonical`].

use std::fmt;

mod names;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::files::{Direction as FileDirection, Outcome as FileOutcome};
use crate::ids::{AssignmentId, LineId, RequestId, SessionId, TargetId, UserId, VendorId};
use crate::refusal::{Channel, Code};
use crate::request::{Action, RequestStatus};
use crate::session::SessionEnd;
use crate::target::AccessLevel;
use crate::user::Role;

/// Whether the thing audited happened.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Success,
    /// Refused by a rule (the reason says which).
    Denied,
    /// Failed for a technical reason.
    Failure,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Denied => "denied",
            Outcome::Failure => "failure",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Who caused an event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    /// The gateway itself (start-up, expiry, sealing).
    System,
    /// A command run on the server (`sekisho user add`): an operator with shell access.
    Cli { os_user: String },
    /// An authenticated account.
    User {
        id: UserId,
        username: String,
        role: Role,
    },
    /// Someone not (yet) authenticated, named by what they claimed.
    Anonymous { claimed: String },
}

impl Actor {
    /// The actor for an authenticated account.
    pub fn user(user: &crate::user::User) -> Self {
        Actor::User {
            id: user.id,
            username: user.username.clone(),
            role: user.role,
        }
    }

    pub fn user_id(&self) -> Option<UserId> {
        match self {
            Actor::User { id, .. } => Some(*id),
            _ => None,
        }
    }

    /// A short label for listings: a username, `system` or `cli:root`.
    pub fn label(&self) -> String {
        match self {
            Actor::System => "system".into(),
            Actor::Cli { os_user } => format!("cli:{os_user}"),
            Actor::User { username, .. } => username.clone(),
            Actor::Anonymous { claimed } => format!("anonymous:{claimed}"),
        }
    }
}

/// The longest name someone may claim that the log keeps as it was sent; longer ones are cut.
pub const MAX_CLAIMED: usize = 64;

/// What an unauthenticated caller claimed (a username, a login name), as the log keeps it: at
/// most [`MAX_CLAIMED`] characters, with control, bidi and zero-width characters shown as
/// `\u{..}` escapes, and a cut one marked with its full length. A 900,000-character name
/// must cost the log no more than a short one.
pub fn claimed(raw: &str) -> String {
    let mut out = String::new();
    let total = raw.chars().count();
    for (shown, c) in raw.chars().enumerate() {
        if shown == MAX_CLAIMED {
            out.push_str(&format!("…(truncated, {total} characters)"));
            break;
        }
        if crate::text::is_invisible(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

/// Everything the audit log can record. New kinds are added here, never as strings elsewhere.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AuditEvent {
    /// First start: data dir, database and keys created.
    GatewayInitialized {
        data_dir: String,
        keys: Vec<String>,
    },
    GatewayStarted {
        version: String,
        listeners: Vec<String>,
    },
    GatewayStopped {
        reason: String,
    },
    LoginSucceeded {
        username: String,
    },
    LoginFailed {
        username: String,
    },
    UserCreated {
        user: UserId,
        username: String,
        role: Role,
        vendor: Option<VendorId>,
    },
    UserUpdated {
        user: UserId,
        username: String,
        changes: Vec<String>,
    },
    VendorCreated {
        vendor: VendorId,
        name: String,
    },
    VendorUpdated {
        vendor: VendorId,
        name: String,
        changes: Vec<String>,
    },
    TargetCreated {
        target: TargetId,
        name: String,
    },
    TargetUpdated {
        target: TargetId,
        name: String,
        changes: Vec<String>,
    },
    /// A vendor assigned to a target under a maintenance contract.
    AssignmentCreated {
        assignment: AssignmentId,
        vendor: VendorId,
        target: TargetId,
        contract: String,
        ends_at: Option<Timestamp>,
    },
    AssignmentUpdated {
        assignment: AssignmentId,
        vendor: VendorId,
        target: TargetId,
        changes: Vec<String>,
    },
    AssignmentRemoved {
        assignment: AssignmentId,
        vendor: VendorId,
        target: TargetId,
        contract: String,
    },
    /// A line entered into the inventory of external connection lines.
    LineCreated {
        line: LineId,
        name: String,
        route: crate::line::Route,
        vendor: Option<VendorId>,
    },
    LineUpdated {
        line: LineId,
        name: String,
        changes: Vec<String>,
    },
    /// Someone reviewed the line (and an exception's measures).
    LineReviewed {
        line: LineId,
        name: String,
        note: Option<String>,
    },
    HostKeyPinned {
        target: TargetId,
        name: String,
        fingerprint: String,
    },
    RequestFiled {
        request: RequestId,
        number: i64,
        target: TargetId,
        level: AccessLevel,
        emergency: bool,
    },
    RequestDecided {
        request: RequestId,
        number: i64,
        action: Action,
        status: RequestStatus,
    },
    AccessDenied {
        target: Option<TargetId>,
        request: Option<RequestId>,
        channel: Channel,
        code: Code,
    },
    SessionStarted {
        session: SessionId,
        request: RequestId,
        target: TargetId,
        level: AccessLevel,
    },
    SessionEnded {
        session: SessionId,
        request: RequestId,
        target: TargetId,
        how: SessionEnd,
        bytes_to_target: u64,
        bytes_from_target: u64,
        #[serde(default)]
        duration_seconds: u64,
    },
    /// A session's recording was sealed: the SHA-256 of its signed manifest, which lists
    /// every file's SHA-256.
    RecordingClosed {
        session: SessionId,
        request: RequestId,
        target: TargetId,
        manifest_sha256: String,
        files: u32,
        bytes: u64,
    },
    /// A session's recording failed (a full or broken disk) and the session was ended. The
    /// relay may run ahead of the disk only by the in-flight window, so at most that much
    /// went through unrecorded: `unrecorded_bytes` is exactly how much did.
    RecordingFailed {
        session: SessionId,
        request: RequestId,
        target: TargetId,
        unrecorded_bytes: u64,
        error: String,
    },
    /// The virtual channels a remote desktop session asked for, and which the level let
    /// through (the others stay open but nothing is relayed on them).
    RdpChannels {
        session: SessionId,
        request: RequestId,
        target: TargetId,
        allowed: Vec<String>,
        refused: Vec<String>,
    },
    /// A file crossed the gateway (or tried to): see [`crate::files::FileRecord`].
    FileTransferred {
        session: SessionId,
        request: RequestId,
        target: TargetId,
        transfer: String,
        direction: FileDirection,
        path: String,
        bytes: u64,
        sha256: Option<String>,
        sequential: bool,
        outcome: FileOutcome,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        quarantine: Option<String>,
    },
    /// IT deleted a blocked file from the quarantine.
    QuarantineDeleted {
        quarantine: String,
        path: String,
        sha256: String,
    },
    /// IT downloaded a blocked file from the quarantine to inspect it.
    QuarantineRetrieved {
        quarantine: String,
        path: String,
        sha256: String,
    },
    SessionTerminateRequested {
        session: SessionId,
        request: RequestId,
        target: TargetId,
    },
    SessionReviewed {
        session: SessionId,
        request: RequestId,
        target: TargetId,
    },
    EnrollmentCodeCreated {
        user: UserId,
        username: String,
        expires_at: Timestamp,
    },
    /// A vendor engineer redeemed an enrollment code: a client certificate was issued.
    ClientEnrolled {
        user: UserId,
        username: String,
        /// SHA-256 of the certificate's DER, hex.
        fingerprint: String,
        expires_at: Timestamp,
    },
    /// A designated client renewed its certificate; the old one is revoked.
    ClientRenewed {
        user: UserId,
        username: String,
        fingerprint: String,
        replaces: String,
        expires_at: Timestamp,
    },
    LegalHoldChanged {
        session: SessionId,
        request: RequestId,
        target: TargetId,
        on: bool,
    },
    RecordingDeleted {
        session: SessionId,
        target: String,
        files: Vec<String>,
    },
    SshKeyAdded {
        user: UserId,
        username: String,
        fingerprint: String,
        /// Registered by the engineer themself: it works only once IT approves it.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        pending: bool,
    },
    /// IT approved an SSH key an engineer registered for themself.
    SshKeyApproved {
        user: UserId,
        username: String,
        fingerprint: String,
    },
    /// A login token was revoked by logging out.
    LoggedOut {
        username: String,
    },
    /// Someone read recordings (issue #18: reading is evidence too): listed or searched them,
    /// or opened, downloaded, replayed, exported or verified one.
    RecordingsRead {
        /// The recording (its session id); `None` for a list or a search.
        recording: Option<String>,
        what: RecordingUse,
        /// The file, the search text, or the filter, when there is one.
        detail: Option<String>,
    },
    /// The gateway checked its clock against NTP: written at start and whenever the verdict
    /// changes (within the limit, off, or no server answered).
    ClockChecked {
        /// The server that answered.
        server: Option<String>,
        /// This clock minus the server's, in milliseconds.
        offset_ms: Option<i64>,
        max_offset_ms: u32,
        verdict: ClockVerdict,
    },
    /// Someone exported the audit log (CSV or JSON lines), with the filter they used.
    AuditExported {
        format: String,
        filter: String,
    },
    /// Repeated failures from one address within a minute, counted in one row instead of
    /// one each (a flood of failed logins must not flood the log).
    FailuresSummarized {
        channel: Channel,
        count: u64,
        first_at: Timestamp,
        last_at: Timestamp,
        /// Up to five of the names claimed, as [`claimed`] keeps them.
        claimed: Vec<String>,
    },
    /// The first node to use a database claimed it for its keys; every later node must hold
    /// the same keys (`sekisho node join`).
    GroupKeysClaimed {
        node: String,
        /// SHA-256 over the group's public keys and the at-rest key's digest, hex.
        fingerprint: String,
    },
    /// A node published the public half of its token-signing key; `retired` are its earlier
    /// keys, accepted until `retired_at` (when the tokens they signed have expired).
    TokenKeyPublished {
        node: String,
        kid: String,
        retired: Vec<String>,
        retired_at: Option<Timestamp>,
    },
    /// An admin made a new token-signing key for a node (`sekisho node rotate-token-key`).
    TokenKeyRotated {
        node: String,
        previous_kid: String,
        kid: String,
    },
    /// The first node to use a database named its at-rest key the group's (by its id).
    AtRestKeyClaimed {
        node: String,
        kid: String,
    },
    /// A new at-rest key was made and handed to the nodes (sealed under the current one in
    /// the database); it opens everywhere before it seals anywhere.
    AtRestKeyStaged {
        kid: String,
        previous_kid: String,
    },
    /// Every live node held the new key: it seals from now on; the previous one still opens.
    AtRestKeyActivated {
        kid: String,
        previous_kid: String,
        /// The nodes that held it (their ids).
        nodes: Vec<String>,
    },
    /// Every sealed value in the database was sealed again under `kid`.
    AtRestKeyResealed {
        kid: String,
        credentials: u64,
        second_factors: u64,
    },
    /// The previous key was retired: nothing in the database needs it any more and the
    /// nodes forget it (its copy wrapped for the hand-over is deleted).
    AtRestKeyRetired {
        kid: String,
        current_kid: String,
    },
    /// A user began enrolling a second factor (a new secret, pending until confirmed).
    MfaEnrollmentStarted {
        user: UserId,
        username: String,
    },
    /// A user's second factor is on (a first code proved the authenticator holds it).
    MfaEnabled {
        user: UserId,
        username: String,
        recovery_codes: u32,
    },
    /// A login used a one-time recovery code instead of a TOTP code.
    MfaRecoveryCodeUsed {
        user: UserId,
        username: String,
        left: u32,
    },
    /// An admin removed a user's second factor (a lost phone).
    MfaReset {
        user: UserId,
        username: String,
    },
    /// A notification could not be delivered after every try: someone was not told.
    NotificationFailed {
        notification: String,
        about: crate::notify::NotificationKind,
        channel: crate::notify::DeliveryChannel,
        recipient: String,
        attempts: u32,
        error: String,
    },
    /// A node stopped heartbeating for longer than the configured time: another node marked
    /// it down and ended its open sessions as aborted.
    NodeDown {
        node: String,
        name: String,
        last_heartbeat: Timestamp,
        sessions: Vec<SessionId>,
    },
}

/// What a clock check found.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClockVerdict {
    Within,
    /// Off by more than the limit.
    Off,
    /// No NTP server answered.
    Unchecked,
}

/// What was done with recordings.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingUse {
    /// The list of recordings.
    List,
    /// A full-text search over them.
    Search,
    /// One recording's manifest (its page).
    Manifest,
    /// One of its files downloaded.
    File,
    /// Its typed text.
    Text,
    /// What happened in it, for its review: channels opened, lines typed, commands run.
    Activity,
    /// A desktop recording's picture at a moment, or its replay.
    Screen,
    /// Its traffic as a pcap.
    Pcap,
    /// The whole recording as one archive.
    Bundle,
    /// Its signature and hashes checked.
    Verify,
}

/// One row of the log as stored: every field that the chain hash covers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    /// Position in the chain, from 1 with no gaps.
    pub seq: i64,
    pub at: Timestamp,
    pub kind: String,
    pub outcome: Outcome,
    /// The actor as JSON ([`Actor`]).
    pub actor: String,
    pub user_id: Option<String>,
    pub vendor_id: Option<String>,
    pub target_id: Option<String>,
    pub request_id: Option<String>,
    pub source_addr: Option<String>,
    pub reason: Option<String>,
    /// The event as JSON ([`AuditEvent`]).
    pub details: String,
}

impl AuditEntry {
    /// The bytes the chain hash covers: each field length-prefixed, in a fixed order, so no
    /// two different entries share an encoding.
    pub fn canonical(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(256 + self.details.len());
        let mut field = |bytes: Option<&[u8]>| match bytes {
            None => out.extend_from_slice(&u64::MAX.to_be_bytes()),
            Some(b) => {
                out.extend_from_slice(&(b.len() as u64).to_be_bytes());
                out.extend_from_slice(b);
            }
        };
        let at = self.at.as_microsecond().to_string();
        let seq = self.seq.to_string();
        field(Some(b"sekisho-audit-v1"));
        field(Some(seq.as_bytes()));
        field(Some(at.as_bytes()));
        field(Some(self.kind.as_bytes()));
        field(Some(self.outcome.as_str().as_bytes()));
        field(Some(self.actor.as_bytes()));
        field(self.user_id.as_deref().map(str::as_bytes));
        field(self.vendor_id.as_deref().map(str::as_bytes));
        field(self.target_id.as_deref().map(str::as_bytes));
        field(self.request_id.as_deref().map(str::as_bytes));
        field(self.source_addr.as_deref().map(str::as_bytes));
        field(self.reason.as_deref().map(str::as_bytes));
        field(Some(self.details.as_bytes()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> AuditEntry {
        AuditEntry {
            seq: 1,
            at: Timestamp::from_second(1_700_000_000).unwrap(),
            kind: "login_failed".into(),
            outcome: Outcome::Denied,
            actor: "{}".into(),
            user_id: None,
            vendor_id: None,
            target_id: None,
            request_id: None,
            source_addr: Some("127.0.0.1".into()),
            reason: None,
            details: "{}".into(),
        }
    }

    #[test]
    fn canonical_encoding_distinguishes_none_from_empty_and_field_boundaries() {
        let a = entry();
        let mut b = entry();
        b.reason = Some(String::new());
        assert_ne!(a.canonical(), b.canonical());
        let mut c = entry();
        c.kind = "login_faile".into();
        c.actor = "d{}".into();
        assert_ne!(a.canonical(), c.canonical());
    }

    #[test]
    fn every_field_is_covered() {
        let base = entry().canonical();
        let mut variants = vec![];
        let mut e = entry();
        e.seq = 2;
        variants.push(e);
        let mut e = entry();
        e.at = Timestamp::from_second(1_700_000_001).unwrap();
        variants.push(e);
        let mut e = entry();
        e.outcome = Outcome::Success;
        variants.push(e);
        let mut e = entry();
        e.user_id = Some("u".into());
        variants.push(e);
        let mut e = entry();
        e.vendor_id = Some("v".into());
        variants.push(e);
        let mut e = entry();
        e.target_id = Some("t".into());
        variants.push(e);
        let mut e = entry();
        e.request_id = Some("r".into());
        variants.push(e);
        let mut e = entry();
        e.source_addr = None;
        variants.push(e);
        let mut e = entry();
        e.details = "{\"x\":1}".into();
        variants.push(e);
        for v in variants {
            assert_ne!(v.canonical(), base, "{v:?}");
        }
    }

    #[test]
    fn claimed_names_are_cut_and_invisible_characters_shown() {
        assert_eq!(claimed("alice"), "alice");
        let long = "x".repeat(900_000);
        let kept = claimed(&long);
        assert_eq!(
            kept,
            format!("{}…(truncated, 900000 characters)", "x".repeat(MAX_CLAIMED))
        );
        assert_eq!(
            claimed("a\u{0}b\u{202e}c\u{200b}"),
            "a\\u{0}b\\u{202e}c\\u{200b}"
        );
    }

    #[test]
    fn events_serialise_with_their_kind() {
        let e = AuditEvent::LoginFailed {
            username: "alice".into(),
        };
        let json = serde_json::to_value(&e).unwrap();
        assert_eq!(json["kind"], e.kind());
    }
}
