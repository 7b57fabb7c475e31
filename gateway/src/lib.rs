//! The Sekisho server process: it owns the gateway's keys, opens the database, and runs the
//! listeners (the HTTP API now; SSH and QUIC join in later issues) until told to stop.
//!
//! [`start`] is the one entry point; the `sekisho` binary and the end-to-end tests both call
//! it (the tests through the real binary). It takes its shutdown signal as an argument.

pub mod bootstrap;
pub mod client_api;
pub mod enroll;
pub mod https;
pub mod keys;
pub mod live;
pub mod quic;
pub mod retention;
pub mod serve;
pub mod ssh;
mod sweeps;
pub mod tunnel;

pub use serve::{Prepared, StartOptions, Started, prepare};

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
    #[error("server error: {0}")]
    Serve(std::io::Error),
}

pub type Result<T, E = GatewayError> = std::result::Result<T, E>;
