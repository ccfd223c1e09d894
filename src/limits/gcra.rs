//! One step of the generic cell rate algorithm (GCRA) that every quota and budget uses
//! (docs/configuration.md): a burst of N, refilled evenly over the period. Time is a `Duration`
//! since any fixed origin, so the same arithmetic runs on this process's clock (memory) and
//! in the Redis script (on the server's clock).

use std::time::Duration;

use crate::config::Quota;

/// What one more unit of `quota` does to a key whose theoretical arrival time is `tat`
/// (`None`: a fresh key) at `now`: the new arrival time to store, or how long until a unit
/// is free. Nothing is stored here: the caller decides every key first, then takes all.
pub fn step(tat: Option<Duration>, now: Duration, quota: &Quota) -> Result<Duration, Duration> {
    let interval = quota.refill_interval();
    let tat = tat.map_or(now, |tat| tat.max(now));
    let new_tat = tat + interval;
    let allow_at = new_tat.saturating_sub(interval * quota.burst.get());
    if allow_at > now {
        Err(allow_at - now)
    } else {
        Ok(new_tat)
    }
}

/// How many units `quota` has free for a key at `tat`, and how long until one more is
/// (zero when some are free).
pub fn remaining(tat: Option<Duration>, now: Duration, quota: &Quota) -> (u32, Duration) {
    let interval = quota.refill_interval();
    let used = tat.map_or(Duration::ZERO, |tat| tat.saturating_sub(now));
    let burst = quota.burst.get();
    let taken = used.as_nanos().div_ceil(interval.as_nanos().max(1));
    let free = u128::from(burst).saturating_sub(taken) as u32;
    let wait = if free > 0 {
        Duration::ZERO
    } else {
        used.saturating_sub(interval * (burst - 1))
    };
    (free, wait)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(text: &str) -> Quota {
        Quota::parse(text).unwrap()
    }

    #[test]
    fn a_burst_passes_then_one_unit_comes_back_per_interval() {
        let q = quota("3/hour");
        let mut tat = None;
        let now = Duration::from_secs(1000);
        for i in 0..3 {
            tat = Some(step(tat, now, &q).unwrap_or_else(|_| panic!("unit {i}")));
        }
        assert_eq!(step(tat, now, &q), Err(Duration::from_secs(1200)), "full");
        let later = now + Duration::from_secs(1199);
        assert!(step(tat, later, &q).is_err(), "not yet refilled");
        let refilled = now + Duration::from_secs(1200);
        let next = step(tat, refilled, &q).expect("one unit back");
        assert!(
            step(Some(next), refilled, &q).is_err(),
            "only one unit back"
        );
    }

    #[test]
    fn remaining_counts_down_and_tells_the_wait() {
        let q = quota("5/hour");
        let now = Duration::from_secs(50);
        let mut tat = None;
        assert_eq!(remaining(tat, now, &q), (5, Duration::ZERO));
        for left in (0..5).rev() {
            tat = Some(step(tat, now, &q).unwrap());
            let (free, wait) = remaining(tat, now, &q);
            assert_eq!(free, left, "after a bind");
            if left == 0 {
                assert_eq!(wait, Duration::from_secs(720));
            }
        }
    }
}
