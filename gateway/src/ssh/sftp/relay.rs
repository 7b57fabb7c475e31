//! One sftp channel's relay: acts on what the [`Proxy`] decides. Packets for the target go on
//! the channel's uplink, packets for the vendor through the pump (between whole packets of
//! the target's), each file that crossed is logged (database with its audit row, and the
//! recording's `files.jsonl`), and a quarantined upload is staged, scanned and, only when
//! clean, written to the target by [`deliver`] before the vendor's close is answered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use aws_lc_rs::digest::{Context, SHA256};
use bytes::Bytes;
use sekisho_domain::files::{Direction, DownloadMode, FileRecord, Outcome, UploadMode};
use tokio::sync::{mpsc, oneshot};

use super::proxy::{Out, Proxy};
use super::track::now_us;
use super::wire::{self, FX_FAILURE, FX_OK, FX_PERMISSION_DENIED, FXP_HANDLE, Packet, TooLarge};
use crate::files::quarantine::{Quarantine, Staged};
use crate::files::scan::{Scanners, Verdict};
use crate::session::Live;
use crate::ssh::file_log::FileLog;
use crate::ssh::notice::{VendorWrite, notice};
use crate::ssh::uplink::Uplink;

/// Bytes per write when the gateway delivers a scanned file to the target.
const DELIVER_CHUNK: usize = 64 * 1024;
/// Writes in flight during a delivery.
const DELIVER_WINDOW: usize = 16;
/// How long the target may take to answer one of the gateway's requests.
const TARGET_REPLY: Duration = Duration::from_secs(120);

/// An upload being staged.
struct Upload {
    staged: Staged,
    path: String,
    flags: u32,
    attrs: Vec<u8>,
    started_us: i64,
    /// The first write that could not be staged: the upload is blocked at its close.
    failed: Option<String>,
    /// The end of what was written from offset 0 on, in order.
    next: u64,
    /// Whether every write continued where the previous one ended (a whole file, not a
    /// resumed or patched one).
    in_order: bool,
}

/// The sftp relay of a channel, once it speaks sftp (shared by the handler and the pump).
pub type SftpSlot = Arc<std::sync::OnceLock<Arc<SftpRelay>>>;

/// What the relay of one channel shares between the vendor side (the handler), the target
/// side (the pump) and deliveries.
pub struct SftpRelay {
    proxy: Mutex<Proxy>,
    waiters: Mutex<HashMap<u32, oneshot::Sender<Vec<u8>>>>,
    uploads: Mutex<HashMap<Vec<u8>, Upload>>,
    files: FileLog,
    scanners: Option<Scanners>,
    quarantine: Quarantine,
}

/// What the handler must do after vendor bytes were relayed.
#[derive(Default)]
pub struct Handled {
    /// Whole packets for the target, in order (each handed on as it was reassembled).
    pub forward: Vec<Vec<u8>>,
    /// Packets for the vendor (through the pump).
    pub reply: Vec<Vec<u8>>,
    /// Refused requests, to audit: which way, and what.
    pub refused: Vec<(Direction, String)>,
    /// Uploads closed: scan and deliver them (handle, request id).
    pub closed: Vec<(Vec<u8>, u32)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl SftpRelay {
    pub fn new(
        upload: UploadMode,
        download: DownloadMode,
        files: FileLog,
        scanners: Option<Scanners>,
        quarantine: Quarantine,
    ) -> Self {
        Self {
            proxy: Mutex::new(Proxy::new(upload, download)),
            waiters: Mutex::new(HashMap::new()),
            uploads: Mutex::new(HashMap::new()),
            files,
            scanners,
            quarantine,
        }
    }

    /// Logs a file that crossed.
    pub async fn log(&self, live: &Live, record: &FileRecord) {
        self.files.log(live, record).await;
    }

    /// Vendor bytes: decided by the proxy; staging done here.
    pub async fn from_vendor(&self, live: &Live, data: &[u8]) -> Result<Handled, TooLarge> {
        let outs = lock(&self.proxy).from_vendor(data)?;
        let mut h = Handled::default();
        for out in outs {
            match out {
                Out::Target(p) => h.forward.push(p),
                Out::Vendor(p) => h.reply.push(p),
                Out::Refused(direction, what) => h.refused.push((direction, what)),
                Out::Done(record) => self.log(live, &record).await,
                Out::StageOpen {
                    id,
                    handle,
                    path,
                    flags,
                    attrs,
                } => match self.quarantine.stage(live.staged.clone()) {
                    Ok(staged) => {
                        lock(&self.uploads).insert(
                            handle.clone(),
                            Upload {
                                staged,
                                path,
                                // The staged file replaces the target's whole.
                                flags: flags | wire::FXF_TRUNC,
                                attrs,
                                started_us: now_us(),
                                failed: None,
                                next: 0,
                                in_order: true,
                            },
                        );
                        h.reply.push(wire::handle(id, &handle));
                    }
                    Err(e) => {
                        lock(&self.proxy).unstage(&handle);
                        tracing::error!(error = %e, "quarantine: cannot stage an upload");
                        h.reply.push(wire::status(
                            id,
                            FX_FAILURE,
                            &format!("Sekisho cannot stage {path} for scanning: {e}"),
                        ));
                    }
                },
                Out::StageWrite {
                    id,
                    handle,
                    offset,
                    data,
                } => {
                    let mut uploads = lock(&self.uploads);
                    let status = match uploads.get_mut(&handle) {
                        Some(u) if u.failed.is_none() => match u.staged.write_at(offset, &data) {
                            Ok(()) => {
                                if offset == u.next {
                                    u.next += data.len() as u64;
                                } else {
                                    u.in_order = false;
                                }
                                wire::status(id, FX_OK, "")
                            }
                            Err(why) => {
                                let message = format!("refused by Sekisho: {why}");
                                u.failed = Some(why);
                                wire::status(id, FX_FAILURE, &message)
                            }
                        },
                        Some(u) => wire::status(
                            id,
                            FX_FAILURE,
                            &format!(
                                "refused by Sekisho: {}",
                                u.failed.as_deref().unwrap_or_default()
                            ),
                        ),
                        None => wire::status(id, FX_FAILURE, "no such upload"),
                    };
                    h.reply.push(status);
                }
                Out::StageStat { id, handle } => {
                    let size = lock(&self.uploads)
                        .get(&handle)
                        .map_or(0, |u| u.staged.size());
                    h.reply.push(wire::attrs_size(id, size));
                }
                Out::StageClose { id, handle } => h.closed.push((handle, id)),
                Out::Internal(..) => {}
            }
        }
        Ok(h)
    }

    /// Target bytes: returns the packets for the vendor; gateway replies go to their waiters.
    pub async fn from_target(&self, live: &Live, data: &[u8]) -> Result<Vec<Vec<u8>>, TooLarge> {
        let outs = lock(&self.proxy).from_target(data)?;
        let mut to_vendor = vec![];
        for out in outs {
            match out {
                Out::Vendor(p) => to_vendor.push(p),
                Out::Internal(id, p) => {
                    if let Some(tx) = lock(&self.waiters).remove(&id) {
                        let _ = tx.send(p);
                    }
                }
                Out::Done(record) => self.log(live, &record).await,
                _ => {}
            }
        }
        Ok(to_vendor)
    }

    /// The channel ended: files still open, and uploads never closed, are logged incomplete.
    pub async fn finish(&self, live: &Live) {
        let open = lock(&self.proxy).finish();
        let staged: Vec<Upload> = lock(&self.uploads).drain().map(|(_, u)| u).collect();
        for record in open {
            self.log(live, &record).await;
        }
        for u in staged {
            let record = FileRecord {
                direction: Direction::Upload,
                path: u.path,
                bytes: u.staged.size(),
                sha256: None,
                sequential: false,
                started_at_us: u.started_us,
                ended_at_us: now_us(),
                outcome: Outcome::Incomplete,
                detail: Some(
                    "the channel ended before the file was closed; it never reached the target"
                        .into(),
                ),
                quarantine: None,
            };
            self.log(live, &record).await;
        }
    }

    /// Sends one request of the gateway's own and waits for its reply.
    async fn ask(
        &self,
        live: &Live,
        uplink: &Uplink,
        make: impl FnOnce(u32) -> Vec<u8>,
    ) -> Result<Vec<u8>, String> {
        let (id, rx) = self.expect();
        uplink.send(Bytes::from(make(id))).await;
        self.wait(live, id, rx).await
    }

    /// An id for a request of the gateway's own, and where its reply will arrive.
    fn expect(&self) -> (u32, oneshot::Receiver<Vec<u8>>) {
        let id = lock(&self.proxy).internal_id();
        let (tx, rx) = oneshot::channel();
        lock(&self.waiters).insert(id, tx);
        (id, rx)
    }

    async fn wait(
        &self,
        live: &Live,
        id: u32,
        rx: oneshot::Receiver<Vec<u8>>,
    ) -> Result<Vec<u8>, String> {
        let result = tokio::select! {
            r = tokio::time::timeout(TARGET_REPLY, rx) => match r {
                Ok(Ok(p)) => Ok(p),
                Ok(Err(_)) => Err("the target's channel closed".to_owned()),
                Err(_) => Err(format!("the target did not answer within {} seconds", TARGET_REPLY.as_secs())),
            },
            () = live.ended.cancelled() => Err("the session ended".to_owned()),
        };
        lock(&self.waiters).remove(&id);
        result
    }

    /// Scans the upload closed by request `id` and, if clean, writes it to the target; then
    /// answers the vendor's close (through `reply`) and logs the transfer.
    pub async fn deliver(
        self: Arc<Self>,
        live: Arc<Live>,
        uplink: Uplink,
        (reply, vendor): (mpsc::Sender<Vec<u8>>, VendorWrite),
        handle: Vec<u8>,
        id: u32,
    ) {
        let upload = lock(&self.uploads).remove(&handle);
        lock(&self.proxy).unstage(&handle);
        let Some(upload) = upload else {
            let _ = reply
                .send(wire::status(id, FX_FAILURE, "no such upload"))
                .await;
            return;
        };
        if !upload.in_order || upload.next != upload.staged.size() {
            let why = "refused: the file was not written whole, from its first byte on in order (a resumed upload?); uploads scanned in quarantine must be whole files".to_owned();
            let record = FileRecord {
                direction: Direction::Upload,
                path: upload.path.clone(),
                bytes: upload.staged.size(),
                sha256: None,
                sequential: false,
                started_at_us: upload.started_us,
                ended_at_us: now_us(),
                outcome: Outcome::Refused,
                detail: Some(why.clone()),
                quarantine: None,
            };
            // sftp clients print the status code, not its message: the reason goes to stderr.
            notice(&live, &vendor, None, &format!("{}: {why}", record.path)).await;
            let _ = reply
                .send(wire::status(id, wire::FX_OP_UNSUPPORTED, &why))
                .await;
            self.log(&live, &record).await;
            return;
        }
        let verdict = match (&upload.failed, &self.scanners) {
            (Some(why), _) => Verdict::Failed(why.clone()),
            (None, Some(s)) => match upload.staged.path() {
                Some(p) => s.scan(p).await,
                None => Verdict::Failed("the staged file is gone".into()),
            },
            (None, None) => Verdict::Failed("no scanner is configured".into()),
        };
        tracing::info!(session = %live.session.id, path = %upload.path, verdict = ?verdict, "upload scanned");
        let (status, record) = match verdict {
            Verdict::Clean => self.write_to_target(&live, &uplink, upload).await,
            Verdict::Infected(why) => self.block(upload, format!("blocked: {why}")).await,
            Verdict::Failed(why) => {
                self.block(
                    upload,
                    format!("blocked: the file could not be scanned ({why})"),
                )
                .await
            }
        };
        if status.0 != FX_OK {
            notice(
                &live,
                &vendor,
                None,
                &format!("{}: {}", record.path, status.1),
            )
            .await;
        }
        let _ = reply.send(wire::status(id, status.0, &status.1)).await;
        self.log(&live, &record).await;
    }

    /// Keeps a blocked upload in quarantine.
    async fn block(&self, upload: Upload, why: String) -> ((u32, String), FileRecord) {
        let (bytes, sha256) = match hash_staged(&upload.staged).await {
            Ok(h) => h,
            Err(e) => (upload.staged.size(), format!("unreadable: {e}")),
        };
        let qid = uuid::Uuid::new_v4().to_string();
        let kept = upload.staged.keep(&qid);
        if let Err(e) = &kept {
            tracing::error!(error = %e, "quarantine: cannot keep a blocked file");
        }
        let record = FileRecord {
            direction: Direction::Upload,
            path: upload.path,
            bytes,
            sha256: Some(sha256),
            sequential: true,
            started_at_us: upload.started_us,
            ended_at_us: now_us(),
            outcome: Outcome::Blocked,
            detail: Some(why.clone()),
            quarantine: kept.is_ok().then_some(qid),
        };
        ((FX_PERMISSION_DENIED, why), record)
    }

    async fn write_to_target(
        &self,
        live: &Live,
        uplink: &Uplink,
        upload: Upload,
    ) -> ((u32, String), FileRecord) {
        let mut record = FileRecord {
            direction: Direction::Upload,
            path: upload.path.clone(),
            bytes: 0,
            sha256: None,
            sequential: true,
            started_at_us: upload.started_us,
            ended_at_us: 0,
            outcome: Outcome::Completed,
            detail: None,
            quarantine: None,
        };
        let result = self.send_file(live, uplink, &upload).await;
        record.ended_at_us = now_us();
        match result {
            Ok((bytes, sha256)) => {
                record.bytes = bytes;
                record.sha256 = Some(sha256);
                ((FX_OK, String::new()), record)
            }
            Err(why) => {
                record.bytes = upload.staged.size();
                record.outcome = Outcome::Failed;
                let message = format!("scanned clean, but the target did not take it: {why}");
                record.detail = Some(message.clone());
                ((FX_FAILURE, message), record)
            }
        }
    }

    /// Open, write and close on the target; returns the bytes written and their SHA-256.
    async fn send_file(
        &self,
        live: &Live,
        uplink: &Uplink,
        upload: &Upload,
    ) -> Result<(u64, String), String> {
        let opened = self
            .ask(live, uplink, |id| {
                wire::open(id, upload.path.as_bytes(), upload.flags, &upload.attrs)
            })
            .await?;
        let p = Packet(&opened);
        if p.kind() != Some(FXP_HANDLE) {
            return Err(target_said(&p));
        }
        let handle = p.first().map(|(h, _)| h.to_vec()).unwrap_or_default();
        let size = upload.staged.size();
        let mut hash = Context::new(&SHA256);
        let mut in_flight = std::collections::VecDeque::new();
        let mut offset = 0u64;
        let mut buf = vec![0u8; DELIVER_CHUNK];
        let mut failure = None;
        while offset < size || !in_flight.is_empty() {
            while offset < size && in_flight.len() < DELIVER_WINDOW && failure.is_none() {
                let n = upload
                    .staged
                    .read_at(offset, &mut buf)
                    .map_err(|e| format!("the staged file: {e}"))?;
                if n == 0 {
                    return Err("the staged file is shorter than what was written".into());
                }
                hash.update(&buf[..n]);
                let (id, rx) = self.expect();
                uplink
                    .send(Bytes::from(wire::write(id, &handle, offset, &buf[..n])))
                    .await;
                in_flight.push_back((id, rx));
                offset += n as u64;
            }
            let Some((id, rx)) = in_flight.pop_front() else {
                break;
            };
            let answer = self.wait(live, id, rx).await?;
            let p = Packet(&answer);
            if wire::status_of(&p).is_none_or(|(code, _)| code != FX_OK) && failure.is_none() {
                failure = Some(target_said(&p));
            }
            if failure.is_some() {
                offset = size; // nothing more is sent; what is in flight is awaited
            }
        }
        let closed = self
            .ask(live, uplink, |id| wire::close(id, &handle))
            .await?;
        if let Some(why) = failure {
            return Err(why);
        }
        let p = Packet(&closed);
        match wire::status_of(&p) {
            Some((FX_OK, _)) => Ok((size, hex::encode(hash.finish().as_ref()))),
            _ => Err(target_said(&p)),
        }
    }
}

/// What a target's non-OK reply says.
fn target_said(p: &Packet<'_>) -> String {
    match wire::status_of(p) {
        Some((_, m)) if !m.is_empty() => m,
        Some((code, _)) => format!("sftp status {code}"),
        None => "an unexpected reply".into(),
    }
}

/// The staged file's size and SHA-256.
async fn hash_staged(staged: &Staged) -> std::io::Result<(u64, String)> {
    let Some(path) = staged.path().map(ToOwned::to_owned) else {
        return Err(std::io::Error::other("the staged file is gone"));
    };
    tokio::task::spawn_blocking(move || {
        use std::io::Read as _;
        let mut f = std::fs::File::open(path)?;
        let mut hash = Context::new(&SHA256);
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0u64;
        loop {
            let n = f.read(&mut buf)?;
            if n == 0 {
                break;
            }
            total += n as u64;
            hash.update(&buf[..n]);
        }
        Ok((total, hex::encode(hash.finish().as_ref())))
    })
    .await
    .map_err(std::io::Error::other)?
}
