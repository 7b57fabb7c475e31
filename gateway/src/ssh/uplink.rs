//! One channel's vendor→target direction, decoupled from russh's connection loop.
//!
//! russh runs one loop per connection: it reads the vendor's packets, *including the window
//! adjustments that let the target→vendor direction move*, and calls our handler. If the
//! handler waited there for the target to accept data, a full-duplex transfer (`cat` echoing
//! a large input) could stop forever: the loop waits for the target, the target waits to
//! write its output, the output waits for a window adjustment the blocked loop never reads.
//!
//! So the handler hands data to this queue and returns; one task per channel writes it to
//! the target, waiting for the target's window. The queue is bounded by flow control toward
//! the vendor: while any channel has more than [`HIGH`] bytes queued, the handler's
//! `adjust_window` shrinks the window the gateway grants the vendor to a trickle
//! ([`TRICKLE`]), so the vendor slows to what the target takes. Only a vendor that keeps
//! sending while the target reads nothing at all reaches [`HARD`]; then the handler waits
//! (stalling that connection alone, which is what the vendor asked for).
//!
//! The bound is exact: a semaphore holds one permit per byte of [`HARD`]; each chunk takes its
//! permits before it is queued and they travel with it to the writer, which gives them back
//! once the target has taken the chunk. A waiting sender is woken by that, not by polling.

use std::sync::Arc;

use bytes::Bytes;
use russh::ChannelWriteHalf;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};

/// Queued bytes above which the vendor's window shrinks to [`TRICKLE`].
pub const HIGH: usize = super::limits::WINDOW as usize;
/// The window granted to the vendor while a channel's queue is above [`HIGH`].
pub const TRICKLE: u32 = 64 * 1024;
/// Queued bytes at which the handler waits for the target.
pub const HARD: usize = 4 * super::limits::WINDOW as usize;

pub type TargetWrite = Arc<ChannelWriteHalf<russh::client::Msg>>;

enum Up {
    /// A chunk and its share of the queue: the permit is given back when the target has
    /// taken the chunk (or it is discarded), never before.
    Data(Bytes, OwnedSemaphorePermit),
    Eof,
    Close,
}

#[derive(Clone)]
pub struct Uplink {
    tx: mpsc::UnboundedSender<Up>,
    /// [`HARD`] permits, one per byte that may be queued.
    room: Arc<Semaphore>,
}

impl Uplink {
    /// Starts the writer task for `target`.
    pub fn start(target: TargetWrite) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(run(target, rx));
        Self {
            tx,
            room: Arc::new(Semaphore::new(HARD)),
        }
    }

    /// Bytes handed over but not yet accepted by the target (at most [`HARD`]).
    pub fn queued(&self) -> usize {
        HARD - self.room.available_permits()
    }

    /// Queues `data` for the target; waits while the queue has no room for it. A chunk larger
    /// than the whole queue waits for an empty queue.
    pub async fn send(&self, data: Bytes) {
        if data.is_empty() {
            return;
        }
        let want = u32::try_from(data.len().min(HARD)).unwrap_or(u32::MAX);
        let Ok(permit) = self.room.clone().acquire_many_owned(want).await else {
            return; // never closed; nothing to send to
        };
        // If the writer has gone (target channel closed), the chunk and its permit are
        // dropped here.
        let _ = self.tx.send(Up::Data(data, permit));
    }

    /// EOF after everything queued.
    pub fn eof(&self) {
        let _ = self.tx.send(Up::Eof);
    }

    /// Closes the target channel after everything queued.
    pub fn close(&self) {
        let _ = self.tx.send(Up::Close);
    }
}

async fn run(target: TargetWrite, mut rx: mpsc::UnboundedReceiver<Up>) {
    let mut open = true;
    while let Some(up) = rx.recv().await {
        match up {
            Up::Data(data, permit) => {
                // After a failed write the rest is discarded; its room is given back all
                // the same.
                if open && target.data_bytes(data).await.is_err() {
                    open = false;
                }
                drop(permit);
            }
            Up::Eof => {
                if open {
                    let _ = target.eof().await;
                }
            }
            Up::Close => {
                if open {
                    let _ = target.close().await;
                }
                return;
            }
        }
    }
}
