//! The approval API of Sekisho: the HTTP API (axum) that hospital IT, vendors and auditors
//! use, its OpenAPI document, and the one table of who may call what ([`api::ACCESS`]).
//! Everything it stores or reads goes through `sekisho-store`.

pub mod anchor;
pub mod api;
pub mod directory;
pub use sekisho_store::throttle;
