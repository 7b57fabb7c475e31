//! `sekisho serve`

use std::path::Path;
use std::process::ExitCode;

use sekisho_config::{Config, LogFormat};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

pub async fn run(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path)?;
    init_logging(&config);
    raise_open_files_limit();
    let shutdown = CancellationToken::new();
    // Listen for signals before anything says we are running: a SIGTERM right after the
    // banner (a supervisor, or a test) must stop the gateway gracefully, not kill it.
    tokio::spawn(wait_for_signal(Signals::install(), shutdown.clone()));
    let mut prepared = sekisho_gateway::prepare(&config).await?;
    // The SIEM stream: every audit row and this node's checkpoints, until after the gateway
    // has stopped (its last rows and checkpoint go too).
    // Its own connections: it sends the gateway's last rows after the gateway has closed its
    // pool.
    let syslog_store = match &config.syslog {
        Some(_) => Some(sekisho_store::Store::open(&config.database_url(), 2).await?),
        None => None,
    };
    let syslog = sekisho_notify::syslog::SyslogStream::new(
        config.syslog.as_ref().zip(syslog_store),
        &prepared.node().id,
        &prepared.node().name,
    )?
    .map(|(stream, sink)| {
        prepared.send_checkpoints_to(sink);
        stream
    });
    // Checked before anything listens: a webhook secret or SMTP setting that cannot be used
    // stops the start with its reason.
    let notifier = sekisho_notify::Notifier::new(&config, prepared.store.clone())?;
    let metrics = match &config.metrics {
        Some(m) => Some(super::metrics::start(m, prepared.store.clone(), shutdown.clone()).await?),
        None => None,
    };
    let state = super::api_state(&config, &prepared)?;
    tokio::spawn(follow_token_key(
        state.tokens.clone(),
        prepared.store.clone(),
        prepared.node().id.clone(),
        prepared.keys.dir.clone(),
        std::time::Duration::from_secs(u64::from(config.nodes.heartbeat_seconds)),
        std::time::Duration::from_secs(60 * u64::from(config.api.token_ttl_minutes)),
        shutdown.clone(),
    ));
    // The audit chain walked at start and every checkpoint period, for the console's page.
    tokio::spawn(sekisho_approval_api::api::audit::keep_chain_checked(
        state.clone(),
        std::time::Duration::from_secs(60 * u64::from(config.audit.checkpoint_minutes.max(1))),
        shutdown.clone(),
    ));
    let zone = state.settings.zone.clone();
    let app = sekisho_console::app_with_report_font(
        sekisho_approval_api::api::router(state),
        zone,
        config.report_font.clone(),
    );
    let started = prepared
        .start(
            app,
            shutdown.clone(),
            sekisho_gateway::StartOptions::default(),
        )
        .await?;
    let notifications = match notifier {
        Some(n) => {
            let what = match (n.mails(), n.webhooks()) {
                (true, 0) => "mail".to_owned(),
                (true, w) => format!("mail, {w} webhook(s)"),
                (false, w) => format!("{w} webhook(s)"),
            };
            tokio::spawn(n.run(shutdown.clone()));
            what
        }
        None => "off (no [notifications] smtp_host or webhooks)".to_owned(),
    };

    println!("Sekisho {} is running.", env!("CARGO_PKG_VERSION"));
    println!("  data dir:      {}", config.data_dir.display());
    println!("  database:      {}", super::redact(&config.database_url()));
    println!(
        "  API and health: {}://{}/healthz",
        started.api_scheme, started.api_addr
    );
    match (&started.api_tls_fingerprint, &started.api_tls_self_signed) {
        (Some(fp), Some(file)) => println!(
            "  HTTPS certificate (self-signed, {}): {fp}",
            file.display()
        ),
        (Some(fp), None) => println!("  HTTPS certificate: {fp}"),
        _ => println!("  HTTPS:         off ([api] tls = false; loopback only)"),
    }
    match started.ssh_addr {
        Some(addr) => println!(
            "  SSH gateway:   ssh -p {} USER+TARGET@{}",
            addr.port(),
            addr.ip()
        ),
        None => println!("  SSH gateway:   disabled ([ssh] enabled = false)"),
    }
    println!("  SSH host key:  {}", started.ssh_host_fingerprint);
    println!("  Notifications: {notifications}");
    match metrics {
        Some(addr) => println!("  Metrics:       http://{addr}/metrics"),
        None => println!("  Metrics:       off (no [metrics] listen)"),
    }
    let syslog_stop = CancellationToken::new();
    let syslog = match syslog {
        Some(stream) => {
            println!("  SIEM (syslog): {}", stream.describe());
            Some(tokio::spawn(stream.run(syslog_stop.clone())))
        }
        None => {
            println!("  SIEM (syslog): off (no [syslog] address)");
            None
        }
    };
    match started.quic_addr {
        Some(addr) => println!("  Designated client (QUIC): udp {addr}"),
        None => println!("  Designated client (QUIC): disabled ([quic] enabled = false)"),
    }
    if let Some(admin) = &started.initial_admin {
        println!();
        println!(
            "First start: created account `{}` with password",
            admin.username
        );
        println!("    {}", admin.password.expose());
        println!(
            "  (also in {}, readable only by you; change it after logging in)",
            admin.password_file.display()
        );
    }
    println!("Stop with Ctrl-C.");

    let stopped = started.wait().await;
    syslog_stop.cancel();
    if let Some(task) = syslog {
        let _ = task.await;
    }
    stopped?;
    Ok(ExitCode::SUCCESS)
}

/// SIGINT and SIGTERM handlers, installed when this is made (not when first awaited).
struct Signals {
    interrupt: Option<tokio::signal::unix::Signal>,
    terminate: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn install() -> Self {
        use tokio::signal::unix::{SignalKind, signal};
        let listen = |kind: SignalKind, name: &str| match signal(kind) {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(error = %e, signal = name, "cannot listen for this signal");
                None
            }
        };
        Signals {
            interrupt: listen(SignalKind::interrupt(), "SIGINT"),
            terminate: listen(SignalKind::terminate(), "SIGTERM"),
        }
    }
}

/// Waits for a signal that `Signals::install` could listen for (forever if none).
async fn next(s: &mut Option<tokio::signal::unix::Signal>) {
    match s {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending().await,
    }
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn wait_for_signal(mut signals: Signals, shutdown: CancellationToken) {
    tokio::select! {
        () = next(&mut signals.interrupt) => tracing::info!(signal = "SIGINT", "shutting down"),
        () = next(&mut signals.terminate) => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
    shutdown.cancel();
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_env("SEKISHO_LOG")
        .or_else(|_| EnvFilter::try_from_env("RUST_LOG"))
        .or_else(|_| EnvFilter::try_new(&config.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    match config.log.format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

/// Raises the soft limit on open files to the hard one: each session holds a few descriptors
/// (the vendor's connection, the target's, its recording files), and the usual soft limit of
/// 1024 would refuse sessions long before `[server] max_connections`.
fn raise_open_files_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let (Some(soft), Some(hard)) = (limit.current, limit.maximum) else {
        return; // unlimited already
    };
    if soft >= hard {
        return;
    }
    let raised = rustix::process::Rlimit {
        current: Some(hard),
        maximum: Some(hard),
    };
    match setrlimit(Resource::Nofile, raised) {
        Ok(()) => tracing::info!(from = soft, to = hard, "raised the open files limit"),
        Err(e) => tracing::warn!(error = %e, soft, hard, "cannot raise the open files limit"),
    }
}

/// Signs API tokens with the key in the keys directory: `sekisho node rotate-token-key` run
/// while this node serves replaces the file, and the node takes the new key within a
/// heartbeat, publishing it (audited `token_key_published`) before it signs anything with it,
/// so that every node accepts its tokens at once; tokens signed before stay valid until they
/// expire (`keep`).
async fn follow_token_key(
    tokens: std::sync::Arc<sekisho_approval_api::api::token::TokenKeys>,
    store: sekisho_store::Store,
    node: String,
    dir: std::path::PathBuf,
    every: std::time::Duration,
    keep: std::time::Duration,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(every) => {}
        }
        let key = match sekisho_gateway::keys::TokenKey::read(&dir) {
            Ok(Some(key)) if key.kid != tokens.kid() => key,
            Ok(_) => continue,
            Err(e) => {
                tracing::error!(error = %e, "cannot read the token-signing key; signing with the one loaded");
                continue;
            }
        };
        if let Err(e) = store
            .publish_token_key(&node, &key.kid, &key.public_pem, keep)
            .await
        {
            tracing::error!(error = %e, kid = %key.kid, "cannot publish the new token-signing key; signing with the one loaded");
            continue;
        }
        match tokens.sign_with(key.kid.clone(), &key.private_pem, &key.public_pem) {
            Ok(_) => tracing::info!(kid = %key.kid, "signing API tokens with the new key"),
            Err(e) => {
                tracing::error!(error = %e, kid = %key.kid, "cannot use the new token-signing key")
            }
        }
    }
}
