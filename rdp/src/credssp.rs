//! NLA (CredSSP over TLS) toward the target with the injected credential, NTLM only: the
//! gateway has no Kerberos realm to reach, and a request for one fails closed.

use ironrdp_connector::credssp::CredsspSequence;
use ironrdp_connector::sspi::generator::NetworkRequest;
use ironrdp_connector::{ConnectorResult, Credentials, ServerName};
use ironrdp_pdu::nego::SecurityProtocol;
use ironrdp_tokio::{NetworkClient, TokioFramed};
use tokio::io::{AsyncRead, AsyncWrite};

use crate::RdpError;

/// Refuses every network request CredSSP makes (Kerberos KDC lookups).
struct NoNetwork;

impl NetworkClient for NoNetwork {
    async fn send(&mut self, request: &NetworkRequest) -> ConnectorResult<Vec<u8>> {
        tracing::warn!(url = %request.url, "CredSSP asked for a network request; refused");
        Err(ironrdp_connector::general_err!(
            "the gateway makes no network requests for NLA (Kerberos is not supported)"
        ))
    }
}

/// Authenticates to the target on `stream` (returned for the rest of the connection) (already TLS, the target's certificate already
/// checked: CredSSP hands the password to whoever holds that certificate's key).
/// `server_public_key` is the certificate's subjectPublicKey.
pub async fn authenticate<S>(
    stream: S,
    host: &str,
    protocol: SecurityProtocol,
    account: &crate::setup::Account<'_>,
    server_public_key: Vec<u8>,
) -> Result<S, RdpError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + Sync + 'static,
{
    let credentials = Credentials::UsernamePassword {
        username: account.username.to_owned(),
        password: account.password.to_owned(),
    };
    let (sequence, ts_request) = CredsspSequence::init(
        credentials,
        account.domain,
        protocol,
        ServerName::new(host),
        server_public_key,
        None,
    )
    .map_err(|e| RdpError::Credssp(e.to_string()))?;
    let mut framed = TokioFramed::new(stream);
    let mut buf = ironrdp_pdu::WriteBuf::new();
    ironrdp_tokio::perform_credssp(&mut framed, &mut NoNetwork, &mut buf, sequence, ts_request)
        .await
        .map_err(|e| RdpError::Credssp(e.to_string()))?;
    let (stream, leftover) = framed.into_inner();
    if !leftover.is_empty() {
        return Err(RdpError::protocol(
            "CredSSP",
            "the target sent data before the gateway's first message",
        ));
    }
    Ok(stream)
}
