//! The console's way to the API: in-process requests to the API router with the caller's
//! own token, answered with the API's typed views (`sekisho_approval_api::api::dto`) or the
//! API's refusal. The console has no other way to data.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use sekisho_approval_api::api::error::ErrorBody;
use sekisho_domain::zone::DisplayZone;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt;

use crate::context::Ctx;
use crate::pages::layout;

/// Largest API answer the console reads.
pub(crate) const MAX_ANSWER: usize = 32 * 1024 * 1024;

/// The console's state: the API router it calls, and the zone times are shown in.
#[derive(Clone)]
pub struct Console {
    api: axum::Router,
    pub(crate) zone: DisplayZone,
    /// `[report] font`, for the PDF report.
    pub(crate) report_font: Option<std::path::PathBuf>,
}

/// The API said no (or could not be understood): its status and its message for people.
#[derive(Debug)]
pub(crate) struct Refusal {
    pub(crate) status: StatusCode,
    pub(crate) message: String,
    /// The API's error code (`mfa_required`, …); empty when the answer had none.
    pub(crate) code: String,
}

impl Refusal {
    pub(crate) fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            code: String::new(),
        }
    }
}

/// What an action's answer carries that the console does not read.
pub(crate) type Ignored = serde::de::IgnoredAny;

impl Console {
    pub(crate) fn new(
        api: axum::Router,
        zone: DisplayZone,
        report_font: Option<std::path::PathBuf>,
    ) -> Self {
        Self {
            api,
            zone,
            report_font,
        }
    }

    /// One request to the API router, as the caller; its response as the API gave it.
    pub(crate) async fn raw(
        &self,
        ctx: &Ctx,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Response {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = &ctx.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match json {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(b)
            }
            None => Body::empty(),
        };
        let Ok(mut req) = req.body(body) else {
            return (StatusCode::BAD_REQUEST, "bad request").into_response();
        };
        if let Some(peer) = ctx.peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        let Ok(resp) = self.api.clone().oneshot(req).await;
        resp
    }

    async fn answer<T: DeserializeOwned>(
        &self,
        ctx: &Ctx,
        method: Method,
        path: &str,
        json: Option<Vec<u8>>,
    ) -> Result<T, Refusal> {
        let resp = self.raw(ctx, method, path, json).await;
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), MAX_ANSWER)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, path, "console: cannot read an API answer");
                Refusal::new(StatusCode::BAD_GATEWAY, "the API answer could not be read")
            })?;
        if !status.is_success() {
            let mut refusal = Refusal::new(status, refusal_message(status, &bytes));
            refusal.code = serde_json::from_slice::<ErrorBody>(&bytes)
                .map(|b| b.error.code)
                .unwrap_or_default();
            return Err(refusal);
        }
        serde_json::from_slice(&bytes).map_err(|e| {
            tracing::error!(error = %e, path, "console: an API answer is not what the console expects");
            Refusal::new(StatusCode::BAD_GATEWAY, "the API answer could not be read")
        })
    }

    /// A GET, answered with the API's view.
    pub(crate) async fn get<T: DeserializeOwned>(
        &self,
        ctx: &Ctx,
        path: &str,
    ) -> Result<T, Refusal> {
        self.answer(ctx, Method::GET, path, None).await
    }

    /// A GET whose refusal is the page: the API's view, or the error page saying why not.
    pub(crate) async fn fetch<T: DeserializeOwned>(
        &self,
        ctx: &Ctx,
        path: &str,
    ) -> Result<T, Response> {
        self.get(ctx, path)
            .await
            .map_err(|r| layout::error(ctx.lang, &r.message, r.status))
    }

    /// An action with a JSON body.
    pub(crate) async fn send<T: DeserializeOwned>(
        &self,
        ctx: &Ctx,
        method: Method,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, Refusal> {
        let json = serde_json::to_vec(body).map_err(|e| {
            tracing::error!(error = %e, path, "console: cannot encode a request");
            Refusal::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "the request could not be encoded",
            )
        })?;
        self.answer(ctx, method, path, Some(json)).await
    }

    /// A DELETE.
    pub(crate) async fn delete<T: DeserializeOwned>(
        &self,
        ctx: &Ctx,
        path: &str,
    ) -> Result<T, Refusal> {
        self.answer(ctx, Method::DELETE, path, None).await
    }

    /// A POST without a body.
    pub(crate) async fn post<T: DeserializeOwned>(
        &self,
        ctx: &Ctx,
        path: &str,
    ) -> Result<T, Refusal> {
        self.answer(ctx, Method::POST, path, None).await
    }
}

/// The API's error message in an error answer's body (`{"error": {"message": …}}`).
pub(crate) fn refusal_message(status: StatusCode, body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .map_or_else(|_| format!("HTTP {status}"), |b| b.error.message)
}
