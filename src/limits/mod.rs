//! Rate limits (CONTRACT.md §2, §6): binds per AutoShares user and per phone number, and
//! wrong codes per verification token. [`Limits`] is the one interface the handlers see;
//! the state lives in this process (`memory.rs`) or in Redis for all replicas (`redis.rs`).

mod memory;
mod quota;
mod redis;

use std::sync::Arc;
use std::time::Duration;

pub use memory::MemoryLimits;
pub use quota::{Quota, QuotaError};
pub use redis::{RedisLimitError, RedisLimits};

use crate::config::OnBackendError;
use crate::metrics::Metrics;
use crate::phone::PhoneNumber;
use crate::upstream::AutosharesUserId;

/// What a code attempt may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Allowed,
    /// `rate_limit.verify_attempts` wrong codes were already sent.
    Exhausted,
    /// The token completed a binding.
    Used,
}

/// What a limit check decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    Allowed,
    Refused {
        /// The configuration key of the limit that refused.
        limit: &'static str,
        retry_after: Duration,
    },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("limit {limit} reached")]
    Exceeded {
        limit: &'static str,
        retry_after: Duration,
    },
    #[error("too many wrong codes for this verification token")]
    AttemptsExhausted { retry_after: Duration },
    #[error("the limiter backend cannot answer")]
    Unavailable,
}

/// Where the limits keep their state.
pub enum Backend {
    Memory(MemoryLimits),
    Redis(RedisLimits),
}

/// The limiter every handler uses, whatever stores its state.
pub struct Limits {
    backend: Backend,
    on_backend_error: OnBackendError,
    metrics: Arc<Metrics>,
}

impl Limits {
    /// `on_backend_error` decides what a bind does when Redis cannot answer; code attempts
    /// are always refused then, since an open counter would allow guessing codes.
    pub fn new(backend: Backend, on_backend_error: OnBackendError, metrics: Arc<Metrics>) -> Self {
        Self {
            backend,
            on_backend_error,
            metrics,
        }
    }

    /// Admits one bind for `user` to `phone`, or says which limit refused and for how long.
    pub async fn admit_bind(
        &self,
        user: AutosharesUserId,
        phone: &PhoneNumber,
    ) -> Result<(), LimitError> {
        let user_key = user.to_string();
        let admission = match &self.backend {
            Backend::Memory(memory) => memory.admit_bind(user_key, phone.as_e164()),
            Backend::Redis(redis) => match redis.admit_bind(&user_key, phone.as_e164()).await {
                Ok(admission) => admission,
                Err(error) => return self.backend_failed(&error, self.on_backend_error),
            },
        };
        match admission {
            Admission::Allowed => Ok(()),
            Admission::Refused { limit, retry_after } => {
                self.metrics.rejected(limit);
                tracing::info!(limit, "rate limit refused a bind");
                Err(LimitError::Exceeded { limit, retry_after })
            }
        }
    }

    /// Takes one code attempt for a verification token (named by `token_key`), refusing
    /// once `max` were taken or the token completed a binding.
    pub async fn begin_attempt(
        &self,
        token_key: &str,
        max: u32,
        keep: Duration,
    ) -> Result<Attempt, LimitError> {
        let attempt = match &self.backend {
            Backend::Memory(memory) => memory.begin_attempt(token_key, max, keep),
            Backend::Redis(redis) => match redis.begin_attempt(token_key, max, keep).await {
                Ok(attempt) => attempt,
                Err(error) => {
                    self.backend_failed(&error, OnBackendError::Deny)?;
                    return Err(LimitError::Unavailable);
                }
            },
        };
        if attempt == Attempt::Exhausted {
            self.metrics.rejected("verify_attempts");
        }
        Ok(attempt)
    }

    /// Returns an attempt whose code AutoShares never judged.
    pub async fn refund_attempt(&self, token_key: &str, keep: Duration) -> Result<(), LimitError> {
        match &self.backend {
            Backend::Memory(memory) => memory.refund_attempt(token_key, keep),
            Backend::Redis(redis) => {
                if let Err(error) = redis.refund_attempt(token_key, keep).await {
                    // Losing a refund costs the user one attempt; the request failed anyway.
                    tracing::warn!(error = %error, "could not give back a code attempt");
                }
            }
        }
        Ok(())
    }

    /// Closes a token that completed its binding.
    pub async fn mark_used(&self, token_key: &str, keep: Duration) -> Result<(), LimitError> {
        match &self.backend {
            Backend::Memory(memory) => memory.mark_used(token_key, keep),
            Backend::Redis(redis) => {
                if let Err(error) = redis.mark_used(token_key, keep).await {
                    // AutoShares already answered Active; a replay now only repeats that.
                    tracing::warn!(error = %error, "could not close a used verification token");
                }
            }
        }
        Ok(())
    }

    /// `None` when no shared backend is used, else whether it answers.
    pub async fn ping(&self) -> Option<bool> {
        match &self.backend {
            Backend::Memory(_) => None,
            Backend::Redis(redis) => Some(redis.ping().await.is_ok()),
        }
    }

    /// Drops state nobody needs any more; Redis expires its keys itself.
    pub fn evict_idle(&self) {
        if let Backend::Memory(memory) = &self.backend {
            memory.evict_idle();
        }
    }

    fn backend_failed(
        &self,
        error: &RedisLimitError,
        policy: OnBackendError,
    ) -> Result<(), LimitError> {
        match policy {
            OnBackendError::Deny => {
                self.metrics.limiter_error("denied");
                tracing::warn!(error = %error, "rate limiter unavailable; request denied");
                Err(LimitError::Unavailable)
            }
            OnBackendError::Allow => {
                self.metrics.limiter_error("allowed");
                tracing::warn!(error = %error, "rate limiter unavailable; request allowed by rate_limit.on_backend_error");
                Ok(())
            }
        }
    }
}
