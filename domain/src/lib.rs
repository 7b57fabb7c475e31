//! Sekisho's domain: the types every other crate speaks and the rules that decide access.
//!
//! Nothing here does IO. The two rules that matter most are pure functions of plain data,
//! so the HTTP API and the gateway cannot disagree about them:
//! - [`request::WorkRequest::apply`]: which transitions a work request may make;
//! - [`authorize::authorize`]: may this vendor user open this channel to this target now?

pub mod assignment;
pub mod audit;
pub mod authorize;
pub mod files;
pub mod ids;
pub mod line;
pub mod node;
pub mod notify;
pub mod policy;
pub mod refusal;
pub mod report;
pub mod request;
pub mod review;
pub mod secret;
pub mod session;
pub mod site;
pub mod target;
pub mod text;
pub mod upload;
pub mod user;
pub mod vendor;
pub mod zone;

pub use jiff::Timestamp;
