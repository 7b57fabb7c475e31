//! A guard on the sftp protocol (version 3, draft-ietf-secsh-filexfer-02) for levels where
//! the target forbids file upload: every request that could write (open for writing, write,
//! setstat, remove, mkdir, rmdir, rename, symlink, and extensions not known to be read-only)
//! is answered by the gateway with `SSH_FX_PERMISSION_DENIED` and never reaches the target.
//! Anything the guard does not know is refused: deny by default.
//!
//! The guard reassembles packets from the vendor (they may span channel messages); the
//! [`Framer`] tracks packet boundaries in the target's replies so an injected refusal is
//! never spliced into the middle of one.

const FXP_INIT: u8 = 1;
const FXP_OPEN: u8 = 3;
const FXP_CLOSE: u8 = 4;
const FXP_READ: u8 = 5;
const FXP_LSTAT: u8 = 7;
const FXP_FSTAT: u8 = 8;
const FXP_OPENDIR: u8 = 11;
const FXP_READDIR: u8 = 12;
const FXP_REALPATH: u8 = 16;
const FXP_STAT: u8 = 17;
const FXP_READLINK: u8 = 19;
const FXP_STATUS: u8 = 101;
const FXP_EXTENDED: u8 = 200;
const FXF_READ: u32 = 0x1;
const FX_PERMISSION_DENIED: u32 = 3;

/// Extensions that only read.
const READ_ONLY_EXTENSIONS: &[&str] = &[
    "statvfs@openssh.com",
    "fstatvfs@openssh.com",
    "limits@openssh.com",
    "expand-path@openssh.com",
    "home-directory",
    "users-groups-by-id@openssh.com",
];

/// The largest packet accepted from the vendor (OpenSSH's sftp-server allows 256 KiB).
pub const MAX_PACKET: usize = 256 * 1024 + 1024;

/// What to do with bytes the vendor sent.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Filtered {
    /// Bytes to pass to the target, whole packets in order.
    pub forward: Vec<u8>,
    /// Refused requests: the status packet to send back, and what was refused.
    pub refused: Vec<(Vec<u8>, String)>,
}

/// Why the stream cannot be filtered (the channel is closed).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error("sftp packet of {0} bytes is larger than the {MAX_PACKET} allowed")]
pub struct TooLarge(pub usize);

/// Reassembles the vendor's requests and refuses the writing ones.
#[derive(Debug, Default)]
pub struct UploadGuard {
    buf: Vec<u8>,
}

impl UploadGuard {
    pub fn feed(&mut self, data: &[u8]) -> Result<Filtered, TooLarge> {
        self.buf.extend_from_slice(data);
        let mut out = Filtered::default();
        let mut at = 0;
        while let Some(len) = self.buf.get(at..at + 4).map(be32) {
            let len = len as usize;
            if len > MAX_PACKET {
                return Err(TooLarge(len));
            }
            let Some(packet) = self.buf.get(at + 4..at + 4 + len) else {
                break;
            };
            match refusal(packet) {
                None => out.forward.extend_from_slice(&self.buf[at..at + 4 + len]),
                Some((id, what)) => out.refused.push((status_denied(id, &what), what)),
            }
            at += 4 + len;
        }
        self.buf.drain(..at);
        Ok(out)
    }
}

fn be32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

/// A string field at `at`: (bytes, offset after it).
fn string(p: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let len = be32(p.get(at..at + 4)?) as usize;
    let s = p.get(at + 4..at + 4 + len)?;
    Some((s, at + 4 + len))
}

/// `Some((request id, description))` when `packet` must be refused.
fn refusal(packet: &[u8]) -> Option<(u32, String)> {
    let kind = *packet.first()?;
    if kind == FXP_INIT {
        return None;
    }
    // A request without an id cannot be answered: refuse with id 0 (the client fails it).
    let id = packet.get(1..5).map(be32).unwrap_or(0);
    let name = |at: usize| {
        string(packet, at)
            .map(|(s, _)| String::from_utf8_lossy(s).into_owned())
            .unwrap_or_default()
    };
    match kind {
        FXP_OPEN => {
            let Some((path, next)) = string(packet, 5) else {
                return Some((id, "a malformed open request".into()));
            };
            let flags = packet.get(next..next + 4).map(be32);
            match flags {
                Some(f) if f & !FXF_READ == 0 => None,
                _ => Some((
                    id,
                    format!("opening {} for writing", String::from_utf8_lossy(path)),
                )),
            }
        }
        FXP_CLOSE | FXP_READ | FXP_LSTAT | FXP_FSTAT | FXP_OPENDIR | FXP_READDIR | FXP_REALPATH
        | FXP_STAT | FXP_READLINK => None,
        FXP_EXTENDED => {
            let ext = name(5);
            if READ_ONLY_EXTENSIONS.contains(&ext.as_str()) {
                None
            } else {
                Some((id, format!("the {ext} extension")))
            }
        }
        6 => Some((id, "writing to a file".into())),
        9 | 10 => Some((id, format!("changing attributes of {}", name(5)))),
        13 => Some((id, format!("removing {}", name(5)))),
        14 => Some((id, format!("creating directory {}", name(5)))),
        15 => Some((id, format!("removing directory {}", name(5)))),
        18 => Some((id, format!("renaming {}", name(5)))),
        20 => Some((id, "creating a symbolic link".into())),
        other => Some((id, format!("sftp request type {other}"))),
    }
}

/// `SSH_FXP_STATUS` with `SSH_FX_PERMISSION_DENIED` for request `id`.
pub fn status_denied(id: u32, what: &str) -> Vec<u8> {
    let msg = format!("refused by Sekisho: {what} is not allowed at this access level");
    let mut body = vec![FXP_STATUS];
    body.extend_from_slice(&id.to_be_bytes());
    body.extend_from_slice(&FX_PERMISSION_DENIED.to_be_bytes());
    body.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    body.extend_from_slice(msg.as_bytes());
    body.extend_from_slice(&2u32.to_be_bytes());
    body.extend_from_slice(b"en");
    let mut packet = (body.len() as u32).to_be_bytes().to_vec();
    packet.extend_from_slice(&body);
    packet
}

/// Tracks packet boundaries in a stream of sftp packets.
#[derive(Debug, Default)]
pub struct Framer {
    header: [u8; 4],
    got: usize,
    left: usize,
}

impl Framer {
    /// Whether the bytes seen so far end exactly at a packet boundary.
    pub fn at_boundary(&self) -> bool {
        self.got == 0 && self.left == 0
    }

    /// Consumes `data` up to and including the end of the next packet; returns how many bytes
    /// that is (all of `data` when no packet ends in it).
    pub fn advance(&mut self, data: &[u8]) -> usize {
        let mut i = 0;
        while i < data.len() {
            if self.left == 0 {
                let take = (4 - self.got).min(data.len() - i);
                self.header[self.got..self.got + take].copy_from_slice(&data[i..i + take]);
                self.got += take;
                i += take;
                if self.got == 4 {
                    self.got = 0;
                    self.left = u32::from_be_bytes(self.header) as usize;
                    if self.left == 0 {
                        return i;
                    }
                }
            } else {
                let take = self.left.min(data.len() - i);
                self.left -= take;
                i += take;
                if self.left == 0 {
                    return i;
                }
            }
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(kind: u8, id: u32, fields: &[&[u8]], tail: &[u8]) -> Vec<u8> {
        let mut body = vec![kind];
        body.extend_from_slice(&id.to_be_bytes());
        for f in fields {
            body.extend_from_slice(&(f.len() as u32).to_be_bytes());
            body.extend_from_slice(f);
        }
        body.extend_from_slice(tail);
        let mut p = (body.len() as u32).to_be_bytes().to_vec();
        p.extend_from_slice(&body);
        p
    }

    fn open(id: u32, path: &str, flags: u32) -> Vec<u8> {
        let mut tail = flags.to_be_bytes().to_vec();
        tail.extend_from_slice(&0u32.to_be_bytes());
        packet(FXP_OPEN, id, &[path.as_bytes()], &tail)
    }

    #[test]
    fn reads_pass_and_writes_are_answered_with_permission_denied() {
        let mut g = UploadGuard::default();
        let read = open(1, "/etc/hosts", FXF_READ);
        let write = open(2, "/tmp/x", FXF_READ | 0x2 | 0x8);
        let mkdir = packet(14, 3, &[b"/tmp/d"], &0u32.to_be_bytes());
        let rename = packet(
            FXP_EXTENDED,
            4,
            &[b"posix-rename@openssh.com", b"a", b"b"],
            &[],
        );
        let statvfs = packet(FXP_EXTENDED, 5, &[b"statvfs@openssh.com", b"/"], &[]);
        let unknown = packet(99, 6, &[], &[]);
        let all = [&read[..], &write, &mkdir, &rename, &statvfs, &unknown].concat();
        let out = g.feed(&all).unwrap();
        assert_eq!(out.forward, [&read[..], &statvfs].concat());
        let ids: Vec<u32> = out.refused.iter().map(|(p, _)| be32(&p[5..9])).collect();
        assert_eq!(ids, [2, 3, 4, 6]);
        assert!(out.refused[0].1.contains("/tmp/x"), "{}", out.refused[0].1);
        assert_eq!(out.refused[0].0[4], FXP_STATUS);
        assert_eq!(be32(&out.refused[0].0[9..13]), FX_PERMISSION_DENIED);
    }

    #[test]
    fn packets_split_across_messages_are_reassembled() {
        let mut g = UploadGuard::default();
        let write = open(7, "/tmp/x", 0x2);
        let read = open(8, "/etc/hosts", FXF_READ);
        let all = [&write[..], &read].concat();
        let mut forwarded = vec![];
        let mut refused = vec![];
        for byte in all.chunks(3) {
            let out = g.feed(byte).unwrap();
            forwarded.extend(out.forward);
            refused.extend(out.refused);
        }
        assert_eq!(forwarded, read);
        assert_eq!(refused.len(), 1);
        assert_eq!(
            g.feed(&u32::MAX.to_be_bytes()),
            Err(TooLarge(u32::MAX as usize))
        );
    }

    #[test]
    fn framer_finds_every_boundary() {
        let a = packet(102, 1, &[b"handle"], &[]);
        let b = packet(103, 2, &[b"some data here"], &[]);
        let stream = [&a[..], &b].concat();
        for split in 0..stream.len() {
            let mut f = Framer::default();
            let mut boundaries = vec![];
            let mut offset = 0;
            for chunk in [&stream[..split], &stream[split..]] {
                let mut rest = chunk;
                while !rest.is_empty() {
                    let n = f.advance(rest);
                    offset += n;
                    rest = &rest[n..];
                    if f.at_boundary() {
                        boundaries.push(offset);
                    }
                }
            }
            assert_eq!(boundaries, [a.len(), stream.len()], "split at {split}");
        }
    }
}
