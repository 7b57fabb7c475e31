//! The OpenAPI document tells the truth: Schemathesis, a schema-driven fuzzer, runs every
//! check it has (server errors, undocumented statuses, response schemas, schema-valid data
//! refused, schema-invalid data accepted, authentication ignored, ...) against a real
//! `sekisho serve` and finds nothing. Rules a schema cannot express are declared per
//! operation, each with its reason, in `tests/schemathesis.toml`.
//!
//! `.ci/run` installs Schemathesis (PyPI); without it the test is skipped loudly, except in CI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::process::Command;

use support::Env;
use support::gateway::add_vendor;

fn schemathesis() -> Option<&'static str> {
    let found = Command::new("schemathesis")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("schemathesis");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "schemathesis is required in CI (.ci/run installs it with pip)"
    );
    eprintln!("SKIPPED: schemathesis not installed (python3 -m pip install schemathesis)");
    None
}

/// One fuzzing run over the operations `filter` selects; panics with the report on failure.
///
/// One failure is the fuzzer's own, not ours: CPython 3.11's `ast` module sometimes raises
/// "AST constructor recursion depth mismatch" inside Hypothesis while it describes a lambda
/// (seen once in CI on an operation that passed every other run). A report whose only
/// problem is that error is run again once, and says so; any finding about the API fails.
fn fuzz(st: &str, server: &support::Server, token: &str, filter: &[&str]) {
    let (ok, report) = fuzz_once(st, server, token, filter);
    if ok {
        return;
    }
    let fuzzer_only = report.contains("AST constructor recursion depth mismatch")
        && !report.contains("= FAILURES =");
    assert!(fuzzer_only, "schemathesis found problems:\n{report}");
    eprintln!("schemathesis crashed inside Python's ast module (not a finding); running again");
    let (ok, report) = fuzz_once(st, server, token, filter);
    assert!(ok, "schemathesis found problems:\n{report}");
}

/// A run: whether it passed, and its report.
fn fuzz_once(st: &str, server: &support::Server, token: &str, filter: &[&str]) -> (bool, String) {
    let base = server.base();
    let certificate = server.certificate.as_ref().unwrap();
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemathesis.toml");
    // Schemathesis keeps a cache of earlier failures (`.schemathesis/`) in its working
    // directory and replays them: each run starts from none.
    let workdir = tempfile::tempdir().unwrap();
    let out = Command::new(st)
        .current_dir(workdir.path())
        .arg("--config-file")
        .arg(&config)
        .arg("run")
        .arg(format!("{base}/api/v1/openapi.json"))
        .args(["-H", &format!("Authorization: Bearer {token}")])
        .args(["--checks", "all", "--max-examples", "25", "--workers", "2"])
        .args(["--seed", "20261130", "--no-color"])
        .arg("--tls-verify")
        .arg(certificate)
        .args(filter)
        .env("SCHEMATHESIS_HOOKS", "")
        .output()
        .unwrap();
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(report.contains("Tested:"), "{report}");
    (out.status.success(), report)
}

#[tokio::test]
async fn a_schema_driven_fuzzer_with_every_check_finds_nothing() {
    let Some(st) = schemathesis() else { return };
    let env = Env::new(None);
    // Longer than any pause between the fuzzer's phases: its HTTP client reuses idle
    // connections, and one closed under it would be reported as a network error.
    env.set("api", "header_read_timeout_seconds", "120");
    let server = env.serve();
    let http = server.http();
    let token = http.login("admin", &env.admin_password()).await;
    // A vendor engineer's view first (filing, cancelling, reporting are theirs).
    add_vendor(
        &http,
        &token,
        "Acme Medical",
        "alice",
        "a vendor pass phrase 9",
    )
    .await;
    let vendor = http.login("alice", "a vendor pass phrase 9").await;
    fuzz(st, &server, &vendor, &[]);
    // Changing accounts may change the admin's own password (which rightly revokes the
    // token the run uses): that operation gets a run of its own, last.
    fuzz(
        st,
        &server,
        &token,
        &["--exclude-name", "PATCH /api/v1/users/{id}"],
    );
    fuzz(
        st,
        &server,
        &token,
        &["--include-name", "PATCH /api/v1/users/{id}"],
    );
    let log = std::fs::read_to_string(env.config.with_file_name("serve.log")).unwrap();
    assert!(!log.contains("panicked"), "{log}");
}
