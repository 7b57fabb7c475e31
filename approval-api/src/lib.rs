//! The approval side of Sekisho: storage of everything in the domain, the hash-chained audit
//! log, credential sealing, password hashing, and the HTTP API that hospital IT, vendors and
//! auditors use.

pub mod api;
pub mod console;
pub mod crypto;
pub mod events;
pub mod failures;
pub mod password;
pub mod store;
pub mod throttle;

pub use store::{DbKind, Store};
