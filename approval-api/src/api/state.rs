//! What every handler can reach: the store, the keys, the settings, the shared limits.

use std::sync::Arc;

use jiff::SignedDuration;
use sekisho_domain::policy::Policy;
use sekisho_domain::zone::DisplayZone;
use sekisho_store::Store;
use sekisho_store::crypto::AtRestKey;
use sekisho_store::events::Events;

use super::token::{TokenKeyError, TokenKeys};

/// Settings the API consults, taken from the configuration.
#[derive(Debug)]
pub struct ApiSettings {
    pub policy: Policy,
    pub zone: DisplayZone,
    pub token_ttl_minutes: u32,
    pub login_max_failures: u32,
    pub lockout: SignedDuration,
    pub attestation_validity: SignedDuration,
    /// What enrollment codes tell the designated client.
    pub enrollment: EnrollmentSettings,
    /// `[nodes] down_after_seconds`: when a silent node is taken over.
    pub node_down_after: std::time::Duration,
    /// This node's quarantine directory (`[files]`): blocked uploads are in `blocked/<id>`.
    pub quarantine_dir: std::path::PathBuf,
    /// The upload scanners configured, for people; `None`: uploads are not scanned.
    pub upload_scanning: Option<String>,
    /// `[policy] mfa_required`: roles whose logins need a second factor.
    pub mfa_required: Vec<sekisho_domain::user::Role>,
    /// What flags a session for its reviewer, and the review deadline.
    pub review: sekisho_domain::review::ReviewPolicy,
    /// `[notifications] unused_account_days`: the monthly report lists accounts unused longer.
    pub unused_account_days: u32,
}

/// The gateway the designated client enrolls with.
#[derive(Debug, Clone)]
pub struct EnrollmentSettings {
    /// `host:port` of the QUIC listener.
    pub gateway: String,
    /// Fingerprint of the gateway's TLS certificate, for the client to pin.
    pub fingerprint: String,
    pub code_ttl: SignedDuration,
}

/// What every handler can reach; cheap to clone.
#[derive(Clone, Debug)]
pub struct ApiState {
    pub store: Store,
    pub tokens: Arc<TokenKeys>,
    pub at_rest: Arc<AtRestKey>,
    pub settings: Arc<ApiSettings>,
    pub events: Events,
    /// The recordings directory, read-only.
    pub recordings: sekisho_recorder::Library,
    /// The recording-signing public key (base64), to verify against.
    pub recording_public_key: Arc<String>,
    /// The bounded pool every password check and hash goes through.
    pub hasher: sekisho_store::password::Hasher,
    /// Slows down password guessing (per address and per name).
    pub throttle: Arc<crate::throttle::LoginThrottle>,
    /// Audits failures of unauthenticated callers without letting them flood the log.
    pub failures: Arc<sekisho_store::failures::FailureLog>,
    /// Staff from the hospital's directory; `None`: local accounts only.
    pub directory: Option<Arc<crate::directory::Directory>>,
    /// Recent reads of recordings, so that polling writes one audit row, not hundreds.
    pub reads: Arc<super::read_log::ReadLog>,
    /// The last walk of the audit chain, and one walk at a time (see `audit::verify`).
    pub chain_check: Arc<super::chain_check::ChainCheck>,
}

impl ApiSettings {
    /// What the monthly report counts.
    pub fn report(&self) -> sekisho_store::report::ReportSettings {
        sekisho_store::report::ReportSettings {
            policy: self.policy.clone(),
            zone: self.zone.clone(),
            review_deadline: self.review.deadline,
            unused_after: SignedDuration::from_hours(24 * i64::from(self.unused_account_days)),
        }
    }

    /// The API's view of the configuration; `gateway_fingerprint` is the designated client's
    /// pin, shown with enrollment codes.
    pub fn from_config(config: &sekisho_config::Config, gateway_fingerprint: &str) -> Self {
        Self {
            policy: config.domain_policy(),
            zone: config.display_zone(),
            token_ttl_minutes: config.api.token_ttl_minutes,
            login_max_failures: config.api.login_max_failures,
            lockout: SignedDuration::from_mins(i64::from(config.api.lockout_minutes)),
            attestation_validity: SignedDuration::from_hours(
                24 * i64::from(config.policy.attestation_validity_days),
            ),
            enrollment: EnrollmentSettings {
                gateway: config.quic.listen.to_string(),
                fingerprint: gateway_fingerprint.to_owned(),
                code_ttl: SignedDuration::from_hours(i64::from(config.quic.enrollment_code_hours)),
            },
            node_down_after: std::time::Duration::from_secs(u64::from(
                config.nodes.down_after_seconds,
            )),
            quarantine_dir: config.quarantine_dir(),
            upload_scanning: config.files.describe_scanners(),
            mfa_required: config.policy.mfa_required.clone(),
            review: config.review_policy(),
            unused_account_days: config.notifications.unused_account_days,
        }
    }
}

/// What the API state is made of, besides the configuration: the parts the server process
/// shares with the gateway (`sekisho_gateway::prepare` makes them).
pub struct StateParts<'a> {
    pub store: Store,
    pub events: Events,
    pub hasher: sekisho_store::password::Hasher,
    pub failures: Arc<sekisho_store::failures::FailureLog>,
    /// Failed logins and one-time codes, shared with the gateway's sessions.
    pub throttle: Arc<crate::throttle::LoginThrottle>,
    /// `[directory]`, made with [`crate::directory::Directory::from_config`].
    pub directory: Option<Arc<crate::directory::Directory>>,
    pub at_rest: Arc<AtRestKey>,
    /// The token-signing key (PKCS#8 PEM), its public half (SPKI PEM) and its id.
    pub jwt_pem: &'a sekisho_domain::secret::Secret<String>,
    pub jwt_public_pem: &'a str,
    pub jwt_kid: &'a str,
    /// The recording-signing public key (base64).
    pub recording_public_key: String,
    /// The designated client's pin for enrollment codes.
    pub gateway_fingerprint: &'a str,
}

impl ApiState {
    /// The state of the API that `config` describes, over the process's shared parts.
    pub fn new(
        config: &sekisho_config::Config,
        parts: StateParts<'_>,
    ) -> Result<Self, TokenKeyError> {
        Ok(Self {
            store: parts.store,
            tokens: Arc::new(TokenKeys::ed25519(
                parts.jwt_kid.to_owned(),
                parts.jwt_pem,
                parts.jwt_public_pem,
            )?),
            at_rest: parts.at_rest,
            settings: Arc::new(ApiSettings::from_config(config, parts.gateway_fingerprint)),
            events: parts.events,
            recordings: sekisho_recorder::Library::new(&config.recordings_dir()),
            recording_public_key: Arc::new(parts.recording_public_key),
            hasher: parts.hasher,
            throttle: parts.throttle,
            directory: parts.directory,
            reads: Arc::default(),
            chain_check: Arc::default(),
            failures: parts.failures,
        })
    }
}
