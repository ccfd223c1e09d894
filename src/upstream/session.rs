//! The AutoShares service token (CONTRACT.md §4): cached and shared by all workers; when
//! none is valid, one login serves every request waiting for it.

use std::future::Future;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use secrecy::SecretString;

use super::UpstreamError;

/// AutoShares tokens live 24 hours; renew an hour early.
const TOKEN_LIFETIME: Duration = Duration::from_secs(23 * 3600);

/// A service token as the session hands it out; compare by identity with `Arc::ptr_eq`.
pub type ServiceToken = Arc<SecretString>;

struct Cached {
    token: ServiceToken,
    fetched_at: Instant,
}

#[derive(Default)]
pub struct Session {
    cached: RwLock<Option<Cached>>,
    login_lock: tokio::sync::Mutex<()>,
}

impl Session {
    /// The cached token, or the result of `login` when there is none; concurrent callers
    /// wait for a single login.
    pub async fn token<F, Fut>(&self, login: F) -> Result<ServiceToken, UpstreamError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<SecretString, UpstreamError>>,
    {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let _one_login = self.login_lock.lock().await;
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        let token = Arc::new(login().await?);
        *self.cached.write().expect("session lock poisoned") = Some(Cached {
            token: Arc::clone(&token),
            fetched_at: Instant::now(),
        });
        Ok(token)
    }

    /// Forgets `stale` after AutoShares refused it, unless a newer token replaced it.
    pub fn invalidate(&self, stale: &ServiceToken) {
        let mut cached = self.cached.write().expect("session lock poisoned");
        if cached
            .as_ref()
            .is_some_and(|c| Arc::ptr_eq(&c.token, stale))
        {
            *cached = None;
        }
    }

    fn fresh(&self) -> Option<ServiceToken> {
        let cached = self.cached.read().expect("session lock poisoned");
        cached
            .as_ref()
            .filter(|c| c.fetched_at.elapsed() < TOKEN_LIFETIME)
            .map(|c| Arc::clone(&c.token))
    }
}
