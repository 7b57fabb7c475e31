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
    /// Make a new token-signing key for this node (the old file is kept, renamed). Restart
    /// the node afterwards, one node at a time: it publishes the new key, which every node
    /// accepts at once, and the old one keeps working until the tokens it signed expire.
    RotateTokenKey,
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
        NodeCommand::RotateTokenKey => rotate_token_key(&config).await?,
        NodeCommand::List => {
            let store = super::open_store(&config).await?;
            let nodes = store.nodes().await?;
            store.close().await;
            let now = jiff::Timestamp::now();
            let down_after =
                std::time::Duration::from_secs(u64::from(config.nodes.down_after_seconds));
            println!(
                "{:<36}  {:<16}  {:<8}  {:<8}  {:>5}  last heartbeat",
                "node", "name", "version", "state", "live"
            );
            for n in nodes {
                let state = n.state(now, down_after);
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

/// Replaces this node's token-signing key file (the old one kept as
/// `jwt-signing.KID.retired.pem`) and audits it; the running node goes on with the old key
/// until it is restarted.
async fn rotate_token_key(config: &sekisho_config::Config) -> anyhow::Result<()> {
    if !sekisho_gateway::serve::is_initialised(&config.data_dir) {
        bail!(
            "{} holds no keys yet: start the node once first",
            config.data_dir.display()
        );
    }
    let dir = config.data_dir.join("keys");
    let (before, _) = GatewayKeys::load_or_create(&dir)?;
    let old = dir.join(sekisho_gateway::keys::JWT_KEY);
    let kept = dir.join(format!("jwt-signing.{}.retired.pem", before.jwt_kid));
    std::fs::rename(&old, &kept)
        .with_context(|| format!("cannot move {} to {}", old.display(), kept.display()))?;
    let (after, _) = GatewayKeys::load_or_create(&dir)?;
    let node = std::fs::read_to_string(config.data_dir.join("node-id"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let store = super::open_store(config).await?;
    let os_user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    store
        .audit(sekisho_store::audit::NewAuditEvent {
            actor: sekisho_domain::audit::Actor::Cli { os_user },
            outcome: sekisho_domain::audit::Outcome::Success,
            vendor_id: None,
            source_addr: None,
            reason: None,
            event: sekisho_domain::audit::AuditEvent::TokenKeyRotated {
                node,
                previous_kid: before.jwt_kid.clone(),
                kid: after.jwt_kid.clone(),
            },
        })
        .await?;
    store.close().await;
    println!(
        "new token key {} (the previous one, {}, is kept in {})",
        after.jwt_kid,
        before.jwt_kid,
        kept.display()
    );
    println!(
        "restart this node now; tokens signed with {} stay valid until they expire",
        before.jwt_kid
    );
    Ok(())
}
