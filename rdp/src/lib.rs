//! Remote desktop (RDP) as Sekisho's gateway sees it: a relay that terminates the vendor's
//! security layer, opens its own to the target with the level's credential, and relays the
//! rest PDU by PDU; and the replay of what it recorded.
//!
//! The protocol itself is IronRDP's (`ironrdp-pdu` for the messages, `ironrdp-connector` for
//! CredSSP, `ironrdp-session` for drawing). This crate only decides what the relay changes:
//!
//! - [`nego`]: the X.224 negotiation, spoken separately with each side (TLS toward the vendor,
//!   NLA or TLS toward the target);
//! - [`setup`]: the messages of the connection sequence the relay rewrites: the MCS Connect
//!   Initial (the protocol the target chose; no graphics pipeline, whose H.264 the replay
//!   cannot draw), the Connect Response (the protocols the vendor asked for), the Client Info
//!   (the target account's credentials instead of the vendor's; a redacted copy for the
//!   recording; no bulk compression, so any moment can be drawn from a snapshot);
//! - [`channels`]: which static virtual channels a level allows (clipboard, drives);
//! - [`pdu`]: reading whole PDUs with a bounded buffer;
//! - [`credssp`]: NLA toward the target with the injected credential;
//! - [`input`]: keyboard input decoded to text (scancodes with the client's layout), clicks;
//! - [`clipboard`]: clipboard text that crossed, from the recorded `cliprdr` channel;
//! - [`replay`]: the screen at any moment, drawn from the recorded PDUs, as RGBA or PNG.
//!
//! No IO here beyond the async streams the caller hands in: TLS, sockets and recordings are
//! the gateway's and the recorder's.

pub mod channels;
pub mod clipboard;
pub mod credssp;
pub mod error;
pub mod input;
pub mod nego;
pub mod pdu;
pub mod replay;
pub mod setup;

pub use error::RdpError;
