//! The designated client's QUIC listener (quinn, TLS 1.3 only, ALPN `sekisho/1`).
//!
//! A client certificate is optional at the TLS layer, and only certificates signed by the
//! gateway's client CA pass it. Without one, the only thing a connection may do is enroll.
//! With one, the certificate must also be listed in `client_certs` and not revoked; then the
//! client may open a target's SSH service. The QUIC stream is then handed to the same russh
//! server as stock SSH ([`crate::ssh::conn::Conn::for_client_certificate`]), so decisions,
//! recording and session ends are exactly those of SSH. Each connection's first
//! bidirectional stream carries the control protocol of `sekisho-protocol`.

pub mod client_api;
pub mod enroll;
mod open;
pub mod rdp;
pub mod tunnel;

use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use jiff::Timestamp;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::user::User;
use sekisho_protocol::{CertRefusal, ClientMessage, SUPPORTED, ServerMessage, Service, VERSION};
use sekisho_store::audit::NewAuditEvent;
use sekisho_store::certs::{IssuedCert, RedeemError};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use sekisho_protocol::transport::CLOSE_GATEWAY_STOPPING;

use crate::keys::GatewayKeys;
use crate::session::{self, admit};
use crate::ssh;
use enroll::ClientCa;
use sekisho_domain::refusal::{Channel, Code};

/// The ALPN protocol name.
pub const ALPN: &[u8] = b"sekisho/1";
/// Concurrent streams per connection: the control stream plus tunnelled TCP connections.
const MAX_STREAMS: u32 = 1024;
/// How long a client has to say what it wants.
const CONTROL_TIMEOUT: Duration = Duration::from_secs(15);

/// Why the listener could not be set up.
#[derive(Debug, thiserror::Error)]
#[error("cannot set up the QUIC listener: {0}")]
pub struct QuicError(String);

fn err(e: impl std::fmt::Display) -> QuicError {
    QuicError(e.to_string())
}

/// The quinn server configuration: the gateway's TLS certificate, client certificates from
/// the client CA (optional at this layer, see the module documentation).
pub fn server_config(keys: &GatewayKeys) -> Result<quinn::ServerConfig, QuicError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(keys.ca_cert_pem.as_bytes()).map_err(err)?)
        .map_err(err)?;
    let inner = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .allow_unauthenticated()
        .build()
        .map_err(err)?;
    let verifier = Arc::new(NamedRefusals { inner });
    let certs = vec![CertificateDer::from_pem_slice(keys.tls_cert_pem.as_bytes()).map_err(err)?];
    let key = PrivateKeyDer::from_pem_slice(keys.tls_key_pem.expose().as_bytes()).map_err(err)?;
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(err)?
        .with_client_cert_verifier(verifier)
        .with_single_cert(certs, key)
        .map_err(err)?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let crypto = quinn::crypto::rustls::QuicServerConfig::try_from(tls).map_err(err)?;
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(crypto));
    let mut transport = sekisho_protocol::transport::transport_config();
    // One stream per tunnelled TCP connection.
    transport.max_concurrent_bidi_streams(MAX_STREAMS.into());
    config.transport_config(Arc::new(transport));
    // A vendor's address may change mid-session (NAT rebinding, another network): the
    // connection follows it (quinn validates the new path first). quinn's default, stated
    // because a test depends on it.
    config.migration(true);
    Ok(config)
}

/// The endpoint settings: quinn's defaults, except that the key stateless resets are signed
/// with, and the key connection IDs are checked with, are derived from the gateway's TLS key
/// instead of drawn at random, so that they are the same after a restart. A gateway that
/// crashed then recognises its old connections' IDs and answers their next packet with a
/// reset the clients accept: they learn at once that their connection is gone (a tunnel
/// reconnects) instead of at the 60 s idle timeout.
pub fn endpoint_config(keys: &GatewayKeys) -> quinn::EndpointConfig {
    let derive = |label: &str| {
        digest(
            &SHA256,
            &[
                label.as_bytes(),
                b"\0",
                keys.tls_key_pem.expose().as_bytes(),
            ]
            .concat(),
        )
    };
    let reset = derive("sekisho quic stateless reset");
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, reset.as_ref());
    let mut config = quinn::EndpointConfig::new(Arc::new(key));
    let cid = derive("sekisho quic connection ids");
    let mut cid_key = [0u8; 8];
    cid_key.copy_from_slice(cid.as_ref().get(..8).unwrap_or(&[0; 8]));
    let cid_key = u64::from_be_bytes(cid_key);
    config.cid_generator(move || {
        Box::new(quinn_proto::HashedConnectionIdGenerator::from_key(cid_key))
    });
    config
}

/// The client CA's verifier, with refusals naming the certificate (`SHA256:` of its DER) and
/// a stable code, so that the connection task can audit them (see [`CertRefusal`]).
#[derive(Debug)]
struct NamedRefusals {
    inner: Arc<dyn ClientCertVerifier>,
}

/// The refusal as a TLS error whose text (`Debug` included, which rustls shows) is exactly
/// [`CertRefusal::text`].
struct RefusalText(String);

impl std::fmt::Debug for RefusalText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::fmt::Display for RefusalText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RefusalText {}

impl ClientCertVerifier for NamedRefusals {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.inner
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|e| {
                use rustls::CertificateError as C;
                let code = match &e {
                    rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
                        Code::CertificateExpired
                    }
                    rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
                        Code::CertificateUnknownIssuer
                    }
                    rustls::Error::InvalidCertificate(C::BadSignature) => {
                        Code::CertificateBadSignature
                    }
                    _ => Code::CertificateRefused,
                };
                let refusal = CertRefusal {
                    fingerprint: hex::encode(digest(&SHA256, end_entity.as_ref())),
                    code: code.as_str().to_owned(),
                    message: e.to_string(),
                };
                rustls::Error::InvalidCertificate(C::Other(rustls::OtherError(Arc::new(
                    RefusalText(refusal.text()),
                ))))
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Audits a client certificate refused in the handshake: as its owner when it is one of
/// ours (say, expired), else as an anonymous caller named by the fingerprint.
async fn audit_refused_certificate(shared: &QuicShared, refusal: CertRefusal, peer: &str) {
    let store = &shared.ssh.store;
    let owner = store.client_cert_owner(&refusal.fingerprint).await;
    let actor = match &owner {
        Ok(Some(user)) => Actor::user(user),
        Ok(None) => Actor::Anonymous {
            claimed: format!("client certificate SHA256:{}", refusal.fingerprint),
        },
        Err(e) => {
            tracing::error!(error = %e, "cannot look up a refused client certificate");
            Actor::Anonymous {
                claimed: format!("client certificate SHA256:{}", refusal.fingerprint),
            }
        }
    };
    tracing::warn!(peer, fingerprint = %refusal.fingerprint, code = %refusal.code, reason = %refusal.message, "client certificate refused");
    let ev = NewAuditEvent {
        vendor_id: owner.ok().flatten().and_then(|u| u.vendor_id),
        actor,
        outcome: Outcome::Denied,
        source_addr: Some(peer.to_owned()),
        reason: Some(format!(
            "client certificate SHA256:{} refused: {}",
            refusal.fingerprint, refusal.message
        )),
        event: AuditEvent::AccessDenied {
            target: None,
            request: None,
            channel: Channel::Quic,
            code: Code::from_name(&refusal.code).unwrap_or(Code::CertificateRefused),
        },
    };
    if let Err(e) = store.audit(ev).await {
        tracing::error!(error = %e, "cannot audit a refused client certificate");
    }
}

/// What the listener needs besides the SSH gateway's state.
pub struct QuicShared {
    pub ssh: Arc<session::Shared>,
    pub ssh_config: Arc<russh::server::Config>,
    pub ca: ClientCa,
    pub ca_pem: String,
    /// The SSH host key line the client pins in its known_hosts.
    pub ssh_host_key: String,
    /// TLS toward vendors' RDP clients (the gateway's certificate).
    pub rdp_tls: Arc<rustls::ServerConfig>,
}

/// Accepts connections until `shutdown` is cancelled, at most `max_connections` at once:
/// further ones are refused at once (QUIC `CONNECTION_REFUSED`; a tunnel retries with
/// backoff), so that a flood of handshakes cannot exhaust the gateway.
pub async fn serve(
    endpoint: quinn::Endpoint,
    shared: Arc<QuicShared>,
    shutdown: CancellationToken,
    max_connections: usize,
) {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    loop {
        let incoming = tokio::select! {
            () = shutdown.cancelled() => break,
            i = endpoint.accept() => match i {
                Some(i) => i,
                None => break,
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(
                peer = %incoming.remote_address(),
                limit = max_connections,
                "designated-client connection refused: the gateway is at its connection limit ([server] max_connections)"
            );
            incoming.refuse();
            continue;
        };
        let shared = shared.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let peer = incoming.remote_address().to_string();
            if let Err(e) = connection(incoming, &shared).await {
                match CertRefusal::find(&e) {
                    Some(refusal) => audit_refused_certificate(&shared, refusal, &peer).await,
                    None => {
                        tracing::debug!(peer = %peer, error = %e, "designated-client connection ended")
                    }
                }
            }
        });
    }
    endpoint.close(
        CLOSE_GATEWAY_STOPPING.into(),
        b"Sekisho: the gateway is shutting down",
    );
}

/// The owner of the certificate `fingerprint`, if it is enrolled and unrevoked and its owner
/// may connect at all (active engineer, active vendor, attestation in order); else the
/// refusal, audited when the owner is known. Fails closed when the store cannot answer.
async fn certificate_owner(
    shared: &QuicShared,
    fingerprint: &str,
    peer: &str,
) -> Result<User, ServerMessage> {
    let deny = |code: Code, message: String| ServerMessage::Denied {
        code: code.as_str().to_owned(),
        message,
    };
    let unavailable = |e: &dyn std::fmt::Display| {
        tracing::error!(error = %e, "cannot check a client certificate; refusing (fail closed)");
        let m = "the gateway cannot check your certificate right now; try again later";
        deny(Code::DatabaseUnavailable, m.into())
    };
    let user = match shared.ssh.store.client_cert_user(fingerprint).await {
        Ok(Some(u)) => u,
        Ok(None) => {
            let m = "this client certificate is not (or no longer) enrolled; enroll again with a new code";
            return Err(deny(Code::CertificateUnknown, m.into()));
        }
        Err(e) => return Err(unavailable(&e)),
    };
    match admit::check_account(&shared.ssh, &user).await {
        Ok(Ok(())) => Ok(user),
        Ok(Err(refusal)) => {
            admit::audit_denied(&shared.ssh, &user, None, Channel::Quic, &refusal, peer).await;
            Err(deny(refusal.code, refusal.message))
        }
        Err(e) => Err(unavailable(&e)),
    }
}

/// SHA-256 (hex) of the client certificate's DER, if one was presented.
fn client_fingerprint(conn: &quinn::Connection) -> Option<String> {
    let certs = conn
        .peer_identity()?
        .downcast::<Vec<CertificateDer<'static>>>()
        .ok()?;
    let leaf = certs.first()?;
    Some(hex::encode(digest(&SHA256, leaf.as_ref())))
}

async fn connection(incoming: quinn::Incoming, shared: &QuicShared) -> Result<(), String> {
    let conn = incoming.await.map_err(|e| e.to_string())?;
    let peer = conn.remote_address().to_string();
    let (mut send, mut recv) = conn.accept_bi().await.map_err(|e| e.to_string())?;
    let deny = |code: Code, message: String| ServerMessage::Denied {
        code: code.as_str().to_owned(),
        message,
    };
    let hello = tokio::time::timeout(
        CONTROL_TIMEOUT,
        sekisho_protocol::read::<ClientMessage, _>(&mut recv),
    )
    .await;
    let reply = match hello {
        Ok(Ok(ClientMessage::Hello { version, .. })) if SUPPORTED.contains(&version) => None,
        Ok(Ok(ClientMessage::Hello { version, .. })) => Some(deny(
            Code::UnsupportedVersion,
            format!(
                "this gateway speaks protocol version {VERSION}, the client {version}: update sekisho-client"
            ),
        )),
        Ok(Ok(_)) => Some(deny(
            Code::ProtocolError,
            "the first message must be hello".into(),
        )),
        Ok(Err(e)) => Some(deny(Code::ProtocolError, e.to_string())),
        Err(_) => Some(deny(Code::Timeout, "no hello within 15 s".into())),
    };
    if let Some(denied) = reply {
        return answer_and_close(&conn, send, &denied).await;
    }
    // A certificate is checked on every connection, before anything is answered: it must
    // be enrolled and unrevoked, and its owner must still be allowed to connect at all.
    let fingerprint = client_fingerprint(&conn);
    let user = match &fingerprint {
        None => None,
        Some(fp) => match certificate_owner(shared, fp, &peer).await {
            Ok(u) => Some(u),
            Err(denied) => return answer_and_close(&conn, send, &denied).await,
        },
    };
    sekisho_protocol::write(
        &mut send,
        &ServerMessage::Welcome {
            version: VERSION,
            gateway: format!("sekisho {}", env!("CARGO_PKG_VERSION")),
        },
    )
    .await
    .map_err(|e| e.to_string())?;
    let request = tokio::time::timeout(
        CONTROL_TIMEOUT,
        sekisho_protocol::read::<ClientMessage, _>(&mut recv),
    )
    .await
    .map_err(|_| "no request within 15 s".to_owned())?
    .map_err(|e| e.to_string())?;
    // Again for the request itself: the owner may have been disabled since the hello.
    let user = match (&fingerprint, user) {
        (Some(fp), Some(_)) => match certificate_owner(shared, fp, &peer).await {
            Ok(u) => Some(u),
            Err(denied) => return answer_and_close(&conn, send, &denied).await,
        },
        (_, user) => user,
    };
    if let ClientMessage::Enroll {
        code,
        csr_pem,
        password,
    } = &request
    {
        let answer = enroll(shared, code, csr_pem, password.as_ref(), &peer).await;
        return answer_and_close(&conn, send, &answer).await;
    }
    let (Some(user), Some(fingerprint)) = (user, fingerprint) else {
        let m = "enroll first: `sekisho-client enroll --gateway HOST:PORT --code CODE --fingerprint SHA256:...`";
        return answer_and_close(&conn, send, &deny(Code::CertificateRequired, m.into())).await;
    };
    let answer = match request {
        ClientMessage::Open {
            target,
            service,
            otp,
        } => {
            // The certificate is the first factor; a session starts only with the second
            // when the account has one (or its role must).
            let code = otp.as_ref().map(|p| p.0.as_str());
            if let Err(refusal) = crate::session::second_factor::at_session_start(
                &shared.ssh,
                &user,
                code,
                &peer,
                Channel::Quic,
            )
            .await
            {
                return answer_and_close(&conn, send, &deny(refusal.code, refusal.message)).await;
            }
            return match service {
                Service::Ssh => open_ssh(shared, user, &target, peer, send, recv).await,
                Service::Tcp { port } => {
                    tracing::info!(user = %user.username, target, port, peer = %peer, "designated client opens a tunnel");
                    tunnel::run(
                        shared.ssh.clone(),
                        conn.clone(),
                        user,
                        &target,
                        tunnel::Kind::Tcp { port },
                        peer,
                        send,
                    )
                    .await;
                    Ok(())
                }
                Service::Rdp => {
                    tracing::info!(user = %user.username, target, peer = %peer, "designated client opens a remote desktop");
                    let kind = tunnel::Kind::Rdp {
                        tls: shared.rdp_tls.clone(),
                    };
                    tunnel::run(
                        shared.ssh.clone(),
                        conn.clone(),
                        user,
                        &target,
                        kind,
                        peer,
                        send,
                    )
                    .await;
                    Ok(())
                }
            };
        }
        ClientMessage::ListRequests => client_api::list(&shared.ssh, &user).await,
        ClientMessage::FileRequest { request } => {
            client_api::file(&shared.ssh, &user, request, &peer).await
        }
        ClientMessage::Renew { csr_pem } => {
            let renewed = shared
                .ssh
                .store
                .renew_client_cert(&fingerprint, Some(&peer), |u| {
                    shared.ca.issue(&csr_pem, u, Timestamp::now())
                })
                .await;
            certificate_answer(shared, renewed)
        }
        ClientMessage::Hello { .. } | ClientMessage::Enroll { .. } => {
            deny(Code::ProtocolError, "hello sent twice".into())
        }
    };
    answer_and_close(&conn, send, &answer).await
}

/// Sends the one answer of a request/answer exchange and lets it reach the client before
/// the connection goes.
async fn answer_and_close(
    conn: &quinn::Connection,
    mut send: quinn::SendStream,
    answer: &ServerMessage,
) -> Result<(), String> {
    let _ = sekisho_protocol::write(&mut send, answer).await;
    let _ = send.finish();
    let _ = tokio::time::timeout(Duration::from_secs(5), conn.closed()).await;
    Ok(())
}

async fn enroll(
    shared: &QuicShared,
    code: &str,
    csr_pem: &str,
    password: Option<&sekisho_protocol::Password>,
    peer: &str,
) -> ServerMessage {
    let code_hash = hex::encode(digest(&SHA256, code.trim().as_bytes()));
    let store = &shared.ssh.store;
    // The code alone is not enough: whoever issued it could enroll as the engineer. The
    // engineer's own password must come with it.
    match store.enrollment_code_owner(&code_hash).await {
        Ok(Some(owner)) => {
            let Some(password) = password else {
                return denied(
                    Code::PasswordRequired,
                    "enrollment needs your Sekisho password as well as the code; update sekisho-client".into(),
                );
            };
            let hash = match store.password_hash(owner.id).await {
                Ok(h) => h,
                Err(e) => {
                    tracing::error!(error = %e, "cannot read a password hash for enrollment");
                    return denied(
                        Code::DatabaseUnavailable,
                        "the gateway cannot check your enrollment right now; try again later"
                            .into(),
                    );
                }
            };
            let secret = sekisho_domain::secret::Secret::new(password.0.clone());
            match shared.ssh.hasher.verify(secret, hash).await {
                Ok(true) => {}
                Ok(false) => {
                    let message = format!(
                        "wrong password for {}: this enrollment code is now void; ask the hospital's IT for a new one",
                        owner.username
                    );
                    if let Err(e) = store
                        .void_enrollment_code(&code_hash, &owner, Some(peer), &message)
                        .await
                    {
                        tracing::error!(error = %e, "cannot void an enrollment code");
                    }
                    return denied(Code::WrongPassword, message);
                }
                Err(e) => return denied(Code::Busy, e.to_string()),
            }
        }
        Ok(None) => {} // redeeming audits and explains a bad code
        Err(e) => {
            tracing::error!(error = %e, "cannot look up an enrollment code");
            return denied(
                Code::DatabaseUnavailable,
                "the gateway cannot check your enrollment right now; try again later".into(),
            );
        }
    }
    let redeemed = store
        .redeem_enrollment_code(&code_hash, Some(peer), |u| {
            shared.ca.issue(csr_pem, u, Timestamp::now())
        })
        .await;
    certificate_answer(shared, redeemed)
}

/// A refusal with a code and a message for the engineer.
fn denied(code: Code, message: String) -> ServerMessage {
    ServerMessage::Denied {
        code: code.as_str().to_owned(),
        message,
    }
}

/// The answer to an enrollment or a renewal.
fn certificate_answer(
    shared: &QuicShared,
    issued: Result<(User, IssuedCert), RedeemError>,
) -> ServerMessage {
    match issued {
        Ok((user, cert)) => {
            tracing::info!(user = %user.username, fingerprint = %cert.fingerprint, "client certificate issued");
            ServerMessage::Enrolled {
                certificate_pem: cert.pem,
                ca_pem: shared.ca_pem.clone(),
                username: user.username,
                expires_at: cert.expires_at.to_string(),
                ssh_host_key: shared.ssh_host_key.clone(),
            }
        }
        Err(e) => {
            let code = match &e {
                RedeemError::BadCode => Code::BadEnrollmentCode,
                RedeemError::NotEligible(..) => Code::NotEligible,
                RedeemError::Issue(_) => Code::BadRequest,
                RedeemError::Store(_) => Code::DatabaseUnavailable,
            };
            if let RedeemError::Store(e) = &e {
                tracing::error!(error = %e, "certificate issue failed");
            }
            ServerMessage::Denied {
                code: code.as_str().into(),
                message: e.to_string(),
            }
        }
    }
}

/// Hands the stream to the SSH gateway as a pre-authenticated connection of `user`.
async fn open_ssh(
    shared: &QuicShared,
    user: User,
    target: &str,
    peer: String,
    mut send: quinn::SendStream,
    recv: quinn::RecvStream,
) -> Result<(), String> {
    tracing::info!(user = %user.username, target, peer = %peer, "designated client opens ssh");
    sekisho_protocol::write(&mut send, &ServerMessage::Accepted)
        .await
        .map_err(|e| e.to_string())?;
    let handler = ssh::conn::Conn::for_client_certificate(shared.ssh.clone(), peer, user);
    let stream = tokio::io::join(recv, send);
    let session = russh::server::run_stream(shared.ssh_config.clone(), stream, handler)
        .await
        .map_err(|e| e.to_string())?;
    session.await.map_err(|e| e.to_string())
}
