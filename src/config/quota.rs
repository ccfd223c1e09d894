//! Quotas as the configuration writes them: `N/second|minute|hour|day`, a burst of N
//! refilled evenly over the period (docs/configuration.md).

use std::fmt;
use std::num::NonZeroU32;
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuotaError {
    #[error("must look like 5/hour (N/second|minute|hour|day)")]
    Shape,
    #[error("must allow at least one request")]
    Zero,
}

/// A burst of `burst` requests, refilled evenly over `period`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota {
    pub burst: NonZeroU32,
    pub period: Duration,
}

impl Quota {
    /// Parses `N/unit`; surrounding spaces are allowed.
    pub fn parse(text: &str) -> Result<Self, QuotaError> {
        let (count, unit) = text.trim().split_once('/').ok_or(QuotaError::Shape)?;
        let count: u32 = count.trim().parse().map_err(|_| QuotaError::Shape)?;
        let seconds = match unit.trim() {
            "second" => 1,
            "minute" => 60,
            "hour" => 3600,
            "day" => 86_400,
            _ => return Err(QuotaError::Shape),
        };
        Ok(Self {
            burst: NonZeroU32::new(count).ok_or(QuotaError::Zero)?,
            period: Duration::from_secs(seconds),
        })
    }

    /// The time one request's worth of quota takes to come back.
    pub fn refill_interval(&self) -> Duration {
        self.period / self.burst.get()
    }
}

impl fmt::Display for Quota {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}s", self.burst, self.period.as_secs())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_each_unit() {
        let cases = [
            ("5/hour", 5, 3600),
            ("10/day", 10, 86_400),
            (" 3 / minute ", 3, 60),
            ("1/second", 1, 1),
        ];
        for (text, burst, seconds) in cases {
            let quota = Quota::parse(text).unwrap();
            assert_eq!(quota.burst.get(), burst, "burst of {text}");
            assert_eq!(
                quota.period,
                Duration::from_secs(seconds),
                "period of {text}"
            );
        }
    }

    #[test]
    fn refuses_malformed_text() {
        let cases = [
            ("5", QuotaError::Shape),
            ("5/fortnight", QuotaError::Shape),
            ("five/hour", QuotaError::Shape),
            ("-1/hour", QuotaError::Shape),
            ("0/hour", QuotaError::Zero),
        ];
        for (text, expected) in cases {
            assert_eq!(Quota::parse(text), Err(expected), "{text}");
        }
    }

    #[test]
    fn refill_is_spread_evenly_over_the_period() {
        let quota = Quota::parse("5/hour").unwrap();
        assert_eq!(quota.refill_interval(), Duration::from_secs(720));
    }
}
