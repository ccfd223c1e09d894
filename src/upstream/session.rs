//! The AutoShares service token (docs/operations.md "The AutoShares client"): cached and shared by all workers; when
//! none is valid, one login serves every request waiting for it. A failed login is shared
//! too: no new login is tried for 1 s, doubling while logins keep failing up to 60 s, and
//! requests in that time are refused at once (a wrong password must not lock the account).

use std::future::Future;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use awc::http::header::HeaderValue;

use super::UpstreamError;

/// AutoShares tokens live 24 hours; renew an hour early.
const TOKEN_LIFETIME: Duration = Duration::from_secs(23 * 3600);
/// The wait after a first failed login, and the most it grows to.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A service token as the session hands it out: the `Authorization` value of the calls
/// that carry it (`Bearer …`), made once at login rather than on each call, and marked
/// sensitive so that no header dump shows it. Compare by identity with `Arc::ptr_eq`.
pub type ServiceToken = Arc<HeaderValue>;

struct Cached {
    token: ServiceToken,
    fetched_at: Instant,
}

/// After a failed login: no new one before `until`; the next failure waits twice `last`.
#[derive(Clone, Copy)]
struct Backoff {
    until: Instant,
    last: Duration,
}

#[derive(Default)]
pub struct Session {
    cached: RwLock<Option<Cached>>,
    backoff: Mutex<Option<Backoff>>,
    login_lock: tokio::sync::Mutex<()>,
}

/// Marks a login failed unless it finished: a login dropped with its request (the
/// request's deadline passed) is a login with no answer in time.
struct LoginUnderway<'a> {
    session: &'a Session,
    finished: bool,
}

impl Drop for LoginUnderway<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.session.login_failed(Instant::now());
        }
    }
}

impl Session {
    /// The cached token, or the result of `login` when there is none; concurrent callers
    /// wait for a single login.
    pub async fn token<F, Fut>(&self, login: F) -> Result<ServiceToken, UpstreamError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<HeaderValue, UpstreamError>>,
    {
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        self.check_backoff()?;
        let _one_login = self.login_lock.lock().await;
        if let Some(token) = self.fresh() {
            return Ok(token);
        }
        // A login that failed while this request waited for the lock answers it too.
        self.check_backoff()?;
        let mut underway = LoginUnderway {
            session: self,
            finished: false,
        };
        let outcome = login().await;
        underway.finished = true;
        let token = match outcome {
            Ok(token) => Arc::new(token),
            Err(error) => {
                self.login_failed(Instant::now());
                return Err(error);
            }
        };
        *self.backoff.lock().expect("session lock poisoned") = None;
        *self.cached.write().expect("session lock poisoned") = Some(Cached {
            token: Arc::clone(&token),
            fetched_at: Instant::now(),
        });
        Ok(token)
    }

    /// Refuses at once while a failed login's backoff lasts.
    fn check_backoff(&self) -> Result<(), UpstreamError> {
        let backoff = *self.backoff.lock().expect("session lock poisoned");
        match backoff {
            Some(backoff) if Instant::now() < backoff.until => Err(UpstreamError::LoginRefused),
            _ => Ok(()),
        }
    }

    fn login_failed(&self, now: Instant) {
        let mut backoff = self.backoff.lock().expect("session lock poisoned");
        let wait = backoff.map_or(FIRST_BACKOFF, |b| (b.last * 2).min(MAX_BACKOFF));
        tracing::warn!(
            backoff_s = wait.as_secs(),
            "no new autoshares session before the backoff ends"
        );
        *backoff = Some(Backoff {
            until: now + wait,
            last: wait,
        });
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
