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
    /// `html`: the standalone file, to keep or send on.
    format: Option<String>,
}

pub(crate) async fn monthly(
    State(console): State<Console>,
    LoggedIn { ctx, me }: LoggedIn,
    Query(q): Query<ReportQuery>,
) -> Result<Response, Response> {
    let path = match &q.month {
        Some(m) => format!("/api/v1/reports/monthly?month={}", urlencode(m)),
        None => "/api/v1/reports/monthly".to_owned(),
    };
    let report: MonthlyReport = console.fetch(&ctx, &path).await?;
    let lang = ctx.lang;
    if q.format.as_deref() == Some("pdf") {
        let configured = console.report_font.clone();
        let zone = console.zone.clone();
        let made: Result<(String, Vec<u8>), String> = tokio::task::spawn_blocking(move || {
            let font = crate::pdf::font_file(configured.as_deref())?;
            let bytes = std::fs::read(&font)
                .map_err(|e| format!("cannot read the report font {}: {e}", font.display()))?;
            crate::pdf::document(&report, &zone, lang, &bytes).map(|pdf| (report.month, pdf))
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        return match made {
            Ok((month, pdf)) => {
                let mut resp = pdf.into_response();
                let h = resp.headers_mut();
                h.insert(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("application/pdf"),
                );
                if let Ok(v) = HeaderValue::from_str(&format!(
                    "attachment; filename=\"sekisho-report-{month}-{}.pdf\"",
                    lang.code()
                )) {
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
            "attachment; filename=\"sekisho-report-{}-{}.html\"",
            report.month,
            lang.code()
        );
        if let Ok(v) = HeaderValue::from_str(&disposition) {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        return Ok(resp);
    }
    let f = frame(&ctx, &me, Default::default());
    let t = |k: T| k.get(lang);
    let body = html! {
        form.filters method="get" action="/console/reports/monthly" {
            label for="month" { (t(T::ReportMonth)) }
            input #month type="month" name="month" value=(report.month);
            button type="submit" { (t(T::ReportShow)) }
            " "
            a.button.download href={ "/console/reports/monthly?format=html&month=" (report.month) } { (t(T::ReportDownload)) }
            " "
            a.button.download.pdf href={ "/console/reports/monthly?format=pdf&month=" (report.month) } { (t(T::ReportDownloadPdf)) }
        }
        (crate::report::body(&report, &console.zone, lang))
    };
    let title = format!("{} {}", t(T::MonthlyReport), report.month);
    Ok(respond(StatusCode::OK, page(lang, &title, Some(&f), body)))
}
