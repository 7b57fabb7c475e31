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

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use russh::ChannelWriteHalf;
use tokio::sync::{Notify, mpsc};

/// Queued bytes above which the vendor's window shrinks to [`TRICKLE`].
pub const HIGH: usize = super::WINDOW as usize;
/// The window granted to the vendor while a channel's queue is above [`HIGH`].
pub const TRICKLE: u32 = 64 * 1024;
/// Queued bytes at which the handler waits for the target.
pub const HARD: usize = 4 * super::WINDOW as usize;

pub type TargetWrite = Arc<ChannelWriteHalf<russh::client::Msg>>;

enum Up {
    Data(Bytes),
    Eof,
    Close,
}

pub struct Uplink {
    tx: mpsc::UnboundedSender<Up>,
    queued: Arc<AtomicUsize>,
    drained: Arc<Notify>,
}

impl Uplink {
    /// Starts the writer task for `target`.
    pub fn start(target: TargetWrite) -> Self {
        let (tx, rx) = mpsc::unbounded_channel();
        let queued = Arc::new(AtomicUsize::new(0));
        let drained = Arc::new(Notify::new());
        tokio::spawn(run(target, rx, queued.clone(), drained.clone()));
        Self {
            tx,
            queued,
            drained,
        }
    }

    /// Bytes handed over but not yet accepted by the target.
    pub fn queued(&self) -> usize {
        self.queued.load(Ordering::Acquire)
    }

    /// Queues `data` for the target; waits only while [`HARD`] bytes are queued.
    pub async fn send(&self, data: Bytes) {
        while self.queued() >= HARD {
            // Re-checked at least every 100 ms, so a missed wake-up costs no more than that.
            let _ = tokio::time::timeout(Duration::from_millis(100), self.drained.notified()).await;
        }
        self.queued.fetch_add(data.len(), Ordering::AcqRel);
        if self.tx.send(Up::Data(data)).is_err() {
            self.queued.store(0, Ordering::Release);
        }
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

async fn run(
    target: TargetWrite,
    mut rx: mpsc::UnboundedReceiver<Up>,
    queued: Arc<AtomicUsize>,
    drained: Arc<Notify>,
) {
    let mut open = true;
    while let Some(up) = rx.recv().await {
        match up {
            Up::Data(data) => {
                let n = data.len();
                // After a failed write the rest is discarded, but still counted down.
                if open && target.data_bytes(data).await.is_err() {
                    open = false;
                }
                queued.fetch_sub(n, Ordering::AcqRel);
                drained.notify_waiters();
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
