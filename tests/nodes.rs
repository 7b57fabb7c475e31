//! Several gateway nodes on one PostgreSQL acting as one Sekisho (issue #15): two real
//! `sekisho serve` processes, one real PostgreSQL, one shared recordings directory, stock
//! `ssh` through node B while the approver acts on node A.

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::nodes::{
    Group, at_rest_kids, ended, join, live, nodes, register_vendors, serve_to_the_end,
    shared_config, ssh_echoes, ssh_via,
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
    let out = w.ssh_to(b_ssh, "alice+pacs", &["whoami"]).output().unwrap();
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

/// `sekisho node rotate-token-key` on node B while B serves (no restart): B signs with the
/// new key within a heartbeat, tokens signed with it work on A at once, and tokens signed
/// before keep working on both nodes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_rotates_its_token_key_while_it_serves() {
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
    let b = server_b.http();
    let before = b.login("hana", "approver password 1").await;
    let out = env_b.cli(&["node", "rotate-token-key"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("new token key"), "{}", stdout(&out));
    assert!(
        stdout(&out).contains("signs with it within 1 s"),
        "{}",
        stdout(&out)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let after = loop {
        let token = b.login("hana", "approver password 1").await;
        if kid(&token) != kid(&before) {
            break token;
        }
        assert!(
            Instant::now() < deadline,
            "B still signs with {}",
            kid(&before)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
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

/// `sekisho node rotate-at-rest-key` on node A while both nodes serve and a session runs: a
/// node that does not follow holds the rotation back (the command says which and stops,
/// nothing changes), the command run again finishes it; every sealed value is then sealed
/// under the new key, both nodes hold only the new key, sessions through both nodes and a
/// second factor still work, each step is audited, and a node that was away refuses to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_group_replaces_its_at_rest_key_while_both_nodes_serve() {
    let Some(Group {
        world: w,
        db,
        recordings,
        env_b,
        b: server_b,
    }) = Group::start().await
    else {
        return;
    };
    let b_ssh = server_b.ssh_port().unwrap();
    let key_file =
        |env: &Env| std::fs::read_to_string(env.data_dir().join("keys/at-rest.key")).unwrap();
    let old_text = key_file(&w.env);
    assert_eq!(old_text, key_file(&env_b));
    let old = at_rest_kids(&w.env);
    assert_eq!(old.len(), 1);
    let (secret, _) = w.enrol_mfa("hana", "approver password 1").await;
    w.approved("reference").await;
    let mut running = ssh_via(&w, b_ssh, "echo ready; sleep 60");
    let session = live(&w, &mut running).await;

    // Node B stops answering for a moment: the rotation waits for it, then says so and stops.
    support::signal(&server_b.child, "STOP");
    let out = w
        .env
        .cli(&["node", "rotate-at-rest-key", "--wait", "1"], "");
    support::signal(&server_b.child, "CONT");
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("to take the new key")
            && err.contains("node-b")
            && err.contains("run this command again"),
        "{err}"
    );
    let staged = w.audit("kind=at_rest_key_staged").await;
    assert_eq!(staged.len(), 1, "{staged:?}");
    let new = staged[0]["details"]["kid"].as_str().unwrap().to_owned();
    assert_eq!(staged[0]["details"]["previous_kid"], old[0].as_str());
    assert!(w.audit("kind=at_rest_key_activated").await.is_empty());

    // Run again: it resumes and finishes, the session carrying on throughout.
    let out = w
        .env
        .cli(&["node", "rotate-at-rest-key", "--wait", "60"], "");
    assert!(out.status.success(), "{}\n{}", stderr(&out), stdout(&out));
    let said = stdout(&out);
    eprintln!("first run:\n{err}\nsecond run:\n{said}");
    assert!(
        said.contains(&format!("resuming the rotation to at-rest key {new}")),
        "{said}"
    );
    assert!(
        said.contains(&format!("the group's at-rest key is {new}")),
        "{said}"
    );
    assert!(running.try_wait().unwrap().is_none(), "the session ended");
    w.terminate(session["id"].as_str().unwrap()).await;
    ended(running, Instant::now());

    // Both nodes keep only the new key (each writes its own file at its next heartbeat).
    let deadline = Instant::now() + Duration::from_secs(10);
    while [&w.env, &env_b]
        .iter()
        .any(|e| at_rest_kids(e) != [new.clone()])
    {
        assert!(
            Instant::now() < deadline,
            "A: {:?} B: {:?}",
            at_rest_kids(&w.env),
            at_rest_kids(&env_b)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let listed = nodes(&w.http, &w.approver).await;
    assert!(
        listed.iter().all(|n| n["at_rest_keys"] == json!([new])),
        "{listed:?}"
    );

    // Every sealed value is sealed under the new key; the old key opens none of them.
    let store = sekisho_store::Store::open(&db.url, 1).await.unwrap();
    assert_eq!(store.sealed_by_other_keys(&new).await.unwrap(), 0);
    let old_ring = sekisho_store::crypto::AtRestKey::from_ring_text(&old_text).unwrap();
    let target: sekisho_domain::ids::TargetId = w.target_id.parse().unwrap();
    let err = store
        .target_credential(
            &old_ring,
            target,
            sekisho_domain::target::AccessLevel::Reference,
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains(&new), "{err}");
    store.close().await;
    let resealed = w.audit("kind=at_rest_key_resealed").await;
    assert_eq!(resealed.len(), 1, "{resealed:?}");
    assert!(
        resealed[0]["details"]["credentials"].as_u64().unwrap() >= 1,
        "{resealed:?}"
    );
    assert_eq!(resealed[0]["details"]["second_factors"], 1, "{resealed:?}");
    let activated = w.audit("kind=at_rest_key_activated").await;
    assert_eq!(
        activated[0]["details"]["nodes"].as_array().unwrap().len(),
        2,
        "{activated:?}"
    );
    let retired = w.audit("kind=at_rest_key_retired").await;
    assert_eq!(retired[0]["details"]["kid"], old[0].as_str(), "{retired:?}");

    // Sessions through both nodes open the credentials; the second factor still opens.
    for port in [w.ssh_port, b_ssh] {
        ssh_echoes(&w, port);
    }
    let (status, body) = server_b
        .http()
        .send(
            reqwest::Method::POST,
            "/api/v1/auth/login",
            None,
            Some(json!({"username": "hana", "password": "approver password 1", "otp": support::gateway::totp_in(&secret, 1)})),
        )
        .await;
    assert_eq!(status, 200, "{body}");

    // A node that joined with the export made before the rotation does not start.
    let late = Env::new(Some(&db.url));
    shared_config(&late, recordings.path(), "node-late");
    let export = w.env.dir.path().join("group.json");
    let out = join(&late, &export);
    assert!(out.status.success(), "{}", stderr(&out));
    let out = serve_to_the_end(&late);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(&format!("does not hold the group's at-rest key {new}")),
        "{}",
        stderr(&out)
    );

    let out = w.env.cli(&["audit", "verify"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(server_b.terminate().success());
}

/// One node on SQLite: the at-rest key is replaced while the node serves (the node writes
/// its key file), then again with the node stopped (the command writes it, holding the data
/// directory's lock); the node started again opens the credentials sealed under the newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_node_replaces_its_at_rest_key_serving_and_stopped() {
    let Some(mut w) = support::gateway::World::new(support::gateway::Pin::Real).await else {
        return;
    };
    let first = at_rest_kids(&w.env);
    w.approved("reference").await;
    ssh_echoes(&w, w.ssh_port);

    let out = w
        .env
        .cli(&["node", "rotate-at-rest-key", "--wait", "60"], "");
    assert!(out.status.success(), "{}\n{}", stderr(&out), stdout(&out));
    let second = w.audit("kind=at_rest_key_activated").await[0]["details"]["kid"]
        .as_str()
        .unwrap()
        .to_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while at_rest_kids(&w.env) != [second.clone()] {
        assert!(Instant::now() < deadline, "{:?}", at_rest_kids(&w.env));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_ne!(first, [second.as_str()]);
    ssh_echoes(&w, w.ssh_port);

    assert!(w.server.take().unwrap().terminate().success());
    let out = w.env.cli(&["node", "rotate-at-rest-key"], "");
    assert!(out.status.success(), "{}\n{}", stderr(&out), stdout(&out));
    let third = at_rest_kids(&w.env);
    assert_eq!(third.len(), 1);
    assert_ne!(third, [second.as_str()]);
    assert!(
        stdout(&out).contains(&format!("the group's at-rest key is {}", third[0])),
        "{}",
        stdout(&out)
    );
    w.restart().await;
    ssh_echoes(&w, w.ssh_port);
    let retired = w.audit("kind=at_rest_key_retired").await;
    assert_eq!(retired.len(), 2, "{retired:?}");
    let out = w.env.cli(&["audit", "verify"], "");
    assert!(out.status.success(), "{}", stderr(&out));
}
