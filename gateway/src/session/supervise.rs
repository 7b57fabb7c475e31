//! A live session's supervisor: it ends the session for the first of the window's end, an
//! event from the API (revocation, disabled account, suspended vendor, terminate), a failed
//! re-check of the rule and of the session's row (every 10 s, and at once when events from
//! other nodes may have been missed; fail closed), the vendor leaving, or shutdown, warns
//! the vendor before the window closes and writes live byte counts.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use sekisho_domain::authorize::{AccessQuery, Decision, authorize};
use sekisho_domain::session::SessionEnd;
use sekisho_store::StoreError;
use sekisho_store::events::GatewayEvent;
use sekisho_store::nodes::Standing;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use super::admit::{assignment_of, requests_for};
use super::{Link, Live, Shared};

/// How often a live session re-checks its permission against the database (covers other
/// gateway nodes' changes and a lagging event channel).
const RECHECK: Duration = Duration::from_secs(10);

/// Watches one session until it must end, then ends it. `vendor_gone` is cancelled when the
/// vendor's connection closes.
pub async fn supervise(
    live: Arc<Live>,
    shared: Arc<Shared>,
    link: Box<dyn Link>,
    vendor_gone: CancellationToken,
) {
    let mut events = shared.events.subscribe();
    let window_end = live.grant.window_end;
    let mut warnings = warning_times(window_end, &shared.warnings, Timestamp::now());
    let mut recheck = tokio::time::interval(RECHECK);
    recheck.tick().await;
    let mut progress = tokio::time::interval(super::progress::PERIOD);
    progress.tick().await;
    let mut noted = (0, 0);
    let zone = shared.zone.clone();
    let number = live.grant.request_number;
    let metrics = sekisho_metrics::get();
    let labels = sekisho_metrics::SessionLabels {
        transport: live.session.transport.as_str(),
        level: live.session.level.as_str(),
    };
    metrics.sessions_started.get_or_create(&labels).inc();
    metrics.sessions_live.get_or_create(&labels).inc();
    loop {
        let next_warning = warnings.first().copied();
        tokio::select! {
            () = live.ended.cancelled() => break,
            () = vendor_gone.cancelled() => live.end(SessionEnd::Closed, ""),
            () = shared.shutdown.cancelled() => live.end(SessionEnd::Aborted, "the gateway is shutting down"),
            () = sleep_until(window_end) => live.end(
                SessionEnd::WindowEnded,
                format!("the window of request R-{number} ended at {}", zone.time(window_end)),
            ),
            () = sleep_until_opt(next_warning.map(|(t, _)| t)) => {
                if let Some((_, minutes)) = warnings.first().copied() {
                    warnings.remove(0);
                    live.notices.send_replace(format!(
                        "the window of request R-{number} closes at {} ({}); this session will be closed then",
                        zone.time(window_end),
                        in_words(minutes),
                    ));
                }
            }
            ev = events.recv() => match ev {
                Ok(GatewayEvent::Recheck) => recheck_now(&live, &shared).await,
                Ok(ev) => if let Some((how, msg)) = affects(&live, &ev) { live.end(how, msg) },
                Err(RecvError::Lagged(_)) => recheck_now(&live, &shared).await,
                Err(RecvError::Closed) => live.end(SessionEnd::Aborted, "the gateway is shutting down"),
            },
            _ = recheck.tick() => recheck_now(&live, &shared).await,
            _ = progress.tick() => {
                let counts = live.bytes();
                if counts != noted {
                    noted = counts;
                    if let Some(batch) = shared.progress.note(live.session.id, counts.0, counts.1)
                        && let Err(e) = shared.store.sessions_progress(&batch).await
                    {
                        tracing::warn!(sessions = batch.len(), error = %e, "cannot store live sessions' byte counts");
                    }
                }
            }
        }
    }
    super::finish::finish(&live, &shared, link.as_ref(), &vendor_gone).await;
    metrics.sessions_live.get_or_create(&labels).dec();
    metrics
        .sessions_ended
        .get_or_create(&sekisho_metrics::EndLabels {
            how: live.reason().0.as_str(),
        })
        .inc();
}

/// The warnings still to give: `(when, minutes before the end)`, soonest first. A threshold
/// already passed at session start collapses into one immediate warning.
fn warning_times(end: Timestamp, minutes: &[u32], now: Timestamp) -> Vec<(Timestamp, u32)> {
    let mut sorted: Vec<u32> = minutes.to_vec();
    sorted.sort_unstable_by(|a, b| b.cmp(a));
    sorted.dedup();
    let at = |m: u32| end - jiff::SignedDuration::from_mins(i64::from(m));
    let mut out: Vec<(Timestamp, u32)> = sorted
        .iter()
        .filter(|m| at(**m) > now)
        .map(|m| (at(*m), *m))
        .collect();
    if let Some(passed) = sorted.iter().rev().find(|m| at(**m) <= now)
        && end > now
    {
        let left = u32::try_from(end.duration_since(now).as_mins()).unwrap_or(0);
        out.insert(0, (now, left.min(*passed)));
    }
    out
}

fn in_words(minutes: u32) -> String {
    match minutes {
        0 => "in less than a minute".into(),
        1 => "in 1 minute".into(),
        n => format!("in {n} minutes"),
    }
}

async fn sleep_until(t: Timestamp) {
    let left = t.duration_since(Timestamp::now());
    if let Ok(d) = Duration::try_from(left) {
        tokio::time::sleep(d).await;
    }
}

async fn sleep_until_opt(t: Option<Timestamp>) {
    match t {
        Some(t) => sleep_until(t).await,
        None => std::future::pending().await,
    }
}

/// Whether an event from the API ends this session, and how.
fn affects(live: &Live, ev: &GatewayEvent) -> Option<(SessionEnd, String)> {
    let s = &live.session;
    match ev {
        GatewayEvent::TerminateSession { session } if *session == s.id => Some((
            SessionEnd::Terminated,
            "an approver terminated this session".into(),
        )),
        GatewayEvent::RequestEnded { request } if *request == s.request_id => Some((
            SessionEnd::Revoked,
            format!("request R-{} was revoked", live.grant.request_number),
        )),
        GatewayEvent::UserDisabled { user } if *user == s.user_id => Some((
            SessionEnd::Revoked,
            format!("account {} was disabled", live.user.username),
        )),
        GatewayEvent::VendorBlocked { vendor } if *vendor == s.vendor_id => Some((
            SessionEnd::Revoked,
            "your vendor's access was suspended".into(),
        )),
        _ => None,
    }
}

/// Re-decides the session from the database; a denial (or a database failure: fail closed
/// after it persists) ends it.
async fn recheck_now(live: &Live, shared: &Shared) {
    match still_allowed(live, shared).await {
        Ok(None) => {}
        Ok(Some((how, reason))) => live.end(how, reason),
        Err(e) => {
            tracing::error!(session = %live.session.id, error = %e, "cannot re-check a live session; ending it (fail closed)");
            live.end(
                SessionEnd::Revoked,
                "the gateway cannot confirm your permission (database unavailable)",
            );
        }
    }
}

async fn still_allowed(
    live: &Live,
    shared: &Shared,
) -> Result<Option<(SessionEnd, String)>, StoreError> {
    let store = &shared.store;
    // An approver's terminate received by another node, or this session ended by another node
    // while this one was cut off from the database.
    match store.standing(live.session.id).await? {
        Standing::Live => {}
        Standing::TerminateRequested => {
            return Ok(Some((
                SessionEnd::Terminated,
                "an approver terminated this session".into(),
            )));
        }
        Standing::Ended => {
            return Ok(Some((
                SessionEnd::Aborted,
                "another gateway node ended this session while this one was unreachable".into(),
            )));
        }
    }
    let Some(user) = store.user(live.user.id).await? else {
        return Ok(Some((
            SessionEnd::Revoked,
            "your account no longer exists".into(),
        )));
    };
    let vendor = match user.vendor_id {
        Some(v) => store.vendor(v).await?,
        None => None,
    };
    let target = store
        .target(live.target.id)
        .await?
        .unwrap_or_else(|| live.target.clone());
    let assignment = assignment_of(shared, &user, &target).await?;
    let mut requests = requests_for(shared, &user, &target).await?;
    requests.retain(|r| r.id == live.grant.request);
    let decision = authorize(&AccessQuery {
        now: Timestamp::now(),
        user: &user,
        vendor: vendor.as_ref(),
        target: &target,
        assignment: assignment.as_ref(),
        requests: &requests,
        channel: live.channel,
        level: Some(live.grant.level),
        policy: &shared.policy,
    });
    Ok(match decision {
        Decision::Allow(_) => None,
        Decision::Deny(reason) => Some((SessionEnd::Revoked, reason.message(&shared.zone))),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warnings_are_scheduled_and_a_passed_one_is_given_at_once() {
        let end: Timestamp = "2026-11-25T10:00:00Z".parse().unwrap();
        let at = |s: &str| -> Timestamp { s.parse().unwrap() };
        assert_eq!(
            warning_times(end, &[1, 5], at("2026-11-25T09:00:00Z")),
            vec![
                (at("2026-11-25T09:55:00Z"), 5),
                (at("2026-11-25T09:59:00Z"), 1)
            ]
        );
        // Three minutes left: the 5-minute warning is given at once, the 1-minute one later.
        let now = at("2026-11-25T09:57:00Z");
        assert_eq!(
            warning_times(end, &[5, 1], now),
            vec![(now, 3), (at("2026-11-25T09:59:00Z"), 1)]
        );
        // Twenty seconds left.
        let now = at("2026-11-25T09:59:40Z");
        assert_eq!(warning_times(end, &[5, 1], now), vec![(now, 0)]);
        assert!(warning_times(end, &[5, 1], end).is_empty());
    }
}
