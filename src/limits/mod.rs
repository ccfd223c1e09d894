//! Rate limits (CONTRACT.md §2, §6): binds per AutoShares user and per phone number, and
//! the life of a code attempt (taken, given back when AutoShares judged nothing, closed on
//! success). [`Limits`] is the one interface the handlers see;
//! the state lives in this process (`memory.rs`) or in Redis for all replicas (`redis.rs`).

mod memory;
mod redis;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use memory::MemoryLimits;
pub use redis::{RedisLimitError, RedisLimits};

use crate::config::OnBackendError;
use crate::ids::AutosharesUserId;
use crate::metrics::Metrics;
use crate::phone::PhoneNumber;
use crate::verification::Verification;

/// What a code attempt may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Allowed,
    /// `rate_limit.verify_attempts` wrong codes were already sent.
    Exhausted,
    /// The token completed a binding.
    Used,
}

/// What AutoShares made of a code, as far as the attempt count cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The code was right: the token is closed.
    Accepted,
    /// AutoShares judged the code wrong: the attempt stays counted.
    Refused,
    /// AutoShares judged nothing: the attempt is given back.
    Unjudged,
}

/// One code attempt taken by [`Limits::attempt`], waiting for its [`Verdict`].
pub struct AttemptGuard<'a> {
    limits: &'a Limits,
    key: String,
    keep: Duration,
}

impl AttemptGuard<'_> {
    /// Records the verdict. A lost refund or close is logged, not failed: the request's
    /// answer is already decided by then.
    pub async fn settle(self, verdict: Verdict) {
        let Self { limits, key, keep } = self;
        let what = match verdict {
            Verdict::Refused => return,
            Verdict::Accepted => "close a used verification token",
            Verdict::Unjudged => "give back a code attempt",
        };
        let outcome = match &limits.backend {
            Backend::Memory(memory) => {
                match verdict {
                    Verdict::Accepted => memory.mark_used(&key, keep),
                    _ => memory.refund_attempt(&key, keep),
                }
                Ok(())
            }
            Backend::Redis(redis) => match verdict {
                Verdict::Accepted => redis.mark_used(&key, keep).await,
                _ => redis.refund_attempt(&key, keep).await,
            },
        };
        if let Err(error) = outcome {
            tracing::warn!(error = %error, "could not {what}");
        }
    }
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
    #[error("the verification token already completed a binding")]
    TokenUsed,
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
    verify_attempts: u32,
    metrics: Arc<Metrics>,
}

impl Limits {
    /// `on_backend_error` decides what a bind does when Redis cannot answer; code attempts
    /// are always refused then. `verify_attempts` wrong codes spend a verification token.
    pub fn new(
        backend: Backend,
        on_backend_error: OnBackendError,
        verify_attempts: u32,
        metrics: Arc<Metrics>,
    ) -> Self {
        Self {
            backend,
            on_backend_error,
            verify_attempts,
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

    /// Takes one code attempt for `verification` at `now` (CONTRACT.md §2): refused once
    /// `rate_limit.verify_attempts` were counted, or once the token completed a binding.
    /// The guard must be settled with what AutoShares made of the code.
    pub async fn attempt(
        &self,
        verification: &Verification,
        now: SystemTime,
    ) -> Result<AttemptGuard<'_>, LimitError> {
        let key = verification.attempt_key();
        let keep = verification.remaining(now);
        let max = self.verify_attempts;
        let attempt = match &self.backend {
            Backend::Memory(memory) => memory.begin_attempt(&key, max, keep),
            Backend::Redis(redis) => match redis.begin_attempt(&key, max, keep).await {
                Ok(attempt) => attempt,
                Err(error) => {
                    // Code attempts fail closed whatever on_backend_error says: an open
                    // counter would allow guessing codes.
                    self.backend_failed(&error, OnBackendError::Deny)?;
                    return Err(LimitError::Unavailable);
                }
            },
        };
        match attempt {
            Attempt::Allowed => Ok(AttemptGuard {
                limits: self,
                key,
                keep,
            }),
            Attempt::Exhausted => {
                self.metrics.rejected("verify_attempts");
                Err(LimitError::AttemptsExhausted { retry_after: keep })
            }
            Attempt::Used => Err(LimitError::TokenUsed),
        }
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
