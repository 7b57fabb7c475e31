//! The web console for hospital IT and auditors (issue #7), served at `/` on the API's
//! address: server-rendered HTML (maud, escaped by construction), no JavaScript, one
//! stylesheet compiled into the binary.
//!
//! **Architecture invariant:** the console is a presentation of the API, not a second API.
//! Every read and every action is an in-process request to the API router with the user's
//! own token, so [`crate::api::ACCESS`], the guard, the domain rules and the audit log apply
//! exactly as they do to `curl`. The token lives in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` when `[api] tls` is on); every form that changes something carries a CSRF token
//! derived from the session token, and a cross-origin `Origin` is refused.

mod i18n;
mod pages;

use std::net::SocketAddr;

use aws_lc_rs::digest::{SHA256, digest};
use axum::Form;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::api::ApiState;
pub use i18n::{Lang, T};

const TOKEN_COOKIE: &str = "sekisho_token";
const LANG_COOKIE: &str = "sekisho_lang";
/// Largest API answer the console reads.
const MAX_ANSWER: usize = 32 * 1024 * 1024;

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The console's state: the API router it calls, and the API state for settings.
#[derive(Clone)]
pub struct Console {
    api: axum::Router,
    state: ApiState,
}

/// The console routes, to be merged with the API's.
pub fn router(state: ApiState, api: axum::Router) -> axum::Router {
    axum::Router::new()
        .route("/", get(|| async { Redirect::to("/console/approvals") }))
        .route(
            "/console",
            get(|| async { Redirect::to("/console/approvals") }),
        )
        .route("/console/static/app.css", get(stylesheet))
        .route("/console/login", get(login_page).post(login))
        .route("/console/logout", post(logout))
        .route("/console/lang/{code}", get(switch_language))
        .route("/console/approvals", get(approvals))
        .route(
            "/console/requests/new",
            get(new_request_page).post(file_request),
        )
        .route("/console/requests/{id}/{action}", post(decide))
        .route("/console/sessions", get(sessions))
        .route(
            "/console/sessions/{id}/terminate",
            get(confirm_terminate).post(terminate),
        )
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(Console { api, state })
}

async fn secure_headers(mut r: Response) -> Response {
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // `same-origin`, not `no-referrer`: with the latter browsers send `Origin: null` on
    // our own form posts, which the origin check must refuse.
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    r
}

async fn stylesheet() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        include_str!("app.css"),
    )
        .into_response()
}

/// What every console request carries: the session token (if logged in), the language, the
/// peer address (for the audit log) and whether a form post comes from our own origin.
pub struct Ctx {
    token: Option<String>,
    pub lang: Lang,
    peer: Option<SocketAddr>,
    same_origin: bool,
    origin_https: bool,
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .find_map(|kv| {
            let (k, v) = kv.trim().split_once('=')?;
            (k == name).then_some(v)
        })
}

impl<S: Send + Sync> FromRequestParts<S> for Ctx {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let h = &parts.headers;
        let lang = cookie(h, LANG_COOKIE)
            .and_then(Lang::parse)
            .unwrap_or_else(|| {
                Lang::from_accept_language(
                    h.get(header::ACCEPT_LANGUAGE)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or(""),
                )
            });
        // Browsers send Origin with every POST; it must be this host.
        let host = h.get(header::HOST).and_then(|v| v.to_str().ok());
        let origin = h.get(header::ORIGIN).and_then(|v| v.to_str().ok());
        let same_origin = match (origin, host) {
            (None, _) => true,
            (Some(origin), Some(host)) => {
                origin == format!("http://{host}") || origin == format!("https://{host}")
            }
            (Some(_), None) => false,
        };
        Ok(Ctx {
            token: cookie(h, TOKEN_COOKIE)
                .filter(|t| !t.is_empty())
                .map(str::to_owned),
            lang,
            peer: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            same_origin,
            origin_https: origin.is_some_and(|o| o.starts_with("https://")),
        })
    }
}

/// The CSRF token of a session: bound to its token, so a page of another session (or
/// another site, which cannot read the cookie) cannot forge it.
fn csrf_for(token: &str) -> String {
    hex::encode(digest(
        &SHA256,
        format!("sekisho-console-csrf\0{token}").as_bytes(),
    ))
}

/// An answer of the API: its status and JSON body.
struct Answer {
    status: StatusCode,
    body: Value,
}

impl Answer {
    fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// The API's error message, for the page.
    fn message(&self) -> String {
        self.body["error"]["message"]
            .as_str()
            .map_or_else(|| format!("HTTP {}", self.status), str::to_owned)
    }
}

impl Console {
    /// One request to the API router, as the caller.
    async fn call(&self, ctx: &Ctx, method: Method, path: &str, body: Option<Value>) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(t) = &ctx.token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let body = match body {
            Some(b) => {
                req = req.header(header::CONTENT_TYPE, "application/json");
                Body::from(b.to_string())
            }
            None => Body::empty(),
        };
        let Ok(mut req) = req.body(body) else {
            return Answer {
                status: StatusCode::BAD_REQUEST,
                body: json!({"error": {"message": "bad request"}}),
            };
        };
        if let Some(peer) = ctx.peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        let Ok(resp) = self.api.clone().oneshot(req).await;
        let status = resp.status();
        let body = match axum::body::to_bytes(resp.into_body(), MAX_ANSWER).await {
            Ok(b) => serde_json::from_slice(&b).unwrap_or(Value::Null),
            Err(e) => {
                tracing::error!(error = %e, path, "console: cannot read an API answer");
                json!({"error": {"message": "the API answer could not be read"}})
            }
        };
        Answer { status, body }
    }

    async fn get(&self, ctx: &Ctx, path: &str) -> Answer {
        self.call(ctx, Method::GET, path, None).await
    }
}

/// Logged in, or sent to the login page.
async fn whoami(console: &Console, ctx: &Ctx) -> Result<Value, Response> {
    if ctx.token.is_none() {
        return Err(Redirect::to("/console/login").into_response());
    }
    let me = console.get(ctx, "/api/v1/auth/me").await;
    if me.status == StatusCode::UNAUTHORIZED {
        return Err(Redirect::to("/console/login").into_response());
    }
    if !me.ok() {
        return Err(pages::error(ctx.lang, &me.message(), me.status));
    }
    Ok(me.body)
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
}

async fn login_page(ctx: Ctx) -> Response {
    pages::login(ctx.lang, None)
}

async fn login(State(console): State<Console>, ctx: Ctx, Form(form): Form<LoginForm>) -> Response {
    if !ctx.same_origin {
        return pages::error(ctx.lang, "cross-origin form refused", StatusCode::FORBIDDEN);
    }
    let origin_https = ctx.origin_https;
    let anonymous = Ctx { token: None, ..ctx };
    let answer = console
        .call(
            &anonymous,
            Method::POST,
            "/api/v1/auth/login",
            Some(json!({"username": form.username, "password": form.password})),
        )
        .await;
    let Some(token) = answer.body["token"].as_str().filter(|_| answer.ok()) else {
        return pages::login(anonymous.lang, Some(&answer.message()));
    };
    // Over TLS (a reverse proxy in front, as the browser's origin shows) the cookie is
    // Secure; on plain HTTP it could not be sent back at all if it were.
    let secure = if origin_https { "; Secure" } else { "" };
    let cookie = format!("{TOKEN_COOKIE}={token}; Path=/; HttpOnly; SameSite=Strict{secure}");
    let mut r = Redirect::to("/console/approvals").into_response();
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

/// The refusal of a state-changing form whose CSRF token or origin is wrong.
fn refused_form(ctx: &Ctx, csrf: &str) -> Option<Response> {
    let ok = ctx.same_origin && ctx.token.as_deref().is_some_and(|t| csrf_for(t) == csrf);
    if ok {
        None
    } else {
        tracing::warn!(peer = ?ctx.peer, "console: form refused (CSRF token or origin)");
        Some(pages::error(
            ctx.lang,
            "this form has expired or did not come from this console; reload the page",
            StatusCode::FORBIDDEN,
        ))
    }
}

async fn logout(ctx: Ctx, Form(form): Form<CsrfForm>) -> Response {
    if let Some(r) = refused_form(&ctx, &form.csrf) {
        return r;
    }
    let mut r = Redirect::to("/console/login").into_response();
    r.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static("sekisho_token=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0"),
    );
    r
}

async fn switch_language(Path(code): Path<String>, headers: HeaderMap) -> Response {
    let Some(lang) = Lang::parse(&code) else {
        return (StatusCode::NOT_FOUND, "no such language").into_response();
    };
    // Back to the page the switch was clicked on, if it was one of ours.
    let back = headers
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.find("/console/").map(|i| r[i..].to_owned()))
        .unwrap_or_else(|| "/console/approvals".into());
    let mut r = Redirect::to(&back).into_response();
    let cookie = format!(
        "{LANG_COOKIE}={}; Path=/; SameSite=Strict; Max-Age=31536000",
        lang.code()
    );
    if let Ok(v) = HeaderValue::from_str(&cookie) {
        r.headers_mut().insert(header::SET_COOKIE, v);
    }
    r
}

#[derive(Deserialize)]
struct ListQuery {
    status: Option<String>,
    done: Option<String>,
    error: Option<String>,
}

/// What a page shows besides its content: who is logged in, the CSRF token, a notice.
pub struct Frame {
    pub lang: Lang,
    pub username: String,
    pub role: String,
    pub csrf: String,
    pub done: Option<String>,
    pub error: Option<String>,
}

fn frame(ctx: &Ctx, me: &Value, q: &ListQuery) -> Frame {
    Frame {
        lang: ctx.lang,
        username: me["username"].as_str().unwrap_or("?").to_owned(),
        role: me["role"].as_str().unwrap_or("?").to_owned(),
        csrf: ctx.token.as_deref().map(csrf_for).unwrap_or_default(),
        done: q.done.clone(),
        error: q.error.clone(),
    }
}

async fn approvals(
    State(console): State<Console>,
    ctx: Ctx,
    Query(q): Query<ListQuery>,
) -> Response {
    let me = match whoami(&console, &ctx).await {
        Ok(me) => me,
        Err(r) => return r,
    };
    let requests = console.get(&ctx, "/api/v1/requests?limit=1000").await;
    if !requests.ok() {
        return pages::error(ctx.lang, &requests.message(), requests.status);
    }
    // Names for ids: staff see vendors and accounts; a vendor engineer only their vendor.
    let (vendors, users) = match me["vendor_id"].as_str() {
        Some(v) => {
            let own = console
                .get(&ctx, &format!("/api/v1/vendors/{}", urlencode(v)))
                .await;
            (Value::Array(vec![own.body]), Value::Array(vec![me.clone()]))
        }
        None => (
            console.get(&ctx, "/api/v1/vendors").await.body,
            console.get(&ctx, "/api/v1/users").await.body,
        ),
    };
    let frame = frame(&ctx, &me, &q);
    pages::approvals(
        &frame,
        &console.state.settings.zone,
        requests.body.as_array().map_or(&[][..], Vec::as_slice),
        vendors.as_array().map_or(&[][..], Vec::as_slice),
        users.as_array().map_or(&[][..], Vec::as_slice),
        q.status.as_deref(),
    )
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    comment: String,
}

async fn decide(
    State(console): State<Console>,
    ctx: Ctx,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<DecisionForm>,
) -> Response {
    if let Some(r) = refused_form(&ctx, &form.csrf) {
        return r;
    }
    let (verb, done) = match action.as_str() {
        "approve" => ("approve", "approved"),
        "reject" => ("reject", "rejected"),
        _ => return pages::error(ctx.lang, "no such action", StatusCode::NOT_FOUND),
    };
    let comment = unix_newlines(form.comment.trim());
    let body = if comment.is_empty() {
        json!({})
    } else {
        json!({"comment": comment})
    };
    let path = format!("/api/v1/requests/{}/{verb}", urlencode(&id));
    let answer = console.call(&ctx, Method::POST, &path, Some(body)).await;
    if answer.ok() {
        Redirect::to(&format!("/console/approvals?done={done}")).into_response()
    } else {
        Redirect::to(&format!(
            "/console/approvals?error={}",
            urlencode(&answer.message())
        ))
        .into_response()
    }
}

fn no_query() -> ListQuery {
    ListQuery {
        status: None,
        done: None,
        error: None,
    }
}

async fn new_request_page(State(console): State<Console>, ctx: Ctx) -> Response {
    let me = match whoami(&console, &ctx).await {
        Ok(me) => me,
        Err(r) => return r,
    };
    let zone = &console.state.settings.zone;
    let now = jiff::Timestamp::now();
    let draft = pages::Draft {
        target: String::new(),
        level: "reference".into(),
        from: zone.local_input(now),
        until: zone.local_input(now + jiff::SignedDuration::from_hours(2)),
        reason: String::new(),
        plan: String::new(),
    };
    let targets = console.get(&ctx, "/api/v1/targets").await;
    pages::new_request(
        &frame(&ctx, &me, &no_query()),
        targets.body.as_array().map_or(&[][..], Vec::as_slice),
        &draft,
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
struct RequestForm {
    #[serde(default)]
    csrf: String,
    target: String,
    level: String,
    from: String,
    until: String,
    reason: String,
    #[serde(default)]
    plan: String,
}

async fn file_request(
    State(console): State<Console>,
    ctx: Ctx,
    Form(form): Form<RequestForm>,
) -> Response {
    if let Some(r) = refused_form(&ctx, &form.csrf) {
        return r;
    }
    let me = match whoami(&console, &ctx).await {
        Ok(me) => me,
        Err(r) => return r,
    };
    let zone = &console.state.settings.zone;
    let times = (zone.parse_local(&form.from), zone.parse_local(&form.until));
    let answer = match times {
        (Ok(start), Ok(end)) => {
            let body = json!({"target": form.target, "level": form.level,
                "window_start": start.to_string(), "window_end": end.to_string(),
                "reason": form.reason, "plan": unix_newlines(&form.plan)});
            console
                .call(&ctx, Method::POST, "/api/v1/requests", Some(body))
                .await
        }
        _ => Answer {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"error": {"message": "the window needs a start and an end (date and time)"}}),
        },
    };
    if answer.ok() {
        return Redirect::to("/console/approvals?done=filed").into_response();
    }
    let targets = console.get(&ctx, "/api/v1/targets").await;
    let mut q = no_query();
    q.error = Some(answer.message());
    let draft = pages::Draft {
        target: form.target,
        level: form.level,
        from: form.from,
        until: form.until,
        reason: form.reason,
        plan: form.plan,
    };
    pages::new_request(
        &frame(&ctx, &me, &q),
        targets.body.as_array().map_or(&[][..], Vec::as_slice),
        &draft,
        answer.status,
    )
}

async fn sessions(
    State(console): State<Console>,
    ctx: Ctx,
    Query(q): Query<ListQuery>,
) -> Response {
    let me = match whoami(&console, &ctx).await {
        Ok(me) => me,
        Err(r) => return r,
    };
    let live = console.get(&ctx, "/api/v1/sessions?active=true").await;
    if !live.ok() {
        return pages::error(ctx.lang, &live.message(), live.status);
    }
    let requests = console.get(&ctx, "/api/v1/requests?limit=1000").await;
    let frame = frame(&ctx, &me, &q);
    pages::sessions(
        &frame,
        &console.state.settings.zone,
        live.body.as_array().map_or(&[][..], Vec::as_slice),
        requests.body.as_array().map_or(&[][..], Vec::as_slice),
    )
}

async fn confirm_terminate(
    State(console): State<Console>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    let me = match whoami(&console, &ctx).await {
        Ok(me) => me,
        Err(r) => return r,
    };
    let live = console.get(&ctx, "/api/v1/sessions?active=true").await;
    if !live.ok() {
        return pages::error(ctx.lang, &live.message(), live.status);
    }
    let Some(session) = live
        .body
        .as_array()
        .and_then(|all| all.iter().find(|s| s["id"] == id.as_str()))
    else {
        return Redirect::to("/console/sessions").into_response();
    };
    pages::confirm_terminate(&frame(&ctx, &me, &no_query()), session)
}

async fn terminate(
    State(console): State<Console>,
    ctx: Ctx,
    Path(id): Path<String>,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Some(r) = refused_form(&ctx, &form.csrf) {
        return r;
    }
    let path = format!("/api/v1/sessions/{}/terminate", urlencode(&id));
    let answer = console.call(&ctx, Method::POST, &path, None).await;
    if answer.ok() {
        Redirect::to("/console/sessions?done=terminated").into_response()
    } else {
        Redirect::to(&format!(
            "/console/sessions?error={}",
            urlencode(&answer.message())
        ))
        .into_response()
    }
}

/// Browsers send a textarea's line breaks as CRLF (as HTML says); stored text uses LF.
fn unix_newlines(s: &str) -> String {
    s.replace("\r\n", "\n")
}

/// Percent-encodes everything but unreserved characters (for paths and query values).
fn urlencode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csrf_tokens_differ_per_session_and_are_stable() {
        assert_eq!(csrf_for("a"), csrf_for("a"));
        assert_ne!(csrf_for("a"), csrf_for("b"));
    }

    #[test]
    fn urlencode_keeps_unreserved_only() {
        assert_eq!(urlencode("R-1 ok/?&"), "R-1%20ok%2F%3F%26");
        assert_eq!(urlencode("日"), "%E6%97%A5");
    }
}
