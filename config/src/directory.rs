//! `[directory]`: staff from the hospital's LDAP or Active Directory (issue #17).

use toml_edit::Value;

use crate::model::DirectoryConfig;
use crate::reader::{Parsed, Reader};

fn ldap_url(v: &Value) -> Parsed<String> {
    let s = Reader::non_empty_string(v)?;
    if s.starts_with("ldaps://") || s.starts_with("ldap://") {
        Ok(s)
    } else {
        Err("expected an ldaps:// or ldap:// URL".into())
    }
}

fn filter(v: &Value) -> Parsed<String> {
    let s = Reader::non_empty_string(v)?;
    if s.contains("{username}") && s.starts_with('(') && s.ends_with(')') {
        Ok(s)
    } else {
        Err(
            "expected an LDAP filter in parentheses with {username}, e.g. \"(uid={username})\""
                .into(),
        )
    }
}

/// Reads `[directory]`; `None` without a `url`.
pub(crate) fn read(r: &Reader) -> Option<DirectoryConfig> {
    let s = r.section(
        "directory",
        &[
            "url",
            "starttls",
            "ca_file",
            "bind_dn",
            "bind_password_file",
            "base",
            "user_filter",
            "admin_group",
            "approver_group",
            "auditor_group",
            "timeout_seconds",
        ],
    );
    let url = r.opt(s, "url", ldap_url)?;
    let Some(base) = r.opt(s, "base", Reader::non_empty_string) else {
        r.problem_key(
            "directory.base",
            "needed with directory.url: where people are searched".into(),
        );
        return None;
    };
    let c = DirectoryConfig {
        starttls: r.get(s, "starttls", Reader::bool, false),
        ca_file: r.opt(s, "ca_file", Reader::path),
        bind_dn: r.opt(s, "bind_dn", Reader::non_empty_string),
        bind_password_file: r.opt(s, "bind_password_file", Reader::path),
        base,
        user_filter: r.get(s, "user_filter", filter, "(uid={username})".into()),
        admin_group: r.opt(s, "admin_group", Reader::non_empty_string),
        approver_group: r.opt(s, "approver_group", Reader::non_empty_string),
        auditor_group: r.opt(s, "auditor_group", Reader::non_empty_string),
        timeout_seconds: r.get(s, "timeout_seconds", |v| Reader::int(v, 1, 120), 10),
        url,
    };
    if c.bind_dn.is_some() != c.bind_password_file.is_some() {
        r.problem_at(
            s,
            "bind_dn",
            "bind_dn and bind_password_file go together".into(),
        );
    }
    if c.admin_group.is_none() && c.approver_group.is_none() && c.auditor_group.is_none() {
        r.problem_at(
            s,
            "url",
            "name at least one of admin_group, approver_group, auditor_group: only their members log in".into(),
        );
    }
    if c.starttls && c.url.starts_with("ldaps://") {
        r.problem_at(
            s,
            "starttls",
            "ldaps:// is TLS already; starttls is for ldap://".into(),
        );
    }
    Some(c)
}
