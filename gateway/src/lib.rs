//! The Sekisho gateway: the process's keys and database ([`prepare`]), then its listeners
//! ([`Prepared::start`]): HTTPS for the API and console (the router is given by the binary;
//! the gateway never depends on the API crate), SSH and QUIC for vendors.
//!
//! Every transport admits and ends sessions through [`session`]: the same decision, audit,
//! recording and supervision whichever way the vendor came in. [`ssh`] and [`quic`] only speak
//! their protocol and implement [`session::Link`].

pub mod bootstrap;
pub mod https;
pub mod keys;
pub mod quic;
pub mod retention;
pub mod serve;
pub mod session;
pub mod ssh;
mod sweeps;

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
