//! Work requests, their approvals, and the transitions the domain rules allow.

use sekisho_domain::assignment::ScopeProblem;
use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::ids::{RequestId, TargetId, UserId, VendorId};
use sekisho_domain::policy::Policy;
use sekisho_domain::request::{
    Action, Approval, RequestEvent, RequestStatus, RuleContext, TransitionError, Verdict, Window,
    WorkRequest,
};
use sekisho_domain::target::AccessLevel;
use sekisho_domain::user::User;
use sekisho_domain::vendor::Vendor;
use sekisho_domain::zone::DisplayZone;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::audit::{self, NewAuditEvent};
use super::vendors::vendor_in;
use super::{Result, Store, StoreError, from_micros, micros, now, parse};

/// A request as filed by a vendor engineer.
#[derive(Clone, Debug)]
pub struct NewRequest {
    pub requester: UserId,
    pub vendor_id: VendorId,
    pub target_id: TargetId,
    pub target_name: String,
    pub level: AccessLevel,
    pub window: Window,
    pub reason: String,
    pub plan: String,
    pub emergency: bool,
}

/// What a vendor engineer asks for when filing, through the HTTP API or the designated client.
#[derive(Clone, Debug)]
pub struct Application {
    /// A target's name, or its id.
    pub target: String,
    pub level: AccessLevel,
    pub window: Window,
    pub reason: String,
    pub plan: String,
    pub emergency: bool,
}

/// Why an application was not filed.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    #[error("only vendor engineers file requests")]
    NotAVendor,
    /// A field breaks a rule; the message names the rule.
    #[error("{field}: {message}")]
    Invalid {
        field: &'static str,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<sqlx::Error> for FileError {
    fn from(e: sqlx::Error) -> Self {
        FileError::Store(e.into())
    }
}

fn invalid(field: &'static str, message: impl ToString) -> FileError {
    FileError::Invalid {
        field,
        message: message.to_string(),
    }
}

impl Store {
    /// Checks an application against the rules (a known target offering the level, a window
    /// the policy allows, emergency use only where allowed, text without control characters)
    /// and files it for `user`. The HTTP API and the designated client both file here.
    pub async fn file_application(
        &self,
        policy: &Policy,
        user: &User,
        app: Application,
        source: Option<&str>,
    ) -> std::result::Result<WorkRequest, FileError> {
        let vendor = user.vendor_id.ok_or(FileError::NotAVendor)?;
        let target = match app.target.parse() {
            Ok(id) => self.target(id).await?,
            Err(_) => self.target_by_name(&app.target).await?,
        }
        .ok_or_else(|| invalid("target", unassigned(&app.target)))?;
        // A vendor files only for targets assigned to it; one it is not assigned to reads
        // like one that does not exist.
        let assignment = self.assignment_for(vendor, target.id).await?;
        let assignment =
            sekisho_domain::assignment::check(assignment.as_ref(), jiff::Timestamp::now())
                .map_err(|p| match p {
                    ScopeProblem::NotAssigned => invalid("target", unassigned(&app.target)),
                    ScopeProblem::ContractEnded { on } => invalid(
                        "target",
                        format!(
                            "your vendor's maintenance contract for {} ended at {on}",
                            target.name
                        ),
                    ),
                })?;
        if let Err(on) = sekisho_domain::assignment::check_window(assignment, app.window.end) {
            return Err(invalid(
                "window_end",
                format!(
                    "the window ends after your vendor's maintenance contract for {} (it ends at {on})",
                    target.name
                ),
            ));
        }
        if target.level(app.level).is_none() {
            return Err(invalid(
                "level",
                format!("{} offers no {} access", target.name, app.level),
            ));
        }
        sekisho_domain::request::validate_window(app.window, policy, jiff::Timestamp::now())
            .map_err(|e| invalid("window_end", e))?;
        if app.emergency && !policy.emergency_access {
            return Err(invalid(
                "emergency",
                "emergency access is disabled by the hospital's policy",
            ));
        }
        let reason = app.reason.trim().to_owned();
        sekisho_domain::text::check_name(&reason, 2000).map_err(|e| invalid("reason", e))?;
        sekisho_domain::text::check_text(&app.plan, 20_000).map_err(|e| invalid("plan", e))?;
        Ok(self
            .file_request(
                NewRequest {
                    requester: user.id,
                    vendor_id: vendor,
                    target_id: target.id,
                    target_name: target.name.clone(),
                    level: app.level,
                    window: app.window,
                    reason,
                    plan: app.plan,
                    emergency: app.emergency,
                },
                &Actor::user(user),
                source,
            )
            .await?)
    }
}

fn unassigned(target: &str) -> String {
    format!("no target named `{target}` is assigned to your vendor")
}

/// What a person does to a request through the API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestAction {
    Approve,
    Reject,
    Cancel,
    Revoke,
}

impl RequestAction {
    /// The action as the audit log names it.
    pub fn audited(self) -> Action {
        match self {
            RequestAction::Approve => Action::Approve,
            RequestAction::Reject => Action::Reject,
            RequestAction::Cancel => Action::Cancel,
            RequestAction::Revoke => Action::Revoke,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RequestAction::Approve => "approve",
            RequestAction::Reject => "reject",
            RequestAction::Cancel => "cancel",
            RequestAction::Revoke => "revoke",
        }
    }
}

/// Which requests to list.
#[derive(Clone, Debug, Default)]
pub struct RequestFilter {
    pub vendor_id: Option<VendorId>,
    pub requester: Option<UserId>,
    pub target_id: Option<TargetId>,
    pub status: Option<RequestStatus>,
    /// Only requests for targets of this site.
    pub site: Option<String>,
    /// Only requests whose window has not ended then (all that an admission looks at).
    pub open_at: Option<jiff::Timestamp>,
    pub limit: i64,
}

const COLUMNS: &str = "r.id, r.number, r.requester_id, r.vendor_id, r.target_id, t.name AS target_name, r.level, \
     r.window_start, r.window_end, r.reason, r.plan, r.emergency, r.status, r.report, r.created_at";

fn row_to_request(row: &AnyRow) -> Result<(WorkRequest, Option<String>)> {
    Ok((
        WorkRequest {
            id: parse("request id", &row.try_get::<String, _>("id")?)?,
            number: row.try_get("number")?,
            requester: parse("user id", &row.try_get::<String, _>("requester_id")?)?,
            vendor_id: parse("vendor id", &row.try_get::<String, _>("vendor_id")?)?,
            target_id: parse("target id", &row.try_get::<String, _>("target_id")?)?,
            target_name: row.try_get("target_name")?,
            level: parse("access level", &row.try_get::<String, _>("level")?)?,
            window: Window {
                start: from_micros(row.try_get("window_start")?)?,
                end: from_micros(row.try_get("window_end")?)?,
            },
            reason: row.try_get("reason")?,
            plan: row.try_get("plan")?,
            emergency: row.try_get::<i64, _>("emergency")? != 0,
            status: parse("request status", &row.try_get::<String, _>("status")?)?,
            approvals: vec![],
            created_at: from_micros(row.try_get("created_at")?)?,
        },
        row.try_get("report")?,
    ))
}

const APPROVAL_COLUMNS: &str = "request_id, approver_id, verdict, comment, at";

fn row_to_approval(row: &AnyRow) -> Result<Approval> {
    Ok(Approval {
        approver: parse("user id", &row.try_get::<String, _>("approver_id")?)?,
        verdict: match row.try_get::<String, _>("verdict")?.as_str() {
            "approve" => Verdict::Approve,
            "reject" => Verdict::Reject,
            other => return Err(StoreError::Corrupt(format!("verdict `{other}`"))),
        },
        comment: row.try_get("comment")?,
        at: from_micros(row.try_get("at")?)?,
    })
}

async fn approvals_of(conn: &mut AnyConnection, id: RequestId) -> Result<Vec<Approval>> {
    let sql = format!("SELECT {APPROVAL_COLUMNS} FROM approvals WHERE request_id = $1 ORDER BY at");
    sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_all(conn)
        .await?
        .iter()
        .map(row_to_approval)
        .collect()
}

/// The approvals of many requests in one query (request listings), by request id.
async fn approvals_of_all(
    conn: &mut AnyConnection,
    ids: &[RequestId],
) -> Result<std::collections::HashMap<RequestId, Vec<Approval>>> {
    let mut out: std::collections::HashMap<RequestId, Vec<Approval>> =
        std::collections::HashMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let placeholders: Vec<String> = (1..=ids.len()).map(|i| format!("${i}")).collect();
    let sql = format!(
        "SELECT {APPROVAL_COLUMNS} FROM approvals WHERE request_id IN ({}) ORDER BY at",
        placeholders.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for id in ids {
        q = q.bind(id.to_string());
    }
    for row in q.fetch_all(conn).await? {
        let id: RequestId = parse("request id", &row.try_get::<String, _>("request_id")?)?;
        out.entry(id).or_default().push(row_to_approval(&row)?);
    }
    Ok(out)
}

/// A request with its approvals and work report.
#[derive(Clone, Debug)]
pub struct StoredRequest {
    pub request: WorkRequest,
    pub report: Option<String>,
}

async fn load(conn: &mut AnyConnection, id: RequestId) -> Result<Option<StoredRequest>> {
    let sql = format!(
        "SELECT {COLUMNS} FROM work_requests r JOIN targets t ON t.id = r.target_id WHERE r.id = $1"
    );
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(id.to_string())
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let (mut request, report) = row_to_request(&row)?;
    request.approvals = approvals_of(conn, id).await?;
    Ok(Some(StoredRequest { request, report }))
}

/// A request and its vendor, read inside `conn`'s transaction (the rules need both).
async fn load_with_vendor(
    conn: &mut AnyConnection,
    id: RequestId,
) -> Result<(StoredRequest, Vendor)> {
    let stored = load(&mut *conn, id)
        .await?
        .ok_or_else(|| StoreError::NotFound(format!("request {id}")))?;
    let vendor = vendor_in(conn, stored.request.vendor_id)
        .await?
        .ok_or_else(|| StoreError::Corrupt(format!("vendor of request {id} missing")))?;
    Ok((stored, vendor))
}

/// Why an action on a request did not happen.
#[derive(Debug, thiserror::Error)]
pub enum ActionError {
    #[error(transparent)]
    Rule(#[from] TransitionError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Store {
    /// Files a request (numbered `R-n`) and audits it.
    pub async fn file_request(
        &self,
        new: NewRequest,
        actor: &Actor,
        source: Option<&str>,
    ) -> Result<WorkRequest> {
        let mut tx = self.begin().await?;
        let number: i64 = sqlx::query(
            "UPDATE counters SET value = value + 1 WHERE name = 'work_request' RETURNING value",
        )
        .fetch_one(&mut *tx)
        .await?
        .try_get("value")?;
        let created = now();
        let request = WorkRequest {
            id: RequestId::new(),
            number,
            requester: new.requester,
            vendor_id: new.vendor_id,
            target_id: new.target_id,
            target_name: new.target_name,
            level: new.level,
            window: new.window,
            reason: new.reason,
            plan: new.plan,
            emergency: new.emergency,
            status: RequestStatus::Submitted,
            approvals: vec![],
            created_at: created,
        };
        sqlx::query(
            "INSERT INTO work_requests (id, number, requester_id, vendor_id, target_id, level, window_start, window_end, reason, plan, emergency, status, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
        )
        .bind(request.id.to_string())
        .bind(number)
        .bind(request.requester.to_string())
        .bind(request.vendor_id.to_string())
        .bind(request.target_id.to_string())
        .bind(request.level.as_str())
        .bind(micros(request.window.start))
        .bind(micros(request.window.end))
        .bind(&request.reason)
        .bind(&request.plan)
        .bind(i64::from(request.emergency))
        .bind(request.status.as_str())
        .bind(micros(created))
        .bind(micros(created))
        .execute(&mut *tx)
        .await?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                actor.clone(),
                Some(request.vendor_id),
                source,
                AuditEvent::RequestFiled {
                    request: request.id,
                    number,
                    target: request.target_id,
                    level: request.level,
                    emergency: request.emergency,
                },
            ),
        )
        .await?;
        tx.commit().await?;
        Ok(request)
    }

    pub async fn request(&self, id: RequestId) -> Result<Option<StoredRequest>> {
        load(&mut *self.pool.acquire().await?, id).await
    }

    /// Requests matching `filter`, newest first, with their approvals.
    pub async fn requests(&self, filter: &RequestFilter) -> Result<Vec<StoredRequest>> {
        let mut sql = format!(
            "SELECT {COLUMNS} FROM work_requests r JOIN targets t ON t.id = r.target_id WHERE 1 = 1"
        );
        let mut args: Vec<String> = vec![];
        let mut cond = |col: &str, value: String| {
            args.push(value);
            sql.push_str(&format!(" AND {col} = ${}", args.len()));
        };
        if let Some(v) = filter.vendor_id {
            cond("r.vendor_id", v.to_string());
        }
        if let Some(u) = filter.requester {
            cond("r.requester_id", u.to_string());
        }
        if let Some(t) = filter.target_id {
            cond("r.target_id", t.to_string());
        }
        if let Some(s) = filter.status {
            cond("r.status", s.as_str().to_owned());
        }
        if let Some(site) = &filter.site {
            cond("t.site", site.clone());
        }
        let open_at = filter.open_at.map(micros);
        if open_at.is_some() {
            sql.push_str(&format!(" AND r.window_end > ${}", args.len() + 1));
        }
        let limit = if filter.limit <= 0 {
            200
        } else {
            filter.limit.min(1000)
        };
        sql.push_str(&format!(" ORDER BY r.number DESC LIMIT {limit}"));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for a in args {
            q = q.bind(a);
        }
        if let Some(at) = open_at {
            q = q.bind(at);
        }
        let mut conn = self.pool.acquire().await?;
        let rows = q.fetch_all(&mut *conn).await?;
        let mut out = rows
            .iter()
            .map(|row| {
                row_to_request(row).map(|(request, report)| StoredRequest { request, report })
            })
            .collect::<Result<Vec<_>>>()?;
        let ids: Vec<RequestId> = out.iter().map(|r| r.request.id).collect();
        let mut approvals = approvals_of_all(&mut conn, &ids).await?;
        for r in &mut out {
            r.request.approvals = approvals.remove(&r.request.id).unwrap_or_default();
        }
        Ok(out)
    }

    /// A person's action on a request, decided by the domain's state machine. Allowed actions
    /// and refusals are both audited; a refusal returns the rule's reason.
    #[allow(clippy::too_many_arguments)]
    pub async fn act_on_request(
        &self,
        id: RequestId,
        action: RequestAction,
        comment: Option<String>,
        by: &User,
        policy: &Policy,
        zone: &DisplayZone,
        source: Option<&str>,
    ) -> std::result::Result<WorkRequest, ActionError> {
        let mut tx = self.begin().await?;
        let (StoredRequest { mut request, .. }, vendor) = load_with_vendor(&mut tx, id).await?;
        let credentials = super::users::credential_issues(&mut tx, request.requester).await?;
        let ctx = RuleContext {
            policy,
            vendor: &vendor,
            now: now(),
            zone,
            credentials: &credentials,
        };
        let event = match action {
            RequestAction::Approve => RequestEvent::Approve {
                approver: by,
                comment: comment.clone(),
            },
            RequestAction::Reject => RequestEvent::Reject {
                approver: by,
                comment: comment.clone(),
            },
            RequestAction::Cancel => RequestEvent::Cancel { by: by.id },
            RequestAction::Revoke => RequestEvent::Revoke { by },
        };
        let actor = Actor::user(by);
        let audit_ev = |outcome, reason, status: RequestStatus| NewAuditEvent {
            actor: actor.clone(),
            outcome,
            vendor_id: Some(request.vendor_id),
            source_addr: source.map(str::to_owned),
            reason,
            event: AuditEvent::RequestDecided {
                request: id,
                number: request.number,
                action: action.audited(),
                status,
            },
        };
        match request.apply(&event, &ctx) {
            Err(rule) => {
                audit::append(
                    &mut tx,
                    audit_ev(Outcome::Denied, Some(rule.to_string()), request.status),
                )
                .await?;
                tx.commit().await.map_err(StoreError::from)?;
                Err(ActionError::Rule(rule))
            }
            Ok(transition) => {
                sqlx::query("UPDATE work_requests SET status = $1, updated_at = $2 WHERE id = $3")
                    .bind(transition.status.as_str())
                    .bind(micros(ctx.now))
                    .bind(id.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(StoreError::from)?;
                if let Some(a) = &transition.record {
                    sqlx::query("INSERT INTO approvals (id, request_id, approver_id, verdict, comment, at) VALUES ($1, $2, $3, $4, $5, $6)")
                        .bind(uuid::Uuid::new_v4().to_string())
                        .bind(id.to_string())
                        .bind(a.approver.to_string())
                        .bind(match a.verdict {
                            Verdict::Approve => "approve",
                            Verdict::Reject => "reject",
                        })
                        .bind(&a.comment)
                        .bind(micros(a.at))
                        .execute(&mut *tx)
                        .await
                        .map_err(StoreError::from)?;
                }
                audit::append(
                    &mut tx,
                    audit_ev(Outcome::Success, comment, transition.status),
                )
                .await?;
                tx.commit().await.map_err(StoreError::from)?;
                request.status = transition.status;
                request.approvals.extend(transition.record);
                Ok(request)
            }
        }
    }

    /// The requester's report of the work done. Completes an active request.
    pub async fn report_work(
        &self,
        id: RequestId,
        text: String,
        by: &User,
        policy: &Policy,
        zone: &DisplayZone,
        source: Option<&str>,
    ) -> std::result::Result<WorkRequest, ActionError> {
        let mut tx = self.begin().await?;
        let (StoredRequest { mut request, .. }, vendor) = load_with_vendor(&mut tx, id).await?;
        if request.requester != by.id {
            return Err(ActionError::Rule(TransitionError::NotRequester {
                number: request.number,
                action: "report on",
            }));
        }
        let status = match request.status {
            RequestStatus::Active => {
                let ctx = RuleContext {
                    policy,
                    vendor: &vendor,
                    now: now(),
                    zone,
                    credentials: &[],
                };
                request
                    .apply(&RequestEvent::Complete { by: by.id }, &ctx)?
                    .status
            }
            RequestStatus::Completed | RequestStatus::Expired | RequestStatus::Revoked => {
                request.status
            }
            other => {
                return Err(ActionError::Rule(TransitionError::InvalidState {
                    number: request.number,
                    status: other,
                    event: "report",
                }));
            }
        };
        sqlx::query(
            "UPDATE work_requests SET report = $1, status = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(&text)
        .bind(status.as_str())
        .bind(micros(now()))
        .bind(id.to_string())
        .execute(&mut *tx)
        .await
        .map_err(StoreError::from)?;
        audit::append(
            &mut tx,
            NewAuditEvent::success(
                Actor::user(by),
                Some(request.vendor_id),
                source,
                AuditEvent::RequestDecided {
                    request: id,
                    number: request.number,
                    action: Action::Report,
                    status,
                },
            ),
        )
        .await?;
        tx.commit().await.map_err(StoreError::from)?;
        request.status = status;
        Ok(request)
    }
}

impl Store {
    /// Moves every request whose window has ended (and that is still submitted, approved or
    /// active) to `expired`, through the domain's `Expire` rule, audited as the system.
    /// Returns the requests expired.
    pub async fn expire_requests(
        &self,
        policy: &Policy,
        zone: &DisplayZone,
    ) -> Result<Vec<RequestId>> {
        let t = now();
        let ids: Vec<String> = sqlx::query(
            "SELECT id FROM work_requests WHERE window_end <= $1 AND status IN ('submitted', 'approved', 'active')",
        )
        .bind(micros(t))
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<std::result::Result<_, _>>()?;
        let mut expired = vec![];
        for id in ids {
            let id: RequestId = parse("request id", &id)?;
            let mut tx = self.begin().await?;
            // A request deleted since the first query is simply skipped.
            let (StoredRequest { request, .. }, vendor) = match load_with_vendor(&mut tx, id).await
            {
                Ok(found) => found,
                Err(StoreError::NotFound(_)) => continue,
                Err(e) => return Err(e),
            };
            let ctx = RuleContext {
                policy,
                vendor: &vendor,
                now: t,
                zone,
                credentials: &[],
            };
            // Another node may have expired it already: then the rule refuses and we move on.
            let Ok(transition) = request.apply(&RequestEvent::Expire, &ctx) else {
                continue;
            };
            sqlx::query("UPDATE work_requests SET status = $1, updated_at = $2 WHERE id = $3 AND status = $4")
                .bind(transition.status.as_str())
                .bind(micros(t))
                .bind(id.to_string())
                .bind(request.status.as_str())
                .execute(&mut *tx)
                .await?;
            audit::append(
                &mut tx,
                NewAuditEvent {
                    actor: Actor::System,
                    outcome: Outcome::Success,
                    vendor_id: Some(request.vendor_id),
                    source_addr: None,
                    reason: Some("window ended".into()),
                    event: AuditEvent::RequestDecided {
                        request: id,
                        number: request.number,
                        action: Action::Expire,
                        status: transition.status,
                    },
                },
            )
            .await?;
            tx.commit().await?;
            expired.push(id);
        }
        Ok(expired)
    }
}
