//! A real API state for router-level tests: a fresh Ed25519 token key, a fresh at-rest key,
//! default settings, on the given store.

use std::sync::Arc;

use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::SignedDuration;
use sekisho_approval_api::api::token::TokenKeys;
use sekisho_approval_api::api::{ApiSettings, ApiState};
use sekisho_domain::policy::Policy;
use sekisho_domain::secret::Secret;
use sekisho_domain::zone::DisplayZone;
use sekisho_store::Store;
use sekisho_store::crypto::AtRestKey;
use sekisho_store::events::Events;

fn pem(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let lines: Vec<&str> = b64
        .as_bytes()
        .chunks(64)
        .map(|c| std::str::from_utf8(c).unwrap())
        .collect();
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        lines.join("\n")
    )
}

/// A fresh Ed25519 key: (PKCS#8 private PEM, SPKI public PEM).
pub fn ed25519_pems() -> (String, String) {
    let rng = aws_lc_rs::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).unwrap();
    let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).unwrap();
    // SubjectPublicKeyInfo for Ed25519: a fixed prefix and the 32 key bytes.
    let mut spki = vec![
        0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
    ];
    spki.extend_from_slice(pair.public_key().as_ref());
    (pem("PRIVATE KEY", pkcs8.as_ref()), pem("PUBLIC KEY", &spki))
}

/// Token keys with the given `kid`.
pub fn token_keys(kid: &str) -> TokenKeys {
    let (private, public) = ed25519_pems();
    TokenKeys::ed25519(kid.to_owned(), &Secret::new(private), &public).unwrap()
}

/// The default settings, with `policy` as given.
pub fn settings(policy: Policy) -> ApiSettings {
    ApiSettings {
        policy,
        zone: DisplayZone::named("Asia/Tokyo").unwrap(),
        token_ttl_minutes: 60,
        login_max_failures: 3,
        lockout: SignedDuration::from_mins(15),
        attestation_validity: SignedDuration::from_hours(24 * 365),
        enrollment: sekisho_approval_api::api::EnrollmentSettings {
            gateway: "127.0.0.1:4433".into(),
            fingerprint: "SHA256:test".into(),
            code_ttl: SignedDuration::from_hours(24),
        },
        node_down_after: std::time::Duration::from_secs(30),
        quarantine_dir: std::env::temp_dir().join("sekisho-no-quarantine"),
        upload_scanning: None,
        mfa_required: vec![],
        review: sekisho_domain::review::ReviewPolicy::default(),
        unused_account_days: 90,
    }
}

/// An API state over `store`, with no recordings.
pub fn state(store: Store, policy: Policy) -> ApiState {
    let none = std::env::temp_dir().join(format!("sekisho-no-recordings-{}", std::process::id()));
    state_with_recordings(store, policy, &none, "")
}

/// An API state over `store` reading recordings from `dir`, verified with `public_key_b64`.
pub fn state_with_recordings(
    store: Store,
    policy: Policy,
    dir: &std::path::Path,
    public_key_b64: &str,
) -> ApiState {
    let key = AtRestKey::generate().unwrap();
    ApiState {
        tokens: Arc::new(token_keys("test-key")),
        at_rest: Arc::new(AtRestKey::from_bytes(key.expose()).unwrap()),
        settings: Arc::new(settings(policy)),
        events: Events::new(),
        recordings: sekisho_recorder::Library::new(dir),
        recording_public_key: Arc::new(public_key_b64.to_owned()),
        hasher: sekisho_store::password::Hasher::for_this_machine(),
        directory: None,
        reads: Arc::default(),
        chain_check: Arc::default(),
        throttle: Arc::new(sekisho_approval_api::throttle::LoginThrottle::new(
            3,
            std::time::Duration::from_secs(15 * 60),
        )),
        failures: Arc::new(sekisho_store::failures::FailureLog::new(store.clone())),
        store,
    }
}

/// A new account named `username` with `role`, no vendor, and `password_hash` if given.
pub fn staff_user(
    username: &str,
    role: sekisho_domain::user::Role,
    password_hash: Option<String>,
) -> sekisho_store::users::NewUser {
    sekisho_store::users::NewUser {
        username: username.into(),
        display_name: username.into(),
        email: None,
        role,
        vendor_id: None,
        expires_at: None,
        password_hash,
        site: None,
    }
}

/// Creates [`staff_user`] `username` with `password` in `store`, as the system.
pub async fn create_staff(
    store: &Store,
    username: &str,
    role: sekisho_domain::user::Role,
    password: &str,
) {
    let hash = sekisho_store::password::hash(&Secret::new(password.into())).unwrap();
    store
        .create_user(
            staff_user(username, role, Some(hash)),
            &sekisho_domain::audit::Actor::System,
            None,
        )
        .await
        .unwrap();
}

/// A target `name` at 127.0.0.1:22 of `site` with one SSH level (`level`, account `ro` or
/// `rw`, a password credential sealed with a fresh key), created by the system: for tests
/// that need a target row, not a reachable one.
pub async fn ssh_target(
    store: &Store,
    name: &str,
    site: Option<&str>,
    level: sekisho_domain::target::AccessLevel,
) -> sekisho_domain::target::Target {
    use sekisho_domain::target::{AccessLevel, LevelPolicy};
    use sekisho_store::targets::{Credential, LevelSpec, NewTarget};
    let key = AtRestKey::from_bytes(AtRestKey::generate().expect("key").expose()).expect("key");
    let change = level == AccessLevel::Change;
    store
        .create_target(
            &key,
            NewTarget {
                name: name.into(),
                host: "127.0.0.1".into(),
                port: 22,
                host_key: None,
                rdp_port: None,
                site: site.map(Into::into),
                levels: vec![LevelSpec {
                    level,
                    policy: LevelPolicy {
                        account: if change { "rw" } else { "ro" }.into(),
                        ssh: true,
                        allowed_ports: vec![],
                        port_forwarding: false,
                        file_upload: change,
                        file_download: true,
                        download_max_bytes: None,
                        rdp: false,
                        rdp_clipboard: false,
                        rdp_drives: false,
                    },
                    credential: Some(Credential::Password(Secret::new("pw".into()))),
                }],
            },
            &sekisho_domain::audit::Actor::System,
            None,
        )
        .await
        .expect("target")
}

/// Vendor `vendor` (no attestation) and its engineer `username`, created by the system.
pub async fn vendor_engineer(
    store: &Store,
    vendor: &str,
    username: &str,
) -> (sekisho_domain::vendor::Vendor, sekisho_domain::user::User) {
    let sys = sekisho_domain::audit::Actor::System;
    let vendor = store
        .create_vendor(vendor.into(), Default::default(), None, &sys, None)
        .await
        .expect("vendor");
    let mut engineer = staff_user(username, sekisho_domain::user::Role::Vendor, None);
    engineer.vendor_id = Some(vendor.id);
    let engineer = store
        .create_user(engineer, &sys, None)
        .await
        .expect("engineer");
    (vendor, engineer)
}

/// `engineer`'s request of `level` for `target` during `window`, filed straight into the
/// store as the system (no check of the window: tests file ended ones too).
pub async fn file_request(
    store: &Store,
    engineer: &sekisho_domain::user::User,
    target: &sekisho_domain::target::Target,
    level: sekisho_domain::target::AccessLevel,
    window: sekisho_domain::request::Window,
    emergency: bool,
) -> sekisho_domain::request::WorkRequest {
    store
        .file_request(
            sekisho_store::requests::NewRequest {
                requester: engineer.id,
                vendor_id: engineer.vendor_id.expect("a vendor engineer"),
                target_id: target.id,
                target_name: target.name.clone(),
                level,
                window,
                reason: "maintenance".into(),
                plan: String::new(),
                emergency,
            },
            &sekisho_domain::audit::Actor::System,
            None,
        )
        .await
        .expect("request")
}

/// A session `id` of `request` by its requester `engineer` over SSH, started now and closed
/// (10 bytes to the target, 20 back), straight into the store.
pub async fn closed_session(
    store: &Store,
    id: sekisho_domain::ids::SessionId,
    request: &sekisho_domain::request::WorkRequest,
    engineer: &sekisho_domain::user::User,
) {
    use sekisho_domain::session::{Session, SessionEnd, Transport};
    let session = Session {
        id,
        request_id: request.id,
        user_id: engineer.id,
        vendor_id: request.vendor_id,
        target_id: request.target_id,
        level: request.level,
        transport: Transport::Ssh,
        source_addr: "127.0.0.1".into(),
        started_at: jiff::Timestamp::now(),
        ended_at: None,
        end: None,
        bytes_to_target: 0,
        bytes_from_target: 0,
    };
    store
        .start_session(&session, engineer, "test")
        .await
        .expect("session");
    store
        .end_session(id, SessionEnd::Closed, 10, 20)
        .await
        .expect("session end");
}
