//! Session channels: a shell, a command or sftp on the target, forwarded request by request
//! and answered with the target's own reply; vendor→target data recorded, watched at levels
//! without upload (`sekisho_domain::upload`), filtered by the sftp guard, then queued for the
//! target (`uplink`); target→vendor data pumped back (`pump`).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use russh::server::{self, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg, ChannelOpenFailure, Sig};
use sekisho_domain::authorize::{ChannelKind, check_granted};
use sekisho_domain::upload::{self, ChannelWatch, Verdict};
use sekisho_recorder::stream::StreamKind;
use tokio::sync::mpsc;

use super::file_log::FileLog;
use super::limits::MAX_CHANNELS;
use super::notice::{self, Track};
use super::pump::Pump;
use super::uplink::Uplink;
use crate::session::Live;
use sekisho_domain::files::{self, UploadMode};
use sekisho_domain::refusal::{Channel as Audited, Code, Refusal};

use super::chan::{Chan, PtyRequest};
use super::conn::{Conn, State};
use super::scp::{ScpEvent, ScpSlot};
use super::sftp::relay::SftpSlot;
use super::transfers;

/// How long the gateway waits for the target to answer a channel request.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Refused sftp operations audited per channel (the rest are only counted in the log).
const AUDITED_REFUSALS: u32 = 20;

impl Conn {
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

    fn reply(ok: bool, channel: ChannelId, session: &mut Session) -> Result<(), russh::Error> {
        if ok {
            session.channel_success(channel)
        } else {
            session.channel_failure(channel)
        }
    }

    async fn refuse_on_channel(
        &mut self,
        live: &Live,
        channel: ChannelId,
        kind: Audited,
        refusal: &Refusal,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        self.audit_denied(&live.user, Some(live.target.id), kind, refusal)
            .await;
        session.channel_success(channel)?;
        session.extended_data(
            channel,
            1,
            Bytes::from(format!("sekisho: {}\r\n", refusal.message)),
        )?;
        session.exit_status_request(channel, 1)?;
        session.eof(channel)?;
        session.close(channel)?;
        if let Some(chan) = self.channels.remove(&channel) {
            chan.uplink.close();
        }
        Ok(())
    }

    async fn stop_channel(
        &mut self,
        live: &Live,
        channel: ChannelId,
        what: &str,
        message: &str,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let refusal = Refusal::new(Code::UploadNotAllowed, format!("{message} [{what}]"));
        self.audit_denied(
            &live.user,
            Some(live.target.id),
            Audited::FileUpload,
            &refusal,
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

    fn upload_check(live: &Live) -> Result<(), Refusal> {
        check_granted(ChannelKind::FileUpload, &live.target, live.grant.level)
            .map_err(|r| r.refusal(&sekisho_domain::zone::DisplayZone::utc()))
    }

    pub(super) fn add_channel(
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
                sftp: SftpSlot::default(),
                scp: ScpSlot::default(),
                watch: None,
                inject: None,
                refusals: 0,
            },
        );
    }

    pub(super) fn start_pump_with(
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
        // the relay later: it needs the way back for the gateway's own replies from the start.
        let inject = (chan.sftp.get().is_some() || chan.watch.is_some()).then(|| {
            let (tx, rx) = mpsc::channel(64);
            chan.inject = Some(tx);
            rx
        });
        let pump = Pump {
            live: live.clone(),
            vendor: chan.vendor.clone(),
            vendor_handle: handle,
            target,
            stash: std::mem::take(&mut chan.stash),
            track,
            inject,
            sftp: chan.sftp.clone(),
            scp: chan.scp.clone(),
            files: FileLog::new(self.shared.store.clone(), self.shared.node.clone()),
        };
        live.pumps.spawn(pump.run());
    }

    pub(super) async fn start(
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
        // A shell or command on a terminal is recorded as one; without, as a stream.
        let label = match &what {
            Start::Shell => "shell",
            Start::Exec(cmd) => cmd.as_str(),
            Start::Sftp => "sftp",
        };
        let (recorded, track) = match (&what, &chan.pty) {
            (Start::Shell | Start::Exec(_), Some((term, w, h))) => (
                live.recording
                    .terminal(
                        rec,
                        dimension(*w, 80),
                        dimension(*h, 24),
                        format!("{who}: {label}"),
                        Some(term.clone()),
                    )
                    .await,
                Track::Terminal(rec),
            ),
            (Start::Shell | Start::Exec(_), None) => {
                let detail = match &what {
                    Start::Shell => "shell (no terminal)".to_owned(),
                    _ => label.to_owned(),
                };
                (
                    live.recording.stream(rec, StreamKind::Exec, detail).await,
                    Track::Stream(rec),
                )
            }
            (Start::Sftp, _) => (
                live.recording
                    .stream(rec, StreamKind::Sftp, label.to_owned())
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

    pub(super) async fn on_channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
    ) -> Result<(), russh::Error> {
        let live = match &self.state {
            State::Pending => return Ok(()),
            State::Refused(_) => {
                if self.refused_channels < MAX_CHANNELS {
                    self.refused_channels += 1;
                    reply.accept().await;
                }
                return Ok(());
            }
            State::Live(l, _) => l.clone(),
        };
        if self.channels.len() >= MAX_CHANNELS || live.ended.is_cancelled() {
            reply.reject(ChannelOpenFailure::ResourceShortage).await;
            return Ok(());
        }
        let target = match self.target()?.channel_open_session().await {
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

    pub(super) async fn on_pty_request(
        &mut self,
        channel: ChannelId,
        pty: PtyRequest<'_>,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let PtyRequest {
            term,
            cols: col_width,
            rows: row_height,
            pixels: (pix_width, pix_height),
            modes,
        } = pty;
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

    pub(super) async fn on_env_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        value: &str,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let allowed = self.shared.ssh.env_allowed(name);
        let Some(chan) = self.channels.get_mut(&channel).filter(|_| allowed) else {
            tracing::debug!(variable = name, "environment variable refused");
            return session.channel_failure(channel);
        };
        let ok = chan.target.set_env(false, name, value).await.is_ok();
        Self::reply(ok, channel, session)
    }

    /// Where uploads may not reach the target unchecked (no upload, or uploads scanned in
    /// quarantine), what the vendor sends on `channel` outside sftp is watched.
    /// Where uploads go straight to the target, only an SFTP session is looked for (so that
    /// `sftp -s PROGRAM` is logged file by file like the subsystem).
    fn watch_input(&mut self, live: &Live, channel: ChannelId) {
        let direct = transfers::file_modes(&self.shared, live).0 == UploadMode::Direct;
        if let Some(chan) = self.channels.get_mut(&channel) {
            chan.watch = Some(if direct {
                ChannelWatch::sftp_only()
            } else {
                ChannelWatch::default()
            });
        }
    }

    pub(super) async fn on_shell_request(
        &mut self,
        channel: ChannelId,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let Some(live) = self.live() else {
            return self.show_refusal(channel, session);
        };
        self.watch_input(&live, channel);
        self.start(&live, channel, Start::Shell, session).await
    }

    pub(super) async fn on_exec_request(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let Some(live) = self.live() else {
            return self.show_refusal(channel, session);
        };
        let command = String::from_utf8_lossy(data).into_owned();
        let ban = Self::upload_check(&live).err();
        if let Some(refusal) = &ban
            && upload::is_upload_command(&command)
        {
            return self
                .refuse_on_channel(&live, channel, Audited::FileUpload, refusal, session)
                .await;
        }
        match transfers::scp_stream(&self.shared, &live, &command) {
            Err(refusal) => {
                return self
                    .refuse_on_channel(&live, channel, Audited::FileDownload, &refusal, session)
                    .await;
            }
            Ok(stream) => {
                if let Some(chan) = self.channels.get_mut(&channel) {
                    *chan
                        .scp
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = stream;
                }
            }
        }
        self.watch_input(&live, channel);
        if files::scp_command(&command).is_some()
            && let Some(watch) = self
                .channels
                .get_mut(&channel)
                .and_then(|c| c.watch.as_mut())
        {
            watch.rule_out_sftp();
        }
        self.start(&live, channel, Start::Exec(command), session)
            .await
    }

    pub(super) async fn on_subsystem_request(
        &mut self,
        channel: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let Some(live) = self.live() else {
            return self.show_refusal(channel, session);
        };
        if name != "sftp" {
            let refusal = Refusal::new(
                Code::SubsystemNotOffered,
                format!("the {name} subsystem is not offered"),
            );
            return self
                .refuse_on_channel(&live, channel, Audited::Subsystem, &refusal, session)
                .await;
        }
        let relay = transfers::sftp_relay(&self.shared, &live);
        if let Some(chan) = self.channels.get_mut(&channel) {
            let _ = chan.sftp.set(relay);
        }
        self.start(&live, channel, Start::Sftp, session).await
    }

    pub(super) async fn on_data(
        &mut self,
        channel: ChannelId,
        data: &[u8],
        session: &mut Session,
    ) -> Result<(), russh::Error> {
        let Some(live) = self.live() else {
            return Ok(());
        };
        let Some(chan) = self.channels.get_mut(&channel) else {
            return Ok(());
        };
        let Some(track) = chan.track else {
            return Ok(()); // nothing runs on the target yet
        };
        live.relayed(sekisho_recorder::stream::Direction::ToTarget, data.len());
        if !track.record_input(&live, data).await {
            return Ok(());
        }
        let watched: Vec<u8>;
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
                // `sftp -s PROGRAM`: an SFTP session on an exec channel goes through the
                // same relay as the sftp subsystem.
                Verdict::Sftp => {
                    chan.watch = None;
                    let _ = chan.sftp.set(transfers::sftp_relay(&self.shared, &live));
                }
                Verdict::Refuse(upload) => {
                    let message = match transfers::file_modes(&self.shared, &live).0 {
                        UploadMode::Quarantine => format!(
                            "{upload} refused: uploads to {} at {} level are scanned in quarantine and go over sftp only (sftp, or scp without -O)",
                            live.target.name, live.grant.level
                        ),
                        _ => format!(
                            "{upload} refused: file upload to {} is not allowed at {} level",
                            live.target.name, live.grant.level
                        ),
                    };
                    return self
                        .stop_channel(&live, channel, upload.code(), &message, session)
                        .await;
                }
            }
            watched = bytes;
            data = &watched;
        }
        let Some(relay) = chan.sftp.get().cloned() else {
            // `scp -t` where uploads go straight to the target: each file logged.
            let events = chan
                .scp
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .as_mut()
                .filter(|s| s.is_sink())
                .map(|s| s.feed(data));
            chan.uplink.send(Bytes::copy_from_slice(data)).await;
            for e in events.into_iter().flatten() {
                if let ScpEvent::Done(record) = e {
                    FileLog::new(self.shared.store.clone(), self.shared.node.clone())
                        .log(&live, &record)
                        .await;
                }
            }
            return Ok(());
        };
        let handled = match relay.from_vendor(&live, data).await {
            Ok(h) => h,
            Err(e) => {
                let refusal =
                    Refusal::new(Code::SftpMalformed, format!("sftp stream refused: {e}"));
                return self
                    .refuse_on_channel(&live, channel, Audited::FileUpload, &refusal, session)
                    .await;
            }
        };
        let mut audits = vec![];
        for (direction, what) in handled.refused {
            if chan.refusals == 0 {
                let vendor = chan.vendor.clone();
                let text = match direction {
                    files::Direction::Upload => Self::upload_check(&live)
                        .err()
                        .map(|r| r.message)
                        .unwrap_or_else(|| format!("refused: {what}")),
                    files::Direction::Download => format!(
                        "file download from {} is not allowed at {} level ({what})",
                        live.target.name, live.grant.level
                    ),
                };
                notice::notice(&live, &vendor, None, &text).await;
            }
            chan.refusals += 1;
            if chan.refusals <= AUDITED_REFUSALS {
                audits.push((direction, what));
            }
        }
        if let Some(tx) = &chan.inject {
            for p in handled.reply {
                let _ = tx.send(p).await;
            }
            for (handle, id) in handled.closed {
                live.pumps.spawn(relay.clone().deliver(
                    live.clone(),
                    chan.uplink.clone(),
                    (tx.clone(), chan.vendor.clone()),
                    handle,
                    id,
                ));
            }
        }
        for packet in handled.forward {
            chan.uplink.send(Bytes::from(packet)).await;
        }
        for (direction, what) in audits {
            let (code, audited) = match direction {
                files::Direction::Download => (Code::DownloadNotAllowed, Audited::FileDownload),
                files::Direction::Upload => (
                    Self::upload_check(&live)
                        .err()
                        .map_or(Code::UploadNotAllowed, |r| r.code),
                    Audited::FileUpload,
                ),
            };
            let refusal = Refusal::new(code, format!("sftp: {what}"));
            self.audit_denied(&live.user, Some(live.target.id), audited, &refusal)
                .await;
        }
        Ok(())
    }

    pub(super) async fn on_channel_eof(&mut self, channel: ChannelId) -> Result<(), russh::Error> {
        if let Some(chan) = self.channels.get(&channel) {
            chan.uplink.eof();
        }
        Ok(())
    }

    pub(super) async fn on_channel_close(
        &mut self,
        channel: ChannelId,
    ) -> Result<(), russh::Error> {
        if let Some(chan) = self.channels.remove(&channel) {
            chan.uplink.close();
        }
        Ok(())
    }

    pub(super) async fn on_window_change_request(
        &mut self,
        channel: ChannelId,
        col_width: u32,
        row_height: u32,
        pix_width: u32,
        pix_height: u32,
    ) -> Result<(), russh::Error> {
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

    pub(super) async fn on_signal(
        &mut self,
        channel: ChannelId,
        signal: Sig,
    ) -> Result<(), russh::Error> {
        if let Some(chan) = self.channels.get(&channel) {
            let _ = chan.target.signal(signal).await;
        }
        Ok(())
    }
}

/// What a session channel runs.
pub(super) enum Start {
    Shell,
    Exec(String),
    Sftp,
}

/// A terminal dimension for the recording; clients without a terminal of their own
/// (`ssh -tt` from a script) report 0, recorded as the usual 80×24.
fn dimension(v: u32, default: u16) -> u16 {
    match v {
        0 => default,
        v => u16::try_from(v).unwrap_or(u16::MAX),
    }
}
