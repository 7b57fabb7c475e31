//! One channel's target→vendor direction: the target's output is recorded, then written to
//! the vendor (waiting for the vendor's window: backpressure). It also delivers the
//! supervisor's notices and closes the vendor's channel when the session ends.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use russh::ChannelMsg;
use russh::server;
use sekisho_recorder::stream::Direction;
use tokio::sync::mpsc;

use super::sftp::Framer;
use crate::session::Live;

/// How a channel is recorded.
#[derive(Clone, Copy, Debug)]
pub enum Track {
    /// asciicast: output and input events.
    Terminal(u32),
    /// Raw timestamped frames in both directions.
    Stream(u32),
}

impl Track {
    pub async fn record_input(&self, live: &Live, data: &[u8]) -> bool {
        let r = match *self {
            Track::Terminal(ch) => live.recording.input(ch, data).await,
            Track::Stream(ch) => live.recording.frame(ch, Direction::ToTarget, data).await,
        };
        r.map_err(|e| live.recording_failed(&e)).is_ok()
    }

    pub async fn record_output(&self, live: &Live, data: &[u8]) -> bool {
        let r = match *self {
            Track::Terminal(ch) => live.recording.output(ch, data).await,
            Track::Stream(ch) => live.recording.frame(ch, Direction::FromTarget, data).await,
        };
        r.map_err(|e| live.recording_failed(&e)).is_ok()
    }
}

/// The vendor side of a channel, shared by the handler and the pump.
pub type VendorWrite = Arc<russh::ChannelWriteHalf<server::Msg>>;

pub struct Pump {
    pub live: Arc<Live>,
    pub vendor: VendorWrite,
    pub vendor_handle: server::Handle,
    pub target: russh::ChannelReadHalf,
    /// Messages read from the target while the channel was being set up.
    pub stash: Vec<ChannelMsg>,
    pub track: Track,
    /// Refusals from the sftp guard, written between the target's packets.
    pub inject: Option<(mpsc::Receiver<Vec<u8>>, Framer)>,
}

const STDERR: u32 = 1;

/// Writes a `sekisho: ...` line to the vendor's terminal (stderr) and to the recording.
pub async fn notice(live: &Live, vendor: &VendorWrite, track: Option<Track>, text: &str) {
    let line = format!("\r\nsekisho: {text}\r\n");
    if let Some(Track::Terminal(ch)) = track {
        let _ = live.recording.output(ch, line.as_bytes()).await;
    }
    let _ = vendor
        .extended_data_bytes(STDERR, Bytes::from(line.into_bytes()))
        .await;
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
                return;
            }
        }
        loop {
            let injected = async {
                match &mut self.inject {
                    Some((rx, _)) => rx.recv().await,
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
                    return;
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
                    Some(msg) => if !self.on_target(msg, &mut pending).await { return },
                    None => {
                        let _ = self.vendor.close().await;
                        return;
                    }
                },
            }
        }
    }

    /// Writes refusals if the target's stream is between packets.
    async fn flush_injected(&mut self, pending: &mut VecDeque<Vec<u8>>) {
        let at_boundary = self.inject.as_ref().is_none_or(|(_, f)| f.at_boundary());
        while at_boundary && let Some(p) = pending.pop_front() {
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
                    .from_target
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                if !self.track.record_output(&self.live, &data).await {
                    return true; // the supervisor ends the session
                }
                if self.inject.is_none() {
                    return vendor.data_bytes(data).await.is_ok();
                }
                let mut rest = data;
                while !rest.is_empty() {
                    let n = match &mut self.inject {
                        Some((_, framer)) => framer.advance(&rest),
                        None => rest.len(),
                    };
                    let chunk = rest.split_to(n);
                    if vendor.data_bytes(chunk).await.is_err() {
                        return false;
                    }
                    self.flush_injected(pending).await;
                }
                true
            }
            ChannelMsg::ExtendedData { data, ext } => {
                self.live
                    .from_target
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
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
