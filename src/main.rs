//! `sekisho`: the server binary. A thin command line over the workspace crates: parse the
//! arguments and configuration, then call into `sekisho-gateway` or the store.

mod commands;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Sekisho: the hospital's one checkpoint for vendor remote maintenance.
#[derive(Parser, Debug)]
#[command(name = "sekisho", version, about)]
struct Cli {
    /// Configuration file (TOML). Without one, built-in defaults are used.
    #[arg(
        long,
        short,
        global = true,
        env = "SEKISHO_CONFIG",
        value_name = "FILE"
    )]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the gateway: initialises the data dir on first start, then serves until SIGINT/SIGTERM.
    Serve,
    /// Check or print configuration.
    #[command(subcommand)]
    Config(commands::config::ConfigCommand),
    /// Manage staff accounts offline, directly in the database (scripts and recovery).
    #[command(subcommand)]
    User(commands::user::UserCommand),
    /// Work with the audit log.
    #[command(subcommand)]
    Audit(commands::audit::AuditCommand),
    /// Review session recordings: list, verify, search, export.
    #[command(subcommand)]
    Recording(commands::recording::RecordingCommand),
    /// Reports for the hospital's security committee.
    #[command(subcommand)]
    Report(commands::report::ReportCommand),
    /// Play a terminal session back (or print it as text with --text).
    Replay(commands::recording::ReplayArgs),
    /// Several gateway nodes as one: export and join the group's keys, list the nodes.
    #[command(subcommand)]
    Node(commands::node::NodeCommand),
    /// Copy the database (SQLite, consistently, while serving), keys and recordings into a
    /// new folder, with SHA256SUMS.
    Backup {
        /// A new (or empty) folder.
        dir: PathBuf,
        /// Only the recordings' signed manifests and the audit checkpoints (back up the
        /// recordings share on its own).
        #[arg(long)]
        without_recordings: bool,
    },
    /// Check what most often goes wrong in the field (config, database, listeners,
    /// certificates, clock, disk, UDP buffers, scanner, SMTP) and say how to fix each.
    Doctor,
    /// Restore a backup into the configured data directory, which must be empty; a partial,
    /// altered or newer backup is refused.
    Restore {
        /// The backup's folder.
        dir: PathBuf,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve => commands::serve::run(cli.config.as_deref()).await,
            Command::Backup {
                dir,
                without_recordings,
            } => commands::backup::backup(cli.config.as_deref(), &dir, !without_recordings).await,
            Command::Doctor => commands::doctor::run(cli.config.as_deref()).await,
            Command::Restore { dir } => commands::backup::restore(cli.config.as_deref(), &dir),
            Command::Config(c) => commands::config::run(c),
            Command::User(c) => commands::user::run(c, cli.config.as_deref()).await,
            Command::Audit(c) => commands::audit::run(c, cli.config.as_deref()).await,
            Command::Recording(c) => commands::recording::run(c, cli.config.as_deref()),
            Command::Report(c) => commands::report::run(c, cli.config.as_deref()).await,
            Command::Node(c) => commands::node::run(c, cli.config.as_deref()).await,
            Command::Replay(a) => commands::recording::replay(a, cli.config.as_deref()).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
