//! `[notifications]`: mail over SMTP and signed webhooks (issue #17).

use std::path::PathBuf;

use sekisho_domain::notify::{Language, NotificationKind};
use toml_edit::Value;

use crate::model::{NotificationsConfig, SmtpConfig, SmtpSecurity, WebhookConfig};
use crate::reader::{Parsed, Reader};

fn language(v: &Value) -> Parsed<Language> {
    let s = Reader::non_empty_string(v)?;
    Language::parse(&s).ok_or_else(|| "expected \"ja\" or \"en\"".into())
}

fn security(v: &Value) -> Parsed<SmtpSecurity> {
    match Reader::non_empty_string(v)?.as_str() {
        "starttls" => Ok(SmtpSecurity::StartTls),
        "tls" => Ok(SmtpSecurity::Tls),
        "none" => Ok(SmtpSecurity::None),
        _ => Err("expected \"starttls\", \"tls\" or \"none\"".into()),
    }
}

fn http_url(v: &Value) -> Parsed<String> {
    let s = Reader::non_empty_string(v)?;
    if s.starts_with("https://") || s.starts_with("http://") {
        Ok(s.trim_end_matches('/').to_owned())
    } else {
        Err("expected an http:// or https:// URL".into())
    }
}

fn kinds(v: &Value) -> Parsed<Vec<NotificationKind>> {
    let Some(items) = v.as_array() else {
        return Err("expected a list of event names".into());
    };
    items
        .iter()
        .map(|i| {
            i.as_str().and_then(NotificationKind::parse).ok_or_else(|| {
                let names: Vec<&str> = NotificationKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("expected event names: {}", names.join(", "))
            })
        })
        .collect()
}

/// Reads `[notifications]` and its `[[notifications.webhooks]]`.
pub(crate) fn read(r: &Reader) -> NotificationsConfig {
    let d = NotificationsConfig::default();
    let s = r.section(
        "notifications",
        &[
            "language",
            "console_url",
            "max_attempts",
            "retry_seconds",
            "attestation_warning_days",
            "unused_account_days",
            "review_within_days",
            "smtp_host",
            "smtp_port",
            "smtp_security",
            "smtp_username",
            "smtp_password_file",
            "smtp_ca_file",
            "from",
            "webhooks",
        ],
    );
    let smtp = r.opt(s, "smtp_host", Reader::non_empty_string).map(|host| {
        let security = r.get(s, "smtp_security", security, SmtpSecurity::StartTls);
        let default_port = if security == SmtpSecurity::Tls {
            465
        } else {
            587
        };
        SmtpConfig {
            host,
            port: r.get(s, "smtp_port", |v| Reader::int(v, 1, 65535), default_port),
            security,
            username: r.opt(s, "smtp_username", Reader::non_empty_string),
            password_file: r.opt(s, "smtp_password_file", Reader::path),
            ca_file: r.opt(s, "smtp_ca_file", Reader::path),
            from: r.get(
                s,
                "from",
                Reader::non_empty_string,
                "Sekisho <sekisho@localhost>".into(),
            ),
        }
    });
    if let Some(m) = &smtp
        && m.username.is_some() != m.password_file.is_some()
    {
        r.problem_at(
            s,
            "smtp_username",
            "smtp_username and smtp_password_file go together".into(),
        );
    }
    let mut webhooks: Vec<WebhookConfig> = vec![];
    let name = "notifications.webhooks";
    for t in r
        .tables(s, "webhooks", "`name`, `url` and `secret_file`")
        .unwrap_or_default()
    {
        r.unknown_keys(t, Some(name), &["name", "url", "secret_file", "events"]);
        let field = |k: &str, parse: fn(&Value) -> Parsed<String>| -> Option<String> {
            match t.get(k) {
                None => {
                    r.problem_key(&format!("{name}.{k}"), "missing in a webhook".into());
                    None
                }
                Some(i) => r.convert(i, format!("{name}.{k}"), parse),
            }
        };
        let (hook, url, secret) = (
            field("name", Reader::non_empty_string),
            field("url", http_url),
            field("secret_file", Reader::non_empty_string),
        );
        let events = t
            .get("events")
            .and_then(|i| r.convert(i, format!("{name}.events"), kinds))
            .unwrap_or_default();
        if let (Some(hook), Some(url), Some(secret)) = (hook, url, secret) {
            if webhooks.iter().any(|w| w.name == hook) {
                r.problem_key(
                    &format!("{name}.name"),
                    format!("webhook `{hook}` appears twice"),
                );
            }
            webhooks.push(WebhookConfig {
                name: hook,
                url,
                secret_file: PathBuf::from(secret),
                events,
            });
        }
    }
    NotificationsConfig {
        smtp,
        webhooks,
        language: r.get(s, "language", language, d.language),
        console_url: r.opt(s, "console_url", http_url),
        max_attempts: r.get(
            s,
            "max_attempts",
            |v| Reader::int(v, 1, 100),
            d.max_attempts,
        ),
        retry_seconds: r.get(
            s,
            "retry_seconds",
            |v| Reader::int(v, 1, 3600),
            d.retry_seconds,
        ),
        attestation_warning_days: r.get(
            s,
            "attestation_warning_days",
            |v| Reader::int_list(v, 1, 365),
            d.attestation_warning_days,
        ),
        unused_account_days: r.get(
            s,
            "unused_account_days",
            |v| Reader::int(v, 1, 3650),
            d.unused_account_days,
        ),
        review_within_days: r.get(
            s,
            "review_within_days",
            |v| Reader::int(v, 1, 365),
            d.review_within_days,
        ),
    }
}
