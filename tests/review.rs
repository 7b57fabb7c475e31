//! Issue #18, checking the logs against the plan, through a real `sekisho serve`, `ssh` and
//! `sshd`: a finished session waits in the review queue with its plan, the vendor's report and
//! the flags the hospital's calendar and thresholds raise (night, a day off, a large download,
//! a change without a report); the review page shows the plan beside the report; a report
//! clears its flag and a sign-off takes the session off the queue.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use serde_json::{Value, json};
use support::gateway::{Pin, World};
use support::{Env, stderr};

async fn queue(w: &World) -> Vec<Value> {
    let (status, items) = w.http.get("/api/v1/reviews", &w.approver).await;
    assert_eq!(status, 200, "{items}");
    items.as_array().unwrap().clone()
}

fn flag_names(item: &Value) -> Vec<String> {
    item["flags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["flag"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_finished_session_waits_for_review_beside_its_plan_with_the_calendars_flags() {
    // Tonight is now and today a holiday, in the hospital's zone: the session is flagged for
    // both whatever the time the test runs; more than 1 MiB from the target is large.
    let tokyo = TimeZone::get("Asia/Tokyo").unwrap();
    let now = jiff::Timestamp::now();
    let local = |t: jiff::Timestamp| t.to_zoned_datetime(tokyo.clone());
    let hhmm = |t: jiff::Timestamp| local(t).strftime("%H:%M").to_string();
    let env = Env::new(None);
    env.configure(&format!(
        "[review]\nnight_start = \"{}\"\nnight_end = \"{}\"\nholidays = [\"{}\"]\nlarge_download_mib = 1\n",
        hhmm(now - jiff::SignedDuration::from_mins(30)),
        hhmm(now + jiff::SignedDuration::from_mins(90)),
        local(now).date()
    ));
    let Some(w) = World::with_env(env, Pin::Real).await else {
        return;
    };
    let request = w.approved("change").await;
    // Two MiB from the target.
    let out = w
        .ssh("alice+pacs", &["head -c 2097152 /dev/zero"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(out.stdout.len(), 2 << 20);

    // The session is in the queue once it has ended, with the plan as approved.
    let deadline = Instant::now() + Duration::from_secs(15);
    let item = loop {
        if let Some(i) = queue(&w).await.into_iter().next() {
            break i;
        }
        assert!(
            Instant::now() < deadline,
            "the session never reached the queue"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(item["session"]["request_id"], request.as_str());
    assert_eq!(item["plan"], "read the logs");
    assert_eq!(item["report"], Value::Null);
    assert_eq!(item["overdue"], false);
    assert!(item["due_at"].is_string() && item["waiting_seconds"].as_i64().unwrap() >= 0);
    let mut flags = flag_names(&item);
    flags.sort();
    assert_eq!(
        flags,
        ["day_off", "large_download", "night", "no_report"],
        "{item}"
    );
    let session = item["session"]["id"].as_str().unwrap().to_owned();

    // The review page shows the plan beside the report and what to look at, in Japanese too.
    let (status, page) = w
        .http
        .console(
            &format!("/console/recordings/{session}"),
            &w.approver,
            Some("ja"),
        )
        .await;
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    for wanted in [
        "承認された作業計画",
        "read the logs",
        "夜間の作業",
        "休日の作業",
        "作業報告のない変更作業",
        "確認期限",
    ] {
        assert!(
            page.contains(wanted),
            "{wanted} missing from the review page"
        );
    }
    let (_, page) = w
        .http
        .console("/console/reviews", &w.approver, Some("en"))
        .await;
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains(&format!("data-session=\"{session}\"")),
        "{page}"
    );
    assert!(
        page.contains("large download from the target (2 MiB)"),
        "{page}"
    );

    // The vendor reports the work: that flag goes.
    let (status, body) = w
        .http
        .post(
            &format!("/api/v1/requests/{request}/report"),
            &w.alice,
            json!({"text": "collected the logs; nothing changed"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (_, one) = w
        .http
        .get(&format!("/api/v1/reviews/{session}"), &w.approver)
        .await;
    assert!(!flag_names(&one).contains(&"no_report".to_owned()), "{one}");
    assert_eq!(one["report"], "collected the logs; nothing changed");

    // Signed off: off the queue. Vendors have no queue.
    let (status, body) = w
        .http
        .post(
            &format!("/api/v1/sessions/{session}/review"),
            &w.approver,
            json!({"comment": "matches the plan"}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(queue(&w).await.is_empty());
    let (status, _) = w.http.get("/api/v1/reviews", &w.alice).await;
    assert_eq!(status, 403);
}
