//! Issue #20's database at scale: ten years of a large hospital in one Sekisho database, and
//! what staff and vendors feel on it. A real `sekisho serve` (release build) with a real
//! `sshd` target does real work first (vendors, an approved request, an SSH session); the
//! database is then grown, with the server stopped, to `--audit` audit events (default
//! 1,000,000, chained and hashed exactly as the server chains them, spread over ten years),
//! `--requests` work requests and `--sessions` sessions (default 100,000 each, cloned from the
//! real rows so every column is one the server wrote). Then, with the server started again:
//!
//! - the API's audit search (newest page, by vendor, target, kind, a month five years ago, ten
//!   cursor pages deep), the request and session lists, and the console's pages: p50/p99;
//! - the admission decision, from the server's own `sekisho_db_query_seconds{operation=
//!   "admission"}` histogram, and `ssh alice+pacs@gateway true` against `ssh target true`;
//! - `sekisho audit verify`: events per second.
//!
//! Run: `cargo bench --bench database` (`-- --audit 1000000 --requests 100000 --sessions
//! 100000 --repeat 50`; `-- --postgres` for a PostgreSQL cluster the test kit starts).
//! Prints Markdown for BENCHMARKS.md.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/support/mod.rs"]
mod support;

use std::process::Command;
use std::time::{Duration, Instant};

use sekisho_domain::audit::{AuditEntry, Outcome};
use sekisho_store::Store;
use sekisho_store::audit::{GENESIS, chain_hash};
use sekisho_testkit::sshd::CHANGE_ACCOUNT;
use sqlx::{Any, Row};
use support::gateway::{Pin, World, add_vendor};
use support::{Env, percentile, stderr, stdout};

const YEAR_US: i64 = 365 * 24 * 3600 * 1_000_000;

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// A fixed, valid UUID for the `i`th seeded row of a kind.
fn id(kind: u32, i: u64) -> String {
    format!("{kind:08x}-0000-4000-8000-{i:012x}")
}

/// A small deterministic generator (the seed is fixed, so two runs seed the same rows).
struct Lcg(u64);

impl Lcg {
    fn next(&mut self, below: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 33) % below
    }
}

fn now_us() -> i64 {
    jiff::Timestamp::now().as_microsecond()
}

/// Column names of `table`, in order.
async fn columns(store: &Store, postgres: bool, table: &str) -> Vec<String> {
    let sql = if postgres {
        "SELECT column_name::text AS name FROM information_schema.columns WHERE table_name = $1 ORDER BY ordinal_position"
    } else {
        "SELECT name FROM pragma_table_info($1)"
    };
    sqlx::query(sql)
        .bind(table)
        .fetch_all(store.pool())
        .await
        .unwrap()
        .iter()
        .map(|r| r.try_get::<String, _>("name").unwrap())
        .collect()
}

/// A seeded value for a column.
#[derive(Clone)]
enum V {
    Int(i64),
    Text(String),
    Null,
}

/// Inserts `n` copies of the row `template` of `table`, each with the columns `vary(i)`
/// names changed, in one transaction.
async fn clone_rows(
    store: &Store,
    postgres: bool,
    table: &str,
    template: &str,
    n: u64,
    mut vary: impl FnMut(u64) -> Vec<(&'static str, V)>,
) {
    let cols = columns(store, postgres, table).await;
    let sample = vary(0);
    let mut select = vec![];
    let mut k = 0;
    for c in &cols {
        if sample.iter().any(|(name, _)| name == c) {
            k += 1;
            select.push(format!("${k}"));
        } else {
            select.push(c.clone());
        }
    }
    let order: Vec<&str> = cols
        .iter()
        .filter(|c| sample.iter().any(|(name, _)| name == *c))
        .map(String::as_str)
        .collect();
    assert_eq!(
        order.len(),
        sample.len(),
        "{table}: unknown column in {order:?}"
    );
    let sql = format!(
        "INSERT INTO {table} ({}) SELECT {} FROM {table} WHERE id = ${}",
        cols.join(", "),
        select.join(", "),
        k + 1
    );
    let mut tx = store.pool().begin().await.unwrap();
    for i in 0..n {
        let values = vary(i);
        let mut q = sqlx::query::<Any>(sqlx::AssertSqlSafe(sql.clone()));
        for c in &order {
            match &values.iter().find(|(name, _)| name == c).unwrap().1 {
                V::Int(v) => q = q.bind(*v),
                V::Text(v) => q = q.bind(v.clone()),
                V::Null => q = q.bind(None::<String>),
            }
        }
        q.bind(template).execute(&mut *tx).await.unwrap();
        if i > 0 && i % 20_000 == 0 {
            eprintln!("  {table}: {i} of {n}");
        }
    }
    tx.commit().await.unwrap();
}

/// The audit log grown to `n` synthetic events before the real ones: the real rows are read,
/// the table emptied, `n` events chained from the genesis hash with times over ten years,
/// then the real rows chained after them (renumbered and hashed again).
async fn grow_audit(store: &Store, n: u64, vendors: &[String], targets: &[String]) {
    let real = sqlx::query(
        "SELECT seq, at, kind, outcome, actor, user_id, vendor_id, target_id, request_id, \
         source_addr, reason, details FROM audit_events ORDER BY seq",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    let entry = |r: &sqlx::any::AnyRow| AuditEntry {
        seq: r.try_get("seq").unwrap(),
        at: jiff::Timestamp::from_microsecond(r.try_get("at").unwrap()).unwrap(),
        kind: r.try_get("kind").unwrap(),
        outcome: match r.try_get::<String, _>("outcome").unwrap().as_str() {
            "success" => Outcome::Success,
            "denied" => Outcome::Denied,
            _ => Outcome::Failure,
        },
        actor: r.try_get("actor").unwrap(),
        user_id: r.try_get("user_id").unwrap(),
        vendor_id: r.try_get("vendor_id").unwrap(),
        target_id: r.try_get("target_id").unwrap(),
        request_id: r.try_get("request_id").unwrap(),
        source_addr: r.try_get("source_addr").unwrap(),
        reason: r.try_get("reason").unwrap(),
        details: r.try_get("details").unwrap(),
    };
    let real: Vec<AuditEntry> = real.iter().map(entry).collect();
    let first_real_at = real[0].at.as_microsecond();
    let mut tx = store.pool().begin().await.unwrap();
    sqlx::query("DELETE FROM audit_events")
        .execute(&mut *tx)
        .await
        .unwrap();
    let mut prev = GENESIS.to_owned();
    let mut rng = Lcg(20);
    let start = first_real_at - 10 * YEAR_US;
    let step = (10 * YEAR_US) / i64::try_from(n.max(1)).unwrap();
    let mut batch: Vec<(AuditEntry, String, String)> = Vec::with_capacity(500);
    let total = n + real.len() as u64;
    for i in 0..total {
        let seq = i64::try_from(i).unwrap() + 1;
        let mut e = if i < n {
            // The real rows' kinds, actors and details, about other vendors and targets.
            let mut e = real[usize::try_from(rng.next(real.len() as u64)).unwrap()].clone();
            e.at = jiff::Timestamp::from_microsecond(start + step * (seq - 1)).unwrap();
            if e.vendor_id.is_some() {
                e.vendor_id = Some(vendors[rng.next(vendors.len() as u64) as usize].clone());
            }
            if e.target_id.is_some() {
                e.target_id = Some(targets[rng.next(targets.len() as u64) as usize].clone());
            }
            e
        } else {
            real[usize::try_from(i - n).unwrap()].clone()
        };
        e.seq = seq;
        let hash = chain_hash(&prev, &e);
        batch.push((e, prev.clone(), hash.clone()));
        prev = hash;
        if batch.len() == 500 || i + 1 == total {
            insert_audit(&mut tx, &batch).await;
            batch.clear();
        }
        if i > 0 && i % 100_000 == 0 {
            eprintln!("  audit_events: {i} of {total}");
        }
    }
    // What every append keeps up to date, for the rows written here in bulk.
    sqlx::query("DELETE FROM audit_days")
        .execute(&mut *tx)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO audit_days (day, min_seq, max_seq) \
         SELECT at / 86400000000, MIN(seq), MAX(seq) FROM audit_events GROUP BY at / 86400000000",
    )
    .execute(&mut *tx)
    .await
    .unwrap();
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(i64::try_from(total).unwrap())
        .bind(&prev)
        .execute(&mut *tx)
        .await
        .unwrap();
    tx.commit().await.unwrap();
}

async fn insert_audit(
    tx: &mut sqlx::Transaction<'static, Any>,
    rows: &[(AuditEntry, String, String)],
) {
    let mut sql = String::from(
        "INSERT INTO audit_events (seq, at, kind, outcome, actor, user_id, vendor_id, target_id, \
         request_id, source_addr, reason, details, prev_hash, hash) VALUES ",
    );
    for (r, _) in rows.iter().enumerate() {
        let b = r * 14;
        let params: Vec<String> = (1..=14).map(|k| format!("${}", b + k)).collect();
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push_str(&format!("({})", params.join(", ")));
    }
    let mut q = sqlx::query::<Any>(sqlx::AssertSqlSafe(sql));
    for (e, prev, hash) in rows {
        q = q
            .bind(e.seq)
            .bind(e.at.as_microsecond())
            .bind(e.kind.clone())
            .bind(e.outcome.as_str())
            .bind(e.actor.clone())
            .bind(e.user_id.clone())
            .bind(e.vendor_id.clone())
            .bind(e.target_id.clone())
            .bind(e.request_id.clone())
            .bind(e.source_addr.clone())
            .bind(e.reason.clone())
            .bind(e.details.clone())
            .bind(prev.clone())
            .bind(hash.clone());
    }
    q.execute(&mut **tx).await.unwrap();
}

/// The first of `repeat + 1` sequential GETs of `path` (caches cold), and p50 and p99 of
/// the others (each must answer 200).
async fn timed_get(
    w: &World,
    path: &str,
    token: &str,
    repeat: usize,
) -> (Duration, Duration, Duration) {
    let client = w.server.as_ref().unwrap().client();
    let url = w.server.as_ref().unwrap().url(path);
    let mut took = Vec::with_capacity(repeat + 1);
    for _ in 0..=repeat {
        let t = Instant::now();
        let resp = client
            .get(&url)
            .header("authorization", format!("Bearer {token}"))
            .header("cookie", format!("sekisho_token={token}"))
            .send()
            .await
            .unwrap();
        let status = resp.status();
        let body = resp.bytes().await.unwrap();
        took.push(t.elapsed());
        assert_eq!(status, 200, "{path}: {}", String::from_utf8_lossy(&body));
    }
    let first = took.remove(0);
    took.sort();
    (first, percentile(&took, 0.5), percentile(&took, 0.99))
}

/// The admission histogram's buckets (upper bound in seconds, cumulative count), parsed
/// from the server's metrics.
fn admission_histogram(metrics: &str) -> Vec<(f64, f64)> {
    let lines = metrics.lines().map(|l| Ok(l.to_owned()));
    prometheus_parse::Scrape::parse(lines)
        .unwrap()
        .samples
        .into_iter()
        .filter(|s| {
            s.metric == "sekisho_db_query_seconds" && s.labels.get("op") == Some("admission")
        })
        .find_map(|s| match s.value {
            prometheus_parse::Value::Histogram(buckets) => {
                Some(buckets.iter().map(|b| (b.less_than, b.count)).collect())
            }
            _ => None,
        })
        .unwrap_or_default()
}

fn ssh_true(mut cmd: Command) -> Duration {
    let t = Instant::now();
    let out = cmd.output().unwrap();
    let took = t.elapsed();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    took
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let audit = support::bench_arg("--audit", 1_000_000);
    let requests = support::bench_arg("--requests", 100_000);
    let sessions = support::bench_arg("--sessions", 100_000);
    let repeat = usize::try_from(support::bench_arg("--repeat", 50)).unwrap();
    let postgres = std::env::args().any(|a| a == "--postgres");
    let url = if postgres {
        Some(
            sekisho_testkit::postgres::fresh_database_url()
                .await
                .expect("PostgreSQL server binaries are needed for --postgres"),
        )
    } else {
        None
    };
    let env = Env::new(url.as_deref());
    let metrics_port = sekisho_testkit::free_port();
    env.configure(&format!(
        "[metrics]\nlisten = \"127.0.0.1:{metrics_port}\"\n"
    ));
    let mut w = World::with_env(env, Pin::Real)
        .await
        .expect("sshd and test accounts are needed (run as root)");

    // Real work first: nine more vendors, an approved request, a session; its rows are the
    // templates of the seeded ones.
    let mut pairs = vec![(w.vendor_id.clone(), w.alice_id.clone())];
    for v in 1..10 {
        let (vendor, user) = add_vendor(
            &w.http,
            &w.admin,
            &format!("Vendor {v}"),
            &format!("engineer{v}"),
            "vendor password 1",
        )
        .await;
        pairs.push((
            vendor["id"].as_str().unwrap().to_owned(),
            user["id"].as_str().unwrap().to_owned(),
        ));
    }
    let (status, _) = w
        .http
        .send(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(serde_json::json!({"username": "alice", "password": "not the password"})),
        )
        .await;
    assert_eq!(status, 401);
    let request = w.approved("change").await;
    let out = w.ssh("alice+pacs", &["echo seeded"]).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    w.wait_all_ended().await;
    let session = w.sessions(false).await[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let data = w.env.data_dir();
    let db_url = url.unwrap_or_else(|| format!("sqlite://{}", data.join("sekisho.db").display()));
    let approver: String = {
        let store = Store::open(&db_url, 2).await.unwrap();
        let id = sqlx::query("SELECT id FROM users WHERE username = 'hana'")
            .fetch_one(store.pool())
            .await
            .unwrap()
            .try_get("id")
            .unwrap();
        store.pool().close().await;
        id
    };
    drop(w.server.take());

    // Ten years of a large hospital.
    let seeding = Instant::now();
    let store = Store::open(&db_url, 2).await.unwrap();
    let now = now_us();
    let mut rng = Lcg(7);
    let step = 10 * YEAR_US / i64::try_from(requests.max(1)).unwrap();
    let statuses = [
        "completed",
        "completed",
        "completed",
        "expired",
        "rejected",
        "cancelled",
    ];
    eprintln!("seeding {requests} requests");
    clone_rows(&store, postgres, "work_requests", &request, requests, |i| {
        let start = now - 10 * YEAR_US + i64::try_from(i).unwrap() * step;
        let (vendor, user) = &pairs[rng.next(pairs.len() as u64) as usize];
        vec![
            ("id", V::Text(id(1, i))),
            ("number", V::Int(1000 + i64::try_from(i).unwrap())),
            ("requester_id", V::Text(user.clone())),
            ("vendor_id", V::Text(vendor.clone())),
            ("window_start", V::Int(start)),
            ("window_end", V::Int(start + 4 * 3600 * 1_000_000)),
            (
                "status",
                V::Text(statuses[rng.next(statuses.len() as u64) as usize].to_owned()),
            ),
            ("created_at", V::Int(start - 24 * 3600 * 1_000_000)),
            ("updated_at", V::Int(start)),
        ]
    })
    .await;
    sqlx::query("UPDATE counters SET value = $1 WHERE name = 'work_request'")
        .bind(1000 + i64::try_from(requests).unwrap())
        .execute(store.pool())
        .await
        .unwrap();
    eprintln!("seeding {sessions} sessions");
    clone_rows(&store, postgres, "sessions", &session, sessions, |i| {
        let r = i % requests.max(1);
        let start = now - 10 * YEAR_US + i64::try_from(r).unwrap() * step;
        let (vendor, user) = &pairs[rng.next(pairs.len() as u64) as usize];
        let reviewed = rng.next(20) != 0;
        vec![
            ("id", V::Text(id(2, i))),
            ("request_id", V::Text(id(1, r))),
            ("user_id", V::Text(user.clone())),
            ("vendor_id", V::Text(vendor.clone())),
            ("started_at", V::Int(start + 60_000_000)),
            ("ended_at", V::Int(start + 3_600_000_000)),
            (
                "review_status",
                V::Text(if reviewed { "signed_off" } else { "pending" }.into()),
            ),
            (
                "reviewed_by",
                if reviewed {
                    V::Text(approver.clone())
                } else {
                    V::Null
                },
            ),
        ]
    })
    .await;
    eprintln!("seeding {audit} audit events");
    let vendors: Vec<String> = pairs
        .iter()
        .map(|(v, _)| v.clone())
        .chain((0..40).map(|i| id(3, i)))
        .collect();
    let targets: Vec<String> = std::iter::once(w.target_id.clone())
        .chain((0..199).map(|i| id(4, i)))
        .collect();
    grow_audit(&store, audit, &vendors, &targets).await;
    if !postgres {
        sqlx::query("ANALYZE").execute(store.pool()).await.unwrap();
    }
    store.pool().close().await;
    // The signed checkpoints were of the chain before it grew.
    let _ = std::fs::remove_dir_all(data.join("recordings/checkpoints"));
    let seeded_in = seeding.elapsed();
    let size = if postgres {
        None
    } else {
        Some(std::fs::metadata(data.join("sekisho.db")).unwrap().len())
    };

    let walks = |w: &World| w.log().matches("audit chain verified intact").count();
    let walked_before = walks(&w);
    w.restart().await;
    // The server walks the whole chain as it starts; measure after that walk, not beside it.
    let walk_started = Instant::now();
    while walks(&w) <= walked_before {
        assert!(
            walk_started.elapsed() < Duration::from_secs(300),
            "no chain walk logged after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let startup_walk = walk_started.elapsed();
    let admin = w.http.login("admin", &w.env.admin_password()).await;
    let vendor = &w.vendor_id;
    let target = &w.target_id;
    let five_years_ago = jiff::Timestamp::now() - jiff::SignedDuration::from_hours(5 * 365 * 24);
    let month_later = five_years_ago + jiff::SignedDuration::from_hours(30 * 24);
    let mut rows: Vec<(String, (Duration, Duration, Duration))> = vec![];
    for (label, path) in [
        ("audit, newest 100", "/api/v1/audit?limit=100".to_owned()),
        (
            "audit, one vendor's newest 100",
            format!("/api/v1/audit?vendor={vendor}&limit=100"),
        ),
        (
            "audit, one target's newest 100",
            format!("/api/v1/audit?target={target}&limit=100"),
        ),
        (
            "audit, one kind (`login_failed`) newest 100",
            "/api/v1/audit?kind=login_failed&limit=100".to_owned(),
        ),
        (
            "audit, a month five years ago",
            format!("/api/v1/audit?from={five_years_ago}&to={month_later}&limit=100"),
        ),
        ("requests, newest page", "/api/v1/requests".to_owned()),
        (
            "sessions, newest page",
            "/api/v1/sessions?active=false".to_owned(),
        ),
        ("console: audit", "/console/audit".to_owned()),
        ("console: sessions", "/console/sessions".to_owned()),
        ("console: approvals", "/console/approvals".to_owned()),
        ("console: recordings", "/console/recordings".to_owned()),
    ] {
        let t = timed_get(&w, &path, &admin, repeat).await;
        eprintln!(
            "{label}: first {} ms, p50 {} ms, p99 {} ms",
            ms(t.0),
            ms(t.1),
            ms(t.2)
        );
        rows.push((label.to_owned(), t));
    }
    // Ten pages deep through the cursor: the time of each page.
    let mut deep = vec![];
    let mut cursor: Option<i64> = None;
    for _ in 0..10 {
        let path = match cursor {
            Some(c) => format!("/api/v1/audit?vendor={vendor}&limit=100&cursor={c}"),
            None => format!("/api/v1/audit?vendor={vendor}&limit=100"),
        };
        let t = Instant::now();
        let (status, page) = w.http.get(&path, &admin).await;
        deep.push(t.elapsed());
        assert_eq!(status, 200, "{page}");
        cursor = page["next_cursor"].as_i64();
    }
    let first = deep[0];
    deep.sort();
    rows.push((
        "audit, one vendor, 10 cursor pages (each)".into(),
        (first, percentile(&deep, 0.5), percentile(&deep, 0.99)),
    ));

    // Session set-up, through the gateway and directly.
    let key = w.keys.path().join("gateway-to-pacs");
    let mut through = vec![];
    let mut direct = vec![];
    for _ in 0..20 {
        through.push(ssh_true(w.ssh("alice+pacs", &["true"])));
        let mut c = Command::new("ssh");
        c.args(support::gateway::ssh_options(&key))
            .arg("-p")
            .arg(w.sshd.port.to_string())
            .arg(format!("{CHANGE_ACCOUNT}@127.0.0.1"))
            .arg("true");
        direct.push(ssh_true(c));
    }
    w.wait_all_ended().await;
    through.sort();
    direct.sort();
    let metrics = reqwest::get(format!("http://127.0.0.1:{metrics_port}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let histogram = admission_histogram(&metrics);
    let decisions = histogram.last().map_or(0.0, |b| b.1);
    let p99_bound = histogram
        .iter()
        .find(|(_, c)| *c >= decisions * 0.99)
        .map(|(le, _)| *le);
    // Where the decisions fell, bucket by bucket (a p99 of a few dozen is their slowest).
    let spread = histogram
        .iter()
        .scan(0.0, |below, (le, c)| {
            let n = c - *below;
            *below = *c;
            Some((*le, n))
        })
        .filter(|(_, n)| *n > 0.0)
        .map(|(le, n)| format!("{n} ≤ {:.2} ms", le * 1000.0))
        .collect::<Vec<_>>()
        .join(", ");
    drop(w.server.take());

    let verify = Instant::now();
    let out = w.env.cli(&["audit", "verify"], "");
    let verified_in = verify.elapsed();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let events = audit as f64;

    println!(
        "Database: {}, {audit} audit events, {requests} requests, {sessions} sessions{}; seeded in {:.0} s.\n",
        if postgres { "PostgreSQL" } else { "SQLite" },
        size.map_or(String::new(), |s| format!(
            " ({:.0} MB file)",
            s as f64 / 1e6
        )),
        seeded_in.as_secs_f64()
    );
    println!(
        "| query (over HTTP; then {repeat} times) | first ms | p50 ms | p99 ms |\n| --- | ---: | ---: | ---: |"
    );
    for (label, (first, p50, p99)) in &rows {
        println!("| {label} | {} | {} | {} |", ms(*first), ms(*p50), ms(*p99));
    }
    println!(
        "\n| measure | value |\n| --- | ---: |\n\
         | admission decisions seen by the metrics | {decisions} |\n\
         | admission decision p99 (histogram bucket bound) | ≤ {} ms |\n\
         | admission decisions by bucket | {spread} |\n\
         | `ssh alice+pacs@gateway true`, median / p99 of 20 | {} / {} ms |\n\
         | `ssh target true` directly, median / p99 of 20 | {} / {} ms |\n\
         | set-up ratio (medians) | {:.2}× |\n\
         | `sekisho audit verify` | {:.0} events/s ({:.1} s) |\n\
         | the server's own walk at start, until logged | {:.1} s |",
        p99_bound.map_or("?".into(), |b| format!("{:.1}", b * 1000.0)),
        ms(percentile(&through, 0.5)),
        ms(percentile(&through, 0.99)),
        ms(percentile(&direct, 0.5)),
        ms(percentile(&direct, 0.99)),
        percentile(&through, 0.5).as_secs_f64() / percentile(&direct, 0.5).as_secs_f64(),
        events / verified_in.as_secs_f64(),
        verified_in.as_secs_f64(),
        startup_walk.as_secs_f64()
    );
}
