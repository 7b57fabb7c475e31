//! The monthly report rendered (issue #18): one HTML document, in Japanese or English, with
//! its charts as inline SVG drawn by plotters. The console serves it as a page and as a file;
//! `sekisho report monthly` writes the same file.

use maud::{DOCTYPE, Markup, PreEscaped, html};
use plotters::prelude::*;
use sekisho_domain::report::{Count, MonthlyReport, Tally};
use sekisho_domain::zone::DisplayZone;

use crate::i18n::{Lang, T};

/// Draws a bar chart of `bars` (label, value) on `area`, whatever the backend: SVG for the
/// HTML report, PDF operations for the PDF one. `None` if plotters fails.
pub(crate) fn draw_bars<DB: DrawingBackend>(
    root: DrawingArea<DB, plotters::coord::Shift>,
    title: &str,
    bars: &[(String, f64)],
) -> Option<()> {
    root.fill(&WHITE).ok()?;
    // Whole numbers on the value axis, a little headroom above the tallest bar.
    let top = bars
        .iter()
        .map(|b| b.1)
        .fold(0.0f64, f64::max)
        .max(1.0)
        .ceil()
        + 1.0;
    let n = bars.len().max(1) as f64;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 16))
        .margin(8)
        .x_label_area_size(28)
        .y_label_area_size(40)
        .build_cartesian_2d(-0.5f64..n - 0.5, 0f64..top)
        .ok()?;
    let labels: Vec<String> = bars.iter().map(|b| b.0.clone()).collect();
    let every = (bars.len() / 16).max(1);
    chart
        .configure_mesh()
        .disable_x_mesh()
        .light_line_style(WHITE)
        .x_labels(bars.len().max(1) * 2 + 1)
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() > 1e-6 || i < 0.0 {
                return String::new();
            }
            let i = i as usize;
            if i.is_multiple_of(every) {
                labels.get(i).cloned().unwrap_or_default()
            } else {
                String::new()
            }
        })
        .y_labels((top as usize).min(10) + 1)
        .y_label_formatter(&|y| {
            if y.fract().abs() < 1e-6 {
                format!("{y:.0}")
            } else {
                String::new()
            }
        })
        .draw()
        .ok()?;
    chart
        .draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            let x = i as f64;
            Rectangle::new(
                [(x - 0.35, 0.0), (x + 0.35, *v)],
                RGBColor(46, 94, 170).filled(),
            )
        }))
        .ok()?;
    root.present().ok()
}

/// A bar chart of `bars` (label, value) as an SVG document; `None` if plotters fails.
pub fn bar_chart(title: &str, bars: &[(String, f64)], width: u32, height: u32) -> Option<String> {
    let mut svg = String::new();
    draw_bars(
        SVGBackend::with_string(&mut svg, (width, height)).into_drawing_area(),
        title,
        bars,
    )?;
    Some(svg)
}

/// A chart's bars: (label, value).
pub(crate) type Bars = Vec<(String, f64)>;

/// The two charts' bars: sessions per vendor, and per day of the month.
pub(crate) fn chart_bars(r: &MonthlyReport) -> (Bars, Bars) {
    let vendors = r
        .by_vendor
        .iter()
        .map(|v| (v.key.clone(), v.sessions as f64))
        .collect();
    let days = r
        .per_day
        .iter()
        .map(|d| (d.key.get(8..).unwrap_or(&d.key).to_owned(), d.count as f64))
        .collect();
    (vendors, days)
}

fn tally_rows(rows: &[Tally]) -> Markup {
    html! {
        @for r in rows {
            tr { td { (r.key) } td.num { (r.sessions) } td.num { (format!("{:.2}", r.hours)) } }
        }
    }
}

fn counts(rows: &[Count]) -> Markup {
    html! {
        @for r in rows { tr { td { code { (r.key) } } td.num { (r.count) } } }
    }
}

/// The report as the body of a page (the console wraps it in its frame; [`document`] in a
/// standalone file).
pub fn body(r: &MonthlyReport, zone: &DisplayZone, lang: Lang) -> Markup {
    let t = |k: T| k.get(lang);
    let (vendors, days) = chart_bars(r);
    let when = |at: jiff::Timestamp| zone.date_time(at);
    html! {
        article.report data-month=(r.month) {
            @if r.empty {
                p.empty.no-activity { (t(T::ReportEmpty)) }
            }
            section aria-labelledby="r-summary" {
                h2 #r-summary { (t(T::ReportSummary)) }
                table.summary {
                    tr { th { (t(T::ReportSessions)) } td.num #sessions { (r.sessions) } }
                    tr { th { (t(T::ReportHours)) } td.num #hours { (format!("{:.2}", r.hours)) } }
                    tr { th { (t(T::ReportEmergencies)) } td.num #emergencies { (r.emergencies.len()) } }
                    tr { th { (t(T::ReportRefusals)) } td.num #refusals { (r.refusals.iter().map(|c| c.count).sum::<u64>()) } }
                }
            }
            @if !r.by_vendor.is_empty() {
                figure.chart {
                    @if let Some(svg) = bar_chart(t(T::ReportSessionsPerVendor), &vendors, 640, 260) { (PreEscaped(svg)) }
                }
            }
            figure.chart {
                @if let Some(svg) = bar_chart(t(T::ReportSessionsPerDay), &days, 640, 240) { (PreEscaped(svg)) }
            }
            @for (id, title, rows) in [("r-vendor", T::ReportByVendor, &r.by_vendor), ("r-target", T::ReportByTarget, &r.by_target), ("r-level", T::ReportByLevel, &r.by_level)] {
                section aria-labelledby=(id) {
                    h2 id=(id) { (t(title)) }
                    table.tally {
                        thead { tr { th {} th { (t(T::ReportSessions)) } th { (t(T::ReportHours)) } } }
                        tbody { (tally_rows(rows)) }
                    }
                }
            }
            section aria-labelledby="r-emergency" {
                h2 #r-emergency { (t(T::ReportEmergencies)) }
                table {
                    thead { tr { th { (t(T::Request)) } th { (t(T::Vendor)) } th { (t(T::Target)) } th { (t(T::ReportUsedAt)) } th { (t(T::ReportApprovalDelay)) } } }
                    tbody {
                        @for e in &r.emergencies {
                            tr {
                                td { "R-" (e.request_number) } td { (e.vendor) } td { (e.target) } td { (when(e.used_at)) }
                                td.num { @match e.approval_delay_hours { Some(h) => { (format!("{h:.2}")) " h" } None => { (t(T::ReportNotApproved)) } } }
                            }
                        }
                    }
                }
            }
            section aria-labelledby="r-refusals" {
                h2 #r-refusals { (t(T::ReportRefusalsByReason)) }
                table { tbody { (counts(&r.refusals)) } }
            }
            section aria-labelledby="r-reviews" {
                h2 #r-reviews { (t(T::ReportReviews)) }
                table.summary {
                    tr { th { (t(T::ReportReviewedInTime)) } td.num #reviewed-in-time { (r.reviews.in_time) } }
                    tr { th { (t(T::ReportReviewedLate)) } td.num #reviewed-late { (r.reviews.late) } }
                    tr { th { (t(T::ReportReviewPending)) } td.num #review-pending { (r.reviews.pending) } }
                    tr { th { (t(T::ReviewOverdueBadge)) } td.num #review-overdue { (r.reviews.overdue) } }
                }
            }
            section aria-labelledby="r-files" {
                h2 #r-files { (t(T::FilesTransferred)) }
                table.summary {
                    tr { th { (t(T::Upload)) } td.num #uploads { (r.files.uploads) } td.num { (r.files.upload_bytes) " B" } }
                    tr { th { (t(T::Download)) } td.num #downloads { (r.files.downloads) } td.num { (r.files.download_bytes) " B" } }
                    tr { th { (t(T::ReportBlocked)) } td.num #blocked { (r.files.blocked) } }
                }
            }
            section aria-labelledby="r-lapses" {
                h2 #r-lapses { (t(T::ReportLapsing)) }
                ul {
                    @for l in &r.attestations_expiring { li { (t(T::Attestation)) ": " (l.name) " — " (when(l.at)) } }
                    @for l in &r.contracts_expiring { li { (t(T::Contract)) ": " (l.name) " — " (when(l.at)) } }
                    @for u in &r.unused_accounts {
                        li { (t(T::ReportUnused)) ": " (u.username) " (" (u.vendor) ") — " (u.last_seen.map(when).unwrap_or_else(|| "—".into())) }
                    }
                    @for l in &r.lines_not_reviewed { li { (t(T::Lines)) ": " (l) " — " (t(T::NeverReviewed)) " / " (t(T::ReviewOverdue)) } }
                }
            }
        }
    }
}

/// "Monthly report 2026-11", and the site when it covers one.
pub fn title(r: &MonthlyReport, lang: Lang) -> String {
    let mut title = format!("{} {}", T::MonthlyReport.get(lang), r.month);
    if let Some(site) = &r.site {
        title.push_str(&format!(" — {} {site}", T::ReportSite.get(lang)));
    }
    title
}

/// `sekisho-report-2026-11-ja.pdf`, with the site when the report covers one (only its
/// letters, digits, `-` and `_`: the name must be safe as a path and in a download header).
pub fn file_name(r: &MonthlyReport, lang: Lang, ext: &str) -> String {
    let site = r
        .site
        .as_deref()
        .map(|s| {
            let safe: String = s
                .chars()
                .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_'))
                .collect();
            format!("{}-", if safe.is_empty() { "site" } else { &safe })
        })
        .unwrap_or_default();
    format!("sekisho-report-{}-{site}{}.{ext}", r.month, lang.code())
}

/// The report as a standalone HTML file (its style inline: it is opened from disk or mail).
pub fn document(r: &MonthlyReport, zone: &DisplayZone, lang: Lang) -> String {
    let title = title(r, lang);
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                title { (title) }
                style { (PreEscaped("body{font-family:sans-serif;margin:2rem;max-width:60rem}table{border-collapse:collapse;margin:.5rem 0}td,th{border:1px solid #ccc;padding:.2rem .5rem;text-align:left}td.num{text-align:right}figure{margin:1rem 0}")) }
            }
            body {
                h1 { (title) }
                (body(r, zone, lang))
            }
        }
    }
    .into_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use sekisho_domain::report::{Files, Reviews};

    #[test]
    fn file_names_carry_a_safe_site() {
        let mut r = sample();
        assert_eq!(
            file_name(&r, Lang::Ja, "pdf"),
            "sekisho-report-2026-11-east-ja.pdf"
        );
        r.site = Some("東病院".into());
        assert_eq!(
            file_name(&r, Lang::En, "html"),
            "sekisho-report-2026-11-site-en.html"
        );
        r.site = Some("../west 2".into());
        assert_eq!(
            file_name(&r, Lang::En, "html"),
            "sekisho-report-2026-11-west2-en.html"
        );
        r.site = None;
        assert_eq!(
            file_name(&r, Lang::En, "html"),
            "sekisho-report-2026-11-en.html"
        );
    }

    fn sample() -> MonthlyReport {
        MonthlyReport {
            month: "2026-11".into(),
            site: Some("east".into()),
            empty: false,
            sessions: 5,
            hours: 7.5,
            by_vendor: vec![
                Tally {
                    key: "Acme Medical".into(),
                    sessions: 3,
                    hours: 5.0,
                },
                Tally {
                    key: "富士画像システム".into(),
                    sessions: 2,
                    hours: 2.5,
                },
            ],
            by_target: vec![],
            by_level: vec![],
            per_day: (1..=30)
                .map(|d| Count {
                    key: format!("2026-11-{d:02}"),
                    count: u64::from(d % 3 == 0),
                })
                .collect(),
            emergencies: vec![],
            refusals: vec![Count {
                key: "no_request".into(),
                count: 4,
            }],
            reviews: Reviews::default(),
            files: Files::default(),
            attestations_expiring: vec![],
            contracts_expiring: vec![],
            unused_accounts: vec![],
            lines_not_reviewed: vec![],
        }
    }

    /// Writes a sample report to `$SEKISHO_REPORT_SAMPLE` when set (to look at it).
    #[test]
    fn a_report_renders_its_charts_and_numbers() {
        let r = sample();
        let html = document(&r, &DisplayZone::default(), Lang::Ja);
        assert!(
            html.contains("<h1>月次報告 2026-11 — 拠点 east</h1>"),
            "{html}"
        );
        assert_eq!(html.matches("<svg").count(), 2);
        assert!(html.contains("富士画像システム") && html.contains("id=\"refusals\">4<"));
        if let Some(path) = std::env::var_os("SEKISHO_REPORT_SAMPLE") {
            std::fs::write(&path, &html).unwrap();
            // And the PDF beside it, where a Japanese font is installed.
            if let Ok(font) = crate::pdf::font_file(None) {
                let pdf = crate::pdf::document(
                    &r,
                    &DisplayZone::default(),
                    Lang::Ja,
                    &std::fs::read(font).unwrap(),
                )
                .unwrap();
                std::fs::write(std::path::Path::new(&path).with_extension("pdf"), pdf).unwrap();
            }
        }
    }
}
