//! Outbound HTTP clients: one `awc::Client` per worker thread, with TLS roots, connection
//! reuse and a request timeout. Used by `upstream` (AutoShares) and `auth` (JWKS).
//!
//! Calls are pinned to HTTP/1.1 (ALPN offers nothing else): the HTTP/2 client logs whole
//! request heads at trace level, which would put `Et-App-Key`, the service bearer and the
//! login password in the log (docs/operations.md "Logs").

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::header::HeaderName;
use rustls::{ClientConfig, RootCertStore};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject;

/// The header that carries a request's id: read from callers, answered to them, and sent
/// with each call made for them.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// Why the TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("upstream.ca_file cannot be read as PEM certificates")]
    CaFile,
    #[error("TLS cannot be set up")]
    Setup,
}

/// Makes aws-lc-rs the process's TLS provider, for the clients that build their own TLS
/// settings (Redis's). Idempotent.
pub fn install_crypto_provider() {
    // An error means a provider is installed already: the same one, by an earlier call.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
}

/// The TLS client settings: webpki's roots, plus the certificates of `ca_file`.
pub fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, TlsError> {
    let mut roots = RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = ca_file {
        let certificates: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .map_err(|_| TlsError::CaFile)?
            .collect::<Result<_, _>>()
            .map_err(|_| TlsError::CaFile)?;
        if certificates.is_empty() {
            return Err(TlsError::CaFile);
        }
        for certificate in certificates {
            roots.add(certificate).map_err(|_| TlsError::CaFile)?;
        }
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|_| TlsError::Setup)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A client that gives up on a new connection after `connect_timeout`, with at most
/// `limit` connections. Its requests carry no timer of the client's: each caller bounds
/// its whole call, answer and body included, under one deadline, which a timer set by
/// the client on every request would only repeat.
pub fn http_client(
    connect_timeout: Duration,
    tls: &Arc<ClientConfig>,
    limit: usize,
) -> awc::Client {
    let connector = awc::Connector::new()
        .rustls_0_23(Arc::clone(tls))
        .timeout(connect_timeout)
        .conn_keep_alive(Duration::from_secs(30))
        .limit(limit);
    awc::Client::builder()
        .connector(connector)
        .disable_timeout()
        .disable_redirects()
        .finish()
}
