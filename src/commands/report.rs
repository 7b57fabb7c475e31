//! `sekisho report monthly`: the monthly report for the security committee (issue #18), as
//! the standalone HTML or PDF file the console offers, or its numbers as JSON.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use sekisho_console::Lang;
use sekisho_domain::report::{Month, monthly};

#[derive(Subcommand, Debug)]
pub enum ReportCommand {
    /// Write the report of one month: sessions, hours, emergency uses, refusals, reviews,
    /// files, and what lapses or went stale.
    Monthly(MonthlyArgs),
}

#[derive(Args, Debug)]
pub struct MonthlyArgs {
    /// The month, YYYY-MM in the hospital's zone (default: last month).
    #[arg(long)]
    month: Option<String>,
    /// Only this site's targets, the contracts for them and the vendors maintaining them
    /// (default: the whole hospital group).
    #[arg(long)]
    site: Option<String>,
    /// `ja` or `en`.
    #[arg(long, default_value = "ja")]
    lang: String,
    /// `html` (one file, its charts inline) or `pdf` (the Japanese font embedded).
    #[arg(long, default_value = "html")]
    format: String,
    /// Where to write the file (default: sekisho-report-MONTH-LANG.html or .pdf here).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Print the numbers as JSON instead of writing the HTML file.
    #[arg(long)]
    json: bool,
}

pub async fn run(cmd: ReportCommand, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let ReportCommand::Monthly(a) = cmd;
    let lang = Lang::parse(&a.lang).with_context(|| format!("--lang {}: use ja or en", a.lang))?;
    let pdf = match a.format.as_str() {
        "html" => false,
        "pdf" => true,
        other => anyhow::bail!("--format {other}: use html or pdf"),
    };
    let config = super::load_config(config_path)?;
    let zone = config.display_zone();
    let month = match &a.month {
        Some(m) => Month::parse(m).map_err(|e| anyhow::anyhow!("--month: {e}"))?,
        None => Month::of(jiff::Timestamp::now(), zone.tz()).previous(),
    };
    let settings = sekisho_store::report::ReportSettings {
        policy: config.domain_policy(),
        zone: zone.clone(),
        review_deadline: config.review_policy().deadline,
        unused_after: jiff::SignedDuration::from_hours(
            24 * i64::from(config.notifications.unused_account_days),
        ),
    };
    let store = super::open_store(&config).await?;
    let inputs = match &a.site {
        Some(site) if !store.site_exists(site).await? => {
            store.close().await;
            anyhow::bail!("--site {site}: no target belongs to this site");
        }
        site => {
            store
                .monthly_inputs(month, &settings, site.as_deref())
                .await
        }
    };
    store.close().await;
    let report = monthly(&inputs?, zone.tz());
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let out = a.out.unwrap_or_else(|| {
        PathBuf::from(sekisho_console::report::file_name(
            &report,
            lang,
            if pdf { "pdf" } else { "html" },
        ))
    });
    let bytes = if pdf {
        let font = sekisho_console::pdf::font_file(config.report_font.as_deref())
            .map_err(|e| anyhow::anyhow!(e))?;
        let data = std::fs::read(&font)
            .with_context(|| format!("cannot read the font {}", font.display()))?;
        sekisho_console::pdf::document(&report, &zone, lang, &data)
            .map_err(|e| anyhow::anyhow!(e))?
    } else {
        sekisho_console::report::document(&report, &zone, lang).into_bytes()
    };
    std::fs::write(&out, bytes).with_context(|| format!("cannot write {}", out.display()))?;
    let of = a.site.map(|s| format!(" of site {s}")).unwrap_or_default();
    println!(
        "monthly report {month}{of}: {} sessions, {:.2} hours{}; written to {}",
        report.sessions,
        report.hours,
        if report.empty { " (no activity)" } else { "" },
        out.display()
    );
    Ok(ExitCode::SUCCESS)
}
