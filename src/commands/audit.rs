//! `sekisho audit verify`

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Walk the hash chain of the audit log and name the first row altered, deleted or inserted.
    Verify,
}

pub async fn run(cmd: AuditCommand, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let AuditCommand::Verify = cmd;
    let config = super::load_config(config_path)?;
    let store = super::open_store(&config).await?;
    let tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let report = store
        .verify_audit_chain(|rows| {
            if tty {
                eprint!("\rchecked {rows} rows…");
                let _ = std::io::stderr().flush();
            }
        })
        .await?;
    if tty {
        eprintln!();
    }
    let anchored = checkpoints(&config, &store).await;
    store.close().await;
    let anchored = anchored?;
    match &report.first_break {
        Some(b) => {
            println!("audit log BROKEN: {b}");
            return Ok(ExitCode::FAILURE);
        }
        None => println!(
            "audit log intact: {} rows, chain verified up to row {}",
            report.rows, report.last_seq
        ),
    }
    if anchored.problems.is_empty() && anchored.matched == 0 {
        println!(
            "checkpoints: none found in {} (each gateway node writes them as it runs)",
            anchored.dir.display()
        );
        Ok(ExitCode::SUCCESS)
    } else if anchored.problems.is_empty() {
        println!(
            "checkpoints: {} signed checkpoints match the log (in {})",
            anchored.matched,
            anchored.dir.display()
        );
        Ok(ExitCode::SUCCESS)
    } else {
        for p in &anchored.problems {
            println!("audit log BROKEN: {p}");
        }
        Ok(ExitCode::FAILURE)
    }
}

/// The checkpoints on the recordings share against the log (the key read from the data
/// directory; without it, checkpoints that exist are reported as unchecked).
async fn checkpoints(
    config: &sekisho_config::Config,
    store: &sekisho_store::Store,
) -> anyhow::Result<sekisho_approval_api::anchor::Anchored> {
    let key_file = config
        .data_dir
        .join("keys")
        .join(sekisho_gateway::keys::RECORDING_PUBLIC_KEY);
    let public = std::fs::read_to_string(&key_file).ok();
    Ok(
        sekisho_approval_api::anchor::check(store, &config.recordings_dir(), public.as_deref())
            .await?,
    )
}
