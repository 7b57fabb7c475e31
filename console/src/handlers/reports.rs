//! The monthly report page and its download (issue #18).

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use sekisho_domain::report::MonthlyReport;
use serde::Deserialize;

use crate::client::Console;
use crate::extract::{LoggedIn, frame};
use crate::i18n::T;
use crate::pages::layout::{page, respond, urlencode};

#[derive(Debug, Deserialize)]
pub(crate) struct ReportQuery {
    month: Option<String>,
    /// One site's report (empty: the whole group, or the caller's own site).
    site: Option<String>,
    /// `html`: the standalone file, to keep or send on.
    format: Option<String>,
}

pub(crate) async fn monthly(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(q): Query<ReportQuery>,
) -> Result<Response, Response> {
    let mut asked = vec![];
    if let Some(m) = q.month.as_deref().filter(|m| !m.is_empty()) {
        asked.push(format!("month={}", urlencode(m)));
    }
    if let Some(s) = q.site.as_deref().filter(|s| !s.is_empty()) {
        asked.push(format!("site={}", urlencode(s)));
    }
    let path = format!("/api/v1/reports/monthly?{}", asked.join("&"));
    let report: MonthlyReport = console.fetch(&ctx, &path).await?;
    let lang = ctx.lang;
    if q.format.as_deref() == Some("pdf") {
        let configured = console.report_font.clone();
        let zone = console.zone.clone();
        let made: Result<(String, Vec<u8>), String> = tokio::task::spawn_blocking(move || {
            let font = crate::pdf::font_file(configured.as_deref())?;
            let bytes = std::fs::read(&font)
                .map_err(|e| format!("cannot read the report font {}: {e}", font.display()))?;
            let name = crate::report::file_name(&report, lang, "pdf");
            crate::pdf::document(&report, &zone, lang, &bytes).map(|pdf| (name, pdf))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        return match made {
            Ok((name, pdf)) => {
                let mut resp = pdf.into_response();
                let h = resp.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/pdf"),
                );
                if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
                    h.insert(header::CONTENT_DISPOSITION, v);
                }
                Ok(resp)
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot make the PDF report");
                Err(crate::pages::layout::error(
                    lang,
                    &e,
                    StatusCode::SERVICE_UNAVAILABLE,
                ))
            }
        };
    }
    if q.format.as_deref() == Some("html") {
        let mut resp = crate::report::document(&report, &console.zone, lang).into_response();
        let disposition = format!(
            "attachment; filename=\"{}\"",
            crate::report::file_name(&report, lang, "html")
        );
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        return Ok(resp);
    }
    let f = frame(&ctx, &me, Default::default());
    let t = |k: T| k.get(lang);
    let site = report.site.clone().unwrap_or_default();
    let download = |format: &str| {
        let mut href = format!(
            "/console/reports/monthly?format={format}&month={}",
            report.month
        );
        if !site.is_empty() {
            href.push_str(&format!("&site={}", urlencode(&site)));
        }
        href
    };
    let body = html! {
        form.filters method="get" action="/console/reports/monthly" {
            label for="month" { (t(T::ReportMonth)) }
            input #month type="month" name="month" value=(report.month);
            label for="site" { (t(T::ReportSite)) }
            input #site type="text" name="site" value=(site) readonly[me.site.is_some()];
            button type="submit" { (t(T::ReportShow)) }
            " "
            a.button.download href=(download("html")) { (t(T::ReportDownload)) }
            " "
            a.button.download.pdf href=(download("pdf")) { (t(T::ReportDownloadPdf)) }
        }
        (crate::report::body(&report, &console.zone, lang))
    };
    let title = crate::report::title(&report, lang);
    Ok(respond(StatusCode::OK, page(lang, &title, Some(&f), body)))
}
