//! Starting and stopping the server process.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use std::sync::Arc;

use jiff::SignedDuration;
use sekisho_approval_api::Store;
use sekisho_approval_api::api::auth::TokenKeys;
use sekisho_approval_api::api::{ApiSettings, ApiState, router};
use sekisho_approval_api::events::Events;
use sekisho_approval_api::store::audit::NewAuditEvent;
use sekisho_config::Config;
use sekisho_domain::audit::AuditEvent;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tower::limit::GlobalConcurrencyLimitLayer;
use tower_http::trace::TraceLayer;

use crate::bootstrap::{self, InitialAdmin};
use crate::keys::{self, GatewayKeys};
use crate::{GatewayError, Result};

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
    /// **Benchmarks only** (`cargo bench --bench ssh_relay`): sessions are relayed without
    /// being recorded, to measure what recording costs. Never set in the product.
    pub unrecorded_for_benchmarks: bool,
}

/// Initialises what is missing (data dir, keys, database, admin), binds the listeners and
/// serves until `shutdown` is cancelled.
pub async fn start(config: &Config, shutdown: CancellationToken) -> Result<Started> {
    start_with(config, shutdown, StartOptions::default()).await
}

/// [`start`] with [`StartOptions`].
pub async fn start_with(
    config: &Config,
    shutdown: CancellationToken,
    options: StartOptions,
) -> Result<Started> {
    let data_dir = config.data_dir.clone();
    keys::create_private_dir(&data_dir).map_err(|e| GatewayError::DataDir {
        path: data_dir.display().to_string(),
        source: std::io::Error::other(e.to_string()),
    })?;
    let (keys, created_keys) = GatewayKeys::load_or_create(&data_dir.join("keys"))?;
    let store = Store::open(&config.database_url(), config.database.max_connections).await?;
    if !created_keys.is_empty() {
        store
            .audit(NewAuditEvent::system(AuditEvent::GatewayInitialized {
                data_dir: data_dir.display().to_string(),
                keys: created_keys.clone(),
            }))
            .await?;
    }
    let initial_admin = bootstrap::ensure_admin(&store, &data_dir).await?;
    // Recordings left open by a crash are sealed as `aborted` before anything new starts.
    let library = sekisho_recorder::Library::new(&config.recordings_dir());
    let recording_key = keys.recording.clone();
    let sealed = tokio::task::spawn_blocking(move || library.seal_abandoned(&recording_key))
        .await
        .map_err(|e| GatewayError::Serve(std::io::Error::other(e)))??;
    if !sealed.is_empty() {
        tracing::warn!(
            count = sealed.len(),
            "sealed recordings left open by an earlier stop"
        );
    }

    // Sessions this node left open when it stopped are over.
    let node = node_id(&data_dir)?;
    let aborted = store.abort_open_sessions(&node).await?;
    if !aborted.is_empty() {
        tracing::warn!(
            count = aborted.len(),
            "marked sessions left open by an earlier stop as aborted"
        );
    }

    let api = bind("api", config.api.listen).await?;
    let api_addr = api.local_addr().map_err(GatewayError::Serve)?;
    let (certs, api_tls_self_signed) = if config.api.tls {
        let (cert, key, self_signed) = match (&config.api.tls_cert, &config.api.tls_key) {
            (Some(c), Some(k)) => (c.clone(), k.clone(), false),
            _ => {
                let (c, k, _) =
                    keys::ensure_api_certificate(&data_dir.join("keys"), config.api.listen.ip())?;
                (c, k, true)
            }
        };
        let source = crate::https::CertSource::load(&cert, &key)
            .map_err(|e| GatewayError::Serve(std::io::Error::other(e)))?;
        (Some(Arc::new(source)), self_signed.then_some(cert))
    } else {
        (None, None)
    };
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

    let events = Events::new();
    let sessions = tokio_util::task::TaskTracker::new();
    let failures = Arc::new(sekisho_approval_api::failures::FailureLog::new(
        store.clone(),
    ));
    let hasher = sekisho_approval_api::password::Hasher::for_this_machine();
    // Both listeners feed the same SSH gateway (decisions, recording, session ends).
    let shared = Arc::new(crate::ssh::Shared {
        store: store.clone(),
        at_rest: keys.at_rest.clone(),
        recorder: if options.unrecorded_for_benchmarks {
            tracing::warn!("BENCHMARK MODE: sessions are not recorded");
            sekisho_recorder::Recorder::unrecorded_for_benchmarks(
                &config.recordings_dir(),
                keys.recording.clone(),
            )
        } else {
            sekisho_recorder::Recorder::new(&config.recordings_dir(), keys.recording.clone())?
                .with_in_flight(config.recordings.in_flight_bytes)
        },
        events: events.clone(),
        failures: failures.clone(),
        hasher: hasher.clone(),
        policy: config.domain_policy(),
        zone: config.display_zone(),
        ssh: config.ssh.clone(),
        input_limits: sekisho_domain::upload::InputLimits {
            stream: config.ssh.upload_ban_command_input_bytes,
            terminal: config.ssh.upload_ban_terminal_input_bytes,
            paste: config.ssh.paste_flag_bytes,
        },
        warnings: config.policy.window_end_warnings_minutes.clone(),
        node: node.clone(),
        shutdown: shutdown.clone(),
        sessions: sessions.clone(),
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
        let quic_config = crate::quic::server_config(&keys)
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
            crate::quic::endpoint_config(&keys),
            udp.socket,
            Some(quic_config),
        )
        .map_err(bind_err)?;
        let addr = endpoint.local_addr().map_err(GatewayError::Serve)?;
        let quic_shared = Arc::new(crate::quic::QuicShared {
            ssh: shared.clone(),
            ssh_config: ssh_server_config.clone(),
            ca: crate::enroll::ClientCa::new(
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
        });
        tokio::spawn(crate::quic::serve(
            endpoint,
            quic_shared,
            shutdown.clone(),
            config.server.max_connections as usize,
        ));
        Some(addr)
    } else {
        None
    };
    let api_state = ApiState {
        store: store.clone(),
        tokens: Arc::new(TokenKeys::ed25519(
            keys.jwt_kid.clone(),
            &keys.jwt_pem,
            &keys.jwt_public_pem,
        )?),
        at_rest: keys.at_rest.clone(),
        settings: Arc::new(api_settings(config, &keys.tls_fingerprint)),
        events: events.clone(),
        recordings: sekisho_recorder::Library::new(&config.recordings_dir()),
        recording_public_key: Arc::new(keys.recording.public_key_b64()),
        hasher,
        throttle: Arc::new(sekisho_approval_api::throttle::LoginThrottle::new(
            config.api.login_max_failures,
            Duration::from_secs(60 * u64::from(config.api.lockout_minutes)),
        )),
        failures: failures.clone(),
    };
    let app = router(api_state)
        .layer(DefaultBodyLimit::max(config.api.max_body_bytes as usize))
        .layer(GlobalConcurrencyLimitLayer::new(
            config.server.max_connections as usize,
        ))
        .layer(TraceLayer::new_for_http());
    let grace = Duration::from_secs(u64::from(config.server.shutdown_grace_seconds));
    let tls = match &certs {
        Some(c) => Some(
            crate::https::server_config(c.clone())
                .map_err(|e| GatewayError::Serve(std::io::Error::other(e)))?,
        ),
        None => None,
    };
    if let Some(c) = &certs {
        tokio::spawn(reload_on_sighup(c.clone(), shutdown.clone()));
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
    tokio::spawn(retention_loop(
        store.clone(),
        sekisho_recorder::Library::new(&config.recordings_dir()),
        config.recordings.retain_days,
        shutdown.clone(),
    ));
    tokio::spawn(expire_requests(
        store.clone(),
        config.domain_policy(),
        config.display_zone(),
        shutdown.clone(),
    ));
    tokio::spawn(flush_failures(failures.clone(), shutdown.clone()));
    let ssh_host_fingerprint = keys.ssh_host_fingerprint();
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
        store.close().await;
        tracing::info!("sekisho stopped");
        drop(keys);
        result
    });
    Ok(Started {
        api_scheme,
        api_tls_fingerprint: certs.as_ref().map(|c| c.fingerprint()),
        api_tls_self_signed,
        api_addr,
        initial_admin,
        created_keys,
        ssh_host_fingerprint,
        ssh_addr,
        quic_addr,
        done,
    })
}

/// Reads the HTTPS certificate files again on each SIGHUP (new connections get the new
/// certificate; open ones are not dropped), until shutdown.
async fn reload_on_sighup(certs: Arc<crate::https::CertSource>, shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGHUP; the HTTPS certificate reloads only on restart");
            return;
        }
    };
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            got = hup.recv() => if got.is_none() { return },
        }
        match certs.reload() {
            Ok(()) => {
                tracing::info!(fingerprint = %certs.fingerprint(), "SIGHUP: HTTPS certificate reloaded")
            }
            Err(e) => {
                tracing::error!(error = %e, "SIGHUP: cannot reload the HTTPS certificate; keeping the current one")
            }
        }
    }
}

/// Writes the summaries of repeated failures once their minute is over, until shutdown.
async fn flush_failures(
    failures: Arc<sekisho_approval_api::failures::FailureLog>,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(10));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if let Err(e) = failures.flush(false).await {
            tracing::warn!(error = %e, "cannot write failure summaries; retrying at the next tick");
        }
    }
}

/// How often windows that have ended are swept to `expired`.
const EXPIRY_SWEEP: Duration = Duration::from_secs(15);

/// Expires requests whose window has ended, until shutdown. A failed sweep is logged and
/// retried at the next tick; the rules never depend on the sweep (authorize checks windows).
async fn expire_requests(
    store: Store,
    policy: sekisho_domain::policy::Policy,
    zone: sekisho_domain::zone::DisplayZone,
    shutdown: CancellationToken,
) {
    let mut tick = tokio::time::interval(EXPIRY_SWEEP);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match store.expire_requests(&policy, &zone).await {
            Ok(ids) if !ids.is_empty() => {
                tracing::info!(count = ids.len(), "expired requests whose window ended")
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "expiry sweep failed; retrying at the next tick"),
        }
        if let Err(e) = store.purge_revoked_tokens(jiff::Timestamp::now()).await {
            tracing::warn!(error = %e, "cannot forget expired token revocations; retrying later");
        }
    }
}

/// Runs the retention sweep hourly until shutdown.
async fn retention_loop(
    store: Store,
    library: sekisho_recorder::Library,
    retain_days: u32,
    shutdown: CancellationToken,
) {
    if retain_days == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        match crate::retention::sweep(&store, &library, retain_days, jiff::Timestamp::now()).await {
            Ok(s) if !s.deleted.is_empty() || !s.kept.is_empty() => {
                tracing::info!(
                    deleted = s.deleted.len(),
                    kept = s.kept.len(),
                    "retention sweep"
                );
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "retention sweep failed; retrying in an hour"),
        }
    }
}

/// The API's view of the configuration.
pub fn api_settings(config: &Config, tls_fingerprint: &str) -> ApiSettings {
    ApiSettings {
        policy: config.domain_policy(),
        zone: config.display_zone(),
        token_ttl_minutes: config.api.token_ttl_minutes,
        login_max_failures: config.api.login_max_failures,
        lockout: SignedDuration::from_mins(i64::from(config.api.lockout_minutes)),
        attestation_validity: SignedDuration::from_hours(
            24 * i64::from(config.policy.attestation_validity_days),
        ),
        enrollment: sekisho_approval_api::api::EnrollmentSettings {
            gateway: config.quic.listen.to_string(),
            fingerprint: tls_fingerprint.to_owned(),
            code_ttl: SignedDuration::from_hours(i64::from(config.quic.enrollment_code_hours)),
        },
    }
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
