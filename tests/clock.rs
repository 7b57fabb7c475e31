//! Issue #18, the trusted clock, through a running `sekisho serve` and a real NTP server
//! (chronyd on loopback; under faketime for a clock an hour off): the gateway checks its
//! offset at start, audits the verdict, and refuses new sessions with the reason while its
//! clock is off against the hospital's NTP; an NTP server that does not answer is audited
//! and leaves sessions alone.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use sekisho_testkit::ntp::Chronyd;
use support::gateway::{Pin, World};
use support::{Env, stderr};

/// Points `[time] ntp_servers` at `servers`.
fn use_ntp(env: &Env, servers: &[String]) {
    let text = std::fs::read_to_string(&env.config).unwrap();
    let list = servers
        .iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let line = format!("ntp_servers = [{list}]\n");
    let text = match text.find("ntp_servers = ") {
        Some(i) => {
            let end = i + text[i..].find('\n').unwrap() + 1;
            format!("{}{line}{}", &text[..i], &text[end..])
        }
        None => format!("{text}[time]\n{line}max_offset_ms = 1000\n"),
    };
    std::fs::write(&env.config, text).unwrap();
}

#[tokio::test]
async fn sessions_are_refused_while_the_clock_is_off_against_ntp() {
    let (Some(right), Some(wrong)) = (Chronyd::start(None), Chronyd::start(Some("-1h"))) else {
        return;
    };
    let env = Env::new(None);
    use_ntp(&env, &[right.addr()]);
    let Some(mut w) = World::with_env(env, Pin::Real).await else {
        return;
    };
    w.approved("reference").await;
    let checked = w.audit("kind=clock_checked").await;
    assert_eq!(checked.len(), 1, "{checked:?}");
    assert_eq!(checked[0]["details"]["verdict"], "within");
    assert_eq!(checked[0]["details"]["server"], right.addr());
    let out = w.ssh("alice+pacs", &["echo", "on time"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));

    // The hospital's NTP says this clock is an hour fast: audited, sessions refused.
    w.server.take().unwrap().terminate();
    use_ntp(&w.env, &[wrong.addr()]);
    w.restart().await;
    let checked = w.audit("kind=clock_checked").await;
    assert_eq!(checked[0]["details"]["verdict"], "off", "{checked:?}");
    assert_eq!(checked[0]["outcome"], "failure");
    let off = checked[0]["details"]["offset_ms"].as_i64().unwrap();
    assert!((3_599_000..3_601_000).contains(&off), "{off}");
    let out = w.ssh("alice+pacs", &["echo", "never"]).output().unwrap();
    let err = stderr(&out);
    assert!(!out.status.success(), "{err}");
    assert!(
        err.contains("the gateway's clock is off by") && err.contains("(at most 1000 ms)"),
        "{err}"
    );
    let denied = w.audit("kind=access_denied").await;
    assert!(
        denied.iter().any(|e| e["details"]["code"] == "clock_off"),
        "{denied:?}"
    );

    // No NTP server answers: audited as unchecked; sessions go on.
    w.server.take().unwrap().terminate();
    drop(right);
    drop(wrong);
    use_ntp(&w.env, &["127.0.0.1:9".to_owned()]);
    w.restart().await;
    let checked = w.audit("kind=clock_checked").await;
    assert_eq!(checked[0]["details"]["verdict"], "unchecked", "{checked:?}");
    let out = w
        .ssh("alice+pacs", &["echo", "unchecked"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
}
