//! Why the gateway could not start, or stopped.

use crate::https;
use crate::keys;

/// Why the gateway could not start or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error(transparent)]
    Keys(#[from] keys::KeyError),
    #[error(transparent)]
    Store(#[from] sekisho_store::StoreError),
    #[error("cannot create data directory {path}: {source}")]
    DataDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: std::net::SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot create the initial admin account: {0}")]
    Bootstrap(String),
    #[error(transparent)]
    Recording(#[from] sekisho_recorder::RecordingError),
    #[error("cannot use the HTTPS certificate: {0}")]
    Tls(#[from] https::TlsError),
    #[error(transparent)]
    Group(#[from] crate::group::GroupError),
    #[error(transparent)]
    AtRest(#[from] crate::at_rest::AtRestError),
    #[error(
        "{0} is locked by another running sekisho: a data directory and a SQLite database serve one node only; \
         a second node needs its own data directory and the group's PostgreSQL database (README: Several nodes)"
    )]
    Locked(std::path::PathBuf),
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

pub type Result<T, E = GatewayError> = std::result::Result<T, E>;
