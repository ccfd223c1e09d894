//! Rate limits (docs/api.md, docs/configuration.md): binds per AutoShares user and per phone number, and
//! the life of a code attempt (taken, given back when AutoShares judged nothing, closed on
//! success). [`Limits`] is the one interface the handlers see;
//! the state lives in this process (`memory.rs`) or in Redis for all replicas (`redis.rs`).

mod gcra;
mod idempotency;
mod keyed_hash;
mod memory;
mod rates;
mod redis;
mod rules;
#[cfg(test)]
mod testing;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

pub use idempotency::{Records, StoredAnswer};
pub use keyed_hash::KeyedHash;
pub use memory::MemoryLimits;
pub use rates::RequestRates;
pub use redis::{RedisLimitError, RedisLimits};
pub use rules::{BindFacts, PER_USER, Policy, Scope, Taken};

use idempotency::Begun;
use keyed_hash::Digest;
use rules::Refusal;

use crate::client_address::ClientAddress;
use crate::config::{OnBackendError, RuleMode};
use crate::ids::AutosharesUserId;
use crate::metrics::{Declared, Metrics};
use crate::phone::PhoneNumber;
use crate::verification::{AttemptKey, Verification};

/// Every limit a refusal names, for `bff_rate_limit_rejections_total{limit}`.
const LIMITS: [&str; 4] = [
    rules::PER_USER,
    rules::PER_PHONE,
    rules::PER_CLIENT,
    rules::VERIFY_ATTEMPTS,
];
/// `bff_rate_limiter_errors_total{outcome}`: what a request was let do when Redis failed.
const DENIED: &str = "denied";
const ALLOWED: &str = "allowed";

/// What a code attempt may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attempt {
    Allowed,
    /// `rate_limit.verify_attempts` wrong codes were already sent.
    Exhausted,
    /// The token completed a binding.
    Used,
}

/// What an idempotent bind may do.
pub enum Idempotent {
    Fresh(IdempotencyGuard),
    Replay(StoredAnswer),
}

/// The in-flight record of a fresh idempotent bind. Store the answer when AutoShares
/// decided the bind; otherwise, or when the request goes away, the record is dropped and a
/// retry is a new bind.
pub struct IdempotencyGuard {
    record: Option<(Arc<Limits>, Digest, Digest)>,
}

impl IdempotencyGuard {
    /// A guard with no record: the backend could not answer and `on_backend_error` let
    /// the bind through.
    fn unrecorded() -> Self {
        Self { record: None }
    }

    /// Stores the answer of a bind AutoShares decided.
    pub async fn store(mut self, answer: &StoredAnswer) {
        if let Some((limits, name, fingerprint)) = self.record.take() {
            limits.finish_record(name, fingerprint, answer).await;
        }
    }

    /// Drops the record: AutoShares decided nothing.
    pub async fn abandon(mut self) {
        if let Some((limits, name, fingerprint)) = self.record.take() {
            limits.abandon_record(name, fingerprint).await;
        }
    }
}

impl Drop for IdempotencyGuard {
    fn drop(&mut self) {
        if let Some((limits, name, fingerprint)) = self.record.take() {
            // The request went away mid-bind (the client hung up): free the key.
            tokio::spawn(async move { limits.abandon_record(name, fingerprint).await });
        }
    }
}

/// What AutoShares made of a code, as far as the attempt count cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The code was right: the token is closed.
    Accepted,
    /// AutoShares judged the code wrong, or may have judged it (a 5xx, no answer in
    /// time): the attempt stays counted (docs/api.md).
    Counted,
    /// The code provably never reached AutoShares: the attempt is given back.
    NotSent,
}

/// One code attempt taken by [`Limits::attempt`], waiting for its [`Verdict`].
pub struct AttemptGuard<'a> {
    limits: &'a Limits,
    key: AttemptKey,
    keep: Duration,
}

impl AttemptGuard<'_> {
    /// Records the verdict. A lost refund or close is logged, not failed: the request's
    /// answer is already decided by then.
    pub async fn settle(self, verdict: Verdict) {
        let Self { limits, key, keep } = self;
        let what = match verdict {
            Verdict::Counted => return,
            Verdict::Accepted => "close a used verification token",
            Verdict::NotSent => "give back a code attempt",
        };
        let outcome = match &limits.backend {
            Backend::Memory(memory) => {
                match verdict {
                    Verdict::Accepted => memory.mark_used(key, keep),
                    _ => memory.refund_attempt(key, keep),
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

/// A user's bind quota as it stands (docs/api.md RateLimit fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserQuota {
    /// The quota's burst and period: `q` and `w`.
    pub limit: u32,
    pub window: Duration,
    /// Binds the user may still send now: `r`.
    pub remaining: u32,
    /// Until one more is available (zero while some are): `t`.
    pub reset: Duration,
}

/// An active breaker block, as operators see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockView {
    pub scope: Scope,
    /// `ES`, or `+3463595`.
    pub key: String,
    pub remaining: Duration,
}

/// The abuse rules' state (docs/api.md "The operations API" `GET /admin/v1/abuse`).
#[derive(Debug, Clone)]
pub struct AbuseView {
    pub rules: Vec<(&'static str, RuleMode)>,
    pub blocks: Vec<BlockView>,
    pub safe: Vec<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LimitError {
    #[error("limit {limit} reached")]
    Exceeded {
        limit: &'static str,
        retry_after: Duration,
    },
    #[error("SMS budget {rule} is spent")]
    BudgetExhausted {
        rule: &'static str,
        retry_after: Duration,
    },
    #[error("destination blocked by {rule}")]
    DestinationBlocked { rule: &'static str },
    #[error("the idempotency key was used with another number")]
    IdempotencyKeyReused,
    #[error("a bind with this idempotency key is in flight")]
    RequestInProgress,
    #[error("too many wrong codes for this verification token")]
    AttemptsExhausted { retry_after: Duration },
    #[error("the verification token already completed a binding")]
    TokenUsed,
    #[error("the limiter backend cannot answer")]
    Unavailable,
    #[error("request rate {retry_after:?} too high")]
    TooManyRequests { retry_after: Duration },
}

/// Where the limits keep their state.
#[allow(
    clippy::large_enum_variant,
    reason = "one backend per process, built once at start"
)]
pub enum Backend {
    Memory(MemoryLimits),
    Redis(RedisLimits),
}

/// The limiter every handler uses, whatever stores its state.
pub struct Limits {
    backend: Backend,
    policy: Policy,
    hash: KeyedHash,
    records: Records,
    on_backend_error: OnBackendError,
    verify_attempts: u32,
    metrics: Arc<Metrics>,
    /// When `bff_abuse_blocks` was last read from the backend.
    gauge_read_at: std::sync::Mutex<Option<std::time::Instant>>,
}

/// The longest `bff_abuse_blocks` may lag a new block by.
const GAUGE_EVERY: Duration = Duration::from_secs(1);

impl Limits {
    /// `on_backend_error` decides what a bind does when Redis cannot answer; code attempts
    /// are always refused then. `verify_attempts` wrong codes spend a verification token.
    /// Numbers are named in the backend by `hash` only; stored answers are sealed by
    /// `records`.
    pub fn new(
        backend: Backend,
        policy: Policy,
        hash: KeyedHash,
        records: Records,
        on_backend_error: OnBackendError,
        verify_attempts: u32,
        metrics: Arc<Metrics>,
    ) -> Self {
        metrics.declare(Declared::Rejections(&LIMITS));
        let rules: Vec<&'static str> = policy.rules().iter().map(|(rule, _)| *rule).collect();
        metrics.declare(Declared::AbuseRules(&rules));
        metrics.declare(Declared::AbuseScopes(&[
            Scope::Country.name(),
            Scope::Prefix.name(),
        ]));
        metrics.declare(Declared::LimiterErrors(&[DENIED, ALLOWED]));
        Self {
            backend,
            policy,
            hash,
            records,
            on_backend_error,
            verify_attempts,
            metrics,
            gauge_read_at: std::sync::Mutex::new(None),
        }
    }

    /// Admits one bind for `user` to `phone`: the quotas (docs/configuration.md) and the abuse rules (docs/abuse.md), all
    /// checked before any is taken, or says which refused and for how long.
    pub async fn admit_bind(
        &self,
        user: AutosharesUserId,
        phone: &PhoneNumber,
        client: ClientAddress,
    ) -> Result<Taken, LimitError> {
        let facts = BindFacts::new(user, phone, Some(client), &self.policy, &self.hash);
        let decision = match &self.backend {
            Backend::Memory(memory) => memory.admit_bind(&facts, &self.policy, memory.now()),
            Backend::Redis(redis) => match redis.admit_bind(&facts, &self.policy).await {
                Ok(decision) => decision,
                Err(error) => {
                    return self
                        .backend_failed(&error, self.on_backend_error)
                        .map(|()| Taken::default());
                }
            },
        };
        let country = facts.country.as_str();
        for rule in decision.shadowed {
            self.metrics.abuse_decision(rule, "shadow");
            tracing::warn!(rule, country, phone = %phone, "abuse rule would refuse");
        }
        let error = match decision.refusal {
            None => {
                self.metrics.sms_sent(country);
                return Ok(decision.taken);
            }
            Some(Refusal::Quota { limit, retry_after }) => {
                self.metrics.rejected(limit);
                tracing::info!(limit, "rate limit refused a bind");
                LimitError::Exceeded { limit, retry_after }
            }
            Some(Refusal::Budget { rule, retry_after }) => {
                self.metrics.abuse_decision(rule, "refused");
                tracing::warn!(rule, country, "sms budget refused a bind");
                LimitError::BudgetExhausted { rule, retry_after }
            }
            Some(Refusal::Blocked { rule }) => {
                self.metrics.abuse_decision(rule, "refused");
                tracing::warn!(rule, country, phone = %phone, "destination blocked");
                // Only a breaker refusal can have started a block; during an attack most
                // binds are refused, so the gauge is read again at most once a second.
                if self.gauge_due() {
                    self.refresh_block_gauge().await;
                }
                LimitError::DestinationBlocked { rule }
            }
        };
        Err(error)
    }

    /// Gives back everything an admitted bind `taken` when its call provably never reached
    /// AutoShares (docs/abuse.md): its quotas, its budget units and its send in the
    /// breaker's windows, so that an outage spends nobody's quota and trips no breaker. A
    /// failure to give back is logged: the answer is decided by then.
    pub async fn give_back(
        &self,
        user: AutosharesUserId,
        phone: &PhoneNumber,
        client: ClientAddress,
        taken: Taken,
    ) {
        if taken == Taken::default() {
            return;
        }
        let facts = BindFacts::new(user, phone, Some(client), &self.policy, &self.hash);
        match &self.backend {
            Backend::Memory(memory) => memory.give_back(&facts, &self.policy, taken),
            Backend::Redis(redis) => {
                if let Err(error) = redis.give_back(&facts, &self.policy, taken).await {
                    tracing::warn!(error = %error, "could not give back an unsent bind's limits");
                }
            }
        }
    }

    /// Looks up the bind `user` makes to `phone` with `Idempotency-Key` `key` (docs/api.md
    /// "Idempotency"): a fresh bind goes ahead holding the returned guard; the same key
    /// and number answered before is replayed; in flight, or with another number, refused.
    pub async fn begin_idempotent(
        self: &Arc<Self>,
        user: AutosharesUserId,
        key: &str,
        phone: &PhoneNumber,
    ) -> Result<Idempotent, LimitError> {
        let name = self.records.name(user, key);
        let fingerprint = self.hash.digest("phone", phone.as_e164());
        let record = match &self.backend {
            Backend::Memory(memory) => memory.begin_record(name, fingerprint),
            Backend::Redis(redis) => match redis.begin_record(&name, &fingerprint).await {
                Ok(record) => record,
                Err(error) => {
                    self.backend_failed(&error, self.on_backend_error)?;
                    return Ok(Idempotent::Fresh(IdempotencyGuard::unrecorded()));
                }
            },
        };
        match self.records.judge(&name, &fingerprint, record) {
            Begun::Fresh => Ok(Idempotent::Fresh(IdempotencyGuard {
                record: Some((Arc::clone(self), name, fingerprint)),
            })),
            Begun::Replay(answer) => Ok(Idempotent::Replay(answer)),
            Begun::InProgress => Err(LimitError::RequestInProgress),
            Begun::Reused => Err(LimitError::IdempotencyKeyReused),
        }
    }

    async fn finish_record(&self, name: Digest, fingerprint: Digest, answer: &StoredAnswer) {
        let sealed = self.records.seal(&name, &fingerprint, answer);
        let ttl = self.policy.idempotency_ttl;
        match &self.backend {
            Backend::Memory(memory) => memory.finish_record(name, sealed, ttl),
            Backend::Redis(redis) => {
                if let Err(error) = redis.finish_record(&name, sealed, ttl).await {
                    // The bind is answered; a retry of it is then a new bind.
                    tracing::warn!(error = %error, "could not store an idempotent answer");
                }
            }
        }
    }

    async fn abandon_record(&self, name: Digest, fingerprint: Digest) {
        match &self.backend {
            Backend::Memory(memory) => memory.abandon_record(name, fingerprint),
            Backend::Redis(redis) => {
                if let Err(error) = redis.abandon_record(&name, &fingerprint).await {
                    tracing::warn!(error = %error, "could not clear an idempotency marker");
                }
            }
        }
    }

    /// `user`'s bind quota now; `None` when the shared backend cannot say.
    pub async fn user_quota(&self, user: AutosharesUserId) -> Option<UserQuota> {
        let (tat, now) = match &self.backend {
            Backend::Memory(memory) => (memory.user_tat(user.0), memory.now()),
            Backend::Redis(redis) => redis.user_quota(user).await.ok()?,
        };
        let quota = &self.policy.per_user;
        let (remaining, reset) = gcra::remaining(tat, now, quota);
        Some(UserQuota {
            limit: quota.burst.get(),
            window: quota.period,
            remaining,
            reset,
        })
    }

    /// Counts a completed binding of `phone` for the pumping breaker.
    pub async fn record_completion(&self, user: AutosharesUserId, phone: &PhoneNumber) {
        let facts = BindFacts::new(user, phone, None, &self.policy, &self.hash);
        self.metrics.binding_completed(facts.country.as_str());
        if self.policy.abuse.conversion.mode == RuleMode::Off {
            return;
        }
        let window = self.policy.abuse.conversion.window;
        match &self.backend {
            Backend::Memory(memory) => memory.record_completion(&facts, memory.now(), window),
            Backend::Redis(redis) => {
                if let Err(error) = redis.record_completion(&facts, &self.policy).await {
                    tracing::warn!(error = %error, "could not count a completed binding");
                }
            }
        }
    }

    /// The rules, active blocks and safe-list, as every replica sees them.
    pub async fn abuse_view(&self) -> Result<AbuseView, LimitError> {
        let (blocks, safe) = match &self.backend {
            Backend::Memory(memory) => (memory.blocks(memory.now()), memory.safe_list()),
            Backend::Redis(redis) => redis
                .abuse_state(&self.policy)
                .await
                .map_err(|error| self.admin_failed(&error))?,
        };
        Ok(AbuseView {
            rules: self.policy.rules(),
            blocks,
            safe,
        })
    }

    /// Lifts a block; `false` when there was none.
    pub async fn lift_block(&self, scope: Scope, key: &str) -> Result<bool, LimitError> {
        let lifted = match &self.backend {
            Backend::Memory(memory) => memory.lift_block(scope, key, memory.now()),
            Backend::Redis(redis) => redis
                .lift_block(scope, key, &self.hash, &self.policy)
                .await
                .map_err(|error| self.admin_failed(&error))?,
        };
        self.refresh_block_gauge().await;
        Ok(lifted)
    }

    /// Adds (`true`) or removes an entry of the safe-list; answers whether it changed.
    pub async fn set_safe(&self, entry: &str, safe: bool) -> Result<bool, LimitError> {
        match &self.backend {
            Backend::Memory(memory) if safe => {
                memory.add_safe(entry);
                Ok(true)
            }
            Backend::Memory(memory) => Ok(memory.remove_safe(entry)),
            Backend::Redis(redis) => redis
                .set_safe(
                    entry,
                    &keyed_hash::encoded(&self.hash.digest("safe", entry)),
                    safe,
                )
                .await
                .map_err(|error| self.admin_failed(&error)),
        }
    }

    /// Whether a second has passed since the block gauge was last read (and claims it).
    fn gauge_due(&self) -> bool {
        let mut last = self.gauge_read_at.lock().expect("gauge lock poisoned");
        let now = std::time::Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < GAUGE_EVERY) {
            return false;
        }
        *last = Some(now);
        true
    }

    async fn refresh_block_gauge(&self) {
        if let Ok(view) = self.abuse_view().await {
            for scope in [Scope::Country, Scope::Prefix] {
                let count = view.blocks.iter().filter(|b| b.scope == scope).count();
                self.metrics.abuse_blocks(scope.name(), count);
            }
        }
    }

    fn admin_failed(&self, error: &RedisLimitError) -> LimitError {
        tracing::warn!(error = %error, "rate limiter unavailable for an abuse admin call");
        LimitError::Unavailable
    }

    /// Takes one code attempt for `verification` at `now` (docs/api.md): refused once
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
            Backend::Memory(memory) => memory.begin_attempt(key, max, keep),
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
                self.metrics.rejected(rules::VERIFY_ATTEMPTS);
                Err(LimitError::AttemptsExhausted { retry_after: keep })
            }
            Attempt::Used => Err(LimitError::TokenUsed),
        }
    }

    /// `None` when no shared backend is used, else whether a bind could be decided now,
    /// with the reason when not.
    pub async fn check_ready(&self) -> Option<Result<(), RedisLimitError>> {
        match &self.backend {
            Backend::Memory(_) => None,
            Backend::Redis(redis) => Some(redis.check_ready().await),
        }
    }

    /// Drops state nobody needs any more; Redis expires its keys itself.
    pub fn evict_idle(&self) {
        if let Backend::Memory(memory) = &self.backend {
            memory.evict_idle(self.policy.abuse.conversion.window);
        }
    }

    fn backend_failed(
        &self,
        error: &RedisLimitError,
        policy: OnBackendError,
    ) -> Result<(), LimitError> {
        match policy {
            OnBackendError::Deny => {
                self.metrics.limiter_error(DENIED);
                tracing::warn!(error = %error, "rate limiter unavailable; request denied");
                Err(LimitError::Unavailable)
            }
            OnBackendError::Allow => {
                self.metrics.limiter_error(ALLOWED);
                tracing::warn!(error = %error, "rate limiter unavailable; request allowed by rate_limit.on_backend_error");
                Ok(())
            }
        }
    }
}
