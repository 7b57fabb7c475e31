//! The web console for hospital IT and auditors (issue #7), served at `/` on the API's
//! address: server-rendered HTML (maud, escaped by construction), no JavaScript, one
//! stylesheet compiled into the binary.
//!
//! **Architecture invariant:** the console is a presentation of the API, not a second API.
//! Every read and every action is an in-process request to the API router with the user's
//! own token, so `sekisho_approval_api::api::ACCESS`, the guard, the domain rules and the audit log apply
//! exactly as they do to `curl`. The token lives in an `HttpOnly`, `SameSite=Strict` cookie
//! (`Secure` when `[api] tls` is on); every form that changes something carries a CSRF token
//! derived from the session token, and a cross-origin `Origin` is refused.

mod i18n;
mod pages;

use std::net::SocketAddr;

use aws_lc_rs::digest::{SHA256, digest};
use axum::Form;
use axum::body::Body;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tower::ServiceExt;

pub use i18n::{Lang, T};
use sekisho_domain::zone::DisplayZone;

const TOKEN_COOKIE: &str = "sekisho_token";
const LANG_COOKIE: &str = "sekisho_lang";
/// Largest API answer the console reads.
const MAX_ANSWER: usize = 32 * 1024 * 1024;

const CSP: &str = "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; \
                   frame-ancestors 'none'; base-uri 'none'";

/// The console's state: the API router it calls, and the zone times are shown in.
#[derive(Clone)]
pub struct Console {
    api: axum::Router,
    zone: DisplayZone,
}

/// What `sekisho serve` answers on `[api] listen`: the API (`sekisho_approval_api::api::router`)
/// and, beside it, the console, which calls that router in-process. The console is given the
/// router, never the API's state: it cannot reach the database.
pub fn app(api: axum::Router, zone: DisplayZone) -> axum::Router {
    let console = router(zone, api.clone());
    sekisho_approval_api::api::with_security_headers(api.merge(console))
}

/// The console routes alone, calling `api`.
pub fn router(zone: DisplayZone, api: axum::Router) -> axum::Router {
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
        .route("/console/recordings", get(recordings))
        .route("/console/recordings/search", get(search))
        .route("/console/recordings/{id}", get(recording))
        .route("/console/recordings/{id}/text", get(transcript))
        .route("/console/recordings/{id}/files/{name}", get(download))
        .route("/console/recordings/{id}/pcap", get(export_pcap))
        .route("/console/recordings/{id}/bundle", get(export_bundle))
        .route("/console/sessions/{id}/review", post(sign_off))
        .route("/console/admin", get(admin))
        .route("/console/admin/vendors", post(create_vendor))
        .route("/console/admin/engineers", post(create_engineer))
        .route("/console/admin/targets", post(create_target))
        .route("/console/admin/users/{id}/status", post(set_user_status))
        .route(
            "/console/admin/users/{id}/enrollment-code",
            post(enrollment_code),
        )
        .route("/console/audit", get(audit))
        .route("/console/audit/export", get(audit_export))
        .route(
            "/console/sessions/{id}/terminate",
            get(confirm_terminate).post(terminate),
        )
        .layer(axum::middleware::map_response(secure_headers))
        .with_state(Console { api, zone })
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
    static CSS: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let css = CSS.get_or_init(|| format!("{}{}", include_str!("app.css"), terminal_palette()));
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        css.as_str(),
    )
        .into_response()
}

/// The xterm-256 palette as `.f<n>` (text) and `.b<n>` (background) classes for the player.
fn terminal_palette() -> String {
    const BASIC: [(u8, u8, u8); 16] = [
        (0, 0, 0),
        (205, 0, 0),
        (0, 205, 0),
        (205, 205, 0),
        (0, 0, 238),
        (205, 0, 205),
        (0, 205, 205),
        (229, 229, 229),
        (127, 127, 127),
        (255, 0, 0),
        (0, 255, 0),
        (255, 255, 0),
        (92, 92, 255),
        (255, 0, 255),
        (0, 255, 255),
        (255, 255, 255),
    ];
    let level = |i: u16| -> u8 {
        if i == 0 {
            0
        } else {
            u8::try_from(55 + 40 * i).unwrap_or(255)
        }
    };
    let mut css = String::from("\n/* xterm-256 palette (generated) */\n");
    for n in 0u16..256 {
        let (r, g, b) = match n {
            0..16 => BASIC[usize::from(n)],
            16..232 => {
                let c = n - 16;
                (level(c / 36), level((c / 6) % 6), level(c % 6))
            }
            _ => {
                let v = u8::try_from(8 + 10 * (n - 232)).unwrap_or(255);
                (v, v, v)
            }
        };
        css.push_str(&format!(
            ".terminal .f{n}{{color:#{r:02x}{g:02x}{b:02x}}}.terminal .b{n}{{background:#{r:02x}{g:02x}{b:02x}}}\n"
        ));
    }
    css
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
            origin_https: origin.is_some_and(|o| o.starts_with("https://"))
                || parts.extensions.get::<axum::http::uri::Scheme>()
                    == Some(&axum::http::uri::Scheme::HTTPS),
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
    /// One request to the API router, as the caller; its response as the API gave it.
    async fn raw(&self, ctx: &Ctx, method: Method, path: &str, body: Option<Value>) -> Response {
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
            return (StatusCode::BAD_REQUEST, "bad request").into_response();
        };
        if let Some(peer) = ctx.peer {
            req.extensions_mut().insert(ConnectInfo(peer));
        }
        let Ok(resp) = self.api.clone().oneshot(req).await;
        resp
    }

    /// One request to the API router, as the caller, with a JSON answer.
    async fn call(&self, ctx: &Ctx, method: Method, path: &str, body: Option<Value>) -> Answer {
        let resp = self.raw(ctx, method, path, body).await;
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

    /// The API's JSON answer to a GET, or the error page saying why not.
    async fn fetch(&self, ctx: &Ctx, path: &str) -> Result<Value, Response> {
        let answer = self.get(ctx, path).await;
        if answer.ok() {
            Ok(answer.body)
        } else {
            Err(pages::error(ctx.lang, &answer.message(), answer.status))
        }
    }
}

/// A logged-in caller: the request's context and who its token belongs to. Pages that need
/// a login take this; without one (or with an expired token) the browser goes to the login
/// page.
pub struct LoggedIn {
    ctx: Ctx,
    me: Value,
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

impl CsrfField for CsrfForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

/// The refusal of a state-changing form whose CSRF token or origin is wrong.
/// A form posted from one of this console's own pages: its Origin is this host and it
/// carries this session's CSRF token; anything else is refused (a 403 page, logged) before
/// the handler runs. Every console route that changes something takes its form this way,
/// so none can forget the check.
struct Posted<T> {
    ctx: Ctx,
    form: T,
}

/// A posted form's CSRF field.
trait CsrfField {
    fn csrf(&self) -> &str;
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

async fn logout(State(console): State<Console>, posted: Posted<CsrfForm>) -> Response {
    // The token itself stops working, not only the cookie that carried it.
    let answer = console
        .call(&posted.ctx, Method::POST, "/api/v1/auth/logout", None)
        .await;
    if !answer.ok() && answer.status != StatusCode::UNAUTHORIZED {
        tracing::warn!(status = %answer.status, "console: the token could not be revoked at logout");
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
    LoggedIn { ctx, me }: LoggedIn,
    Query(q): Query<ListQuery>,
) -> Result<Response, Response> {
    let requests = console.fetch(&ctx, "/api/v1/requests?limit=1000").await?;
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
    Ok(pages::approvals(
        &frame,
        &console.zone,
        requests.as_array().map_or(&[][..], Vec::as_slice),
        vendors.as_array().map_or(&[][..], Vec::as_slice),
        users.as_array().map_or(&[][..], Vec::as_slice),
        q.status.as_deref(),
    ))
}

#[derive(Deserialize)]
struct DecisionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    comment: String,
}

impl DecisionForm {
    /// The API body: the comment, if one was written (newlines as the API stores them).
    fn body(&self) -> Value {
        let comment = unix_newlines(self.comment.trim());
        if comment.is_empty() {
            json!({})
        } else {
            json!({"comment": comment})
        }
    }
}

impl CsrfField for DecisionForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

async fn decide(
    State(console): State<Console>,
    Path((id, action)): Path<(String, String)>,
    Posted { ctx, form }: Posted<DecisionForm>,
) -> Response {
    let (verb, done) = match action.as_str() {
        "approve" => ("approve", "approved"),
        "reject" => ("reject", "rejected"),
        _ => return pages::error(ctx.lang, "no such action", StatusCode::NOT_FOUND),
    };
    let path = format!("/api/v1/requests/{}/{verb}", urlencode(&id));
    let answer = console
        .call(&ctx, Method::POST, &path, Some(form.body()))
        .await;
    back_to("/console/approvals", done, &answer)
}

fn no_query() -> ListQuery {
    ListQuery {
        status: None,
        done: None,
        error: None,
    }
}

async fn new_request_page(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
) -> Response {
    let zone = &console.zone;
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

impl CsrfField for RequestForm {
    fn csrf(&self) -> &str {
        &self.csrf
    }
}

async fn file_request(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Posted { form, .. }: Posted<RequestForm>,
) -> Response {
    let zone = &console.zone;
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
    LoggedIn { ctx, me }: LoggedIn,
    Query(q): Query<ListQuery>,
) -> Result<Response, Response> {
    let live = console.fetch(&ctx, "/api/v1/sessions?active=true").await?;
    let requests = console.get(&ctx, "/api/v1/requests?limit=1000").await;
    let frame = frame(&ctx, &me, &q);
    Ok(pages::sessions(
        &frame,
        &console.zone,
        live.as_array().map_or(&[][..], Vec::as_slice),
        requests.body.as_array().map_or(&[][..], Vec::as_slice),
    ))
}

async fn confirm_terminate(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let live = console.fetch(&ctx, "/api/v1/sessions?active=true").await?;
    let Some(session) = live
        .as_array()
        .and_then(|all| all.iter().find(|s| s["id"] == id.as_str()))
    else {
        return Ok(Redirect::to("/console/sessions").into_response());
    };
    Ok(pages::confirm_terminate(
        &frame(&ctx, &me, &no_query()),
        session,
    ))
}

async fn terminate(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { ctx, .. }: Posted<CsrfForm>,
) -> Response {
    let path = format!("/api/v1/sessions/{}/terminate", urlencode(&id));
    let answer = console.call(&ctx, Method::POST, &path, None).await;
    back_to("/console/sessions", "terminated", &answer)
}

#[derive(Deserialize)]
struct RecordingsQuery {
    target: Option<String>,
    user: Option<String>,
    state: Option<String>,
}

/// A query string of the non-empty `pairs`.
fn query(pairs: &[(&str, Option<&str>)]) -> String {
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

async fn recordings(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(q): Query<RecordingsQuery>,
) -> Result<Response, Response> {
    let path = format!(
        "/api/v1/recordings{}",
        query(&[
            ("target", q.target.as_deref()),
            ("user", q.user.as_deref()),
            ("state", q.state.as_deref())
        ])
    );
    let list = console.fetch(&ctx, &path).await?;
    Ok(pages::recordings(
        &frame(&ctx, &me, &no_query()),
        &console.zone,
        list.as_array().map_or(&[][..], Vec::as_slice),
        (q.target.as_deref(), q.user.as_deref(), q.state.as_deref()),
    ))
}

#[derive(Deserialize)]
struct SearchForm {
    #[serde(default)]
    q: String,
}

async fn search(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(s): Query<SearchForm>,
) -> Result<Response, Response> {
    let hits = if s.q.trim().is_empty() {
        Value::Array(vec![])
    } else {
        let path = format!("/api/v1/recordings/search?q={}", urlencode(s.q.trim()));
        console.fetch(&ctx, &path).await?
    };
    Ok(pages::search(
        &frame(&ctx, &me, &no_query()),
        &s.q,
        hits.as_array().map_or(&[][..], Vec::as_slice),
    ))
}

#[derive(Deserialize)]
struct PlayerQuery {
    t: Option<f64>,
    #[serde(default)]
    play: bool,
    speed: Option<f64>,
    #[serde(default)]
    live: bool,
    done: Option<String>,
    error: Option<String>,
}

async fn recording(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Path(id): Path<String>,
    Query(pq): Query<PlayerQuery>,
) -> Result<Response, Response> {
    let base = format!("/api/v1/recordings/{}", urlencode(&id));
    let manifest = console.fetch(&ctx, &base).await?;
    let verification = console.get(&ctx, &format!("{base}/verify")).await;
    let session = console
        .get(&ctx, "/api/v1/sessions?limit=1000")
        .await
        .body
        .as_array()
        .and_then(|all| all.iter().find(|s| s["id"] == id.as_str()).cloned())
        .unwrap_or(Value::Null);
    let report = match session["request_id"].as_str() {
        Some(r) => console
            .get(&ctx, &format!("/api/v1/requests/{}", urlencode(r)))
            .await
            .body["report"]
            .clone(),
        None => Value::Null,
    };
    // The first terminal channel at `t` (or now, watching live), drawn by the API.
    let at = if pq.live {
        String::new()
    } else {
        format!("?t={}", pq.t.unwrap_or(0.0).max(0.0))
    };
    let drawn = console.get(&ctx, &format!("{base}/screen{at}")).await;
    let length = drawn.body["length"].as_f64().unwrap_or(0.0);
    let t = drawn.body["t"].as_f64().unwrap_or(0.0);
    let screen =
        serde_json::from_value::<sekisho_recorder::index::Screen>(drawn.body["screen"].clone())
            .ok()
            .map(|s| (s, length));
    let q = ListQuery {
        status: None,
        done: pq.done.clone(),
        error: pq.error.clone(),
    };
    Ok(pages::recording(
        &frame(&ctx, &me, &q),
        &console.zone,
        &pages::RecordingView {
            id: &id,
            manifest: &manifest,
            verification: &verification.body,
            session: &session,
            report: &report,
            screen: screen.as_ref(),
            t,
            playing: pq.play,
            speed: pq.speed.unwrap_or(1.0).clamp(0.25, 16.0),
            live: pq.live,
        },
    ))
}

async fn transcript(State(console): State<Console>, ctx: Ctx, Path(id): Path<String>) -> Response {
    if ctx.token.is_none() {
        return Redirect::to("/console/login").into_response();
    }
    console
        .raw(
            &ctx,
            Method::GET,
            &format!("/api/v1/recordings/{}/text", urlencode(&id)),
            None,
        )
        .await
}

async fn download(
    State(console): State<Console>,
    ctx: Ctx,
    Path((id, name)): Path<(String, String)>,
) -> Response {
    if ctx.token.is_none() {
        return Redirect::to("/console/login").into_response();
    }
    let path = format!(
        "/api/v1/recordings/{}/files/{}",
        urlencode(&id),
        urlencode(&name)
    );
    let mut r = console.raw(&ctx, Method::GET, &path, None).await;
    if r.status().is_success()
        && let Ok(v) =
            HeaderValue::from_str(&format!("attachment; filename=\"{}\"", urlencode(&name)))
    {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[derive(Deserialize)]
struct ChannelQuery {
    channel: Option<u32>,
}

/// An export from the API, or back to the recording with the API's reason.
async fn export(console: &Console, ctx: &Ctx, id: &str, what: &str) -> Response {
    if ctx.token.is_none() {
        return Redirect::to("/console/login").into_response();
    }
    let r = console
        .raw(
            ctx,
            Method::GET,
            &format!("/api/v1/recordings/{}/{what}", urlencode(id)),
            None,
        )
        .await;
    if r.status().is_success() {
        return r;
    }
    let message = match axum::body::to_bytes(r.into_body(), MAX_ANSWER).await {
        Ok(b) => serde_json::from_slice::<Value>(&b)
            .ok()
            .and_then(|v| v["error"]["message"].as_str().map(str::to_owned))
            .unwrap_or_else(|| "the export failed".into()),
        Err(_) => "the export failed".into(),
    };
    Redirect::to(&format!(
        "/console/recordings/{}?error={}",
        urlencode(id),
        urlencode(&message)
    ))
    .into_response()
}

async fn export_pcap(
    State(console): State<Console>,
    ctx: Ctx,
    Path(id): Path<String>,
    Query(q): Query<ChannelQuery>,
) -> Response {
    let what = match q.channel {
        Some(c) => format!("pcap?channel={c}"),
        None => "pcap".into(),
    };
    export(&console, &ctx, &id, &what).await
}

async fn export_bundle(
    State(console): State<Console>,
    ctx: Ctx,
    Path(id): Path<String>,
) -> Response {
    export(&console, &ctx, &id, "bundle").await
}

async fn sign_off(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { ctx, form }: Posted<DecisionForm>,
) -> Response {
    let path = format!("/api/v1/sessions/{}/review", urlencode(&id));
    let answer = console
        .call(&ctx, Method::POST, &path, Some(form.body()))
        .await;
    back_to(
        &format!("/console/recordings/{}", urlencode(&id)),
        "signed_off",
        &answer,
    )
}

#[derive(Deserialize)]
struct AuditForm {
    kind: Option<String>,
    outcome: Option<String>,
    user: Option<String>,
    target: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    format: Option<String>,
}

impl AuditForm {
    /// The API query for these filters (times read in the configured zone).
    fn api_query(
        &self,
        zone: &sekisho_domain::zone::DisplayZone,
        extra: &[(&str, Option<&str>)],
    ) -> Result<String, String> {
        let time = |v: &Option<String>, name: &str| -> Result<Option<String>, String> {
            match v.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => zone
                    .parse_local(s)
                    .map(|t| Some(t.to_string()))
                    .map_err(|e| format!("{name}: `{s}` is not a date and time ({e})")),
            }
        };
        let (from, to) = (time(&self.from, "from")?, time(&self.to, "to")?);
        let mut pairs = vec![
            ("kind", self.kind.as_deref()),
            ("outcome", self.outcome.as_deref()),
            ("user", self.user.as_deref()),
            ("target", self.target.as_deref()),
            ("from", from.as_deref()),
            ("to", to.as_deref()),
        ];
        pairs.extend_from_slice(extra);
        Ok(query(&pairs))
    }
}

async fn audit(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(f): Query<AuditForm>,
) -> Response {
    let zone = &console.zone;
    let mut q = no_query();
    let page = match f.api_query(
        zone,
        &[("cursor", f.cursor.as_deref()), ("limit", Some("100"))],
    ) {
        Ok(qs) => {
            let a = console.get(&ctx, &format!("/api/v1/audit{qs}")).await;
            if !a.ok() {
                q.error = Some(a.message());
            }
            a.body
        }
        Err(e) => {
            q.error = Some(e);
            Value::Null
        }
    };
    let chain = console.get(&ctx, "/api/v1/audit/verify").await;
    let export = f.api_query(zone, &[]).unwrap_or_default();
    let next = page["next_cursor"].as_i64().map(|c| {
        let mut more: Vec<(&str, Option<&str>)> = vec![];
        let c = c.to_string();
        more.push(("cursor", Some(&c)));
        let pairs = [
            ("kind", f.kind.as_deref()),
            ("outcome", f.outcome.as_deref()),
            ("user", f.user.as_deref()),
            ("target", f.target.as_deref()),
            ("from", f.from.as_deref()),
            ("to", f.to.as_deref()),
        ];
        more.extend_from_slice(&pairs);
        format!("/console/audit{}", query(&more))
    });
    pages::audit(
        &frame(&ctx, &me, &q),
        zone,
        &pages::AuditView {
            events: page["events"].as_array().map_or(&[][..], Vec::as_slice),
            chain: chain.ok().then_some(&chain.body),
            filters: [
                f.kind.as_deref().unwrap_or(""),
                f.outcome.as_deref().unwrap_or(""),
                f.user.as_deref().unwrap_or(""),
                f.target.as_deref().unwrap_or(""),
                f.from.as_deref().unwrap_or(""),
                f.to.as_deref().unwrap_or(""),
            ],
            export: &export,
            next: next.as_deref(),
        },
    )
}

async fn audit_export(
    State(console): State<Console>,
    ctx: Ctx,
    Query(f): Query<AuditForm>,
) -> Response {
    if ctx.token.is_none() {
        return Redirect::to("/console/login").into_response();
    }
    let format = match f.format.as_deref() {
        Some("jsonl") => "jsonl",
        _ => "csv",
    };
    let qs = match f.api_query(&console.zone, &[("format", Some(format))]) {
        Ok(qs) => qs,
        Err(e) => return pages::error(ctx.lang, &e, StatusCode::UNPROCESSABLE_ENTITY),
    };
    let mut r = console
        .raw(&ctx, Method::GET, &format!("/api/v1/audit{qs}"), None)
        .await;
    if r.status().is_success()
        && let Ok(v) =
            HeaderValue::from_str(&format!("attachment; filename=\"sekisho-audit.{format}\""))
    {
        r.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    r
}

#[derive(Deserialize)]
struct Notice {
    done: Option<String>,
    error: Option<String>,
}

async fn admin(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(n): Query<Notice>,
) -> Result<Response, Response> {
    let vendors = console.fetch(&ctx, "/api/v1/vendors").await?;
    let users = console.get(&ctx, "/api/v1/users").await;
    let targets = console.get(&ctx, "/api/v1/targets").await;
    let policy = console.get(&ctx, "/api/v1/policy").await;
    let q = ListQuery {
        status: None,
        done: n.done,
        error: n.error,
    };
    let list = |v: &Value| v.as_array().cloned().unwrap_or_default();
    Ok(pages::admin(
        &frame(&ctx, &me, &q),
        &console.zone,
        &pages::AdminView {
            vendors: &list(&vendors),
            users: &list(&users.body),
            targets: &list(&targets.body),
            checklist: policy.body["checklist"]
                .as_array()
                .map_or(&[][..], Vec::as_slice),
        },
    ))
}

/// Back to the administration page with the API's verdict.
fn back_to_admin(answer: &Answer) -> Response {
    back_to("/console/admin", "ok", answer)
}

/// Back to `page` after an action: `?done=DONE`, or `?error=` with the API's message.
fn back_to(page: &str, done: &str, answer: &Answer) -> Response {
    if answer.ok() {
        Redirect::to(&format!("{page}?done={done}")).into_response()
    } else {
        Redirect::to(&format!("{page}?error={}", urlencode(&answer.message()))).into_response()
    }
}

type Fields = std::collections::HashMap<String, String>;

impl CsrfField for Fields {
    fn csrf(&self) -> &str {
        field(self, "csrf")
    }
}

fn field<'a>(f: &'a Fields, name: &str) -> &'a str {
    f.get(name).map_or("", |v| v.trim())
}

async fn create_vendor(
    State(console): State<Console>,
    Posted { ctx, form: f }: Posted<Fields>,
) -> Response {
    // Every checklist item is answered: ticked is yes, unticked no.
    let policy = console.get(&ctx, "/api/v1/policy").await;
    let answers: serde_json::Map<String, Value> = policy.body["checklist"]
        .as_array()
        .map_or(&[][..], Vec::as_slice)
        .iter()
        .filter_map(|i| i["key"].as_str())
        .map(|k| (k.to_owned(), json!(f.contains_key(&format!("check_{k}")))))
        .collect();
    let body = json!({"name": field(&f, "name"), "contact": {"name": field(&f, "contact")},
        "attestation": {"answers": answers, "attested_by": field(&f, "attested_by")}});
    back_to_admin(
        &console
            .call(&ctx, Method::POST, "/api/v1/vendors", Some(body))
            .await,
    )
}

async fn create_engineer(
    State(console): State<Console>,
    Posted { ctx, form: f }: Posted<Fields>,
) -> Response {
    let display = field(&f, "display_name");
    let body = json!({"username": field(&f, "username"), "password": f.get("password").map_or("", String::as_str),
        "display_name": (!display.is_empty()).then_some(display)});
    let path = format!("/api/v1/vendors/{}/users", urlencode(field(&f, "vendor")));
    back_to_admin(&console.call(&ctx, Method::POST, &path, Some(body)).await)
}

async fn set_user_status(
    State(console): State<Console>,
    Path(id): Path<String>,
    Posted { ctx, form: f }: Posted<Fields>,
) -> Response {
    let body = json!({"status": field(&f, "status")});
    let path = format!("/api/v1/users/{}", urlencode(&id));
    back_to_admin(&console.call(&ctx, Method::PATCH, &path, Some(body)).await)
}

async fn enrollment_code(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Path(id): Path<String>,
    _: Posted<Fields>,
) -> Response {
    let path = format!("/api/v1/users/{}/enrollment-codes", urlencode(&id));
    let answer = console
        .call(&ctx, Method::POST, &path, Some(json!({})))
        .await;
    if !answer.ok() {
        return back_to_admin(&answer);
    }
    pages::enrollment_code(&frame(&ctx, &me, &no_query()), &console.zone, &answer.body)
}

async fn create_target(
    State(console): State<Console>,
    Posted { ctx, form: f }: Posted<Fields>,
) -> Response {
    let ports: Result<Vec<u16>, _> = field(&f, "allowed_ports")
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::parse::<u16>)
        .collect();
    let Ok(ports) = ports else {
        let message = format!(
            "allowed ports: `{}` is not a list of port numbers",
            field(&f, "allowed_ports")
        );
        return Redirect::to(&format!("/console/admin?error={}", urlencode(&message)))
            .into_response();
    };
    let level = |prefix: &str| -> Option<Value> {
        let account = field(&f, &format!("{prefix}_account"));
        if account.is_empty() {
            return None;
        }
        let key = unix_newlines(f.get(&format!("{prefix}_key")).map_or("", String::as_str));
        let change = prefix == "change";
        Some(
            json!({"account": account, "credential": {"private_key": key},
            "file_upload": change && f.contains_key("file_upload"),
            "port_forwarding": change && f.contains_key("port_forwarding"),
            "allowed_ports": if change { ports.clone() } else { vec![] }}),
        )
    };
    let mut levels = serde_json::Map::new();
    for prefix in ["reference", "change"] {
        if let Some(l) = level(prefix) {
            levels.insert(prefix.to_owned(), l);
        }
    }
    let port = match field(&f, "port") {
        "" => 22,
        p => match p.parse::<u16>() {
            Ok(p) => p,
            Err(_) => {
                let message = format!("SSH port: `{p}` is not a port number");
                return Redirect::to(&format!("/console/admin?error={}", urlencode(&message)))
                    .into_response();
            }
        },
    };
    let host_key = field(&f, "host_key");
    let body = json!({"name": field(&f, "name"), "host": field(&f, "host"), "port": port,
        "host_key": (!host_key.is_empty()).then_some(host_key), "levels": levels});
    back_to_admin(
        &console
            .call(&ctx, Method::POST, "/api/v1/targets", Some(body))
            .await,
    )
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
