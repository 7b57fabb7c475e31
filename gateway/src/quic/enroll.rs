//! The client CA: turns an enrollment request (a CSR made on the vendor's machine, whose
//! private key never leaves it) into a client certificate bound to one vendor engineer.
//!
//! Only the CSR's public key is used; everything else in the request (names, extensions, a
//! wish to be a CA) is ignored. The certificate says who it is for twice: the common name is
//! the username (for people reading it) and a `urn:uuid:` URI SAN holds the user's id (what
//! the gateway trusts). It is an end-entity certificate for TLS client authentication only,
//! valid for `[quic] client_cert_days`.

use aws_lc_rs::digest::{SHA256, digest};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use jiff::{SignedDuration, Timestamp};
use rcgen::{
    CertificateParams, CertificateSigningRequestParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, SerialNumber,
};
use sekisho_domain::user::User;
use sekisho_store::certs::IssuedCert;

/// Why the CA could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("cannot load the client CA: {0}")]
pub struct CaError(String);

/// The gateway's client CA, ready to sign.
pub struct ClientCa {
    issuer: Issuer<'static, KeyPair>,
    validity: SignedDuration,
}

/// The URI SAN naming user `id`.
pub fn user_uri(id: &sekisho_domain::ids::UserId) -> String {
    format!("urn:uuid:{id}")
}

impl ClientCa {
    pub fn new(ca_cert_pem: &str, ca_key_pem: &str, validity_days: u32) -> Result<Self, CaError> {
        let key = KeyPair::from_pem(ca_key_pem).map_err(|e| CaError(e.to_string()))?;
        let issuer =
            Issuer::from_ca_cert_pem(ca_cert_pem, key).map_err(|e| CaError(e.to_string()))?;
        Ok(Self {
            issuer,
            validity: SignedDuration::from_hours(24 * i64::from(validity_days)),
        })
    }

    /// Signs a certificate for `user` with the public key of `csr_pem` (whose signature proves
    /// the requester holds the private key). The error is for the vendor to read.
    pub fn issue(&self, csr_pem: &str, user: &User, now: Timestamp) -> Result<IssuedCert, String> {
        let csr = CertificateSigningRequestParams::from_pem(csr_pem)
            .map_err(|e| format!("not a valid certificate signing request ({e})"))?;
        let mut params = CertificateParams::default();
        params
            .distinguished_name
            .push(DnType::CommonName, user.username.clone());
        params
            .distinguished_name
            .push(DnType::OrganizationName, "Sekisho vendor engineer");
        params.subject_alt_names =
            vec![SanType::URI(user_uri(&user.id).try_into().map_err(
                |e| format!("cannot name the user in the certificate: {e}"),
            )?)];
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let expires_at = now + self.validity;
        params.not_before = offset(now - SignedDuration::from_mins(5))?;
        params.not_after = offset(expires_at)?;
        let mut serial = [0u8; 16];
        SystemRandom::new()
            .fill(&mut serial)
            .map_err(|_| "no randomness for the serial number".to_owned())?;
        serial[0] &= 0x7f; // a positive integer
        params.serial_number = Some(SerialNumber::from_slice(&serial));
        let cert = params
            .signed_by(&csr.public_key, &self.issuer)
            .map_err(|e| format!("cannot sign the certificate: {e}"))?;
        Ok(IssuedCert {
            pem: cert.pem(),
            fingerprint: hex::encode(digest(&SHA256, cert.der())),
            serial: hex::encode(serial),
            expires_at,
        })
    }
}

fn offset(t: Timestamp) -> Result<time::OffsetDateTime, String> {
    time::OffsetDateTime::from_unix_timestamp(t.as_second()).map_err(|e| e.to_string())
}
