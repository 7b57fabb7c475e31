//! The control protocol between `sekisho-client` and the gateway's QUIC listener.
//!
//! The first bidirectional QUIC stream of a connection carries frames: a 4-byte big-endian
//! length, then that many bytes of JSON (one [`ClientMessage`] or [`ServerMessage`]). Frames
//! are at most [`MAX_FRAME`] bytes. The client opens with [`ClientMessage::Hello`]; the
//! gateway answers [`ServerMessage::Welcome`] or [`ServerMessage::Denied`] (for instance
//! `unsupported_version`). Then the client asks for one thing: enrollment (on a connection
//! without a client certificate) or opening a service on a target (with one).
//!
//! Decoding never panics and never allocates more than the frame's announced length, which
//! is checked against [`MAX_FRAME`] before anything is read: this faces the internet. Unknown
//! message types and unknown fields are errors, not ignored.
//!
//! Tunnels (`Service::Tcp`): after `Accepted` the first stream stays open for the session's
//! life; each TCP connection is one more bidirectional stream that starts with the same
//! `Open` and is answered `Accepted` (or `Denied`) before the raw bytes. The gateway ends a
//! session by closing the connection with the reason as the QUIC close reason.
//!
//! A client certificate refused in the TLS handshake is named in the handshake error's text
//! ([`CertRefusal`]), which both sides read: the gateway audits it, the client explains it.
//!
//! Versioning: [`VERSION`] changes whenever a message changes incompatibly; the gateway
//! accepts the versions in [`SUPPORTED`].

pub mod transport;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// This build's protocol version.
pub const VERSION: u16 = 1;
/// Versions a gateway of this build accepts.
pub const SUPPORTED: &[u16] = &[1];
/// The largest frame (length prefix excluded).
pub const MAX_FRAME: usize = 64 * 1024;

/// What the client sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First message of every connection.
    Hello { version: u16, client: String },
    /// Redeem a one-time enrollment code: the CSR's public key gets a client certificate.
    /// The engineer's own Sekisho password proves that the code reached its engineer (whoever
    /// issued the code does not know it); a wrong password voids the code.
    Enroll {
        code: String,
        csr_pem: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        password: Option<Password>,
    },
    /// Open `service` on `target` under the user's approved request. `otp` is the account's
    /// one-time code (the authenticator's 6 digits or a recovery code), needed on the control
    /// stream when the account has a second factor (else `Denied` `mfa_required`); a tunnel's
    /// further streams never carry it.
    Open {
        target: String,
        service: Service,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        otp: Option<Password>,
    },
    /// The work requests of the user's vendor, newest first.
    ListRequests,
    /// File a work request as the certificate's user.
    FileRequest { request: NewRequest },
    /// A new certificate for the CSR's key, replacing the one this connection presented.
    Renew { csr_pem: String },
}

/// A password (or a one-time code) on the wire: never shown by `Debug`, so it cannot reach
/// a log.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Password(pub String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<password>")
    }
}

/// A work request to file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewRequest {
    pub target: String,
    /// `reference` or `change`.
    pub level: String,
    /// RFC 3339.
    pub window_start: String,
    /// RFC 3339.
    pub window_end: String,
    pub reason: String,
    /// The work plan (the text of `--plan FILE`).
    pub plan: Option<String>,
}

/// A work request as the vendor sees it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestSummary {
    pub number: i64,
    pub target: String,
    pub level: String,
    /// `submitted`, `approved`, `active`, `rejected`, ...
    pub status: String,
    /// RFC 3339.
    pub window_start: String,
    /// RFC 3339.
    pub window_end: String,
    pub reason: String,
}

/// What to open on a target.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Service {
    /// The gateway's SSH server (recorded and enforced as for stock SSH).
    Ssh,
    /// A TCP port of the target.
    Tcp { port: u16 },
    /// The target's Remote Desktop: each stream carries one RDP connection, whose security
    /// layer the gateway terminates (it logs in to the target itself).
    Rdp,
}

/// What the gateway sends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ServerMessage {
    Welcome {
        version: u16,
        gateway: String,
    },
    /// The signed client certificate (PEM), the CA that signed it, and for whom.
    Enrolled {
        certificate_pem: String,
        ca_pem: String,
        username: String,
        /// RFC 3339.
        expires_at: String,
        /// The gateway's SSH host key (OpenSSH public key line), for the client's known_hosts.
        ssh_host_key: String,
    },
    /// The stream now carries the service's bytes.
    Accepted,
    /// Answer to `ListRequests`.
    Requests {
        requests: Vec<RequestSummary>,
    },
    /// Answer to `FileRequest`: the request, now awaiting approval.
    Filed {
        request: RequestSummary,
    },
    /// Something the vendor should know while the session lasts (the window closes soon),
    /// sent on a tunnel's or remote desktop's control stream.
    Notice {
        message: String,
    },
    /// Refused: a stable code and a message for the vendor.
    Denied {
        code: String,
        message: String,
    },
}

/// A client certificate refused in the handshake: its `SHA256:` (hex of the DER), a stable
/// code (`certificate_expired`, `certificate_unknown_issuer`, ...) and rustls's reason.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CertRefusal {
    pub fingerprint: String,
    pub code: String,
    pub message: String,
}

const REFUSAL_MARK: &str = "client certificate SHA256:";

impl CertRefusal {
    /// The text carried in the TLS error (ends with `|`, since it may be embedded in a
    /// longer message).
    pub fn text(&self) -> String {
        format!(
            "{REFUSAL_MARK}{} refused ({}): {}|",
            self.fingerprint, self.code, self.message
        )
    }

    /// Finds a refusal in an error's text.
    pub fn find(text: &str) -> Option<Self> {
        let rest = text.split_once(REFUSAL_MARK)?.1;
        let fingerprint = rest.get(..64)?;
        if !fingerprint.bytes().all(|b| b.is_ascii_hexdigit()) {
            return None;
        }
        let rest = rest.get(64..)?.strip_prefix(" refused (")?;
        let (code, rest) = rest.split_once("): ")?;
        let (message, _) = rest.rsplit_once('|')?;
        Some(Self {
            fingerprint: fingerprint.to_owned(),
            code: code.to_owned(),
            message: message.to_owned(),
        })
    }
}

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    #[error("frame of {0} bytes is larger than the {MAX_FRAME} allowed")]
    TooLarge(usize),
    #[error("malformed message: {0}")]
    Malformed(String),
    #[error("connection closed before a complete message")]
    Closed,
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// The bytes of one frame.
pub fn encode<T: Serialize>(msg: &T) -> Result<Vec<u8>, ProtocolError> {
    let body = serde_json::to_vec(msg).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if body.len() > MAX_FRAME {
        return Err(ProtocolError::TooLarge(body.len()));
    }
    let mut out = Vec::with_capacity(4 + body.len());
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes one frame from the start of `buf`: `Ok(None)` if more bytes are needed, else the
/// message and how many bytes it used.
pub fn decode<T: DeserializeOwned>(buf: &[u8]) -> Result<Option<(T, usize)>, ProtocolError> {
    let Some(len) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize;
    if len > MAX_FRAME {
        return Err(ProtocolError::TooLarge(len));
    }
    let Some(body) = buf.get(4..4 + len) else {
        return Ok(None);
    };
    let msg = serde_json::from_slice(body).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    Ok(Some((msg, 4 + len)))
}

/// Reads one frame.
pub async fn read<T: DeserializeOwned, R: AsyncRead + Unpin>(
    r: &mut R,
) -> Result<T, ProtocolError> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await.map_err(closed)?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_FRAME {
        return Err(ProtocolError::TooLarge(len));
    }
    let mut body = vec![0u8; len];
    r.read_exact(&mut body).await.map_err(closed)?;
    serde_json::from_slice(&body).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

/// Writes one frame.
pub async fn write<T: Serialize, W: AsyncWrite + Unpin>(
    w: &mut W,
    msg: &T,
) -> Result<(), ProtocolError> {
    w.write_all(&encode(msg)?).await?;
    w.flush().await?;
    Ok(())
}

fn closed(e: std::io::Error) -> ProtocolError {
    if e.kind() == std::io::ErrorKind::UnexpectedEof {
        ProtocolError::Closed
    } else {
        ProtocolError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificate_refusal_is_found_inside_a_longer_error() {
        let r = CertRefusal {
            fingerprint: "ab".repeat(32),
            code: "certificate_expired".into(),
            message: "certificate expired (864000 seconds ago)".into(),
        };
        let wrapped = format!("handshake failed: Other(OtherError({}))", r.text());
        assert_eq!(CertRefusal::find(&wrapped), Some(r));
        assert_eq!(CertRefusal::find("handshake failed: error 42"), None);
        let short = format!("{REFUSAL_MARK}abc refused (x): y|");
        assert_eq!(CertRefusal::find(&short), None);
    }
}
