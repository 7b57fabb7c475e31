//! Starting and stopping the server process, in two steps:
//! [`prepare`] makes what is missing (data dir, keys, database, the first admin) and opens
//! what the whole process shares (the store, the event bus, the password hashers, the failure
//! log); then [`Prepared::start`] binds the listeners and serves, with the HTTP application
//! the caller built from those parts (the `sekisho` binary composes the approval API and the
//! web console: the gateway does not depend on them).

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use sekisho_config::Config;
use sekisho_domain::audit::AuditEvent;
use sekisho_store::Store;
use sekisho_store::audit::NewAuditEvent;
use sekisho_store::events::Events;
use sekisho_store::failures::FailureLog;
use sekisho_store::password::Hasher;
use sekisho_store::throttle::LoginThrottle;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::bootstrap::{self, InitialAdmin};
use crate::error::{GatewayError, Result};
use crate::keys::{self, GatewayKeys};

/// A running gateway.
#[derive(Debug)]
pub struct Started {
    /// Where the HTTP API actually listens (the port is real even if the config said 0).
    pub api_addr: SocketAddr,
    /// Set on the first start only.
    pub initial_admin: Option<InitialAdmin>,
    /// Key files created by this start (empty on a restart).
    pub created_keys: Vec<String>,
    pub ssh_host_fingerprint: String,
    /// Where the SSH gateway listens, when enabled.
    pub ssh_addr: Option<SocketAddr>,
    /// Where the designated client's QUIC listener listens (UDP), when enabled.
    pub quic_addr: Option<SocketAddr>,
    /// `https` or `http` (only if configured, on loopback).
    pub api_scheme: &'static str,
    /// The HTTPS certificate's fingerprint, and the file of a self-signed one the gateway
    /// made (not the hospital's).
    pub api_tls_fingerprint: Option<String>,
    pub api_tls_self_signed: Option<std::path::PathBuf>,
    done: JoinHandle<Result<()>>,
}

impl Started {
    /// Waits until the gateway has stopped (after `shutdown` is cancelled and connections
    /// drained or the grace period ran out).
    pub async fn wait(self) -> Result<()> {
        match self.done.await {
            Ok(r) => r,
            Err(e) => Err(GatewayError::Serve(std::io::Error::other(e))),
        }
    }
}

/// Options that are not configuration: nothing in the `sekisho` binary sets them.
#[derive(Clone, Copy, Debug, Default)]
pub struct StartOptions {
    /// **Benchmarks only** (`cargo bench --bench ssh_relay`, built with the `benchmarks`
    /// feature, which production builds do not have): sessions are relayed without being
    /// recorded, to measure what recording costs.
    #[cfg(feature = "benchmarks")]
    pub unrecorded_for_benchmarks: bool,
}

/// What [`prepare`] made and opened: the parts the HTTP application is built from.
pub struct Prepared {
    config: Config,
    pub store: Store,
    pub keys: GatewayKeys,
    /// Key files created by this start (empty on a restart).
    pub created_keys: Vec<String>,
    /// Set on the first start only.
    pub initial_admin: Option<InitialAdmin>,
    /// Through which the API tells live sessions to end.
    pub events: Events,
    pub hasher: Hasher,
    pub failures: Arc<FailureLog>,
    /// Failed logins and one-time codes: API, console and sessions count toward one limit.
    pub throttle: Arc<LoginThrottle>,
    node: sekisho_store::nodes::NodeInfo,
    lock: crate::nodes::DataLock,
    /// Where each signed checkpoint goes besides the recordings share (the SIEM stream).
    checkpoint_sink: Option<tokio::sync::mpsc::Sender<String>>,
}

/// Initialises what is missing (data dir, keys, database, admin), seals recordings and ends
/// sessions an earlier stop left open, and opens what the process shares.
pub async fn prepare(config: &Config) -> Result<Prepared> {
    let data_dir = config.data_dir.clone();
    keys::create_private_dir(&data_dir).map_err(|e| GatewayError::DataDir {
        path: data_dir.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let lock = crate::nodes::lock(config)?;
    let (keys, created_keys) = GatewayKeys::load_or_create(&data_dir.join("keys"))?;
    let store = Store::open(&config.database_url(), config.database.max_connections).await?;
    // Every node of a group holds the same keys (`sekisho node join`); the first one to use
    // the database claims it for its keys. A stranger is refused before it writes anything.
    let node = node_id(&data_dir)?;
    store
        .claim_group_keys(&node, &crate::group::fingerprint(&keys)?)
        .await?;
    // The database names the group's at-rest key; a rotation under way hands this node the
    // new one (or it does not start: it could not open what the others seal).
    crate::at_rest::start(&store, &node, &keys.at_rest, &data_dir.join("keys")).await?;
    let info = crate::nodes::info(config, &node);
    store.heartbeat(&info, true, &keys.at_rest.kids()).await?;
    // Tokens this node signs are accepted by every node; a key no node signs with any more
    // retires once the tokens it signed have expired.
    let retired = store
        .publish_token_key(
            &node,
            &keys.jwt_kid,
            &keys.jwt_public_pem,
            Duration::from_secs(60 * u64::from(config.api.token_ttl_minutes)),
        )
        .await?;
    if !retired.is_empty() {
        tracing::info!(kid = %keys.jwt_kid, retired = ?retired, "published a new token key; earlier ones retire when their tokens expire");
    }
    if !created_keys.is_empty() {
        store
            .audit(NewAuditEvent::system(AuditEvent::GatewayInitialized {
                data_dir: data_dir.display().to_string(),
                keys: created_keys.clone(),
            }))
            .await?;
    }
    let initial_admin = bootstrap::ensure_admin(&store, &data_dir).await?;
    // Recordings left open by a crash are sealed as `aborted` before anything new starts,
    // except those other live nodes are writing (a recordings directory shared by nodes).
    let elsewhere = store.live_sessions_elsewhere(&node).await?;
    crate::nodes::seal_open(
        sekisho_recorder::Library::new(&config.recordings_dir()),
        keys.recording.clone(),
        move |s| !elsewhere.contains(s),
        "the gateway stopped while the session was open".into(),
    )
    .await?;
    // Sessions this node left open when it stopped are over.
    let aborted = store.abort_open_sessions(&node).await?;
    if !aborted.is_empty() {
        tracing::warn!(
            count = aborted.len(),
            "marked sessions left open by an earlier stop as aborted"
        );
    }
    Ok(Prepared {
        config: config.clone(),
        failures: Arc::new(FailureLog::new(store.clone())),
        events: Events::across_nodes(&store),
        store,
        keys,
        created_keys,
        initial_admin,
        hasher: Hasher::for_this_machine(),
        throttle: Arc::new(LoginThrottle::new(
            config.api.login_max_failures,
            Duration::from_secs(60 * u64::from(config.api.lockout_minutes)),
        )),
        node: info,
        lock,
        checkpoint_sink: None,
    })
}

impl Prepared {
    /// This node: its id and name.
    pub fn node(&self) -> &sekisho_store::nodes::NodeInfo {
        &self.node
    }

    /// Hands each signed checkpoint this node writes to `sink` as well (its JSON line).
    pub fn send_checkpoints_to(&mut self, sink: tokio::sync::mpsc::Sender<String>) {
        self.checkpoint_sink = Some(sink);
    }
}

/// The HTTPS certificate in effect: the hospital's files, or the self-signed one made in
/// the keys directory.
fn api_certificate(
    config: &Config,
) -> Result<Option<(Arc<crate::https::CertSource>, Option<std::path::PathBuf>)>> {
    if !config.api.tls {
        return Ok(None);
    }
    let (cert, key, self_signed) = match (&config.api.tls_cert, &config.api.tls_key) {
        (Some(c), Some(k)) => (c.clone(), k.clone(), false),
        _ => {
            let (c, k, _) = keys::ensure_api_certificate(
                &config.data_dir.join("keys"),
                config.api.listen.ip(),
            )?;
            (c, k, true)
        }
    };
    let source = crate::https::CertSource::load(&cert, &key)?;
    Ok(Some((Arc::new(source), self_signed.then_some(cert))))
}

impl Prepared {
    /// Binds the listeners and serves `app` (the HTTP API and console) and the gateways
    /// until `shutdown` is cancelled.
    pub async fn start(
        self,
        app: axum::Router,
        shutdown: CancellationToken,
        options: StartOptions,
    ) -> Result<Started> {
        let Prepared {
            config,
            store,
            keys,
            created_keys,
            initial_admin,
            events,
            hasher,
            failures,
            throttle,
            node,
            lock,
            checkpoint_sink,
        } = self;
        let config = &config;
        let api = bind("api", config.api.listen).await?;
        let api_addr = api.local_addr().map_err(GatewayError::Serve)?;
        let certs = api_certificate(config)?;
        let api_scheme = if certs.is_some() { "https" } else { "http" };
        let mut listeners = vec![format!("api={api_scheme}://{api_addr}")];
        let ssh = if config.ssh.enabled {
            let l = bind("ssh", config.ssh.listen).await?;
            let addr = l.local_addr().map_err(GatewayError::Serve)?;
            listeners.push(format!("ssh={addr}"));
            Some((l, addr))
        } else {
            None
        };
        let ssh_addr = ssh.as_ref().map(|(_, a)| *a);
        store
            .audit(NewAuditEvent::system(AuditEvent::GatewayStarted {
                version: env!("CARGO_PKG_VERSION").to_owned(),
                listeners: listeners.clone(),
            }))
            .await?;
        tracing::info!(api = %api_addr, ssh_host_key = %keys.ssh_host_fingerprint(), "sekisho started");

        // The clock, before any session can start: checked now, then every check_minutes.
        let clock = Arc::new(crate::clock::Clock::default());
        crate::clock::check(&clock, &store, &config.time).await;
        if !config.time.ntp_servers.is_empty() {
            tokio::spawn(crate::clock::watch(
                clock.clone(),
                store.clone(),
                config.time.clone(),
                shutdown.clone(),
            ));
        }
        let sessions = tokio_util::task::TaskTracker::new();
        // Both listeners feed the same SSH gateway (decisions, recording, session ends).
        let shared = Arc::new(crate::session::Shared {
            store: store.clone(),
            at_rest: keys.at_rest.clone(),
            recorder: recorder(config, &keys, options)?,
            events: events.clone(),
            failures: failures.clone(),
            hasher: hasher.clone(),
            throttle: throttle.clone(),
            clock,
            mfa_required: config.policy.mfa_required.clone(),
            policy: config.domain_policy(),
            zone: config.display_zone(),
            ssh: config.ssh.clone(),
            input_limits: sekisho_domain::upload::InputLimits {
                stream: config.ssh.upload_ban_command_input_bytes,
                terminal: config.ssh.upload_ban_terminal_input_bytes,
                paste: config.ssh.paste_flag_bytes,
            },
            scanners: crate::files::scan::Scanners::from_config(&config.files),
            quarantine: crate::files::quarantine::Quarantine::open(
                &config.quarantine_dir(),
                config.files.quarantine_session_bytes,
                config.files.quarantine_total_bytes,
            )
            .map_err(|e| GatewayError::DataDir {
                path: config.quarantine_dir().display().to_string(),
                source: e,
            })?,
            warnings: config.policy.window_end_warnings_minutes.clone(),
            node: node.id.clone(),
            shutdown: shutdown.clone(),
            sessions: sessions.clone(),
            progress: Default::default(),
        });
        let ssh_server_config = crate::ssh::server_config(keys.ssh_host.clone());
        if let Some((listener, _)) = ssh {
            tokio::spawn(crate::ssh::serve(
                listener,
                ssh_server_config.clone(),
                shared.clone(),
                config.server.max_connections as usize,
            ));
        }
        let quic_addr = if config.quic.enabled {
            Some(start_quic(config, &keys, &shared, ssh_server_config.clone(), &shutdown).await?)
        } else {
            None
        };
        let app = app
            .layer(DefaultBodyLimit::max(config.api.max_body_bytes as usize))
            .layer(GlobalConcurrencyLimitLayer::new(
                config.server.max_connections as usize,
            ))
            .layer(TraceLayer::new_for_http());
        let grace = Duration::from_secs(u64::from(config.server.shutdown_grace_seconds));
        let tls = match &certs {
            Some((c, _)) => Some(crate::https::server_config(c.clone())?),
            None => None,
        };
        if let Some((c, _)) = &certs {
            tokio::spawn(crate::sweeps::reload_on_sighup(c.clone(), shutdown.clone()));
        }
        let listener = crate::https::Listener {
            tls,
            max_connections: config.server.max_connections as usize,
            header_timeout: Duration::from_secs(u64::from(config.api.header_read_timeout_seconds)),
            grace,
        };
        let stop = shutdown.clone();
        let mut server = tokio::spawn(async move {
            crate::https::serve(api, app, listener, stop)
                .await
                .map_err(GatewayError::Serve)
        });
        tokio::spawn(crate::sweeps::retention_loop(
            store.clone(),
            sekisho_recorder::Library::new(&config.recordings_dir()),
            config.recordings.retain_days,
            shutdown.clone(),
        ));
        tokio::spawn(crate::sweeps::expire_requests(
            store.clone(),
            config.domain_policy(),
            config.display_zone(),
            shutdown.clone(),
        ));
        // Heartbeats go on while sessions drain, so the others do not take over meanwhile.
        let beating = CancellationToken::new();
        tokio::spawn({
            let (store, events, stop) = (store.clone(), events.clone(), shutdown.clone());
            async move { store.listen(events, stop).await }
        });
        tokio::spawn(
            crate::nodes::Heartbeats {
                store: store.clone(),
                info: node.clone(),
                every: Duration::from_secs(u64::from(config.nodes.heartbeat_seconds)),
                down_after: Duration::from_secs(u64::from(config.nodes.down_after_seconds)),
                library: sekisho_recorder::Library::new(&config.recordings_dir()),
                key: keys.recording.clone(),
                at_rest: keys.at_rest.clone(),
                keys_dir: keys.dir.clone(),
                events: events.clone(),
            }
            .run(beating.clone()),
        );
        tokio::spawn(crate::sweeps::flush_failures(
            failures.clone(),
            shutdown.clone(),
        ));
        let ssh_host_fingerprint = keys.ssh_host_fingerprint();
        let checkpoints = crate::checkpoints::Checkpoints {
            store: store.clone(),
            recordings: config.recordings_dir(),
            key: keys.recording.clone(),
            node: node.id.clone(),
            sink: checkpoint_sink,
        };
        tokio::spawn(checkpoints.clone().run(
            Duration::from_secs(60 * u64::from(config.audit.checkpoint_minutes)),
            shutdown.clone(),
        ));
        let done = tokio::spawn(async move {
            let result = tokio::select! {
                r = &mut server => r.unwrap_or_else(|e| Err(GatewayError::Serve(std::io::Error::other(e)))),
                () = async { shutdown.cancelled().await; tokio::time::sleep(grace).await } => {
                    tracing::warn!(grace_seconds = grace.as_secs(), "grace period over; closing remaining connections");
                    server.abort();
                    Ok(())
                }
            };
            // Live sessions end as aborted on shutdown; let them record that.
            sessions.close();
            if let Err(e) = failures.flush(true).await {
                tracing::error!(error = %e, "cannot write the last failure summaries");
            }
            if tokio::time::timeout(grace, sessions.wait()).await.is_err() {
                tracing::warn!("sessions did not finish ending within the grace period");
            }
            // Stopped on purpose: the other nodes do not take over from it.
            beating.cancel();
            if let Err(e) = store.node_stopped(&node.id).await {
                tracing::error!(error = %e, "cannot mark this node stopped");
            }
            let reason = match &result {
                Ok(()) => "shutdown requested".to_owned(),
                Err(e) => format!("error: {e}"),
            };
            if let Err(e) = store
                .audit(NewAuditEvent::system(AuditEvent::GatewayStopped { reason }))
                .await
            {
                tracing::error!(error = %e, "cannot record gateway stop in the audit log");
            }
            // The head after this node's last row, out of the database's reach.
            checkpoints.write(None).await;
            store.close().await;
            tracing::info!("sekisho stopped");
            drop(keys);
            drop(lock);
            result
        });
        Ok(Started {
            api_scheme,
            api_tls_fingerprint: certs.as_ref().map(|(c, _)| c.fingerprint()),
            api_tls_self_signed: certs.and_then(|(_, f)| f),
            api_addr,
            initial_admin,
            created_keys,
            ssh_host_fingerprint,
            ssh_addr,
            quic_addr,
            done,
        })
    }
}

/// The session recorder (unrecorded only in benchmark builds, when asked).
fn recorder(
    config: &Config,
    keys: &GatewayKeys,
    options: StartOptions,
) -> Result<sekisho_recorder::Recorder> {
    #[cfg(feature = "benchmarks")]
    if options.unrecorded_for_benchmarks {
        tracing::warn!("BENCHMARK MODE: sessions are not recorded");
        return Ok(sekisho_recorder::Recorder::unrecorded_for_benchmarks(
            &config.recordings_dir(),
            keys.recording.clone(),
        ));
    }
    let _ = options;
    Ok(
        sekisho_recorder::Recorder::new(&config.recordings_dir(), keys.recording.clone())?
            .with_in_flight(config.recordings.in_flight_bytes),
    )
}

/// Binds and starts the designated client's QUIC listener; returns its address.
async fn start_quic(
    config: &Config,
    keys: &GatewayKeys,
    shared: &Arc<crate::session::Shared>,
    ssh_config: Arc<russh::server::Config>,
    shutdown: &CancellationToken,
) -> Result<SocketAddr> {
    let quic_config = crate::quic::server_config(keys)
        .map_err(|e| GatewayError::Serve(std::io::Error::other(e)))?;
    let bind_err = |source| GatewayError::Bind {
        what: "quic",
        addr: config.quic.listen,
        source,
    };
    let udp = sekisho_protocol::transport::udp_socket(config.quic.listen).map_err(bind_err)?;
    if udp.short() {
        tracing::warn!(
            granted = udp.recv_buffer,
            wanted = sekisho_protocol::transport::UDP_BUFFER,
            "the kernel capped the QUIC socket's receive buffer: bulk tunnels may lose packets \
             and slow down (raise net.core.rmem_max)"
        );
    }
    let endpoint = sekisho_protocol::transport::endpoint(
        crate::quic::endpoint_config(keys),
        udp.socket,
        Some(quic_config),
    )
    .map_err(bind_err)?;
    let addr = endpoint.local_addr().map_err(GatewayError::Serve)?;
    let quic_shared = Arc::new(crate::quic::QuicShared {
        ssh: shared.clone(),
        ssh_config,
        ca: crate::quic::enroll::ClientCa::new(
            &keys.ca_cert_pem,
            keys.ca_key_pem.expose(),
            config.quic.client_cert_days,
        )
        .map_err(|e| GatewayError::Serve(std::io::Error::other(e)))?,
        ca_pem: keys.ca_cert_pem.clone(),
        ssh_host_key: keys
            .ssh_host
            .public_key()
            .to_openssh()
            .map_err(|e| GatewayError::Serve(std::io::Error::other(e)))?,
        rdp_tls: crate::quic::rdp::server_config(&keys.tls_cert_pem, keys.tls_key_pem.expose())
            .map_err(|e| GatewayError::Serve(std::io::Error::other(e)))?,
    });
    tokio::spawn(crate::quic::serve(
        endpoint,
        quic_shared,
        shutdown.clone(),
        config.server.max_connections as usize,
    ));
    Ok(addr)
}

async fn bind(what: &'static str, addr: SocketAddr) -> Result<TcpListener> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| GatewayError::Bind { what, addr, source })
}

/// This node's identity, kept in `DATA_DIR/node-id` (created on first start).
fn node_id(data_dir: &Path) -> Result<String> {
    let path = data_dir.join("node-id");
    match std::fs::read_to_string(&path) {
        Ok(s) if !s.trim().is_empty() => return Ok(s.trim().to_owned()),
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(GatewayError::DataDir {
                path: path.display().to_string(),
                source,
            });
        }
    }
    let id = uuid::Uuid::new_v4().to_string();
    keys::write_private(&path, id.as_bytes()).map_err(|source| GatewayError::DataDir {
        path: path.display().to_string(),
        source,
    })?;
    Ok(id)
}

/// Whether `dir` looks like a data dir that was already initialised.
pub fn is_initialised(dir: &Path) -> bool {
    dir.join("keys").join(keys::AT_REST_KEY).exists()
}
