//! In-process limits for a single replica: GCRA quotas from `governor`, keyed by user id
//! and by phone number, plus wrong-code counts per verification token.
//!
//! Idle keys are evicted by [`MemoryLimits::evict_idle`], which `startup` runs on a timer.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::RateLimiter;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;

use crate::config::Quota;

use super::{Admission, Attempt};

type Keyed<C> =
    RateLimiter<String, DefaultKeyedStateStore<String>, C, NoOpMiddleware<<C as Clock>::Instant>>;

/// Per-user and per-phone quotas and per-token attempt counts, in this process only.
pub struct MemoryLimits<C: Clock + Clone = DefaultClock> {
    clock: C,
    per_user: Keyed<C>,
    per_phone: Keyed<C>,
    attempts: Mutex<HashMap<String, AttemptCount>>,
}

struct AttemptCount {
    count: u32,
    used: bool,
    forget_at: Instant,
}

impl MemoryLimits<DefaultClock> {
    pub fn new(per_user: Quota, per_phone: Quota) -> Self {
        Self::with_clock(per_user, per_phone, DefaultClock::default())
    }
}

impl<C: Clock + Clone> MemoryLimits<C> {
    /// Limits that read time from `clock`; tests pass a fake one.
    pub fn with_clock(per_user: Quota, per_phone: Quota, clock: C) -> Self {
        Self {
            per_user: RateLimiter::new(gcra(per_user), Default::default(), clock.clone()),
            per_phone: RateLimiter::new(gcra(per_phone), Default::default(), clock.clone()),
            clock,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one unit of `user_key`'s quota, then one of `phone_key`'s.
    ///
    /// The user's quota is checked first, so a caller over their own quota never uses up
    /// a number's; a unit taken from the user is not returned when the number's quota
    /// then refuses.
    pub fn admit_bind(
        &self,
        user_key: impl Into<String>,
        phone_key: impl Into<String>,
    ) -> Admission {
        if let Err(not_until) = self.per_user.check_key(&user_key.into()) {
            return Admission::Refused {
                limit: "bind_per_user",
                retry_after: not_until.wait_time_from(self.clock.now()),
            };
        }
        if let Err(not_until) = self.per_phone.check_key(&phone_key.into()) {
            return Admission::Refused {
                limit: "bind_per_phone",
                retry_after: not_until.wait_time_from(self.clock.now()),
            };
        }
        Admission::Allowed
    }

    /// Takes one attempt for `token_key` unless it is used or has had `max` already.
    /// The count is kept for `keep` (the token's remaining lifetime).
    pub fn begin_attempt(&self, token_key: &str, max: u32, keep: Duration) -> Attempt {
        self.with_attempts(token_key, keep, |entry| {
            if entry.used {
                Attempt::Used
            } else if entry.count >= max {
                Attempt::Exhausted
            } else {
                entry.count += 1;
                Attempt::Allowed
            }
        })
    }

    /// Gives back an attempt that AutoShares never judged (it failed or timed out).
    pub fn refund_attempt(&self, token_key: &str, keep: Duration) {
        self.with_attempts(token_key, keep, |entry| {
            entry.count = entry.count.saturating_sub(1);
        });
    }

    /// Marks `token_key` as having completed its binding: it cannot be used again.
    pub fn mark_used(&self, token_key: &str, keep: Duration) {
        self.with_attempts(token_key, keep, |entry| entry.used = true);
    }

    fn with_attempts<T>(
        &self,
        key: &str,
        keep: Duration,
        f: impl FnOnce(&mut AttemptCount) -> T,
    ) -> T {
        let now = Instant::now();
        let mut map = self.attempts.lock().expect("attempt map lock poisoned");
        let entry = map.entry(key.to_owned()).or_insert(AttemptCount {
            count: 0,
            used: false,
            forget_at: now + keep,
        });
        if entry.forget_at <= now {
            *entry = AttemptCount {
                count: 0,
                used: false,
                forget_at: now + keep,
            };
        }
        entry.forget_at = entry.forget_at.max(now + keep);
        f(entry)
    }

    /// Forgets keys whose quota is full again and counts past their lifetime.
    pub fn evict_idle(&self) {
        self.per_user.retain_recent();
        self.per_phone.retain_recent();
        self.per_user.shrink_to_fit();
        self.per_phone.shrink_to_fit();
        let now = Instant::now();
        let mut map = self.attempts.lock().expect("attempt map lock poisoned");
        map.retain(|_, entry| entry.forget_at > now);
        map.shrink_to_fit();
    }

    /// How many keys the quotas hold now.
    #[cfg(test)]
    fn tracked_keys(&self) -> usize {
        self.per_user.len() + self.per_phone.len()
    }
}

fn gcra(quota: Quota) -> governor::Quota {
    let burst = quota.burst;
    governor::Quota::with_period(quota.refill_interval())
        .unwrap_or_else(|| governor::Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst)
}

#[cfg(test)]
mod tests {
    use super::*;
    use governor::clock::FakeRelativeClock;

    fn limits(
        per_user: &str,
        per_phone: &str,
    ) -> (MemoryLimits<FakeRelativeClock>, FakeRelativeClock) {
        let clock = FakeRelativeClock::default();
        let limits = MemoryLimits::with_clock(
            Quota::parse(per_user).unwrap(),
            Quota::parse(per_phone).unwrap(),
            clock.clone(),
        );
        (limits, clock)
    }

    fn refused_after(admission: Admission) -> Duration {
        match admission {
            Admission::Refused { retry_after, .. } => retry_after,
            Admission::Allowed => panic!("expected a refusal"),
        }
    }

    #[test]
    fn a_full_burst_is_allowed_then_refused() {
        let (limits, _) = limits("3/hour", "100/day");
        for i in 0..3 {
            assert_eq!(
                limits.admit_bind("u1", format!("p{i}")),
                Admission::Allowed,
                "bind {i}"
            );
        }
        let wait = refused_after(limits.admit_bind("u1", "p9"));
        assert_eq!(
            wait,
            Duration::from_secs(1200),
            "one unit comes back after an hour / 3"
        );
    }

    #[test]
    fn quota_refills_evenly_over_the_period() {
        let (limits, clock) = limits("3/hour", "100/day");
        for i in 0..3 {
            limits.admit_bind("u1", format!("p{i}"));
        }
        clock.advance(Duration::from_secs(1199));
        assert_ne!(
            limits.admit_bind("u1", "p3"),
            Admission::Allowed,
            "not yet refilled"
        );
        clock.advance(Duration::from_secs(1));
        assert_eq!(
            limits.admit_bind("u1", "p3"),
            Admission::Allowed,
            "one unit back"
        );
        assert_ne!(
            limits.admit_bind("u1", "p4"),
            Admission::Allowed,
            "only one unit back"
        );
    }

    #[test]
    fn users_do_not_share_a_quota() {
        let (limits, _) = limits("1/hour", "100/day");
        assert_eq!(limits.admit_bind("u1", "p1"), Admission::Allowed);
        assert_ne!(limits.admit_bind("u1", "p2"), Admission::Allowed);
        assert_eq!(
            limits.admit_bind("u2", "p3"),
            Admission::Allowed,
            "another user"
        );
    }

    #[test]
    fn a_number_is_limited_across_users() {
        let (limits, _) = limits("100/hour", "2/day");
        assert_eq!(limits.admit_bind("u1", "p1"), Admission::Allowed);
        assert_eq!(limits.admit_bind("u2", "p1"), Admission::Allowed);
        match limits.admit_bind("u3", "p1") {
            Admission::Refused { limit, .. } => assert_eq!(limit, "bind_per_phone"),
            Admission::Allowed => panic!("third user on the same number was allowed"),
        }
    }

    #[test]
    fn idle_keys_are_evicted_once_their_quota_is_full_again() {
        let (limits, clock) = limits("2/minute", "2/minute");
        limits.admit_bind("u1", "p1");
        assert_eq!(limits.tracked_keys(), 2);
        clock.advance(Duration::from_secs(61));
        limits.evict_idle();
        assert_eq!(limits.tracked_keys(), 0);
    }

    #[test]
    fn attempts_are_counted_per_token_up_to_the_maximum() {
        let (limits, _) = limits("1/hour", "1/hour");
        let keep = Duration::from_secs(60);
        for i in 0..3 {
            assert_eq!(
                limits.begin_attempt("t1", 3, keep),
                Attempt::Allowed,
                "attempt {i}"
            );
        }
        assert_eq!(limits.begin_attempt("t1", 3, keep), Attempt::Exhausted);
        assert_eq!(
            limits.begin_attempt("t2", 3, keep),
            Attempt::Allowed,
            "another token"
        );
    }

    #[test]
    fn a_refunded_attempt_can_be_taken_again_and_a_used_token_is_closed() {
        let (limits, _) = limits("1/hour", "1/hour");
        let keep = Duration::from_secs(60);
        assert_eq!(limits.begin_attempt("t1", 1, keep), Attempt::Allowed);
        limits.refund_attempt("t1", keep);
        assert_eq!(limits.begin_attempt("t1", 1, keep), Attempt::Allowed);
        limits.mark_used("t1", keep);
        assert_eq!(limits.begin_attempt("t1", 1, keep), Attempt::Used);
    }
}
