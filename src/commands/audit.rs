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
    store.close().await;
    match &report.first_break {
        None => {
            println!(
                "audit log intact: {} rows, chain verified up to row {}",
                report.rows, report.last_seq
            );
            Ok(ExitCode::SUCCESS)
        }
        Some(b) => {
            println!("audit log BROKEN: {b}");
            Ok(ExitCode::FAILURE)
        }
    }
}
