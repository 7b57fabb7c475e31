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

/// What the checkpoints said.
struct Anchored {
    dir: std::path::PathBuf,
    matched: usize,
    problems: Vec<String>,
}

/// Checks every signed checkpoint on the recordings share against the log: its signature,
/// and that the row it names still has the hash it recorded (a rewritten tail does not).
async fn checkpoints(
    config: &sekisho_config::Config,
    store: &sekisho_store::Store,
) -> anyhow::Result<Anchored> {
    let recordings = config.recordings_dir();
    let dir = recordings.join(sekisho_recorder::checkpoint::DIR);
    let all = sekisho_recorder::checkpoint::read_all(&recordings)?;
    let mut out = Anchored {
        dir,
        matched: 0,
        problems: vec![],
    };
    if all.is_empty() {
        return Ok(out);
    }
    let key_file = config
        .data_dir
        .join("keys")
        .join(sekisho_gateway::keys::RECORDING_PUBLIC_KEY);
    let public = std::fs::read_to_string(&key_file).map_err(|e| {
        anyhow::anyhow!(
            "cannot read the recording public key {} to check the checkpoints: {e}",
            key_file.display()
        )
    })?;
    for (place, c) in all {
        let c = match c {
            Ok(c) => c,
            Err(e) => {
                out.problems
                    .push(format!("{place} is not a checkpoint ({e})"));
                continue;
            }
        };
        if let Err(e) = c.verify(&public) {
            out.problems.push(format!(
                "{place}: the checkpoint's signature does not verify ({e})"
            ));
            continue;
        }
        match store.audit_hash_at(c.seq).await? {
            Some(h) if h == c.hash => out.matched += 1,
            Some(_) => out.problems.push(format!(
                "row {} differs from the checkpoint node {} signed at {} ({place}): the log was rewritten from there on",
                c.seq, c.node, c.at
            )),
            None => out.problems.push(format!(
                "row {}, checkpointed by node {} at {} ({place}), is gone: rows were removed",
                c.seq, c.node, c.at
            )),
        }
    }
    Ok(out)
}
