//! Authentication (registered keys, or the designated client's certificate) and admission:
//! the session decided by the transport-neutral [`crate::session::admit`], then the target
//! logged into with the level's sealed credential and the session begun.

use std::sync::Arc;
use std::time::Duration;

use russh::keys::PublicKey;
use russh::server::{self, Auth, PublicKeyOffer, Session, VerifiedPublicKey};
use sekisho_domain::authorize::{ChannelKind, Grant};
use sekisho_domain::ids::TargetId;
use sekisho_domain::target::Target;
use sekisho_domain::user::SshKeyStatus;
use sekisho_domain::user::User;

use super::limits::REFUSED_LINGER;
use super::login::Login;
use super::target::{self, TargetError};
use crate::session::Live;
use crate::session::admit;
use sekisho_domain::refusal::{Channel as Audited, Code, Refusal};

use super::conn::{Conn, SecondFactor, State, TargetConn};
use crate::session::second_factor::{self, Needed};

/// One-time codes a vendor may type on one SSH connection.
const CODE_TRIES: u32 = 3;

/// The keyboard-interactive request for the one-time code, `note` above it.
fn ask(note: &str) -> Auth {
    Auth::Partial {
        name: "".into(),
        instructions: note.to_owned().into(),
        prompts: vec![(second_factor::PROMPT.into(), false)].into(),
    }
}
use super::link::SshLink;

impl Conn {
    async fn key_matches(&mut self, login_name: &str, key: &PublicKey) -> Option<(User, Login)> {
        let login = match Login::parse(login_name) {
            Ok(l) => l,
            Err(msg) => {
                self.failure = Some((login_name.to_owned(), Code::BadLoginName, msg));
                return None;
            }
        };
        let store = &self.shared.store;
        let user = match store.user_by_username(&login.user).await {
            Ok(Some(u)) => u,
            Ok(None) => {
                self.failure = Some((
                    login_name.to_owned(),
                    Code::UnknownUser,
                    format!("no account named {}", login.user),
                ));
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot look up an ssh login; refusing it");
                self.failure = Some((
                    login_name.to_owned(),
                    Code::DatabaseUnavailable,
                    e.to_string(),
                ));
                return None;
            }
        };
        let keys = match store.ssh_keys(user.id).await {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "cannot read registered keys; refusing the login");
                self.failure = Some((
                    login_name.to_owned(),
                    Code::DatabaseUnavailable,
                    e.to_string(),
                ));
                return None;
            }
        };
        let matched = keys.iter().find(|k| {
            PublicKey::from_openssh(&k.public_key).is_ok_and(|p| p.key_data() == key.key_data())
        });
        if let Some(k) = matched
            && k.status != SshKeyStatus::Active
        {
            self.failure = Some((
                login_name.to_owned(),
                Code::KeyPending,
                format!(
                    "key {} of {} waits for the hospital IT's approval",
                    k.fingerprint, login.user
                ),
            ));
            return None;
        }
        if matched.is_none() {
            self.failure = Some((
                login_name.to_owned(),
                Code::UnknownKey,
                format!(
                    "key {} is not registered for {}",
                    key.fingerprint(russh::keys::HashAlg::Sha256),
                    login.user
                ),
            ));
            return None;
        }
        Some((user, login))
    }

    pub(super) async fn audit_denied(
        &self,
        user: &User,
        target: Option<TargetId>,
        channel: Audited,
        refusal: &Refusal,
    ) {
        admit::audit_denied(&self.shared, user, target, channel, refusal, &self.peer).await;
    }

    /// Decides the session (the same rule and audit as every transport) and, if allowed,
    /// logs into the target and begins the session.
    async fn admit(&mut self, vendor: server::Handle) -> State {
        let Some((user, login)) = self.identity.clone() else {
            return State::Refused("not authenticated".into());
        };
        let refuse = |target: Option<&Target>, message: &str| {
            let name = target.map_or(login.target.as_str(), |t| t.name.as_str());
            State::Refused(format!("access to {name} refused: {message}"))
        };
        if let Some(refusal) = self.refused_at_login.take() {
            self.audit_denied(&user, None, Audited::Ssh, &refusal).await;
            return refuse(None, &refusal.message);
        }
        let admitted = admit::admit(
            &self.shared,
            &user,
            &login.target,
            ChannelKind::Ssh,
            login.level,
            Audited::Ssh,
            &self.peer,
        )
        .await;
        let (target, grant) = match admitted {
            Ok(x) => x,
            Err((target, refusal)) => return refuse(target.as_ref(), &refusal.message),
        };
        match self.open(&user, &target, grant, vendor).await {
            Ok((live, conn)) => State::Live(live, conn),
            Err(refusal) => {
                self.audit_denied(&user, Some(target.id), Audited::Ssh, &refusal)
                    .await;
                refuse(Some(&target), &refusal.message)
            }
        }
    }

    /// Target login (pinned host key, the level's sealed credential), recording, session
    /// row, supervisor.
    async fn open(
        &self,
        user: &User,
        target: &Target,
        grant: Grant,
        vendor: server::Handle,
    ) -> Result<(Arc<Live>, Arc<TargetConn>), Refusal> {
        let shared = &self.shared;
        let credential = shared
            .store
            .target_credential(&shared.at_rest, target.id, grant.level)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, target = %target.name, "no usable target credential");
                Refusal::new(
                    Code::NoCredential,
                    format!(
                        "the gateway has no usable credential for the {} account of {}",
                        grant.level, target.name
                    ),
                )
            })?;
        let timeout = Duration::from_secs(u64::from(shared.ssh.connect_timeout_seconds));
        let connected = target::connect(target, &grant.account, &credential, timeout)
            .await
            .map_err(|e: TargetError| Refusal::new(e.code(), e.to_string()))?;
        if let Some(seen) = &connected.first_use
            && let Err(e) = shared
                .store
                .pin_host_key(target, &seen.openssh, &seen.fingerprint)
                .await
        {
            tracing::error!(error = %e, "cannot pin the target host key; refusing the session");
            return Err(Refusal::new(
                Code::DatabaseUnavailable,
                "the gateway cannot pin the target's host key (database unavailable)",
            ));
        }
        let (session, recording) =
            admit::begin(shared, user, target, &grant, self.transport, &self.peer).await?;
        let live = Arc::new(Live::new(
            session,
            grant,
            user.clone(),
            target.clone(),
            ChannelKind::Ssh,
            recording,
        ));
        let target_conn = Arc::new(connected.handle);
        self.shared
            .sessions
            .spawn(crate::session::supervise::supervise(
                live.clone(),
                self.shared.clone(),
                Box::new(SshLink {
                    vendor,
                    target: target_conn.clone(),
                }),
                self.gone.clone(),
            ));
        Ok((live, target_conn))
    }

    pub(super) async fn on_auth_none(&mut self, user: &str) -> Result<Auth, russh::Error> {
        if let Some(cert_user) = self.preauth.clone() {
            return Ok(match Login::parse(user) {
                Ok(login) if login.user == cert_user.username => {
                    self.identity = Some((cert_user, login));
                    Auth::Accept
                }
                Ok(_) | Err(_) => {
                    self.failure = Some((
                        user.to_owned(),
                        Code::CertificateUserMismatch,
                        format!(
                            "the client certificate is {}'s, not {user}'s",
                            cert_user.username
                        ),
                    ));
                    Auth::Reject {
                        proceed_with_methods: Some(russh::MethodSet::empty()),
                        partial_success: false,
                    }
                }
            });
        }
        // Remembered in case no key follows: a login that never authenticates is audited.
        self.failure = Some(match Login::parse(user) {
            Ok(login) => (
                user.to_owned(),
                Code::NoKey,
                format!("no registered key of {} was offered", login.user),
            ),
            Err(msg) => (user.to_owned(), Code::BadLoginName, msg),
        });
        let mut methods = russh::MethodSet::empty();
        methods.push(russh::MethodKind::PublicKey);
        Ok(Auth::Reject {
            proceed_with_methods: Some(methods),
            partial_success: false,
        })
    }

    pub(super) async fn on_auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, russh::Error> {
        if self.preauth.is_some() {
            return Ok(Auth::reject()); // the certificate is the only credential here
        }
        Ok(match self.key_matches(user, offer.public_key).await {
            Some(_) => Auth::Accept,
            None => Auth::reject(),
        })
    }

    pub(super) async fn on_auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, russh::Error> {
        if self.preauth.is_some() {
            return Ok(Auth::reject());
        }
        let Some((account, login)) = self.key_matches(user, key.public_key).await else {
            return Ok(Auth::reject());
        };
        match second_factor::needed(&self.shared, &account).await {
            Ok(Needed::Nothing) => {
                self.identity = Some((account, login));
                Ok(Auth::Accept)
            }
            Ok(Needed::Code) => {
                self.failure = Some((
                    user.to_owned(),
                    Code::MfaRequired,
                    format!("{}'s one-time code was not given", account.username),
                ));
                // Offering the key again does not earn more tries.
                let (tries, refused) = self
                    .second_factor
                    .as_ref()
                    .map_or((0, false), |p| (p.tries, p.refused));
                self.second_factor = Some(SecondFactor {
                    user: account,
                    login,
                    name: user.to_owned(),
                    tries,
                    refused,
                });
                let mut methods = russh::MethodSet::empty();
                methods.push(russh::MethodKind::KeyboardInteractive);
                Ok(Auth::Reject {
                    proceed_with_methods: Some(methods),
                    partial_success: true,
                })
            }
            // In, so that the vendor reads why on their terminal; refused before any session.
            Err(refusal) => {
                self.identity = Some((account, login));
                self.refused_at_login = Some(refusal);
                Ok(Auth::Accept)
            }
        }
    }

    /// The second step of a login whose key needs a one-time code: `answer` is `None` when
    /// the client starts keyboard-interactive (the code is asked for), else what the vendor
    /// typed. A wrong code is asked again, up to [`CODE_TRIES`] times per connection, with the
    /// reason shown; a refusal that trying again cannot mend is shown, then the login fails.
    pub(super) async fn on_auth_keyboard_interactive(
        &mut self,
        user: &str,
        answer: Option<Option<String>>,
    ) -> Result<Auth, russh::Error> {
        let Some(pending) = self.second_factor.as_mut().filter(|p| p.name == user) else {
            return Ok(Auth::reject()); // only after a registered key, for the same login
        };
        let stop = || Auth::Reject {
            proceed_with_methods: Some(russh::MethodSet::empty()),
            partial_success: false,
        };
        let Some(typed) = answer else {
            return Ok(if pending.refused { stop() } else { ask("") });
        };
        if pending.refused {
            return Ok(stop());
        }
        pending.tries += 1;
        let tries = pending.tries;
        let account = pending.user.clone();
        let checked = second_factor::check(
            &self.shared,
            &account,
            typed.as_deref(),
            &self.peer,
            Audited::Ssh,
        )
        .await;
        // Audited already: nothing more when the connection goes.
        self.failure = None;
        match checked {
            Ok(()) => {
                if let Some(p) = self.second_factor.take() {
                    self.identity = Some((p.user, p.login));
                }
                Ok(Auth::Accept)
            }
            Err(r)
                if tries < CODE_TRIES
                    && matches!(
                        r.code,
                        Code::WrongOneTimeCode | Code::OneTimeCodeReplayed | Code::MfaRequired
                    ) =>
            {
                Ok(ask(&format!("Sekisho: {}", r.message)))
            }
            Err(r) => {
                if let Some(p) = self.second_factor.as_mut() {
                    p.refused = true;
                }
                Ok(Auth::Partial {
                    name: "".into(),
                    instructions: format!("Sekisho: {}", r.message).into(),
                    prompts: Vec::new().into(),
                })
            }
        }
    }

    pub(super) async fn on_auth_succeeded(
        &mut self,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        self.unauth = None;
        self.authenticated.cancel();
        let handle = session.handle();
        self.state = self.admit(handle.clone()).await;
        if let State::Refused(message) = &self.state {
            tracing::info!(peer = %self.peer, reason = %message, "ssh session refused");
            let message = format!("Sekisho: {message}");
            let gone = self.gone.clone();
            tokio::spawn(async move {
                tokio::select! {
                    () = gone.cancelled() => {}
                    () = tokio::time::sleep(REFUSED_LINGER) => {
                        let _ = handle.disconnect(russh::Disconnect::ByApplication, message, "en".into()).await;
                    }
                }
            });
        }
        Ok(())
    }
}
