//! Issue #18, the SIEM stream, through a running `sekisho serve` and a real `rsyslogd` on
//! loopback (TLS with the GnuTLS driver, and plain TCP): every audit row arrives as an RFC 5424
//! message, in order, each with its sequence number and chain hash; a collector that goes
//! away and comes back, and a gateway restarted, leave neither a gap nor a repeat; the signed
//! checkpoints arrive too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use sekisho_testkit::rsyslog::Rsyslog;
use serde_json::{Value, json};
use support::{Env, Http};

/// One received audit message, taken apart.
struct Received {
    pri: u16,
    msgid: String,
    sd_seq: i64,
    body: Value,
}

fn parse(line: &str) -> Option<Received> {
    let (head, body) = line.split_once('\u{feff}')?;
    let pri = head.strip_prefix('<')?.split_once('>')?.0.parse().ok()?;
    let fields: Vec<&str> = head.split(' ').collect();
    // <PRI>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID [SD...]
    assert_eq!(fields[0].split_once('>').unwrap().1, "1", "{line}");
    assert!(fields[1].ends_with('Z'), "{line}");
    assert_eq!(fields[3], "sekisho", "{line}");
    let msgid = fields[5].to_owned();
    if msgid == "checkpoint" {
        return None;
    }
    let sd_seq = head
        .split("seq=\"")
        .nth(1)?
        .split('"')
        .next()?
        .parse()
        .ok()?;
    Some(Received {
        pri,
        msgid,
        sd_seq,
        body: serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}")),
    })
}

fn audit_rows(r: &Rsyslog) -> Vec<Received> {
    r.messages().iter().filter_map(|l| parse(l)).collect()
}

fn checkpoints(r: &Rsyslog) -> Vec<Value> {
    r.messages()
        .iter()
        .filter(|l| l.contains(" checkpoint [sekisho@32473 checkpoint="))
        .map(|l| serde_json::from_str(l.split_once('\u{feff}').unwrap().1).unwrap())
        .collect()
}

/// The newest audit row's sequence number.
async fn head(http: &Http, token: &str) -> i64 {
    let (status, page) = http.get("/api/v1/audit?limit=1", token).await;
    assert_eq!(status, 200, "{page}");
    page["events"][0]["seq"].as_i64().unwrap()
}

/// Waits (bounded) until `r` has received audit rows up to `seq`.
async fn received_up_to(r: &Rsyslog, seq: i64) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let rows = audit_rows(r);
        if rows.last().is_some_and(|x| x.sd_seq >= seq) {
            return rows;
        }
        assert!(
            Instant::now() < deadline,
            "rsyslog received up to {:?}, wanted {seq}; rsyslogd said: {}",
            rows.last().map(|x| x.sd_seq),
            r.errors()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Sequence numbers 1..=n exactly once each, in order.
fn assert_complete(rows: &[Received], n: i64) {
    let seqs: Vec<i64> = rows.iter().map(|r| r.sd_seq).collect();
    assert_eq!(seqs, (1..=n).collect::<Vec<_>>(), "a gap or a repeat");
    for r in rows {
        assert_eq!(r.body["seq"], r.sd_seq);
        assert_eq!(r.body["kind"], r.msgid.as_str());
    }
}

/// `n` audited changes (vendors registered); the first failed login of a run is a denial.
async fn changes(http: &Http, token: &str, n: usize) {
    for _ in 0..n {
        let name = format!("Vendor {}", jiff::Timestamp::now().as_nanosecond());
        let (status, body) = http
            .post(
                "/api/v1/vendors",
                token,
                json!({"name": name, "contact": {"name": "Sato"}}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
}

async fn failed_login(http: &Http) {
    let (status, _) = http
        .send(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "nobody", "password": "wrong password"})),
        )
        .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn every_audit_row_reaches_rsyslog_over_tls_once_and_in_order_across_restarts() {
    let Some(mut collector) = Rsyslog::start(true) else {
        return;
    };
    let env = Env::new(None);
    env.configure(&format!(
        "[syslog]\naddress = \"{}\"\nca_file = \"{}\"\n",
        collector.addr(),
        collector.ca().display()
    ));
    let server = env.serve();
    assert!(
        server
            .banner
            .iter()
            .any(|l| l.contains(&format!("SIEM (syslog): {} (TLS)", collector.addr()))),
        "{:?}",
        server.banner
    );
    let http = server.http();
    let admin = http.login("admin", &env.admin_password()).await;
    failed_login(&http).await;
    changes(&http, &admin, 3).await;
    let n = head(&http, &admin).await;
    let rows = received_up_to(&collector, n).await;
    assert_complete(&rows, n);
    // From the first row on (the node claiming the keys); a failed login is a warning
    // (authpriv).
    assert_eq!(rows[0].msgid, "group_keys_claimed");
    assert!(rows.iter().any(|r| r.msgid == "gateway_started"));
    let denied = rows.iter().find(|r| r.msgid == "login_failed").unwrap();
    assert_eq!(denied.pri, 10 * 8 + 4);
    assert_eq!(denied.body["outcome"], "denied");
    // The hashes are the chain's: the API shows the same.
    let (_, page) = http.get(&format!("/api/v1/audit?limit={n}"), &admin).await;
    for e in page["events"].as_array().unwrap() {
        let seq = e["seq"].as_i64().unwrap();
        assert_eq!(
            rows[usize::try_from(seq - 1).unwrap()].body["hash"],
            e["hash"]
        );
    }
    // This node's checkpoint written at start arrived, signed.
    let deadline = Instant::now() + Duration::from_secs(10);
    while checkpoints(&collector).is_empty() {
        assert!(Instant::now() < deadline, "no checkpoint arrived");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(checkpoints(&collector)[0]["signature"].is_string());

    // The collector goes away; rows made meanwhile arrive once it is back.
    collector.stop();
    changes(&http, &admin, 4).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    collector.restart();
    changes(&http, &admin, 1).await;
    let n = head(&http, &admin).await;
    assert_complete(&received_up_to(&collector, n).await, n);

    // The gateway stops: its last row and its last checkpoint go out first.
    assert!(server.terminate().success());
    let rows = audit_rows(&collector);
    let last = rows.last().unwrap();
    assert_eq!(last.msgid, "gateway_stopped", "the stop row was not sent");
    let stopped_at = last.sd_seq;
    assert_complete(&rows, stopped_at);
    let deadline = Instant::now() + Duration::from_secs(10);
    while checkpoints(&collector).last().unwrap()["seq"] != stopped_at {
        assert!(
            Instant::now() < deadline,
            "the last checkpoint did not arrive"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Started again, it resumes after the last row sent: no repeat, no gap.
    let server = env.serve();
    let http = server.http();
    let admin = http.login("admin", &env.admin_password()).await;
    changes(&http, &admin, 2).await;
    let n = head(&http, &admin).await;
    assert_complete(&received_up_to(&collector, n).await, n);
    drop(server);
}

#[tokio::test]
async fn plain_tcp_streams_too_and_a_collector_with_an_unknown_certificate_gets_nothing() {
    let (Some(plain), Some(tls)) = (Rsyslog::start(false), Rsyslog::start(true)) else {
        return;
    };
    let env = Env::new(None);
    env.configure(&format!(
        "[syslog]\naddress = \"{}\"\ntls = false\nfacility = \"local3\"\n",
        plain.addr()
    ));
    let server = env.serve();
    let http = server.http();
    let admin = http.login("admin", &env.admin_password()).await;
    let n = head(&http, &admin).await;
    let rows = received_up_to(&plain, n).await;
    assert_complete(&rows, n);
    assert_eq!(rows[0].pri, 19 * 8 + 6);
    drop(server);

    // TLS to a collector whose certificate the system does not trust: refused, nothing sent.
    let env = Env::new(None);
    env.configure(&format!("[syslog]\naddress = \"{}\"\n", tls.addr()));
    let server = env.serve();
    let http = server.http();
    http.login("admin", &env.admin_password()).await;
    let log = env.config.with_file_name("serve.log");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("cannot stream the audit log to syslog") {
            assert!(text.contains("TLS with"), "{text}");
            break;
        }
        assert!(Instant::now() < deadline, "no warning in the log: {text}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(tls.messages().is_empty(), "{:?}", tls.messages());
    drop(server);
}
