//! Delivery: mail over SMTP (STARTTLS, TLS or, for a local relay, none; with the login the
//! hospital's server wants) and webhooks (a JSON POST signed with HMAC-SHA256).

use std::time::Duration;

use aws_lc_rs::hmac;
use lettre::message::header::ContentType;
use lettre::message::{Mailbox, Message};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use sekisho_config::{SmtpConfig, SmtpSecurity, WebhookConfig};
use sekisho_domain::notify::signed_bytes;
use sekisho_store::outbox::Notification;
use serde_json::{Value, json};

use crate::error::NotifyError;

/// How long one delivery may take.
const TIMEOUT: Duration = Duration::from_secs(30);

fn read(what: &'static str, path: &std::path::Path) -> Result<Vec<u8>, NotifyError> {
    std::fs::read(path).map_err(|source| NotifyError::File {
        what,
        path: path.display().to_string(),
        source,
    })
}

/// The SMTP side, set up once.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl Mailer {
    pub fn new(c: &SmtpConfig) -> Result<Self, NotifyError> {
        let setup = |e: &dyn std::fmt::Display| NotifyError::Setup(format!("mail: {e}"));
        let from: Mailbox = c
            .from
            .parse()
            .map_err(|e| setup(&format!("`from` is not an address ({e})")))?;
        let tls = || -> Result<TlsParameters, NotifyError> {
            let mut b = TlsParameters::builder(c.host.clone());
            if let Some(ca) = &c.ca_file {
                let pem = read("the SMTP CA file", ca)?;
                b = b.add_root_certificate(Certificate::from_pem(&pem).map_err(|e| setup(&e))?);
            }
            b.build_rustls().map_err(|e| setup(&e))
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(c.host.clone())
            .port(c.port)
            .timeout(Some(TIMEOUT))
            .tls(match c.security {
                SmtpSecurity::StartTls => Tls::Required(tls()?),
                SmtpSecurity::Tls => Tls::Wrapper(tls()?),
                SmtpSecurity::None => Tls::None,
            });
        if let (Some(user), Some(file)) = (&c.username, &c.password_file) {
            let password = String::from_utf8_lossy(&read("the SMTP password file", file)?)
                .trim_end_matches(['\r', '\n'])
                .to_owned();
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        Ok(Self {
            transport: builder.build(),
            from,
        })
    }

    /// Sends `n` (its id is the mail's Message-ID, so a receiver can drop a repeat).
    pub async fn send(&self, n: &Notification) -> Result<(), String> {
        let to: Mailbox = n
            .recipient
            .parse()
            .map_err(|e| format!("`{}` is not an address: {e}", n.recipient))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(n.subject.clone())
            .message_id(Some(format!("<{}@sekisho>", n.id)))
            .header(ContentType::TEXT_PLAIN)
            .body(n.body.clone())
            .map_err(|e| e.to_string())?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    }
}

/// One webhook, its secret read.
pub struct Hook {
    pub config: WebhookConfig,
    key: hmac::Key,
}

impl Hook {
    pub fn new(config: &WebhookConfig) -> Result<Self, NotifyError> {
        let secret = read("the webhook secret file", &config.secret_file)?;
        let secret = String::from_utf8_lossy(&secret).trim().to_owned();
        if secret.len() < 16 {
            return Err(NotifyError::Setup(format!(
                "webhook {}: the secret in {} is shorter than 16 characters",
                config.name,
                config.secret_file.display()
            )));
        }
        Ok(Self {
            config: config.clone(),
            key: hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes()),
        })
    }
}

/// `sha256=` and the hex HMAC of `timestamp.body`.
pub fn signature(key: &hmac::Key, timestamp: i64, body: &[u8]) -> String {
    let tag = hmac::sign(key, &signed_bytes(timestamp, body));
    format!("sha256={}", hex::encode(tag.as_ref()))
}

/// What a webhook receives for `n`: the same bytes on every try.
pub fn webhook_body(n: &Notification) -> String {
    let data: Value = serde_json::from_str(&n.body).unwrap_or(Value::Null);
    json!({
        "id": n.id,
        "event": n.kind,
        "created_at": n.created_at.to_string(),
        "data": data,
    })
    .to_string()
}

/// Posts `n` to `hook`; a 2xx answer is delivery, anything else a failure to retry.
pub async fn post(client: &reqwest::Client, hook: &Hook, n: &Notification) -> Result<(), String> {
    let body = webhook_body(n);
    let timestamp = jiff::Timestamp::now().as_second();
    let answer = client
        .post(&hook.config.url)
        .header("content-type", "application/json")
        .header("x-sekisho-delivery", &n.id)
        .header("x-sekisho-event", n.kind.as_str())
        .header("x-sekisho-timestamp", timestamp.to_string())
        .header(
            "x-sekisho-signature",
            signature(&hook.key, timestamp, body.as_bytes()),
        )
        .body(body)
        .send()
        .await
        .map_err(|e| format!("{}: {e}", hook.config.url))?;
    if answer.status().is_success() {
        Ok(())
    } else {
        Err(format!("{} answered {}", hook.config.url, answer.status()))
    }
}

/// The HTTP client webhooks are posted with: no redirects followed, a time limit.
pub fn client() -> Result<reqwest::Client, NotifyError> {
    reqwest::Client::builder()
        .timeout(TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| NotifyError::Setup(format!("webhooks: {e}")))
}
