//! The daily checks: attestations that expire soon or have expired (the vendor's contact and
//! the admins), and emergency work whose after-the-fact approval is overdue (approvers).
//! Each is made once (its `dedup_key` names the attestation's end and the warning, or the
//! request), however often the check runs and on however many nodes.

use jiff::Timestamp;
use sekisho_domain::notify::NotificationKind;
use sekisho_domain::policy::Policy;
use sekisho_domain::user::Role;
use sekisho_store::outbox::{NewNotification, Recipient};
use sekisho_store::requests::RequestFilter;

use crate::plan::Planner;
use crate::render::Subject;

type Result<T> = std::result::Result<T, sekisho_store::StoreError>;

/// The warning due `days_left` days before the end: the smallest configured one that has
/// been reached (so a vendor first seen 5 days before is told once, not for 30 and 7 both).
pub fn warning_due(warnings: &[u32], days_left: u32) -> Option<u32> {
    warnings.iter().copied().filter(|w| days_left <= *w).min()
}

impl Planner<'_> {
    /// Everything the daily checks find at `now`.
    pub async fn sweep(&self, policy: &Policy, now: Timestamp) -> Result<Vec<NewNotification>> {
        let mut out = self.attestations(now).await?;
        out.extend(self.overdue(policy, now).await?);
        out.extend(self.unused_accounts(now).await?);
        out.extend(self.unreviewed(now).await?);
        Ok(out)
    }

    async fn unused_accounts(&self, now: Timestamp) -> Result<Vec<NewNotification>> {
        let days = self.config.unused_account_days;
        let since = now - jiff::SignedDuration::from_hours(24 * i64::from(days));
        let admins = self.store.recipients(Role::Admin, None).await?;
        let mut out = vec![];
        for (user, last_seen) in self.store.idle_vendor_accounts(since).await? {
            let vendor = match user.vendor_id {
                Some(v) => self.store.vendor(v).await?.map(|v| v.name),
                None => None,
            }
            .unwrap_or_default();
            // Once per idle spell: a login starts a new one.
            let key = format!(
                "unused:{}:{}",
                user.id,
                last_seen.unwrap_or(user.created_at).as_second()
            );
            let subject = Subject::Account {
                username: &user.username,
                vendor: &vendor,
                last_seen,
                days,
            };
            out.extend(self.expand(&subject, &key, &admins));
        }
        Ok(out)
    }

    async fn unreviewed(&self, now: Timestamp) -> Result<Vec<NewNotification>> {
        let days = self.config.review_within_days;
        let before = now - jiff::SignedDuration::from_hours(24 * i64::from(days));
        let mut out = vec![];
        for (s, site) in self.store.unreviewed_sessions(before, 1000).await? {
            let Some(ended_at) = s.session.ended_at else {
                continue;
            };
            let people = self
                .store
                .recipients(Role::Approver, site.as_deref())
                .await?;
            let key = format!("unreviewed:{}", s.session.id);
            let subject = Subject::Recording {
                session: s.session.id.to_string(),
                reference: format!("R-{}", s.request_number),
                target: &s.target_name,
                engineer: &s.username,
                ended_at,
            };
            out.extend(self.expand(&subject, &key, &people));
        }
        Ok(out)
    }

    async fn attestations(&self, now: Timestamp) -> Result<Vec<NewNotification>> {
        let admins = self.store.recipients(Role::Admin, None).await?;
        let mut out = vec![];
        for vendor in self.store.vendors().await? {
            let Some(a) = &vendor.attestation else {
                continue;
            };
            let expires_at = a.expires_at;
            let seconds = expires_at.as_second() - now.as_second();
            let (days_left, tag) = if seconds <= 0 {
                (None, "expired".to_owned())
            } else {
                // Whole days left, rounded up: 4 days and 1 hour is "in 5 days".
                let days = u32::try_from((seconds + 86_399).div_euclid(86_400)).unwrap_or(u32::MAX);
                match warning_due(&self.config.attestation_warning_days, days) {
                    Some(w) => (Some(days), w.to_string()),
                    None => continue,
                }
            };
            let mut people = admins.clone();
            if let Some(email) = vendor.contact.email.clone().filter(|e| !e.is_empty()) {
                people.push(Recipient {
                    email,
                    language: None,
                });
            }
            let key = format!("attestation:{}:{}:{tag}", vendor.id, expires_at.as_second());
            let subject = Subject::Attestation {
                vendor: &vendor,
                expires_at,
                days_left,
            };
            out.extend(self.expand(&subject, &key, &people));
        }
        Ok(out)
    }

    async fn overdue(&self, policy: &Policy, now: Timestamp) -> Result<Vec<NewNotification>> {
        let filter = RequestFilter {
            limit: 1000,
            ..RequestFilter::default()
        };
        let mut out = vec![];
        for stored in self.store.requests(&filter).await? {
            let r = stored.request;
            if !r.is_overdue(policy, now) {
                continue;
            }
            let people = self.approvers(&r).await?;
            let key = format!("overdue:{}", r.id);
            let vendor = match self.store.vendor(r.vendor_id).await? {
                Some(v) => v.name,
                None => r.vendor_id.to_string(),
            };
            let requester = match self.store.user(r.requester).await? {
                Some(u) => u.username,
                None => r.requester.to_string(),
            };
            let subject = Subject::Request {
                kind: NotificationKind::EmergencyApprovalOverdue,
                request: &r,
                vendor: &vendor,
                requester: &requester,
            };
            out.extend(self.expand(&subject, &key, &people));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::warning_due;

    #[test]
    fn one_warning_per_threshold_reached() {
        let w = [30, 7];
        assert_eq!(warning_due(&w, 45), None);
        assert_eq!(warning_due(&w, 30), Some(30));
        assert_eq!(warning_due(&w, 8), Some(30));
        assert_eq!(warning_due(&w, 7), Some(7));
        assert_eq!(warning_due(&w, 1), Some(7));
    }
}
