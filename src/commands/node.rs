//! `sekisho node export|join|list`: several gateway nodes acting as one (README: Several
//! nodes).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use sekisho_gateway::group;
use sekisho_gateway::keys::GatewayKeys;

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// On an existing node: write the group's keys to FILE (0600), for a new node to join
    /// with. The file is as secret as the keys directory: copy it over SSH, delete it after.
    Export { file: PathBuf },
    /// On a new node, before its first start: take the group's keys from FILE into this
    /// node's data directory. A data directory with keys of its own is refused.
    Join { file: PathBuf },
    /// The nodes using the database: version, last heartbeat, state, live sessions.
    List,
}

pub async fn run(cmd: NodeCommand, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path)?;
    match cmd {
        NodeCommand::Export { file } => {
            if !sekisho_gateway::serve::is_initialised(&config.data_dir) {
                bail!(
                    "{} holds no keys yet: export from a node that has started at least once",
                    config.data_dir.display()
                );
            }
            let (keys, _) = GatewayKeys::load_or_create(&config.data_dir.join("keys"))?;
            let fingerprint = group::export(&keys, &file)?;
            println!(
                "wrote the group's keys to {} (group keys {fingerprint})",
                file.display()
            );
            println!(
                "copy it to the new node, run `sekisho node join {}` there, then delete it",
                file.display()
            );
        }
        NodeCommand::Join { file } => {
            let fingerprint = group::join(&file, &config.data_dir)
                .with_context(|| format!("cannot join with {}", file.display()))?;
            println!(
                "{} now holds the group's keys (group keys {fingerprint})",
                config.data_dir.display()
            );
            println!(
                "start it with the group's PostgreSQL database and recordings directory; delete {}",
                file.display()
            );
        }
        NodeCommand::List => {
            let store = super::open_store(&config).await?;
            let nodes = store.nodes().await?;
            store.close().await;
            let now = jiff::Timestamp::now();
            println!(
                "{:<36}  {:<16}  {:<8}  {:<8}  {:>5}  last heartbeat",
                "node", "name", "version", "state", "live"
            );
            for n in nodes {
                let state = sekisho_domain::node::NodeState::of(
                    n.stopped_at.is_some(),
                    n.down_at.is_some(),
                    now.duration_since(n.heartbeat_at),
                    std::time::Duration::from_secs(u64::from(config.nodes.down_after_seconds)),
                );
                println!(
                    "{:<36}  {:<16}  {:<8}  {:<8}  {:>5}  {}",
                    n.id,
                    n.name,
                    n.version,
                    state.as_str(),
                    n.live_sessions,
                    n.heartbeat_at
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
