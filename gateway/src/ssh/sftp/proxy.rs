//! The gateway's view of one sftp session: every request the vendor sends and every reply
//! the target gives pass through [`Proxy`], which decides what may cross and logs each file.
//!
//! - **Deny** (a level without upload): every request that could write (open for writing,
//!   write, setstat, remove, mkdir, rmdir, rename, symlink, extensions not known to be
//!   read-only) is answered by the gateway with `SSH_FX_PERMISSION_DENIED` and never reaches
//!   the target. Anything unknown is refused: deny by default.
//! - **Direct** (upload allowed, no scanner): writes pass; each file written is logged.
//! - **Quarantine** (upload allowed, a scanner configured): the gateway answers a whole-file
//!   upload itself. The open gets a gateway handle, the writes are staged on the gateway
//!   ([`Out::StageWrite`]), and at the close ([`Out::StageClose`]) the caller scans the file
//!   and, only when it is clean, writes it to the target with requests of its own
//!   ([`Proxy::internal_id`]), whose replies come back as [`Out::Internal`]. Resuming or
//!   appending is refused: a partial file cannot be scanned.
//! - **Downloads** are refused where the level denies them, and reads past the level's
//!   limit are refused; every file read is logged.
//!
//! Pure: no IO. Request ids are the vendor's own; the gateway's requests use ids from a range
//! a vendor request may not use while one of them is pending.

use std::collections::{HashMap, HashSet};

use sekisho_domain::files::{
    Direction, DownloadMode, FileRecord, Outcome, UploadMode, read_within,
};

use super::track::Tracker;
use super::wire::{self, *};

/// Extensions that only read.
const READ_ONLY_EXTENSIONS: &[&str] = &[
    "statvfs@openssh.com",
    "fstatvfs@openssh.com",
    "limits@openssh.com",
    "expand-path@openssh.com",
    "home-directory",
    "users-groups-by-id@openssh.com",
];

/// Extensions that change the target's files without carrying the vendor's bytes.
const WRITING_EXTENSIONS: &[&str] = &[
    "posix-rename@openssh.com",
    "hardlink@openssh.com",
    "fsync@openssh.com",
    "lsetstat@openssh.com",
    "copy-data@openssh.com",
];

/// The first id of the gateway's own requests.
const INTERNAL_IDS: u32 = 0xC000_0000;
/// Handles the gateway gives for staged uploads start with this.
const STAGED_PREFIX: &[u8] = b"sekisho-quarantine:";

/// What to do after a packet was looked at.
#[derive(Debug, PartialEq, Eq)]
pub enum Out {
    /// A packet for the target.
    Target(Vec<u8>),
    /// A packet for the vendor.
    Vendor(Vec<u8>),
    /// A request was refused (audit it): which way the file would have gone, and what.
    Refused(Direction, String),
    /// A file's transfer ended: log it.
    Done(FileRecord),
    /// Begin staging an upload of `path` under `handle`; answer `id` with the handle (or a
    /// failure). `flags` are the vendor's; the delivery truncates the target's file.
    StageOpen {
        id: u32,
        handle: Vec<u8>,
        path: String,
        flags: u32,
        attrs: Vec<u8>,
    },
    /// Write `data` at `offset` of the staged file; answer `id` with a status.
    StageWrite {
        id: u32,
        handle: Vec<u8>,
        offset: u64,
        data: Vec<u8>,
    },
    /// Answer `id` with the staged file's attributes (its size).
    StageStat { id: u32, handle: Vec<u8> },
    /// Scan the staged file, deliver it if clean, and answer `id` with the outcome.
    StageClose { id: u32, handle: Vec<u8> },
    /// A reply to one of the gateway's own requests.
    Internal(u32, Vec<u8>),
}

#[derive(Debug)]
enum Pending {
    Open { path: String, direction: Direction },
    Read { handle: Vec<u8>, offset: u64 },
    Write { handle: Vec<u8> },
    Close { handle: Vec<u8> },
    Internal,
}

pub struct Proxy {
    upload: UploadMode,
    download: DownloadMode,
    from_vendor: Reassembler,
    from_target: Reassembler,
    pending: HashMap<u32, Pending>,
    files: HashMap<Vec<u8>, Tracker>,
    staged: HashSet<Vec<u8>>,
    next_internal: u32,
    next_staged: u64,
}

fn lossy(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

impl Proxy {
    pub fn new(upload: UploadMode, download: DownloadMode) -> Self {
        Self {
            upload,
            download,
            from_vendor: Reassembler::default(),
            from_target: Reassembler::default(),
            pending: HashMap::new(),
            files: HashMap::new(),
            staged: HashSet::new(),
            next_internal: INTERNAL_IDS,
            next_staged: 0,
        }
    }

    /// An id for a request of the gateway's own; its reply comes back as [`Out::Internal`].
    pub fn internal_id(&mut self) -> u32 {
        loop {
            let id = self.next_internal;
            self.next_internal = self.next_internal.wrapping_add(1).max(INTERNAL_IDS);
            if let std::collections::hash_map::Entry::Vacant(e) = self.pending.entry(id) {
                e.insert(Pending::Internal);
                return id;
            }
        }
    }

    /// The staged upload `handle` is finished with (delivered or blocked).
    pub fn unstage(&mut self, handle: &[u8]) {
        self.staged.remove(handle);
    }

    /// Bytes from the vendor.
    pub fn from_vendor(&mut self, data: &[u8]) -> Result<Vec<Out>, TooLarge> {
        let mut out = vec![];
        for p in self.from_vendor.feed(data)? {
            self.request(p, &mut out);
        }
        Ok(out)
    }

    /// Bytes from the target.
    pub fn from_target(&mut self, data: &[u8]) -> Result<Vec<Out>, TooLarge> {
        let mut out = vec![];
        for p in self.from_target.feed(data)? {
            self.reply(p, &mut out);
        }
        Ok(out)
    }

    /// The channel ended: files still open are logged as incomplete.
    pub fn finish(&mut self) -> Vec<FileRecord> {
        self.files
            .drain()
            .map(|(_, t)| {
                t.finish(
                    Outcome::Incomplete,
                    Some("the channel ended while the file was open".into()),
                )
            })
            .collect()
    }

    fn refuse(id: u32, code: u32, what: String, out: &mut Vec<Out>) {
        Self::refuse_as(Direction::Upload, id, code, what, out);
    }

    fn refuse_as(direction: Direction, id: u32, code: u32, what: String, out: &mut Vec<Out>) {
        let message = match code {
            FX_PERMISSION_DENIED => {
                format!("refused by Sekisho: {what} is not allowed at this access level")
            }
            _ => format!("refused by Sekisho: {what}"),
        };
        out.push(Out::Vendor(wire::status(id, code, &message)));
        out.push(Out::Refused(direction, what));
    }

    fn request(&mut self, p: Vec<u8>, out: &mut Vec<Out>) {
        let packet = Packet(&p);
        let Some(kind) = packet.kind() else {
            return;
        };
        if kind == FXP_INIT {
            out.push(Out::Target(p));
            return;
        }
        // A request without an id cannot be answered: refuse with id 0 (the client fails it).
        let id = packet.id().unwrap_or(0);
        if matches!(self.pending.get(&id), Some(Pending::Internal)) {
            let what = format!("request id {id} (in use by the gateway)");
            return Self::refuse(id, FX_FAILURE, what, out);
        }
        let handle = packet.first().map(|(h, _)| h.to_vec());
        if let Some(h) = handle.as_ref().filter(|h| self.staged.contains(*h)) {
            return self.staged_request(kind, id, h.clone(), &packet, out);
        }
        if let Some((direction, what)) = self.denied(kind, &packet) {
            return Self::refuse_as(direction, id, FX_PERMISSION_DENIED, what, out);
        }
        match kind {
            FXP_OPEN => return self.open(id, &p, out),
            FXP_READ => {
                if let Some(h) = handle
                    && let Some(t) = self.files.get_mut(&h)
                    && t.direction == Direction::Download
                {
                    let next = 9 + 4 + h.len();
                    let offset = packet.u64_at(next).unwrap_or(0);
                    let len = packet.u32_at(next + 8).unwrap_or(0);
                    if let DownloadMode::Allow(limit) = self.download
                        && !read_within(limit, offset, u64::from(len))
                    {
                        let what = format!(
                            "reading {} past the download limit of {} bytes",
                            t.path,
                            limit.unwrap_or(0)
                        );
                        t.fail(Outcome::Refused, what.clone());
                        return Self::refuse_as(
                            Direction::Download,
                            id,
                            FX_PERMISSION_DENIED,
                            what,
                            out,
                        );
                    }
                    self.pending.insert(id, Pending::Read { handle: h, offset });
                }
            }
            FXP_WRITE => {
                if let Some(h) = handle
                    && let Some(t) = self.files.get_mut(&h)
                {
                    let next = 9 + 4 + h.len();
                    let offset = packet.u64_at(next).unwrap_or(0);
                    if let Some((data, _)) = packet.string(next + 8) {
                        t.feed(offset, data);
                    }
                    self.pending.insert(id, Pending::Write { handle: h });
                }
            }
            FXP_CLOSE => {
                if let Some(h) = handle.filter(|h| self.files.contains_key(h)) {
                    self.pending.insert(id, Pending::Close { handle: h });
                }
            }
            _ => {}
        }
        out.push(Out::Target(p));
    }

    /// Why the level refuses this request, if it does.
    fn denied(&self, kind: u8, packet: &Packet<'_>) -> Option<(Direction, String)> {
        self.why_denied(kind, packet).map(|(download, what)| {
            let d = if download {
                Direction::Download
            } else {
                Direction::Upload
            };
            (d, what)
        })
    }

    /// `(whether it is a download, what)` for a refused request.
    fn why_denied(&self, kind: u8, packet: &Packet<'_>) -> Option<(bool, String)> {
        let name = || packet.first().map(|(s, _)| lossy(s)).unwrap_or_default();
        let writes = self.upload != UploadMode::Deny;
        match kind {
            FXP_OPEN => {
                let Some((path, next)) = packet.first() else {
                    return Some((false, "a malformed open request".into()));
                };
                let Some(flags) = packet.u32_at(next) else {
                    return Some((
                        false,
                        format!("a malformed open request for {}", lossy(path)),
                    ));
                };
                if flags & !FXF_READ != 0 && !writes {
                    return Some((false, format!("opening {} for writing", lossy(path))));
                }
                if flags & FXF_READ != 0 && self.download == DownloadMode::Deny {
                    return Some((true, format!("downloading {}", lossy(path))));
                }
                None
            }
            FXP_CLOSE | FXP_READ | FXP_LSTAT | FXP_FSTAT | FXP_OPENDIR | FXP_READDIR
            | FXP_REALPATH | FXP_STAT | FXP_READLINK => None,
            FXP_EXTENDED => {
                let ext = name();
                if READ_ONLY_EXTENSIONS.contains(&ext.as_str())
                    || (writes && WRITING_EXTENSIONS.contains(&ext.as_str()))
                {
                    None
                } else {
                    Some((false, format!("the {ext} extension")))
                }
            }
            FXP_WRITE | FXP_SETSTAT | FXP_FSETSTAT | FXP_REMOVE | FXP_MKDIR | FXP_RMDIR
            | FXP_RENAME | FXP_SYMLINK
                if writes =>
            {
                None
            }
            FXP_WRITE => Some((false, "writing to a file".into())),
            FXP_SETSTAT | FXP_FSETSTAT => {
                Some((false, format!("changing attributes of {}", name())))
            }
            FXP_REMOVE => Some((false, format!("removing {}", name()))),
            FXP_MKDIR => Some((false, format!("creating directory {}", name()))),
            FXP_RMDIR => Some((false, format!("removing directory {}", name()))),
            FXP_RENAME => Some((false, format!("renaming {}", name()))),
            FXP_SYMLINK => Some((false, "creating a symbolic link".into())),
            other => Some((false, format!("sftp request type {other}"))),
        }
    }

    fn open(&mut self, id: u32, p: &[u8], out: &mut Vec<Out>) {
        let packet = Packet(p);
        let (path, flags, attrs) = match packet.first() {
            Some((path, next)) => (
                lossy(path),
                packet.u32_at(next).unwrap_or(0),
                p.get(next + 4..).unwrap_or_default().to_vec(),
            ),
            None => return Self::refuse(id, FX_FAILURE, "a malformed open request".into(), out),
        };
        let writing = flags & (FXF_WRITE | FXF_APPEND) != 0;
        if writing && self.upload == UploadMode::Quarantine {
            // OpenSSH opens uploads with WRITE|CREAT (and truncates at the end); whether the
            // file is written whole, from its first byte on, is checked at the close.
            let whole = flags & FXF_READ == 0 && flags & FXF_APPEND == 0 && flags & FXF_CREAT != 0;
            if !whole {
                let what = format!(
                    "opening {path} to append or read back (uploads are scanned in quarantine, whole files only)"
                );
                return Self::refuse(id, FX_OP_UNSUPPORTED, what, out);
            }
            self.next_staged += 1;
            let mut handle = STAGED_PREFIX.to_vec();
            handle.extend_from_slice(self.next_staged.to_string().as_bytes());
            self.staged.insert(handle.clone());
            out.push(Out::StageOpen {
                id,
                handle,
                path,
                flags,
                attrs,
            });
            return;
        }
        let direction = if writing {
            Direction::Upload
        } else {
            Direction::Download
        };
        self.pending.insert(id, Pending::Open { path, direction });
        out.push(Out::Target(p.to_vec()));
    }

    fn staged_request(
        &mut self,
        kind: u8,
        id: u32,
        handle: Vec<u8>,
        packet: &Packet<'_>,
        out: &mut Vec<Out>,
    ) {
        let next = 9 + 4 + handle.len();
        match kind {
            FXP_WRITE => match (packet.u64_at(next), packet.string(next + 8)) {
                (Some(offset), Some((data, _))) => out.push(Out::StageWrite {
                    id,
                    handle,
                    offset,
                    data: data.to_vec(),
                }),
                _ => Self::refuse(id, FX_FAILURE, "a malformed write request".into(), out),
            },
            FXP_FSTAT => out.push(Out::StageStat { id, handle }),
            // Attributes (`put -p`) and fsync of a file not on the target yet: accepted; the
            // target's file gets the attributes of the open.
            FXP_FSETSTAT | FXP_EXTENDED => {
                out.push(Out::Vendor(wire::status(id, FX_OK, "")));
            }
            FXP_CLOSE => out.push(Out::StageClose { id, handle }),
            other => Self::refuse(
                id,
                FX_FAILURE,
                format!("sftp request type {other} on a file being scanned"),
                out,
            ),
        }
    }

    fn reply(&mut self, p: Vec<u8>, out: &mut Vec<Out>) {
        let packet = Packet(&p);
        let kind = packet.kind();
        if kind == Some(FXP_VERSION) {
            out.push(Out::Vendor(p));
            return;
        }
        let Some(pending) = packet.id().and_then(|id| self.pending.remove(&id)) else {
            out.push(Out::Vendor(p));
            return;
        };
        let status = || wire::status_of(&packet);
        match pending {
            Pending::Internal => {
                let id = packet.id().unwrap_or(0);
                out.push(Out::Internal(id, p));
                return;
            }
            Pending::Open { path, direction } => match kind {
                Some(FXP_HANDLE) => {
                    if let Some((h, _)) = packet.first() {
                        self.files.insert(h.to_vec(), Tracker::new(direction, path));
                    }
                }
                _ => {
                    let why = status().map_or_else(|| "no handle".into(), |(_, m)| m);
                    out.push(Out::Done(
                        Tracker::new(direction, path).finish(Outcome::Failed, Some(why)),
                    ));
                }
            },
            Pending::Read { handle, offset } => {
                if let Some(t) = self.files.get_mut(&handle) {
                    match kind {
                        Some(FXP_DATA) => {
                            if let Some((data, _)) = packet.string(9) {
                                t.feed(offset, data);
                            }
                        }
                        _ => {
                            if let Some((code, m)) = status()
                                && code != FX_EOF
                            {
                                t.fail(Outcome::Failed, m);
                            }
                        }
                    }
                }
            }
            Pending::Write { handle } => {
                if let Some(t) = self.files.get_mut(&handle)
                    && let Some((code, m)) = status()
                    && code != FX_OK
                {
                    t.fail(Outcome::Failed, m);
                }
            }
            Pending::Close { handle } => {
                if let Some(t) = self.files.remove(&handle) {
                    let record = match status() {
                        Some((FX_OK, _)) => t.finish(Outcome::Completed, None),
                        Some((_, m)) => t.finish(Outcome::Failed, Some(m)),
                        None => t.finish(Outcome::Failed, Some("a malformed reply".into())),
                    };
                    out.push(Out::Done(record));
                }
            }
        }
        out.push(Out::Vendor(p));
    }
}

#[cfg(test)]
#[path = "proxy_tests.rs"]
mod tests;
