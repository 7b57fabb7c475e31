//! Loopback ports for the servers tests start.

/// A TCP port on 127.0.0.1 that was free a moment ago (the caller retries if it is taken
/// before it binds).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}
