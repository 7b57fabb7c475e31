//! Forwarding: `direct-tcpip` channels only where the level allows them, to an allowed port
//! of the target itself (the rule is `sekisho_domain::authorize::check_forward`), recorded as
//! TCP streams; remote, agent and X11 forwarding refused and audited.

use russh::server::{ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, ChannelOpenFailure};
use sekisho_domain::authorize::{ChannelKind, check_forward, check_granted};
use sekisho_domain::refusal::Channel as Audited;
use sekisho_recorder::stream::StreamKind;

use super::chan::Forward;
use super::conn::Conn;
use super::limits::MAX_CHANNELS;
use super::notice::Track;

impl Conn {
    async fn refuse_forward(&self, kind: ChannelKind, audited: Audited) {
        let Some(live) = self.live() else {
            return;
        };
        if let Err(reason) = check_granted(kind, &live.target, live.grant.level) {
            let refusal = reason.refusal(&self.shared.zone);
            self.audit_denied(&live.user, Some(live.target.id), audited, &refusal)
                .await;
        }
    }

    pub(super) async fn on_channel_open_direct_tcpip(
        &mut self,
        channel: Channel<Msg>,
        asked: Forward<'_>,
        reply: ChannelOpenHandle,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let Forward {
            host: host_to_connect,
            port: port_to_connect,
            originator: (originator_address, originator_port),
        } = asked;
        let Some(live) = self.live() else {
            return Ok(()); // dropping the handle refuses
        };
        let target = &live.target;
        let port = match check_forward(target, live.grant.level, host_to_connect, port_to_connect) {
            Ok(port) => port,
            Err(reason) => {
                let refusal = reason.refusal(&self.shared.zone);
                self.audit_denied(&live.user, Some(target.id), Audited::PortForward, &refusal)
                    .await;
                reply
                    .reject(ChannelOpenFailure::AdministrativelyProhibited)
                    .await;
                return Ok(());
            }
        };
        if self.channels.len() >= MAX_CHANNELS || live.ended.is_cancelled() {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        let opened = self
            .target()?
            .channel_open_direct_tcpip(
                target.host.clone(),
                u32::from(port),
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
        let handle = session.handle();
        self.start_pump_with(&live, id, Track::Stream(rec), handle);
        Ok(())
    }

    pub(super) async fn on_x11_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        self.refuse_forward(ChannelKind::X11Forward, Audited::X11Forward)
            .await;
        session.channel_failure(channel)
    }

    pub(super) async fn on_agent_request(&mut self) -> Result<bool, russh::Error> {
        self.refuse_forward(ChannelKind::AgentForward, Audited::AgentForward)
            .await;
        Ok(false)
    }

    pub(super) async fn on_tcpip_forward(&mut self) -> Result<bool, russh::Error> {
        self.refuse_forward(ChannelKind::RemoteForward, Audited::RemoteForward)
            .await;
        Ok(false)
    }
}
