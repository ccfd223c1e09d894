//! Keys from a JWKS URL or file (docs/configuration.md `auth.jwks_url`): refreshed on a timer
//! and when a token names an unknown `kid` (at most once per 10 s for all kids). The last
//! good set is kept when a refresh fails or yields no usable key, and every key a refresh
//! skips is logged with its `kid` and why.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::keys::{KeySet, VerifyingKey};

/// The floor between two refetches caused by unknown `kid`s.
const UNKNOWN_KID_REFETCH_FLOOR: Duration = Duration::from_secs(10);
/// How long a JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest JWKS document read.
const MAX_JWKS_BYTES: usize = 256 * 1024;

#[derive(Clone)]
pub enum JwksSource {
    /// Fetched over HTTP(S) with these TLS settings (the usual roots and `auth.ca_file`).
    Url(String, Arc<rustls::ClientConfig>),
    File(PathBuf),
}

#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("jwks could not be fetched: {0}")]
    Fetch(String),
    #[error("jwks could not be read as a key set")]
    Parse,
    #[error("jwks holds no usable key")]
    NoUsableKey,
}

pub struct Jwks {
    source: JwksSource,
    current: RwLock<Option<Arc<KeySet>>>,
    last_unknown_kid_refetch: tokio::sync::Mutex<Option<Instant>>,
}

impl Jwks {
    pub fn new(source: JwksSource) -> Self {
        Self {
            source,
            current: RwLock::new(None),
            last_unknown_kid_refetch: tokio::sync::Mutex::new(None),
        }
    }

    /// Whether the key set in use holds at least one usable key.
    pub fn is_loaded(&self) -> bool {
        self.current
            .read()
            .expect("jwks lock poisoned")
            .as_ref()
            .is_some_and(|set| !set.is_empty())
    }

    /// The key for `kid`, refetching the set (throttled) when it is not known.
    pub async fn key_for(&self, kid: Option<&str>) -> Option<Arc<VerifyingKey>> {
        if let Some(key) = self.lookup(kid) {
            return Some(key);
        }
        {
            let mut last = self.last_unknown_kid_refetch.lock().await;
            if let Some(key) = self.lookup(kid) {
                return Some(key);
            }
            if last.is_some_and(|at| at.elapsed() < UNKNOWN_KID_REFETCH_FLOOR) {
                return None;
            }
            *last = Some(Instant::now());
            if let Err(error) = self.refresh().await {
                tracing::warn!(%error, "jwks refetch for an unknown kid failed");
            }
        }
        self.lookup(kid)
    }

    /// Fetches the set again; on failure the previous set stays in use.
    pub async fn refresh(&self) -> Result<(), JwksError> {
        let bytes = match &self.source {
            JwksSource::File(path) => tokio::fs::read(path)
                .await
                .map_err(|e| JwksError::Fetch(e.to_string()))?,
            JwksSource::Url(url, tls) => fetch(url, tls).await?,
        };
        let set = KeySet::parse(&bytes).map_err(|_| JwksError::Parse)?;
        for skipped in set.skipped() {
            let kid = skipped.kid.as_deref().unwrap_or("(none)");
            tracing::warn!(kid, reason = skipped.reason, "jwks key skipped");
        }
        if set.is_empty() {
            return Err(JwksError::NoUsableKey);
        }
        tracing::info!(keys = set.len(), "jwks loaded");
        *self.current.write().expect("jwks lock poisoned") = Some(Arc::new(set));
        Ok(())
    }

    fn lookup(&self, kid: Option<&str>) -> Option<Arc<VerifyingKey>> {
        let current = self.current.read().expect("jwks lock poisoned");
        current.as_ref()?.find(kid).cloned()
    }
}

/// The document at `url`, within [`FETCH_TIMEOUT`] from the connection to the last byte.
async fn fetch(url: &str, tls: &Arc<rustls::ClientConfig>) -> Result<Vec<u8>, JwksError> {
    let fetching = async {
        let client = crate::net::http_client(FETCH_TIMEOUT, tls, 1);
        let mut response = client
            .get(url)
            .send()
            .await
            .map_err(|e| JwksError::Fetch(e.to_string()))?;
        if !response.status().is_success() {
            return Err(JwksError::Fetch(format!("status {}", response.status())));
        }
        let body = response
            .body()
            .limit(MAX_JWKS_BYTES)
            .await
            .map_err(|e| JwksError::Fetch(e.to_string()))?;
        Ok(body.to_vec())
    };
    tokio::time::timeout(FETCH_TIMEOUT, fetching)
        .await
        .map_err(|_| JwksError::Fetch("timed out".to_owned()))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[actix_web::test]
    async fn a_fetch_from_a_server_that_never_answers_ends_at_its_bound() {
        // Bound but never accepted: the connection is made, and no answer ever comes.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/jwks.json", silent.local_addr().unwrap());
        let tls = crate::net::tls_config(None).unwrap();
        let result = fetch(&url, &tls).await;
        assert!(
            matches!(&result, Err(JwksError::Fetch(reason)) if reason == "timed out"),
            "{result:?}"
        );
    }
}
