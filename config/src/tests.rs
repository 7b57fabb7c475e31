use super::*;

#[test]
fn the_default_file_is_the_default_config() {
    assert_eq!(Config::parse(DEFAULT_FILE).unwrap(), Config::default());
}

#[test]
fn an_empty_file_is_the_default_config() {
    assert_eq!(Config::parse("").unwrap(), Config::default());
}

#[test]
fn values_are_read() {
    let c = Config::parse(
        r#"
data_dir = "/var/lib/sekisho"
[database]
url = "postgres://u@localhost/s"
[api]
listen = "0.0.0.0:9000"
[ssh]
enabled = false
[policy]
approvals_for_change = 2
checklist = [{ key = "mfa", label = "MFA" }]
[time]
zone = "UTC"
"#,
    )
    .unwrap();
    assert_eq!(c.data_dir, PathBuf::from("/var/lib/sekisho"));
    assert_eq!(c.database_url(), "postgres://u@localhost/s");
    assert_eq!(c.api.listen.port(), 9000);
    assert!(!c.ssh.enabled);
    assert_eq!(c.domain_policy().approvals_for_change, 2);
    assert_eq!(c.policy.checklist.len(), 1);
    assert_eq!(
        c.recordings_dir(),
        PathBuf::from("/var/lib/sekisho/recordings")
    );
}

#[test]
fn every_problem_is_reported_with_key_and_line() {
    let text = "\
[api]
listen = \"nowhere\"
[ssh]
listne = \"127.0.0.1:22\"
[policy]
approvals_for_change = 0
[time]
zone = \"Mars/Olympus\"
";
    let problems = Config::parse(text).unwrap_err();
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        vec![
            "line 2: `api.listen`: `nowhere` is not an address with a port, e.g. 127.0.0.1:8080",
            "line 4: `ssh.listne`: unknown key in [ssh]; known keys: enabled, listen, accept_env, connect_timeout_seconds, upload_ban_command_input_bytes, upload_ban_terminal_input_bytes, paste_flag_bytes, login_grace_seconds, max_unauthenticated_per_source, max_unauthenticated",
            "line 6: `policy.approvals_for_change`: 0 is out of range: must be 1 to 10",
            "line 8: `time.zone`: `Mars/Olympus` is not a known time zone (IANA name such as Asia/Tokyo)",
        ]
    );
}

#[test]
fn wrong_types_unknown_sections_and_conflicts_are_problems() {
    let text = "\
colour = \"blue\"
[ssh]
enabled = \"yes\"
listen = \"127.0.0.1:8443\"
[log]
format = \"xml\"
";
    let problems = Config::parse(text).unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        vec!["colour", "ssh.enabled", "ssh.listen", "log.format"]
    );
    assert!(
        problems[2].message.contains("already used by `api.listen`"),
        "{:?}",
        problems[2]
    );
}

#[test]
fn syntax_errors_name_the_line() {
    let problems = Config::parse("[api]\nlisten = \n").unwrap_err();
    assert_eq!(problems.len(), 1);
    assert_eq!(problems[0].line, Some(2));
    assert_eq!(problems[0].key, "(syntax)");
}

#[test]
fn bad_checklists_are_explained() {
    let problems = Config::parse(
        "[[policy.checklist]]\nkey = \"mfa\"\n[[policy.checklist]]\nkey = \"mfa\"\nlabel = \"again\"\nextra = 1\n",
    )
    .unwrap_err();
    let shown: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        shown
            .iter()
            .any(|s| s.contains("`policy.checklist.label`: missing")),
        "{shown:?}"
    );
    assert!(
        shown.iter().any(|s| s.contains("`policy.checklist.extra`")),
        "{shown:?}"
    );
}

#[test]
fn load_reports_the_file_name_and_counts_problems() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("s.toml");
    std::fs::write(&path, "[api]\nlisten = 1\n[nope]\n").unwrap();
    let err = Config::load(&path).unwrap_err();
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("{}: 2 problems", path.display())),
        "{text}"
    );
    assert!(matches!(
        Config::load(&dir.path().join("missing.toml")),
        Err(ConfigError::Read { .. })
    ));
}

#[test]
fn accept_env_patterns_match_names_and_prefixes_and_refuse_bad_entries() {
    let c = Config::parse("[ssh]\naccept_env = [\"LANG\", \"LC_*\"]\n").unwrap();
    assert!(c.ssh.env_allowed("LANG"));
    assert!(c.ssh.env_allowed("LC_ALL"));
    assert!(!c.ssh.env_allowed("LD_PRELOAD"));
    assert!(!c.ssh.env_allowed("LANGUAGE"));
    let problems = Config::parse("[ssh]\naccept_env = [\"LD PRELOAD\", 3]\n").unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert!(
        problems[0]
            .to_string()
            .contains("`LD PRELOAD` is not an environment variable name"),
        "{}",
        problems[0]
    );
}

#[test]
fn a_node_is_not_taken_over_because_one_heartbeat_was_late() {
    let c =
        Config::parse("[nodes]\nname = \"gw-a\"\nheartbeat_seconds = 5\ndown_after_seconds = 15\n")
            .unwrap();
    assert_eq!(
        (
            c.nodes.name.as_deref(),
            c.nodes.heartbeat_seconds,
            c.nodes.down_after_seconds
        ),
        (Some("gw-a"), 5, 15)
    );
    let problems =
        Config::parse("[nodes]\nheartbeat_seconds = 5\ndown_after_seconds = 10\n").unwrap_err();
    assert_eq!(problems.len(), 1, "{problems:?}");
    assert_eq!(problems[0].key, "nodes.down_after_seconds");
    assert_eq!(problems[0].line, Some(3));
    assert!(
        problems[0]
            .message
            .contains("at least three heartbeats (15 seconds)")
    );
}

#[test]
fn the_roles_that_need_a_second_factor_are_staff_roles_and_scanners_are_read() {
    let c = Config::parse(
        "[policy]\nmfa_required = [\"admin\", \"auditor\"]\n[files]\nclamd = \"tcp:127.0.0.1:3310\"\nscan_command = [\"/usr/local/bin/sanitize\", \"--strict\"]\n",
    )
    .unwrap();
    assert_eq!(
        c.policy.mfa_required,
        [
            sekisho_domain::user::Role::Admin,
            sekisho_domain::user::Role::Auditor
        ]
    );
    assert_eq!(
        c.files.describe_scanners().as_deref(),
        Some("clamd at 127.0.0.1:3310, scan command /usr/local/bin/sanitize")
    );
    let c = Config::parse("[policy]\nmfa_required = [\"vendor\", \"admin\"]\n").unwrap();
    assert_eq!(
        c.policy.mfa_required,
        vec![
            sekisho_domain::user::Role::Vendor,
            sekisho_domain::user::Role::Admin
        ]
    );
    let problems = Config::parse("[policy]\nmfa_required = [\"vendors\"]\n").unwrap_err();
    assert_eq!(problems[0].key, "policy.mfa_required");
    assert!(
        problems[0]
            .message
            .contains("admin, approver, auditor or vendor"),
        "{}",
        problems[0]
    );
    let problems =
        Config::parse("[files]\nscan_command = \"clamscan\"\nquarantine_session_bytes = 10\n")
            .unwrap_err();
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[test]
fn notifications_are_read_with_their_webhooks_and_bad_values_named() {
    let c = Config::parse(
        "[notifications]\nsmtp_host = \"mail.hospital.example\"\nsmtp_security = \"tls\"\n\
         smtp_username = \"sekisho\"\nsmtp_password_file = \"/etc/sekisho/smtp\"\nlanguage = \"en\"\n\
         [[notifications.webhooks]]\nname = \"chat\"\nurl = \"https://chat.example/hook/\"\n\
         secret_file = \"/etc/sekisho/hook\"\nevents = [\"request_filed\", \"session_ended\"]\n",
    )
    .unwrap();
    let n = &c.notifications;
    assert!(n.enabled());
    let smtp = n.smtp.as_ref().unwrap();
    assert_eq!((smtp.port, smtp.security), (465, crate::SmtpSecurity::Tls));
    assert_eq!(n.language, sekisho_domain::notify::Language::En);
    assert_eq!(n.webhooks[0].url, "https://chat.example/hook");
    assert_eq!(n.webhooks[0].events.len(), 2);
    assert!(!Config::default().notifications.enabled());

    let problems = Config::parse(
        "[notifications]\nsmtp_host = \"m\"\nsmtp_username = \"u\"\nlanguage = \"fr\"\n\
         [[notifications.webhooks]]\nname = \"chat\"\nurl = \"ftp://x\"\nevents = [\"lunch\"]\n",
    )
    .unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "notifications.smtp_username",
        "notifications.language",
        "notifications.webhooks.url",
        "notifications.webhooks.secret_file",
        "notifications.webhooks.events",
    ] {
        assert!(keys.contains(&key), "{key} not in {problems:?}");
    }
}

#[test]
fn a_directory_needs_a_base_and_a_group() {
    let c = Config::parse(
        "[directory]\nurl = \"ldaps://dc.hospital.example\"\nbase = \"ou=people,dc=h\"\n\
         approver_group = \"cn=approvers,dc=h\"\n",
    )
    .unwrap();
    let d = c.directory.unwrap();
    assert_eq!(d.user_filter, "(uid={username})");
    assert!(!d.starttls);
    assert!(Config::default().directory.is_none());
    let problems = Config::parse(
        "[directory]\nurl = \"ldaps://dc\"\nbase = \"o=h\"\nstarttls = true\nbind_dn = \"cn=s\"\n\
         user_filter = \"uid={username}\"\n",
    )
    .unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "directory.url",
        "directory.starttls",
        "directory.bind_dn",
        "directory.user_filter",
    ] {
        assert!(keys.contains(&key), "{key} not in {problems:?}");
    }
    let problems = Config::parse("[directory]\nurl = \"http://dc\"\n").unwrap_err();
    assert_eq!(problems[0].key, "directory.url");
}

#[test]
fn syslog_needs_host_and_port_and_knows_its_facilities() {
    let c = Config::parse("[syslog]\naddress = \"siem.hospital.example:6514\"\n").unwrap();
    let s = c.syslog.unwrap();
    assert_eq!(
        (s.tls, s.facility, s.app_name.as_str()),
        (true, 10, "sekisho")
    );
    assert!(Config::default().syslog.is_none());
    let c = Config::parse(
        "[syslog]\naddress = \"127.0.0.1:514\"\ntls = false\nfacility = \"local3\"\n",
    )
    .unwrap();
    assert_eq!(c.syslog.map(|s| (s.tls, s.facility)), Some((false, 19)));
    let problems = Config::parse("[syslog]\naddress = \"siem\"\n").unwrap_err();
    assert_eq!(problems[0].key, "syslog.address");
    let problems = Config::parse(
        "[syslog]\naddress = \"siem:6514\"\nfacility = \"local9\"\napp_name = \"two words\"\n",
    )
    .unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["syslog.facility", "syslog.app_name"]);
    let problems =
        Config::parse("[syslog]\naddress = \"siem:514\"\ntls = false\nca_file = \"/ca.pem\"\n")
            .unwrap_err();
    assert_eq!(problems[0].key, "syslog.tls");
}

#[test]
fn review_settings_default_to_the_domains_and_are_checked() {
    assert_eq!(
        Config::default().review_policy(),
        sekisho_domain::review::ReviewPolicy::default()
    );
    let c = Config::parse(
        "[review]\nnight_start = \"20:30\"\nnight_end = \"07:00\"\nholidays = [\"2026-12-31\"]\nweekends_off = false\n",
    )
    .unwrap();
    let p = c.review_policy();
    assert_eq!(p.night.map(|n| n.0.to_string()), Some("20:30:00".into()));
    assert_eq!(p.holidays.len(), 1);
    assert!(!p.weekends);
    let problems = Config::parse(
        "[review]\nnight_start = \"25:00\"\nnight_end = \"06:00\"\nholidays = [\"31/12/2026\"]\n",
    )
    .unwrap_err();
    let keys: Vec<&str> = problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(keys, ["review.night_start", "review.holidays"]);
}

#[test]
fn metrics_listen_on_their_own_address_with_a_token_long_enough() {
    assert!(Config::default().metrics.is_none());
    let c = Config::parse("[metrics]\nlisten = \"127.0.0.1:9464\"\ntoken = \"0123456789abcdef\"\n")
        .unwrap();
    let m = c.metrics.unwrap();
    assert_eq!(m.listen.port(), 9464);
    assert_eq!(m.token.as_deref(), Some("0123456789abcdef"));
    let problems =
        Config::parse("[metrics]\nlisten = \"127.0.0.1:9464\"\ntoken = \"short\"\n").unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.key == "metrics.token" && p.message.contains("16")),
        "{problems:?}"
    );
    // The same address as the API's is a collision.
    let problems = Config::parse(
        "[api]\nlisten = \"127.0.0.1:8443\"\n[metrics]\nlisten = \"127.0.0.1:8443\"\n",
    )
    .unwrap_err();
    assert!(
        problems.iter().any(|p| p.key == "metrics.listen"),
        "{problems:?}"
    );
}
