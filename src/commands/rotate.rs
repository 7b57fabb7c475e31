//! `sekisho node rotate-at-rest-key`: replaces the group's at-rest key while the nodes serve
//! ([`sekisho_store::at_rest`] has the steps). Run on any node of the group; it waits, with
//! progress, for every live node at each step, and an interrupted run is finished by running
//! it again.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::bail;
use sekisho_domain::audit::Actor;
use sekisho_domain::node::NodeState;
use sekisho_gateway::GatewayError;
use sekisho_gateway::keys::{self, GatewayKeys};
use sekisho_store::Store;
use sekisho_store::at_rest::AtRestKeyState;
use sekisho_store::crypto::AtRestKey;

/// What a live node must show before the rotation goes on.
#[derive(Clone, Copy)]
enum Wait<'a> {
    Holds(&'a str),
    SealsWith(&'a str),
    Forgot(&'a str),
}

impl Wait<'_> {
    fn met(self, kids: &[String]) -> bool {
        match self {
            Wait::Holds(kid) => kids.iter().any(|k| k == kid),
            Wait::SealsWith(kid) => kids.first().is_some_and(|k| k == kid),
            Wait::Forgot(kid) => !kids.iter().any(|k| k == kid),
        }
    }

    fn describe(self) -> String {
        match self {
            Wait::Holds(kid) => format!("to take the new key {kid}"),
            Wait::SealsWith(kid) => format!("to seal with {kid}"),
            Wait::Forgot(kid) => format!("to forget {kid}"),
        }
    }
}

pub async fn rotate_at_rest_key(
    config: &sekisho_config::Config,
    wait: Duration,
) -> anyhow::Result<()> {
    if !sekisho_gateway::serve::is_initialised(&config.data_dir) {
        bail!(
            "{} holds no keys yet: start the node once first",
            config.data_dir.display()
        );
    }
    let dir = config.data_dir.join("keys");
    // With no node serving from this data directory, this command keeps its key file (and
    // holds the lock meanwhile, so that none starts half-way); otherwise that node does.
    let lock = match sekisho_gateway::nodes::lock(config) {
        Ok(lock) => Some(lock),
        Err(GatewayError::Locked(_)) => None,
        Err(e) => return Err(e.into()),
    };
    let file_dir = lock.as_ref().map(|_| dir.as_path());
    let (keys, _) = GatewayKeys::load_or_create(&dir)?;
    let ring = keys.at_rest.clone();
    let this_node = std::fs::read_to_string(config.data_dir.join("node-id"))
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    let store = super::open_store(config).await?;
    let actor = Actor::Cli {
        os_user: std::env::var("USER").unwrap_or_else(|_| "unknown".into()),
    };
    let down_after = Duration::from_secs(u64::from(config.nodes.down_after_seconds));
    let waiter = Waiter {
        store: &store,
        // This data directory's node is not running when this command holds its lock.
        skip: lock.as_ref().map(|_| this_node.clone()),
        down_after,
        wait,
    };

    let rows = store.at_rest_keys().await?;
    if rows.is_empty() {
        bail!("the database names no at-rest key yet: start a node of this version once first");
    }
    sekisho_gateway::at_rest::sync(&store, &ring, file_dir).await?;
    let find = |state| {
        rows.iter()
            .find(|r| r.state == state)
            .map(|r| r.kid.clone())
    };
    // The key being replaced: `previous` once the new one seals, `active` before.
    let old = find(AtRestKeyState::Previous)
        .or_else(|| find(AtRestKeyState::Active))
        .unwrap_or_default();
    let (new, to_activate) = match (find(AtRestKeyState::Staged), find(AtRestKeyState::Previous)) {
        (Some(staged), _) => {
            println!("resuming the rotation to at-rest key {staged}");
            (staged, true)
        }
        (None, Some(_)) => {
            let active = find(AtRestKeyState::Active).unwrap_or_default();
            println!("resuming the rotation to at-rest key {active}");
            (active, false)
        }
        (None, None) => {
            let bytes = AtRestKey::generate()?;
            let kid = ring.install(bytes.expose())?;
            if let Some(dir) = file_dir {
                keys::save_at_rest_ring(dir, &ring)?;
            }
            let wrapped = ring.wrap(&kid)?;
            if let Err(e) = store
                .stage_at_rest_key(&kid, &wrapped, &old, actor.clone())
                .await
            {
                // Never handed over: the key file does not keep it.
                ring.remove(&kid)?;
                if let Some(dir) = file_dir {
                    keys::save_at_rest_ring(dir, &ring)?;
                }
                return Err(e.into());
            }
            println!("staged a new at-rest key {kid} (replacing {old}); handing it to the nodes");
            (kid, true)
        }
    };
    if to_activate {
        let holders = waiter.until(Wait::Holds(&new)).await?;
        store
            .activate_at_rest_key(&new, holders, actor.clone())
            .await?;
        println!("every live node holds {new}: it seals from now on");
    }
    ring.make_current(&new);
    if let Some(dir) = file_dir {
        keys::save_at_rest_ring(dir, &ring)?;
    }
    waiter.until(Wait::SealsWith(&new)).await?;
    let resealed = store.reseal_at_rest(&ring, actor.clone()).await?;
    println!(
        "sealed again under {new}: {} target credentials, {} second-factor secrets",
        resealed.credentials, resealed.second_factors
    );
    let retired = store.retire_previous_at_rest_key(actor).await?;
    ring.remove(&old)?;
    if let Some(dir) = file_dir {
        keys::save_at_rest_ring(dir, &ring)?;
    }
    if let Some(old) = &retired {
        println!("retired the previous at-rest key {old}; waiting for the nodes to forget it");
        if let Err(e) = waiter.until(Wait::Forgot(old)).await {
            // Nothing needs it any more; a node that still holds it forgets it at its next
            // heartbeat or start.
            eprintln!("warning: {e:#}");
        }
    }
    store.close().await;
    println!("the group's at-rest key is {new}");
    Ok(())
}

struct Waiter<'a> {
    store: &'a Store,
    skip: Option<String>,
    down_after: Duration,
    wait: Duration,
}

impl Waiter<'_> {
    /// Waits until every live node (up, or late but not yet marked down) meets `what`;
    /// prints who it waits for every few seconds. Returns the ids of the live nodes.
    async fn until(&self, what: Wait<'_>) -> anyhow::Result<Vec<String>> {
        let started = Instant::now();
        let mut said = Instant::now();
        loop {
            let now = jiff::Timestamp::now();
            let nodes = self.store.nodes().await?;
            let live: Vec<_> = nodes
                .iter()
                .filter(|n| Some(&n.id) != self.skip.as_ref())
                .filter(|n| {
                    matches!(
                        n.state(now, self.down_after),
                        NodeState::Up | NodeState::Late
                    )
                })
                .collect();
            let behind: BTreeMap<&str, String> = live
                .iter()
                .filter(|n| !what.met(&n.at_rest_kids))
                .map(|n| {
                    (
                        n.name.as_str(),
                        format!(
                            "{} (holds {}; last heartbeat {}s ago)",
                            n.name,
                            if n.at_rest_kids.is_empty() {
                                "nothing reported".to_owned()
                            } else {
                                n.at_rest_kids.join(", ")
                            },
                            now.duration_since(n.heartbeat_at).as_secs()
                        ),
                    )
                })
                .collect();
            if behind.is_empty() {
                return Ok(live.iter().map(|n| n.id.clone()).collect());
            }
            let count = behind.len();
            let waiting = behind.into_values().collect::<Vec<_>>().join("; ");
            if started.elapsed() > self.wait {
                bail!(
                    "waited {}s for {count} node(s) {}: {waiting}. Nothing is lost: the rotation stays where it is and every node keeps working; \
                     run this command again when they are up (a node that is gone is marked down {}s after its last heartbeat and is then not waited for)",
                    self.wait.as_secs(),
                    what.describe(),
                    self.down_after.as_secs(),
                );
            }
            if said.elapsed() >= Duration::from_secs(2) {
                println!("waiting for {}: {waiting}", what.describe());
                said = Instant::now();
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
