//! The sftp protocol's wire format (version 3, draft-ietf-secsh-filexfer-02) as far as the
//! gateway reads and writes it: whole packets out of a byte stream, the fields of the
//! requests and replies it looks at, and the replies it makes itself.

pub const FXP_INIT: u8 = 1;
pub const FXP_VERSION: u8 = 2;
pub const FXP_OPEN: u8 = 3;
pub const FXP_CLOSE: u8 = 4;
pub const FXP_READ: u8 = 5;
pub const FXP_WRITE: u8 = 6;
pub const FXP_LSTAT: u8 = 7;
pub const FXP_FSTAT: u8 = 8;
pub const FXP_SETSTAT: u8 = 9;
pub const FXP_FSETSTAT: u8 = 10;
pub const FXP_OPENDIR: u8 = 11;
pub const FXP_READDIR: u8 = 12;
pub const FXP_REMOVE: u8 = 13;
pub const FXP_MKDIR: u8 = 14;
pub const FXP_RMDIR: u8 = 15;
pub const FXP_REALPATH: u8 = 16;
pub const FXP_STAT: u8 = 17;
pub const FXP_RENAME: u8 = 18;
pub const FXP_READLINK: u8 = 19;
pub const FXP_SYMLINK: u8 = 20;
pub const FXP_STATUS: u8 = 101;
pub const FXP_HANDLE: u8 = 102;
pub const FXP_DATA: u8 = 103;
pub const FXP_ATTRS: u8 = 105;
pub const FXP_EXTENDED: u8 = 200;

pub const FXF_READ: u32 = 0x1;
pub const FXF_WRITE: u32 = 0x2;
pub const FXF_APPEND: u32 = 0x4;
pub const FXF_CREAT: u32 = 0x8;
pub const FXF_TRUNC: u32 = 0x10;
pub const FXF_EXCL: u32 = 0x20;

pub const FX_OK: u32 = 0;
pub const FX_EOF: u32 = 1;
pub const FX_PERMISSION_DENIED: u32 = 3;
pub const FX_FAILURE: u32 = 4;
pub const FX_OP_UNSUPPORTED: u32 = 8;

const ATTR_SIZE: u32 = 0x1;

/// The largest packet accepted from either side (OpenSSH's sftp-server allows 256 KiB).
pub const MAX_PACKET: usize = 256 * 1024 + 1024;

/// Why a stream cannot be relayed (the channel is closed).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("sftp packet of {0} bytes is larger than the {MAX_PACKET} allowed")]
pub struct TooLarge(pub usize);

/// Whole packets (length prefix included) out of a byte stream.
#[derive(Debug, Default)]
pub struct Reassembler {
    buf: Vec<u8>,
}

impl Reassembler {
    /// Adds `data`; returns the packets it completed, in order.
    pub fn feed(&mut self, data: &[u8]) -> Result<Vec<Vec<u8>>, TooLarge> {
        // The common case, a chunk of whole packets with nothing held: no copy into `buf`.
        let mut out = vec![];
        let mut rest = data;
        if self.buf.is_empty() {
            while let Some(len) = rest.get(..4).map(be32) {
                let len = len as usize;
                if len > MAX_PACKET {
                    return Err(TooLarge(len));
                }
                let Some(packet) = rest.get(..4 + len) else {
                    break;
                };
                out.push(packet.to_vec());
                rest = &rest[4 + len..];
            }
        }
        self.buf.extend_from_slice(rest);
        let mut at = 0;
        while let Some(len) = self.buf.get(at..at + 4).map(be32) {
            let len = len as usize;
            if len > MAX_PACKET {
                return Err(TooLarge(len));
            }
            let Some(packet) = self.buf.get(at..at + 4 + len) else {
                break;
            };
            out.push(packet.to_vec());
            at += 4 + len;
        }
        self.buf.drain(..at);
        Ok(out)
    }
}

pub fn be32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

pub fn be64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_be_bytes(a)
}

/// A packet's parts: `[len][type][body…]`.
pub struct Packet<'a>(pub &'a [u8]);

impl<'a> Packet<'a> {
    pub fn kind(&self) -> Option<u8> {
        self.0.get(4).copied()
    }

    /// The request id (every packet but INIT and VERSION has one).
    pub fn id(&self) -> Option<u32> {
        self.0.get(5..9).map(be32)
    }

    /// A string field at `at` (offset in the packet): (bytes, offset after it).
    pub fn string(&self, at: usize) -> Option<(&'a [u8], usize)> {
        let len = be32(self.0.get(at..at + 4)?) as usize;
        let s = self.0.get(at + 4..at + 4 + len)?;
        Some((s, at + 4 + len))
    }

    pub fn u32_at(&self, at: usize) -> Option<u32> {
        self.0.get(at..at + 4).map(be32)
    }

    pub fn u64_at(&self, at: usize) -> Option<u64> {
        self.0.get(at..at + 8).map(be64)
    }

    /// The first string after the id (a path or a handle).
    pub fn first(&self) -> Option<(&'a [u8], usize)> {
        self.string(9)
    }
}

fn packet(kind: u8, id: u32, body: &[u8]) -> Vec<u8> {
    let len = 1 + 4 + body.len();
    let mut p = Vec::with_capacity(4 + len);
    p.extend_from_slice(&(len as u32).to_be_bytes());
    p.push(kind);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(body);
    p
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// `SSH_FXP_STATUS` for request `id`.
pub fn status(id: u32, code: u32, message: &str) -> Vec<u8> {
    let mut body = code.to_be_bytes().to_vec();
    put_string(&mut body, message.as_bytes());
    put_string(&mut body, b"en");
    packet(FXP_STATUS, id, &body)
}

/// `SSH_FXP_HANDLE` for request `id`.
pub fn handle(id: u32, handle: &[u8]) -> Vec<u8> {
    let mut body = vec![];
    put_string(&mut body, handle);
    packet(FXP_HANDLE, id, &body)
}

/// `SSH_FXP_ATTRS` with only the size.
pub fn attrs_size(id: u32, size: u64) -> Vec<u8> {
    let mut body = ATTR_SIZE.to_be_bytes().to_vec();
    body.extend_from_slice(&size.to_be_bytes());
    packet(FXP_ATTRS, id, &body)
}

/// `SSH_FXP_OPEN` of `path` with `flags` and `attrs` (as the vendor sent them).
pub fn open(id: u32, path: &[u8], flags: u32, attrs: &[u8]) -> Vec<u8> {
    let mut body = vec![];
    put_string(&mut body, path);
    body.extend_from_slice(&flags.to_be_bytes());
    body.extend_from_slice(attrs);
    packet(FXP_OPEN, id, &body)
}

/// `SSH_FXP_WRITE` of `data` at `offset`.
pub fn write(id: u32, handle: &[u8], offset: u64, data: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(handle.len() + data.len() + 16);
    put_string(&mut body, handle);
    body.extend_from_slice(&offset.to_be_bytes());
    put_string(&mut body, data);
    packet(FXP_WRITE, id, &body)
}

/// `SSH_FXP_CLOSE` of `handle`.
pub fn close(id: u32, handle: &[u8]) -> Vec<u8> {
    let mut body = vec![];
    put_string(&mut body, handle);
    packet(FXP_CLOSE, id, &body)
}

/// A status reply's code and message.
pub fn status_of(p: &Packet<'_>) -> Option<(u32, String)> {
    let code = p.u32_at(9)?;
    let message = p
        .string(13)
        .map(|(m, _)| String::from_utf8_lossy(m).into_owned())
        .unwrap_or_default();
    Some((code, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packets_split_anywhere_come_out_whole_and_in_order() {
        let a = status(1, FX_OK, "ok");
        let b = write(2, b"h", 7, &[9u8; 1000]);
        let stream = [&a[..], &b].concat();
        for split in 0..stream.len() {
            let mut r = Reassembler::default();
            let mut out = r.feed(&stream[..split]).unwrap();
            out.extend(r.feed(&stream[split..]).unwrap());
            assert_eq!(out, vec![a.clone(), b.clone()], "split at {split}");
        }
        let mut r = Reassembler::default();
        assert_eq!(
            r.feed(&u32::MAX.to_be_bytes()),
            Err(TooLarge(u32::MAX as usize))
        );
    }

    #[test]
    fn fields_read_back() {
        let p = write(5, b"handle", 1 << 40, b"data");
        let p = Packet(&p);
        assert_eq!(p.kind(), Some(FXP_WRITE));
        assert_eq!(p.id(), Some(5));
        let (h, next) = p.first().unwrap();
        assert_eq!(h, b"handle");
        assert_eq!(p.u64_at(next), Some(1 << 40));
        assert_eq!(p.string(next + 8).unwrap().0, b"data");
        let s = status(9, FX_FAILURE, "no");
        assert_eq!(status_of(&Packet(&s)), Some((FX_FAILURE, "no".into())));
    }
}
