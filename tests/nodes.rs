//! Several gateway nodes on one PostgreSQL acting as one Sekisho (issue #15): two real
//! `sekisho serve` processes, one real PostgreSQL, one shared recordings directory, stock
//! `ssh` through node B while the approver acts on node A.

mod support;

use std::process::Stdio;
use std::time::{Duration, Instant};

use serde_json::json;
use support::gateway::ssh_options;
use support::nodes::{
    Group, ended, live, nodes, register_vendors, serve_to_the_end, shared_config, ssh_via,
};
use support::{Env, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_postgresql_act_as_one() {
    let Some(Group {
        world: mut w,
        db,
        recordings,
        env_b,
        b: mut server_b,
    }) = Group::start().await
    else {
        return;
    };
    let a = w.http.clone();
    let b = server_b.http();
    let b_ssh = server_b.ssh_port().unwrap();

    // A node with keys of its own is refused, with what to do.
    let stranger = Env::new(Some(&db.url));
    shared_config(&stranger, recordings.path(), "stranger");
    let out = serve_to_the_end(&stranger);
    assert!(!out.status.success());
    assert!(
        stderr(&out)
            .contains("this node's keys are not those of the nodes already using this database")
            && stderr(&out).contains("sekisho node join"),
        "{}",
        stderr(&out)
    );

    // One identity: the same SSH host key, and A's tokens are good on B.
    assert_eq!(
        server_b.ssh_host_key().unwrap(),
        w.server.as_ref().unwrap().ssh_host_key().unwrap()
    );
    let listed = nodes(&b, &w.approver).await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|n| n["state"] == "up"), "{listed:?}");
    let names: Vec<_> = listed.iter().map(|n| n["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["node-a", "node-b"]);

    // Stock ssh through B (the target credential sealed by A opens on B); terminate through
    // A's API ends it within a second.
    let request = w.approved("reference").await;
    let mut child = ssh_via(
        &w,
        b_ssh,
        "echo nodes-marker-$((6*7)); echo ready; sleep 60",
    );
    let session = live(&w, &mut child).await;
    let id = session["id"].as_str().unwrap().to_owned();
    // Watched live through A: the screen B is recording, read from the shared directory.
    let deadline = Instant::now() + Duration::from_secs(10);
    let screen = loop {
        // Nothing until B's writer flushes (once a second), then the terminal.
        let (status, screen) = a
            .get(&format!("/api/v1/recordings/{id}/screen"), &w.approver)
            .await;
        assert_eq!(status, 200, "{screen}\n{}", w.log());
        if screen.to_string().contains("nodes-marker-42") || Instant::now() > deadline {
            break screen;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(screen["live"], true, "{screen}");
    assert!(screen.to_string().contains("nodes-marker-42"), "{screen}");
    let since = Instant::now();
    w.terminate(&id).await;
    let (took, err) = ended(child, since);
    eprintln!("terminate on A → ssh through B closed in {took:?}");
    assert!(took < Duration::from_secs(1), "terminate took {took:?}");
    assert!(err.contains("an approver terminated this session"), "{err}");
    assert_eq!(w.wait_ended(&id).await["end"], "terminated");

    // Its recording, written by B in the shared directory, is listed, verified and searched
    // through A.
    let (status, list) = a.get("/api/v1/recordings", &w.approver).await;
    assert_eq!(status, 200, "{list}");
    assert!(list.to_string().contains(&id), "{list}");
    let (status, verify) = a
        .get(&format!("/api/v1/recordings/{id}/verify"), &w.approver)
        .await;
    assert_eq!(status, 200, "{verify}");
    assert_eq!(verify["problems"], json!([]), "{verify}");
    let (status, found) = a
        .get("/api/v1/recordings/search?q=nodes-marker-42", &w.approver)
        .await;
    assert_eq!(status, 200, "{found}");
    assert!(found.to_string().contains(&id), "{found}");

    // Revoking the request through A ends B's session within a second.
    let mut child = ssh_via(&w, b_ssh, "echo ready; sleep 60");
    live(&w, &mut child).await;
    let since = Instant::now();
    w.revoke(&request).await;
    let (took, err) = ended(child, since);
    eprintln!("revoke on A → ssh through B closed in {took:?}");
    assert!(took < Duration::from_secs(1), "revoke took {took:?}");
    assert!(err.contains("was revoked"), "{err}");

    // Both nodes append to one audit chain at once.
    tokio::join!(
        register_vendors(a.clone(), w.admin.clone(), "A".into(), 15),
        register_vendors(b.clone(), w.admin.clone(), "B".into(), 15)
    );
    let created = w.audit("kind=vendor_created&limit=1000").await;
    assert_eq!(created.len(), 31, "one vendor of the set-up and 30 more");

    // kill -9 B mid-session: A marks the session aborted within the configured time, seals
    // its recording, and audits the node down.
    w.approved("reference").await;
    let mut child = ssh_via(&w, b_ssh, "echo ready; sleep 60");
    let session = live(&w, &mut child).await;
    let id = session["id"].as_str().unwrap().to_owned();
    server_b.child.kill().unwrap();
    server_b.child.wait().unwrap();
    let killed = Instant::now();
    let _ = child.kill();
    let ended_session = w.wait_ended(&id).await;
    eprintln!(
        "node B killed → session marked aborted after {:?}",
        killed.elapsed()
    );
    assert_eq!(ended_session["end"], "aborted", "{ended_session}");
    assert!(
        killed.elapsed() < Duration::from_secs(4 + 3),
        "{:?}",
        killed.elapsed()
    );
    let down = w.audit("kind=node_down").await;
    assert_eq!(down.len(), 1, "{down:?}");
    assert_eq!(down[0]["details"]["name"], "node-b");
    assert!(down[0]["details"]["sessions"].to_string().contains(&id));
    let listed = nodes(&a, &w.approver).await;
    assert_eq!(listed[1]["state"], "down", "{listed:?}");
    // The console's live sessions page says so, in both languages.
    for (lang, words) in [("en", "node-b down"), ("ja", "node-b ダウン")] {
        let (_, page) = a
            .console("/console/sessions", &w.approver, Some(lang))
            .await;
        let page = String::from_utf8(page).unwrap();
        assert!(page.contains(words) && page.contains("node-a"), "{page}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let verify = loop {
        let (_, verify) = a
            .get(&format!("/api/v1/recordings/{id}/verify"), &w.approver)
            .await;
        if verify["state"] == "aborted" || Instant::now() > deadline {
            break verify;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(verify["state"], "aborted", "{verify}");
    assert_eq!(verify["problems"], json!([]), "{verify}");

    // B comes back while a session runs on A: B's start seals what it left open, not the
    // recording A is writing in the shared directory.
    let mut on_a = ssh_via(&w, w.ssh_port, "echo ready; sleep 60");
    let session_a = live(&w, &mut on_a).await;
    let id_a = session_a["id"].as_str().unwrap().to_owned();
    let server_b = env_b.serve();
    let b = server_b.http();
    let b_ssh = server_b.ssh_port().unwrap();
    assert_eq!(nodes(&a, &w.approver).await[1]["state"], "up");
    let (_, manifest) = a
        .get(&format!("/api/v1/recordings/{id_a}"), &w.approver)
        .await;
    assert_eq!(manifest["state"], "open", "{manifest}");
    w.terminate(&id_a).await;
    ended(on_a, Instant::now());
    w.wait_ended(&id_a).await;
    let (_, verify) = a
        .get(&format!("/api/v1/recordings/{id_a}/verify"), &w.approver)
        .await;
    assert_eq!(verify["state"], "closed", "{verify}");
    assert_eq!(verify["problems"], json!([]), "{verify}");

    // The nodes' listening connections are cut (as a database restart or a network cut
    // would). A terminate stored meanwhile without a notification is honoured as soon as B
    // listens again (every session re-checks then), not at the next 10 s re-check; and a
    // terminate reaches B again within a second afterwards.
    let mut child = ssh_via(&w, b_ssh, "echo ready; sleep 60");
    let session = live(&w, &mut child).await;
    let store = sekisho_store::Store::open(&db.url, 1).await.unwrap();
    sqlx::query("UPDATE sessions SET terminate_requested_at = 1 WHERE id = $1")
        .bind(session["id"].as_str().unwrap())
        .execute(store.pool())
        .await
        .unwrap();
    let since = Instant::now();
    let cut = sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%'",
    )
    .fetch_all(store.pool())
    .await
    .unwrap();
    assert_eq!(cut.len(), 2, "one listening connection per node");
    store.close().await;
    let (took, err) = ended(child, since);
    eprintln!("terminate stored while the listeners were cut → ended after {took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(err.contains("an approver terminated this session"), "{err}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut child = ssh_via(&w, b_ssh, "echo ready; sleep 60");
    let session = live(&w, &mut child).await;
    let since = Instant::now();
    w.terminate(session["id"].as_str().unwrap()).await;
    let (took, _) = ended(child, since);
    eprintln!("terminate after the listeners were cut → ended in {took:?}");
    assert!(took < Duration::from_secs(1), "{took:?}");
    // A terminate whose notification never arrived (written straight into the database, as
    // a node cut off from the others would find it) is honoured at the next re-check.
    let mut child = ssh_via(&w, b_ssh, "echo ready; sleep 60");
    let session = live(&w, &mut child).await;
    let store = sekisho_store::Store::open(&db.url, 1).await.unwrap();
    sqlx::query("UPDATE sessions SET terminate_requested_at = 1 WHERE id = $1")
        .bind(session["id"].as_str().unwrap())
        .execute(store.pool())
        .await
        .unwrap();
    store.close().await;
    let (took, err) = ended(child, Instant::now());
    eprintln!("terminate without a notification → ended after {took:?}");
    assert!(took < Duration::from_secs(12), "{took:?}");
    assert!(err.contains("an approver terminated this session"), "{err}");

    let mut child = ssh_via(&w, b_ssh, "echo ready; sleep 60");
    live(&w, &mut child).await;
    let since = Instant::now();
    w.disable_alice().await;
    let (took, err) = ended(child, since);
    eprintln!("disable on A → ssh through B closed in {took:?}");
    assert!(took < Duration::from_secs(1), "disable took {took:?}");
    assert!(err.contains("was disabled"), "{err}");
    w.set_alice_status("active").await;

    // B frozen (SIGSTOP) longer than down_after_seconds: A marks it down and ends its session
    // in the database; when B runs again it learns it was marked down and ends the session
    // itself, telling the vendor why.
    let mut child = ssh_via(&w, b_ssh, "echo ready; sleep 60");
    let frozen = live(&w, &mut child).await;
    support::signal(&server_b.child, "STOP");
    let ended_in_db = w.wait_ended(frozen["id"].as_str().unwrap()).await;
    support::signal(&server_b.child, "CONT");
    assert_eq!(ended_in_db["end"], "aborted", "{ended_in_db}");
    let (took, err) = ended(child, Instant::now());
    eprintln!(
        "node B frozen and marked down → its vendor disconnected {took:?} after it ran again"
    );
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert!(
        err.contains("another gateway node ended this session"),
        "{err}"
    );
    // Its recording, sealed by A while B was frozen and sealed again by B with everything it
    // wrote, verifies.
    let frozen_id = frozen["id"].as_str().unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let verify = loop {
        let (_, v) = a
            .get(
                &format!("/api/v1/recordings/{frozen_id}/verify"),
                &w.approver,
            )
            .await;
        if v["problems"] == json!([]) || Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(verify["problems"], json!([]), "{verify}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while nodes(&a, &w.approver).await[1]["state"] != "up" {
        assert!(Instant::now() < deadline, "B did not come back up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // Suspending the vendor through A ends B's session within a second, too.
    let (_, vendors) = a.get("/api/v1/vendors", &w.admin).await;
    let vendor = vendors
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "Acme Medical")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let vendor_status = |status: &'static str| {
        let (a, admin, vendor) = (a.clone(), w.admin.clone(), vendor.clone());
        async move {
            let (code, body) = a
                .send(
                    reqwest::Method::PATCH,
                    &format!("/api/v1/vendors/{vendor}"),
                    Some(&admin),
                    Some(json!({ "status": status })),
                )
                .await;
            assert_eq!(code, 200, "{body}");
        }
    };
    let mut child = ssh_via(&w, b_ssh, "echo ready; sleep 60");
    live(&w, &mut child).await;
    let since = Instant::now();
    vendor_status("suspended").await;
    let (took, err) = ended(child, since);
    eprintln!("suspend on A → ssh through B closed in {took:?}");
    assert!(took < Duration::from_secs(1), "suspend took {took:?}");
    assert!(err.contains("suspended"), "{err}");
    vendor_status("active").await;

    // Failover drill: A stops gracefully with a live session; B serves new connections at
    // once; the audit log has each stop once and its chain is intact.
    let mut child = ssh_via(&w, w.ssh_port, "echo ready; sleep 60");
    live(&w, &mut child).await;
    let stopped = w.server.take().unwrap().terminate();
    assert!(stopped.success());
    let (_, err) = ended(child, Instant::now());
    assert!(err.contains("shutting down"), "{err}");
    let out = std::process::Command::new("ssh")
        .arg("-p")
        .arg(b_ssh.to_string())
        .args(ssh_options(&w.alice_key))
        .arg("alice+pacs@127.0.0.1")
        .arg("whoami")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(stdout(&out), "sekisho-ro\n", "{}", stderr(&out));
    let listed = nodes(&b, &w.approver).await;
    assert_eq!(listed[0]["state"], "stopped", "{listed:?}");
    assert_eq!(listed[0]["live_sessions"], 0, "{listed:?}");
    let (_, stops) = b
        .get("/api/v1/audit?kind=gateway_stopped&limit=100", &w.approver)
        .await;
    assert_eq!(stops["events"].as_array().unwrap().len(), 1, "{stops}");
    let (_, verify) = b.get("/api/v1/audit/verify", &w.approver).await;
    assert_eq!(verify["intact"], true, "{verify}");
    let out = env_b.cli(&["node", "list"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let list = stdout(&out);
    let line = |name: &str| {
        list.lines()
            .find(|l| l.contains(name))
            .unwrap_or("")
            .to_owned()
    };
    assert!(line("node-a").contains("stopped"), "{list}");
    assert!(line("node-b").contains("up"), "{list}");
    server_b.terminate();
    let out = w.env.cli(&["audit", "verify"], "");
    assert!(out.status.success(), "{}", stdout(&out));
}

/// With the embedded SQLite database a second `sekisho serve` on the same data refuses to
/// start, naming the lock, instead of writing the same file.
#[tokio::test]
async fn a_second_node_on_the_same_sqlite_data_refuses_to_start() {
    let env = Env::new(None);
    let server = env.serve();
    let out = serve_to_the_end(&env);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("sekisho.lock is locked by another running sekisho")
            && err.contains("a second node needs its own data directory"),
        "{err}"
    );
    // The first one is unharmed, and the lock goes with it.
    let http = server.http();
    let token = http.login("admin", &env.admin_password()).await;
    assert!(!token.is_empty());
    assert!(server.terminate().success());
    let again = env.serve();
    assert!(again.terminate().success());
}

/// `sekisho node rotate-token-key` on node B with a rolling restart: tokens signed with B's
/// new key work on A at once, and tokens signed before keep working on both nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_rotates_its_token_key_while_the_other_serves() {
    let Some(Group {
        world: w,
        env_b,
        b: server_b,
        ..
    }) = Group::start().await
    else {
        return;
    };
    let a = w.http.clone();
    let kid = |token: &str| -> String {
        use base64::Engine;
        let head = token.split('.').next().unwrap();
        let head = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(head)
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&head).unwrap()["kid"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let before = server_b.http().login("hana", "approver password 1").await;
    assert!(server_b.terminate().success());
    let out = env_b.cli(&["node", "rotate-token-key"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("new token key"), "{}", stdout(&out));
    let server_b = env_b.serve();
    let b = server_b.http();
    let after = b.login("hana", "approver password 1").await;
    assert_ne!(kid(&before), kid(&after));
    for (http, token, what) in [
        (&a, &after, "B's new key on A"),
        (&b, &after, "B's new key on B"),
        (&a, &before, "B's old key on A"),
        (&b, &before, "B's old key on B"),
        (&b, &w.approver, "A's key on B"),
    ] {
        let (status, body) = http.get("/api/v1/auth/me", token).await;
        assert_eq!(status, 200, "{what}: {body}");
    }
    let rotated = w.audit("kind=token_key_rotated").await;
    assert_eq!(rotated.len(), 1, "{rotated:?}");
    assert_eq!(rotated[0]["details"]["kid"], kid(&after).as_str());
    let published = w.audit("kind=token_key_published").await;
    assert!(
        published
            .iter()
            .any(|e| e["details"]["kid"] == kid(&after).as_str()),
        "{published:?}"
    );
    assert!(server_b.terminate().success());
}
