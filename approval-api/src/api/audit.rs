//! The audit log over HTTP: filtered, cursor-paged reading, streamed CSV/JSONL export, and
//! chain verification.

use axum::Extension;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use jiff::Timestamp;
use sekisho_domain::audit::Outcome;
use serde::Deserialize;
use utoipa::IntoParams;

use super::dto::{AuditEventView, AuditPage, VerifyView};
use super::error::{ApiError, ApiResult, ErrorBody, Json};
use super::state::ApiState;
use super::token::Caller;
use sekisho_store::Store;
use sekisho_store::audit::{AuditFilter, Page, StoredAuditEvent};

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Events at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub from: Option<Timestamp>,
    /// Events before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    pub to: Option<Timestamp>,
    pub vendor: Option<String>,
    pub user: Option<String>,
    pub target: Option<String>,
    pub request: Option<String>,
    /// Event kind, e.g. `login_failed`, `request_decided`, `session_started`.
    pub kind: Option<String>,
    pub outcome: Option<Outcome>,
    /// Only events about targets of this site (a hospital group's site).
    pub site: Option<String>,
    /// From a previous page's `next_cursor`.
    pub cursor: Option<i64>,
    /// Page size (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
    /// `json` (default, paged), or `csv` / `jsonl`: the whole filtered log, streamed oldest first.
    #[param(pattern = "^(json|csv|jsonl)$")]
    pub format: Option<String>,
}

/// Read the audit log. Vendor engineers see their own vendor's events only.
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses(
        (status = 200, description = "a page of events, newest first; with format=csv or jsonl, a streamed export",
            content((AuditPage = "application/json"), (String = "text/csv"), (String = "application/x-ndjson"))),
        (status = 400, body = ErrorBody)))]
pub async fn list_audit(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<AuditQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let vendor = match caller.vendor_scope() {
        Some(own) => Some(own.to_string()),
        None => q.vendor.clone(),
    };
    let filter = AuditFilter {
        from: q.from,
        to: q.to,
        vendor_id: vendor,
        user_id: q.user.clone(),
        target_id: q.target.clone(),
        request_id: q.request.clone(),
        kind: q.kind.clone(),
        outcome: q.outcome,
        // Staff limited to a site see their site's events only.
        site: super::site::filter(&caller).or_else(|| q.site.clone()),
    };
    // Checked for every format, though only the paged one uses it: a bad value is a bad request.
    let limit = super::extract::page_limit(q.limit, 100)?;
    match q.format.as_deref().unwrap_or("json") {
        "json" => {
            let rows = state
                .store
                .audit_page(&filter, Page::NewestBefore(q.cursor), limit)
                .await?;
            let next_cursor = (rows.len() as i64 == limit)
                .then(|| rows.last().map(|r| r.entry.seq))
                .flatten();
            Ok(Json(AuditPage {
                events: rows.iter().map(AuditEventView::from).collect(),
                next_cursor,
            })
            .into_response())
        }
        "csv" => {
            exported(&state, &caller, "csv", &filter).await?;
            Ok(export(state.store.clone(), filter, Format::Csv))
        }
        "jsonl" => {
            exported(&state, &caller, "jsonl", &filter).await?;
            Ok(export(state.store.clone(), filter, Format::Jsonl))
        }
        other => Err(ApiError::BadRequest(format!(
            "unknown format `{other}`: use json, csv or jsonl"
        ))),
    }
}

/// Audits an export of the log (before it starts: one that cannot be audited is refused).
async fn exported(
    state: &ApiState,
    caller: &Caller,
    format: &str,
    f: &AuditFilter,
) -> ApiResult<()> {
    let parts = [
        ("from", f.from.map(|t| t.to_string())),
        ("to", f.to.map(|t| t.to_string())),
        ("vendor", f.vendor_id.clone()),
        ("user", f.user_id.clone()),
        ("target", f.target_id.clone()),
        ("request", f.request_id.clone()),
        ("kind", f.kind.clone()),
        ("outcome", f.outcome.map(|o| o.as_str().to_owned())),
        ("site", f.site.clone()),
    ];
    let filter = parts
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
        .collect::<Vec<_>>()
        .join("&");
    state
        .store
        .audit(sekisho_store::audit::NewAuditEvent::success(
            caller.actor(),
            caller.user.vendor_id,
            caller.source(),
            sekisho_domain::audit::AuditEvent::AuditExported {
                format: format.to_owned(),
                filter,
            },
        ))
        .await?;
    Ok(())
}

#[derive(Clone, Copy)]
enum Format {
    Csv,
    Jsonl,
}

const EXPORT_PAGE: i64 = 1000;
const CSV_HEADER: &str = "seq,at,kind,outcome,actor,user_id,vendor_id,target_id,request_id,source_addr,reason,details,hash\n";

fn encode(rows: &[StoredAuditEvent], format: Format) -> Result<Vec<u8>, String> {
    match format {
        Format::Jsonl => {
            let mut out = Vec::new();
            for r in rows {
                serde_json::to_writer(&mut out, &AuditEventView::from(r))
                    .map_err(|e| e.to_string())?;
                out.push(b'\n');
            }
            Ok(out)
        }
        Format::Csv => {
            let mut w = csv::WriterBuilder::new()
                .has_headers(false)
                .from_writer(Vec::new());
            for r in rows {
                let v = AuditEventView::from(r);
                w.write_record([
                    v.seq.to_string(),
                    v.at.to_string(),
                    v.kind,
                    v.outcome.as_str().to_owned(),
                    v.actor,
                    v.user_id.unwrap_or_default(),
                    v.vendor_id.unwrap_or_default(),
                    v.target_id.unwrap_or_default(),
                    v.request_id.unwrap_or_default(),
                    v.source_addr.unwrap_or_default(),
                    v.reason.unwrap_or_default(),
                    v.details.to_string(),
                    v.hash,
                ])
                .map_err(|e| e.to_string())?;
            }
            w.into_inner().map_err(|e| e.to_string())
        }
    }
}

/// Streams the filtered log page by page, so a million rows never sit in memory.
fn export(store: Store, filter: AuditFilter, format: Format) -> Response {
    let first = match format {
        Format::Csv => Some(CSV_HEADER.as_bytes().to_vec()),
        Format::Jsonl => None,
    };
    let body = stream::unfold(
        (store, filter, 0i64, first, false),
        move |(store, filter, after, first, done)| async move {
            if let Some(h) = first {
                return Some((
                    Ok::<_, std::io::Error>(h),
                    (store, filter, after, None, false),
                ));
            }
            if done {
                return None;
            }
            match store
                .audit_page(&filter, Page::OldestAfter(after), EXPORT_PAGE)
                .await
            {
                Ok(rows) if rows.is_empty() => None,
                Ok(rows) => {
                    let last = rows.last().map_or(after, |r| r.entry.seq);
                    let done = (rows.len() as i64) < EXPORT_PAGE;
                    match encode(&rows, format) {
                        Ok(bytes) => Some((Ok(bytes), (store, filter, last, None, done))),
                        Err(e) => Some((
                            Err(std::io::Error::other(e)),
                            (store, filter, last, None, true),
                        )),
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "audit export failed mid-stream");
                    Some((
                        Err(std::io::Error::other(e.to_string())),
                        (store, filter, after, None, true),
                    ))
                }
            }
        },
    );
    let (content_type, name) = match format {
        Format::Csv => ("text/csv; charset=utf-8", "sekisho-audit.csv"),
        Format::Jsonl => ("application/x-ndjson", "sekisho-audit.jsonl"),
    };
    (
        [
            (header::CONTENT_TYPE, content_type.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// The chain walked now, or the last walk's report if it is at most `max_age` old (see
/// [`ChainCheck`]).
pub async fn check_chain(
    state: &ApiState,
    max_age: Option<jiff::SignedDuration>,
) -> ApiResult<VerifyView> {
    state.chain_check.report(max_age, || walk(state)).await
}

/// One walk of the chain, then of the signed checkpoints against it.
async fn walk(state: &ApiState) -> ApiResult<VerifyView> {
    let report = state.store.verify_audit_chain(|_| {}).await?;
    let anchored = crate::anchor::check(
        &state.store,
        state.recordings.dir(),
        Some(state.recording_public_key.as_str()),
    )
    .await?;
    let problem = report
        .first_break
        .map(|b| b.to_string())
        .or_else(|| anchored.problems.first().cloned());
    Ok(VerifyView {
        verified_at: Timestamp::now(),
        intact: problem.is_none(),
        rows: report.rows,
        last_seq: report.last_seq,
        problem,
        checkpoints: anchored.matched,
        checkpoint_problems: anchored.problems,
    })
}

/// Walks the chain at start and then every `every` until `stop`, so that the console's
/// audit page shows a recent report without waiting for a walk; a broken chain is logged
/// as an error each time it is found.
pub async fn keep_chain_checked(
    state: ApiState,
    every: std::time::Duration,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        let started = std::time::Instant::now();
        match check_chain(&state, None).await {
            Ok(v) if v.intact => tracing::info!(
                rows = v.rows,
                seconds = started.elapsed().as_secs_f64(),
                "audit chain verified intact"
            ),
            Ok(v) => tracing::error!(
                rows = v.rows,
                problem = v.problem.as_deref().unwrap_or(""),
                "audit chain BROKEN"
            ),
            Err(e) => tracing::warn!(error = ?e, "cannot verify the audit chain now"),
        }
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct VerifyQuery {
    /// Answer with the last walk's report when it finished at most this many seconds ago
    /// (the console's audit page allows an hour; the server walks every
    /// `[audit] checkpoint_minutes`); without it, the chain is walked now.
    #[param(minimum = 0, maximum = 86400)]
    pub max_age_seconds: Option<u32>,
}

/// Walk the audit log's hash chain and report the first row altered, deleted or inserted;
/// then check it against the signed checkpoints the nodes wrote outside the database. One
/// walk at a time: a second caller waits for the running walk and, when it allows an age,
/// takes its report instead of starting another.
#[utoipa::path(get, path = "/api/v1/audit/verify", tag = "audit", params(VerifyQuery),
    responses((status = 200, body = VerifyView), (status = 400, body = ErrorBody),
        (status = 403, body = ErrorBody)))]
pub async fn verify(
    State(state): State<ApiState>,
    query: Result<Query<VerifyQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<VerifyView>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if q.max_age_seconds.is_some_and(|s| s > 86_400) {
        return Err(ApiError::BadRequest(
            "max_age_seconds must be at most 86400 (a day)".into(),
        ));
    }
    let max_age = q
        .max_age_seconds
        .map(|s| jiff::SignedDuration::from_secs(i64::from(s)));
    Ok(Json(check_chain(&state, max_age).await?))
}
