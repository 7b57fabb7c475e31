//! One vendor connection: the russh server handler.
//!
//! Authentication accepts only the public keys registered for the vendor user named in the
//! login (`alice+pacs`). Once the key is proven, [`Conn::admit`] decides: a refused vendor
//! still gets a channel so that stock `ssh` prints the reason, then the connection closes;
//! an admitted one gets a [`Live`] session. Channel requests (pty, shell, exec, sftp, env,
//! window changes, signals) are forwarded to the target in the handler and answered with the
//! target's own answer; vendor→target data is recorded before it is forwarded.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use russh::keys::PublicKey;
use russh::server::{
    self, Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, ChannelMsg, ChannelOpenFailure, ChannelReadHalf, Pty, Sig};
use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::authorize::{ChannelKind, Grant, check_channel};
use sekisho_domain::ids::TargetId;
use sekisho_domain::session::Transport;
use sekisho_domain::target::Target;
use sekisho_domain::upload::{self, ChannelWatch, Verdict};
use sekisho_domain::user::SshKeyStatus;
use sekisho_domain::user::User;
use sekisho_recorder::stream::StreamKind;
use sekisho_store::audit::NewAuditEvent;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::login::Login;
use super::pump::{self, Pump, Track, VendorWrite};
use super::sftp::{Framer, UploadGuard};
use super::target::{self, TargetError};
use super::uplink::{self, TargetWrite, Uplink};
use super::{MAX_CHANNELS, REFUSED_LINGER, Shared};
use crate::live::{self, Live};

/// How long the gateway waits for the target to answer a channel request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Refused sftp operations audited per channel (the rest are only counted in the log).
const AUDITED_REFUSALS: u32 = 20;

enum State {
    /// Not authenticated yet.
    Pending,
    /// Authenticated but refused: every channel shows this and ends.
    Refused(String),
    Live(Arc<Live>),
}

struct Chan {
    vendor: VendorWrite,
    /// For requests (pty, exec, window change, signal); data goes through `uplink`.
    target: TargetWrite,
    uplink: Uplink,
    /// Held by the handler until the pump takes over.
    target_read: Option<ChannelReadHalf>,
    stash: Vec<ChannelMsg>,
    rec: u32,
    pty: Option<(String, u32, u32)>,
    track: Option<Track>,
    guard: Option<UploadGuard>,
    /// At levels without upload: what the vendor sends, looked at for upload protocols and
    /// counted against the session's input bound (see `sekisho_domain::upload`).
    watch: Option<ChannelWatch>,
    inject: Option<mpsc::Sender<Vec<u8>>>,
    refusals: u32,
}

pub struct Conn {
    shared: Arc<Shared>,
    peer: String,
    identity: Option<(User, Login)>,
    /// The last authentication failure, audited if the connection never authenticates.
    failure: Option<(String, &'static str, String)>,
    state: State,
    channels: HashMap<ChannelId, Chan>,
    /// Refused connections' channels (no target behind them).
    refused_channels: usize,
    gone: CancellationToken,
    /// Set for connections handed over by the QUIC listener: the client certificate already
    /// proved who this is, so SSH authentication only checks the login names the same user.
    preauth: Option<User>,
    transport: Transport,
    /// This connection's place among the unauthenticated ones, given up on login.
    unauth: Option<super::UnauthSlot>,
    /// Cancelled on login, which stops the login grace timer.
    authenticated: CancellationToken,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.gone.cancel();
        if self.identity.is_none()
            && let Some((claimed, code, message)) = self.failure.take()
        {
            let failures = self.shared.failures.clone();
            let peer = self.peer.clone();
            tokio::spawn(async move {
                let ev = NewAuditEvent {
                    actor: Actor::Anonymous {
                        claimed: sekisho_domain::audit::claimed(&claimed),
                    },
                    outcome: Outcome::Denied,
                    vendor_id: None,
                    source_addr: Some(peer),
                    reason: Some(message),
                    event: AuditEvent::AccessDenied {
                        target: None,
                        request: None,
                        channel: "ssh".into(),
                        code: code.into(),
                    },
                };
                if let Err(e) = failures.record("ssh", ev).await {
                    tracing::error!(error = %e, "cannot audit a refused ssh login");
                }
            });
        }
    }
}

impl Conn {
    pub fn new(shared: Arc<Shared>, peer: String) -> Self {
        Self {
            shared,
            peer,
            identity: None,
            failure: None,
            state: State::Pending,
            channels: HashMap::new(),
            refused_channels: 0,
            gone: CancellationToken::new(),
            preauth: None,
            transport: Transport::Ssh,
            unauth: None,
            authenticated: CancellationToken::new(),
        }
    }

    /// A stock-SSH connection that holds `slot` at the gate until it logs in, and cancels
    /// `authenticated` when it does.
    pub fn at_gate(mut self, slot: super::UnauthSlot, authenticated: CancellationToken) -> Self {
        self.unauth = Some(slot);
        self.authenticated = authenticated;
        self
    }

    /// A connection from the designated client, whose certificate identified `user`.
    pub fn for_client_certificate(shared: Arc<Shared>, peer: String, user: User) -> Self {
        let mut conn = Self::new(shared, peer);
        conn.preauth = Some(user);
        conn.transport = Transport::Quic;
        conn
    }

    /// Whether `key` is registered for the user named in `login_name`.
    async fn key_matches(&mut self, login_name: &str, key: &PublicKey) -> Option<(User, Login)> {
        let login = match Login::parse(login_name) {
            Ok(l) => l,
            Err(msg) => {
                self.failure = Some((login_name.to_owned(), "bad_login_name", msg));
                return None;
            }
        };
        let store = &self.shared.store;
        let user = match store.user_by_username(&login.user).await {
            Ok(Some(u)) => u,
            Ok(None) => {
                self.failure = Some((
                    login_name.to_owned(),
                    "unknown_user",
                    format!("no account named {}", login.user),
                ));
                return None;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot look up an ssh login; refusing it");
                self.failure = Some((login_name.to_owned(), "database_unavailable", e.to_string()));
                return None;
            }
        };
        let keys = match store.ssh_keys(user.id).await {
            Ok(k) => k,
            Err(e) => {
                tracing::error!(error = %e, "cannot read registered keys; refusing the login");
                self.failure = Some((login_name.to_owned(), "database_unavailable", e.to_string()));
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
                "key_pending",
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
                "unknown_key",
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

    async fn audit_denied(
        &self,
        user: &User,
        target: Option<TargetId>,
        channel: &str,
        code: &str,
        message: &str,
    ) {
        live::audit_denied(
            &self.shared,
            user,
            target,
            channel,
            code,
            message,
            &self.peer,
        )
        .await;
    }

    /// Decides the session and, if allowed, connects to the target and starts recording.
    async fn admit(&mut self, vendor: server::Handle) -> State {
        let Some((user, login)) = self.identity.clone() else {
            return State::Refused("not authenticated".into());
        };
        let refuse = |target: Option<&Target>, message: String| {
            let name = target.map_or(login.target.as_str(), |t| t.name.as_str());
            State::Refused(format!("access to {name} refused: {message}"))
        };
        let store = self.shared.store.clone();
        let target = match store.target_by_name(&login.target).await {
            Ok(Some(t)) => t,
            Ok(None) => {
                let msg = format!("no target named {} is registered", login.target);
                self.audit_denied(&user, None, "ssh", "unknown_target", &msg)
                    .await;
                return refuse(None, msg);
            }
            Err(e) => return self.fail_closed(&user, None, e).await,
        };
        let decided =
            live::decide(&self.shared, &user, &target, ChannelKind::Ssh, login.level).await;
        let grant = match decided {
            Ok(Ok(grant)) => grant,
            Ok(Err((code, msg))) => {
                self.audit_denied(&user, Some(target.id), "ssh", code, &msg)
                    .await;
                return refuse(Some(&target), msg);
            }
            Err(e) => return self.fail_closed(&user, Some(target.id), e).await,
        };
        match self.open(&user, &target, grant, vendor).await {
            Ok(live) => State::Live(live),
            Err((code, msg)) => {
                self.audit_denied(&user, Some(target.id), "ssh", code, &msg)
                    .await;
                refuse(Some(&target), msg)
            }
        }
    }

    async fn fail_closed(
        &self,
        user: &User,
        target: Option<TargetId>,
        e: sekisho_store::StoreError,
    ) -> State {
        tracing::error!(error = %e, "database failure while admitting a session; refusing it");
        let msg = "the gateway cannot check your permission right now (database unavailable); try again later".to_owned();
        self.audit_denied(user, target, "ssh", "database_unavailable", &msg)
            .await;
        State::Refused(msg)
    }

    /// Target login, recording, session row, supervisor.
    async fn open(
        &self,
        user: &User,
        target: &Target,
        grant: Grant,
        vendor: server::Handle,
    ) -> Result<Arc<Live>, (&'static str, String)> {
        let shared = &self.shared;
        let credential = shared
            .store
            .target_credential(&shared.at_rest, target.id, grant.level)
            .await
            .map_err(|e| {
                tracing::error!(error = %e, target = %target.name, "no usable target credential");
                (
                    "no_credential",
                    format!(
                        "the gateway has no usable credential for the {} account of {}",
                        grant.level, target.name
                    ),
                )
            })?;
        let timeout = Duration::from_secs(u64::from(shared.ssh.connect_timeout_seconds));
        let connected = target::connect(target, &grant.account, &credential, timeout)
            .await
            .map_err(|e: TargetError| (e.code(), e.to_string()))?;
        if let Some(seen) = &connected.first_use
            && let Err(e) = shared
                .store
                .pin_host_key(target, &seen.openssh, &seen.fingerprint)
                .await
        {
            tracing::error!(error = %e, "cannot pin the target host key; refusing the session");
            return Err((
                "database_unavailable",
                "the gateway cannot pin the target's host key (database unavailable)".into(),
            ));
        }
        let (session, recording) =
            live::begin(shared, user, target, &grant, self.transport, &self.peer).await?;
        let live = Arc::new(Live::new(
            session,
            grant,
            user.clone(),
            target.clone(),
            ChannelKind::Ssh,
            Some(connected.handle),
            recording,
        ));
        self.shared.sessions.spawn(live::supervise(
            live.clone(),
            self.shared.clone(),
            live::Vendor::Ssh(vendor),
            self.gone.clone(),
        ));
        Ok(live)
    }

    fn live(&self) -> Option<Arc<Live>> {
        match &self.state {
            State::Live(l) => Some(l.clone()),
            _ => None,
        }
    }

    /// Shows the refusal on a channel and closes it.
    fn show_refusal(&self, channel: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
        let State::Refused(message) = &self.state else {
            return Ok(());
        };
        session.channel_success(channel)?;
        session.extended_data(channel, 1, Bytes::from(format!("sekisho: {message}\r\n")))?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)
    }

    /// Waits for the target's answer to the request just forwarded on `chan`.
    async fn target_reply(chan: &mut Chan) -> bool {
        let Some(read) = chan.target_read.as_mut() else {
            return false;
        };
        loop {
            match tokio::time::timeout(REPLY_TIMEOUT, read.wait()).await {
                Ok(Some(ChannelMsg::Success)) => return true,
                Ok(Some(ChannelMsg::Failure)) | Ok(None) | Err(_) => return false,
                Ok(Some(other)) => chan.stash.push(other),
            }
        }
    }

    /// Answers the vendor with the target's answer.
    fn reply(ok: bool, channel: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
        if ok {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    /// Refuses a channel-level request with a reason on stderr, audited.
    async fn refuse_on_channel(
        &mut self,
        live: &Live,
        channel: ChannelId,
        kind: &str,
        code: &str,
        message: &str,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        self.audit_denied(&live.user, Some(live.target.id), kind, code, message)
            .await;
        session.channel_success(channel)?;
        session.extended_data(channel, 1, Bytes::from(format!("sekisho: {message}\r\n")))?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)?;
        if let Some(chan) = self.channels.remove(&channel) {
            chan.uplink.close();
        }
        Ok(())
    }

    /// Ends a running channel for a refused upload: audited (`upload_not_allowed`, with what
    /// was recognised), the reason on the vendor's stderr, exit status 1, the target's side
    /// closed. The rest of the session goes on.
    async fn stop_channel(
        &mut self,
        live: &Live,
        channel: ChannelId,
        what: &str,
        message: &str,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        self.audit_denied(
            &live.user,
            Some(live.target.id),
            "file_upload",
            "upload_not_allowed",
            &format!("{message} [{what}]"),
        )
        .await;
        let line = format!("\r\nsekisho: {message}\r\n");
        if let Some(chan) = self.channels.remove(&channel) {
            chan.uplink.close();
            if let Some(Track::Terminal(ch)) = chan.track {
                let _ = live.recording.output(ch, line.as_bytes()).await;
            }
        }
        // Through the handler's session, so the reason reaches the vendor before the close.
        session.extended_data(channel, 1, Bytes::from(line))?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)
    }

    fn upload_check(live: &Live) -> Result<(), (String, String)> {
        let level = live.grant.level;
        let Some(policy) = live.target.level(level) else {
            return Err((
                "level_not_offered".into(),
                format!("{} offers no {level} access", live.target.name),
            ));
        };
        check_channel(ChannelKind::FileUpload, policy, &live.target.name, level).map_err(|r| {
            (
                r.code().to_owned(),
                r.message(&sekisho_domain::zone::DisplayZone::utc()),
            )
        })
    }
}

impl server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        if let Some(cert_user) = self.preauth.clone() {
            return Ok(match Login::parse(user) {
                Ok(login) if login.user == cert_user.username => {
                    self.identity = Some((cert_user, login));
                    Auth::Accept
                }
                Ok(_) | Err(_) => {
                    self.failure = Some((
                        user.to_owned(),
                        "certificate_user_mismatch",
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
                "no_key",
                format!("no registered key of {} was offered", login.user),
            ),
            Err(msg) => (user.to_owned(), "bad_login_name", msg),
        });
        let mut methods = russh::MethodSet::empty();
        methods.push(russh::MethodKind::PublicKey);
        Ok(Auth::Reject {
            proceed_with_methods: Some(methods),
            partial_success: false,
        })
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.preauth.is_some() {
            return Ok(Auth::reject()); // the certificate is the only credential here
        }
        Ok(match self.key_matches(user, offer.public_key).await {
            Some(_) => Auth::Accept,
            None => Auth::reject(),
        })
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        if self.preauth.is_some() {
            return Ok(Auth::reject());
        }
        match self.key_matches(user, key.public_key).await {
            Some(identity) => {
                self.identity = Some(identity);
                Ok(Auth::Accept)
            }
            None => Ok(Auth::reject()),
        }
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
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

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let live = match &self.state {
            State::Pending => return Ok(()),
            State::Refused(_) => {
                if self.refused_channels < MAX_CHANNELS {
                    self.refused_channels += 1;
                    reply.accept().await;
                }
                return Ok(());
            }
            State::Live(l) => l.clone(),
        };
        if self.channels.len() >= MAX_CHANNELS || live.ended.is_cancelled() {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        let target = match live.target_ssh()?.channel_open_session().await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!(session = %live.session.id, error = %e, "target refused a session channel");
                reply.reject(ChannelOpenFailure::ConnectFailed).await;
                return Ok(());
            }
        };
        reply.accept().await;
        self.add_channel(&live, channel, target);
        Ok(())
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(live) = self.live() else {
            return Ok(()); // dropping the handle refuses
        };
        let target = &live.target;
        let port = u16::try_from(port_to_connect).unwrap_or(0);
        let level = live.grant.level;
        let allowed = match target.level(level) {
            Some(policy) => check_channel(
                ChannelKind::PortForward { port },
                policy,
                &target.name,
                level,
            )
            .map_err(|r| (r.code().to_owned(), r.message(&self.shared.zone))),
            None => Err((
                "level_not_offered".into(),
                format!("{} offers no {level} access", target.name),
            )),
        };
        let host_ok = [
            target.host.as_str(),
            target.name.as_str(),
            "localhost",
            "127.0.0.1",
        ]
        .contains(&host_to_connect);
        let allowed = allowed.and_then(|()| {
            if host_ok {
                Ok(())
            } else {
                Err((
                    "forward_host_not_allowed".into(),
                    format!(
                        "forwarding goes only to {} itself, not to {host_to_connect}",
                        target.name
                    ),
                ))
            }
        });
        if let Err((code, msg)) = allowed {
            self.audit_denied(&live.user, Some(target.id), "port_forward", &code, &msg)
                .await;
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        if self.channels.len() >= MAX_CHANNELS || live.ended.is_cancelled() {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        let opened = live
            .target_ssh()?
            .channel_open_direct_tcpip(
                target.host.clone(),
                port_to_connect,
                originator_address,
                originator_port,
            )
            .await;
        let Ok(target_channel) = opened else {
            reply.reject(ChannelOpenFailure::ConnectFailed).await;
            return Ok(());
        };
        let rec = live.next_channel();
        if let Err(e) = live
            .recording
            .stream(rec, StreamKind::Tcp, format!("{}:{port}", target.host))
            .await
        {
            live.recording_failed(&e);
            reply
                .reject(ChannelOpenFailure::AdministrativelyProhibited)
                .await;
            return Ok(());
        }
        reply.accept().await;
        let id = channel.id();
        self.add_channel(&live, channel, target_channel);
        if let Some(chan) = self.channels.get_mut(&id) {
            chan.rec = rec;
        }
        let handle = _session.handle();
        self.start_pump_with(&live, id, Track::Stream(rec), handle);
        Ok(())
    }

    async fn pty_request(
        &mut self,
        channel: ChannelId,
        term: &str,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        modes: &[(Pty, u32)],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        if self.live().is_none() {
            return session.channel_success(channel);
        }
        let Some(chan) = self.channels.get_mut(&channel) else {
            return session.channel_failure(channel);
        };
        let sent = chan
            .target
            .request_pty(
                true, term, col_width, row_height, pix_width, pix_height, modes,
            )
            .await;
        let ok = sent.is_ok() && Self::target_reply(chan).await;
        if ok {
            chan.pty = Some((term.to_owned(), col_width, row_height));
        }
        Self::reply(ok, channel, session)
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let allowed = self.shared.ssh.env_allowed(name);
        let Some(chan) = self.channels.get_mut(&channel).filter(|_| allowed) else {
            tracing::debug!(variable = name, "environment variable refused");
            return session.channel_failure(channel);
        };
        let ok = chan.target.set_env(false, name, value).await.is_ok();
        Self::reply(ok, channel, session)
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(live) = self.live() else {
            return self.show_refusal(channel, session);
        };
        if Self::upload_check(&live).is_err()
            && let Some(chan) = self.channels.get_mut(&channel)
        {
            chan.watch = Some(ChannelWatch::default());
        }
        self.start(&live, channel, Start::Shell, session).await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(live) = self.live() else {
            return self.show_refusal(channel, session);
        };
        let command = String::from_utf8_lossy(data).into_owned();
        let ban = Self::upload_check(&live).err();
        if let Some((code, message)) = &ban
            && upload::is_upload_command(&command)
        {
            return self
                .refuse_on_channel(&live, channel, "file_upload", code, message, session)
                .await;
        }
        if ban.is_some()
            && let Some(chan) = self.channels.get_mut(&channel)
        {
            chan.watch = Some(ChannelWatch::default());
        }
        self.start(&live, channel, Start::Exec(command), session)
            .await
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(live) = self.live() else {
            return self.show_refusal(channel, session);
        };
        if name != "sftp" {
            let msg = format!("the {name} subsystem is not offered");
            return self
                .refuse_on_channel(
                    &live,
                    channel,
                    "subsystem",
                    "subsystem_not_offered",
                    &msg,
                    session,
                )
                .await;
        }
        if Self::upload_check(&live).is_err()
            && let Some(chan) = self.channels.get_mut(&channel)
        {
            chan.guard = Some(UploadGuard::default());
        }
        self.start(&live, channel, Start::Sftp, session).await
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(live) = self.live() else {
            return Ok(());
        };
        let Some(chan) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        let Some(track) = chan.track else {
            return Ok(()); // nothing runs on the target yet
        };
        live.to_target
            .fetch_add(data.len() as u64, std::sync::atomic::Ordering::Relaxed);
        if !track.record_input(&live, data).await {
            return Ok(());
        }
        let watched;
        let mut data = data;
        if let Some(watch) = chan.watch.as_mut() {
            let (verdict, bytes) = {
                let mut budget = live
                    .input
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                watch.feed(
                    data,
                    chan.pty.is_some(),
                    &mut budget,
                    &self.shared.input_limits,
                )
            };
            match verdict {
                Verdict::Hold => return Ok(()),
                Verdict::Pass => {}
                Verdict::Paste(n) => {
                    if let Track::Terminal(ch) = track
                        && let Err(e) = live
                            .recording
                            .marker(ch, &format!("paste of {n} bytes"))
                            .await
                    {
                        live.recording_failed(&e);
                        return Ok(());
                    }
                }
                // `sftp -s PROGRAM`: an SFTP session on an exec channel gets the same
                // read-only guard as the sftp subsystem.
                Verdict::Sftp => {
                    chan.watch = None;
                    chan.guard = Some(UploadGuard::default());
                }
                Verdict::Refuse(upload) => {
                    let message = format!(
                        "{upload} refused: file upload to {} is not allowed at {} level",
                        live.target.name, live.grant.level
                    );
                    return self
                        .stop_channel(&live, channel, upload.code(), &message, session)
                        .await;
                }
            }
            watched = bytes;
            data = &watched;
        }
        let Some(guard) = chan.guard.as_mut() else {
            chan.uplink.send(Bytes::copy_from_slice(data)).await;
            return Ok(());
        };
        let filtered = match guard.feed(data) {
            Ok(f) => f,
            Err(e) => {
                let msg = format!("sftp stream refused: {e}");
                return self
                    .refuse_on_channel(
                        &live,
                        channel,
                        "file_upload",
                        "sftp_malformed",
                        &msg,
                        session,
                    )
                    .await;
            }
        };
        let mut audits = vec![];
        for (status, what) in filtered.refused {
            if chan.refusals == 0 {
                let vendor = chan.vendor.clone();
                let text = Self::upload_check(&live)
                    .err()
                    .map(|(_, m)| m)
                    .unwrap_or_else(|| "file upload is not allowed".into());
                pump::notice(&live, &vendor, None, &text).await;
            }
            chan.refusals += 1;
            if chan.refusals <= AUDITED_REFUSALS {
                audits.push(what);
            }
            if let Some(tx) = &chan.inject {
                let _ = tx.send(status).await;
            }
        }
        if !filtered.forward.is_empty() {
            chan.uplink.send(Bytes::from(filtered.forward)).await;
        }
        for what in audits {
            let code = Self::upload_check(&live)
                .err()
                .map(|(c, _)| c)
                .unwrap_or_default();
            self.audit_denied(
                &live.user,
                Some(live.target.id),
                "file_upload",
                &code,
                &format!("sftp: {what}"),
            )
            .await;
        }
        Ok(())
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(chan) = self.channels.get(&channel) {
            chan.uplink.eof();
        }
        Ok(())
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(chan) = self.channels.remove(&channel) {
            chan.uplink.close();
        }
        Ok(())
    }

    /// The window the vendor is granted next: a trickle while a channel's target lags
    /// (see `uplink.rs`).
    fn adjust_window(&mut self, _channel: ChannelId, _current: u32) -> u32 {
        if self
            .channels
            .values()
            .any(|c| c.uplink.queued() > uplink::HIGH)
        {
            uplink::TRICKLE
        } else {
            super::WINDOW
        }
    }

    async fn window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(live) = self.live() else {
            return Ok(());
        };
        if let Some(chan) = self.channels.get(&channel) {
            if let Some(Track::Terminal(ch)) = chan.track {
                let size = |v: u32| u16::try_from(v).unwrap_or(u16::MAX);
                if let Err(e) = live
                    .recording
                    .resize(ch, size(col_width), size(row_height))
                    .await
                {
                    live.recording_failed(&e);
                }
            }
            let _ = chan
                .target
                .window_change(col_width, row_height, pix_width, pix_height)
                .await;
        }
        Ok(())
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        if let Some(chan) = self.channels.get(&channel) {
            let _ = chan.target.signal(signal).await;
        }
        Ok(())
    }

    async fn x11_request(
        &mut self,
        channel: ChannelId,
        _single_connection: bool,
        _x11_auth_protocol: &str,
        _x11_auth_cookie: &str,
        _x11_screen_number: u32,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.refuse_forward(ChannelKind::X11Forward, "x11_forward")
            .await;
        session.channel_failure(channel)
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.refuse_forward(ChannelKind::AgentForward, "agent_forward")
            .await;
        Ok(false)
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        _port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.refuse_forward(ChannelKind::RemoteForward, "remote_forward")
            .await;
        Ok(false)
    }
}

/// What a session channel runs.
enum Start {
    Shell,
    Exec(String),
    Sftp,
}

impl Conn {
    fn add_channel(
        &mut self,
        live: &Live,
        vendor: Channel<Msg>,
        target: Channel<russh::client::Msg>,
    ) {
        let id = vendor.id();
        // The vendor's read half is not needed: requests and data reach the handler methods.
        let (_, vendor_write) = vendor.split();
        let (target_read, target_write) = target.split();
        let target_write = Arc::new(target_write);
        self.channels.insert(
            id,
            Chan {
                vendor: Arc::new(vendor_write),
                uplink: Uplink::start(target_write.clone()),
                target: target_write,
                target_read: Some(target_read),
                stash: vec![],
                rec: live.next_channel(),
                pty: None,
                track: None,
                guard: None,
                watch: None,
                inject: None,
                refusals: 0,
            },
        );
    }

    fn start_pump_with(
        &mut self,
        live: &Arc<Live>,
        channel: ChannelId,
        track: Track,
        handle: server::Handle,
    ) {
        let Some(chan) = self.channels.get_mut(&channel) else {
            return;
        };
        let Some(target) = chan.target_read.take() else {
            return;
        };
        chan.track = Some(track);
        // A watched channel may turn out to be an SFTP session (`sftp -s PROGRAM`) and get
        // the guard later: it needs the way back for refusals from the start.
        let inject = (chan.guard.is_some() || chan.watch.is_some()).then(|| {
            let (tx, rx) = mpsc::channel(16);
            chan.inject = Some(tx);
            (rx, Framer::default())
        });
        let pump = Pump {
            live: live.clone(),
            vendor: chan.vendor.clone(),
            vendor_handle: handle,
            target,
            stash: std::mem::take(&mut chan.stash),
            track,
            inject,
        };
        live.pumps.spawn(pump.run());
    }

    /// Records the channel's start, forwards the request and answers with the target's reply.
    async fn start(
        &mut self,
        live: &Arc<Live>,
        channel: ChannelId,
        what: Start,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let Some(chan) = self.channels.get_mut(&channel) else {
            return session.channel_failure(channel);
        };
        if chan.track.is_some() {
            return session.channel_failure(channel); // one program per channel
        }
        let rec = chan.rec;
        let who = format!("{}@{}", live.user.username, live.target.name);
        let (recorded, track) = match (&what, &chan.pty) {
            (Start::Shell, Some((term, w, h))) => (
                live.recording
                    .terminal(
                        rec,
                        dimension(*w, 80),
                        dimension(*h, 24),
                        format!("{who}: shell"),
                        Some(term.clone()),
                    )
                    .await,
                Track::Terminal(rec),
            ),
            (Start::Exec(cmd), Some((term, w, h))) => (
                live.recording
                    .terminal(
                        rec,
                        dimension(*w, 80),
                        dimension(*h, 24),
                        format!("{who}: {cmd}"),
                        Some(term.clone()),
                    )
                    .await,
                Track::Terminal(rec),
            ),
            (Start::Shell, None) => (
                live.recording
                    .stream(rec, StreamKind::Exec, "shell (no terminal)".into())
                    .await,
                Track::Stream(rec),
            ),
            (Start::Exec(cmd), None) => (
                live.recording
                    .stream(rec, StreamKind::Exec, cmd.clone())
                    .await,
                Track::Stream(rec),
            ),
            (Start::Sftp, _) => (
                live.recording
                    .stream(rec, StreamKind::Sftp, "sftp".into())
                    .await,
                Track::Stream(rec),
            ),
        };
        if let Err(e) = recorded {
            live.recording_failed(&e);
            return session.channel_failure(channel);
        }
        let sent = match &what {
            Start::Shell => chan.target.request_shell(true).await,
            Start::Exec(cmd) => chan.target.exec(true, cmd.as_bytes().to_vec()).await,
            Start::Sftp => chan.target.request_subsystem(true, "sftp").await,
        };
        let ok = sent.is_ok() && Self::target_reply(chan).await;
        Self::reply(ok, channel, session)?;
        if ok {
            self.start_pump_with(live, channel, track, session.handle());
        }
        Ok(())
    }

    async fn refuse_forward(&self, kind: ChannelKind, label: &str) {
        let Some(live) = self.live() else {
            return;
        };
        let level = live.grant.level;
        let reason = match live.target.level(level) {
            Some(policy) => check_channel(kind, policy, &live.target.name, level).err(),
            None => None,
        };
        if let Some(reason) = reason {
            self.audit_denied(
                &live.user,
                Some(live.target.id),
                label,
                reason.code(),
                &reason.message(&self.shared.zone),
            )
            .await;
        }
    }
}

/// A terminal dimension for the recording; clients without a terminal of their own
/// (`ssh -tt` from a script) report 0, recorded as the usual 80×24.
fn dimension(v: u32, default: u16) -> u16 {
    match v {
        0 => default,
        v => u16::try_from(v).unwrap_or(u16::MAX),
    }
}
