//! Exports a TCP stream recording as a pcap file so Wireshark or `tshark` dissect the protocol
//! inside (HTTP, DICOM, ...). The packets are synthetic: Ethernet, IPv4 and TCP headers are
//! made up around the recorded bytes (a handshake, MSS-sized segments, a close), between two
//! documentation addresses (RFC 5737), vendor 192.0.2.10 and target 198.51.100.20, on the
//! recorded target port.

use std::io::Write;

use crate::stream::{Direction, StreamFile, StreamKind};

const VENDOR_IP: [u8; 4] = [192, 0, 2, 10];
const TARGET_IP: [u8; 4] = [198, 51, 100, 20];
const VENDOR_PORT: u16 = 40_000;
const MSS: usize = 1460;

const SYN: u8 = 0x02;
const ACK: u8 = 0x10;
const PSH: u8 = 0x08;
const FIN: u8 = 0x01;

fn checksum(chunks: &[&[u8]]) -> u16 {
    let mut sum = 0u32;
    let mut odd: Option<u8> = None;
    for chunk in chunks {
        for &b in *chunk {
            match odd.take() {
                Some(hi) => sum += u32::from(u16::from_be_bytes([hi, b])),
                None => odd = Some(b),
            }
        }
    }
    if let Some(hi) = odd {
        sum += u32::from(u16::from_be_bytes([hi, 0]));
    }
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

struct Writer<W: Write> {
    out: W,
    port: u16,
    seq: [u32; 2],
    ip_id: u16,
}

impl<W: Write> Writer<W> {
    fn packet(
        &mut self,
        ts_us: i64,
        from_vendor: bool,
        flags: u8,
        payload: &[u8],
    ) -> std::io::Result<()> {
        let (src, dst, sport, dport, me, peer) = if from_vendor {
            (VENDOR_IP, TARGET_IP, VENDOR_PORT, self.port, 0, 1)
        } else {
            (TARGET_IP, VENDOR_IP, self.port, VENDOR_PORT, 1, 0)
        };
        let mut tcp = Vec::with_capacity(20 + payload.len());
        tcp.extend_from_slice(&sport.to_be_bytes());
        tcp.extend_from_slice(&dport.to_be_bytes());
        tcp.extend_from_slice(&self.seq[me].to_be_bytes());
        let ack = if flags & ACK != 0 { self.seq[peer] } else { 0 };
        tcp.extend_from_slice(&ack.to_be_bytes());
        tcp.push(5 << 4);
        tcp.push(flags);
        tcp.extend_from_slice(&65535u16.to_be_bytes());
        tcp.extend_from_slice(&[0, 0, 0, 0]);
        tcp.extend_from_slice(payload);
        let tcp_len = u16::try_from(tcp.len()).map_err(std::io::Error::other)?;
        let pseudo = [&src[..], &dst[..], &[0, 6], &tcp_len.to_be_bytes()[..]].concat();
        let c = checksum(&[&pseudo, &tcp]);
        tcp[16..18].copy_from_slice(&c.to_be_bytes());

        let total = 20 + tcp_len;
        let mut ip = vec![0x45, 0];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&self.ip_id.to_be_bytes());
        self.ip_id = self.ip_id.wrapping_add(1);
        ip.extend_from_slice(&[0x40, 0, 64, 6, 0, 0]);
        ip.extend_from_slice(&src);
        ip.extend_from_slice(&dst);
        let c = checksum(&[&ip]);
        ip[10..12].copy_from_slice(&c.to_be_bytes());

        let mut eth = vec![
            0x02,
            0,
            0,
            0,
            0,
            if from_vendor { 2 } else { 1 },
            0x02,
            0,
            0,
            0,
            0,
            if from_vendor { 1 } else { 2 },
        ];
        eth.extend_from_slice(&[0x08, 0x00]);
        let len = u32::try_from(eth.len() + ip.len() + tcp.len()).map_err(std::io::Error::other)?;
        let secs = u32::try_from(ts_us.div_euclid(1_000_000)).unwrap_or(0);
        let usecs = u32::try_from(ts_us.rem_euclid(1_000_000)).unwrap_or(0);
        for v in [secs, usecs, len, len] {
            self.out.write_all(&v.to_le_bytes())?;
        }
        self.out.write_all(&eth)?;
        self.out.write_all(&ip)?;
        self.out.write_all(&tcp)?;
        let advance = payload.len() as u32 + u32::from(flags & (SYN | FIN) != 0);
        self.seq[me] = self.seq[me].wrapping_add(advance);
        Ok(())
    }
}

/// Writes `stream` as pcap. Refuses streams that are not TCP.
pub fn export(stream: &StreamFile, out: impl Write) -> Result<(), String> {
    if stream.header.kind != StreamKind::Tcp {
        return Err(format!(
            "only TCP stream recordings export to pcap (this one is {:?})",
            stream.header.kind
        ));
    }
    let port = stream
        .header
        .detail
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(80);
    let mut w = Writer {
        out,
        port,
        seq: [1_000, 500_000],
        ip_id: 1,
    };
    let io = |e: std::io::Error| e.to_string();
    // pcap global header: microsecond timestamps, Ethernet.
    w.out.write_all(&0xa1b2_c3d4u32.to_le_bytes()).map_err(io)?;
    w.out.write_all(&2u16.to_le_bytes()).map_err(io)?;
    w.out.write_all(&4u16.to_le_bytes()).map_err(io)?;
    for v in [0u32, 0, 262_144, 1] {
        w.out.write_all(&v.to_le_bytes()).map_err(io)?;
    }
    let t0 = stream.header.started_at_us;
    w.packet(t0, true, SYN, &[]).map_err(io)?;
    w.packet(t0, false, SYN | ACK, &[]).map_err(io)?;
    w.packet(t0, true, ACK, &[]).map_err(io)?;
    let mut last = t0;
    for f in &stream.frames {
        let ts = t0 + i64::try_from(f.t_us).unwrap_or(i64::MAX - t0);
        last = ts;
        for seg in f.data.chunks(MSS) {
            w.packet(ts, f.direction == Direction::ToTarget, PSH | ACK, seg)
                .map_err(io)?;
        }
    }
    w.packet(last, true, FIN | ACK, &[]).map_err(io)?;
    w.packet(last, false, FIN | ACK, &[]).map_err(io)?;
    w.packet(last, true, ACK, &[]).map_err(io)?;
    w.out.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::checksum;

    #[test]
    fn internet_checksum_of_a_known_ipv4_header() {
        // The classic example header (checksum field zeroed) whose checksum is 0xb861.
        let h = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&[&h]), 0xb861);
    }
}
