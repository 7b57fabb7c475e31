//! This node's side of the group's at-rest keys ([`sekisho_store::at_rest`]): at start and
//! with every heartbeat it takes a new key handed over through the database, seals with the
//! key the database names active, forgets retired keys and writes its ring to
//! `keys/at-rest.key` when it changed; the heartbeat reports the keys it holds.
//!
//! A node that does not hold the group's active key and cannot take it (it was away while a
//! rotation finished) does not start: it would fail every credential it opens.

use std::path::Path;

use sekisho_store::Store;
use sekisho_store::at_rest::AtRestKeyState;
use sekisho_store::crypto::AtRestKey;

use crate::keys;

/// Why this node's at-rest keys could not be brought in line with the group's.
#[derive(Debug, thiserror::Error)]
pub enum AtRestError {
    #[error(transparent)]
    Store(#[from] sekisho_store::StoreError),
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error(
        "this node does not hold the group's at-rest key {group} (it holds {held}), and the database no longer hands it over (the key was replaced while this node was away): \
         on a node of the group run `sekisho node export FILE`, then, with this node stopped, move its data directory's keys away and run `sekisho node join FILE`"
    )]
    NotInGroup { group: String, held: String },
    #[error("cannot open the at-rest key {kid} handed over through the database: {detail}")]
    Unwrap { kid: String, detail: String },
}

/// What a sync changed in the ring.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Synced {
    pub added: Vec<String>,
    pub current: Option<String>,
    pub removed: Vec<String>,
}

impl Synced {
    pub fn changed(&self) -> bool {
        !self.added.is_empty() || self.current.is_some() || !self.removed.is_empty()
    }
}

/// Brings `ring` in line with the database; writes it to `dir` when it changed (when given:
/// only the process holding the data directory's lock). The database naming no key yet
/// changes nothing (the first start claims it). The node reports what it holds with its
/// heartbeat.
pub async fn sync(
    store: &Store,
    ring: &AtRestKey,
    dir: Option<&Path>,
) -> Result<Synced, AtRestError> {
    let rows = store.at_rest_keys().await?;
    let mut synced = Synced::default();
    for row in &rows {
        let wanted = matches!(
            row.state,
            AtRestKeyState::Staged | AtRestKeyState::Active | AtRestKeyState::Previous
        );
        if !wanted || ring.holds(&row.kid) {
            continue;
        }
        if let Some(wrapped) = &row.wrapped {
            ring.unwrap_into(wrapped, &row.kid)
                .map_err(|e| AtRestError::Unwrap {
                    kid: row.kid.clone(),
                    detail: e.to_string(),
                })?;
            synced.added.push(row.kid.clone());
        }
    }
    let active = rows.iter().find(|r| r.state == AtRestKeyState::Active);
    if let Some(active) = active {
        if !ring.holds(&active.kid) {
            return Err(AtRestError::NotInGroup {
                group: active.kid.clone(),
                held: ring.kids().join(", "),
            });
        }
        if ring.current_kid() != active.kid && ring.make_current(&active.kid) {
            synced.current = Some(active.kid.clone());
        }
    }
    for row in rows.iter().filter(|r| r.state == AtRestKeyState::Retired) {
        // Never the sealing key (the database names another active one by then).
        if ring.remove(&row.kid).unwrap_or(false) {
            synced.removed.push(row.kid.clone());
        }
    }
    if synced.changed()
        && let Some(dir) = dir
    {
        keys::save_at_rest_ring(dir, ring)?;
        tracing::info!(added = ?synced.added, current = ?synced.current, removed = ?synced.removed, kids = ?ring.kids(), "at-rest key ring changed");
    }
    Ok(synced)
}

/// At start: the first node names its key the group's; then [`sync`].
pub async fn start(
    store: &Store,
    node: &str,
    ring: &AtRestKey,
    dir: &Path,
) -> Result<Synced, AtRestError> {
    store.claim_at_rest_key(node, &ring.current_kid()).await?;
    sync(store, ring, Some(dir)).await
}
