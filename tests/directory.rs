//! Issue #17, staff from the hospital's directory, through a running `sekisho serve` and a
//! real OpenLDAP `slapd` started by the test (StartTLS with the test CA, a service account
//! that searches, `groupOfNames` groups for the roles): the account is made at the first
//! login with its group's role, follows the groups at every login, loses access (and its
//! tokens) when removed from them; a directory that does not answer refuses directory logins
//! while the local break-glass account still works.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use sekisho_testkit::slapd::{self, Person, Slapd};
use serde_json::{Value, json};
use support::{Env, Http};

const HANA_PW: &str = "hana's directory password";

async fn login(http: &Http, user: &str, password: &str) -> (u16, Value) {
    http.send(
        reqwest::Method::POST,
        "/api/v1/auth/login",
        None,
        Some(json!({"username": user, "password": password})),
    )
    .await
}

#[tokio::test]
async fn staff_log_in_with_the_directory_and_follow_its_groups() {
    let people = [
        Person {
            uid: "hana",
            name: "佐藤 花",
            mail: "hana@hospital.test",
            password: HANA_PW,
        },
        Person {
            uid: "ren",
            name: "Ren Ito",
            mail: "ren@hospital.test",
            password: "ren's directory password",
        },
        Person {
            uid: "yui",
            name: "Yui Mori",
            mail: "yui@hospital.test",
            password: "yui's directory password",
        },
    ];
    let groups: [(&str, &[&str]); 2] = [
        ("sekisho-approvers", &["hana", "ren"]),
        ("sekisho-auditors", &["ren"]),
    ];
    let Some(mut ldap) = Slapd::start(&people, &groups) else {
        return;
    };
    let env = Env::new(None);
    let secret = env.data_dir().with_file_name("ldap-password");
    std::fs::write(&secret, format!("{}\n", slapd::SERVICE_PASSWORD)).unwrap();
    env.configure(&format!(
        r#"
[directory]
url = "{url}"
starttls = true
ca_file = "{ca}"
bind_dn = "{service}"
bind_password_file = "{secret}"
base = "{people}"
user_filter = "(uid={{username}})"
admin_group = "{admins}"
approver_group = "{approvers}"
auditor_group = "{auditors}"
timeout_seconds = 5
"#,
        url = ldap.url(),
        ca = ldap.ca().display(),
        service = slapd::SERVICE_DN,
        secret = secret.display(),
        people = slapd::PEOPLE,
        admins = slapd::group("sekisho-admins"),
        approvers = slapd::group("sekisho-approvers"),
        auditors = slapd::group("sekisho-auditors"),
    ));
    let server = env.serve();
    let http = server.http();

    // First login: the account is made with the group's role and the directory's name.
    let (status, body) = login(&http, "hana", HANA_PW).await;
    let log =
        || std::fs::read_to_string(env.config.with_file_name("serve.log")).unwrap_or_default();
    assert_eq!(status, 200, "{body}\n{}", log());
    let user = &body["user"];
    assert_eq!(user["role"], "approver");
    assert_eq!(user["source"], "directory");
    assert_eq!(user["display_name"], "佐藤 花");
    assert_eq!(user["email"], "hana@hospital.test");
    let approver_token = body["token"].as_str().unwrap().to_owned();
    let hana_id = user["id"].as_str().unwrap().to_owned();

    // Wrong, empty and unknown: the same answer (the log tells them apart).
    for (name, pw) in [("hana", "not it"), ("hana", ""), ("nobody", "whatever pw")] {
        let (status, body) = login(&http, name, pw).await;
        assert_eq!(status, 401, "{name}/{pw:?}: {body}");
        assert_eq!(body["error"]["message"], "wrong username or password");
    }
    // In no Sekisho group: no account, told why.
    let (status, body) = login(&http, "yui", "yui's directory password").await;
    assert_eq!(status, 403, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("in none of Sekisho's groups"),
        "{body}"
    );

    // The local admin is the break-glass account: its own password, marked local.
    let admin_pw = env.admin_password();
    let (status, body) = login(&http, "admin", &admin_pw).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["source"], "local");
    let admin = body["token"].as_str().unwrap().to_owned();
    // A directory account's password is the directory's.
    let (status, body) = http
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/users/{hana_id}"),
            Some(&admin),
            Some(json!({"password": "a new local password for hana"})),
        )
        .await;
    assert_eq!(status, 409, "{body}");
    let (_, audit) = http.get("/api/v1/audit?kind=user_created", &admin).await;
    let made = audit["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["details"]["username"] == "hana")
        .cloned()
        .unwrap();
    assert_eq!(
        made["reason"],
        format!("from the directory entry {}", slapd::person("hana"))
    );

    // ren is an approver and an auditor: the first group in the order admin, approver,
    // auditor wins.
    let (status, body) = login(&http, "ren", "ren's directory password").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["role"], "approver");

    // hana moves to the auditors: her next login follows (audited).
    ldap.modify(&format!(
        "dn: {approvers}\nchangetype: modify\ndelete: member\nmember: {hana}\n\n\
         dn: {auditors}\nchangetype: modify\nadd: member\nmember: {hana}\n",
        approvers = slapd::group("sekisho-approvers"),
        auditors = slapd::group("sekisho-auditors"),
        hana = slapd::person("hana"),
    ));
    let (status, body) = login(&http, "hana", HANA_PW).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"]["role"], "auditor");
    assert_eq!(body["user"]["id"], hana_id.as_str(), "the same account");
    let hana_token = body["token"].as_str().unwrap().to_owned();
    // The token she got as an approver no longer carries her role.
    let (status, _) = http.get("/api/v1/requests", &approver_token).await;
    assert_eq!(status, 401);
    let (_, audit) = http.get("/api/v1/audit?kind=user_updated", &admin).await;
    assert!(
        audit["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["details"]["changes"][0] == "role: approver -> auditor (directory group)"),
        "{audit}"
    );

    // Removed from every Sekisho group: no access at the next login, and the tokens she
    // still holds stop working.
    let (status, _) = http.get("/api/v1/requests", &hana_token).await;
    assert_eq!(status, 200);
    ldap.modify(&format!(
        "dn: {auditors}\nchangetype: modify\ndelete: member\nmember: {hana}\n",
        auditors = slapd::group("sekisho-auditors"),
        hana = slapd::person("hana"),
    ));
    let (status, body) = login(&http, "hana", HANA_PW).await;
    assert_eq!(status, 403, "{body}");
    let (status, _) = http.get("/api/v1/requests", &hana_token).await;
    assert_eq!(status, 401, "her earlier token must be dead");

    // The directory does not answer: directory logins are refused (503, audited); the
    // break-glass account still logs in.
    ldap.stop();
    let (status, body) = login(&http, "ren", "ren's directory password").await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "directory_unavailable");
    let (status, _) = login(&http, "admin", &admin_pw).await;
    assert_eq!(status, 200);
}
