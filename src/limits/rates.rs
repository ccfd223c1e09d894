//! Request rates (docs/api.md "Rate limits"): every `/v1` call is held to a rate per client
//! address, checked before authentication so that a flood of bad tokens costs little, and
//! per AutoShares user, checked right after the link. They protect AutoShares and this
//! service from floods of reads, completions and unbinds. Counted in this process with
//! `governor`'s keyed GCRA (N replicas allow up to N times the rate); a refusal takes
//! nothing from the bind quotas. Keys idle long enough to be full again are dropped by
//! `evict_idle`, so a flood of distinct addresses holds memory only while it lasts.

use std::net::IpAddr;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota as Gcra};

use crate::client_address::ClientAddress;
use crate::config::Quota;
use crate::ids::AutosharesUserId;

use super::LimitError;

/// The two request rates; either may be off.
pub struct RequestRates {
    per_user: Option<DefaultKeyedRateLimiter<i64>>,
    per_client: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
}

impl RequestRates {
    /// `rate_limit.requests_per_user` and `rate_limit.requests_per_client`.
    pub fn new(per_user: Option<Quota>, per_client: Option<Quota>) -> Self {
        Self {
            per_user: per_user.map(|quota| DefaultKeyedRateLimiter::keyed(gcra(quota))),
            per_client: per_client.map(|quota| DefaultKeyedRateLimiter::keyed(gcra(quota))),
            clock: DefaultClock::default(),
        }
    }

    /// One request from `client` (its IPv4 address or IPv6 prefix), before authentication.
    pub fn admit_client(&self, client: ClientAddress) -> Result<(), LimitError> {
        admit(self.per_client.as_ref(), &client.group(), &self.clock)
    }

    /// One request of `user`, once the caller is linked.
    pub fn admit_user(&self, user: AutosharesUserId) -> Result<(), LimitError> {
        admit(self.per_user.as_ref(), &user.0, &self.clock)
    }

    /// Drops the keys whose rate is whole again (they would start from the same state).
    pub fn evict_idle(&self) {
        if let Some(limiter) = &self.per_user {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.per_client {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }

    /// How many keys are held, for the memory benchmark.
    pub fn keys(&self) -> usize {
        self.per_user.as_ref().map_or(0, |l| l.len())
            + self.per_client.as_ref().map_or(0, |l| l.len())
    }
}

fn gcra(quota: Quota) -> Gcra {
    // A refill interval of zero cannot come out of a parsed quota (at most 2^32 a second
    // gives a nanosecond or more); a burst of N refilled evenly over the period.
    Gcra::with_period(quota.refill_interval().max(Duration::from_nanos(1)))
        .expect("a refill interval is never zero")
        .allow_burst(quota.burst)
}

fn admit<K: std::hash::Hash + Eq + Clone>(
    limiter: Option<&DefaultKeyedRateLimiter<K>>,
    key: &K,
    clock: &DefaultClock,
) -> Result<(), LimitError> {
    let Some(limiter) = limiter else {
        return Ok(());
    };
    limiter
        .check_key(key)
        .map_err(|not_until| LimitError::TooManyRequests {
            retry_after: not_until.wait_time_from(clock.now()),
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client_address::TrustedProxies;

    fn client(text: &str) -> ClientAddress {
        TrustedProxies::default().client_of(text.parse().unwrap(), std::iter::empty())
    }

    #[test]
    fn each_key_has_its_own_burst_and_a_refusal_says_how_long_to_wait() {
        let rates = RequestRates::new(Quota::parse("2/minute").ok(), Quota::parse("3/hour").ok());
        let user = AutosharesUserId(7);
        assert!(rates.admit_user(user).is_ok());
        assert!(rates.admit_user(user).is_ok());
        let Err(LimitError::TooManyRequests { retry_after }) = rates.admit_user(user) else {
            panic!("the third request in a minute is refused");
        };
        assert!(retry_after > Duration::from_secs(20) && retry_after <= Duration::from_secs(30));
        assert!(
            rates.admit_user(AutosharesUserId(8)).is_ok(),
            "another user"
        );

        for _ in 0..3 {
            assert!(rates.admit_client(client("198.51.100.1")).is_ok());
        }
        assert!(rates.admit_client(client("198.51.100.1")).is_err());
        assert!(
            rates.admit_client(client("198.51.100.2")).is_ok(),
            "another client"
        );
    }

    #[test]
    fn an_off_rate_admits_everything() {
        let rates = RequestRates::new(None, None);
        for _ in 0..1000 {
            assert!(rates.admit_user(AutosharesUserId(1)).is_ok());
            assert!(rates.admit_client(client("198.51.100.1")).is_ok());
        }
        assert_eq!(rates.keys(), 0);
    }
}
