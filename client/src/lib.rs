//! `sekisho-client`, the designated vendor client: enrollment, SSH to targets and TCP tunnels
//! to their ports through the gateway's QUIC listener with the hospital-issued client
//! certificate. It depends on the
//! control protocol only, never on server code.

pub mod connect;
pub mod files;
pub mod tunnel;
