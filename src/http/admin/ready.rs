//! What `/readyz` says of each part, and the log line when a part goes down or comes
//! back: one at WARN with the reason when it goes down, one when it is back, not one per
//! probe (docs/operations.md "Readiness").

use std::collections::HashMap;
use std::sync::Mutex;

/// A part's state in one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Part {
    Ok,
    Down,
    /// Not configured: never makes the service unready.
    Unused,
}

impl Part {
    pub fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Down => "down",
            Self::Unused => "unused",
        }
    }

    pub fn is_ready(self) -> bool {
        self != Self::Down
    }
}

/// The last state `/readyz` saw of each part.
#[derive(Default)]
pub struct Readiness {
    last: Mutex<HashMap<&'static str, bool>>,
}

impl Readiness {
    /// The state of `part` from its probe (`None`: not configured), logged when it
    /// differs from the last probe's. A part starts up; one down at the first probe is
    /// logged too.
    pub fn part(&self, part: &'static str, probe: Option<Result<(), String>>) -> Part {
        let Some(outcome) = probe else {
            return Part::Unused;
        };
        let up = outcome.is_ok();
        let was_up = self
            .last
            .lock()
            .map(|mut last| last.insert(part, up))
            .unwrap_or(None)
            .unwrap_or(true);
        match (&outcome, was_up) {
            (Err(reason), true) => {
                tracing::warn!(part, reason = %reason, "readiness: {part} is down")
            }
            (Ok(()), false) => tracing::warn!(part, "readiness: {part} is back"),
            _ => {}
        }
        if up { Part::Ok } else { Part::Down }
    }
}
