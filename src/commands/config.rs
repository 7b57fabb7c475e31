//! `sekisho config check|default`

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use sekisho_config::{Config, ConfigError, DEFAULT_FILE};

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Validate a configuration file and list every problem in it.
    Check {
        /// The file to check.
        file: PathBuf,
    },
    /// Print the fully commented default configuration.
    Default,
}

pub fn run(cmd: ConfigCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        ConfigCommand::Default => {
            print!("{DEFAULT_FILE}");
            Ok(ExitCode::SUCCESS)
        }
        ConfigCommand::Check { file } => match Config::load(&file) {
            Ok(_) => {
                println!("{}: ok", file.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(e @ ConfigError::Invalid { .. }) => {
                eprintln!("{e}");
                Ok(ExitCode::FAILURE)
            }
            Err(e) => Err(e.into()),
        },
    }
}
