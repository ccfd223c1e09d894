//! Rate limits (CONTRACT.md §2, §6): binds per AutoShares user and per phone number, and
//! wrong codes per verification token. [`Limits`] is the one interface the handlers see;
//! the memory backend lives in `memory.rs`.

mod memory;
mod quota;

use std::time::Duration;

pub use memory::MemoryLimits;
pub use quota::{Quota, QuotaError};

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

/// The limiter every handler uses, whatever stores its state.
pub enum Limits {
    Memory(MemoryLimits),
}

impl Limits {
    /// Admits one bind for `user` to `phone`, or says which limit refused and for how long.
    pub async fn admit_bind(
        &self,
        user: AutosharesUserId,
        phone: &PhoneNumber,
    ) -> Result<(), LimitError> {
        let admission = match self {
            Self::Memory(memory) => memory.admit_bind(&user.to_string(), phone.as_e164()),
        };
        match admission {
            Admission::Allowed => Ok(()),
            Admission::Refused { limit, retry_after } => {
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
        match self {
            Self::Memory(memory) => Ok(memory.begin_attempt(token_key, max, keep)),
        }
    }

    /// Returns an attempt whose code AutoShares never judged.
    pub async fn refund_attempt(&self, token_key: &str, keep: Duration) -> Result<(), LimitError> {
        match self {
            Self::Memory(memory) => memory.refund_attempt(token_key, keep),
        }
        Ok(())
    }

    /// Closes a token that completed its binding.
    pub async fn mark_used(&self, token_key: &str, keep: Duration) -> Result<(), LimitError> {
        match self {
            Self::Memory(memory) => memory.mark_used(token_key, keep),
        }
        Ok(())
    }

    /// Drops state nobody needs any more; a no-op where the store expires keys itself.
    pub fn evict_idle(&self) {
        match self {
            Self::Memory(memory) => memory.evict_idle(),
        }
    }
}
