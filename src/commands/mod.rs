//! One module per subcommand.

pub mod audit;
pub mod config;
pub mod recording;
pub mod serve;
pub mod user;

use std::path::Path;

use anyhow::Context;
use sekisho_approval_api::Store;
use sekisho_config::Config;

/// The configuration in effect: the file, or the defaults.
pub fn load_config(path: Option<&Path>) -> anyhow::Result<Config> {
    Ok(Config::load_or_default(path)?)
}

/// Opens the configured database for an offline command.
pub async fn open_store(config: &Config) -> anyhow::Result<Store> {
    let url = config.database_url();
    Store::open(&url, 2)
        .await
        .with_context(|| format!("cannot open the database at {}", redact(&url)))
}

/// A database URL with any password replaced, for messages.
pub fn redact(url: &str) -> String {
    sekisho_approval_api::store::redact_url(url)
}
