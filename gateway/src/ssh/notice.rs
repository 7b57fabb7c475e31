//! What reaches the vendor besides the target's data: how a channel is recorded (`Track`),
//! the vendor's side of a channel (`VendorWrite`), and `sekisho: ...` notices on its stderr.

use std::sync::Arc;

use bytes::Bytes;
use russh::server;
use sekisho_recorder::stream::Direction;

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
