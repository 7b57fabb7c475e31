//! The SSH legs' sizes and limits, shared by the server and the target client.

use std::time::Duration;

/// SSH channel window (bytes) on both legs (OpenSSH's sshd uses the same).
pub(super) const WINDOW: u32 = 2 * 1024 * 1024;
/// Largest SSH packet payload on both legs.
pub(super) const PACKET: u32 = 32 * 1024;
/// Messages buffered per channel inside russh before it stops reading the socket.
pub(super) const CHANNEL_BUFFER: usize = 64;
/// Session channels (shells, execs, sftp, forwards) one connection may hold at once.
pub(super) const MAX_CHANNELS: usize = 16;
/// How long a refused connection stays open so the vendor can read why.
pub(super) const REFUSED_LINGER: Duration = Duration::from_secs(10);
