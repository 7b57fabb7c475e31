//! Issue #19, `sekisho doctor`, against real parts: a running `sekisho serve` on fixed ports,
//! chronyd answering NTP, an SMTP server and a scan command: every check says ok and the exit
//! status is 0. Then a mail server and a clamd that are not there: each fails with how to fix
//! it and the exit status is 1; with the server stopped, its listeners are reported silent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use sekisho_testkit::ntp::Chronyd;
use sekisho_testkit::port::free_port;
use sekisho_testkit::smtp::{Smtp, SmtpOptions};
use support::{Env, stderr, stdout};

fn doctor(env: &Env) -> (bool, String) {
    let out = env.cli(&["doctor"], "");
    (
        out.status.success(),
        format!("{}{}", stdout(&out), stderr(&out)),
    )
}

fn has(report: &str, line: &str) {
    assert!(
        report.lines().any(|l| l.starts_with(line)),
        "no line starting {line:?} in:\n{report}"
    );
}

#[test]
fn the_doctor_says_ok_for_what_works_and_how_to_fix_what_does_not() {
    let (Some(ntp), Some(smtp)) = (Chronyd::start(None), Smtp::start(SmtpOptions::default()))
    else {
        return;
    };
    let env = Env::new(None);
    let (api, ssh) = (free_port(), free_port());
    let text = std::fs::read_to_string(&env.config).unwrap();
    let text = text
        .replacen(
            "[api]\nlisten = \"127.0.0.1:0\"",
            &format!("[api]\nlisten = \"127.0.0.1:{api}\""),
            1,
        )
        .replacen(
            "[ssh]\nlisten = \"127.0.0.1:0\"",
            &format!("[ssh]\nlisten = \"127.0.0.1:{ssh}\""),
            1,
        );
    std::fs::write(&env.config, text).unwrap();
    let base = std::fs::read_to_string(&env.config).unwrap();
    let working = format!(
        "[time]\nntp_servers = [\"{}\"]\n\
         [notifications]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {}\nfrom = \"sekisho@hospital.example\"\n\
         [files]\nscan_command = [\"/bin/true\"]\n",
        ntp.addr(),
        smtp.port
    );
    std::fs::write(&env.config, format!("{base}{working}")).unwrap();
    let server = env.serve();

    let (ok, report) = doctor(&env);
    assert!(ok, "{report}");
    for line in [
        "ok   config: valid",
        "ok   database:",
        &format!("ok   api listener: 127.0.0.1:{api} answers"),
        &format!("ok   ssh listener: 127.0.0.1:{ssh} answers"),
        "ok   designated-client CA: valid for",
        "ok   gateway TLS certificate: valid for",
        "ok   clock:",
        "ok   scanner: answers and passes a clean file",
        "ok   smtp: 127.0.0.1:",
    ] {
        has(&report, line);
    }
    assert!(!report.contains("FAIL"), "{report}");
    // Free space is this machine's: ok or a warning, but measured.
    assert!(
        report
            .lines()
            .any(|l| l.contains(" disk: ") && l.contains("GiB free of")),
        "{report}"
    );

    // A mail server and a clamd that are not there: each named, with the fix; exit 1.
    let gone = free_port();
    let broken = format!(
        "[time]\nntp_servers = [\"{}\"]\n\
         [notifications]\nsmtp_host = \"127.0.0.1\"\nsmtp_port = {gone}\nfrom = \"sekisho@hospital.example\"\n\
         [files]\nclamd = \"{}\"\n",
        ntp.addr(),
        env.dir.path().join("no-clamd.sock").display()
    );
    std::fs::write(&env.config, format!("{base}{broken}")).unwrap();
    let (ok, report) = doctor(&env);
    assert!(!ok, "{report}");
    has(&report, &format!("FAIL smtp: 127.0.0.1:{gone}"));
    has(&report, "FAIL scanner: clamd at");
    assert!(report.contains("fix: start the scanner"), "{report}");
    assert!(
        report.contains("fix: check [notifications] smtp_host"),
        "{report}"
    );

    // With the server stopped, its listeners are silent: said, with how to start it.
    drop(server);
    std::fs::write(&env.config, format!("{base}{working}")).unwrap();
    let (ok, report) = doctor(&env);
    assert!(ok, "warnings are not failures: {report}");
    has(
        &report,
        &format!("warn api listener: nothing listens on 127.0.0.1:{api}"),
    );
    assert!(report.contains("fix: start Sekisho"), "{report}");
    // It changed nothing: the database is as the server left it.
    has(&report, "ok   database:");
}
