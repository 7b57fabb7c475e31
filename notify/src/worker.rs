//! The notifier: one task per node that turns the audit log and the daily checks into outbox
//! rows, and delivers the rows that are due (claimed for a lease, so that two nodes never
//! send one twice and a node that dies leaves its rows to the others).

use std::time::Duration;

use jiff::Timestamp;
use sekisho_config::Config;
use sekisho_domain::notify::{DeliveryChannel, retry_delay};
use sekisho_domain::policy::Policy;
use sekisho_domain::zone::DisplayZone;
use sekisho_store::Store;
use sekisho_store::audit::{AuditFilter, Page};
use sekisho_store::outbox::Notification;
use tokio_util::sync::CancellationToken;

use crate::error::NotifyError;
use crate::plan::Planner;
use crate::send::{self, Hook, Mailer};

/// How often the outbox is looked at.
const TICK: Duration = Duration::from_secs(1);
/// How often the daily checks run (they are cheap, and each finding is made once).
const SWEEP: Duration = Duration::from_secs(600);
/// How long a claimed row is this node's.
const LEASE: Duration = Duration::from_secs(120);
/// Audit entries read per round.
const BATCH: i64 = 200;

pub struct Notifier {
    store: Store,
    config: sekisho_config::NotificationsConfig,
    zone: DisplayZone,
    policy: Policy,
    mailer: Option<Mailer>,
    hooks: Vec<Hook>,
    client: reqwest::Client,
}

impl Notifier {
    /// The notifier `config` describes; `None` when nothing is to be sent. Unreadable secret
    /// files or a bad sender are errors now, not at the first delivery.
    pub fn new(config: &Config, store: Store) -> Result<Option<Self>, NotifyError> {
        let c = &config.notifications;
        if !c.enabled() {
            return Ok(None);
        }
        let mailer = c.smtp.as_ref().map(Mailer::new).transpose()?;
        let hooks = c
            .webhooks
            .iter()
            .map(Hook::new)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some(Self {
            store,
            config: c.clone(),
            zone: config.display_zone(),
            policy: config.domain_policy(),
            mailer,
            hooks,
            client: send::client()?,
        }))
    }

    /// Whether mail is sent.
    pub fn mails(&self) -> bool {
        self.mailer.is_some()
    }

    /// How many webhooks are posted to.
    pub fn webhooks(&self) -> usize {
        self.hooks.len()
    }

    fn planner(&self) -> Planner<'_> {
        Planner {
            store: &self.store,
            config: &self.config,
            zone: &self.zone,
        }
    }

    /// Runs until `shutdown`; a database that does not answer is retried on the next tick.
    pub async fn run(self, shutdown: CancellationToken) {
        tracing::info!(
            mail = self.mailer.is_some(),
            webhooks = self.hooks.len(),
            "notifications on"
        );
        let mut next_sweep = tokio::time::Instant::now();
        loop {
            if let Err(e) = self.plan().await {
                tracing::warn!(error = %e, "cannot make notifications from the audit log; trying again");
            }
            if tokio::time::Instant::now() >= next_sweep {
                match self.planner().sweep(&self.policy, Timestamp::now()).await {
                    Ok(found) => {
                        if let Err(e) = self.store.enqueue_notifications(&found, None).await {
                            tracing::warn!(error = %e, "cannot keep the daily notifications");
                        }
                        next_sweep += SWEEP;
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot run the daily notification checks")
                    }
                }
            }
            if let Err(e) = self.deliver().await {
                tracing::warn!(error = %e, "cannot read the notification outbox; trying again");
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(TICK) => {}
            }
        }
    }

    /// Reads the audit log from the cursor and keeps what it makes, cursor and rows in one
    /// transaction.
    pub async fn plan(&self) -> Result<(), sekisho_store::StoreError> {
        loop {
            let cursor = self.store.notify_cursor().await?;
            let page = self
                .store
                .audit_page(&AuditFilter::default(), Page::OldestAfter(cursor), BATCH)
                .await?;
            let Some(last) = page.last().map(|e| e.entry.seq) else {
                return Ok(());
            };
            let mut made = vec![];
            for e in &page {
                made.extend(self.planner().for_audit(&e.entry).await?);
            }
            let added = self.store.enqueue_notifications(&made, Some(last)).await?;
            if added > 0 {
                tracing::info!(added, up_to = last, "notifications made");
            }
            if page.len() < usize::try_from(BATCH).unwrap_or(usize::MAX) {
                return Ok(());
            }
        }
    }

    /// Sends what is due.
    pub async fn deliver(&self) -> Result<(), sekisho_store::StoreError> {
        for n in self.store.claim_notifications(LEASE, 20).await? {
            let sent = self.send(&n).await;
            match sent {
                Ok(()) => {
                    tracing::info!(id = %n.id, kind = %n.kind, channel = %n.channel, recipient = %n.recipient, "notification delivered");
                    self.store.notification_delivered(&n).await?;
                }
                Err(error) => {
                    let tried = n.attempts.saturating_add(1);
                    let retry_at = (tried < self.config.max_attempts).then(|| {
                        let wait = retry_delay(
                            Duration::from_secs(u64::from(self.config.retry_seconds)),
                            tried,
                        );
                        Timestamp::now()
                            + jiff::SignedDuration::from_secs(
                                i64::try_from(wait.as_secs()).unwrap_or(3600),
                            )
                    });
                    match retry_at {
                        Some(at) => {
                            tracing::warn!(id = %n.id, channel = %n.channel, recipient = %n.recipient, attempt = tried, %error, retry_at = %at, "notification not delivered; will try again");
                        }
                        None => {
                            tracing::error!(id = %n.id, channel = %n.channel, recipient = %n.recipient, attempts = tried, %error, "notification given up");
                        }
                    }
                    self.store.notification_failed(&n, &error, retry_at).await?;
                }
            }
        }
        Ok(())
    }

    async fn send(&self, n: &Notification) -> Result<(), String> {
        match n.channel {
            DeliveryChannel::Email => match &self.mailer {
                Some(m) => m.send(n).await,
                None => Err("mail is not set up any more ([notifications] smtp_host)".into()),
            },
            DeliveryChannel::Webhook => {
                match self.hooks.iter().find(|h| h.config.name == n.recipient) {
                    Some(hook) => send::post(&self.client, hook, n).await,
                    None => Err(format!(
                        "no webhook named {} in the configuration any more",
                        n.recipient
                    )),
                }
            }
        }
    }
}
