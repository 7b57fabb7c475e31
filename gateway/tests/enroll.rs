//! Enrollment: a one-time code and a CSR from the vendor's machine become a client
//! certificate that the TLS client verifier (the one the QUIC listener uses) accepts, bound
//! to that engineer, once. On SQLite and PostgreSQL.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;

use aws_lc_rs::digest::{SHA256, digest};
use jiff::{SignedDuration, Timestamp};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use rustls::pki_types::{CertificateDer, UnixTime, pem::PemObject};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerifier;
use sekisho_domain::audit::Actor;
use sekisho_domain::user::{Role, UserStatus};
use sekisho_gateway::keys::GatewayKeys;
use sekisho_gateway::quic::enroll::{ClientCa, user_uri};
use sekisho_store::certs::RedeemError;
use sekisho_store::users::{NewUser, UserChanges};
use sekisho_testkit::for_each_db;

fn verifier(ca_pem: &str) -> Arc<dyn ClientCertVerifier> {
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
        .build()
        .unwrap()
}

/// A CSR as a hostile client might make it: asking to be a CA, for someone else's name.
fn greedy_csr() -> String {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["admin.hospital.example".to_owned()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, "admin");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.serialize_request(&key).unwrap().pem().unwrap()
}

#[tokio::test]
async fn a_code_and_a_csr_become_a_client_certificate_once() {
    for_each_db(|db| async move {
        let store = db.store.clone();
        let sys = Actor::System;
        let dir = tempfile::tempdir().unwrap();
        let (keys, _) = GatewayKeys::load_or_create(dir.path()).unwrap();
        let ca = ClientCa::new(&keys.ca_cert_pem, keys.ca_key_pem.expose(), 90).unwrap();
        let vendor = store
            .create_vendor("Acme".into(), Default::default(), None, &sys, None)
            .await
            .unwrap();
        let alice = store
            .create_user(
                NewUser {
                    username: "alice".into(),
                    display_name: "Alice".into(),
                    email: None,
                    role: Role::Vendor,
                    vendor_id: Some(vendor.id),
                    expires_at: None,
                    password_hash: None,
                    site: None,
                },
                &sys,
                None,
            )
            .await
            .unwrap();
        let hash = |code: &str| hex::encode(digest(&SHA256, code.as_bytes()));
        let in_a_day = Timestamp::now() + SignedDuration::from_hours(24);
        store
            .create_enrollment_code(&alice, &hash("ABCD-1234"), in_a_day, &alice, None)
            .await
            .unwrap();

        let csr = greedy_csr();
        let (user, cert) = store
            .redeem_enrollment_code(&hash("ABCD-1234"), Some("127.0.0.1:5000"), |u| {
                ca.issue(&csr, u, Timestamp::now())
            })
            .await
            .unwrap();
        assert_eq!(user.id, alice.id);
        let der = CertificateDer::from_pem_slice(cert.pem.as_bytes()).unwrap();
        // The verifier the QUIC listener uses accepts it...
        verifier(&keys.ca_cert_pem)
            .verify_client_cert(&der, &[], UnixTime::now())
            .unwrap();
        // ...and it says only what the gateway put in: alice, an end entity, 90 days.
        let (_, parsed) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(!parsed.is_ca());
        let cn: Vec<&str> = parsed
            .subject()
            .iter_common_name()
            .map(|c| c.as_str().unwrap())
            .collect();
        assert_eq!(cn, ["alice"]);
        let sans = parsed.subject_alternative_name().unwrap().unwrap();
        assert_eq!(
            format!("{:?}", sans.value.general_names),
            format!("[URI(\"{}\")]", user_uri(&alice.id))
        );
        let days = cert.expires_at.duration_since(Timestamp::now()).as_hours() / 24;
        assert!((89..=90).contains(&days), "{days}");
        assert_eq!(
            store.client_cert_user(&cert.fingerprint).await.unwrap().unwrap().id,
            alice.id
        );

        // Once only; unknown and expired codes too: refused and audited.
        let again = store
            .redeem_enrollment_code(&hash("ABCD-1234"), None, |u| ca.issue(&csr, u, Timestamp::now()))
            .await;
        assert!(matches!(again, Err(RedeemError::BadCode)), "{again:?}");
        store
            .create_enrollment_code(&alice, &hash("OLD"), Timestamp::now() - SignedDuration::from_secs(1), &alice, None)
            .await
            .unwrap();
        let expired = store
            .redeem_enrollment_code(&hash("OLD"), None, |u| ca.issue(&csr, u, Timestamp::now()))
            .await;
        assert!(matches!(expired, Err(RedeemError::BadCode)), "{expired:?}");

        // A disabled account cannot enroll, and its code stays unused (it may be re-enabled).
        store
            .create_enrollment_code(&alice, &hash("LATER"), in_a_day, &alice, None)
            .await
            .unwrap();
        store
            .update_user(
                alice.id,
                UserChanges {
                    status: Some(UserStatus::Disabled),
                    ..UserChanges::default()
                },
                &sys,
                None,
            )
            .await
            .unwrap();
        let disabled = store
            .redeem_enrollment_code(&hash("LATER"), None, |u| ca.issue(&csr, u, Timestamp::now()))
            .await;
        assert!(matches!(disabled, Err(RedeemError::NotEligible(..))), "{disabled:?}");

        // A garbage CSR is refused with a reason, and burns nothing.
        store
            .update_user(
                alice.id,
                UserChanges {
                    status: Some(UserStatus::Active),
                    ..UserChanges::default()
                },
                &sys,
                None,
            )
            .await
            .unwrap();
        let garbage = store
            .redeem_enrollment_code(&hash("LATER"), None, |u| {
                ca.issue("-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n", u, Timestamp::now())
            })
            .await;
        assert!(
            matches!(&garbage, Err(RedeemError::Issue(m)) if m.contains("not a valid certificate signing request")),
            "{garbage:?}"
        );
        assert!(store
            .redeem_enrollment_code(&hash("LATER"), None, |u| ca.issue(&csr, u, Timestamp::now()))
            .await
            .is_ok());

        // A certificate from another CA is refused by the same verifier.
        let other_dir = tempfile::tempdir().unwrap();
        let (other_keys, _) = GatewayKeys::load_or_create(other_dir.path()).unwrap();
        let other = ClientCa::new(&other_keys.ca_cert_pem, other_keys.ca_key_pem.expose(), 90).unwrap();
        let foreign = other.issue(&csr, &alice, Timestamp::now()).unwrap();
        let foreign_der = CertificateDer::from_pem_slice(foreign.pem.as_bytes()).unwrap();
        assert!(
            verifier(&keys.ca_cert_pem)
                .verify_client_cert(&foreign_der, &[], UnixTime::now())
                .is_err()
        );

        let audit = store.recent_audit_events(50).await.unwrap();
        let kinds: Vec<&str> = audit.iter().map(|e| e.entry.kind.as_str()).collect();
        assert_eq!(kinds.iter().filter(|k| **k == "client_enrolled").count(), 2, "{kinds:?}");
        assert_eq!(
            audit
                .iter()
                .filter(|e| e.entry.kind.as_str() == "access_denied")
                .count(),
            2,
            "{kinds:?}"
        );
    })
    .await;
}
