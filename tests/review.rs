//! Issue #18, checking the logs against the plan, through a real `sekisho serve`, `ssh` and
//! `sshd`: a finished session waits in the review queue with its plan, the vendor's report and
//! the flags the hospital's calendar and thresholds raise (night, a day off, a large download,
//! a change without a report); the review page shows the plan beside the report; a report
//! clears its flag and a sign-off takes the session off the queue. Beside the plan, what the
//! vendor did: the channels opened, the commands typed or run, and what the gateway refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::{Duration, Instant};

use jiff::tz::TimeZone;
use serde_json::{Value, json};
use support::gateway::{Pin, World};
use support::{Env, stderr, stdout};

/// The recording's page, where it is reviewed, in Japanese.
async fn review_page(w: &World, session: &str) -> String {
    let (status, page) = w
        .http
        .console(
            &format!("/console/recordings/{session}"),
            &w.approver,
            Some("ja"),
        )
        .await;
    assert_eq!(status, 200);
    String::from_utf8(page).unwrap()
}

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
    let page = review_page(&w, &session).await;
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

/// The activity of `session` once its recording is indexed.
async fn activity(w: &World, session: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = w
            .http
            .get(&format!("/api/v1/reviews/{session}/activity"), &w.approver)
            .await;
        assert_eq!(status, 200, "{body}");
        if body["indexed"] == true {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "the recording was never indexed: {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn texts<'a>(activity: &'a Value, source: &str) -> Vec<&'a str> {
    activity["typed"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["source"] == source)
        .map(|x| x["text"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn the_review_shows_the_channels_opened_the_commands_typed_and_what_was_refused() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    w.approved("change").await;
    // A shell where the vendor types two commands and asks for a remote forward, which the
    // gateway refuses (the client goes on without it).
    let (child, stdin) = w.interactive_with(
        "alice+pacs",
        &[
            "-o",
            "ExitOnForwardFailure=no",
            "-R",
            "127.0.0.1:45679:127.0.0.1:9",
        ],
        b"echo activity-$((6*7))\nuname -s\nexit\n",
    );
    let out = child.wait_with_output().unwrap();
    drop(stdin);
    assert!(
        stdout(&out).contains("activity-42"),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    let shell_session = w.sessions(false).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    w.wait_ended(&shell_session).await;
    // One command run directly, fed 4 MiB of binary data (flagged, not indexed).
    let zeros = w.env.dir.path().join("zeros");
    std::fs::write(&zeros, vec![0u8; 4 << 20]).unwrap();
    let out = w
        .ssh("alice+pacs", &["cat > /dev/null; echo ran-directly"])
        .stdin(std::fs::File::open(&zeros).unwrap())
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "ran-directly\n");
    assert!(out.status.success(), "{}", stderr(&out));
    w.wait_all_ended().await;
    let exec_session = w
        .sessions(false)
        .await
        .into_iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .find(|id| *id != shell_session)
        .unwrap();

    let shell = activity(&w, &shell_session).await;
    assert_eq!(shell["recorded"], true);
    let kinds: Vec<&str> = shell["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["terminal"], "{shell}");
    assert!(shell["channels"][0]["first_at"].is_string(), "{shell}");
    let typed = texts(&shell, "input");
    assert!(typed.contains(&"echo activity-$((6*7))"), "{shell}");
    assert!(typed.contains(&"uname -s"), "{shell}");
    let refused = shell["refused"].as_array().unwrap();
    assert_eq!(refused.len(), 1, "{shell}");
    assert_eq!(refused[0]["channel"], "remote_forward");
    assert_eq!(refused[0]["code"], "remote_forward_refused");

    let exec = activity(&w, &exec_session).await;
    let command = "cat > /dev/null; echo ran-directly";
    assert_eq!(exec["channels"][0]["kind"], "exec", "{exec}");
    assert_eq!(exec["channels"][0]["detail"], command);
    assert_eq!(texts(&exec, "command"), [command]);
    assert_eq!(
        texts(&exec, "flag"),
        ["binary data to the target: the rest of this channel is not indexed"]
    );
    // The index stays small whatever went through (issue #20: it held the data before).
    let index = w
        .env
        .data_dir()
        .join("recordings")
        .join(&exec_session)
        .join("index.jsonl");
    let size = std::fs::metadata(&index).unwrap().len();
    assert!(size < 4096, "index.jsonl is {size} bytes");
    assert!(exec["refused"].as_array().unwrap().is_empty(), "{exec}");

    // Inside its window: no time outside it.
    let (_, item) = w
        .http
        .get(&format!("/api/v1/reviews/{shell_session}"), &w.approver)
        .await;
    assert_eq!(item["outside_window_seconds"], 0, "{item}");

    // The review page shows them beside the plan, in Japanese.
    let page = review_page(&w, &shell_session).await;
    for wanted in [
        "実施内容",
        "開かれたチャネル",
        "端末",
        "入力されたコマンド",
        "echo activity-$((6*7))",
        "ゲートウェイが拒否した操作",
        "remote_forward",
        "申請した時間帯の外での作業時間",
    ] {
        assert!(
            page.contains(wanted),
            "{wanted} missing from the review page"
        );
    }

    // Reading it is audited; a vendor may not read it.
    let reads = w.audit("kind=recordings_read").await;
    assert!(
        reads.iter().any(|e| e["details"]["what"] == "activity"
            && e["details"]["recording"] == shell_session.as_str()),
        "{reads:?}"
    );
    let (status, _) = w
        .http
        .get(
            &format!("/api/v1/reviews/{shell_session}/activity"),
            &w.alice,
        )
        .await;
    assert_eq!(status, 403);
}
