//! First start: the initial `admin` account.

use std::path::{Path, PathBuf};

use sekisho_domain::audit::Actor;
use sekisho_domain::user::Role;
use sekisho_store::Store;
use sekisho_store::password;
use sekisho_store::users::NewUser;

use crate::error::{GatewayError, Result};
use crate::keys::write_private;

/// File in the data dir holding the generated admin password (0600).
pub const INITIAL_ADMIN_PASSWORD_FILE: &str = "initial-admin-password";

/// The account created on first start.
#[derive(Debug)]
pub struct InitialAdmin {
    pub username: String,
    pub password: sekisho_domain::secret::Secret<String>,
    pub password_file: PathBuf,
}

/// Creates `admin` with a random password when no admin account exists. The password is
/// written to the file first, so an account is never created whose password nobody knows.
pub async fn ensure_admin(store: &Store, data_dir: &Path) -> Result<Option<InitialAdmin>> {
    if store.count_users_with_role(Role::Admin).await? > 0 {
        return Ok(None);
    }
    let password = password::generate().map_err(|e| GatewayError::Bootstrap(e.to_string()))?;
    let hash = password::hash(&password).map_err(|e| GatewayError::Bootstrap(e.to_string()))?;
    let file = data_dir.join(INITIAL_ADMIN_PASSWORD_FILE);
    write_private(&file, format!("{}\n", password.expose()).as_bytes())
        .map_err(|e| GatewayError::Bootstrap(format!("cannot write {}: {e}", file.display())))?;
    let created = store
        .create_user(
            NewUser {
                username: "admin".into(),
                display_name: "Initial administrator".into(),
                email: None,
                role: Role::Admin,
                vendor_id: None,
                expires_at: None,
                password_hash: Some(hash),
                site: None,
            },
            &Actor::System,
            None,
        )
        .await;
    match created {
        Ok(user) => Ok(Some(InitialAdmin {
            username: user.username,
            password,
            password_file: file,
        })),
        Err(e) => {
            let _ = std::fs::remove_file(&file);
            Err(GatewayError::Bootstrap(format!(
                "{e}; create an admin with `sekisho user add --role admin`"
            )))
        }
    }
}
