//! Notifications (issue #17): people are told when something needs them.
//!
//! Where they come from: the audit log (a request filed or decided, emergency access, a
//! session started or ended), read in order from a cursor the store keeps
//! ([`plan`]), and daily checks (attestations about to expire or expired, emergency work
//! whose after-the-fact approval is overdue: [`sweep`]). What they say: [`render`], in the
//! recipient's language. How they travel: [`send`], mail over SMTP (lettre) and webhooks
//! signed with HMAC-SHA256. In between is the store's outbox: every notification is a row
//! until it is delivered, tried again with a doubling wait, and given up (audited) after
//! `[notifications] max_attempts` tries; a restart loses nothing ([`worker`]).

pub mod error;
pub mod plan;
pub mod render;
pub mod send;
pub mod sweep;
pub mod syslog;
pub mod worker;

pub use error::NotifyError;
pub use worker::Notifier;
