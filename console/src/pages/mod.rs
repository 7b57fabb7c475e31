//! The console's pages (maud: every interpolated value is HTML-escaped), one module per area,
//! each rendering the API's typed views. `layout` is what they share; pages never call the
//! API themselves.

pub mod activity;
pub mod admin;
pub mod assignments;
pub mod audit;
pub mod layout;
pub mod lines;
pub mod mfa;
pub mod notifications;
pub mod quarantine;
pub mod recordings;
pub mod requests;
pub mod reviews;
pub mod sessions;
