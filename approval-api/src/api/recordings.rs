//! Recordings for approvers and auditors: list, manifest, download, text dump, search and
//! verification. Signing off a session's review is `POST /api/v1/sessions/{id}/review`
//! (a recording's id is its session's id).

use axum::Extension;
use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use sekisho_domain::audit::RecordingUse;
use sekisho_recorder::library::TcpStreamError;
use sekisho_recorder::library::{Hit, Verification};
use sekisho_recorder::manifest::{Manifest, RecordingState};
use sekisho_recorder::{RecordingError, index};
use serde::Deserialize;
use utoipa::IntoParams;

use super::error::{ApiError, ApiResult, ErrorBody, Json};
use super::extract::blocking;
use super::state::ApiState;
use super::token::Caller;

impl From<RecordingError> for ApiError {
    fn from(e: RecordingError) -> Self {
        match e {
            RecordingError::NotFound(id) => ApiError::not_found(format!("recording {id}")),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

fn id_ok(id: &str) -> ApiResult<()> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ApiError::not_found(format!("recording {id}")));
    }
    Ok(())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct RecordingQuery {
    pub target: Option<String>,
    /// Vendor engineer's username.
    pub user: Option<String>,
    /// `open`, `closed` or `aborted`.
    #[param(pattern = "^(open|closed|aborted)$")]
    pub state: Option<String>,
}

/// Recordings, newest first.
#[utoipa::path(get, path = "/api/v1/recordings", tag = "recordings", params(RecordingQuery),
    responses((status = 200, description = "manifests", body = Vec<Object>), (status = 403, body = ErrorBody)))]
pub async fn list_recordings(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<RecordingQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<Manifest>>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    let wanted = match q.state.as_deref() {
        None => None,
        Some("open") => Some(RecordingState::Open),
        Some("closed") => Some(RecordingState::Closed),
        Some("aborted") => Some(RecordingState::Aborted),
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "unknown state `{other}`: use open, closed or aborted"
            )));
        }
    };
    let names = super::site::target_names(&state, &caller).await?;
    let filter = [
        ("target", &q.target),
        ("user", &q.user),
        ("state", &q.state),
    ]
    .iter()
    .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={v}")))
    .collect::<Vec<_>>()
    .join("&");
    let detail = (!filter.is_empty()).then_some(filter);
    super::reads::recording_read(&state, &caller, None, RecordingUse::List, detail).await?;
    let lib = state.recordings.clone();
    let all = blocking(move || Ok(lib.list()?)).await?;
    Ok(Json(
        all.into_iter()
            .filter(|m| names.as_ref().is_none_or(|n| n.contains(&m.meta.target)))
            .filter(|m| q.target.as_ref().is_none_or(|t| *t == m.meta.target))
            .filter(|m| q.user.as_ref().is_none_or(|u| *u == m.meta.vendor_user))
            .filter(|m| wanted.is_none_or(|s| s == m.state))
            .collect(),
    ))
}

/// One recording's manifest.
#[utoipa::path(get, path = "/api/v1/recordings/{id}", tag = "recordings", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn get_recording(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Manifest>> {
    id_ok(&id)?;
    super::site::check_recording(&state, &caller, &id).await?;
    super::reads::recording_read(&state, &caller, Some(&id), RecordingUse::Manifest, None).await?;
    let lib = state.recordings.clone();
    let m = blocking(move || Ok(Manifest::read(&lib.find(&id)?)?)).await?;
    Ok(Json(m))
}

/// Download one file of a recording (as listed in its manifest).
#[utoipa::path(get, path = "/api/v1/recordings/{id}/files/{name}", tag = "recordings",
    params(("id" = String, Path), ("name" = String, Path)),
    responses((status = 200, description = "the file",
        content((String = "application/x-asciicast"), (String = "application/x-ndjson"), (Vec<u8> = "application/octet-stream"))),
        (status = 404, body = ErrorBody)))]
pub async fn download(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path((id, name)): Path<(String, String)>,
) -> ApiResult<Response> {
    id_ok(&id)?;
    super::site::check_recording(&state, &caller, &id).await?;
    super::reads::recording_read(
        &state,
        &caller,
        Some(&id),
        RecordingUse::File,
        Some(name.clone()),
    )
    .await?;
    let lib = state.recordings.clone();
    let (bytes, name) = blocking(move || {
        let dir = lib.find(&id)?;
        let m = Manifest::read(&dir)?;
        // Only files the manifest lists: never a path from the request.
        let f = m
            .files
            .iter()
            .find(|f| f.name == name)
            .ok_or_else(|| ApiError::not_found(format!("file {name} of recording {id}")))?;
        let bytes =
            std::fs::read(dir.join(&f.name)).map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok((bytes, f.name.clone()))
    })
    .await?;
    let ct = if name.ends_with(".cast") {
        "application/x-asciicast"
    } else if name.ends_with(".jsonl") {
        "application/x-ndjson"
    } else {
        "application/octet-stream"
    };
    Ok((
        [
            (header::CONTENT_TYPE, ct.to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}

/// What was on screen, as plain text (the first terminal channel unless `?channel=`).
#[utoipa::path(get, path = "/api/v1/recordings/{id}/text", tag = "recordings", params(("id" = String, Path)),
    responses((status = 200, description = "the transcript", content_type = "text/plain", body = String), (status = 404, body = ErrorBody)))]
pub async fn text(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    id_ok(&id)?;
    super::site::check_recording(&state, &caller, &id).await?;
    super::reads::recording_read(&state, &caller, Some(&id), RecordingUse::Text, None).await?;
    let lib = state.recordings.clone();
    let text = blocking(move || {
        let dir = lib.find(&id)?;
        let m = Manifest::read(&dir)?;
        let f = m
            .files
            .iter()
            .find(|f| f.name.ends_with(".cast"))
            .ok_or_else(|| ApiError::not_found(format!("terminal channel of recording {id}")))?;
        let cast = std::fs::read_to_string(dir.join(&f.name))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        index::transcript(&cast).map_err(|e| ApiError::Internal(e.to_string()))
    })
    .await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response())
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct SearchQuery {
    /// Text typed or shown on screen (case-insensitive), at least two characters that are
    /// not spaces.
    #[param(pattern = "\\S[\\s\\S]*\\S")]
    pub q: String,
}

/// Sessions and moments where a text was typed or appeared on screen.
#[utoipa::path(get, path = "/api/v1/recordings/search", tag = "recordings", params(SearchQuery),
    responses((status = 200, body = Vec<Object>), (status = 400, body = ErrorBody),
        (status = 422, description = "fewer than two characters to search for", body = ErrorBody)))]
pub async fn search(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    query: Result<Query<SearchQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Json<Vec<Hit>>> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    if q.q.trim().chars().count() < 2 {
        return Err(ApiError::invalid("q", "search for at least 2 characters"));
    }
    let names = super::site::target_names(&state, &caller).await?;
    let searched = q.q.trim().chars().take(200).collect::<String>();
    super::reads::recording_read(&state, &caller, None, RecordingUse::Search, Some(searched))
        .await?;
    let lib = state.recordings.clone();
    let hits = blocking(move || Ok(lib.search(q.q.trim())?)).await?;
    Ok(Json(
        hits.into_iter()
            .filter(|h| names.as_ref().is_none_or(|n| n.contains(&h.target)))
            .collect(),
    ))
}

/// Recompute the recording's hashes and check its signature.
#[utoipa::path(get, path = "/api/v1/recordings/{id}/verify", tag = "recordings", params(("id" = String, Path)),
    responses((status = 200, body = Object), (status = 404, body = ErrorBody)))]
pub async fn verify(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Json<Verification>> {
    id_ok(&id)?;
    super::site::check_recording(&state, &caller, &id).await?;
    super::reads::recording_read(&state, &caller, Some(&id), RecordingUse::Verify, None).await?;
    let lib = state.recordings.clone();
    let key = state.recording_public_key.clone();
    Ok(Json(blocking(move || Ok(lib.verify(&id, &key)?)).await?))
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct ScreenQuery {
    /// Seconds from the start; absent: the latest screen (for watching a live session).
    pub t: Option<f64>,
}

/// A terminal screen of a recording.
#[derive(Debug, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct ScreenView {
    /// The terminal file drawn (the session's first terminal channel), if it has one.
    pub file: Option<String>,
    /// Whether the recording is still being written (a live session).
    pub live: bool,
    /// The moment drawn, and the recording's length so far, in seconds.
    pub t: f64,
    pub length: f64,
    /// Rows of styled spans (`text`, `fg`/`bg` xterm-256 indexes, `bold`, `cursor`); `null`
    /// for a recording without a terminal (streams only).
    #[schema(value_type = Option<Object>, nullable = true)]
    pub screen: Option<index::Screen>,
}

/// The screen at a moment (or now, while the session lasts): for a terminal, drawn with a
/// terminal emulator (JSON); for a remote desktop, drawn from the recorded PDUs (PNG, with
/// the moment, the length and whether it is live in `X-Sekisho-*` headers). What the web
/// console's player and live view show.
#[utoipa::path(get, path = "/api/v1/recordings/{id}/screen", tag = "recordings",
    params(("id" = String, Path), ScreenQuery),
    responses((status = 200, body = ScreenView),
        (status = 200, description = "a remote desktop's screen", content_type = "image/png", body = Vec<u8>),
        (status = 404, body = ErrorBody)))]
pub async fn screen(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<ScreenQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    id_ok(&id)?;
    super::site::check_recording(&state, &caller, &id).await?;
    super::reads::recording_read(&state, &caller, Some(&id), RecordingUse::Screen, None).await?;
    let lib = state.recordings.clone();
    let drawn = blocking(move || {
        let dir = lib.find(&id)?;
        let m = Manifest::read(&dir)?;
        let live = m.state == RecordingState::Open;
        // A sealed recording lists its files; an open one is read from its folder (names
        // from the listing, never from the request).
        let names: Vec<String> = if live {
            sekisho_recorder::manifest::recording_files(&dir)?
        } else {
            m.files.iter().map(|f| f.name.clone()).collect()
        };
        let t = q.t.unwrap_or(f64::MAX).max(0.0);
        if let Some(file) = names.iter().find(|n| n.ends_with(".cast")) {
            let text = std::fs::read_to_string(dir.join(file))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            // While it is written, the last line may be incomplete: draw what is complete.
            let complete = text.rfind('\n').map_or("", |i| &text[..=i]);
            if live && complete.is_empty() {
                // Nothing written yet (the writer flushes once a second).
                return Ok(Drawn::Terminal(ScreenView {
                    file: Some(file.clone()),
                    live,
                    t: 0.0,
                    length: 0.0,
                    screen: None,
                }));
            }
            let (screen, length) = index::screen_at(complete, t)
                .map_err(|e| ApiError::Internal(format!("{file}: {e}")))?;
            return Ok(Drawn::Terminal(ScreenView {
                file: Some(file.clone()),
                live,
                t: t.min(length),
                length,
                screen: Some(screen),
            }));
        }
        let desktop = sekisho_recorder::desktop::desktop_streams(&dir, &names).next();
        if let Some(file) = desktop {
            let drawn = if live && q.t.is_none() {
                sekisho_recorder::desktop::screen_now(&dir, file)?
            } else {
                sekisho_recorder::desktop::screen_at(&dir, file, t)?
            };
            return Ok(match drawn {
                Some(screen) => Drawn::Desktop { screen, live },
                None => Drawn::Terminal(ScreenView {
                    file: Some(file.clone()),
                    live,
                    t: 0.0,
                    length: 0.0,
                    screen: None,
                }),
            });
        }
        Ok(Drawn::Terminal(ScreenView {
            file: None,
            live,
            t: 0.0,
            length: 0.0,
            screen: None,
        }))
    })
    .await?;
    Ok(match drawn {
        Drawn::Terminal(view) => Json(view).into_response(),
        Drawn::Desktop { screen, live } => (
            [
                (header::CONTENT_TYPE, "image/png".to_owned()),
                (
                    header::HeaderName::from_static("x-sekisho-t"),
                    format!("{:.3}", screen.t),
                ),
                (
                    header::HeaderName::from_static("x-sekisho-length"),
                    format!("{:.3}", screen.length),
                ),
                (
                    header::HeaderName::from_static("x-sekisho-live"),
                    live.to_string(),
                ),
                (
                    header::HeaderName::from_static("x-sekisho-from-snapshot"),
                    screen
                        .from_snapshot
                        .map_or_else(|| "none".to_owned(), |t| format!("{t:.3}")),
                ),
                (header::CACHE_CONTROL, "no-store".to_owned()),
            ],
            screen.png,
        )
            .into_response(),
    })
}

/// What `screen` drew.
enum Drawn {
    Terminal(ScreenView),
    Desktop {
        screen: sekisho_recorder::desktop::Screen,
        live: bool,
    },
}

#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub struct PcapQuery {
    /// The stream channel (needed when the recording has several TCP streams).
    pub channel: Option<u32>,
}

/// A TCP stream recording (tunnel or port forward) as pcap, with synthetic TCP/IP headers,
/// for Wireshark or `tshark`.
#[utoipa::path(get, path = "/api/v1/recordings/{id}/pcap", tag = "recordings",
    params(("id" = String, Path), PcapQuery),
    responses((status = 200, description = "a pcap capture", content_type = "application/vnd.tcpdump.pcap", body = Vec<u8>), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn pcap(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    query: Result<Query<PcapQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult<Response> {
    let Query(q) = query.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    id_ok(&id)?;
    super::site::check_recording(&state, &caller, &id).await?;
    super::reads::recording_read(&state, &caller, Some(&id), RecordingUse::Pcap, None).await?;
    let lib = state.recordings.clone();
    let name = format!("sekisho-{id}.pcap");
    let bytes = blocking(move || {
        let dir = lib.find(&id)?;
        let stream =
            sekisho_recorder::library::tcp_stream(&dir, q.channel).map_err(|e| match e {
                TcpStreamError::Recording(e) => ApiError::from(e),
                other => ApiError::Conflict {
                    code: "no_single_tcp_stream",
                    message: other.to_string(),
                },
            })?;
        let mut out = Vec::new();
        sekisho_recorder::pcap::export(&stream, &mut out)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(out)
    })
    .await?;
    Ok((
        [
            (
                header::CONTENT_TYPE,
                "application/vnd.tcpdump.pcap".to_owned(),
            ),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from(bytes),
    )
        .into_response())
}

/// The whole recording as one archive for auditors without an account: files, manifest,
/// signature, public key and a README telling how to verify it offline.
#[utoipa::path(get, path = "/api/v1/recordings/{id}/bundle", tag = "recordings", params(("id" = String, Path)),
    responses((status = 200, description = "a tar archive, gzip-compressed", content_type = "application/gzip", body = Vec<u8>), (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
pub async fn bundle(
    State(state): State<ApiState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> ApiResult<Response> {
    id_ok(&id)?;
    super::site::check_recording(&state, &caller, &id).await?;
    super::reads::recording_read(&state, &caller, Some(&id), RecordingUse::Bundle, None).await?;
    let lib = state.recordings.clone();
    let key = state.recording_public_key.clone();
    let name = format!("sekisho-recording-{id}.tar.gz");
    // Built in a temporary file (a recording can be large), unlinked at once, then streamed.
    let file = blocking(move || {
        let dir = lib.find(&id)?;
        let path =
            std::env::temp_dir().join(format!("sekisho-bundle-{}.tar.gz", uuid::Uuid::new_v4()));
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let _ = std::fs::remove_file(&path);
        sekisho_recorder::bundle::export_to(&dir, &key, &mut file).map_err(|e| match e {
            RecordingError::Failed(m) => ApiError::Conflict {
                code: "not_sealed",
                message: m,
            },
            other => ApiError::Internal(other.to_string()),
        })?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(0))
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(file)
    })
    .await?;
    let stream = tokio_util::io::ReaderStream::new(tokio::fs::File::from_std(file));
    Ok((
        [
            (header::CONTENT_TYPE, "application/gzip".to_owned()),
            (
                header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"{name}\""),
            ),
        ],
        Body::from_stream(stream),
    )
        .into_response())
}
