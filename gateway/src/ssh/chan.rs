//! The state of one relayed channel, and the vendor's channel requests as russh hands them
//! over (the handler in `conn` passes them on to `channel` and `forward`).

use russh::{ChannelMsg, ChannelReadHalf, Pty};
use sekisho_domain::upload::ChannelWatch;
use tokio::sync::mpsc;

use super::notice::{Track, VendorWrite};
use super::scp::ScpSlot;
use super::sftp::relay::SftpSlot;
use super::uplink::{TargetWrite, Uplink};

/// A vendor's `pty-req`, as russh hands it over.
pub(super) struct PtyRequest<'a> {
    pub(super) term: &'a str,
    pub(super) cols: u32,
    pub(super) rows: u32,
    pub(super) pixels: (u32, u32),
    pub(super) modes: &'a [(Pty, u32)],
}

/// One vendor channel relayed to one target channel.
pub(super) struct Chan {
    pub(super) vendor: VendorWrite,
    /// For requests (pty, exec, window change, signal); data goes through `uplink`.
    pub(super) target: TargetWrite,
    pub(super) uplink: Uplink,
    /// Held by the handler until the pump takes over.
    pub(super) target_read: Option<ChannelReadHalf>,
    pub(super) stash: Vec<ChannelMsg>,
    pub(super) rec: u32,
    pub(super) pty: Option<(String, u32, u32)>,
    pub(super) track: Option<Track>,
    /// Set when the channel speaks sftp (the subsystem, or `sftp -s` on an exec channel):
    /// every request and reply then goes through the relay. Shared with the pump.
    pub(super) sftp: SftpSlot,
    /// Set when the command is legacy scp (`scp -t`, `scp -f`): each file is logged.
    pub(super) scp: ScpSlot,
    /// At levels without upload: what the vendor sends, looked at for upload protocols and
    /// counted against the session's input bound (see `sekisho_domain::upload`).
    pub(super) watch: Option<ChannelWatch>,
    pub(super) inject: Option<mpsc::Sender<Vec<u8>>>,
    pub(super) refusals: u32,
}

/// A vendor's `direct-tcpip` request, as russh hands it over.
pub(super) struct Forward<'a> {
    pub(super) host: &'a str,
    pub(super) port: u32,
    pub(super) originator: (&'a str, u32),
}
