//! `sekisho node export|join|list|rotate-token-key|rotate-at-rest-key`: several gateway nodes acting as one (README: Several
//! nodes).

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use sekisho_domain::secret::Secret;
use sekisho_gateway::group;
use sekisho_gateway::keys::GatewayKeys;

#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// On an existing node: write the group's keys to FILE (0600), for a new node to join
    /// with, sealed under a passphrase asked for twice (at least 12 characters). Copy it to
    /// the new node, give the passphrase there by another way, delete the file after.
    Export {
        file: PathBuf,
        /// Read the passphrase from the first line of standard input (scripts).
        #[arg(long, conflicts_with = "no_passphrase")]
        passphrase_stdin: bool,
        /// Write the keys unencrypted: the file is then exactly as secret as the keys
        /// directory.
        #[arg(long)]
        no_passphrase: bool,
    },
    /// On a new node, before its first start: take the group's keys from FILE into this
    /// node's data directory (asking for the export's passphrase). A data directory with keys
    /// of its own is refused.
    Join {
        file: PathBuf,
        /// Read the passphrase from the first line of standard input (scripts).
        #[arg(long)]
        passphrase_stdin: bool,
    },
    /// The nodes using the database: version, last heartbeat, state, live sessions.
    List,
    /// Make a new token-signing key for this node (the old file is kept, renamed). A node
    /// serving from this data directory takes it within a heartbeat (no restart): it
    /// publishes the new key, which every node accepts at once, and the old one keeps working
    /// until the tokens it signed expire.
    RotateTokenKey,
    /// Replace the group's at-rest key (it seals target credentials and second-factor
    /// secrets) while the nodes serve: a new key is handed to every live node through the
    /// database, seals once all hold it, every sealed value is sealed again under it, and the
    /// old key is retired and forgotten. Each step is audited; run it again to finish a
    /// rotation that was interrupted.
    RotateAtRestKey {
        /// How long to wait, at each step, for every live node (seconds).
        #[arg(long, default_value_t = 120)]
        wait: u64,
    },
}

pub async fn run(cmd: NodeCommand, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path)?;
    match cmd {
        NodeCommand::Export {
            file,
            passphrase_stdin,
            no_passphrase,
        } => {
            if !sekisho_gateway::serve::is_initialised(&config.data_dir) {
                bail!(
                    "{} holds no keys yet: export from a node that has started at least once",
                    config.data_dir.display()
                );
            }
            let (keys, _) = GatewayKeys::load_or_create(&config.data_dir.join("keys"))?;
            let passphrase = if no_passphrase {
                None
            } else {
                Some(passphrase(passphrase_stdin, true)?)
            };
            let fingerprint = group::export(&keys, &file, passphrase.as_ref())?;
            println!(
                "wrote the group's keys to {} (group keys {fingerprint}{})",
                file.display(),
                if no_passphrase {
                    "; UNENCRYPTED: as secret as the keys directory"
                } else {
                    "; sealed under the passphrase"
                }
            );
            println!(
                "copy it to the new node, run `sekisho node join {}` there, then delete it",
                file.display()
            );
        }
        NodeCommand::Join {
            file,
            passphrase_stdin,
        } => {
            let sealed = group::is_encrypted(&file)
                .with_context(|| format!("cannot join with {}", file.display()))?;
            let passphrase = if sealed {
                Some(passphrase(passphrase_stdin, false)?)
            } else {
                None
            };
            let fingerprint = group::join(&file, &config.data_dir, passphrase.as_ref())
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
        NodeCommand::RotateAtRestKey { wait } => {
            super::rotate::rotate_at_rest_key(&config, std::time::Duration::from_secs(wait))
                .await?;
        }
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
/// `jwt-signing.KID.retired.pem`) and audits it; a node serving from this data directory
/// takes the new key within a heartbeat, a stopped one at its next start.
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
    let serving = matches!(
        sekisho_gateway::nodes::lock(config),
        Err(sekisho_gateway::GatewayError::Locked(_))
    );
    if serving {
        println!(
            "the node serving from {} signs with it within {} s; tokens signed with {} stay valid until they expire",
            config.data_dir.display(),
            config.nodes.heartbeat_seconds,
            before.jwt_kid
        );
    } else {
        println!(
            "the node signs with it from its next start; tokens signed with {} stay valid until they expire",
            before.jwt_kid
        );
    }
    Ok(())
}

/// The export's passphrase: the first line of standard input, or asked on the terminal
/// (twice when it is chosen now).
fn passphrase(from_stdin: bool, choose: bool) -> anyhow::Result<Secret<String>> {
    let long_enough = |p: &str| {
        let min = sekisho_store::crypto::MIN_PASSPHRASE_CHARS;
        if p.chars().count() < min {
            bail!("the passphrase is too short: at least {min} characters");
        }
        Ok(())
    };
    super::read_secret(
        "passphrase",
        "Passphrase of the key export: ",
        "--passphrase-stdin",
        from_stdin,
        choose.then_some(&long_enough as &super::SecretCheck),
    )
}
