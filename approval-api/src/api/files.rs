//! Files that crossed the gateway (searchable by name, per session) and the quarantine of
//! blocked uploads (issue #16).

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use jiff::Timestamp;
use sekisho_domain::files::{Direction, Outcome};
use sekisho_store::files::{QuarantineEntry, StoredTransfer, TransferFilter};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody, Json};
use super::state::ApiState;
use super::token::Caller;

/// One file that crossed (or tried to).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct TransferView {
    pub id: String,
    pub session: String,
    pub target: String,
    pub user: String,
    #[schema(value_type = String)]
    pub direction: Direction,
    /// The path on the target, as the vendor named it.
    pub path: String,
    pub bytes: u64,
    /// SHA-256 of the file's bytes as they crossed; absent when they did not cross in order.
    pub sha256: Option<String>,
    pub sequential: bool,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub ended_at: Timestamp,
    #[schema(value_type = String)]
    pub outcome: Outcome,
    pub detail: Option<String>,
    /// The quarantine entry of a blocked upload.
    pub quarantine: Option<String>,
}

fn at(us: i64) -> Timestamp {
    Timestamp::from_microsecond(us).unwrap_or(Timestamp::UNIX_EPOCH)
}

impl From<StoredTransfer> for TransferView {
    fn from(t: StoredTransfer) -> Self {
        Self {
            id: t.id,
            session: t.session.to_string(),
            target: t.target.to_string(),
            user: t.user.to_string(),
            direction: t.record.direction,
            path: t.record.path,
            bytes: t.record.bytes,
            sha256: t.record.sha256,
            sequential: t.record.sequential,
            started_at: at(t.record.started_at_us),
            ended_at: at(t.record.ended_at_us),
            outcome: t.record.outcome,
            detail: t.record.detail,
            quarantine: t.record.quarantine,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct FilesQuery {
    /// Only the files of this session (its recording).
    #[param(value_type = Option<String>, format = Uuid)]
    pub session: Option<String>,
    /// A part of the path on the target, in any case.
    #[param(max_length = 200)]
    pub name: Option<String>,
    /// How many, newest first (default 100, at most 1000).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<i64>,
}

/// Files that crossed the gateway, newest first: by session, or searched by name.
#[utoipa::path(get, path = "/api/v1/files", tag = "files", params(FilesQuery),
    responses((status = 200, body = Vec<TransferView>), (status = 400, body = ErrorBody)))]
pub async fn list_files(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<FilesQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<TransferView>>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let session = match q.session.as_deref() {
        Some(s) => Some(
            s.parse()
                .map_err(|_| ApiError::BadRequest(format!("session: `{s}` is not a session id")))?,
        ),
        None => None,
    };
    if q.name.as_ref().is_some_and(|n| n.chars().count() > 200) {
        return Err(ApiError::BadRequest(
            "name: at most 200 characters".to_owned(),
        ));
    }
    let limit = super::extract::page_limit(q.limit, 100)?;
    let filter = TransferFilter {
        session,
        name: q.name.filter(|n| !n.is_empty()),
        limit: u32::try_from(limit).unwrap_or(100),
    };
    let visible = super::site::target_ids(&state, &caller).await?;
    let rows = state.store.file_transfers(&filter).await?;
    Ok(Json(
        rows.into_iter()
            .filter(|t| visible.as_ref().is_none_or(|v| v.contains(&t.target)))
            .map(TransferView::from)
            .collect(),
    ))
}

/// A blocked upload kept in quarantine.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct QuarantineView {
    pub id: String,
    pub session: String,
    pub request: String,
    pub target: String,
    pub user: String,
    pub vendor: Option<String>,
    /// The node whose quarantine directory holds the file.
    pub node: String,
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
    /// Why it was blocked ("blocked: Eicar-Test-Signature found by clamd").
    pub reason: String,
    #[schema(value_type = String, format = DateTime)]
    pub created_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub deleted_at: Option<Timestamp>,
}

impl From<QuarantineEntry> for QuarantineView {
    fn from(q: QuarantineEntry) -> Self {
        Self {
            id: q.id,
            session: q.session.to_string(),
            request: q.request.to_string(),
            target: q.target.to_string(),
            user: q.user.to_string(),
            vendor: q.vendor.map(|v| v.to_string()),
            node: q.node,
            path: q.path,
            bytes: q.bytes,
            sha256: q.sha256,
            reason: q.reason,
            created_at: q.created_at,
            deleted_at: q.deleted_at,
        }
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct QuarantineQuery {
    /// Also entries whose file was deleted.
    pub deleted: Option<bool>,
}

/// Blocked uploads, newest first.
#[utoipa::path(get, path = "/api/v1/quarantine", tag = "files", params(QuarantineQuery),
    responses((status = 200, body = Vec<QuarantineView>), (status = 400, body = ErrorBody)))]
pub async fn list_quarantine(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<QuarantineQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<QuarantineView>>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let visible = super::site::target_ids(&state, &caller).await?;
    let rows = state.store.quarantine(q.deleted.unwrap_or(false)).await?;
    Ok(Json(
        rows.into_iter()
            .filter(|e| visible.as_ref().is_none_or(|v| v.contains(&e.target)))
            .map(QuarantineView::from)
            .collect(),
    ))
}

/// The entry `id` if the caller may see it and its file is still kept.
async fn kept(state: &ApiState, caller: &Caller, id: &str) -> ApiResult<QuarantineEntry> {
    let absent = || ApiError::not_found(format!("quarantine entry {id}"));
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
        return Err(absent());
    }
    let entry = state
        .store
        .quarantine_entry(id)
        .await?
        .filter(|e| e.deleted_at.is_none())
        .ok_or_else(absent)?;
    super::site::check_target(state, caller, entry.target).await?;
    Ok(entry)
}

/// The path of a kept file on this node, or why it is not here.
fn kept_path(state: &ApiState, entry: &QuarantineEntry) -> ApiResult<std::path::PathBuf> {
    let path = state
        .settings
        .quarantine_dir
        .join("blocked")
        .join(&entry.id);
    if path.is_file() {
        Ok(path)
    } else {
        Err(ApiError::not_found(format!(
            "the file of quarantine entry {} is kept on node {}: ask that node",
            entry.id, entry.node
        )))
    }
}

/// A blocked file, for IT to inspect (audited). Sent as an attachment, never shown inline.
#[utoipa::path(get, path = "/api/v1/quarantine/{id}/content", tag = "files", params(("id" = String, Path)),
    responses((status = 200, description = "the blocked file", content_type = "application/octet-stream", body = Vec<u8>),
        (status = 404, body = ErrorBody)))]
pub async fn quarantine_content(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    let entry = kept(&state, &caller, &id).await?;
    let path = kept_path(&state, &entry)?;
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|e| ApiError::Internal(format!("quarantine file: {e}")))?;
    state
        .store
        .quarantine_retrieved(&entry, &caller.user, caller.source.as_deref())
        .await?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"quarantine-{}\"", entry.id),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}

/// Deletes a blocked file (the entry stays, marked deleted; audited).
#[utoipa::path(delete, path = "/api/v1/quarantine/{id}", tag = "files", params(("id" = String, Path)),
    responses((status = 200, body = QuarantineView), (status = 404, body = ErrorBody)))]
pub async fn delete_quarantine(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<(StatusCode, Json<QuarantineView>)> {
    let entry = kept(&state, &caller, &id).await?;
    let path = kept_path(&state, &entry)?;
    tokio::fs::remove_file(&path)
        .await
        .map_err(|e| ApiError::Internal(format!("quarantine file: {e}")))?;
    state
        .store
        .quarantine_deleted(&entry, &caller.user, caller.source.as_deref())
        .await?;
    let entry = state
        .store
        .quarantine_entry(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("quarantine entry {id}")))?;
    Ok((StatusCode::OK, Json(entry.into())))
}
