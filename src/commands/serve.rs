//! `sekisho serve`

use std::path::Path;
use std::process::ExitCode;

use sekisho_config::{Config, LogFormat};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::EnvFilter;

pub async fn run(config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let config = super::load_config(config_path)?;
    init_logging(&config);
    let shutdown = CancellationToken::new();
    let started = sekisho_gateway::start(&config, shutdown.clone()).await?;

    println!("Sekisho {} is running.", env!("CARGO_PKG_VERSION"));
    println!("  data dir:      {}", config.data_dir.display());
    println!("  database:      {}", super::redact(&config.database_url()));
    println!("  API and health: http://{}/healthz", started.api_addr);
    match started.ssh_addr {
        Some(addr) => println!(
            "  SSH gateway:   ssh -p {} USER+TARGET@{}",
            addr.port(),
            addr.ip()
        ),
        None => println!("  SSH gateway:   disabled ([ssh] enabled = false)"),
    }
    println!("  SSH host key:  {}", started.ssh_host_fingerprint);
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

    tokio::spawn(wait_for_signal(shutdown));
    started.wait().await?;
    Ok(ExitCode::SUCCESS)
}

/// Cancels `shutdown` on SIGINT or SIGTERM.
async fn wait_for_signal(shutdown: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only Ctrl-C will stop the gateway");
            let _ = tokio::signal::ctrl_c().await;
            shutdown.cancel();
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!(signal = "SIGINT", "shutting down"),
        _ = term.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
    }
    shutdown.cancel();
}

fn init_logging(config: &Config) {
    let filter = EnvFilter::try_from_env("SEKISHO_LOG")
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
