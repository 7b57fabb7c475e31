//! Serving the API and the web console: HTTPS by default (rustls), plain HTTP only when the
//! configuration asks for it and only on a loopback address.
//!
//! The certificate is the hospital's (`[api] tls_cert` / `tls_key`, PEM files, read again on
//! SIGHUP without dropping a connection) or, when none is configured, one the gateway makes
//! at its first start (`DATA_DIR/keys/api-tls.crt`, self-signed, for `localhost`, the
//! loopback addresses, the listen address and this machine's name), whose fingerprint the
//! banner prints so that the first visit can be checked.
//!
//! Every connection gets at most `[api] header_read_timeout_seconds` to finish its TLS
//! handshake and to send each request's headers: a slow, half-sent request is closed rather
//! than held open. HTTPS answers carry `Strict-Transport-Security`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use aws_lc_rs::digest::{SHA256, digest};
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

/// Why the HTTPS certificate could not be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} holds no usable {what}: {detail}")]
    Invalid {
        path: PathBuf,
        what: &'static str,
        detail: String,
    },
}

/// The certificate the HTTPS listener presents; replaced in place on reload.
#[derive(Debug)]
pub struct CertSource {
    current: RwLock<Arc<CertifiedKey>>,
    /// The files it came from, read again by [`CertSource::reload`].
    cert_path: PathBuf,
    key_path: PathBuf,
}

impl CertSource {
    /// Loads a certificate chain and its key from PEM files.
    pub fn load(cert_path: &Path, key_path: &Path) -> Result<Self, TlsError> {
        let key = read_certified_key(cert_path, key_path)?;
        Ok(Self {
            current: RwLock::new(Arc::new(key)),
            cert_path: cert_path.to_owned(),
            key_path: key_path.to_owned(),
        })
    }

    /// Reads the files again; on success new connections get the new certificate (open ones
    /// keep theirs). On failure the old one stays and the error is returned to be logged.
    pub fn reload(&self) -> Result<(), TlsError> {
        let key = read_certified_key(&self.cert_path, &self.key_path)?;
        let mut current = self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *current = Arc::new(key);
        Ok(())
    }

    fn get(&self) -> Arc<CertifiedKey> {
        self.current
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// `SHA256:` hex fingerprint of the certificate presented now (the leaf).
    pub fn fingerprint(&self) -> String {
        let key = self.get();
        key.cert
            .first()
            .map(|c| format!("SHA256:{}", hex::encode(digest(&SHA256, c.as_ref()))))
            .unwrap_or_default()
    }
}

impl ResolvesServerCert for CertSource {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.get())
    }
}

fn read_certified_key(cert_path: &Path, key_path: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let cert_pem = read(cert_path)?;
    let certs = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Invalid {
            path: cert_path.to_owned(),
            what: "certificate (PEM)",
            detail: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Invalid {
            path: cert_path.to_owned(),
            what: "certificate (PEM)",
            detail: "no CERTIFICATE block".into(),
        });
    }
    let key_pem = read(key_path)?;
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::Invalid {
        path: key_path.to_owned(),
        what: "private key (PEM)",
        detail: e.to_string(),
    })?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).map_err(|e| {
        TlsError::Invalid {
            path: key_path.to_owned(),
            what: "private key",
            detail: e.to_string(),
        }
    })?;
    let certified = CertifiedKey::new(certs, signing);
    certified.keys_match().map_err(|e| TlsError::Invalid {
        path: key_path.to_owned(),
        what: "key for the certificate",
        detail: e.to_string(),
    })?;
    Ok(certified)
}

/// The rustls configuration of the HTTPS listener (TLS 1.2 and 1.3, HTTP/1.1).
pub fn server_config(certs: Arc<CertSource>) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| TlsError::Invalid {
        path: PathBuf::new(),
        what: "TLS configuration",
        detail: e.to_string(),
    })?
    .with_no_client_auth()
    .with_cert_resolver(certs);
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// What the listener needs besides its socket.
pub struct Listener {
    pub tls: Option<Arc<rustls::ServerConfig>>,
    pub max_connections: usize,
    /// For the TLS handshake and for each request's headers.
    pub header_timeout: Duration,
    pub grace: Duration,
}

/// Serves `app` on `listener` until `shutdown`; then open connections get `grace` to finish
/// what they are doing.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    options: Listener,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(options.max_connections.max(1)));
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let acceptor = options.tls.map(tokio_rustls::TlsAcceptor::from);
    let hsts = acceptor.is_some();
    loop {
        let (stream, peer) = tokio::select! {
            () = shutdown.cancelled() => break,
            r = listener.accept() => match r {
                Ok(x) => x,
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            tracing::warn!(peer = %peer, "http connection refused: at [server] max_connections");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let service = service(app.clone(), peer, hsts);
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(options.header_timeout)
            .keep_alive(true);
        let watcher = graceful.watcher();
        let acceptor = acceptor.clone();
        let header_timeout = options.header_timeout;
        tokio::spawn(async move {
            let _permit = permit;
            let result = match acceptor {
                Some(acceptor) => {
                    let tls =
                        match tokio::time::timeout(header_timeout, acceptor.accept(stream)).await {
                            Ok(Ok(tls)) => tls,
                            Ok(Err(e)) => {
                                tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                                return;
                            }
                            Err(_) => {
                                tracing::debug!(peer = %peer, "TLS handshake timed out");
                                return;
                            }
                        };
                    let conn = builder.serve_connection(TokioIo::new(tls), service);
                    watcher.watch(conn).await
                }
                None => {
                    let conn = builder.serve_connection(TokioIo::new(stream), service);
                    watcher.watch(conn).await
                }
            };
            if let Err(e) = result {
                tracing::debug!(peer = %peer, error = %e, "http connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(options.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("http connections did not finish within the grace period");
    }
    Ok(())
}

/// The per-connection service: the router, told the peer's address (as axum's
/// `ConnectInfo`), and HSTS on HTTPS answers.
fn service(
    app: axum::Router,
    peer: SocketAddr,
    hsts: bool,
) -> hyper_util::service::TowerToHyperService<
    impl tower::Service<
        hyper::Request<hyper::body::Incoming>,
        Response = axum::response::Response,
        Error = std::convert::Infallible,
        Future = impl Send,
    > + Clone,
> {
    let svc = tower::service_fn(move |mut req: hyper::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(ConnectInfo(peer));
        if hsts {
            req.extensions_mut().insert(axum::http::uri::Scheme::HTTPS);
        }
        let app = app.clone();
        // A refusal may come before the body was read (the access guard answers 401/403
        // without it); such a connection cannot be reused, and a client that does not know
        // it may send its next request into a closing connection. Say so.
        let has_body = req
            .headers()
            .contains_key(axum::http::header::CONTENT_LENGTH)
            || req
                .headers()
                .contains_key(axum::http::header::TRANSFER_ENCODING);
        async move {
            let mut response = app.oneshot(req.map(axum::body::Body::new)).await?;
            if has_body
                && (response.status().is_client_error() || response.status().is_server_error())
            {
                response.headers_mut().insert(
                    axum::http::header::CONNECTION,
                    axum::http::HeaderValue::from_static("close"),
                );
            }
            if hsts {
                response.headers_mut().insert(
                    axum::http::header::STRICT_TRANSPORT_SECURITY,
                    axum::http::HeaderValue::from_static("max-age=31536000"),
                );
            }
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    hyper_util::service::TowerToHyperService::new(svc)
}
