//! The approvals page, deciding a request, and filing one.

use axum::extract::{Path, Query, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use sekisho_approval_api::api::dto::{
    NewRequestBody, RequestView, TargetView, UserView, VendorView,
};
use sekisho_domain::request::RequestStatus;
use sekisho_domain::target::AccessLevel;
use serde::Deserialize;

use crate::client::{Console, Ignored, Refusal};
use crate::extract::{
    CsrfField, DecisionForm, LoggedIn, Notice, Posted, back_to, frame, unix_newlines,
};
use crate::pages::layout::{self, urlencode};
use crate::pages::requests::{self as page, Draft};

#[derive(Deserialize)]
pub(crate) struct ListQuery {
    status: Option<String>,
    done: Option<String>,
    error: Option<String>,
}

pub(crate) async fn approvals(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(q): Query<ListQuery>,
) -> Result<Response, Response> {
    // An unknown state in the address shows every decided request.
    let filter = q
        .status
        .as_deref()
        .and_then(|s| RequestStatus::ALL.into_iter().find(|x| x.as_str() == s));
    let requests = match me.vendor_id {
        Some(_) => console.fetch(&ctx, "/api/v1/requests?limit=1000").await?,
        None => staff_requests(&console, &ctx, filter).await?,
    };
    // Names for ids: staff see vendors and accounts; a vendor engineer only their vendor.
    let (vendors, users): (Vec<VendorView>, Vec<UserView>) = match me.vendor_id {
        Some(v) => {
            let own = console
                .get::<VendorView>(&ctx, &format!("/api/v1/vendors/{v}"))
                .await;
            (own.into_iter().collect(), vec![])
        }
        None => (
            console
                .get(&ctx, "/api/v1/vendors")
                .await
                .unwrap_or_default(),
            console.get(&ctx, "/api/v1/users").await.unwrap_or_default(),
        ),
    };
    let frame = frame(
        &ctx,
        &me,
        Notice {
            done: q.done,
            error: q.error,
        },
    );
    Ok(page::approvals(
        &frame,
        &console.zone,
        &requests,
        &vendors,
        &users,
        filter,
    ))
}

/// What the approvals page lists for staff: every request that may still await a decision,
/// asked by state so that no number of newer decided requests can push one off the page,
/// and the newest decided ones (of the state in the address, if any).
async fn staff_requests(
    console: &Console,
    ctx: &crate::context::Ctx,
    filter: Option<RequestStatus>,
) -> Result<Vec<RequestView>, Response> {
    let of =
        |status: RequestStatus| format!("/api/v1/requests?status={}&limit=1000", status.as_str());
    let paths = [
        of(RequestStatus::Submitted),
        of(RequestStatus::Active),
        of(RequestStatus::Approved),
        match filter {
            Some(s) => of(s),
            None => "/api/v1/requests?limit=1000".to_owned(),
        },
    ];
    let [submitted, active, approved, decided] = &paths;
    let (submitted, active, approved, decided) = tokio::join!(
        console.fetch::<Vec<RequestView>>(ctx, submitted),
        console.fetch::<Vec<RequestView>>(ctx, active),
        console.fetch::<Vec<RequestView>>(ctx, approved),
        console.fetch::<Vec<RequestView>>(ctx, decided),
    );
    let mut by_number = std::collections::BTreeMap::new();
    for r in [submitted?, active?, approved?, decided?]
        .into_iter()
        .flatten()
    {
        by_number.insert(std::cmp::Reverse(r.number), r);
    }
    Ok(by_number.into_values().collect())
}

pub(crate) async fn decide(
    State(console): State<Console>,
    Path((id, action)): Path<(String, String)>,
    Posted { ctx, form }: Posted<DecisionForm>,
) -> Response {
    let (verb, done) = match action.as_str() {
        "approve" => ("approve", "approved"),
        "reject" => ("reject", "rejected"),
        _ => return layout::error(ctx.lang, "no such action", StatusCode::NOT_FOUND),
    };
    let path = format!("/api/v1/requests/{}/{verb}", urlencode(&id));
    let answer = console
        .send::<Ignored>(&ctx, Method::POST, &path, &form.body())
        .await;
    back_to("/console/approvals", done, &answer)
}

pub(crate) async fn new_request_page(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
) -> Response {
    let zone = &console.zone;
    let now = jiff::Timestamp::now();
    let draft = Draft {
        target: String::new(),
        level: AccessLevel::Reference,
        from: zone.local_input(now),
        until: zone.local_input(now + jiff::SignedDuration::from_hours(2)),
        reason: String::new(),
        plan: String::new(),
    };
    let targets: Vec<TargetView> = console
        .get(&ctx, "/api/v1/targets")
        .await
        .unwrap_or_default();
    page::new_request(
        &frame(&ctx, &me, Notice::default()),
        &targets,
        &draft,
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub(crate) struct RequestForm {
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

pub(crate) async fn file_request(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Posted { form, .. }: Posted<RequestForm>,
) -> Response {
    let zone = &console.zone;
    let level = form.level.parse::<AccessLevel>();
    let times = (zone.parse_local(&form.from), zone.parse_local(&form.until));
    let answer = match (level, times) {
        (Err(_), _) => Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("level: `{}` is neither reference nor change", form.level),
        )),
        (Ok(level), (Ok(start), Ok(end))) => {
            let body = NewRequestBody {
                target: form.target.clone(),
                level,
                window_start: start,
                window_end: end,
                reason: form.reason.clone(),
                plan: unix_newlines(&form.plan),
                emergency: false,
            };
            console
                .send::<Ignored>(&ctx, Method::POST, "/api/v1/requests", &body)
                .await
        }
        _ => Err(Refusal::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "the window needs a start and an end (date and time)",
        )),
    };
    let refusal = match answer {
        Ok(_) => return Redirect::to("/console/approvals?done=filed").into_response(),
        Err(r) => r,
    };
    let targets: Vec<TargetView> = console
        .get(&ctx, "/api/v1/targets")
        .await
        .unwrap_or_default();
    let draft = Draft {
        target: form.target,
        level: form.level.parse().unwrap_or(AccessLevel::Reference),
        from: form.from,
        until: form.until,
        reason: form.reason,
        plan: form.plan,
    };
    let notice = Notice {
        done: None,
        error: Some(refusal.message),
    };
    page::new_request(&frame(&ctx, &me, notice), &targets, &draft, refusal.status)
}
