//! How an SSH session's end reaches both sides (the session layer's `Link`).

use std::sync::Arc;
use std::time::Duration;

use russh::server;
use sekisho_domain::session::SessionEnd;
use tokio_util::sync::CancellationToken;

use super::conn::TargetConn;
use crate::session::{Link, LinkFuture};

/// The vendor's SSH connection (stock, or handed over by the designated client) and the
/// gateway's connection to the target.
pub(super) struct SshLink {
    pub vendor: server::Handle,
    pub target: Arc<TargetConn>,
}

impl Link for SshLink {
    fn close_vendor<'a>(
        &'a self,
        how: SessionEnd,
        message: &'a str,
        vendor_gone: &'a CancellationToken,
    ) -> LinkFuture<'a> {
        Box::pin(async move {
            // With its channels closed, a stock client leaves by itself (and shows what it
            // was told first); a connection without channels is disconnected with the reason.
            let left = tokio::time::timeout(Duration::from_secs(1), vendor_gone.cancelled()).await;
            if how != SessionEnd::Closed && left.is_err() {
                let _ = self
                    .vendor
                    .disconnect(
                        russh::Disconnect::ByApplication,
                        format!("Sekisho: {message}"),
                        "en".into(),
                    )
                    .await;
            }
        })
    }

    fn close_target(&self) -> LinkFuture<'_> {
        Box::pin(async move {
            let _ = self
                .target
                .disconnect(russh::Disconnect::ByApplication, "session ended", "en")
                .await;
        })
    }
}
