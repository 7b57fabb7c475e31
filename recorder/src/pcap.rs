//! Exports a TCP stream recording as a pcap file so Wireshark or `tshark` dissect the protocol
//! inside (HTTP, DICOM, ...). The packets are synthetic: Ethernet, IPv4 and TCP headers are
//! made up around the recorded bytes (a handshake, MSS-sized segments, a close), between two
//! documentation addresses (RFC 5737), vendor 192.0.2.10 and target 198.51.100.20, on the
//! recorded target port. `etherparse` builds the headers and their checksums, `pcap-file`
//! writes the file.

use std::io::Write;
use std::time::Duration;

use etherparse::PacketBuilder;
use pcap_file::pcap::{PcapPacket, PcapWriter};

use crate::stream::{Direction, StreamFile, StreamKind};

const VENDOR_IP: [u8; 4] = [192, 0, 2, 10];
const TARGET_IP: [u8; 4] = [198, 51, 100, 20];
const VENDOR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const TARGET_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];
const VENDOR_PORT: u16 = 40_000;
const MSS: usize = 1460;
const TTL: u8 = 64;
const WINDOW: u16 = 65_535;

/// Why a recording could not be exported as pcap.
#[derive(Debug, thiserror::Error)]
pub enum PcapError {
    #[error("only TCP stream recordings export to pcap (this one is {0:?})")]
    NotTcp(StreamKind),
    #[error("cannot write the pcap file: {0}")]
    Write(#[from] pcap_file::PcapError),
    #[error("cannot build a packet: {0}")]
    Packet(String),
}

#[derive(Clone, Copy)]
enum Flags {
    Syn,
    SynAck,
    Ack,
    Data,
    FinAck,
}

struct Writer<W: Write> {
    pcap: PcapWriter<W>,
    port: u16,
    /// The next sequence number of the vendor (0) and of the target (1).
    seq: [u32; 2],
    buf: Vec<u8>,
}

impl<W: Write> Writer<W> {
    fn packet(
        &mut self,
        ts_us: i64,
        from_vendor: bool,
        flags: Flags,
        payload: &[u8],
    ) -> Result<(), PcapError> {
        let (me, peer) = if from_vendor { (0, 1) } else { (1, 0) };
        let builder = if from_vendor {
            PacketBuilder::ethernet2(VENDOR_MAC, TARGET_MAC)
                .ipv4(VENDOR_IP, TARGET_IP, TTL)
                .tcp(VENDOR_PORT, self.port, self.seq[me], WINDOW)
        } else {
            PacketBuilder::ethernet2(TARGET_MAC, VENDOR_MAC)
                .ipv4(TARGET_IP, VENDOR_IP, TTL)
                .tcp(self.port, VENDOR_PORT, self.seq[me], WINDOW)
        };
        let ack = self.seq[peer];
        let builder = match flags {
            Flags::Syn => builder.syn(),
            Flags::SynAck => builder.syn().ack(ack),
            Flags::Ack => builder.ack(ack),
            Flags::Data => builder.psh().ack(ack),
            Flags::FinAck => builder.fin().ack(ack),
        };
        self.buf.clear();
        builder
            .write(&mut self.buf, payload)
            .map_err(|e| PcapError::Packet(e.to_string()))?;
        let since_epoch = Duration::from_micros(u64::try_from(ts_us).unwrap_or(0));
        let len = u32::try_from(self.buf.len()).map_err(|e| PcapError::Packet(e.to_string()))?;
        self.pcap
            .write_packet(&PcapPacket::new(since_epoch, len, &self.buf))?;
        // SYN and FIN take one sequence number each.
        let advance = match flags {
            Flags::Syn | Flags::SynAck | Flags::FinAck => 1,
            Flags::Ack | Flags::Data => 0,
        };
        let taken = u32::try_from(payload.len()).unwrap_or(u32::MAX);
        self.seq[me] = self.seq[me].wrapping_add(taken).wrapping_add(advance);
        Ok(())
    }
}

/// Writes `stream` as pcap. Refuses streams that are not TCP.
pub fn export(stream: &StreamFile, out: impl Write) -> Result<(), PcapError> {
    if stream.header.kind != StreamKind::Tcp {
        return Err(PcapError::NotTcp(stream.header.kind));
    }
    let port = stream
        .header
        .detail
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(80);
    let mut w = Writer {
        // Microsecond timestamps, Ethernet.
        pcap: PcapWriter::new(out)?,
        port,
        seq: [1_000, 500_000],
        buf: Vec::with_capacity(MSS + 64),
    };
    let t0 = stream.header.started_at_us;
    w.packet(t0, true, Flags::Syn, &[])?;
    w.packet(t0, false, Flags::SynAck, &[])?;
    w.packet(t0, true, Flags::Ack, &[])?;
    let mut last = t0;
    for f in &stream.frames {
        let ts = t0.saturating_add(i64::try_from(f.t_us).unwrap_or(i64::MAX));
        last = ts;
        for seg in f.data.chunks(MSS) {
            w.packet(ts, f.direction == Direction::ToTarget, Flags::Data, seg)?;
        }
    }
    w.packet(last, true, Flags::FinAck, &[])?;
    w.packet(last, false, Flags::FinAck, &[])?;
    w.packet(last, true, Flags::Ack, &[])?;
    let mut out = w.pcap.into_writer();
    out.flush()
        .map_err(|e| PcapError::Write(pcap_file::PcapError::IoError(e)))
}
