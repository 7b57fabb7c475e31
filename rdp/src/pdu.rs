//! Whole PDUs from a byte stream: X.224 (TPKT) or fast-path, as `ironrdp_pdu::find_size`
//! tells their length. The buffer never holds more than one PDU and what arrived behind it.

use bytes::{Bytes, BytesMut};
use ironrdp_pdu::Action;
use tokio::io::{AsyncRead, AsyncReadExt};

use crate::RdpError;

/// The largest PDU RDP can frame (a TPKT length is 16 bits; fast-path's is 15).
pub const MAX_PDU: usize = 0xFFFF;

/// One PDU as it was on the wire.
#[derive(Clone, Debug)]
pub struct Pdu {
    pub action: Action,
    pub bytes: Bytes,
}

/// Reads PDUs one by one.
#[derive(Default)]
pub struct PduReader {
    buf: BytesMut,
}

impl PduReader {
    pub fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(8 * 1024),
        }
    }

    /// The next PDU, or `None` when the stream ended cleanly between PDUs.
    pub async fn next<R: AsyncRead + Unpin>(&mut self, r: &mut R) -> Result<Option<Pdu>, RdpError> {
        loop {
            if let Some(pdu) = self.split()? {
                return Ok(Some(pdu));
            }
            self.buf.reserve(8 * 1024);
            if r.read_buf(&mut self.buf).await? == 0 {
                return if self.buf.is_empty() {
                    Ok(None)
                } else {
                    Err(RdpError::Truncated)
                };
            }
        }
    }

    /// The next PDU when it is complete in the buffer.
    fn split(&mut self) -> Result<Option<Pdu>, RdpError> {
        let info =
            ironrdp_pdu::find_size(&self.buf).map_err(|e| RdpError::protocol("PDU header", e))?;
        let Some(info) = info else {
            return Ok(None);
        };
        if info.length > MAX_PDU || info.length < 2 {
            return Err(RdpError::TooLarge(info.length));
        }
        if self.buf.len() < info.length {
            return Ok(None);
        }
        Ok(Some(Pdu {
            action: info.action,
            bytes: self.buf.split_to(info.length).freeze(),
        }))
    }

    /// Bytes received after the last whole PDU (e.g. the start of a TLS handshake).
    pub fn leftover(&self) -> &[u8] {
        &self.buf
    }
}

/// The action (X.224 or fast-path) of a complete PDU.
pub fn action_of(bytes: &[u8]) -> Option<Action> {
    ironrdp_pdu::find_size(bytes)
        .ok()
        .flatten()
        .map(|i| i.action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn splits_pdus_across_reads_and_refuses_a_torn_one() {
        // Two TPKT PDUs of 7 bytes each (header 4 + 3 bytes), fed one byte at a time.
        let one = [3u8, 0, 0, 7, 2, 0xf0, 0x80];
        let mut bytes = one.to_vec();
        bytes.extend_from_slice(&one);
        let mut r = PduReader::new();
        let mut src: &[u8] = &bytes;
        let a = r.next(&mut src).await;
        assert!(matches!(a, Ok(Some(ref p)) if p.bytes.len() == 7 && p.action == Action::X224));
        let b = r.next(&mut src).await;
        assert!(matches!(b, Ok(Some(_))));
        assert!(matches!(r.next(&mut src).await, Ok(None)));
        let mut torn: &[u8] = &one[..5];
        assert!(matches!(
            PduReader::new().next(&mut torn).await,
            Err(RdpError::Truncated)
        ));
    }
}
