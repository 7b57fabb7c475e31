//! What console handlers take from a request: a logged-in caller ([`LoggedIn`]), a form
//! posted from one of this console's own pages ([`Posted`]), the notice a page shows after an
//! action; and how an action answers ([`back_to`]).

use axum::Form;
use axum::body::Body;
use axum::extract::{FromRequest, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{Request, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sekisho_approval_api::api::dto::UserView;
use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::client::{Console, Refusal};
use crate::context::{Ctx, csrf_for};
use crate::pages::layout::{self, Frame, urlencode};

/// A logged-in caller: the request's context and who its token belongs to. Pages that need
/// a login take this; without one (or with an expired token) the browser goes to the login
/// page.
pub struct LoggedIn {
    pub(crate) ctx: Ctx,
    pub(crate) me: UserView,
}

impl FromRequestParts<Console> for LoggedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, console: &Console) -> Result<Self, Response> {
        let Ok(ctx) = Ctx::from_request_parts(parts, console).await;
        let me = whoami(console, &ctx).await?;
        Ok(LoggedIn { ctx, me })
    }
}

/// Logged in, or sent to the login page.
async fn whoami(console: &Console, ctx: &Ctx) -> Result<UserView, Response> {
    if ctx.token.is_none() {
        return Err(Redirect::to("/console/login").into_response());
    }
    match console.get::<UserView>(ctx, "/api/v1/auth/me").await {
        Ok(me) => Ok(me),
        Err(r) if r.status == StatusCode::UNAUTHORIZED => {
            Err(Redirect::to("/console/login").into_response())
        }
        Err(r) => Err(layout::error(ctx.lang, &r.message, r.status)),
    }
}

/// A posted form's CSRF field.
pub(crate) trait CsrfField {
    fn csrf(&self) -> &str;
}

/// A form posted from one of this console's own pages: its Origin is this host and it
/// carries this session's CSRF token; anything else is refused (a 403 page, logged) before
/// the handler runs. Every console route that changes something takes its form this way,
/// so none can forget the check.
pub(crate) struct Posted<T> {
    pub(crate) ctx: Ctx,
    pub(crate) form: T,
}

impl<S: Send + Sync, T: DeserializeOwned + CsrfField> FromRequest<S> for Posted<T> {
    type Rejection = Response;

    async fn from_request(req: Request<Body>, state: &S) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let Ok(ctx) = Ctx::from_request_parts(&mut parts, state).await;
        let Form(form) = Form::<T>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        match refused_form(&ctx, form.csrf()) {
            Some(refused) => Err(refused),
            None => Ok(Posted { ctx, form }),
        }
    }
}

/// The refusal of a state-changing form whose CSRF token or origin is wrong.
fn refused_form(ctx: &Ctx, csrf: &str) -> Option<Response> {
    let ok = ctx.same_origin && ctx.token.as_deref().is_some_and(|t| csrf_for(t) == csrf);
    if ok {
        None
    } else {
        tracing::warn!(peer = ?ctx.peer, "console: form refused (CSRF token or origin)");
        Some(layout::error(
            ctx.lang,
            "this form has expired or did not come from this console; reload the page",
            StatusCode::FORBIDDEN,
        ))
    }
}

/// A form with nothing but its CSRF token.
#[derive(Deserialize)]
pub(crate) struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

impl CsrfField for CsrfForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// Approve, reject or sign off, with an optional comment.
#[derive(Deserialize)]
pub(crate) struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    comment: String,
}

impl DecisionForm {
    /// The API body: the comment, if one was written (newlines as the API stores them).
    pub(crate) fn body(&self) -> sekisho_approval_api::api::dto::DecisionBody {
        let comment = unix_newlines(self.comment.trim());
        sekisho_approval_api::api::dto::DecisionBody {
            comment: (!comment.is_empty()).then_some(comment),
        }
    }
}

impl CsrfField for DecisionForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The administration forms: named fields, read with [`field`].
pub(crate) type Fields = std::collections::HashMap<String, String>;

impl CsrfField for Fields {
    fn csrf(&self) -> &str {
        field(self, "csrf")
    }
}

/// A field of an administration form, trimmed; empty when absent.
pub(crate) fn field<'a>(f: &'a Fields, name: &str) -> &'a str {
    f.get(name).map_or("", |v| v.trim())
}

/// The outcome of an action, shown on the page the browser comes back to.
#[derive(Default, Deserialize)]
pub(crate) struct Notice {
    pub(crate) done: Option<String>,
    pub(crate) error: Option<String>,
}

/// What a page shows besides its content: who is logged in, the CSRF token, a notice.
pub(crate) fn frame(ctx: &Ctx, me: &UserView, notice: Notice) -> Frame {
    Frame {
        lang: ctx.lang,
        username: me.username.clone(),
        role: me.role,
        csrf: ctx.token.as_deref().map(csrf_for).unwrap_or_default(),
        done: notice.done,
        error: notice.error,
    }
}

/// Back to `page` after an action: `?done=DONE`, or `?error=` with the API's message.
pub(crate) fn back_to<T>(page: &str, done: &str, answer: &Result<T, Refusal>) -> Response {
    match answer {
        Ok(_) => Redirect::to(&format!("{page}?done={done}")).into_response(),
        Err(r) => Redirect::to(&format!("{page}?error={}", urlencode(&r.message))).into_response(),
    }
}

/// A query string of the non-empty `pairs`.
pub(crate) fn query(pairs: &[(&str, Option<&str>)]) -> String {
    let q: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| {
            v.filter(|v| !v.is_empty())
                .map(|v| format!("{k}={}", urlencode(v)))
        })
        .collect();
    if q.is_empty() {
        String::new()
    } else {
        format!("?{}", q.join("&"))
    }
}

/// Browsers send a textarea's line breaks as CRLF (as HTML says); stored text uses LF.
pub(crate) fn unix_newlines(s: &str) -> String {
    s.replace("\r\n", "\n")
}
