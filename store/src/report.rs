//! Gathers what the monthly report is made of (issue #18; the report itself is
//! [`sekisho_domain::report::monthly`]).

use std::collections::{HashMap, HashSet};

use jiff::{SignedDuration, Timestamp};
use sekisho_domain::files::Outcome as FileOutcome;
use sekisho_domain::ids::RequestId;
use sekisho_domain::policy::Policy;
use sekisho_domain::report::{Inputs, Month, SessionRow, TransferRow};
use sekisho_domain::zone::DisplayZone;

use super::assignments::AssignmentFilter;
use super::audit::{AuditFilter, Page};
use super::sessions::Review;
use super::{Result, Store};

/// What the report counts, besides the month.
#[derive(Clone, Debug)]
pub struct ReportSettings {
    pub policy: Policy,
    pub zone: DisplayZone,
    pub review_deadline: SignedDuration,
    /// An account unused this long at the month's end is listed.
    pub unused_after: SignedDuration,
}

impl Store {
    /// Everything [`sekisho_domain::report::monthly`] needs for `month`, read now; of the
    /// targets of `site` only when given (a site's committee gets its own report): their
    /// sessions, refusals and files, the contracts for them, and of the vendors that maintain
    /// them the attestations, idle accounts and lines.
    pub async fn monthly_inputs(
        &self,
        month: Month,
        s: &ReportSettings,
        site: Option<&str>,
    ) -> Result<Inputs> {
        let (from, to) = month.bounds(s.zone.tz());
        let now = Timestamp::now();
        let targets: HashMap<_, _> = self
            .targets()
            .await?
            .into_iter()
            .filter(|t| site.is_none_or(|site| t.site.as_deref() == Some(site)))
            .map(|t| (t.id, t.name))
            .collect();
        let of_site = |t: &sekisho_domain::ids::TargetId| site.is_none() || targets.contains_key(t);
        let assignments: Vec<_> = self
            .assignments(AssignmentFilter::default())
            .await?
            .into_iter()
            .filter(|a| of_site(&a.target_id))
            .collect();
        // The vendors a site's report speaks of: those assigned to its targets.
        let maintainers: HashSet<_> = assignments.iter().map(|a| a.vendor_id).collect();
        let concerns = |v: Option<sekisho_domain::ids::VendorId>| {
            site.is_none() || v.is_some_and(|v| maintainers.contains(&v))
        };
        let vendors: HashMap<_, _> = self
            .vendors()
            .await?
            .into_iter()
            .map(|v| (v.id, v))
            .collect();
        let vendor_name = |id| {
            vendors
                .get(&id)
                .map_or_else(String::new, |v| v.name.clone())
        };
        let mut requests: HashMap<RequestId, (bool, Timestamp, Option<Timestamp>)> = HashMap::new();
        let mut sessions = vec![];
        for x in self.sessions_started_between(from, to).await? {
            if !of_site(&x.session.target_id) {
                continue;
            }
            let r = match requests.get(&x.session.request_id) {
                Some(r) => *r,
                None => {
                    let r = self
                        .request(x.session.request_id)
                        .await?
                        .map(|r| {
                            let q = r.request;
                            (q.emergency, q.created_at, q.approved_at(&s.policy))
                        })
                        .unwrap_or((false, x.session.started_at, None));
                    requests.insert(x.session.request_id, r);
                    r
                }
            };
            sessions.push(SessionRow {
                vendor: vendor_name(x.session.vendor_id),
                target: x.target_name.clone(),
                level: x.session.level,
                started_at: x.session.started_at,
                ended_at: x.session.ended_at,
                request_number: x.request_number,
                emergency: r.0,
                request_filed_at: r.1,
                approved_at: r.2,
                reviewed_at: match &x.review {
                    Review::SignedOff { at, .. } => Some(*at),
                    Review::Pending => None,
                },
            });
        }
        let mut refusals = vec![];
        let filter = AuditFilter {
            from: Some(from),
            to: Some(to),
            kind: Some("access_denied".into()),
            site: site.map(ToOwned::to_owned),
            ..AuditFilter::default()
        };
        let mut after = 0;
        loop {
            let page = self
                .audit_page(&filter, Page::OldestAfter(after), 1000)
                .await?;
            let Some(last) = page.last() else { break };
            after = last.entry.seq;
            for e in &page {
                let details: serde_json::Value =
                    serde_json::from_str(&e.entry.details).unwrap_or_default();
                refusals.push(details["code"].as_str().unwrap_or("unknown").to_owned());
            }
        }
        let transfers = self
            .transfers_between(from, to)
            .await?
            .into_iter()
            .filter(|t| of_site(&t.target))
            .map(|t| TransferRow {
                direction: t.record.direction,
                bytes: t.record.bytes,
                blocked: matches!(
                    t.record.outcome,
                    FileOutcome::Blocked | FileOutcome::Refused
                ),
            })
            .collect();
        let attestations = vendors
            .values()
            .filter(|v| concerns(Some(v.id)))
            .filter_map(|v| {
                v.attestation
                    .as_ref()
                    .map(|a| (v.name.clone(), a.expires_at))
            })
            .collect();
        let contracts = assignments
            .into_iter()
            .filter_map(|a| {
                a.ends_at.map(|end| {
                    let target = targets.get(&a.target_id).cloned().unwrap_or_default();
                    (format!("{} → {target}", vendor_name(a.vendor_id)), end)
                })
            })
            .collect();
        let unused_accounts = self
            .idle_vendor_accounts(to - s.unused_after)
            .await?
            .into_iter()
            .filter(|(u, _)| concerns(u.vendor_id))
            .map(|(u, last)| {
                let vendor = u.vendor_id.map(vendor_name).unwrap_or_default();
                (u.username, vendor, last)
            })
            .collect();
        let lines_due = self
            .lines()
            .await?
            .into_iter()
            .filter(|l| concerns(l.vendor_id) && l.review_due(to))
            .map(|l| l.name)
            .collect();
        Ok(Inputs {
            month,
            site: site.map(ToOwned::to_owned),
            now,
            sessions,
            refusals,
            transfers,
            attestations,
            contracts,
            unused_accounts,
            lines_due,
            review_deadline: s.review_deadline,
        })
    }
}
