//! This node among others: the data directory lock (one process per data directory and per
//! SQLite database), the heartbeat, and taking over from nodes that went silent.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use sekisho_config::Config;
use sekisho_recorder::{Library, RecordingKey};
use sekisho_store::Store;
use sekisho_store::events::{Events, GatewayEvent};
use sekisho_store::nodes::{Heartbeat, NodeInfo};
use tokio_util::sync::CancellationToken;

use crate::error::{GatewayError, Result};

/// Held for the life of the process: the data directory (and a SQLite database kept
/// elsewhere) belong to this process alone.
#[derive(Debug)]
pub struct DataLock {
    _files: Vec<File>,
}

/// Takes the data directory's lock (`DATA_DIR/sekisho.lock`) and, for SQLite, the database
/// file's (`FILE.lock`). A second process on either is refused with the reason: two nodes
/// writing one SQLite file, or sharing one node's identity, would corrupt what they share.
pub fn lock(config: &Config) -> Result<DataLock> {
    let mut paths = vec![config.data_dir.join("sekisho.lock")];
    if let Some(db) = sekisho_store::sqlite_file(&config.database_url()) {
        let mut name = db.into_os_string();
        name.push(".lock");
        paths.push(PathBuf::from(name));
    }
    let mut files = Vec::new();
    for path in paths {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|source| GatewayError::DataDir {
                path: path.display().to_string(),
                source,
            })?;
        match file.try_lock() {
            Ok(()) => files.push(file),
            Err(std::fs::TryLockError::WouldBlock) => return Err(GatewayError::Locked(path)),
            Err(std::fs::TryLockError::Error(source)) => {
                return Err(GatewayError::DataDir {
                    path: path.display().to_string(),
                    source,
                });
            }
        }
    }
    Ok(DataLock { _files: files })
}

/// What this node tells the others: its id, its name (the configured one, or the machine's)
/// and its version.
pub fn info(config: &Config, id: &str) -> NodeInfo {
    let name = config
        .nodes
        .name
        .clone()
        .or_else(crate::keys::machine_name)
        .unwrap_or_else(|| "unnamed".into());
    NodeInfo {
        id: id.to_owned(),
        name,
        version: env!("CARGO_PKG_VERSION").to_owned(),
    }
}

/// Seals, on a blocking thread, the open recordings of the sessions `ours` accepts as
/// aborted with `reason`; logs how many. Used at start-up (this node's recordings left open)
/// and when taking over from a silent node (its recordings).
pub async fn seal_open(
    library: Library,
    key: Arc<RecordingKey>,
    ours: impl Fn(&str) -> bool + Send + 'static,
    reason: String,
) -> Result<usize> {
    let sealed = tokio::task::spawn_blocking(move || library.seal_abandoned(&key, ours, &reason))
        .await
        .map_err(|e| GatewayError::Serve(std::io::Error::other(e)))??;
    if !sealed.is_empty() {
        tracing::warn!(count = sealed.len(), "sealed recordings left open");
    }
    Ok(sealed.len())
}

/// What the heartbeat loop needs.
pub struct Heartbeats {
    pub store: Store,
    pub info: NodeInfo,
    pub every: Duration,
    pub down_after: Duration,
    pub library: Library,
    pub key: Arc<RecordingKey>,
    /// The at-rest key ring and the directory it is kept in (`keys`).
    pub at_rest: Arc<sekisho_store::crypto::AtRestKey>,
    pub keys_dir: PathBuf,
    pub events: Events,
}

impl Heartbeats {
    /// Until `stop`: says this node is alive, and takes over from nodes silent for longer than
    /// `down_after` (their sessions end as aborted, their recordings are sealed, and every
    /// node re-checks at once, in case the silent one is in fact alive and cut off).
    pub async fn run(self, stop: CancellationToken) {
        let mut failing = false;
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(self.every) => {}
            }
            // A rotation of the at-rest key moves on only when every live node follows it: the
            // ring is brought in line first, and the heartbeat reports it.
            if let Err(e) =
                crate::at_rest::sync(&self.store, &self.at_rest, Some(&self.keys_dir)).await
            {
                tracing::error!(error = %e, "cannot bring this node's at-rest keys in line with the group's");
            }
            match self
                .store
                .heartbeat(&self.info, false, &self.at_rest.kids())
                .await
            {
                Ok(Heartbeat::Alive) => failing = false,
                Ok(Heartbeat::WasMarkedDown) => {
                    failing = false;
                    tracing::error!(node = %self.info.id, "another node marked this one down and ended its sessions; they end here too");
                    self.events.deliver(GatewayEvent::Recheck);
                }
                Err(e) => {
                    if !failing {
                        tracing::error!(error = %e, "cannot write this node's heartbeat");
                    }
                    failing = true;
                    continue;
                }
            }
            match self
                .store
                .take_over_silent_nodes(&self.info.id, self.down_after)
                .await
            {
                Ok(taken) => {
                    for (node, sessions) in taken {
                        tracing::warn!(node = %node.id, name = %node.name, last_heartbeat = %node.heartbeat_at, sessions = sessions.len(), "a gateway node stopped answering; its sessions were ended as aborted");
                        let ids: HashSet<String> =
                            sessions.iter().map(ToString::to_string).collect();
                        let reason = format!(
                            "gateway node {} stopped answering while the session was open",
                            node.name
                        );
                        let ours = move |s: &str| ids.contains(s);
                        if let Err(e) =
                            seal_open(self.library.clone(), self.key.clone(), ours, reason).await
                        {
                            tracing::error!(error = %e, "cannot seal the recordings of a node that went silent");
                        }
                        if let Err(e) = self.store.notify(&GatewayEvent::Recheck).await {
                            tracing::warn!(error = %e, "cannot ask the other nodes to re-check");
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot check the other nodes' heartbeats"),
            }
        }
    }
}
