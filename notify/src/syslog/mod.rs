//! The audit log streamed to the hospital's SIEM (issue #18): every audit row, in order, as
//! an RFC 5424 message over TCP (octet-counted frames, RFC 6587), TLS by default (RFC 5425).
//!
//! One node streams at a time (a lease in the database, renewed every round, taken over by
//! another node when it runs out). The position reached is stored after each batch is
//! written, so a restart resumes after it: no row is skipped, and a row is sent again only if
//! the node died between writing a batch and storing its position, which the collector sees
//! from the repeated sequence number. Each node also sends its own signed checkpoints of the
//! chain's head as they are written (MSGID `checkpoint`).
//!
//! What TCP syslog cannot promise: frames a collector accepted but had not processed when it
//! died are lost with it. The sequence numbers show such a gap, and `sekisho audit export`
//! fills it.

pub mod format;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use jiff::SignedDuration;
use rustls::pki_types::ServerName;
use sekisho_config::SyslogConfig;
use sekisho_store::Store;
use sekisho_store::audit::{AuditFilter, Page};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::error::NotifyError;
use format::Origin;

/// How often the log is looked at.
const TICK: Duration = Duration::from_secs(1);
/// How long the streaming lease lasts without renewal.
const LEASE: SignedDuration = SignedDuration::from_secs(30);
/// Rows per batch.
const BATCH: i64 = 500;
/// Connecting, and writing one batch, may take this long.
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait between tries after a failure.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// How long a stopping node keeps trying to send what is left.
const FINAL: Duration = Duration::from_secs(5);
/// Checkpoints waiting for a connection.
const CHECKPOINTS: usize = 256;

/// The connection to the collector.
enum Conn {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl Conn {
    async fn send(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Conn::Plain(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
            Conn::Tls(s) => {
                s.write_all(bytes).await?;
                s.flush().await
            }
        }
    }

    /// Whether the collector still holds the connection: a collector sends nothing, so
    /// anything to read (its close, an alert) means the connection is over. Checked before
    /// each batch, so that a batch is not written into a connection the collector closed.
    fn open(&self) -> bool {
        let tcp = match self {
            Conn::Plain(s) => s,
            Conn::Tls(s) => s.get_ref().0,
        };
        let mut byte = [0u8; 1];
        matches!(tcp.try_read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// The stream of one node.
pub struct SyslogStream {
    store: Store,
    config: SyslogConfig,
    node: String,
    origin: Origin,
    tls: Option<(tokio_rustls::TlsConnector, ServerName<'static>)>,
    checkpoints: mpsc::Receiver<String>,
    waiting: VecDeque<String>,
    conn: Option<Conn>,
}

/// The sending side of a node's checkpoints: the gateway hands each one it writes here.
pub type CheckpointSink = mpsc::Sender<String>;

impl SyslogStream {
    /// The stream `config` describes, reading the audit log from its store (a pool of its own,
    /// so that it outlives the gateway's), for node `node` (id) named `name`; `None` when
    /// `[syslog]` has no address. A CA file that cannot be read is an error now.
    pub fn new(
        config: Option<(&SyslogConfig, Store)>,
        node: &str,
        name: &str,
    ) -> Result<Option<(Self, CheckpointSink)>, NotifyError> {
        let Some((config, store)) = config else {
            return Ok(None);
        };
        let tls = if config.tls {
            let host = config
                .server_name
                .clone()
                .or_else(|| {
                    config
                        .address
                        .rsplit_once(':')
                        .map(|(h, _)| h.trim_matches(['[', ']']).to_owned())
                })
                .unwrap_or_default();
            let name = ServerName::try_from(host.clone()).map_err(|_| {
                NotifyError::Setup(format!("[syslog] `{host}` is not a server name"))
            })?;
            Some((
                tokio_rustls::TlsConnector::from(Arc::new(client_config(config)?)),
                name,
            ))
        } else {
            None
        };
        let (sink, checkpoints) = mpsc::channel(CHECKPOINTS);
        Ok(Some((
            Self {
                store,
                origin: Origin {
                    facility: config.facility,
                    hostname: name.to_owned(),
                    app_name: config.app_name.clone(),
                    procid: std::process::id(),
                },
                config: config.clone(),
                node: node.to_owned(),
                tls,
                checkpoints,
                waiting: VecDeque::new(),
                conn: None,
            },
            sink,
        )))
    }

    /// Where the stream goes, for the start banner.
    pub fn describe(&self) -> String {
        format!(
            "{} ({})",
            self.config.address,
            if self.tls.is_some() {
                "TLS"
            } else {
                "plain TCP"
            }
        )
    }

    /// Streams until `stop`, then sends what is left (for a few seconds) and gives the lease up.
    /// Cancel `stop` after the gateway has stopped, so that its last rows and checkpoint go too.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut wait = TICK;
        loop {
            wait = match self.round().await {
                Ok(()) => TICK,
                Err(e) => {
                    let next = (wait * 2).min(MAX_BACKOFF);
                    tracing::warn!(collector = %self.config.address, error = %e, retry_in_seconds = next.as_secs(), "cannot stream the audit log to syslog");
                    self.conn = None;
                    next
                }
            };
            tokio::select! {
                () = stop.cancelled() => break,
                () = tokio::time::sleep(wait) => {}
                Some(line) = self.checkpoints.recv() => self.waiting.push_back(line),
            }
        }
        while let Ok(line) = self.checkpoints.try_recv() {
            self.waiting.push_back(line);
        }
        if let Err(e) = tokio::time::timeout(FINAL, self.round())
            .await
            .unwrap_or_else(|_| Err("timed out".into()))
        {
            tracing::warn!(collector = %self.config.address, error = %e, "cannot send the last audit rows to syslog; the next node to stream sends them");
        }
        if let Err(e) = self.store.syslog_release(&self.node).await {
            tracing::warn!(error = %e, "cannot give the syslog lease up");
        }
        self.store.close().await;
    }

    /// Sends waiting checkpoints, then, holding the lease, every audit row not sent yet.
    async fn round(&mut self) -> Result<(), String> {
        while let Ok(line) = self.checkpoints.try_recv() {
            self.waiting.push_back(line);
        }
        while let Some(line) = self.waiting.front() {
            let m = format::checkpoint_message(&self.origin, jiff::Timestamp::now(), line);
            self.write(&format::frame(&m)).await?;
            self.waiting.pop_front();
        }
        loop {
            let Some(last) = self
                .store
                .syslog_claim(&self.node, LEASE)
                .await
                .map_err(|e| e.to_string())?
            else {
                return Ok(());
            };
            let rows = self
                .store
                .audit_page(&AuditFilter::default(), Page::OldestAfter(last), BATCH)
                .await
                .map_err(|e| e.to_string())?;
            let Some(end) = rows.last().map(|r| r.entry.seq) else {
                return Ok(());
            };
            let mut bytes = Vec::new();
            for row in &rows {
                bytes.extend(format::frame(&format::audit_message(&self.origin, row)));
            }
            self.write(&bytes).await?;
            if !self
                .store
                .syslog_advance(&self.node, end)
                .await
                .map_err(|e| e.to_string())?
            {
                tracing::warn!(
                    seq = end,
                    "the syslog lease passed to another node during a batch; it may send these rows again"
                );
                return Ok(());
            }
            tracing::debug!(from = last + 1, to = end, "audit rows streamed to syslog");
            if rows.len() < usize::try_from(BATCH).unwrap_or(usize::MAX) {
                return Ok(());
            }
        }
    }

    /// Writes `bytes`, connecting first if there is no open connection.
    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        if !self.conn.as_ref().is_some_and(Conn::open) {
            self.conn = Some(self.connect().await?);
        }
        let conn = self.conn.as_mut().ok_or("not connected")?;
        match tokio::time::timeout(IO_TIMEOUT, conn.send(bytes)).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("writing: {e}")),
            Err(_) => Err("writing timed out".into()),
        }
    }

    async fn connect(&self) -> Result<Conn, String> {
        let address = &self.config.address;
        let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| format!("connecting to {address} timed out"))?
            .map_err(|e| format!("connecting to {address}: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let conn = match &self.tls {
            None => Conn::Plain(tcp),
            Some((connector, name)) => Conn::Tls(Box::new(
                tokio::time::timeout(IO_TIMEOUT, connector.connect(name.clone(), tcp))
                    .await
                    .map_err(|_| format!("TLS with {address} timed out"))?
                    .map_err(|e| format!("TLS with {address}: {e}"))?,
            )),
        };
        tracing::info!(collector = %address, "streaming the audit log to syslog");
        Ok(conn)
    }
}

/// TLS trusting `ca_file`, or the system's roots.
fn client_config(config: &SyslogConfig) -> Result<rustls::ClientConfig, NotifyError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    match &config.ca_file {
        Some(path) => {
            let bad = |e: &dyn std::fmt::Display| {
                NotifyError::Setup(format!("[syslog] ca_file {}: {e}", path.display()))
            };
            for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
                roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
            }
            if roots.is_empty() {
                return Err(bad(&"no certificate in it"));
            }
        }
        None => {
            for cert in rustls_native_certs::load_native_certs().certs {
                let _ = roots.add(cert);
            }
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| NotifyError::Setup(format!("[syslog] TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
