//! The audit log page and its export.

use axum::extract::{Query, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use sekisho_approval_api::api::dto::{AuditPage, VerifyView};
use sekisho_domain::zone::DisplayZone;
use serde::Deserialize;

use crate::client::Console;
use crate::context::Ctx;
use crate::extract::{LoggedIn, Notice, frame, query};
use crate::pages::audit::{self as page, AuditView};
use crate::pages::layout;

#[derive(Deserialize)]
pub(crate) struct AuditForm {
    kind: Option<String>,
    outcome: Option<String>,
    user: Option<String>,
    target: Option<String>,
    site: Option<String>,
    from: Option<String>,
    to: Option<String>,
    cursor: Option<String>,
    format: Option<String>,
}

impl AuditForm {
    /// The filters as typed, in the API's order (the times as the browser sent them).
    fn pairs(&self) -> [(&'static str, Option<&str>); 7] {
        [
            ("kind", self.kind.as_deref()),
            ("outcome", self.outcome.as_deref()),
            ("user", self.user.as_deref()),
            ("target", self.target.as_deref()),
            ("site", self.site.as_deref()),
            ("from", self.from.as_deref()),
            ("to", self.to.as_deref()),
        ]
    }

    /// The API query for these filters (times read in the configured zone).
    fn api_query(
        &self,
        zone: &DisplayZone,
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
            ("site", self.site.as_deref()),
            ("from", from.as_deref()),
            ("to", to.as_deref()),
        ];
        pairs.extend_from_slice(extra);
        Ok(query(&pairs))
    }
}

pub(crate) async fn audit(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(f): Query<AuditForm>,
) -> Response {
    let zone = &console.zone;
    let mut notice = Notice::default();
    let found = match f.api_query(
        zone,
        &[("cursor", f.cursor.as_deref()), ("limit", Some("100"))],
    ) {
        Ok(qs) => match console
            .get::<AuditPage>(&ctx, &format!("/api/v1/audit{qs}"))
            .await
        {
            Ok(page) => Some(page),
            Err(r) => {
                notice.error = Some(r.message);
                None
            }
        },
        Err(e) => {
            notice.error = Some(e);
            None
        }
    };
    let chain = console
        .get::<VerifyView>(&ctx, "/api/v1/audit/verify?max_age_seconds=3600")
        .await
        .ok();
    let export = f.api_query(zone, &[]).unwrap_or_default();
    let next = found.as_ref().and_then(|p| p.next_cursor).map(|c| {
        let c = c.to_string();
        let mut more: Vec<(&str, Option<&str>)> = vec![("cursor", Some(&c))];
        more.extend_from_slice(&f.pairs());
        format!("/console/audit{}", query(&more))
    });
    let [kind, outcome, user, target, site, from, to] = f.pairs().map(|(_, v)| v.unwrap_or(""));
    page::audit(
        &frame(&ctx, &me, notice),
        zone,
        &AuditView {
            events: found.as_ref().map_or(&[][..], |p| p.events.as_slice()),
            chain: chain.as_ref(),
            filters: [kind, outcome, user, target, site, from, to],
            export: &export,
            next: next.as_deref(),
        },
    )
}

pub(crate) async fn audit_export(
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
        Err(e) => return layout::error(ctx.lang, &e, StatusCode::UNPROCESSABLE_ENTITY),
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
