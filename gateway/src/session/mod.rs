//! One session, whatever the transport (stock SSH, the designated client's SSH or tunnels,
//! and the transports to come): admission ([`admit`]), the live session and its end
//! ([`live`]), its supervisor ([`supervise`]) and what happens when it is over ([`finish`]).
//!
//! **Architecture invariant:** nothing here imports `ssh/` or `quic/`. A transport admits with
//! [`admit::admit`], starts the recording and the session row with [`admit::begin`], and gives
//! the supervisor a [`Link`]: how to tell its vendor that the session ended and how to close
//! its connection to the target.

pub mod admit;
pub mod finish;
pub mod live;
pub mod progress;
pub mod second_factor;
pub mod supervise;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use sekisho_config::SshConfig;
use sekisho_domain::policy::Policy;
use sekisho_domain::session::SessionEnd;
use sekisho_domain::zone::DisplayZone;
use sekisho_recorder::Recorder;
use sekisho_store::Store;
use sekisho_store::crypto::AtRestKey;
use sekisho_store::events::Events;
use tokio_util::sync::CancellationToken;

pub use live::Live;

/// A future a [`Link`] returns.
pub type LinkFuture<'a> = Pin<Box<dyn Future<Output = ()> + Send + 'a>>;

/// What the session layer needs from a transport when a session ends.
pub trait Link: Send + Sync + 'static {
    /// Tells the vendor why the session ended (`message`, empty when they closed it) and
    /// closes their side; `vendor_gone` is cancelled once their connection is gone.
    fn close_vendor<'a>(
        &'a self,
        how: SessionEnd,
        message: &'a str,
        vendor_gone: &'a CancellationToken,
    ) -> LinkFuture<'a>;

    /// Closes the gateway's own connection to the target, if the transport holds one.
    fn close_target(&self) -> LinkFuture<'_>;
}

/// Everything a connection needs, shared by all of them.
pub struct Shared {
    pub store: Store,
    pub at_rest: Arc<AtRestKey>,
    pub recorder: Recorder,
    pub events: Events,
    /// Refused logins are audited through it, so that a flood of them cannot flood the log.
    pub failures: Arc<sekisho_store::failures::FailureLog>,
    /// Password checks (enrollment) go through the same bounded pool as API logins.
    pub hasher: sekisho_store::password::Hasher,
    /// Failed one-time codes count here, with the API's failed logins.
    pub throttle: Arc<sekisho_store::throttle::LoginThrottle>,
    /// The last check of the clock against NTP (sessions are refused while it is off).
    pub clock: Arc<crate::clock::Clock>,
    /// Roles that must use a second factor (`[policy] mfa_required`).
    pub mfa_required: Vec<sekisho_domain::user::Role>,
    pub policy: Policy,
    pub zone: DisplayZone,
    pub ssh: SshConfig,
    /// What a vendor may send at a level without uploads.
    pub input_limits: sekisho_domain::upload::InputLimits,
    /// Upload scanners (`[files]`); `None`: uploads at levels that allow them go straight
    /// to the target, logged.
    pub scanners: Option<crate::files::scan::Scanners>,
    /// Where uploads are staged and blocked files kept.
    pub quarantine: crate::files::quarantine::Quarantine,
    /// Minutes before the window end at which vendors are warned.
    pub warnings: Vec<u32>,
    /// This gateway node (sessions it leaves open are aborted on its next start).
    pub node: String,
    /// Cancelled when the gateway stops: live sessions end as aborted.
    pub shutdown: CancellationToken,
    /// Session supervisors, awaited (within the grace period) before the gateway exits.
    pub sessions: tokio_util::task::TaskTracker,
    /// Live sessions' byte counts, written together.
    pub progress: progress::Progress,
}
