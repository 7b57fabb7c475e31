//! One vendor connection: the russh server handler, thin. What each callback does lives
//! beside it: authentication and admission in [`super::auth`], session channels (shells,
//! commands, sftp, their data, the upload watch) in [`super::channel`], forwarding in
//! [`super::forward`]. A refused vendor still gets a channel so that stock `ssh` prints the
//! reason, then the connection closes; an admitted one gets a [`Live`] session.

use std::collections::HashMap;
use std::sync::Arc;

use russh::server::{
    self, Auth, ChannelOpenHandle, Msg, PublicKeyOffer, Session, VerifiedPublicKey,
};
use russh::{Channel, ChannelId, Pty, Sig};
use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::session::Transport;
use sekisho_domain::user::User;
use sekisho_store::audit::NewAuditEvent;
use tokio_util::sync::CancellationToken;

use super::chan::{Chan, Forward, PtyRequest};
use super::login::Login;
use super::target::TargetHandler;
use super::uplink;
use crate::session::{Live, Shared};
use sekisho_domain::refusal::{Channel as Audited, Code};

/// The gateway's SSH connection to a target.
pub(super) type TargetConn = russh::client::Handle<TargetHandler>;

pub(super) enum State {
    /// Not authenticated yet.
    Pending,
    /// Authenticated but refused: every channel shows this and ends.
    Refused(String),
    /// Admitted: the session, and the gateway's SSH connection to the target.
    Live(Arc<Live>, Arc<TargetConn>),
}

/// A login whose key is proved and whose one-time code is being asked for.
pub(super) struct SecondFactor {
    pub(super) user: User,
    pub(super) login: Login,
    /// The login name as sent (the code must come for the same one).
    pub(super) name: String,
    /// Codes tried on this connection.
    pub(super) tries: u32,
    /// Set when the next answer can only be refused: the reason was shown to the vendor.
    pub(super) refused: bool,
}

pub struct Conn {
    pub(super) shared: Arc<Shared>,
    pub(super) peer: String,
    pub(super) identity: Option<(User, Login)>,
    /// The key is proved; the account's one-time code is asked for (keyboard-interactive).
    pub(super) second_factor: Option<SecondFactor>,
    /// Authenticated, but refused before any session: shown once a channel opens.
    pub(super) refused_at_login: Option<sekisho_domain::refusal::Refusal>,
    /// The last authentication failure, audited if the connection never authenticates.
    pub(super) failure: Option<(String, Code, String)>,
    pub(super) state: State,
    pub(super) channels: HashMap<ChannelId, Chan>,
    /// Refused connections' channels (no target behind them).
    pub(super) refused_channels: usize,
    pub(super) gone: CancellationToken,
    /// Set for connections handed over by the QUIC listener: the client certificate already
    /// proved who this is, so SSH authentication only checks the login names the same user.
    pub(super) preauth: Option<User>,
    pub(super) transport: Transport,
    /// This connection's place among the unauthenticated ones, given up on login.
    pub(super) unauth: Option<super::gate::UnauthSlot>,
    /// Cancelled on login, which stops the login grace timer.
    pub(super) authenticated: CancellationToken,
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
                        channel: Audited::Ssh,
                        code,
                    },
                };
                if let Err(e) = failures.record(Audited::Ssh, ev).await {
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
            second_factor: None,
            refused_at_login: None,
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

    pub fn at_gate(
        mut self,
        slot: super::gate::UnauthSlot,
        authenticated: CancellationToken,
    ) -> Self {
        self.unauth = Some(slot);
        self.authenticated = authenticated;
        self
    }

    pub fn for_client_certificate(shared: Arc<Shared>, peer: String, user: User) -> Self {
        let mut conn = Self::new(shared, peer);
        conn.preauth = Some(user);
        conn.transport = Transport::Quic;
        conn
    }

    pub(super) fn live(&self) -> Option<Arc<Live>> {
        match &self.state {
            State::Live(l, _) => Some(l.clone()),
            _ => None,
        }
    }

    /// The gateway's SSH connection to the target of an admitted session.
    pub(super) fn target(&self) -> Result<Arc<TargetConn>, russh::Error> {
        match &self.state {
            State::Live(_, t) => Ok(t.clone()),
            _ => Err(russh::Error::Disconnect),
        }
    }
}

impl server::Handler for Conn {
    type Error = russh::Error;

    async fn auth_none(&mut self, user: &str) -> Result<Auth, Self::Error> {
        self.on_auth_none(user).await
    }

    async fn auth_publickey_offered(
        &mut self,
        user: &str,
        offer: PublicKeyOffer<'_>,
    ) -> Result<Auth, Self::Error> {
        self.on_auth_publickey_offered(user, offer).await
    }

    async fn auth_publickey(
        &mut self,
        user: &str,
        key: VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        self.on_auth_publickey(user, key).await
    }

    async fn auth_keyboard_interactive<'a>(
        &'a mut self,
        user: &str,
        _submethods: &str,
        response: Option<server::Response<'a>>,
    ) -> Result<Auth, Self::Error> {
        let answer = response.map(|mut r| {
            r.next()
                .map(|b| String::from_utf8_lossy(b.as_ref()).into_owned())
        });
        self.on_auth_keyboard_interactive(user, answer).await
    }

    async fn auth_succeeded(&mut self, session: &mut Session) -> Result<(), Self::Error> {
        self.on_auth_succeeded(session).await
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.on_channel_open_session(channel, reply).await
    }

    async fn channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        host_to_connect: &str,
        port_to_connect: u32,
        originator_address: &str,
        originator_port: u32,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let asked = Forward {
            host: host_to_connect,
            port: port_to_connect,
            originator: (originator_address, originator_port),
        };
        self.on_channel_open_direct_tcpip(channel, asked, reply, session)
            .await
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
        let pty = PtyRequest {
            term,
            cols: col_width,
            rows: row_height,
            pixels: (pix_width, pix_height),
            modes,
        };
        self.on_pty_request(channel, pty, session).await
    }

    async fn env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.on_env_request(channel, name, value, session).await
    }

    async fn shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.on_shell_request(channel, session).await
    }

    async fn exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.on_exec_request(channel, data, session).await
    }

    async fn subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.on_subsystem_request(channel, name, session).await
    }

    async fn data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.on_data(channel, data, session).await
    }

    async fn channel_eof(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.on_channel_eof(channel).await
    }

    async fn channel_close(
        &mut self,
        channel: ChannelId,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.on_channel_close(channel).await
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
            super::limits::WINDOW
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
        self.on_window_change_request(channel, col_width, row_height, pix_width, pix_height)
            .await
    }

    async fn signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.on_signal(channel, signal).await
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
        self.on_x11_request(channel, session).await
    }

    async fn agent_request(
        &mut self,
        _channel: ChannelId,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.on_agent_request().await
    }

    async fn tcpip_forward(
        &mut self,
        _address: &str,
        _port: &mut u32,
        _session: &mut Session,
    ) -> Result<bool, Self::Error> {
        self.on_tcpip_forward().await
    }
}
