//! The framed stream format (`.skr`, version 1) for byte streams: exec channels, sftp, port
//! forwards and TCP tunnels. Documented here because auditors may need to read it without us.
//!
//! ```text
//! file   := magic header frame*
//! magic  := "SKSTREAM" (8 bytes) version:u8 (=1)
//! header := len:u32be json[len]            -- StreamHeader
//! frame  := t_us:u64be dir:u8 len:u32be data[len] crc:u32be
//!           t_us: microseconds since the recording started
//!           dir:  0 = vendor → target, 1 = target → vendor
//!           crc:  CRC-32 (IEEE) of t_us, dir, len and data
//! ```
//! All integers are big-endian. A file can be read while it is written and after a crash: a
//! last frame that is incomplete or fails its CRC is a *torn tail*, reported and ignored. A bad
//! frame followed by more data is corruption and an error.

use std::io::{Read, Write};

use serde::{Deserialize, Serialize};

pub const MAGIC: &[u8; 8] = b"SKSTREAM";
pub const VERSION: u8 = 1;
/// Frames larger than this are split when written and refused when read.
pub const MAX_FRAME: usize = 1 << 20;

/// Which way bytes went.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// From the vendor to the target.
    ToTarget,
    /// From the target to the vendor.
    FromTarget,
}

impl Direction {
    fn byte(self) -> u8 {
        match self {
            Direction::ToTarget => 0,
            Direction::FromTarget => 1,
        }
    }
}

/// What kind of stream a file holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StreamKind {
    /// `ssh host command`.
    Exec,
    /// The sftp subsystem (also used by scp).
    Sftp,
    /// A TCP connection: SSH port forward or designated-client tunnel.
    Tcp,
    /// A remote desktop connection: one RDP PDU per frame, after the security layer (the
    /// Client Info without its password). Drawn by `sekisho-rdp`'s replay.
    Rdp,
}

/// The JSON header of a stream file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamHeader {
    pub kind: StreamKind,
    /// The channel number within the session.
    pub channel: u32,
    /// For exec: the command; for TCP: `host:port` on the target side.
    pub detail: String,
    /// Unix time of the start, microseconds.
    pub started_at_us: i64,
}

/// One frame.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame {
    pub t_us: u64,
    pub direction: Direction,
    pub data: Vec<u8>,
}

fn crc(t_us: u64, dir: u8, data: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&t_us.to_be_bytes());
    h.update(&[dir]);
    h.update(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    h.update(data);
    h.finalize()
}

/// Writes the magic and header.
pub fn write_header(w: &mut impl Write, header: &StreamHeader) -> std::io::Result<()> {
    let json = serde_json::to_vec(header).map_err(std::io::Error::other)?;
    w.write_all(MAGIC)?;
    w.write_all(&[VERSION])?;
    w.write_all(
        &u32::try_from(json.len())
            .map_err(std::io::Error::other)?
            .to_be_bytes(),
    )?;
    w.write_all(&json)
}

/// The 13 bytes before a frame's data, and the CRC that follows it. `data.len()` must not
/// exceed [`MAX_FRAME`].
pub fn frame_parts(t_us: u64, direction: Direction, data: &[u8]) -> ([u8; 13], [u8; 4]) {
    let mut head = [0u8; 13];
    head[..8].copy_from_slice(&t_us.to_be_bytes());
    head[8] = direction.byte();
    head[9..].copy_from_slice(&u32::try_from(data.len()).unwrap_or(u32::MAX).to_be_bytes());
    (head, crc(t_us, direction.byte(), data).to_be_bytes())
}

/// Writes `data` as one or more frames. Returns the bytes written.
pub fn write_frames(
    w: &mut impl Write,
    t_us: u64,
    direction: Direction,
    data: &[u8],
) -> std::io::Result<u64> {
    let mut written = 0u64;
    for chunk in data.chunks(MAX_FRAME) {
        let len = u32::try_from(chunk.len()).map_err(std::io::Error::other)?;
        w.write_all(&t_us.to_be_bytes())?;
        w.write_all(&[direction.byte()])?;
        w.write_all(&len.to_be_bytes())?;
        w.write_all(chunk)?;
        w.write_all(&crc(t_us, direction.byte(), chunk).to_be_bytes())?;
        written += 17 + chunk.len() as u64;
    }
    Ok(written)
}

/// A stream file read back.
#[derive(Clone, Debug)]
pub struct StreamFile {
    pub header: StreamHeader,
    pub frames: Vec<Frame>,
    /// Bytes at the end that did not form a whole, valid frame (a crash mid-write).
    pub torn_tail: usize,
}

/// Why a stream file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    #[error("not a Sekisho stream file (bad magic)")]
    Magic,
    #[error("unsupported stream format version {0}")]
    Version(u8),
    #[error("bad header: {0}")]
    Header(String),
    #[error("frame at byte {offset} is corrupt (CRC mismatch or bad length) and more data follows")]
    Corrupt { offset: usize },
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads a whole stream file, tolerating a torn tail.
pub fn read(mut r: impl Read) -> Result<StreamFile, StreamError> {
    let mut buf = Vec::new();
    r.read_to_end(&mut buf)?;
    parse(&buf)
}

pub fn parse(buf: &[u8]) -> Result<StreamFile, StreamError> {
    let mut head = std::io::Cursor::new(buf);
    let (header, reader) = FrameReader::open(&mut head)?;
    let hend =
        usize::try_from(reader.position()).map_err(|e| StreamError::Header(e.to_string()))?;
    let mut frames = Vec::new();
    let mut pos = hend;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let whole = (|| {
            let t_us = u64::from_be_bytes(rest.get(..8)?.try_into().ok()?);
            let dir = *rest.get(8)?;
            let len = u32::from_be_bytes(rest.get(9..13)?.try_into().ok()?) as usize;
            if len > MAX_FRAME {
                return Some(Err(()));
            }
            let data = rest.get(13..13 + len)?;
            let stored = u32::from_be_bytes(rest.get(13 + len..17 + len)?.try_into().ok()?);
            let direction = match dir {
                0 => Direction::ToTarget,
                1 => Direction::FromTarget,
                _ => return Some(Err(())),
            };
            if stored != crc(t_us, dir, data) {
                return Some(Err(()));
            }
            Some(Ok((
                Frame {
                    t_us,
                    direction,
                    data: data.to_vec(),
                },
                17 + len,
            )))
        })();
        match whole {
            Some(Ok((frame, size))) => {
                frames.push(frame);
                pos += size;
            }
            // Incomplete: a torn tail.
            None => {
                return Ok(StreamFile {
                    header,
                    frames,
                    torn_tail: buf.len() - pos,
                });
            }
            // Complete but invalid: torn only if nothing valid could follow.
            Some(Err(())) => {
                if looks_like_tail(rest) {
                    return Ok(StreamFile {
                        header,
                        frames,
                        torn_tail: buf.len() - pos,
                    });
                }
                return Err(StreamError::Corrupt { offset: pos });
            }
        }
    }
    Ok(StreamFile {
        header,
        frames,
        torn_tail: 0,
    })
}

/// Reads frames one at a time from an open stream file, from the start or from the byte
/// offset of a frame (as a screens file records it), without holding the whole file. A frame
/// that is incomplete or fails its CRC ends the reading (a torn tail of a file still written).
pub struct FrameReader<R> {
    r: R,
    pos: u64,
}

impl<R: Read + std::io::Seek> FrameReader<R> {
    /// Reads the magic and header; the reader is then at the first frame.
    pub fn open(mut r: R) -> Result<(StreamHeader, Self), StreamError> {
        let mut head = [0u8; 13];
        r.read_exact(&mut head).map_err(|_| StreamError::Magic)?;
        if &head[..8] != MAGIC {
            return Err(StreamError::Magic);
        }
        if head[8] != VERSION {
            return Err(StreamError::Version(head[8]));
        }
        let hlen = u32::from_be_bytes([head[9], head[10], head[11], head[12]]) as usize;
        if hlen > MAX_FRAME {
            return Err(StreamError::Header("too long".into()));
        }
        let mut json = vec![0; hlen];
        r.read_exact(&mut json)
            .map_err(|_| StreamError::Header("truncated".into()))?;
        let header: StreamHeader =
            serde_json::from_slice(&json).map_err(|e| StreamError::Header(e.to_string()))?;
        let pos = 13 + hlen as u64;
        Ok((header, Self { r, pos }))
    }

    /// Goes to the frame at byte `offset` of the file.
    pub fn seek(&mut self, offset: u64) -> std::io::Result<()> {
        self.r.seek(std::io::SeekFrom::Start(offset))?;
        self.pos = offset;
        Ok(())
    }

    /// The byte offset of the next frame.
    pub fn position(&self) -> u64 {
        self.pos
    }

    /// The time of the last whole frame from here on (or `None`), reading only the frames'
    /// heads and stepping over their data (not checked: this is for a recording's length).
    pub fn last_time(&mut self) -> std::io::Result<Option<u64>> {
        let end = self.r.seek(std::io::SeekFrom::End(0))?;
        let mut pos = self.r.seek(std::io::SeekFrom::Start(self.pos))?;
        let mut last = None;
        let mut head = [0u8; 13];
        while pos + 17 <= end {
            self.r.read_exact(&mut head)?;
            let len = u64::from(u32::from_be_bytes([head[9], head[10], head[11], head[12]]));
            if pos + 17 + len > end {
                break;
            }
            last = Some(u64::from_be_bytes(head[..8].try_into().unwrap_or_default()));
            pos = self.r.seek(std::io::SeekFrom::Start(pos + 17 + len))?;
        }
        self.pos = pos;
        Ok(last)
    }

    /// The next frame; `None` at the end (or at a torn tail).
    pub fn next_frame(&mut self) -> std::io::Result<Option<Frame>> {
        let mut head = [0u8; 13];
        if !read_full(&mut self.r, &mut head)? {
            return Ok(None);
        }
        let t_us = u64::from_be_bytes(head[..8].try_into().unwrap_or_default());
        let dir = head[8];
        let len = u32::from_be_bytes([head[9], head[10], head[11], head[12]]) as usize;
        let direction = match dir {
            0 => Direction::ToTarget,
            1 => Direction::FromTarget,
            _ => return Ok(None),
        };
        if len > MAX_FRAME {
            return Ok(None);
        }
        let mut data = vec![0; len + 4];
        if !read_full(&mut self.r, &mut data)? {
            return Ok(None);
        }
        let stored = u32::from_be_bytes(data[len..].try_into().unwrap_or_default());
        data.truncate(len);
        if stored != crc(t_us, dir, &data) {
            return Ok(None);
        }
        self.pos += 17 + len as u64;
        Ok(Some(Frame {
            t_us,
            direction,
            data,
        }))
    }
}

/// The kind of the stream file at `path`, from its header alone; `None` when it is not a
/// readable stream file.
pub fn kind_of(path: &std::path::Path) -> Option<StreamKind> {
    let file = std::fs::File::open(path).ok()?;
    FrameReader::open(std::io::BufReader::new(file))
        .ok()
        .map(|(header, _)| header.kind)
}

/// Fills `buf`; `false` when the input ended first.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match r.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// A bad frame is a torn tail when its claimed length reaches the end of the file (a crash
/// while writing it); otherwise data follows and the file was damaged.
fn looks_like_tail(rest: &[u8]) -> bool {
    match rest.get(9..13).and_then(|b| b.try_into().ok()) {
        Some(b) => 17 + u32::from_be_bytes(b) as usize >= rest.len(),
        None => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> StreamHeader {
        StreamHeader {
            kind: StreamKind::Tcp,
            channel: 3,
            detail: "127.0.0.1:443".into(),
            started_at_us: 1_700_000_000_000_000,
        }
    }

    fn sample() -> Vec<u8> {
        let mut buf = Vec::new();
        write_header(&mut buf, &header()).unwrap();
        write_frames(&mut buf, 10, Direction::ToTarget, b"GET / HTTP/1.1\r\n\r\n").unwrap();
        write_frames(
            &mut buf,
            2_000,
            Direction::FromTarget,
            b"HTTP/1.1 200 OK\r\n\r\nhi",
        )
        .unwrap();
        buf
    }

    #[test]
    fn round_trip() {
        let f = parse(&sample()).unwrap();
        assert_eq!(f.header, header());
        assert_eq!(f.torn_tail, 0);
        assert_eq!(f.frames.len(), 2);
        assert_eq!(f.frames[0].data, b"GET / HTTP/1.1\r\n\r\n");
        assert_eq!(f.frames[1].direction, Direction::FromTarget);
        assert_eq!(f.frames[1].t_us, 2_000);
    }

    #[test]
    fn every_truncation_is_a_readable_torn_tail() {
        let full = sample();
        let header_len = {
            let mut b = Vec::new();
            write_header(&mut b, &header()).unwrap();
            b.len()
        };
        for cut in header_len..full.len() {
            let f = parse(&full[..cut]).unwrap_or_else(|e| panic!("cut at {cut}: {e}"));
            let whole: usize = f.frames.iter().map(|fr| 17 + fr.data.len()).sum();
            assert_eq!(header_len + whole + f.torn_tail, cut);
        }
    }

    #[test]
    fn the_frame_reader_reads_as_parse_does_and_steps_to_the_length() {
        let full = sample();
        for cut in [full.len(), full.len() - 3] {
            let (h, mut r) = FrameReader::open(std::io::Cursor::new(&full[..cut])).unwrap();
            assert_eq!(h, header());
            let start = r.position();
            let mut times = vec![];
            while let Some(f) = r.next_frame().unwrap() {
                times.push(f.t_us);
            }
            let parsed: Vec<u64> = parse(&full[..cut])
                .unwrap()
                .frames
                .iter()
                .map(|f| f.t_us)
                .collect();
            assert_eq!(times, parsed);
            r.seek(start).unwrap();
            assert_eq!(r.last_time().unwrap(), parsed.last().copied());
        }
    }

    #[test]
    fn a_flipped_byte_in_the_middle_is_corruption_not_a_tail() {
        let mut buf = sample();
        let first_data = buf.len() - (17 + 21) - (17 + 18) + 13;
        buf[first_data] ^= 0x20;
        assert!(matches!(parse(&buf), Err(StreamError::Corrupt { .. })));
        // The same flip in the last frame is a torn tail (it may be a half-written frame).
        let mut buf = sample();
        let last = buf.len() - 5;
        buf[last] ^= 0x20;
        assert_eq!(parse(&buf).unwrap().torn_tail, 17 + 21);
    }

    #[test]
    fn large_writes_are_split_into_frames() {
        let mut buf = Vec::new();
        write_header(&mut buf, &header()).unwrap();
        let data = vec![7u8; MAX_FRAME * 2 + 5];
        write_frames(&mut buf, 1, Direction::ToTarget, &data).unwrap();
        let f = parse(&buf).unwrap();
        assert_eq!(
            f.frames.iter().map(|f| f.data.len()).collect::<Vec<_>>(),
            [MAX_FRAME, MAX_FRAME, 5]
        );
    }

    #[test]
    fn other_files_are_refused() {
        assert!(matches!(
            parse(b"not a stream at all"),
            Err(StreamError::Magic)
        ));
        let mut v = sample();
        v[8] = 9;
        assert!(matches!(parse(&v), Err(StreamError::Version(9))));
    }
}
