//! Staff from the hospital's LDAP or Active Directory (issue #17).
//!
//! A login looks the person up with the service account (`[directory] bind_dn`; anonymous
//! without one) by `user_filter`, proves the password by binding as their entry on a
//! connection of its own, and reads their role from the groups (`admin_group`,
//! `approver_group`, `auditor_group`, first match wins; a group lists members by `member` or
//! `uniqueMember`). Every login asks again, so someone removed from the groups has no access
//! from their next login on. A directory that does not answer refuses the login (fail
//! closed); local accounts keep their own passwords for that case.

use std::sync::Arc;
use std::time::Duration;

use ldap3::{LdapConnAsync, LdapConnSettings, Scope, SearchEntry, ldap_escape};
use sekisho_config::DirectoryConfig;
use sekisho_domain::user::Role;
use sekisho_store::directory::DirectoryPerson;

/// What the directory says about a login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// The right password, and the role of the first group they are in.
    Person(DirectoryPerson),
    /// The right password, but in no Sekisho group.
    NoGroup { dn: String },
    /// No such person, several, or the wrong password (told apart only in the audit log).
    Refused(&'static str),
}

/// The directory could not be asked.
#[derive(Debug, thiserror::Error)]
#[error("the directory does not answer: {0}")]
pub struct DirectoryError(String);

fn unavailable(e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError(e.to_string())
}

/// The directory as configured, its service password read.
pub struct Directory {
    config: DirectoryConfig,
    bind_password: Option<String>,
    tls: Option<Arc<rustls::ClientConfig>>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("url", &self.config.url)
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// Reads the service password and the CA file now: a directory that cannot be used is
    /// a start-up error naming the file, not a surprise at the first login.
    pub fn from_config(config: &DirectoryConfig) -> Result<Self, String> {
        let bind_password = match &config.bind_password_file {
            Some(path) => Some(
                std::fs::read_to_string(path)
                    .map_err(|e| {
                        format!(
                            "cannot read [directory] bind_password_file {}: {e}",
                            path.display()
                        )
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_owned(),
            ),
            None => None,
        };
        let tls = match &config.ca_file {
            Some(path) => Some(Arc::new(tls_trusting(path)?)),
            None => None,
        };
        Ok(Self {
            config: config.clone(),
            bind_password,
            tls,
        })
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.config.timeout_seconds))
    }

    async fn connect(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.timeout())
            .set_starttls(self.config.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &self.config.url)
            .await
            .map_err(unavailable)?;
        ldap3::drive!(conn);
        ldap.with_timeout(self.timeout());
        Ok(ldap)
    }

    /// A connection bound as the service account (or anonymous).
    async fn service(&self) -> Result<ldap3::Ldap, DirectoryError> {
        let mut ldap = self.connect().await?;
        if let (Some(dn), Some(pw)) = (&self.config.bind_dn, &self.bind_password) {
            ldap.with_timeout(self.timeout())
                .simple_bind(dn, pw)
                .await
                .map_err(unavailable)?
                .success()
                .map_err(|e| unavailable(format!("the service account {dn} cannot bind: {e}")))?;
        }
        Ok(ldap)
    }

    /// Checks `username` and `password` against the directory.
    pub async fn login(&self, username: &str, password: &str) -> Result<Verdict, DirectoryError> {
        // An empty password would be an unauthenticated bind, which servers accept.
        if password.is_empty() {
            return Ok(Verdict::Refused("empty password"));
        }
        let mut ldap = self.service().await?;
        let filter = self
            .config
            .user_filter
            .replace("{username}", &ldap_escape(username));
        let (entries, _) = ldap
            .with_timeout(self.timeout())
            .search(
                &self.config.base,
                Scope::Subtree,
                &filter,
                vec!["cn", "displayName", "mail"],
            )
            .await
            .map_err(unavailable)?
            .success()
            .map_err(unavailable)?;
        let mut entries = entries.into_iter();
        let (Some(entry), None) = (entries.next(), entries.next()) else {
            let _ = ldap.unbind().await;
            return Ok(Verdict::Refused("no single directory entry for this name"));
        };
        let entry = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            SearchEntry::construct(entry)
        }))
        .map_err(|_| unavailable("a directory entry could not be decoded"))?;
        // The password, on a connection of its own (the service connection stays the
        // service's, for the group checks).
        let mut own = self.connect().await?;
        let bound = own
            .with_timeout(self.timeout())
            .simple_bind(&entry.dn, password)
            .await
            .map_err(unavailable)?;
        let _ = own.unbind().await;
        match bound.rc {
            0 => {}
            49 => {
                let _ = ldap.unbind().await;
                return Ok(Verdict::Refused("wrong directory password"));
            }
            rc => {
                return Err(unavailable(format!(
                    "binding as {} answered {rc}",
                    entry.dn
                )));
            }
        }
        let groups = [
            (&self.config.admin_group, Role::Admin),
            (&self.config.approver_group, Role::Approver),
            (&self.config.auditor_group, Role::Auditor),
        ];
        let mut role = None;
        for (group, r) in groups {
            if let Some(group) = group
                && self.member(&mut ldap, group, &entry.dn).await?
            {
                role = Some(r);
                break;
            }
        }
        let _ = ldap.unbind().await;
        let first = |name: &str| {
            entry
                .attrs
                .get(name)
                .and_then(|v| v.first())
                .filter(|v| !v.trim().is_empty())
                .cloned()
        };
        Ok(match role {
            None => Verdict::NoGroup { dn: entry.dn },
            Some(role) => Verdict::Person(DirectoryPerson {
                username: username.to_owned(),
                display_name: first("displayName")
                    .or_else(|| first("cn"))
                    .unwrap_or_else(|| username.to_owned()),
                email: first("mail"),
                role,
                dn: entry.dn,
            }),
        })
    }

    /// Whether the group entry `group` lists `dn` as a member.
    async fn member(
        &self,
        ldap: &mut ldap3::Ldap,
        group: &str,
        dn: &str,
    ) -> Result<bool, DirectoryError> {
        let dn = ldap_escape(dn);
        let filter = format!("(|(member={dn})(uniqueMember={dn}))");
        let answer = ldap
            .with_timeout(self.timeout())
            .search(group, Scope::Base, &filter, vec!["1.1"])
            .await
            .map_err(unavailable)?;
        match answer.success() {
            Ok((entries, _)) => Ok(!entries.is_empty()),
            Err(ldap3::LdapError::LdapResult { result }) if result.rc == 32 => {
                tracing::warn!(group, "the configured directory group does not exist");
                Ok(false)
            }
            Err(e) => Err(unavailable(e)),
        }
    }
}

/// A TLS client configuration (aws-lc-rs) trusting the CA certificates in `path`.
fn tls_trusting(path: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;
    let bad = |e: &dyn std::fmt::Display| format!("[directory] ca_file {}: {e}", path.display());
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"no certificate in it"));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| bad(&e))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}
