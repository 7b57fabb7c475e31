//! One channel's target→vendor direction: the target's output is recorded, then written to
//! the vendor (waiting for the vendor's window: backpressure). It also delivers the
//! supervisor's notices and closes the vendor's channel when the session ends.

use std::collections::VecDeque;
use std::sync::Arc;

use bytes::Bytes;
use russh::ChannelMsg;
use russh::server;
use tokio::sync::mpsc;

use super::file_log::FileLog;
use super::notice::{Track, VendorWrite, notice};
use super::scp::{ScpEvent, ScpSlot};
use super::sftp::relay::SftpSlot;
use crate::session::Live;

pub struct Pump {
    pub live: Arc<Live>,
    pub vendor: VendorWrite,
    pub vendor_handle: server::Handle,
    pub target: russh::ChannelReadHalf,
    /// Messages read from the target while the channel was being set up.
    pub stash: Vec<ChannelMsg>,
    pub track: Track,
    /// Packets the gateway answers the vendor with itself (sftp refusals, staged uploads),
    /// written between the target's packets.
    pub inject: Option<mpsc::Receiver<Vec<u8>>>,
    /// The channel's sftp relay once it speaks sftp: the target's replies go through it.
    pub sftp: SftpSlot,
    /// The channel's legacy scp stream when its command is scp.
    pub scp: ScpSlot,
    pub files: FileLog,
}

impl Pump {
    pub async fn run(mut self) {
        let mut notices = self.live.notices.subscribe();
        if !notices.borrow().is_empty() {
            notices.mark_changed();
        }
        let mut pending: VecDeque<Vec<u8>> = VecDeque::new();
        let stash = std::mem::take(&mut self.stash);
        for msg in stash {
            if !self.on_target(msg, &mut pending).await {
                return self.finish().await;
            }
        }
        loop {
            let injected = async {
                match &mut self.inject {
                    Some(rx) => rx.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                biased;
                () = self.live.ended.cancelled() => {
                    let (_, message) = self.live.reason();
                    if !message.is_empty() {
                        notice(&self.live, &self.vendor, Some(self.track), &format!("session ended: {message}")).await;
                    }
                    let _ = self.vendor.eof().await;
                    let _ = self.vendor.close().await;
                    return self.finish().await;
                }
                Ok(()) = notices.changed() => {
                    let text = notices.borrow_and_update().clone();
                    notice(&self.live, &self.vendor, Some(self.track), &text).await;
                }
                Some(packet) = injected => {
                    pending.push_back(packet);
                    self.flush_injected(&mut pending).await;
                }
                msg = self.target.wait() => match msg {
                    Some(msg) => if !self.on_target(msg, &mut pending).await { return self.finish().await },
                    None => {
                        let _ = self.vendor.close().await;
                        return self.finish().await;
                    }
                },
            }
        }
    }

    /// Files still open when the channel ended are logged.
    async fn finish(&self) {
        if let Some(relay) = self.sftp.get() {
            relay.finish(&self.live).await;
        }
        let left = self
            .scp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
            .and_then(|mut s| s.finish());
        if let Some(record) = left {
            self.files.log(&self.live, &record).await;
        }
    }

    /// `scp -f`: the files in the target's bytes are logged; one over the level's download
    /// limit ends the channel before any of its bytes reach the vendor. `false`: ended.
    async fn scp_source(&self, data: &[u8]) -> bool {
        let events = match self
            .scp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_mut()
            .filter(|s| !s.is_sink())
        {
            Some(s) => s.feed(data),
            None => return true,
        };
        for e in events {
            match e {
                ScpEvent::Done(record) => self.files.log(&self.live, &record).await,
                ScpEvent::Refused(record) => {
                    let text = format!(
                        "refused: {} ({})",
                        record.path,
                        record.detail.as_deref().unwrap_or_default()
                    );
                    self.files.log(&self.live, &record).await;
                    notice(&self.live, &self.vendor, Some(self.track), &text).await;
                    let _ = self.vendor.eof().await;
                    let _ = self.vendor.close().await;
                    return false;
                }
                ScpEvent::Start { .. } => {}
            }
        }
        true
    }

    /// Writes the gateway's own packets (the pump writes only whole packets of the target's,
    /// so this is always between two of them).
    async fn flush_injected(&mut self, pending: &mut VecDeque<Vec<u8>>) {
        while let Some(p) = pending.pop_front() {
            if self.track.record_output(&self.live, &p).await {
                let _ = self.vendor.data_bytes(Bytes::from(p)).await;
            }
        }
    }

    /// Relays one message from the target; `false` when the channel is finished.
    async fn on_target(&mut self, msg: ChannelMsg, pending: &mut VecDeque<Vec<u8>>) -> bool {
        let vendor = self.vendor.clone();
        match msg {
            ChannelMsg::Data { data } => {
                self.live
                    .relayed(sekisho_recorder::stream::Direction::FromTarget, data.len());
                let Some(relay) = self.sftp.get().cloned() else {
                    if !self.scp_source(&data).await {
                        return false;
                    }
                    if !self.track.record_output(&self.live, &data).await {
                        return true; // the supervisor ends the session
                    }
                    return vendor.data_bytes(data).await.is_ok();
                };
                // sftp: whole packets, as the relay passes them on (what the vendor receives
                // is what is recorded).
                let packets = match relay.from_target(&self.live, &data).await {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(session = %self.live.session.id, error = %e, "sftp reply stream refused");
                        notice(
                            &self.live,
                            &vendor,
                            None,
                            &format!("sftp stream refused: {e}"),
                        )
                        .await;
                        let _ = vendor.close().await;
                        return false;
                    }
                };
                for p in packets {
                    if !self.track.record_output(&self.live, &p).await {
                        return true;
                    }
                    if vendor.data_bytes(Bytes::from(p)).await.is_err() {
                        return false;
                    }
                    self.flush_injected(pending).await;
                }
                true
            }
            ChannelMsg::ExtendedData { data, ext } => {
                self.live
                    .relayed(sekisho_recorder::stream::Direction::FromTarget, data.len());
                if !self.track.record_output(&self.live, &data).await {
                    return true;
                }
                vendor.extended_data_bytes(ext, data).await.is_ok()
            }
            ChannelMsg::ExitStatus { exit_status } => {
                let _ = vendor.exit_status(exit_status).await;
                true
            }
            ChannelMsg::ExitSignal {
                signal_name,
                core_dumped,
                error_message,
                lang_tag,
            } => {
                let _ = self
                    .vendor_handle
                    .exit_signal_request(
                        vendor.id(),
                        signal_name,
                        core_dumped,
                        error_message,
                        lang_tag,
                    )
                    .await;
                true
            }
            ChannelMsg::Eof => {
                let _ = vendor.eof().await;
                true
            }
            ChannelMsg::Close => {
                let _ = vendor.close().await;
                false
            }
            _ => true,
        }
    }
}
