//! The gateway nodes sharing this database (several nodes acting as one Sekisho).

use axum::extract::State;
use jiff::Timestamp;
use sekisho_domain::node::NodeState;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiResult, Json};
use super::state::ApiState;

/// A gateway node as the database knows it.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct NodeView {
    pub id: String,
    /// The node's name for people (configured, or its machine's name).
    pub name: String,
    pub version: String,
    /// `up`, `late` (silent for more than a third of `[nodes] down_after_seconds`),
    /// `stopped` (on purpose) or `down` (another node took over its sessions).
    #[schema(value_type = String)]
    pub state: NodeState,
    #[schema(value_type = String, format = DateTime)]
    pub started_at: Timestamp,
    #[schema(value_type = String, format = DateTime)]
    pub last_heartbeat_at: Timestamp,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub stopped_at: Option<Timestamp>,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub down_at: Option<Timestamp>,
    /// Sessions this node carries now.
    pub live_sessions: u64,
    /// The ids of the at-rest keys the node reported holding, the sealing one first (two
    /// only while `sekisho node rotate-at-rest-key` replaces the group's key).
    pub at_rest_keys: Vec<String>,
}

/// The gateway nodes using this database, first started first.
#[utoipa::path(get, path = "/api/v1/nodes", tag = "system",
    responses((status = 200, body = Vec<NodeView>)))]
pub async fn list_nodes(State(state): State<ApiState>) -> ApiResult<Json<Vec<NodeView>>> {
    let now = Timestamp::now();
    let nodes = state.store.nodes().await?;
    Ok(Json(
        nodes
            .into_iter()
            .map(|n| NodeView {
                state: n.state(now, state.settings.node_down_after),
                id: n.id,
                name: n.name,
                version: n.version,
                started_at: n.started_at,
                last_heartbeat_at: n.heartbeat_at,
                stopped_at: n.stopped_at,
                down_at: n.down_at,
                live_sessions: n.live_sessions,
                at_rest_keys: n.at_rest_kids,
            })
            .collect(),
    ))
}
