//! Exhaustive and property tests of the two rules: the request state machine and `authorize`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use jiff::{SignedDuration, Timestamp};
use proptest::prelude::*;
use proptest::strategy::ValueTree;
use sekisho_domain::assignment::Assignment;
use sekisho_domain::authorize::{
    AccessQuery, ChannelKind, Decision, DenyReason, authorize, check_forward,
};
use sekisho_domain::ids::{AssignmentId, RequestId, TargetId, UserId, VendorId};
use sekisho_domain::policy::Policy;
use sekisho_domain::refusal::Code;
use sekisho_domain::request::{
    ApprovalState, RequestEvent, RequestStatus, RuleContext, TransitionError, Verdict, Window,
    WorkRequest,
};
use sekisho_domain::target::{AccessLevel, LevelPolicy, Target};
use sekisho_domain::user::{Role, User, UserStatus};
use sekisho_domain::vendor::{Attestation, AttestationAnswer, Vendor, VendorStatus};
use sekisho_domain::zone::DisplayZone;

fn t(s: &str) -> Timestamp {
    s.parse().unwrap()
}

fn now() -> Timestamp {
    t("2026-11-25T01:32:00Z") // 10:32 JST
}

fn user(role: Role, vendor: Option<VendorId>) -> User {
    User {
        id: UserId::new(),
        username: format!("{}-{}", role.as_str(), &UserId::new().to_string()[..6]),
        display_name: "Someone".into(),
        email: None,
        role,
        vendor_id: vendor,
        status: UserStatus::Active,
        expires_at: None,
        created_at: t("2026-01-01T00:00:00Z"),
        site: None,
        language: None,
        source: Default::default(),
    }
}

fn vendor(policy: &Policy) -> Vendor {
    Vendor {
        id: VendorId::new(),
        name: "Acme Medical".into(),
        contact: Default::default(),
        attestation: Some(Attestation {
            answers: policy
                .checklist
                .iter()
                .map(|i| AttestationAnswer {
                    key: i.key.clone(),
                    met: true,
                    note: None,
                })
                .collect(),
            attested_by: "CISO".into(),
            attested_at: t("2026-01-01T00:00:00Z"),
            expires_at: t("2027-01-01T00:00:00Z"),
        }),
        status: VendorStatus::Active,
        created_at: t("2026-01-01T00:00:00Z"),
    }
}

fn level_policy(account: &str) -> LevelPolicy {
    LevelPolicy {
        account: account.into(),
        ssh: true,
        allowed_ports: vec![443],
        port_forwarding: false,
        file_upload: false,
        file_download: true,
        download_max_bytes: None,
        rdp: false,
        rdp_clipboard: false,
        rdp_drives: false,
    }
}

fn target() -> Target {
    Target {
        id: TargetId::new(),
        name: "pacs".into(),
        host: "127.0.0.1".into(),
        port: 22,
        reference: Some(level_policy("maint-ro")),
        change: Some(LevelPolicy {
            port_forwarding: true,
            file_upload: true,
            file_download: true,
            download_max_bytes: None,
            allowed_ports: vec![443, 104],
            ..level_policy("maint-rw")
        }),
        host_key: None,
        rdp_port: None,
        rdp_certificate: None,
        site: None,
    }
}

fn request(
    requester: &User,
    target: &Target,
    level: AccessLevel,
    status: RequestStatus,
) -> WorkRequest {
    WorkRequest {
        id: RequestId::new(),
        number: 12,
        requester: requester.id,
        vendor_id: requester.vendor_id.unwrap(),
        target_id: target.id,
        target_name: target.name.clone(),
        level,
        window: Window {
            start: t("2026-11-25T00:00:00Z"),
            end: t("2026-11-25T04:00:00Z"),
        },
        reason: "firmware check".into(),
        plan: String::new(),
        emergency: false,
        status,
        approvals: vec![],
        created_at: t("2026-11-24T00:00:00Z"),
    }
}

struct World {
    policy: Policy,
    vendor: Vendor,
    engineer: User,
    approver: User,
    approver2: User,
    target: Target,
    assignment: Assignment,
    zone: DisplayZone,
}

fn world() -> World {
    let policy = Policy::default();
    let vendor = vendor(&policy);
    let target = target();
    World {
        assignment: Assignment {
            id: AssignmentId::new(),
            vendor_id: vendor.id,
            target_id: target.id,
            contract: "MC-2026-014".into(),
            sla: String::new(),
            boundary: String::new(),
            ends_at: Some(t("2027-03-31T15:00:00Z")),
            created_at: t("2026-01-01T00:00:00Z"),
            updated_at: t("2026-01-01T00:00:00Z"),
        },
        engineer: user(Role::Vendor, Some(vendor.id)),
        approver: user(Role::Approver, None),
        approver2: user(Role::Approver, None),
        vendor,
        policy,
        target,
        zone: DisplayZone::named("Asia/Tokyo").unwrap(),
    }
}

fn query<'a>(w: &'a World, requests: &'a [WorkRequest], channel: ChannelKind) -> AccessQuery<'a> {
    AccessQuery {
        now: now(),
        user: &w.engineer,
        vendor: Some(&w.vendor),
        target: &w.target,
        assignment: Some(&w.assignment),
        requests,
        channel,
        level: None,
        policy: &w.policy,
    }
}

fn deny_message(d: Decision, zone: &DisplayZone) -> String {
    match d {
        Decision::Deny(r) => r.message(zone),
        Decision::Allow(g) => panic!("expected a denial, got {g:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// The state machine, exhaustively: every status against every event.

#[derive(Clone, Copy, Debug, PartialEq)]
enum Ev {
    Approve,
    Reject,
    Cancel,
    Activate,
    Complete,
    Expire,
    Revoke,
}

const EVENTS: [Ev; 7] = [
    Ev::Approve,
    Ev::Reject,
    Ev::Cancel,
    Ev::Activate,
    Ev::Complete,
    Ev::Expire,
    Ev::Revoke,
];

fn fire(
    w: &World,
    r: &WorkRequest,
    ev: Ev,
    at: Timestamp,
) -> Result<RequestStatus, TransitionError> {
    let ctx = RuleContext {
        policy: &w.policy,
        vendor: &w.vendor,
        now: at,
        zone: &w.zone,
        credentials: &[],
    };
    let event = match ev {
        Ev::Approve => RequestEvent::Approve {
            approver: &w.approver,
            comment: None,
        },
        Ev::Reject => RequestEvent::Reject {
            approver: &w.approver,
            comment: None,
        },
        Ev::Cancel => RequestEvent::Cancel { by: r.requester },
        Ev::Activate => RequestEvent::Activate,
        Ev::Complete => RequestEvent::Complete { by: r.requester },
        Ev::Expire => RequestEvent::Expire,
        Ev::Revoke => RequestEvent::Revoke { by: &w.approver },
    };
    r.apply(&event, &ctx).map(|tr| tr.status)
}

#[test]
fn state_machine_table_for_ordinary_requests() {
    use RequestStatus as S;
    let w = world();
    // Expire needs the window to have ended; everything else happens inside it.
    let after = t("2026-11-25T05:00:00Z");
    let expected = |from: S, ev: Ev| -> Option<S> {
        match (from, ev) {
            (S::Submitted, Ev::Approve) => Some(S::Approved),
            (S::Submitted, Ev::Reject) => Some(S::Rejected),
            (S::Submitted | S::Approved, Ev::Cancel) => Some(S::Cancelled),
            (S::Approved | S::Active, Ev::Activate) => Some(S::Active),
            (S::Active, Ev::Complete) => Some(S::Completed),
            (S::Submitted | S::Approved | S::Active, Ev::Expire) => Some(S::Expired),
            (S::Approved | S::Active, Ev::Revoke) => Some(S::Revoked),
            _ => None,
        }
    };
    let mut checked = 0;
    for from in RequestStatus::ALL {
        for ev in EVENTS {
            let r = request(&w.engineer, &w.target, AccessLevel::Reference, from);
            let at = if ev == Ev::Expire { after } else { now() };
            let got = fire(&w, &r, ev, at).ok();
            assert_eq!(got, expected(from, ev), "{from:?} --{ev:?}-->");
            checked += 1;
        }
    }
    assert_eq!(checked, 8 * 7);
}

#[test]
fn final_states_refuse_everything_with_a_readable_reason() {
    let w = world();
    let r = request(
        &w.engineer,
        &w.target,
        AccessLevel::Change,
        RequestStatus::Rejected,
    );
    let err = fire(&w, &r, Ev::Approve, now()).unwrap_err();
    assert_eq!(err.to_string(), "request R-12 is already rejected");
}

#[test]
fn the_requester_can_never_decide_their_own_request() {
    let w = world();
    // Even an approver who filed a request on a vendor's behalf (modelled as the requester).
    let mut r = request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Submitted,
    );
    r.requester = w.approver.id;
    let err = fire(&w, &r, Ev::Approve, now()).unwrap_err();
    assert!(matches!(err, TransitionError::SelfApproval { number: 12 }));
    let err = fire(&w, &r, Ev::Reject, now()).unwrap_err();
    assert!(matches!(err, TransitionError::SelfApproval { .. }));
}

#[test]
fn whoever_issued_the_requesters_credentials_recently_cannot_approve() {
    use sekisho_domain::user::{CredentialIssue, CredentialKind};
    let w = world();
    let r = request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Submitted,
    );
    let other = user(Role::Approver, None);
    let approve = |credentials: &[CredentialIssue], who: &User, at: Timestamp| {
        let ctx = RuleContext {
            policy: &w.policy,
            vendor: &w.vendor,
            now: at,
            zone: &w.zone,
            credentials,
        };
        r.apply(
            &RequestEvent::Approve {
                approver: who,
                comment: None,
            },
            &ctx,
        )
    };
    for kind in CredentialKind::ALL {
        let issued = [CredentialIssue {
            user: w.engineer.id,
            actor: w.approver.id,
            kind,
            at: t("2026-11-20T00:00:00Z"),
        }];
        let err = approve(&issued, &w.approver, now()).unwrap_err();
        assert!(
            matches!(err, TransitionError::IssuedCredentials { number: 12, kind: k, .. } if k == kind),
            "{err:?}"
        );
        assert!(
            err.to_string().ends_with(
                "this engineer on 2026-11-20: someone else must approve request R-12 (separation of duties)"
            ),
            "{err}"
        );
        // Someone else may; and the issuer may again once the window has passed.
        assert!(approve(&issued, &other, now()).is_ok());
        let later = t("2026-11-20T00:00:00Z") + w.policy.credential_separation;
        let later_request = WorkRequest {
            window: sekisho_domain::request::Window {
                start: later,
                end: later + SignedDuration::from_hours(1),
            },
            ..r.clone()
        };
        let ctx = RuleContext {
            policy: &w.policy,
            vendor: &w.vendor,
            now: later,
            zone: &w.zone,
            credentials: &issued,
        };
        let ok = later_request.apply(
            &RequestEvent::Approve {
                approver: &w.approver,
                comment: None,
            },
            &ctx,
        );
        assert!(ok.is_ok(), "{ok:?}");
    }
    // Credentials of another engineer do not matter; a zero window turns the rule off.
    let elsewhere = [CredentialIssue {
        user: w.approver.id,
        actor: w.approver.id,
        kind: CredentialKind::SshKey,
        at: now(),
    }];
    assert!(approve(&elsewhere, &w.approver, now()).is_ok());
}

#[test]
fn vendors_and_auditors_cannot_approve() {
    let w = world();
    let r = request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Submitted,
    );
    let ctx = RuleContext {
        policy: &w.policy,
        vendor: &w.vendor,
        now: now(),
        zone: &w.zone,
        credentials: &[],
    };
    for role in [Role::Vendor, Role::Auditor] {
        let other = user(role, Some(w.vendor.id));
        let err = r
            .apply(
                &RequestEvent::Approve {
                    approver: &other,
                    comment: None,
                },
                &ctx,
            )
            .unwrap_err();
        assert_eq!(err, TransitionError::NotAnApprover, "{role}");
    }
}

#[test]
fn change_requests_need_n_distinct_approvers() {
    let mut w = world();
    w.policy.approvals_for_change = 2;
    let ctx = RuleContext {
        policy: &w.policy,
        vendor: &w.vendor,
        now: now(),
        zone: &w.zone,
        credentials: &[],
    };
    let mut r = request(
        &w.engineer,
        &w.target,
        AccessLevel::Change,
        RequestStatus::Submitted,
    );
    let approve = |r: &WorkRequest, who: &User| {
        r.apply(
            &RequestEvent::Approve {
                approver: who,
                comment: Some("ok".into()),
            },
            &ctx,
        )
    };
    let first = approve(&r, &w.approver).unwrap();
    assert_eq!(
        first.status,
        RequestStatus::Submitted,
        "one of two approvals"
    );
    r.approvals.push(first.record.unwrap());
    assert_eq!(
        r.approval_state(&w.policy),
        ApprovalState::Pending { have: 1, need: 2 }
    );
    // The same approver cannot count twice.
    assert_eq!(
        approve(&r, &w.approver).unwrap_err(),
        TransitionError::AlreadyApproved { number: 12 }
    );
    let second = approve(&r, &w.approver2).unwrap();
    assert_eq!(second.status, RequestStatus::Approved);
    // Reference requests need only one, whatever the policy says for change.
    let r = request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Submitted,
    );
    assert_eq!(
        approve(&r, &w.approver).unwrap().status,
        RequestStatus::Approved
    );
}

#[test]
fn an_unqualified_vendor_cannot_have_requests_approved() {
    let mut w = world();
    w.vendor.attestation.as_mut().unwrap().expires_at = t("2026-10-01T00:00:00Z");
    let r = request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Submitted,
    );
    let err = fire(&w, &r, Ev::Approve, now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "vendor Acme Medical's security attestation expired on 2026-10-01"
    );
    let mut w = world();
    w.vendor.attestation.as_mut().unwrap().answers[0].met = false;
    let err = fire(&w, &r, Ev::Approve, now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "vendor Acme Medical's security attestation does not meet \"MFA on engineer accounts\""
    );
    let mut w = world();
    w.vendor.status = VendorStatus::Suspended;
    let err = fire(&w, &r, Ev::Approve, now()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "vendor Acme Medical is suspended and cannot have requests approved"
    );
}

#[test]
fn emergency_requests_activate_before_approval_only_when_policy_allows() {
    let mut w = world();
    let mut r = request(
        &w.engineer,
        &w.target,
        AccessLevel::Change,
        RequestStatus::Submitted,
    );
    r.emergency = true;
    assert!(matches!(
        fire(&w, &r, Ev::Activate, now()),
        Err(TransitionError::EmergencyDisabled { .. })
    ));
    w.policy.emergency_access = true;
    assert_eq!(fire(&w, &r, Ev::Activate, now()), Ok(RequestStatus::Active));
    // Once active it is approved after the fact: recorded, status unchanged, still flagged.
    r.status = RequestStatus::Active;
    assert_eq!(fire(&w, &r, Ev::Approve, now()), Ok(RequestStatus::Active));
    // Also after completion.
    r.status = RequestStatus::Completed;
    assert_eq!(
        fire(&w, &r, Ev::Approve, now()),
        Ok(RequestStatus::Completed)
    );
    // Rejecting emergency work in progress stops it.
    r.status = RequestStatus::Active;
    assert_eq!(fire(&w, &r, Ev::Reject, now()), Ok(RequestStatus::Revoked));
}

#[test]
fn emergency_requests_become_overdue_after_the_deadline() {
    let w = world();
    let mut r = request(
        &w.engineer,
        &w.target,
        AccessLevel::Change,
        RequestStatus::Active,
    );
    r.emergency = true;
    let deadline = r.created_at + w.policy.emergency_approval_deadline;
    assert!(!r.is_overdue(&w.policy, deadline));
    assert!(r.is_overdue(&w.policy, deadline + SignedDuration::from_secs(1)));
    r.approvals.push(sekisho_domain::request::Approval {
        approver: w.approver.id,
        verdict: Verdict::Approve,
        comment: None,
        at: now(),
    });
    assert!(!r.is_overdue(&w.policy, deadline + SignedDuration::from_hours(1)));
}

// ---------------------------------------------------------------------------------------
// authorize: one test per reason, with the message the vendor reads.

#[test]
fn a_vendor_not_assigned_to_the_target_is_refused_before_its_requests_are_looked_at() {
    let w = world();
    let r = [request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Approved,
    )];
    let mut q = query(&w, &r, ChannelKind::Ssh);
    q.assignment = None;
    let d = authorize(&q);
    assert!(
        matches!(&d, Decision::Deny(r) if r.code() == Code::NotAssigned),
        "{d:?}"
    );
    assert_eq!(
        deny_message(d, &w.zone),
        "your vendor is not assigned to pacs; the hospital's IT department assigns vendors to the systems they maintain"
    );
}

#[test]
fn an_ended_contract_refuses_even_an_approved_request() {
    let mut w = world();
    w.assignment.ends_at = Some(now());
    let r = [request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Approved,
    )];
    let d = authorize(&query(&w, &r, ChannelKind::Ssh));
    assert!(
        matches!(&d, Decision::Deny(r) if r.code() == Code::ContractEnded),
        "{d:?}"
    );
    assert!(
        deny_message(d, &w.zone)
            .starts_with("your vendor's maintenance contract for pacs ended on 2026-"),
    );
}

#[test]
fn no_request_at_all() {
    let w = world();
    let msg = deny_message(authorize(&query(&w, &[], ChannelKind::Ssh)), &w.zone);
    assert!(
        msg.starts_with("no approved request for pacs covers 10:32 JST; file one with"),
        "{msg}"
    );
}

#[test]
fn pending_request_is_named() {
    let w = world();
    let r = [request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Submitted,
    )];
    let msg = deny_message(authorize(&query(&w, &r, ChannelKind::Ssh)), &w.zone);
    assert_eq!(msg, "request R-12 for pacs is pending approval");
}

#[test]
fn window_not_yet_open_names_the_opening_time() {
    let w = world();
    let mut r = request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Approved,
    );
    r.window.start = t("2026-11-25T04:00:00Z");
    r.window.end = t("2026-11-25T06:00:00Z");
    let msg = deny_message(authorize(&query(&w, &[r], ChannelKind::Ssh)), &w.zone);
    assert_eq!(
        msg,
        "request R-12 for pacs is approved, but its window opens at 2026-11-25 13:00 JST"
    );
}

#[test]
fn approved_request_in_window_allows_the_level_account() {
    let w = world();
    let r = [request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Approved,
    )];
    match authorize(&query(&w, &r, ChannelKind::Ssh)) {
        Decision::Allow(g) => {
            assert_eq!(g.account, "maint-ro");
            assert_eq!(g.level, AccessLevel::Reference);
            assert_eq!(g.window_end, r[0].window.end);
        }
        d => panic!("{d:?}"),
    }
    let c = [request(
        &w.engineer,
        &w.target,
        AccessLevel::Change,
        RequestStatus::Active,
    )];
    match authorize(&query(&w, &c, ChannelKind::Ssh)) {
        Decision::Allow(g) => assert_eq!(g.account, "maint-rw"),
        d => panic!("{d:?}"),
    }
}

#[test]
fn window_end_is_exclusive() {
    let w = world();
    let r = [request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Approved,
    )];
    let mut q = query(&w, &r, ChannelKind::Ssh);
    q.now = r[0].window.end;
    assert!(!authorize(&q).is_allowed());
    q.now = r[0].window.end - SignedDuration::from_micros(1);
    assert!(authorize(&q).is_allowed());
}

#[test]
fn disabled_expired_and_staff_accounts_are_refused() {
    let mut w = world();
    let r = [request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Approved,
    )];
    w.engineer.status = UserStatus::Disabled;
    let name = w.engineer.username.clone();
    assert_eq!(
        deny_message(authorize(&query(&w, &r, ChannelKind::Ssh)), &w.zone),
        format!("account {name} is disabled")
    );
    w.engineer.status = UserStatus::Active;
    w.engineer.expires_at = Some(t("2026-11-01T00:00:00Z"));
    assert_eq!(
        deny_message(authorize(&query(&w, &r, ChannelKind::Ssh)), &w.zone),
        format!("account {name} expired on 2026-11-01")
    );
    w.engineer.expires_at = None;
    w.engineer.role = Role::Admin;
    assert!(matches!(
        authorize(&query(&w, &r, ChannelKind::Ssh)),
        Decision::Deny(DenyReason::NotAVendorUser { .. })
    ));
}

#[test]
fn vendor_state_and_attestation_are_checked_at_connection_time() {
    let mut w = world();
    let r = [request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Approved,
    )];
    w.vendor.status = VendorStatus::Suspended;
    assert_eq!(
        deny_message(authorize(&query(&w, &r, ChannelKind::Ssh)), &w.zone),
        "vendor Acme Medical is suspended"
    );
    w.vendor.status = VendorStatus::Active;
    w.vendor.attestation.as_mut().unwrap().expires_at = t("2026-10-01T00:00:00Z");
    assert_eq!(
        deny_message(authorize(&query(&w, &r, ChannelKind::Ssh)), &w.zone),
        "vendor Acme Medical's security attestation expired on 2026-10-01"
    );
    w.vendor.attestation = None;
    assert_eq!(
        deny_message(authorize(&query(&w, &r, ChannelKind::Ssh)), &w.zone),
        "vendor Acme Medical's security attestation is missing"
    );
    // A vendor record that is not the user's own does not count.
    let other = vendor(&w.policy);
    let mut q = query(&w, &r, ChannelKind::Ssh);
    q.vendor = Some(&other);
    assert_eq!(authorize(&q), Decision::Deny(DenyReason::VendorUnknown));
}

#[test]
fn access_level_limits_uploads_forwarding_and_ports() {
    let w = world();
    let reference = [request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Approved,
    )];
    let change = [request(
        &w.engineer,
        &w.target,
        AccessLevel::Change,
        RequestStatus::Approved,
    )];
    let deny = |rs: &[WorkRequest], ch| deny_message(authorize(&query(&w, rs, ch)), &w.zone);
    let allow = |rs: &[WorkRequest], ch| authorize(&query(&w, rs, ch)).is_allowed();
    assert_eq!(
        deny(&reference, ChannelKind::FileUpload),
        "file upload to pacs is not allowed at reference level"
    );
    assert!(allow(&change, ChannelKind::FileUpload));
    assert_eq!(
        deny(&reference, ChannelKind::PortForward { port: 443 }),
        "port forwarding to pacs is not allowed at reference level"
    );
    assert!(allow(&change, ChannelKind::PortForward { port: 104 }));
    assert_eq!(
        deny(&change, ChannelKind::PortForward { port: 5432 }),
        "port 5432 of pacs is not allowed at change level (allowed: 443, 104)"
    );
    assert!(allow(&reference, ChannelKind::Tunnel { port: 443 }));
    assert!(!allow(&reference, ChannelKind::Tunnel { port: 104 }));
    for ch in [
        ChannelKind::RemoteForward,
        ChannelKind::AgentForward,
        ChannelKind::X11Forward,
    ] {
        assert!(!allow(&change, ch), "{ch:?}");
    }
}

#[test]
fn forwarding_goes_only_to_the_target_itself_on_an_allowed_port() {
    let w = world();
    let zone = &w.zone;
    let refused = |level, host: &str, port| match check_forward(&w.target, level, host, port) {
        Ok(p) => panic!("{host}:{port} allowed as {p}"),
        Err(r) => (r.code().as_str(), r.message(zone)),
    };
    for host in ["127.0.0.1", "pacs", "localhost"] {
        assert_eq!(
            check_forward(&w.target, AccessLevel::Change, host, 104),
            Ok(104)
        );
    }
    assert_eq!(
        refused(AccessLevel::Change, "10.0.0.9", 104),
        (
            "forward_host_not_allowed",
            "forwarding goes only to pacs itself, not to 10.0.0.9".into()
        )
    );
    assert_eq!(
        refused(AccessLevel::Change, "127.0.0.1", 5432).0,
        "port_not_allowed"
    );
    // A port beyond 16 bits is no port of the target.
    assert_eq!(
        refused(AccessLevel::Change, "127.0.0.1", 65_536 + 104).0,
        "port_not_allowed"
    );
    assert_eq!(
        refused(AccessLevel::Reference, "127.0.0.1", 443).0,
        "port_forwarding_not_allowed"
    );
    // A hostile host name is cut and escaped before it reaches the audit log.
    let long = format!("{}\u{202e}", "h".repeat(10_000));
    let (_, message) = refused(AccessLevel::Change, &long, 104);
    assert!(message.len() < 200, "{message}");
    let mut w = w;
    w.target.change = None;
    assert_eq!(
        check_forward(&w.target, AccessLevel::Change, "pacs", 104)
            .unwrap_err()
            .code()
            .as_str(),
        "level_not_offered"
    );
}

#[test]
fn a_level_the_target_does_not_offer_is_refused() {
    let mut w = world();
    w.target.change = None;
    let r = [request(
        &w.engineer,
        &w.target,
        AccessLevel::Change,
        RequestStatus::Approved,
    )];
    assert_eq!(
        deny_message(authorize(&query(&w, &r, ChannelKind::Ssh)), &w.zone),
        "pacs offers no change access"
    );
}

#[test]
fn another_users_request_does_not_help() {
    let w = world();
    let colleague = user(Role::Vendor, Some(w.vendor.id));
    let r = [request(
        &colleague,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Approved,
    )];
    assert!(matches!(
        authorize(&query(&w, &r, ChannelKind::Ssh)),
        Decision::Deny(DenyReason::NoRequest { .. })
    ));
}

#[test]
fn revoked_request_in_window_is_named() {
    let w = world();
    let r = [request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Revoked,
    )];
    assert_eq!(
        deny_message(authorize(&query(&w, &r, ChannelKind::Ssh)), &w.zone),
        "request R-12 for pacs is revoked"
    );
}

// ---------------------------------------------------------------------------------------
// Properties over arbitrary worlds.

/// Guards the generator: a property that never reaches `Allow` proves nothing.
#[test]
fn the_authorize_property_reaches_the_allow_path() {
    let mut runner = proptest::test_runner::TestRunner::deterministic();
    let mut allows = 0;
    for _ in 0..500 {
        let c = case().new_tree(&mut runner).unwrap().current();
        if c.requests.iter().any(|(st, _, _, start, len)| {
            matches!(st, RequestStatus::Approved | RequestStatus::Active)
                && *start <= c.now_offset
                && c.now_offset < start + len
        }) && c.vendor_status == VendorStatus::Active
            && c.attestation_met
            && !c.user_disabled
        {
            allows += 1;
        }
    }
    assert!(
        allows > 25,
        "only {allows} of 500 generated cases can be allowed"
    );
}

fn status() -> impl Strategy<Value = RequestStatus> {
    prop::sample::select(RequestStatus::ALL.to_vec())
}

fn channel() -> impl Strategy<Value = ChannelKind> {
    prop_oneof![
        Just(ChannelKind::Ssh),
        Just(ChannelKind::FileUpload),
        (0u16..2000).prop_map(|port| ChannelKind::PortForward { port }),
        (0u16..2000).prop_map(|port| ChannelKind::Tunnel { port }),
        Just(ChannelKind::RemoteForward),
        Just(ChannelKind::AgentForward),
        Just(ChannelKind::X11Forward),
    ]
}

#[derive(Clone, Debug)]
struct Case {
    requests: Vec<(RequestStatus, bool, bool, i64, i64)>, // status, change?, emergency, start offset min, length min
    channel: ChannelKind,
    now_offset: i64,
    user_disabled: bool,
    user_expiry: Option<i64>,
    vendor_status: VendorStatus,
    attestation_expiry: i64,
    attestation_met: bool,
    emergency_access: bool,
    ref_upload: bool,
    ref_forward: bool,
}

fn case() -> impl Strategy<Value = Case> {
    (
        prop::collection::vec((status(), any::<bool>(), any::<bool>(), -600i64..300, 1i64..900), 0..5),
        channel(),
        -700i64..700,
        // Weighted towards a qualified user and vendor, so the allow path is exercised often.
        prop::bool::weighted(0.1),
        prop::option::weighted(0.2, -700i64..700),
        prop_oneof![8 => Just(VendorStatus::Active), 1 => Just(VendorStatus::Suspended), 1 => Just(VendorStatus::Offboarded)],
        prop_oneof![9 => 0i64..5000, 1 => -700i64..0],
        prop::bool::weighted(0.9),
        (any::<bool>(), any::<bool>(), any::<bool>()),
    )
        .prop_map(
            |(requests, channel, now_offset, user_disabled, user_expiry, vendor_status, attestation_expiry, attestation_met, (emergency_access, ref_upload, ref_forward))| Case {
                requests,
                channel,
                now_offset,
                user_disabled,
                user_expiry,
                vendor_status,
                attestation_expiry,
                attestation_met,
                emergency_access,
                ref_upload,
                ref_forward,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// The invariants of `authorize`: whenever it allows, every precondition holds.
    #[test]
    fn authorize_allows_only_within_every_rule(c in case()) {
        let base = now();
        let mut w = world();
        w.policy.emergency_access = c.emergency_access;
        w.target.reference.as_mut().unwrap().file_upload = c.ref_upload;
        w.target.reference.as_mut().unwrap().port_forwarding = c.ref_forward;
        if c.user_disabled { w.engineer.status = UserStatus::Disabled; }
        w.engineer.expires_at = c.user_expiry.map(|m| base + SignedDuration::from_mins(m));
        w.vendor.status = c.vendor_status;
        {
            let a = w.vendor.attestation.as_mut().unwrap();
            a.expires_at = base + SignedDuration::from_mins(c.attestation_expiry);
            a.answers[1].met = c.attestation_met;
        }
        let requests: Vec<WorkRequest> = c.requests.iter().enumerate().map(|(i, (st, change, emergency, start, len))| {
            let mut r = request(&w.engineer, &w.target, if *change { AccessLevel::Change } else { AccessLevel::Reference }, *st);
            r.number = i as i64 + 1;
            r.emergency = *emergency;
            r.window.start = base + SignedDuration::from_mins(*start);
            r.window.end = r.window.start + SignedDuration::from_mins(*len);
            r
        }).collect();
        let mut q = query(&w, &requests, c.channel);
        q.now = base + SignedDuration::from_mins(c.now_offset);
        let decision = authorize(&q);
        match &decision {
            Decision::Allow(g) => {
                let r = requests.iter().find(|r| r.id == g.request).unwrap();
                prop_assert!(r.window.contains(q.now), "outside the window");
                let status_ok = matches!(r.status, RequestStatus::Approved | RequestStatus::Active)
                    || (r.status == RequestStatus::Submitted && r.emergency && w.policy.emergency_access);
                prop_assert!(status_ok, "request {:?} is not usable", r.status);
                prop_assert_eq!(g.level, r.level);
                prop_assert!(w.engineer.is_usable(q.now));
                prop_assert_eq!(w.vendor.status, VendorStatus::Active);
                prop_assert!(w.vendor.attestation_problem(&w.policy.checklist, q.now).is_none());
                let lp = w.target.level(r.level).unwrap();
                prop_assert_eq!(&g.account, &lp.account);
                match c.channel {
                    ChannelKind::Ssh => prop_assert!(lp.ssh),
                    ChannelKind::FileUpload => prop_assert!(lp.file_upload),
                    ChannelKind::PortForward { port } => prop_assert!(lp.port_forwarding && lp.allowed_ports.contains(&port)),
                    ChannelKind::Tunnel { port } => prop_assert!(lp.allowed_ports.contains(&port)),
                    other => prop_assert!(false, "{:?} was allowed", other),
                }
            }
            Decision::Deny(reason) => {
                // Every denial renders to a non-empty sentence and has a code that reads
                // back from its name.
                prop_assert!(!reason.message(&w.zone).is_empty());
                let code = reason.code();
                prop_assert_eq!(sekisho_domain::refusal::Code::from_name(code.as_str()), Some(code));
            }
        }
    }

    /// Random event sequences never break the state machine's invariants.
    #[test]
    fn state_machine_invariants_hold_over_any_sequence(
        events in prop::collection::vec((0usize..7, 0usize..4, -300i64..900), 0..25),
        change in any::<bool>(),
        emergency in any::<bool>(),
        emergency_access in any::<bool>(),
        n in 1u8..4,
    ) {
        let mut w = world();
        w.policy.emergency_access = emergency_access;
        w.policy.approvals_for_change = n;
        let deciders = [user(Role::Approver, None), user(Role::Approver, None), user(Role::Admin, None), w.engineer.clone()];
        let level = if change { AccessLevel::Change } else { AccessLevel::Reference };
        let mut r = request(&w.engineer, &w.target, level, RequestStatus::Submitted);
        r.emergency = emergency;
        let mut was_active_unapproved = false;
        for (ev, who, minutes) in events {
            let at = now() + SignedDuration::from_mins(minutes);
            let ctx = RuleContext { policy: &w.policy, vendor: &w.vendor, now: at, zone: &w.zone, credentials: &[] };
            let decider = &deciders[who];
            let event = match EVENTS[ev] {
                Ev::Approve => RequestEvent::Approve { approver: decider, comment: None },
                Ev::Reject => RequestEvent::Reject { approver: decider, comment: None },
                Ev::Cancel => RequestEvent::Cancel { by: decider.id },
                Ev::Activate => RequestEvent::Activate,
                Ev::Complete => RequestEvent::Complete { by: decider.id },
                Ev::Expire => RequestEvent::Expire,
                Ev::Revoke => RequestEvent::Revoke { by: decider },
            };
            let before = r.status;
            if let Ok(tr) = r.apply(&event, &ctx) {
                // Final states never change status.
                if before.is_final() { prop_assert_eq!(tr.status, before); }
                if tr.status == RequestStatus::Active && before == RequestStatus::Submitted {
                    prop_assert!(r.emergency && w.policy.emergency_access, "non-emergency activated unapproved");
                    was_active_unapproved = true;
                }
                if let Some(rec) = &tr.record {
                    prop_assert_ne!(rec.approver, r.requester, "requester decided their own request");
                }
                if tr.status == RequestStatus::Approved && before != RequestStatus::Approved {
                    let mut approvers: Vec<_> = r.approvals.iter().filter(|a| a.verdict == Verdict::Approve).map(|a| a.approver).collect();
                    approvers.extend(tr.record.iter().map(|a| a.approver));
                    approvers.sort(); approvers.dedup();
                    prop_assert!(approvers.len() >= usize::from(r.approvals_needed(&w.policy)));
                }
                r.status = tr.status;
                r.approvals.extend(tr.record);
            }
        }
        // Emergency work that ran unapproved stays flagged.
        if was_active_unapproved { prop_assert!(r.emergency); }
    }
}

#[test]
fn without_a_level_asked_for_the_least_privileged_request_that_permits_the_channel_wins() {
    let w = world();
    let mut reference = request(
        &w.engineer,
        &w.target,
        AccessLevel::Reference,
        RequestStatus::Approved,
    );
    reference.number = 1;
    let mut change = request(
        &w.engineer,
        &w.target,
        AccessLevel::Change,
        RequestStatus::Approved,
    );
    change.number = 2; // newer: it used to win
    let both = [reference.clone(), change.clone()];
    let level = |d: Decision| match d {
        Decision::Allow(g) => g.level,
        Decision::Deny(r) => panic!("denied: {r:?}"),
    };
    assert_eq!(
        level(authorize(&query(&w, &both, ChannelKind::Ssh))),
        AccessLevel::Reference
    );
    // Asked for explicitly, change it is.
    let mut q = query(&w, &both, ChannelKind::Ssh);
    q.level = Some(AccessLevel::Change);
    assert_eq!(level(authorize(&q)), AccessLevel::Change);
    // A port only the change level may forward to: the change request carries it.
    assert_eq!(
        level(authorize(&query(
            &w,
            &both,
            ChannelKind::PortForward { port: 104 }
        ))),
        AccessLevel::Change
    );
    // No level permits it: the least privileged explains the refusal.
    let denied = authorize(&query(&w, &both, ChannelKind::PortForward { port: 5432 }));
    assert!(
        matches!(
            denied,
            Decision::Deny(DenyReason::PortForwardingNotAllowed {
                level: AccessLevel::Reference,
                ..
            })
        ),
        "{denied:?}"
    );
}
