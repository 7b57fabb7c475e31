//! The Sekisho gateway: the process's keys and database ([`prepare`]), then its listeners
//! ([`Prepared::start`]): HTTPS for the API and console (the router is given by the binary;
//! the gateway never depends on the API crate), SSH and QUIC for vendors.
//!
//! Every transport admits and ends sessions through [`session`]: the same decision, audit,
//! recording and supervision whichever way the vendor came in. [`ssh`] and [`quic`] only speak
//! their protocol and implement [`session::Link`].

pub mod at_rest;
pub mod bootstrap;
pub mod checkpoints;
pub mod clock;
pub mod error;
pub mod files;
pub mod group;
pub mod https;
pub mod keys;
pub mod nodes;
pub mod quic;
pub mod retention;
pub mod serve;
pub mod session;
pub mod ssh;
mod sweeps;

pub use error::{GatewayError, Result};
pub use serve::{Prepared, StartOptions, Started, prepare};
