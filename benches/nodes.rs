//! Issue #15's benchmark, on two real `sekisho serve` nodes on one real PostgreSQL:
//!
//! - the time from an approver's terminate on node A's API to the vendor's stock `ssh`
//!   through node B closing, over many sessions (median, p99, max);
//! - the audit log's append rate when both nodes append at once (vendors registered through
//!   both APIs concurrently), against one node alone, and that the chain stays intact.
//!
//! Run: `cargo bench --bench nodes` (`-- --sessions 100 --appends 200`). Prints Markdown.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use support::nodes::{Group, ended, live, register_vendors, ssh_via};
use support::percentile;

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let sessions = support::bench_arg("--sessions", 100) as usize;
    let appends = support::bench_arg("--appends", 200);
    let Some(group) = Group::start().await else {
        panic!("PostgreSQL and sshd are needed");
    };
    let w = &group.world;
    let b_ssh = group.b_ssh();
    w.approved("reference").await;

    let mut took = Vec::with_capacity(sessions);
    for i in 0..sessions {
        let mut child = ssh_via(w, b_ssh, "echo ready; sleep 60");
        let session = live(w, &mut child).await;
        let since = Instant::now();
        w.terminate(session["id"].as_str().unwrap()).await;
        let (t, err) = ended(child, since);
        assert!(err.contains("terminated"), "{err}");
        took.push(t);
        w.wait_all_ended().await;
        if (i + 1) % 10 == 0 {
            eprintln!("{}/{sessions} sessions terminated", i + 1);
        }
    }
    took.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!("| terminate on node A → ssh through node B closed | ms |");
    println!("| --- | ---: |");
    println!(
        "| median of {sessions} | {:.1} |",
        ms(percentile(&took, 0.5))
    );
    println!("| p99 | {:.1} |", ms(percentile(&took, 0.99)));
    println!("| max | {:.1} |", ms(*took.last().unwrap()));

    // Audit appends: one node alone, then both at once (each registration is one audited
    // transaction).
    let a = group.a().clone();
    let b = group.b_http();
    let admin = w.admin.clone();
    let started = Instant::now();
    register_vendors(a.clone(), admin.clone(), "solo".into(), appends).await;
    let solo = appends as f64 / started.elapsed().as_secs_f64();
    let started = Instant::now();
    tokio::join!(
        register_vendors(a, admin.clone(), "A".into(), appends),
        register_vendors(b, admin.clone(), "B".into(), appends)
    );
    let both = (2 * appends) as f64 / started.elapsed().as_secs_f64();
    let (_, verify) = group.a().get("/api/v1/audit/verify", &admin).await;
    assert_eq!(verify["intact"], true, "{verify}");
    println!();
    println!("| audited registrations | per second |");
    println!("| --- | ---: |");
    println!("| node A alone, {appends} | {solo:.0} |");
    println!("| nodes A and B at once, {appends} each | {both:.0} |");
    println!("audit chain intact after {} rows", verify["rows"]);
}
