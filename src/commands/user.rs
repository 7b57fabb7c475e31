//! `sekisho user add`

use std::path::Path;
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::Subcommand;
use sekisho_domain::audit::Actor;
use sekisho_domain::user::{Role, validate_username};
use sekisho_store::password;
use sekisho_store::users::NewUser;

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Create a staff account (admin, approver or auditor). Vendor engineers are created
    /// through the API under their vendor.
    Add {
        #[arg(long)]
        username: String,
        /// admin, approver or auditor
        #[arg(long)]
        role: Role,
        /// Shown in listings; defaults to the username.
        #[arg(long)]
        display_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
        /// Read the password from the first line of standard input (for scripts).
        #[arg(long)]
        password_stdin: bool,
        /// Limit an approver or auditor to one site of a hospital group (default: every site).
        #[arg(long)]
        site: Option<String>,
    },
}

pub async fn run(cmd: UserCommand, config_path: Option<&Path>) -> anyhow::Result<ExitCode> {
    let UserCommand::Add {
        username,
        role,
        display_name,
        email,
        password_stdin,
        site,
    } = cmd;
    validate_username(&username).with_context(|| format!("invalid username `{username}`"))?;
    if let Some(s) = &site {
        sekisho_domain::site::check_site(s).with_context(|| format!("invalid site `{s}`"))?;
        if !sekisho_domain::site::may_be_limited(role) {
            bail!("--site limits approvers and auditors only (admins manage the whole group)");
        }
    }
    if role == Role::Vendor {
        bail!(
            "vendor engineers belong to a vendor: create them with POST /api/v1/vendors/{{id}}/users"
        );
    }
    let password = super::read_secret(
        "password",
        &format!("Password for {username}: "),
        "--password-stdin",
        password_stdin,
        Some(&|_| Ok(())),
    )?;
    let names = [username.as_str(), display_name.as_deref().unwrap_or("")];
    if let Err(problem) = sekisho_domain::user::check_password(password.expose(), &names) {
        bail!("the password {problem}");
    }
    let hash = password::hash(&password)?;
    let config = super::load_config(config_path)?;
    let store = super::open_store(&config).await?;
    let os_user = std::env::var("USER").unwrap_or_else(|_| "unknown".into());
    let user = store
        .create_user(
            NewUser {
                display_name: display_name.unwrap_or_else(|| username.clone()),
                username,
                email,
                role,
                vendor_id: None,
                expires_at: None,
                password_hash: Some(hash),
                site,
            },
            &Actor::Cli { os_user },
            None,
        )
        .await?;
    store.close().await;
    println!(
        "created {} account `{}` ({})",
        user.role, user.username, user.id
    );
    Ok(ExitCode::SUCCESS)
}
