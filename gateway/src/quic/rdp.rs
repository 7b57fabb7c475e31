//! Remote desktop through the designated client (`sekisho-client rdp pacs`).
//!
//! The session is admitted like a tunnel (control stream, `authorize` for
//! [`ChannelKind::Rdp`]); each RDP connection the vendor's client makes is one more QUIC
//! stream. On it the gateway:
//!
//! 1. logs in to the target *before* it answers `Accepted`, so a refusal reaches the vendor
//!    as a readable message: X.224 asking for NLA or TLS, TLS whose certificate must match
//!    the pinned one (pinned on first use, audited), then NLA (CredSSP, NTLM) with the
//!    level's sealed password — checked before the password is sent to anyone;
//! 2. answers the vendor's client as an RDP server: X.224 selecting TLS, TLS with the
//!    gateway's certificate (the one the designated client pins);
//! 3. relays the connection sequence, rewriting what `sekisho_rdp::setup` says (protocols,
//!    no graphics pipeline, the target account in the Client Info), and then every PDU as it
//!    is, except data on virtual channels the level refuses (clipboard, drives);
//! 4. records every relayed PDU (the Client Info without its password) as an `rdp` stream.
//!
//! The session ends as a tunnel does: the supervisor closes the QUIC connection.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use sekisho_domain::audit::{Actor, AuditEvent, Outcome};
use sekisho_domain::refusal::{Channel, Code, Refusal};
use sekisho_protocol::{ServerMessage, Service};
use sekisho_rdp::channels::{ChannelPolicy, Channels};
use sekisho_rdp::nego;
use sekisho_rdp::pdu::{Pdu, PduReader};
use sekisho_rdp::setup::{self, Account};
use sekisho_recorder::stream::{Direction, StreamKind};
use sekisho_store::audit::NewAuditEvent;
use sekisho_store::targets::Credential;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::session::{Live, Shared, admit};

/// How long each step of a connection's set-up may take.
const STEP: Duration = Duration::from_secs(30);

fn refusal(code: Code, message: impl Into<String>) -> Refusal {
    Refusal::new(code, message.into())
}

async fn step<T>(what: &str, f: impl Future<Output = Result<T, Refusal>>) -> Result<T, Refusal> {
    tokio::time::timeout(STEP, f).await.unwrap_or_else(|_| {
        Err(refusal(
            Code::Timeout,
            format!("{what}: no answer within 30 s"),
        ))
    })
}

/// The gateway's TLS server settings toward vendors' RDP clients: its own certificate, TLS
/// 1.2 or 1.3 (RDP clients still in use speak 1.2), no client certificate (the designated
/// client's QUIC connection already proved who the vendor is).
pub fn server_config(cert_pem: &str, key_pem: &str) -> Result<Arc<rustls::ServerConfig>, String> {
    use rustls::pki_types::PrivateKeyDer;
    use rustls::pki_types::pem::PemObject;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let certs =
        vec![CertificateDer::from_pem_slice(cert_pem.as_bytes()).map_err(|e| e.to_string())?];
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| e.to_string())?;
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| e.to_string())?;
    Ok(Arc::new(config))
}

/// Accepts the target's certificate for the handshake (RDP servers present self-signed
/// ones), still checking the handshake's signatures; the certificate itself is then compared
/// with the pinned fingerprint before anything secret is sent.
#[derive(Debug)]
struct PinAfterwards(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for PinAfterwards {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(PinAfterwards(provider)))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// SHA-256 of a certificate's DER, hex.
fn fingerprint(der: &[u8]) -> String {
    hex::encode(aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, der))
}

type TargetTls = tokio_rustls::client::TlsStream<TcpStream>;

/// The target side, logged in: the TLS stream and what it chose.
struct TargetLeg {
    tls: TargetTls,
    protocol: ironrdp_pdu::nego::SecurityProtocol,
    password: String,
}

/// Connects and logs in to the target's Remote Desktop with the level's credential.
async fn target_leg(shared: &Shared, live: &Live, port: u16) -> Result<TargetLeg, Refusal> {
    let target = &live.target;
    let credential = shared
        .store
        .target_credential(&shared.at_rest, target.id, live.grant.level)
        .await
        .map_err(|e| {
            tracing::error!(error = %e, target = %target.name, "no usable target credential");
            refusal(
                Code::NoCredential,
                format!(
                    "the gateway has no usable credential for the {} account of {}",
                    live.grant.level, target.name
                ),
            )
        })?;
    let Credential::Password(password) = credential else {
        return Err(refusal(
            Code::NoCredential,
            format!(
                "Remote Desktop needs a password for the {} account of {}; a key is stored",
                live.grant.level, target.name
            ),
        ));
    };
    let password = password.expose().clone();
    let addr = format!("{}:{port}", target.host);
    let mut tcp = step("connecting to the target", async {
        TcpStream::connect(&addr).await.map_err(|e| {
            refusal(
                Code::ConnectFailed,
                format!("{} port {port} refused the connection: {e}", target.name),
            )
        })
    })
    .await?;
    let _ = tcp.set_nodelay(true);
    let (user, _) = split_account(&live.grant.account);
    let negotiation =
        |e: sekisho_rdp::RdpError| refusal(Code::RdpNegotiation, format!("{}: {e}", target.name));
    let request = nego::request_target(user).map_err(negotiation)?;
    let protocol = step("security negotiation", async {
        tcp.write_all(&request)
            .await
            .map_err(|e| refusal(Code::ConnectFailed, e.to_string()))?;
        let mut reader = PduReader::new();
        let confirm = reader
            .next(&mut tcp)
            .await
            .map_err(negotiation)?
            .ok_or_else(|| refusal(Code::RdpNegotiation, "the target closed the connection"))?;
        nego::read_target_confirm(&confirm.bytes).map_err(negotiation)
    })
    .await?;
    let config = client_config().map_err(|e| refusal(Code::RdpNegotiation, e))?;
    let name = ServerName::try_from(target.host.clone())
        .map_err(|e| refusal(Code::RdpNegotiation, format!("{}: {e}", target.host)))?;
    let mut tls = step("TLS with the target", async {
        tokio_rustls::TlsConnector::from(config)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                refusal(
                    Code::RdpNegotiation,
                    format!("TLS with {}: {e}", target.name),
                )
            })
    })
    .await?;
    let der = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.as_ref().to_vec())
        .ok_or_else(|| refusal(Code::RdpNegotiation, "the target presented no certificate"))?;
    check_pin(shared, live, &der).await?;
    if nego::is_nla(protocol) {
        let public_key = subject_public_key(&der).ok_or_else(|| {
            refusal(
                Code::RdpNegotiation,
                "the target's certificate cannot be read",
            )
        })?;
        let (user, domain) = split_account(&live.grant.account);
        let account = Account {
            username: user,
            domain,
            password: &password,
        };
        tls = step("NLA with the target", async {
            sekisho_rdp::credssp::authenticate(tls, &target.host, protocol, &account, public_key)
                .await
                .map_err(|e| {
                    tracing::warn!(target = %target.name, error = %e, "NLA with the target failed");
                    refusal(
                        Code::TargetLoginFailed,
                        format!(
                            "{} refused the gateway's {} credential ({e})",
                            target.name, live.grant.level
                        ),
                    )
                })
        })
        .await?;
    }
    Ok(TargetLeg {
        tls,
        protocol,
        password,
    })
}

/// `DOMAIN\user` → (`user`, `Some("DOMAIN")`).
fn split_account(account: &str) -> (&str, Option<&str>) {
    match account.split_once('\\') {
        Some((domain, user)) => (user, Some(domain)),
        None => (account, None),
    }
}

fn subject_public_key(der: &[u8]) -> Option<Vec<u8>> {
    let (_, cert) = x509_parser::parse_x509_certificate(der).ok()?;
    Some(cert.public_key().subject_public_key.data.to_vec())
}

/// The target's certificate must be the pinned one; with none pinned it is pinned now.
async fn check_pin(shared: &Shared, live: &Live, der: &[u8]) -> Result<(), Refusal> {
    let got = fingerprint(der);
    let target = &live.target;
    // The pinned value may have been set since the session began (another connection).
    let pinned = match shared.store.target(target.id).await {
        Ok(Some(t)) => t.rdp_certificate,
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, "cannot read the pinned certificate");
            return Err(refusal(
                Code::DatabaseUnavailable,
                "the gateway cannot read the target's pinned certificate (database unavailable)",
            ));
        }
    };
    match pinned {
        Some(expected) if expected == got => Ok(()),
        Some(expected) => Err(refusal(
            Code::TargetCertificateMismatch,
            format!(
                "the Remote Desktop certificate of {} does not match the pinned one (expected SHA256:{expected}, got SHA256:{got}); the session is refused",
                target.name
            ),
        )),
        None => match shared.store.pin_rdp_certificate(target, &got).await {
            Ok(true) => Ok(()),
            // Pinned meanwhile by another connection: compare with that.
            Ok(false) => match shared.store.target(target.id).await {
                Ok(Some(t)) if t.rdp_certificate.as_deref() == Some(got.as_str()) => Ok(()),
                _ => Err(refusal(
                    Code::TargetCertificateMismatch,
                    format!(
                        "the Remote Desktop certificate of {} changed while it was pinned",
                        target.name
                    ),
                )),
            },
            Err(e) => {
                tracing::error!(error = %e, "cannot pin the target's certificate");
                Err(refusal(
                    Code::DatabaseUnavailable,
                    "the gateway cannot pin the target's certificate (database unavailable)",
                ))
            }
        },
    }
}

/// One vendor RDP connection on a QUIC stream.
pub async fn connection(
    shared: &Shared,
    live: &Live,
    tls: Arc<rustls::ServerConfig>,
    mut send: quinn::SendStream,
    mut recv: quinn::RecvStream,
) {
    let port = live.target.rdp_port.unwrap_or(3389);
    let opened = async {
        let only = || {
            format!(
                "this session is for the desktop of {} only",
                live.target.name
            )
        };
        super::open::expect_open(live, Service::Rdp, only, &mut recv).await?;
        target_leg(shared, live, port).await
    };
    let target = match opened.await {
        Ok(t) => t,
        Err(r) => {
            tracing::warn!(session = %live.session.id, code = %r.code, reason = %r.message, "remote desktop connection refused");
            audit_refused(shared, live, Channel::Rdp, &r).await;
            let answer = ServerMessage::Denied {
                code: r.code.as_str().to_owned(),
                message: format!(
                    "remote desktop to {} refused: {}",
                    live.target.name, r.message
                ),
            };
            let _ = sekisho_protocol::write(&mut send, &answer).await;
            let _ = send.finish();
            return;
        }
    };
    if sekisho_protocol::write(&mut send, &ServerMessage::Accepted)
        .await
        .is_err()
    {
        return;
    }
    let ch = live.next_channel();
    let detail = format!("{}:{port}", live.target.host);
    if let Err(e) = live.recording.stream(ch, StreamKind::Rdp, detail).await {
        live.recording_failed(&e);
        return;
    }
    tracing::info!(session = %live.session.id, channel = ch, protocol = %target.protocol, "remote desktop connected to the target");
    let vendor = tokio::io::join(recv, send);
    match relay(shared, live, ch, tls, vendor, target).await {
        Ok(()) => {
            tracing::info!(session = %live.session.id, channel = ch, "remote desktop connection closed")
        }
        Err(e) => {
            tracing::warn!(session = %live.session.id, channel = ch, error = %e, "remote desktop connection ended")
        }
    }
}

/// The vendor side's security layer, the connection sequence, then the relay.
async fn relay<V>(
    shared: &Shared,
    live: &Live,
    ch: u32,
    tls: Arc<rustls::ServerConfig>,
    mut vendor: V,
    target: TargetLeg,
) -> Result<(), String>
where
    V: AsyncRead + AsyncWrite + Unpin + Send,
{
    // 1. The vendor's X.224 negotiation, answered by the gateway.
    let mut reader = PduReader::new();
    let request = tokio::time::timeout(STEP, reader.next(&mut vendor))
        .await
        .map_err(|_| "no X.224 request from the vendor's client".to_owned())?
        .map_err(|e| e.to_string())?
        .ok_or("the vendor's client closed the connection")?;
    let asked = nego::read_request(&request.bytes).map_err(|e| e.to_string())?;
    match nego::answer_vendor(asked) {
        Ok(confirm) => vendor
            .write_all(&confirm)
            .await
            .map_err(|e| e.to_string())?,
        Err(failure) => {
            let r = refusal(
                Code::RdpNegotiation,
                "your RDP client did not offer TLS security: the gateway needs it (xfreerdp: /sec:tls; mstsc: the default)",
            );
            audit_refused(shared, live, Channel::Rdp, &r).await;
            // The stream now belongs to RDP: the client prints the control stream's notice.
            live.notices.send_replace(r.message.clone());
            // Told first on the control stream, then the client's own failure message.
            tokio::time::sleep(Duration::from_millis(100)).await;
            let _ = vendor.write_all(&failure).await;
            return Err(r.message);
        }
    }
    if !reader.leftover().is_empty() {
        return Err("the vendor's client sent data before the negotiation ended".into());
    }
    let mut vendor =
        tokio::time::timeout(STEP, tokio_rustls::TlsAcceptor::from(tls).accept(vendor))
            .await
            .map_err(|_| "TLS with the vendor's client timed out".to_owned())?
            .map_err(|e| format!("TLS with the vendor's client: {e}"))?;
    let mut target_tls = target.tls;

    // 2. Connect Initial → target (rewritten), Connect Response → vendor (rewritten).
    let mut from_vendor = PduReader::new();
    let mut from_target = PduReader::new();
    let initial = next(&mut from_vendor, &mut vendor, "Connect Initial").await?;
    let (initial, client) = setup::rewrite_connect_initial(&initial.bytes, target.protocol)
        .map_err(|e| e.to_string())?;
    let initial = Bytes::from(initial);
    record(live, ch, Direction::ToTarget, initial.clone()).await?;
    target_tls
        .write_all(&initial)
        .await
        .map_err(|e| e.to_string())?;
    let response = next(&mut from_target, &mut target_tls, "Connect Response").await?;
    let (response, server) = setup::rewrite_connect_response(&response.bytes, asked.protocols)
        .map_err(|e| e.to_string())?;
    let response = Bytes::from(response);
    record(live, ch, Direction::FromTarget, response.clone()).await?;
    vendor
        .write_all(&response)
        .await
        .map_err(|e| e.to_string())?;

    let policy = live
        .target
        .level(live.grant.level)
        .map(|p| ChannelPolicy {
            clipboard: p.rdp_clipboard,
            drives: p.rdp_drives,
        })
        .unwrap_or_default();
    let channels = Channels::new(&client, &server, policy);
    audit_channels(shared, live, &channels).await;

    // 3. Both directions, PDU by PDU.
    let (target_read, target_write) = tokio::io::split(target_tls);
    let (vendor_read, vendor_write) = tokio::io::split(vendor);
    let (user, domain) = split_account(&live.grant.account);
    let account = Account {
        username: user,
        domain,
        password: &target.password,
    };
    let up = pump(
        live,
        ch,
        Direction::ToTarget,
        &channels,
        Some(&account),
        (from_vendor, vendor_read),
        target_write,
    );
    let down = pump(
        live,
        ch,
        Direction::FromTarget,
        &channels,
        None,
        (from_target, target_read),
        vendor_write,
    );
    tokio::select! {
        r = up => r,
        r = down => r,
        () = live.ended.cancelled() => Ok(()),
    }
}

async fn next<R: AsyncRead + Unpin>(
    reader: &mut PduReader,
    from: &mut R,
    what: &str,
) -> Result<Pdu, String> {
    tokio::time::timeout(STEP, reader.next(from))
        .await
        .map_err(|_| format!("no {what} within 30 s"))?
        .map_err(|e| format!("{what}: {e}"))?
        .ok_or_else(|| format!("the connection closed before the {what}"))
}

async fn record(live: &Live, ch: u32, direction: Direction, pdu: Bytes) -> Result<(), String> {
    live.recording
        .frame_shared(ch, direction, pdu)
        .await
        .map_err(|e| {
            live.recording_failed(&e);
            e.to_string()
        })
}

/// Audits a refusal on this session's connection.
async fn audit_refused(shared: &Shared, live: &Live, channel: Channel, r: &Refusal) {
    admit::audit_denied(
        shared,
        &live.user,
        Some(live.target.id),
        channel,
        r,
        &live.session.source_addr,
    )
    .await;
}

/// Audits which channels were asked for and which the level lets through.
async fn audit_channels(shared: &Shared, live: &Live, channels: &Channels) {
    let (allowed, refused): (Vec<_>, Vec<_>) = channels.summary().into_iter().partition(|c| c.1);
    let names = |v: Vec<(String, bool)>| v.into_iter().map(|c| c.0).collect::<Vec<_>>();
    let (allowed, refused) = (names(allowed), names(refused));
    for name in &refused {
        let r = refusal(
            Code::RdpChannelRefused,
            format!(
                "the {} channel `{name}` is not allowed at the {} level of {}; nothing is relayed on it",
                if name == "cliprdr" {
                    "clipboard"
                } else {
                    "drive redirection"
                },
                live.grant.level,
                live.target.name
            ),
        );
        audit_refused(shared, live, Channel::RdpChannel, &r).await;
    }
    tracing::info!(session = %live.session.id, ?allowed, ?refused, "remote desktop channels");
    let event = NewAuditEvent {
        actor: Actor::user(&live.user),
        outcome: Outcome::Success,
        vendor_id: live.user.vendor_id,
        source_addr: Some(live.session.source_addr.clone()),
        reason: None,
        event: AuditEvent::RdpChannels {
            session: live.session.id,
            request: live.session.request_id,
            target: live.session.target_id,
            allowed,
            refused,
        },
    };
    if let Err(e) = shared.store.audit(event).await {
        tracing::error!(error = %e, "cannot audit the remote desktop channels");
        live.end(
            sekisho_domain::session::SessionEnd::Aborted,
            "the audit log is unavailable",
        );
    }
}

/// What a slow-path PDU is, for [`pump`].
enum Seen {
    /// Data on a channel the level refuses.
    Refused,
    ClientInfo,
    ConfirmActive,
    Other,
}

/// Copies PDUs one way: the Client Info gets the target account (recorded without its
/// password), data on refused channels is dropped, everything else is recorded and passed.
#[allow(clippy::too_many_arguments)]
async fn pump<R, W>(
    live: &Live,
    ch: u32,
    direction: Direction,
    channels: &Channels,
    mut account: Option<&Account<'_>>,
    (mut reader, mut from): (PduReader, R),
    mut to: W,
) -> Result<(), String>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    while let Some(pdu) = reader.next(&mut from).await.map_err(|e| e.to_string())? {
        let mut forward = pdu.bytes;
        let mut recorded = forward.clone();
        // Slow-path data is decoded once to see its channel and what it is; only the two
        // PDUs the relay rewrites are decoded further.
        let seen = (pdu.action == ironrdp_pdu::Action::X224)
            .then(|| setup::send_data(&forward))
            .flatten()
            .map(|(channel, user_data)| {
                if channels.refused(channel).is_some() {
                    Seen::Refused
                } else if account.is_some() && setup::is_client_info(&user_data) {
                    Seen::ClientInfo
                } else if direction == Direction::ToTarget
                    && setup::share_control_type(&user_data) == Some(setup::CONFIRM_ACTIVE)
                {
                    Seen::ConfirmActive
                } else {
                    Seen::Other
                }
            });
        match (seen, account) {
            (Some(Seen::Refused), _) => continue,
            (Some(Seen::ClientInfo), Some(acc)) => {
                let rewritten =
                    setup::rewrite_client_info(&forward, acc).map_err(|e| e.to_string())?;
                tracing::info!(session = %live.session.id, vendor_user = %rewritten.vendor_username, account = %acc.username, "Client Info: the target account is logged in");
                forward = Bytes::from(rewritten.to_target);
                recorded = Bytes::from(rewritten.recorded);
                account = None;
            }
            (Some(Seen::ConfirmActive), _) => {
                if let Some(rewritten) = setup::rewrite_confirm_active(&forward) {
                    forward = Bytes::from(rewritten.map_err(|e| e.to_string())?);
                    recorded = forward.clone();
                }
            }
            _ => {}
        }
        let n = forward.len();
        record(live, ch, direction, recorded).await?;
        to.write_all(&forward).await.map_err(|e| e.to_string())?;
        live.relayed(direction, n);
    }
    let _ = to.shutdown().await;
    Ok(())
}
