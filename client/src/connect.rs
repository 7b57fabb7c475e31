//! A QUIC connection to the gateway: TLS 1.3, the gateway's certificate pinned by its
//! SHA-256 fingerprint (shown with the enrollment code), and our client certificate once
//! enrolled.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use aws_lc_rs::digest::{SHA256, digest};
use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use sekisho_protocol::{CertRefusal, ClientMessage, ServerMessage, Service, VERSION};

/// The gateway's certificate must have exactly this SHA-256.
#[derive(Debug)]
struct Pinned {
    sha256_hex: String,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let got = hex::encode(digest(&SHA256, end_entity.as_ref()));
        if got == self.sha256_hex {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(format!(
                "the gateway's certificate is SHA256:{got}, not the pinned SHA256:{}: not the hospital's gateway, or its certificate changed",
                self.sha256_hex
            )))
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Err(rustls::Error::General("TLS 1.2 is not used".into()))
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Our certificate and key, once enrolled.
pub struct Identity {
    pub certs: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

/// A QUIC connection to the gateway, with the endpoint that carries it.
pub struct Link {
    pub conn: quinn::Connection,
    /// Its UDP endpoint: rebinding it moves the connection to a new local address (QUIC
    /// connection migration; the gateway follows).
    pub endpoint: quinn::Endpoint,
}

impl Link {
    /// Closes the connection and waits (briefly) until the gateway has been told, so that
    /// the gateway ends the session at once rather than at the idle timeout.
    pub async fn close(&self, reason: &str) {
        self.conn.close(0u32.into(), reason.as_bytes());
        let _ = tokio::time::timeout(Duration::from_secs(2), self.endpoint.wait_idle()).await;
    }
}

/// Connects to `gateway` (`host:port`) pinning `fingerprint` (`SHA256:` hex).
pub async fn connect(
    gateway: &str,
    fingerprint: &str,
    identity: Option<Identity>,
) -> anyhow::Result<Link> {
    let pin = fingerprint
        .trim()
        .strip_prefix("SHA256:")
        .unwrap_or(fingerprint.trim())
        .to_ascii_lowercase();
    if pin.len() != 64 || !pin.chars().all(|c| c.is_ascii_hexdigit()) {
        bail!("`{fingerprint}` is not a gateway fingerprint (SHA256: followed by 64 hex digits)");
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(Pinned {
            sha256_hex: pin,
            provider,
        }));
    let mut tls = match identity {
        Some(id) => builder
            .with_client_auth_cert(id.certs, id.key)
            .context("the enrolled certificate or key is unusable; enroll again")?,
        None => builder.with_no_client_auth(),
    };
    tls.alpn_protocols = vec![b"sekisho/1".to_vec()];
    let crypto = quinn::crypto::rustls::QuicClientConfig::try_from(tls)?;
    let mut config = quinn::ClientConfig::new(Arc::new(crypto));
    config.transport_config(Arc::new(sekisho_protocol::transport::transport_config()));

    let addr = tokio::net::lookup_host(gateway)
        .await
        .with_context(|| {
            format!("cannot resolve the gateway address `{gateway}` (expected HOST:PORT)")
        })?
        .next()
        .with_context(|| format!("`{gateway}` resolves to no address"))?;
    let bind: std::net::SocketAddr = if addr.is_ipv4() {
        "0.0.0.0:0".parse()?
    } else {
        "[::]:0".parse()?
    };
    let udp = sekisho_protocol::transport::udp_socket(bind).context("cannot open a UDP socket")?;
    let mut endpoint =
        sekisho_protocol::transport::endpoint(quinn::EndpointConfig::default(), udp.socket, None)
            .context("cannot open a UDP socket")?;
    endpoint.set_default_client_config(config);
    let connecting = endpoint
        .connect(addr, "sekisho-gateway")
        .with_context(|| format!("cannot connect to {addr}"))?;
    let conn = match tokio::time::timeout(Duration::from_secs(15), connecting)
        .await
        .with_context(|| format!("the gateway at {addr} did not answer within 15 s"))?
    {
        Ok(conn) => conn,
        Err(quinn::ConnectionError::ConnectionClosed(c))
            if c.error_code == quinn::TransportErrorCode::CONNECTION_REFUSED =>
        {
            bail!(
                "the gateway at {addr} refused the connection: it is at its connection limit; try again later"
            )
        }
        Err(e) => {
            return Err(e).with_context(|| format!("cannot connect to the gateway at {addr}"));
        }
    };
    Ok(Link { conn, endpoint })
}

/// Opens the control stream and says hello; returns the stream halves.
pub async fn hello(
    conn: &quinn::Connection,
) -> anyhow::Result<(quinn::SendStream, quinn::RecvStream)> {
    let (mut send, mut recv) = conn.open_bi().await.map_err(|e| refused(conn, e))?;
    sekisho_protocol::write(
        &mut send,
        &ClientMessage::Hello {
            version: VERSION,
            client: format!("sekisho-client {}", env!("CARGO_PKG_VERSION")),
        },
    )
    .await
    .map_err(|e| refused(conn, e))?;
    match sekisho_protocol::read::<ServerMessage, _>(&mut recv).await {
        Ok(ServerMessage::Welcome { .. }) => Ok((send, recv)),
        Ok(ServerMessage::Denied { message, .. }) => bail!("{message}"),
        Ok(other) => bail!("unexpected answer from the gateway: {other:?}"),
        Err(e) => Err(refused(conn, e)),
    }
}

/// The gateway said no: its code (`mfa_required`, `no_request`, ...) and its reason.
#[derive(Debug)]
pub struct Denied {
    pub code: String,
    pub message: String,
}

impl std::fmt::Display for Denied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Denied {}

/// Asks for `service` of `target` on a stream (the control stream after hello, with the
/// account's one-time code if it has one; or a tunnel's new stream, without); a refusal is a
/// [`Denied`] carrying the gateway's code and reason.
pub async fn open(
    conn: &quinn::Connection,
    send: &mut quinn::SendStream,
    recv: &mut quinn::RecvStream,
    target: &str,
    service: Service,
    otp: Option<&str>,
) -> anyhow::Result<()> {
    sekisho_protocol::write(
        send,
        &ClientMessage::Open {
            target: target.to_owned(),
            service,
            otp: otp.map(|c| sekisho_protocol::Password(c.to_owned())),
        },
    )
    .await
    .map_err(|e| refused(conn, e))?;
    match sekisho_protocol::read::<ServerMessage, _>(recv)
        .await
        .map_err(|e| refused(conn, e))?
    {
        ServerMessage::Accepted => Ok(()),
        ServerMessage::Denied { code, message } => Err(Denied { code, message }.into()),
        other => bail!("unexpected answer from the gateway: {other:?}"),
    }
}

/// Why a session could not be opened.
pub enum Failure {
    /// The gateway answered no: final.
    Refused(anyhow::Error),
    /// No answer: perhaps the network, worth retrying.
    Unreachable(anyhow::Error),
}

/// The account's one-time code: given once on the command line (`--otp`, `SEKISHO_OTP`),
/// then asked for on the terminal whenever the gateway wants one.
pub struct OneTimeCode(std::sync::Mutex<Option<String>>);

impl OneTimeCode {
    pub fn new(given: Option<String>) -> Self {
        Self(std::sync::Mutex::new(
            given.filter(|c| !c.trim().is_empty()),
        ))
    }

    /// The given code, once.
    fn take(&self) -> Option<String> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Codes asked for on the terminal per session start.
const CODE_PROMPTS: u32 = 3;

/// Asks the engineer for the code on the terminal (not echoed).
fn ask_code() -> anyhow::Result<String> {
    let code = rpassword::prompt_password("Sekisho ワンタイムコード / one-time code: ").context(
        "this account needs its one-time code and there is no terminal to ask on: pass --otp CODE (or set SEKISHO_OTP)",
    )?;
    Ok(code.trim().to_owned())
}

/// A session open on its control stream.
pub struct Opened {
    pub link: Link,
    pub send: quinn::SendStream,
    pub recv: quinn::RecvStream,
}

/// Connects, says hello and opens `service` on `target`. When the gateway wants the
/// account's one-time code, the code given once is sent; without one (or after a wrong one
/// typed here) the engineer is asked on the terminal, up to three times.
pub async fn open_session(
    gateway: &str,
    fingerprint: &str,
    identity: &(dyn Fn() -> anyhow::Result<Identity> + Send + Sync),
    target: &str,
    service: Service,
    codes: &OneTimeCode,
) -> Result<Opened, Failure> {
    let mut code = codes.take();
    let given = code.is_some();
    let mut asked = 0;
    loop {
        let link = connect(
            gateway,
            fingerprint,
            Some(identity().map_err(Failure::Refused)?),
        )
        .await
        .map_err(Failure::Unreachable)?;
        let attempt = async {
            let (mut send, mut recv) = hello(&link.conn).await?;
            open(
                &link.conn,
                &mut send,
                &mut recv,
                target,
                service,
                code.as_deref(),
            )
            .await?;
            anyhow::Ok((send, recv))
        };
        let e = match attempt.await {
            Ok((send, recv)) => return Ok(Opened { link, send, recv }),
            Err(e) => e,
        };
        link.close("refused").await;
        let denied = e.downcast_ref::<Denied>().map(|d| d.code.as_str());
        let ask = match denied {
            Some("mfa_required") => !given || asked > 0,
            Some("wrong_one_time_code" | "one_time_code_replayed") => asked > 0,
            _ => false,
        };
        if !ask || asked >= CODE_PROMPTS {
            return Err(Failure::Refused(e));
        }
        if denied != Some("mfa_required") {
            eprintln!("sekisho-client: {e}");
        }
        code = Some(ask_code().map_err(Failure::Refused)?);
        asked += 1;
    }
}

/// A readable reason when the gateway closed the connection (e.g. refused our certificate).
pub fn refused(conn: &quinn::Connection, e: impl std::fmt::Display) -> anyhow::Error {
    // A refused certificate shows in the close reason or, when the failure surfaced first
    // in a read or write, in that error.
    let seen = conn
        .close_reason()
        .map(|r| r.to_string())
        .into_iter()
        .chain(std::iter::once(e.to_string()));
    if let Some(r) = seen.into_iter().find_map(|text| CertRefusal::find(&text)) {
        return anyhow::anyhow!("{}", explain(&r));
    }
    match conn.close_reason() {
        Some(quinn::ConnectionError::ApplicationClosed(c)) if !c.reason.is_empty() => {
            anyhow::anyhow!("{}", String::from_utf8_lossy(&c.reason))
        }
        Some(reason) => anyhow::anyhow!("the gateway closed the connection: {reason}"),
        None => anyhow::anyhow!("connection to the gateway failed: {e}"),
    }
}

/// What a vendor engineer should read when the gateway refuses our certificate.
fn explain(r: &CertRefusal) -> String {
    let what = match r.code.as_str() {
        "certificate_expired" => "it has expired",
        "certificate_unknown_issuer" => "it was not issued by this gateway's CA",
        _ => "it is not valid",
    };
    format!(
        "the gateway refused this client's certificate: {what} ({}). Ask the hospital for a new enrollment code and run `sekisho-client enroll` again",
        r.message
    )
}
