//! End to end: the `sekisho` commands an operator runs on the server.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use sekisho_store::Store;
use support::{Env, stderr, stdout};

#[test]
fn config_check_lists_every_mistake_with_its_line() {
    let env = Env::new(None);
    let file = env.dir.path().join("broken.toml");
    std::fs::write(
        &file,
        "[api]\nlisten = \"localhost\"\n\n[policy]\napprovals_for_change = \"two\"\n\n[recordings]\nretain_dayz = 30\n",
    )
    .unwrap();
    let out = env.cli(&["config", "check", file.to_str().unwrap()], "");
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines[0], format!("{}: 3 problems", file.display()));
    assert_eq!(
        &lines[1..],
        [
            "  line 2: `api.listen`: `localhost` is not an address with a port, e.g. 127.0.0.1:8080",
            "  line 5: `policy.approvals_for_change`: expected a whole number, found string",
            "  line 8: `recordings.retain_dayz`: unknown key in [recordings]; known keys: dir, retain_days, in_flight_bytes",
        ]
    );
}

#[test]
fn the_printed_default_config_checks_clean() {
    let env = Env::new(None);
    let out = env.cli(&["config", "default"], "");
    assert!(out.status.success());
    let file = env.dir.path().join("default.toml");
    std::fs::write(&file, stdout(&out)).unwrap();
    let out = env.cli(&["config", "check", file.to_str().unwrap()], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}: ok\n", file.display()));
}

#[test]
fn a_missing_config_file_is_named() {
    let env = Env::new(None);
    let out = env.cli(&["config", "check", "/nonexistent/sekisho.toml"], "");
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot read config file /nonexistent/sekisho.toml"),
        "{}",
        stderr(&out)
    );
}

#[tokio::test]
async fn user_add_works_offline_and_refuses_bad_input() {
    let env = Env::new(None);
    let out = env.cli(
        &[
            "user",
            "add",
            "--username",
            "hana",
            "--role",
            "approver",
            "--password-stdin",
        ],
        "a long approver password\n",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("created approver account `hana`"),
        "{}",
        stdout(&out)
    );

    let url = format!("sqlite://{}", env.data_dir().join("sekisho.db").display());
    let store = Store::open(&url, 1).await.unwrap();
    let user = store.user_by_username("hana").await.unwrap().unwrap();
    let hash = store.password_hash(user.id).await.unwrap().unwrap();
    let pw = sekisho_domain::secret::Secret::new("a long approver password".to_owned());
    assert!(sekisho_store::password::verify(&pw, &hash));
    store.close().await;

    let cases: [(&[&str], &str, &str); 6] = [
        (
            &["--username", "hana", "--role", "auditor"],
            "another long password\n",
            "username `hana` is already taken",
        ),
        (
            &["--username", "kenji", "--role", "auditor"],
            "short\n",
            "at least 12 characters",
        ),
        (
            &["--username", "Ken Ji", "--role", "auditor"],
            "another long password\n",
            "invalid username `Ken Ji`",
        ),
        (
            &["--username", "vend", "--role", "vendor"],
            "another long password\n",
            "vendor engineers belong to a vendor",
        ),
        (
            &["--username", "boss", "--role", "admin", "--site", "east"],
            "another long password\n",
            "--site limits approvers and auditors only",
        ),
        (
            &[
                "--username",
                "hana",
                "--role",
                "approver",
                "--site",
                "\u{202e}east",
            ],
            "another long password\n",
            "invalid site",
        ),
    ];
    for (args, input, expected) in cases {
        let mut full = vec!["user", "add", "--password-stdin"];
        full.extend_from_slice(args);
        let out = env.cli(&full, input);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert!(
            stderr(&out).contains(expected),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = env.cli(
        &[
            "user",
            "add",
            "--username",
            "x",
            "--role",
            "root",
            "--password-stdin",
        ],
        "",
    );
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("unknown role `root`"),
        "{}",
        stderr(&out)
    );
}

/// Adds events, tampers with the database the way someone with file access would, and
/// checks that `sekisho audit verify` fails and names the row.
async fn tamper_then_verify(env: &Env, url: &str) {
    for name in ["aiko", "bunta", "chika"] {
        let out = env.cli(
            &[
                "user",
                "add",
                "--username",
                name,
                "--role",
                "auditor",
                "--password-stdin",
            ],
            "a long enough password\n",
        );
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = env.cli(&["audit", "verify"], "");
    assert!(out.status.success(), "{}", stdout(&out));
    assert_eq!(
        stdout(&out).lines().next(),
        Some("audit log intact: 3 rows, chain verified up to row 3")
    );
    assert!(
        stdout(&out).contains("checkpoints: none found in"),
        "{}",
        stdout(&out)
    );

    let store = Store::open(url, 1).await.unwrap();
    sqlx::query(
        "UPDATE audit_events SET details = REPLACE(details, 'bunta', 'admin') WHERE seq = 2",
    )
    .execute(store.pool())
    .await
    .unwrap();
    store.close().await;
    let out = env.cli(&["audit", "verify"], "");
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        stdout(&out),
        "audit log BROKEN: row 2 was altered: its content does not match its hash\n"
    );
}

#[tokio::test]
async fn audit_verify_names_an_altered_row_on_sqlite() {
    let env = Env::new(None);
    let url = format!("sqlite://{}", env.data_dir().join("sekisho.db").display());
    tamper_then_verify(&env, &url).await;
}

#[tokio::test]
async fn audit_verify_names_an_altered_row_on_postgresql() {
    let Some(db) = sekisho_testkit::postgres().await else {
        return;
    };
    db.store.close().await;
    let env = Env::new(Some(&db.url));
    tamper_then_verify(&env, &db.url).await;
}

/// Issue #18: rewriting the tail of the log with every hash recomputed and the head moved
/// along passes the chain walk, but not the signed checkpoints the gateway wrote outside the
/// database; removing rows at the end, or forging a checkpoint, is named too.
#[tokio::test]
async fn checkpoints_find_a_tail_rewritten_with_its_hashes() {
    let env = Env::new(None);
    let url = format!("sqlite://{}", env.data_dir().join("sekisho.db").display());
    let server = env.serve();
    let http = server.http();
    let admin = env.admin_password();
    for _ in 0..3 {
        http.login("admin", &admin).await;
    }
    assert!(server.terminate().success());
    let out = env.cli(&["audit", "verify"], "");
    assert!(out.status.success(), "{}", stdout(&out));
    let checkpoints = env.data_dir().join("recordings").join("checkpoints");
    assert!(
        stdout(&out).contains(&format!(
            "signed checkpoints match the log (in {})",
            checkpoints.display()
        )),
        "{}",
        stdout(&out)
    );

    // The last two rows rewritten, hashes and head recomputed: the chain alone is intact.
    let store = Store::open(&url, 1).await.unwrap();
    let mut rows = store.recent_audit_events(2).await.unwrap();
    rows.reverse();
    let mut prev = rows[0].prev_hash.clone();
    for row in &mut rows {
        row.entry.reason = Some("nothing to see".into());
        row.prev_hash = prev.clone();
        row.hash = sekisho_store::audit::chain_hash(&row.prev_hash, &row.entry);
        sqlx::query(
            "UPDATE audit_events SET reason = $1, prev_hash = $2, hash = $3 WHERE seq = $4",
        )
        .bind(&row.entry.reason)
        .bind(&row.prev_hash)
        .bind(&row.hash)
        .bind(row.entry.seq)
        .execute(store.pool())
        .await
        .unwrap();
        prev = row.hash.clone();
    }
    sqlx::query("UPDATE audit_head SET hash = $1 WHERE id = 1")
        .bind(&prev)
        .execute(store.pool())
        .await
        .unwrap();
    let last = rows[1].entry.seq;
    // The API's check says so too, while the gateway runs again on the rewritten log.
    let server = env.serve();
    let http = server.http();
    let admin_token = http.login("admin", &admin).await;
    // The server walks the chain as it starts, before anybody asks: the break is logged, and
    // the report is what the console's audit page gets (it accepts one up to an hour old).
    let log = env.config.with_file_name("serve.log");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains("audit chain BROKEN")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "no walk at start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let asked = jiff::Timestamp::now();
    let (status, kept) = http
        .get("/api/v1/audit/verify?max_age_seconds=3600", &admin_token)
        .await;
    assert_eq!(status, 200, "{kept}");
    assert_eq!(kept["intact"], false, "{kept}");
    let walked: jiff::Timestamp = kept["verified_at"].as_str().unwrap().parse().unwrap();
    assert!(walked < asked, "{kept}");
    let (status, verify) = http.get("/api/v1/audit/verify", &admin_token).await;
    assert_eq!(status, 200);
    assert_eq!(verify["intact"], false, "{verify}");
    assert!(
        verify["problem"]
            .as_str()
            .unwrap()
            .starts_with(&format!("row {last} differs from the checkpoint node")),
        "{verify}"
    );
    assert!(server.terminate().success());
    let out = env.cli(&["audit", "verify"], "");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("audit log intact: "),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains(&format!(
            "audit log BROKEN: row {last} differs from the checkpoint node"
        )),
        "{}",
        stdout(&out)
    );

    // The rewritten rows removed and the head moved back: rows are gone.
    let keep = rows[0].prev_hash.clone();
    sqlx::query("DELETE FROM audit_events WHERE seq >= $1")
        .bind(rows[0].entry.seq)
        .execute(store.pool())
        .await
        .unwrap();
    sqlx::query("UPDATE audit_head SET seq = $1, hash = $2 WHERE id = 1")
        .bind(rows[0].entry.seq - 1)
        .bind(&keep)
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    let out = env.cli(&["audit", "verify"], "");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stdout(&out).contains(&format!("row {last}, checkpointed by node")),
        "{}",
        stdout(&out)
    );
    assert!(stdout(&out).contains("is gone: rows were removed"));

    // A checkpoint edited by hand does not verify.
    let file = std::fs::read_dir(&checkpoints)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let text = std::fs::read_to_string(&file).unwrap();
    let forged = text.replacen("\"seq\":", "\"seq\":1", 1);
    std::fs::write(&file, forged).unwrap();
    let out = env.cli(&["audit", "verify"], "");
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).contains("the checkpoint's signature does not verify"),
        "{}",
        stdout(&out)
    );
}
