//! One module per subcommand.

pub mod audit;
pub mod backup;
pub mod config;
pub mod doctor;
pub mod metrics;
pub mod node;
pub mod recording;
pub mod report;
pub mod rotate;
pub mod serve;
pub mod user;
pub mod video;

use std::path::Path;

use anyhow::Context;
use sekisho_config::Config;
use sekisho_store::Store;

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
    sekisho_store::redact_url(url)
}

/// `[directory]`, ready to ask (its password and CA files read now).
fn directory(
    config: &Config,
) -> anyhow::Result<Option<std::sync::Arc<sekisho_approval_api::directory::Directory>>> {
    Ok(match &config.directory {
        Some(d) => Some(std::sync::Arc::new(
            sekisho_approval_api::directory::Directory::from_config(d)
                .map_err(anyhow::Error::msg)?,
        )),
        None => None,
    })
}

/// The approval API's state over what the gateway prepared: the one place where the API,
/// the console and the gateway are put together.
pub fn api_state(
    config: &Config,
    prepared: &sekisho_gateway::Prepared,
) -> anyhow::Result<sekisho_approval_api::api::ApiState> {
    let keys = &prepared.keys;
    Ok(sekisho_approval_api::api::ApiState::new(
        config,
        sekisho_approval_api::api::StateParts {
            store: prepared.store.clone(),
            events: prepared.events.clone(),
            hasher: prepared.hasher.clone(),
            failures: prepared.failures.clone(),
            throttle: prepared.throttle.clone(),
            directory: directory(config)?,
            at_rest: keys.at_rest.clone(),
            jwt_pem: &keys.jwt_pem,
            jwt_public_pem: &keys.jwt_public_pem,
            jwt_kid: &keys.jwt_kid,
            recording_public_key: keys.recording.public_key_b64(),
            gateway_fingerprint: &keys.tls_fingerprint,
        },
    )?)
}

/// What a secret chosen now must pass before it is asked again.
pub type SecretCheck = dyn Fn(&str) -> anyhow::Result<()>;

/// A secret typed by the person running a command (`what`: "password", "passphrase"): the
/// first line of standard input with `from_stdin` (scripts; `flag` names the option), or asked
/// on the terminal with `prompt`; when `confirm`, asked twice, after `check` accepted it.
pub fn read_secret(
    what: &str,
    prompt: &str,
    flag: &str,
    from_stdin: bool,
    confirm: Option<&SecretCheck>,
) -> anyhow::Result<sekisho_domain::secret::Secret<String>> {
    use std::io::BufRead;
    if from_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .with_context(|| format!("cannot read the {what} from standard input"))?;
        return Ok(sekisho_domain::secret::Secret::new(
            line.trim_end_matches(['\r', '\n']).to_owned(),
        ));
    }
    let first = rpassword::prompt_password(prompt).with_context(|| {
        format!("cannot read a {what} from the terminal; use {flag} in scripts")
    })?;
    if let Some(check) = confirm {
        check(&first)?;
        let again = rpassword::prompt_password("Again: ")
            .with_context(|| format!("cannot read the {what}"))?;
        if first != again {
            anyhow::bail!("the {what}s do not match");
        }
    }
    Ok(sekisho_domain::secret::Secret::new(first))
}
