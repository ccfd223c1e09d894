//! Outbound HTTP clients: one `awc::Client` per worker thread, with TLS roots, connection
//! reuse and a request timeout. Used by `upstream` (AutoShares) and `auth` (JWKS).

use std::time::Duration;

/// A client whose every request gives up after `timeout`.
pub fn http_client(timeout: Duration) -> awc::Client {
    let connector = awc::Connector::new()
        .timeout(timeout)
        .conn_keep_alive(Duration::from_secs(30))
        .limit(256);
    awc::Client::builder()
        .connector(connector)
        .timeout(timeout)
        .disable_redirects()
        .finish()
}
