//! The console's routes, one module per area: each reads what it needs from the API
//! (`crate::client`) and renders a page (`crate::pages`), or posts an action and goes back.

pub mod admin;
pub mod audit;
pub mod auth;
pub mod lines;
pub mod mfa;
pub mod notifications;
pub mod quarantine;
pub mod recordings;
pub mod reports;
pub mod requests;
pub mod sessions;
