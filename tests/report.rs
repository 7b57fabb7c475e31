//! Issue #18, the monthly report, through a real `sekisho serve`, `ssh` and `sshd`: the
//! numbers of the API, the console page (Japanese and English, charts as SVG) and
//! `sekisho report monthly` (HTML file and JSON) are the same, and they are what happened; a
//! month without activity says so.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use jiff::tz::TimeZone;
use serde_json::Value;
use support::gateway::{Pin, World};
use support::{stderr, stdout};

/// The number in `<td class="num" id="ID">N</td>`.
fn cell(html: &str, id: &str) -> String {
    let at = html
        .find(&format!("id=\"{id}\""))
        .unwrap_or_else(|| panic!("no #{id} in the report"));
    html[at..]
        .split_once('>')
        .unwrap()
        .1
        .split_once('<')
        .unwrap()
        .0
        .to_owned()
}

fn assert_same_numbers(html: &str, api: &Value) {
    assert_eq!(cell(html, "sessions"), api["sessions"].to_string());
    assert_eq!(
        cell(html, "hours"),
        format!("{:.2}", api["hours"].as_f64().unwrap())
    );
    let refusals: u64 = api["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    assert_eq!(cell(html, "refusals"), refusals.to_string());
    for (id, key) in [
        ("review-pending", "pending"),
        ("review-overdue", "overdue"),
        ("reviewed-in-time", "in_time"),
    ] {
        assert_eq!(cell(html, id), api["reviews"][key].to_string(), "{id}");
    }
    assert_eq!(
        cell(html, "downloads"),
        api["files"]["downloads"].to_string()
    );
}

/// Whether poppler's tools are here (in CI they must be: `.ci/run` installs poppler-utils).
fn pdf_tools() -> bool {
    let here = std::process::Command::new("pdftotext")
        .arg("-v")
        .output()
        .is_ok();
    if !here {
        assert!(
            std::env::var_os("CI").is_none(),
            "no pdftotext in CI (.ci/run installs poppler-utils)"
        );
        eprintln!("skipping the PDF part: no pdftotext (install poppler-utils)");
    }
    here
}

fn pdf_text(path: &std::path::Path) -> String {
    let out = std::process::Command::new("pdftotext")
        .arg(path)
        .arg("-")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    String::from_utf8(out.stdout).unwrap()
}

fn assert_same_pdf_numbers(text: &str, api: &Value, lang: &str) {
    let (sessions, hours, refusals) = match lang {
        "ja" => ("作業件数", "作業時間（時間）", "拒否"),
        _ => ("Sessions", "Hours", "Refusals"),
    };
    let total: u64 = api["refusals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["count"].as_u64().unwrap())
        .sum();
    for line in [
        format!("{sessions}: {}", api["sessions"]),
        format!("{hours}: {:.2}", api["hours"].as_f64().unwrap()),
        format!("{refusals}: {total}"),
    ] {
        assert!(
            text.lines().any(|l| l.trim() == line),
            "{line:?} not in the PDF:\n{text}"
        );
    }
}

#[tokio::test]
async fn the_monthly_report_shows_the_same_numbers_in_the_api_the_console_and_the_cli() {
    let Some(w) = World::new(Pin::Real).await else {
        return;
    };
    // What happens this month: two sessions, and a refusal (change was never approved).
    w.approved("reference").await;
    for _ in 0..2 {
        let out = w.ssh("alice+pacs", &["true"]).output().unwrap();
        assert!(out.status.success(), "{}", stderr(&out));
    }
    let out = w.ssh("alice+pacs+change", &["true"]).output().unwrap();
    assert!(!out.status.success());
    let month = jiff::Timestamp::now()
        .to_zoned_datetime(TimeZone::get("Asia/Tokyo").unwrap())
        .strftime("%Y-%m")
        .to_string();

    let (status, api) = w
        .http
        .get(
            &format!("/api/v1/reports/monthly?month={month}"),
            &w.approver,
        )
        .await;
    assert_eq!(status, 200, "{api}");
    assert_eq!(api["empty"], false);
    assert_eq!(api["sessions"], 2);
    assert_eq!(api["by_vendor"][0]["key"], "Acme Medical");
    assert_eq!(api["by_vendor"][0]["sessions"], 2);
    assert_eq!(api["by_level"][0]["key"], "reference");
    let per_day: u64 = api["per_day"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["count"].as_u64().unwrap())
        .sum();
    assert_eq!(per_day, 2);
    assert!(
        api["refusals"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["key"] == "no_request" || c["key"] == "pending_approval"),
        "{api}"
    );
    assert_eq!(api["reviews"]["pending"], 2);

    // The console page, in Japanese, with the same numbers and its charts drawn.
    let (status, page) = w
        .http
        .console(
            &format!("/console/reports/monthly?month={month}"),
            &w.approver,
            Some("ja"),
        )
        .await;
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    assert_same_numbers(&page, &api);
    for wanted in [
        "月次報告",
        "保守業者別",
        "<svg",
        "保守業者別の作業件数",
        "日別の作業件数",
        "Acme Medical",
    ] {
        assert!(page.contains(wanted), "{wanted} missing from the page");
    }
    // The file to keep: standalone, English here.
    let (status, file) = w
        .http
        .console(
            &format!("/console/reports/monthly?month={month}&format=html"),
            &w.approver,
            Some("en"),
        )
        .await;
    assert_eq!(status, 200);
    let file = String::from_utf8(file).unwrap();
    assert!(
        file.starts_with("<!DOCTYPE html>") && file.contains("Monthly report"),
        "{file}"
    );
    assert_same_numbers(&file, &api);

    // The CLI: the same numbers as JSON and in its HTML file.
    let out = w
        .env
        .cli(&["report", "monthly", "--month", &month, "--json"], "");
    assert!(out.status.success(), "{}", stderr(&out));
    let cli: Value = serde_json::from_str(&stdout(&out)).unwrap();
    for key in [
        "sessions",
        "hours",
        "by_vendor",
        "by_target",
        "per_day",
        "refusals",
        "reviews",
        "files",
    ] {
        assert_eq!(cli[key], api[key], "{key}");
    }
    let html = w.env.dir.path().join("report.html");
    let out = w.env.cli(
        &[
            "report",
            "monthly",
            "--month",
            &month,
            "--out",
            html.to_str().unwrap(),
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("2 sessions"), "{}", stdout(&out));
    let html = std::fs::read_to_string(html).unwrap();
    assert!(html.contains("lang=\"ja\"") && html.contains("作業件数"));
    assert_same_numbers(&html, &api);

    // The PDF, from the CLI (Japanese) and the console (English): the same numbers read back
    // by pdftotext, the Japanese text with them, the font embedded.
    if pdf_tools() {
        let pdf = w.env.dir.path().join("report.pdf");
        let out = w.env.cli(
            &[
                "report",
                "monthly",
                "--month",
                &month,
                "--format",
                "pdf",
                "--out",
                pdf.to_str().unwrap(),
            ],
            "",
        );
        assert!(out.status.success(), "{}", stderr(&out));
        let text = pdf_text(&pdf);
        assert_same_pdf_numbers(&text, &api, "ja");
        assert!(text.contains(&format!("月次報告 {month}")), "{text}");
        assert!(
            text.contains("Acme Medical") && text.contains("保守業者別の作業件数"),
            "{text}"
        );
        let fonts = std::process::Command::new("pdffonts")
            .arg(&pdf)
            .output()
            .unwrap();
        let fonts = String::from_utf8_lossy(&fonts.stdout).to_string();
        assert!(
            fonts
                .lines()
                .skip(2)
                .any(|l| l.contains("CID TrueType")
                    && l.split_whitespace().rev().nth(4) == Some("yes")),
            "the font is not embedded: {fonts}"
        );
        let (status, bytes) = w
            .http
            .console(
                &format!("/console/reports/monthly?month={month}&format=pdf"),
                &w.approver,
                Some("en"),
            )
            .await;
        assert_eq!(status, 200);
        assert!(bytes.starts_with(b"%PDF-"));
        let file = w.env.dir.path().join("console.pdf");
        std::fs::write(&file, &bytes).unwrap();
        let text = pdf_text(&file);
        assert_same_pdf_numbers(&text, &api, "en");
        let empty = w.env.dir.path().join("empty.pdf");
        let out = w.env.cli(
            &[
                "report",
                "monthly",
                "--month",
                "2020-01",
                "--format",
                "pdf",
                "--lang",
                "en",
                "--out",
                empty.to_str().unwrap(),
            ],
            "",
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert!(pdf_text(&empty).contains("No activity this month"));
    }

    // One site's report (issue #15): pacs moved to site "east"; the console and the CLI give
    // east's, its site in the title; a site no target belongs to is named.
    let (status, body) = w
        .http
        .send(
            reqwest::Method::PATCH,
            &format!("/api/v1/targets/{}", w.target_id),
            Some(&w.admin),
            Some(serde_json::json!({"site": "east"})),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let (status, page) = w
        .http
        .console(
            &format!("/console/reports/monthly?month={month}&site=east"),
            &w.approver,
            Some("ja"),
        )
        .await;
    assert_eq!(status, 200);
    let page = String::from_utf8(page).unwrap();
    assert!(
        page.contains(&format!("月次報告 {month} — 拠点 east")),
        "{page}"
    );
    let out = w.env.cli(
        &[
            "report", "monthly", "--month", &month, "--site", "east", "--json",
        ],
        "",
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let east: Value = serde_json::from_str(&stdout(&out)).unwrap();
    assert_eq!(
        (east["site"].clone(), east["sessions"].clone()),
        (Value::from("east"), Value::from(2))
    );
    let out = w.env.cli(
        &["report", "monthly", "--month", &month, "--site", "west"],
        "",
    );
    assert!(
        !out.status.success()
            && stderr(&out).contains("--site west: no target belongs to this site"),
        "{}",
        stderr(&out)
    );

    // A month with no activity says so, everywhere.
    let (_, empty) = w
        .http
        .get("/api/v1/reports/monthly?month=2020-01", &w.approver)
        .await;
    assert_eq!(
        (empty["empty"].clone(), empty["sessions"].clone()),
        (Value::Bool(true), Value::from(0))
    );
    let (_, page) = w
        .http
        .console(
            "/console/reports/monthly?month=2020-01",
            &w.approver,
            Some("en"),
        )
        .await;
    assert!(
        String::from_utf8(page)
            .unwrap()
            .contains("No activity this month")
    );
    let out = w.env.cli(
        &[
            "report",
            "monthly",
            "--month",
            "2020-01",
            "--out",
            "/dev/null",
        ],
        "",
    );
    assert!(stdout(&out).contains("(no activity)"), "{}", stdout(&out));
    // Bad input is named; vendors get no report.
    let (status, body) = w
        .http
        .get("/api/v1/reports/monthly?month=2020-13", &w.approver)
        .await;
    assert_eq!(status, 400, "{body}");
    let out = w.env.cli(&["report", "monthly", "--month", "last"], "");
    assert!(
        !out.status.success() && stderr(&out).contains("--month: `last` is not a month"),
        "{}",
        stderr(&out)
    );
    let (status, _) = w.http.get("/api/v1/reports/monthly", &w.alice).await;
    assert_eq!(status, 403);
}
