//! Which notifications an audit event or a daily check makes, and for whom: approvers (of
//! the target's site), the requester, the vendor's contact, admins, and the webhooks that
//! subscribe. Each is made once per recipient and channel: its `dedup_key` says so.

use std::collections::BTreeSet;

use sekisho_config::{NotificationsConfig, WebhookConfig};
use sekisho_domain::audit::{AuditEntry, AuditEvent};
use sekisho_domain::notify::{DeliveryChannel, NotificationKind};
use sekisho_domain::request::{Action, RequestStatus, WorkRequest};
use sekisho_domain::user::Role;
use sekisho_domain::zone::DisplayZone;
use sekisho_store::Store;
use sekisho_store::outbox::{NewNotification, Recipient};

use crate::render::Subject;

/// What planning needs.
pub struct Planner<'a> {
    pub store: &'a Store,
    pub config: &'a NotificationsConfig,
    pub zone: &'a DisplayZone,
}

type Result<T> = std::result::Result<T, sekisho_store::StoreError>;

impl Planner<'_> {
    /// The notifications one audit entry makes (none for most).
    pub async fn for_audit(&self, entry: &AuditEntry) -> Result<Vec<NewNotification>> {
        let Ok(event) = serde_json::from_str::<AuditEvent>(&entry.details) else {
            return Ok(vec![]);
        };
        let key = format!("audit:{}", entry.seq);
        match event {
            AuditEvent::RequestFiled {
                request, emergency, ..
            } => {
                let Some(r) = self.store.request(request).await? else {
                    return Ok(vec![]);
                };
                let r = r.request;
                let (kind, key) = if emergency {
                    // Once per request, whether filed or used first.
                    (
                        NotificationKind::EmergencyAccess,
                        format!("emergency:{request}"),
                    )
                } else {
                    (NotificationKind::RequestFiled, key)
                };
                let people = self.approvers(&r).await?;
                self.about_request(kind, &r, &key, people).await
            }
            AuditEvent::RequestDecided {
                request,
                action,
                status,
                ..
            } => {
                let Some(r) = self.store.request(request).await? else {
                    return Ok(vec![]);
                };
                let r = r.request;
                match (action, status) {
                    (Action::Approve, RequestStatus::Approved)
                    | (Action::Reject, RequestStatus::Rejected) => {
                        let people = self.requester_and_contact(&r).await?;
                        self.about_request(NotificationKind::RequestDecided, &r, &key, people)
                            .await
                    }
                    (Action::Activate, _) => {
                        let people = self.approvers(&r).await?;
                        let key = format!("emergency:{request}");
                        self.about_request(NotificationKind::EmergencyAccess, &r, &key, people)
                            .await
                    }
                    _ => Ok(vec![]),
                }
            }
            AuditEvent::SessionStarted {
                session, request, ..
            } => {
                self.about_session(
                    NotificationKind::SessionStarted,
                    session.to_string(),
                    request,
                    None,
                    &key,
                )
                .await
            }
            AuditEvent::SessionEnded {
                session,
                request,
                how,
                ..
            } => {
                let how = serde_json::to_value(how)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned));
                self.about_session(
                    NotificationKind::SessionEnded,
                    session.to_string(),
                    request,
                    how,
                    &key,
                )
                .await
            }
            _ => Ok(vec![]),
        }
    }

    async fn about_request(
        &self,
        kind: NotificationKind,
        r: &WorkRequest,
        key: &str,
        people: Vec<Recipient>,
    ) -> Result<Vec<NewNotification>> {
        let vendor = self.vendor_name(r).await?;
        let requester = match self.store.user(r.requester).await? {
            Some(u) => u.username,
            None => r.requester.to_string(),
        };
        let subject = Subject::Request {
            kind,
            request: r,
            vendor: &vendor,
            requester: &requester,
        };
        Ok(self.expand(&subject, key, &people))
    }

    async fn about_session(
        &self,
        kind: NotificationKind,
        session: String,
        request: sekisho_domain::ids::RequestId,
        how: Option<String>,
        key: &str,
    ) -> Result<Vec<NewNotification>> {
        if !self.config.webhooks.iter().any(|w| subscribes(w, kind)) {
            return Ok(vec![]);
        }
        let Some(r) = self.store.request(request).await? else {
            return Ok(vec![]);
        };
        let r = r.request;
        let vendor = self.vendor_name(&r).await?;
        let subject = Subject::Session {
            kind,
            session,
            request: &r,
            vendor: &vendor,
            how,
        };
        Ok(self.expand(&subject, key, &[]))
    }

    async fn vendor_name(&self, r: &WorkRequest) -> Result<String> {
        Ok(match self.store.vendor(r.vendor_id).await? {
            Some(v) => v.name,
            None => r.vendor_id.to_string(),
        })
    }

    /// Approvers who see the request's target (its site).
    pub async fn approvers(&self, r: &WorkRequest) -> Result<Vec<Recipient>> {
        let site = self.store.target(r.target_id).await?.and_then(|t| t.site);
        self.store.recipients(Role::Approver, site.as_deref()).await
    }

    /// The engineer who filed the request and the vendor's contact.
    async fn requester_and_contact(&self, r: &WorkRequest) -> Result<Vec<Recipient>> {
        let mut people = vec![];
        if let Some(u) = self.store.user(r.requester).await?
            && let Some(email) = u.email.filter(|e| !e.is_empty())
        {
            people.push(Recipient {
                email,
                language: u.language,
            });
        }
        if let Some(v) = self.store.vendor(r.vendor_id).await?
            && let Some(email) = v.contact.email.filter(|e| !e.is_empty())
        {
            people.push(Recipient {
                email,
                language: None,
            });
        }
        Ok(people)
    }

    /// One notification per person (by mail, when mail is set up and the kind is mailed) and
    /// per webhook that subscribes, keyed `KEY:CHANNEL:RECIPIENT`.
    pub fn expand(
        &self,
        subject: &Subject<'_>,
        key: &str,
        people: &[Recipient],
    ) -> Vec<NewNotification> {
        let kind = subject.kind();
        let console = self.config.console_url.as_deref();
        let mut out = vec![];
        if self.config.smtp.is_some() && kind.is_mailed() {
            let mut seen = BTreeSet::new();
            for p in people {
                if !seen.insert(p.email.to_lowercase()) {
                    continue;
                }
                let language = p.language.unwrap_or(self.config.language);
                let text = subject.text(language, self.zone, console);
                out.push(NewNotification {
                    dedup_key: format!("{key}:email:{}", p.email.to_lowercase()),
                    kind,
                    channel: DeliveryChannel::Email,
                    recipient: p.email.clone(),
                    language,
                    subject: text.subject,
                    body: text.body,
                });
            }
        }
        for hook in self.config.webhooks.iter().filter(|w| subscribes(w, kind)) {
            let language = self.config.language;
            let text = subject.text(language, self.zone, console);
            out.push(NewNotification {
                dedup_key: format!("{key}:webhook:{}", hook.name),
                kind,
                channel: DeliveryChannel::Webhook,
                recipient: hook.name.clone(),
                language,
                body: subject.data(&text).to_string(),
                subject: text.subject,
            });
        }
        out
    }
}

fn subscribes(hook: &WebhookConfig, kind: NotificationKind) -> bool {
    hook.events.is_empty() || hook.events.contains(&kind)
}
