//! Issue #19, metrics and logs, through a real `sekisho serve`, `ssh` and `sshd`: after a
//! recorded session, a refused one and a failed API login, `GET /metrics` (behind its token)
//! parses as Prometheus text and counts exactly those; the log is JSON lines whose events
//! carry fields, not prose.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use prometheus_parse::{Sample, Scrape, Value as Metric};
use serde_json::{Value, json};
use support::gateway::{Pin, World};
use support::{Env, stderr};

const TOKEN: &str = "scrape-token-0123456789";

async fn scrape(w: &World, url: &str) -> Vec<Sample> {
    let response = w
        .http
        .client
        .get(url)
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(kind.starts_with("application/openmetrics-text"), "{kind}");
    let text = response.text().await.unwrap();
    assert!(text.ends_with("# EOF\n"), "{text}");
    let lines = text.lines().map(|l| Ok(l.to_owned()));
    Scrape::parse(lines).unwrap().samples
}

/// The value of `name` with exactly `labels`; `None` when there is no such sample.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.metric == name
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(v))
        })
        .map(|s| match s.value {
            Metric::Counter(v) | Metric::Gauge(v) | Metric::Untyped(v) => v,
            ref other => panic!("{name} is not a number: {other:?}"),
        })
}

fn must(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    value(samples, name, labels).unwrap_or_else(|| {
        let names: Vec<_> = samples.iter().map(|s| (&s.metric, &s.labels)).collect();
        panic!("no {name}{labels:?} in {names:#?}")
    })
}

#[tokio::test]
async fn metrics_count_sessions_bytes_refusals_and_failed_logins_and_the_log_is_json_lines() {
    let env = Env::new(None);
    env.configure(&format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\ntoken = \"{TOKEN}\"\n"
    ));
    env.set("log", "format", "\"json\"");
    let Some(w) = World::with_env(env, Pin::Real).await else {
        return;
    };
    let url = w.server.as_ref().unwrap().metrics_url().unwrap();
    assert!(url.ends_with("/metrics"), "{url}");

    // Without the token, or with another: refused with a JSON reason.
    for auth in [None, Some("Bearer wrong-token-0123456789")] {
        let mut r = w.http.client.get(&url);
        if let Some(a) = auth {
            r = r.header("authorization", a);
        }
        let response = r.send().await.unwrap();
        assert_eq!(response.status(), 401);
        let body: Value = response.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains("token"), "{body}");
    }

    // One recorded session with 1 MiB from the target, one refused, one failed API login.
    w.approved("reference").await;
    let out = w
        .ssh("alice+pacs", &["head -c 1048576 /dev/zero"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout.len(), 1 << 20);
    let refused = w.ssh("alice+nosuch", &["true"]).output().unwrap();
    assert!(!refused.status.success());
    let (status, _) = w
        .http
        .send(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "hana", "password": "not the password"})),
        )
        .await;
    assert_eq!(status, 401);
    w.wait_all_ended().await;

    // The session's end and its recording's last writes are counted just after it ends.
    let session = [("transport", "ssh"), ("level", "reference")];
    let deadline = Instant::now() + Duration::from_secs(15);
    let m = loop {
        let m = scrape(&w, &url).await;
        let settled = value(&m, "sekisho_sessions_ended_total", &[("how", "closed")]) == Some(1.0)
            && value(&m, "sekisho_recording_queue_depth", &[]) == Some(0.0);
        if settled {
            break m;
        }
        assert!(
            Instant::now() < deadline,
            "the session's end was never counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(must(&m, "sekisho_sessions_started_total", &session), 1.0);
    assert_eq!(must(&m, "sekisho_sessions_live", &session), 0.0);
    let from_target = must(
        &m,
        "sekisho_relayed_bytes_total",
        &[("direction", "from_target")],
    );
    assert!(from_target >= f64::from(1 << 20), "{from_target}");
    assert!(from_target < f64::from(2 << 20), "{from_target}");
    assert_eq!(
        must(
            &m,
            "sekisho_access_refused_total",
            &[("channel", "ssh"), ("reason", "unknown_target")]
        ),
        1.0
    );
    assert_eq!(
        must(
            &m,
            "sekisho_login_failures_total",
            &[("channel", "api_login")]
        ),
        1.0
    );
    assert!(must(&m, "sekisho_recording_write_seconds_count", &[]) >= 1.0);
    assert!(must(&m, "sekisho_db_query_seconds_count", &[("op", "admission")]) >= 1.0);
    assert!(
        must(
            &m,
            "sekisho_db_query_seconds_count",
            &[("op", "audit_append")]
        ) >= 3.0
    );
    assert!(must(&m, "sekisho_db_query_seconds_count", &[("op", "ping")]) >= 1.0);
    assert!(must(&m, "sekisho_db_connections", &[("state", "idle")]) >= 0.0);
    assert_eq!(must(&m, "sekisho_notifications_backlog", &[]), 0.0);
    assert!(must(&m, "sekisho_audit_events_total", &[("outcome", "denied")]) >= 2.0);
    assert!(
        m.iter()
            .any(|s| s.metric == "sekisho_build_info" && s.labels.get("version").is_some())
    );
    // Histograms come with their buckets.
    assert!(
        m.iter()
            .any(|s| s.metric == "sekisho_recording_write_seconds"
                && matches!(&s.value, Metric::Histogram(b) if b.len() > 10)),
        "no buckets"
    );

    // The log: one JSON object per line, with a level and the event's fields.
    let log = w.log();
    let events: Vec<Value> = log
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    assert!(events.len() > 5, "{log}");
    for e in &events {
        assert!(e["level"].is_string() && e["fields"].is_object(), "{e}");
    }
    assert!(
        events
            .iter()
            .any(|e| e["fields"]["session"].is_string() || e["span"]["session"].is_string()),
        "no event names its session in a field: {log}"
    );
}
