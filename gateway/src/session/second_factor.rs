//! The second factor of a vendor engineer's session (issue #17), for every transport: stock
//! SSH asks for it by keyboard-interactive after the key, the designated client sends it
//! with its first `Open` after the certificate.
//!
//! The rules are the API login's: an account with a second factor is always asked for it; an
//! account whose role is in `[policy] mfa_required` and has none is refused until it enrols;
//! a code is good once (a replay within its period is refused); wrong codes count toward the
//! shared [`sekisho_store::throttle::LoginThrottle`] (the address, and the account's second
//! factor from every address). Every refusal is audited with its code.

use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::refusal::{Channel, Code, Refusal};
use sekisho_domain::user::User;
use sekisho_store::audit::NewAuditEvent;
use sekisho_store::mfa::CodeVerdict;

use super::Shared;

/// What a session start needs besides the first factor.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Needed {
    /// Nothing: the account has no second factor and its role needs none.
    Nothing,
    /// The account's one-time code.
    Code,
}

/// The prompt a person reads, in both languages.
pub const PROMPT: &str = "ワンタイムコード / One-time code: ";

/// Whether `user` must give a one-time code; refused if their role needs a second factor
/// they have not enrolled, or if the database does not answer (fail closed).
pub async fn needed(shared: &Shared, user: &User) -> Result<Needed, Refusal> {
    let state = shared.store.mfa_state(user.id).await.map_err(|e| {
        tracing::error!(error = %e, "cannot read a second factor; refusing the session");
        Refusal::new(
            Code::DatabaseUnavailable,
            "the gateway cannot check your second factor right now; try again later",
        )
    })?;
    if state.enabled {
        return Ok(Needed::Code);
    }
    if shared.mfa_required.contains(&user.role) {
        return Err(Refusal::new(
            Code::MfaEnrollmentRequired,
            format!(
                "{} must use a second factor: log in to the Sekisho console once to enrol an authenticator app, then connect again",
                user.username
            ),
        ));
    }
    Ok(Needed::Nothing)
}

/// The second factor of a session that starts with the code given at once (the designated
/// client's `Open`): needed or not, then checked; every refusal audited.
pub async fn at_session_start(
    shared: &Shared,
    user: &User,
    code: Option<&str>,
    peer: &str,
    channel: Channel,
) -> Result<(), Refusal> {
    match needed(shared, user).await {
        Ok(Needed::Nothing) => Ok(()),
        Ok(Needed::Code) => check(shared, user, code, peer, channel).await,
        Err(refusal) => {
            super::admit::audit_denied(shared, user, None, channel, &refusal, peer).await;
            Err(refusal)
        }
    }
}

/// Checks `code` for `user` (whose first factor is proved), connecting from `peer`. A
/// missing, wrong, replayed or held-back code is audited (through the failure log, so a flood
/// of them is summarised) and refused; so is one the database cannot check (fail closed).
pub async fn check(
    shared: &Shared,
    user: &User,
    code: Option<&str>,
    peer: &str,
    channel: Channel,
) -> Result<(), Refusal> {
    let refused = match code.map(str::trim).filter(|c| !c.is_empty()) {
        Some(code) => match verify(shared, user, code, peer).await {
            None => return Ok(()),
            Some(refusal) => refusal,
        },
        None => Refusal::new(
            Code::MfaRequired,
            "this account needs its one-time code: the 6 digits of its authenticator app, or a recovery code",
        ),
    };
    let ev = NewAuditEvent {
        actor: Actor::user(user),
        outcome: Outcome::Denied,
        vendor_id: user.vendor_id,
        source_addr: Some(peer.to_owned()),
        reason: Some(refused.message.clone()),
        event: AuditEvent::AccessDenied {
            target: None,
            request: None,
            channel,
            code: refused.code,
        },
    };
    if let Err(e) = shared.failures.record(channel, ev).await {
        tracing::error!(error = %e, "cannot audit a refused one-time code");
    }
    Err(refused)
}

/// Verifies a code that was given: `None` when it is accepted (and used up), else why not.
async fn verify(shared: &Shared, user: &User, code: &str, peer: &str) -> Option<Refusal> {
    let source = address(peer);
    let verdict = shared
        .store
        .second_factor(
            &shared.throttle,
            user,
            &shared.at_rest,
            code,
            Some(&source),
            Some(peer),
        )
        .await;
    let (refusal, slowdown) = match verdict {
        Ok(CodeVerdict::Accepted) => return None,
        Ok(CodeVerdict::Held(wait)) => {
            return Some(Refusal::new(
                Code::TooManyFailures,
                format!(
                    "too many wrong one-time codes; try again in {} s",
                    wait.as_secs().max(1)
                ),
            ));
        }
        Ok(CodeVerdict::Refused {
            replayed: true,
            slowdown,
        }) => (
            Refusal::new(
                Code::OneTimeCodeReplayed,
                "this one-time code has been used already: wait for the next one",
            ),
            slowdown,
        ),
        Ok(CodeVerdict::Refused {
            replayed: false,
            slowdown,
        }) => (
            Refusal::new(Code::WrongOneTimeCode, "wrong one-time code"),
            slowdown,
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot check a one-time code; refusing the session");
            return Some(Refusal::new(
                Code::DatabaseUnavailable,
                "the gateway cannot check your one-time code right now; try again later",
            ));
        }
    };
    tokio::time::sleep(slowdown).await;
    Some(refusal)
}

/// The address part of `peer` (`ip:port`), what the throttle counts.
fn address(peer: &str) -> String {
    peer.parse::<std::net::SocketAddr>()
        .map_or_else(|_| peer.to_owned(), |a| a.ip().to_string())
}
