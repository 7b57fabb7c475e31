//! The QUIC transport both ends share: the UDP socket, the endpoint, the connection
//! parameters, and the chunked copy between QUIC streams and TCP sockets that tunnels use.
//!
//! Measured on loopback (see `BENCHMARKS.md`, issue #6): with the kernel's default UDP receive
//! buffer (208 KiB on Debian) a bulk tunnel overflowed the gateway's socket (2863 packets
//! lost in 1.5 GiB); quinn took the drops for congestion and for an MTU black hole and fell
//! back to 1200-byte packets. With a 4 MiB buffer the same transfer lost none. Datagrams stay
//! within Ethernet's MTU (quinn's default discovery bound, 1452): larger ones, tried on
//! loopback, were dropped at the socket again and sent the connection back to 1200 bytes.

use std::net::{SocketAddr, UdpSocket};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};

/// The UDP socket buffer asked for, each way. Linux caps it at `net.core.rmem_max` /
/// `net.core.wmem_max`; [`UdpBound::short`] tells when that cap bit.
pub const UDP_BUFFER: usize = 4 * 1024 * 1024;

/// QUIC application close code: the gateway ended the session (revoked, terminated, window
/// over, ...). Final: the reason (the close's text) is shown and the client stops.
pub const CLOSE_SESSION_ENDED: u32 = 1;
/// QUIC application close code: the gateway is stopping (a restart, say). A tunnel reconnects
/// with backoff; the gateway decides the new session afresh.
pub const CLOSE_GATEWAY_STOPPING: u32 = 2;

/// How long a silent connection lives, and how often each end proves it is alive.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// A bound UDP socket and the receive buffer the kernel actually granted.
pub struct UdpBound {
    pub socket: UdpSocket,
    /// Bytes, as the kernel reports them (Linux reports twice the usable size).
    pub recv_buffer: usize,
}

impl UdpBound {
    /// True when the kernel granted less than [`UDP_BUFFER`]: a bulk transfer may then lose
    /// packets at the socket and slow down (raise `net.core.rmem_max`).
    #[must_use]
    pub fn short(&self) -> bool {
        // Linux doubles the size asked for (bookkeeping overhead) and reports the double.
        let usable = if cfg!(target_os = "linux") {
            self.recv_buffer / 2
        } else {
            self.recv_buffer
        };
        usable < UDP_BUFFER
    }
}

/// Binds a UDP socket for a QUIC endpoint with [`UDP_BUFFER`]-sized buffers where the kernel
/// allows them (a smaller grant is not an error: see [`UdpBound::short`]).
///
/// # Errors
/// The socket cannot be created or bound.
pub fn udp_socket(addr: SocketAddr) -> std::io::Result<UdpBound> {
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    // Best effort: the kernel silently caps the size; what it granted is read back below.
    let _ = socket.set_recv_buffer_size(UDP_BUFFER);
    let _ = socket.set_send_buffer_size(UDP_BUFFER);
    socket.bind(&addr.into())?;
    let recv_buffer = socket.recv_buffer_size()?;
    Ok(UdpBound {
        socket: socket.into(),
        recv_buffer,
    })
}

/// A tokio endpoint on `socket` (from [`udp_socket`]) with `config` (the client: quinn's
/// default; the gateway: its own stateless-reset key) and, on the gateway, its server
/// configuration.
///
/// # Errors
/// quinn cannot take the socket over.
pub fn endpoint(
    config: quinn::EndpointConfig,
    socket: UdpSocket,
    server: Option<quinn::ServerConfig>,
) -> std::io::Result<quinn::Endpoint> {
    quinn::Endpoint::new(config, server, socket, Arc::new(quinn::TokioRuntime))
}

/// The connection parameters both ends use.
#[must_use]
pub fn transport_config() -> quinn::TransportConfig {
    let mut transport = quinn::TransportConfig::default();
    // 60 s is within the range a VarInt of milliseconds holds.
    if let Ok(idle) = quinn::IdleTimeout::try_from(IDLE_TIMEOUT) {
        transport.max_idle_timeout(Some(idle));
    }
    transport.keep_alive_interval(Some(KEEP_ALIVE));
    transport
}

/// Bytes read at a time by a relay (flow control bounds the rest).
pub const CHUNK: usize = 64 * 1024;

/// The next chunk of a relay's input (a QUIC stream or a TCP socket), `None` at its end.
///
/// Read into `buf`, which is reused once the previous chunks are dropped, and handed out as
/// an owned [`Bytes`] that can be recorded and written on without further copies. (quinn's
/// own `read_chunk` would avoid this copy too, but hands out one packet's worth at a time:
/// measured, the recorder's per-frame cost then doubled the gateway's CPU per byte.)
///
/// # Errors
/// Reading failed.
pub async fn next_chunk(
    from: &mut (impl AsyncRead + Unpin),
    buf: &mut BytesMut,
) -> std::io::Result<Option<Bytes>> {
    buf.reserve(CHUNK);
    if from.read_buf(buf).await? == 0 {
        return Ok(None);
    }
    Ok(Some(buf.split().freeze()))
}

/// A relay's output.
pub trait ChunkSink {
    /// Writes all of `chunk`.
    fn put(&mut self, chunk: Bytes) -> impl Future<Output = std::io::Result<()>> + Send;
    /// Ends the output: TCP half-close, QUIC stream finish.
    fn end(&mut self) -> impl Future<Output = ()> + Send;
}

impl ChunkSink for quinn::SendStream {
    async fn put(&mut self, chunk: Bytes) -> std::io::Result<()> {
        Ok(self.write_chunk(chunk).await?)
    }
    async fn end(&mut self) {
        // Already finished or reset: nothing more to end.
        let _ = self.finish();
    }
}

impl ChunkSink for tokio::net::tcp::OwnedWriteHalf {
    async fn put(&mut self, chunk: Bytes) -> std::io::Result<()> {
        self.write_all(&chunk).await
    }
    async fn end(&mut self) {
        // The peer may be gone already; the relay ends either way.
        let _ = self.shutdown().await;
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// The socket gets the buffer where the kernel allows it, and `short` says so exactly
    /// when the kernel's cap is below it.
    #[test]
    fn udp_buffer_granted_or_reported_short() {
        let bound = udp_socket("127.0.0.1:0".parse().unwrap()).unwrap();
        assert!(bound.socket.local_addr().unwrap().port() > 0);
        let Ok(cap) = std::fs::read_to_string("/proc/sys/net/core/rmem_max") else {
            return;
        };
        let cap: usize = cap.trim().parse().unwrap();
        assert_eq!(
            bound.short(),
            cap < UDP_BUFFER,
            "cap {cap}, got {}",
            bound.recv_buffer
        );
    }
}
