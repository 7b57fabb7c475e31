//! Sekisho's operational metrics (issue #19): one registry for the process, exposed by
//! `sekisho serve` at `[metrics] listen` in the OpenMetrics text format that Prometheus
//! scrapes. Names are `sekisho_…`; label values are the same words as the audit log's
//! (`reason` is a refusal's code, `channel` its channel), so a dashboard and the log agree.
//!
//! The crates that see an event count it here (the gateway its sessions and bytes, the
//! recorder its writes, the store its audit rows and queries); gauges that are the database's
//! to know (the notification backlog, the pool) are set by the scrape itself.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
pub use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::{Registry, Unit};

/// The media type of [`encode`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SessionLabels {
    /// `ssh` or `quic`.
    pub transport: &'static str,
    /// `reference` or `change`.
    pub level: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndLabels {
    /// How the session ended (`closed`, `window_end`, `terminated`, …).
    pub how: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// What was refused (`ssh`, `quic`, `port_forward`, `api_login`, …).
    pub channel: &'static str,
    /// The refusal's code (`outside_window`, `bad_password`, …).
    pub reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ChannelLabels {
    pub channel: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    /// `to_target` or `from_target`.
    pub direction: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    /// `success`, `denied` or `failure`.
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OpLabels {
    /// The database operation (`audit_append`, `admission`, `ping`).
    pub op: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PoolLabels {
    /// `idle` or `in_use`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct BuildLabels {
    pub version: &'static str,
}

type Timings<L> = Family<L, Histogram, fn() -> Histogram>;

/// 50 µs to about 1.6 s, doubling.
fn latency() -> Histogram {
    Histogram::new(exponential_buckets(0.000_05, 2.0, 16))
}

/// Every metric of the process.
pub struct Metrics {
    registry: Registry,
    pub sessions_live: Family<SessionLabels, Gauge>,
    pub sessions_started: Family<SessionLabels, Counter>,
    pub sessions_ended: Family<EndLabels, Counter>,
    pub refused: Family<RefusalLabels, Counter>,
    pub login_failures: Family<ChannelLabels, Counter>,
    pub relayed_bytes: Family<DirectionLabels, Counter>,
    pub recording_write: Histogram,
    pub recording_queue: Gauge,
    pub recording_failures: Counter,
    pub audit_events: Family<OutcomeLabels, Counter>,
    pub db_query: Timings<OpLabels>,
    pub db_connections: Family<PoolLabels, Gauge>,
    pub notifications_backlog: Gauge,
    pub clock_offset_ms: Gauge,
    build: Family<BuildLabels, Gauge>,
}

impl Metrics {
    fn new() -> Self {
        let mut r = Registry::default();
        let m = Self {
            registry: Registry::default(),
            sessions_live: Family::default(),
            sessions_started: Family::default(),
            sessions_ended: Family::default(),
            refused: Family::default(),
            login_failures: Family::default(),
            relayed_bytes: Family::default(),
            recording_write: latency(),
            recording_queue: Gauge::default(),
            recording_failures: Counter::default(),
            audit_events: Family::default(),
            db_query: Family::new_with_constructor(latency),
            db_connections: Family::default(),
            notifications_backlog: Gauge::default(),
            clock_offset_ms: Gauge::default(),
            build: Family::default(),
        };
        r.register(
            "sekisho_sessions_live",
            "Sessions relayed now, by transport and access level",
            m.sessions_live.clone(),
        );
        r.register(
            "sekisho_sessions_started",
            "Sessions admitted and started, by transport and access level",
            m.sessions_started.clone(),
        );
        r.register(
            "sekisho_sessions_ended",
            "Sessions ended, by how they ended",
            m.sessions_ended.clone(),
        );
        r.register(
            "sekisho_access_refused",
            "Refusals (every one audited), by channel and reason code",
            m.refused.clone(),
        );
        r.register(
            "sekisho_login_failures",
            "Failed logins and one-time codes, by channel",
            m.login_failures.clone(),
        );
        r.register_with_unit(
            "sekisho_relayed",
            "Bytes relayed between vendors and targets (all recorded), by direction",
            Unit::Bytes,
            m.relayed_bytes.clone(),
        );
        r.register_with_unit(
            "sekisho_recording_write",
            "Time to write one batch of a session's recording to disk",
            Unit::Seconds,
            m.recording_write.clone(),
        );
        r.register(
            "sekisho_recording_queue_depth",
            "Recording writes queued and not yet on disk, over all sessions",
            m.recording_queue.clone(),
        );
        r.register(
            "sekisho_recording_failures",
            "Recordings that failed (a full or broken disk), each ending its session",
            m.recording_failures.clone(),
        );
        r.register(
            "sekisho_audit_events",
            "Audit events appended to the chain by this node, by outcome",
            m.audit_events.clone(),
        );
        r.register_with_unit(
            "sekisho_db_query",
            "Database operation latency, by operation",
            Unit::Seconds,
            m.db_query.clone(),
        );
        r.register(
            "sekisho_db_connections",
            "Database pool connections, idle or in use (at the scrape)",
            m.db_connections.clone(),
        );
        r.register(
            "sekisho_notifications_backlog",
            "Notifications waiting to be delivered (at the scrape)",
            m.notifications_backlog.clone(),
        );
        r.register(
            "sekisho_clock_offset_milliseconds",
            "The clock's offset from the configured NTP servers at the last check",
            m.clock_offset_ms.clone(),
        );
        r.register(
            "sekisho_build_info",
            "The running version (always 1)",
            m.build.clone(),
        );
        m.build
            .get_or_create(&BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            })
            .set(1);
        Self { registry: r, ..m }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// The process's metrics.
pub fn get() -> &'static Metrics {
    &METRICS
}

/// The metrics in the OpenMetrics text format ([`CONTENT_TYPE`]).
pub fn encode() -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, &METRICS.registry);
    out
}

/// Times a database operation.
pub fn db_timed(op: &'static str, took: Duration) {
    METRICS
        .db_query
        .get_or_create(&OpLabels { op })
        .observe(took.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_exposed_with_their_labels_and_the_total_suffix() {
        let m = get();
        m.refused
            .get_or_create(&RefusalLabels {
                channel: "ssh",
                reason: "outside_window",
            })
            .inc();
        m.relayed_bytes
            .get_or_create(&DirectionLabels {
                direction: "to_target",
            })
            .inc_by(42);
        db_timed("ping", Duration::from_micros(120));
        let text = encode();
        assert!(
            text.contains(
                "sekisho_access_refused_total{channel=\"ssh\",reason=\"outside_window\"} 1"
            ),
            "{text}"
        );
        assert!(
            text.contains("sekisho_relayed_bytes_total{direction=\"to_target\"} 42"),
            "{text}"
        );
        assert!(
            text.contains("sekisho_db_query_seconds_count{op=\"ping\"} 1"),
            "{text}"
        );
        assert!(text.contains("sekisho_build_info{version="), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
