//! The one circuit for every call to AutoShares, logins included (docs/operations.md "The AutoShares client"):
//! consecutive failures open it; after the open period one trial call decides, and a trial
//! whose request went away before it ended is a failure, so the circuit never stays
//! half-open.

use std::sync::Mutex;
use std::time::{Duration, Instant};

#[derive(Debug)]
enum State {
    Closed {
        failures: u32,
    },
    Open {
        until: Instant,
    },
    /// One trial call is in flight; everyone else is refused until it ends.
    Trial,
}

/// What the circuit let through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admitted {
    Call,
    /// The one call that decides whether an open circuit closes.
    Trial,
}

/// Shared by all workers.
#[derive(Debug)]
pub struct Breaker {
    threshold: u32,
    open_for: Duration,
    state: Mutex<State>,
}

impl Breaker {
    pub fn new(threshold: u32, open_for: Duration) -> Self {
        Self {
            threshold,
            open_for,
            state: Mutex::new(State::Closed { failures: 0 }),
        }
    }

    /// Whether a call may be sent now, and whether it is the trial (`now` is an argument
    /// for tests).
    pub fn admit(&self, now: Instant) -> Option<Admitted> {
        let mut state = self.state.lock().expect("breaker lock poisoned");
        match *state {
            State::Closed { .. } => Some(Admitted::Call),
            State::Open { until } if now >= until => {
                *state = State::Trial;
                Some(Admitted::Trial)
            }
            State::Open { .. } | State::Trial => None,
        }
    }

    /// The trial's request went away before its call ended: that is a failure.
    pub fn trial_dropped(&self, now: Instant) {
        let mut state = self.state.lock().expect("breaker lock poisoned");
        if matches!(*state, State::Trial) {
            tracing::warn!(
                open_s = self.open_for.as_secs(),
                "autoshares circuit trial dropped; open again"
            );
            *state = State::Open {
                until: now + self.open_for,
            };
        }
    }

    /// Records how an admitted call ended.
    pub fn record(&self, success: bool, now: Instant) {
        let mut state = self.state.lock().expect("breaker lock poisoned");
        *state = match (&*state, success) {
            (_, true) => State::Closed { failures: 0 },
            (State::Closed { failures }, false) if failures + 1 < self.threshold => State::Closed {
                failures: failures + 1,
            },
            (State::Closed { .. } | State::Trial, false) => {
                tracing::warn!(
                    open_s = self.open_for.as_secs(),
                    "autoshares circuit opened"
                );
                State::Open {
                    until: now + self.open_for,
                }
            }
            (State::Open { until }, false) => State::Open { until: *until },
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_after_the_threshold_and_lets_one_trial_through() {
        let breaker = Breaker::new(3, Duration::from_secs(30));
        let t0 = Instant::now();
        for i in 0..3 {
            assert!(breaker.admit(t0).is_some(), "call {i} while closed");
            breaker.record(false, t0);
        }
        assert!(
            breaker.admit(t0).is_none(),
            "open right after the third failure"
        );
        let later = t0 + Duration::from_secs(30);
        assert!(breaker.admit(later).is_some(), "the trial call");
        assert!(breaker.admit(later).is_none(), "others wait for the trial");
        breaker.record(true, later);
        assert!(breaker.admit(later).is_some(), "closed after a good trial");
    }

    #[test]
    fn a_failed_trial_opens_it_again() {
        let breaker = Breaker::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        breaker.record(false, t0);
        let t1 = t0 + Duration::from_secs(10);
        assert!(breaker.admit(t1).is_some());
        breaker.record(false, t1);
        assert!(breaker.admit(t1 + Duration::from_secs(9)).is_none());
        assert!(breaker.admit(t1 + Duration::from_secs(10)).is_some());
    }

    #[test]
    fn a_dropped_trial_opens_it_again_instead_of_sticking() {
        let breaker = Breaker::new(1, Duration::from_secs(10));
        let t0 = Instant::now();
        breaker.record(false, t0);
        let t1 = t0 + Duration::from_secs(10);
        assert_eq!(breaker.admit(t1), Some(Admitted::Trial));
        breaker.trial_dropped(t1);
        assert_eq!(
            breaker.admit(t1 + Duration::from_secs(9)),
            None,
            "open again"
        );
        let t2 = t1 + Duration::from_secs(10);
        assert_eq!(breaker.admit(t2), Some(Admitted::Trial), "a new trial");
        breaker.record(true, t2);
        assert_eq!(breaker.admit(t2), Some(Admitted::Call), "closed");
    }

    #[test]
    fn a_success_resets_the_count() {
        let breaker = Breaker::new(2, Duration::from_secs(10));
        let t0 = Instant::now();
        breaker.record(false, t0);
        breaker.record(true, t0);
        breaker.record(false, t0);
        assert!(breaker.admit(t0).is_some(), "failures were not consecutive");
    }
}
