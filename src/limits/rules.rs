//! What a bind is decided on (docs/api.md order, docs/configuration.md quotas, docs/abuse.md abuse rules), shared by
//! both backends: the policy compiled from settings, the facts of one bind with every
//! number already a keyed hash, the answer, and the pumping breaker's arithmetic. No I/O;
//! time is an argument.

use std::time::Duration;

use crate::client_address::ClientAddress;
use crate::config::{AbuseSettings, Quota, RuleMode};
use crate::ids::AutosharesUserId;
use crate::phone::{Country, PhoneNumber};

use super::keyed_hash::{Digest, KeyedHash};

/// The limits by the names refusals, metrics and the RateLimit fields give them.
pub const PER_USER: &str = "bind_per_user";
pub const PER_PHONE: &str = "bind_per_phone";
pub const PER_CLIENT: &str = "bind_per_client";
pub const VERIFY_ATTEMPTS: &str = "verify_attempts";

/// A breaker block never lasts longer than this, however often it trips.
pub const MAX_BLOCK: Duration = Duration::from_secs(24 * 3600);

/// Every quota and rule of a bind.
#[derive(Debug, Clone)]
pub struct Policy {
    pub per_user: Quota,
    pub per_phone: Quota,
    /// Per client address (docs/operations.md "The client's address behind the ingress"); `None` when `off`.
    pub per_client: Option<Quota>,
    pub abuse: AbuseSettings,
    /// How long a stored idempotent answer is kept.
    pub idempotency_ttl: Duration,
}

impl Policy {
    /// The budget of `country`: its own row, else the `*` row.
    pub fn country_budget(&self, country: Country) -> Option<Quota> {
        let rows = &self.abuse.country_budgets;
        rows.iter()
            .find(|(code, _)| code == country.as_str())
            .or_else(|| rows.iter().find(|(code, _)| code == "*"))
            .map(|(_, quota)| *quota)
    }

    /// The budgets that apply to a bind, with the rule name each refuses under.
    pub fn budgets(&self, country: Country) -> [(Budget, Option<Quota>, RuleMode); 3] {
        let a = &self.abuse;
        [
            (Budget::Global, a.global_budget, a.global_mode),
            (
                Budget::Country,
                self.country_budget(country),
                a.country_mode,
            ),
            (Budget::Prefix, a.prefix_budget, a.prefix_mode),
        ]
    }

    /// The rules as `GET /admin/v1/abuse` lists them.
    pub fn rules(&self) -> Vec<(&'static str, RuleMode)> {
        let a = &self.abuse;
        let off_unless = |set: bool, mode: RuleMode| if set { mode } else { RuleMode::Off };
        vec![
            (
                Budget::Global.rule(),
                off_unless(a.global_budget.is_some(), a.global_mode),
            ),
            (
                Budget::Country.rule(),
                off_unless(!a.country_budgets.is_empty(), a.country_mode),
            ),
            (
                Budget::Prefix.rule(),
                off_unless(a.prefix_budget.is_some(), a.prefix_mode),
            ),
            (Scope::Country.rule(), a.conversion.mode),
            (Scope::Prefix.rule(), a.conversion.mode),
        ]
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Global,
    Country,
    Prefix,
}

impl Budget {
    pub fn rule(self) -> &'static str {
        match self {
            Self::Global => "global_budget",
            Self::Country => "country_budget",
            Self::Prefix => "prefix_budget",
        }
    }
}

/// Where the pumping breaker counts and blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    Country,
    Prefix,
}

impl Scope {
    pub fn rule(self) -> &'static str {
        match self {
            Self::Country => "conversion_country",
            Self::Prefix => "conversion_prefix",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Country => "country",
            Self::Prefix => "prefix",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "country" => Some(Self::Country),
            "prefix" => Some(Self::Prefix),
            _ => None,
        }
    }

    pub fn min_sends(self, abuse: &AbuseSettings) -> u32 {
        match self {
            Self::Country => abuse.conversion.min_sends_country,
            Self::Prefix => abuse.conversion.min_sends_prefix,
        }
    }
}

/// One bind as the backends see it.
pub struct BindFacts<'a> {
    pub user: AutosharesUserId,
    pub phone: &'a PhoneNumber,
    pub phone_digest: Digest,
    pub country: Country,
    /// E.164 less `abuse.prefix_drop_digits` digits; shown to operators, never a key.
    pub prefix: &'a str,
    pub prefix_digest: Digest,
    /// The client's quota group (an IPv4 address or IPv6 /64), when that quota is on.
    pub client_digest: Option<Digest>,
    /// Names any other number or prefix the backend needs to look up.
    pub hash: &'a KeyedHash,
}

impl<'a> BindFacts<'a> {
    pub fn new(
        user: AutosharesUserId,
        phone: &'a PhoneNumber,
        client: Option<ClientAddress>,
        policy: &Policy,
        hash: &'a KeyedHash,
    ) -> Self {
        let prefix = phone.prefix(policy.abuse.prefix_drop_digits);
        let client_digest = client
            .filter(|_| policy.per_client.is_some())
            .map(|client| hash.digest("client", &client.group_text()));
        Self {
            user,
            phone,
            phone_digest: hash.digest("phone", phone.as_e164()),
            country: phone.country(),
            prefix,
            prefix_digest: hash.digest("prefix", prefix),
            client_digest,
            hash,
        }
    }

    /// The key of a breaker scope as operators name it: `ES`, or `+3463595`.
    pub fn scope_key(&self, scope: Scope) -> &str {
        match scope {
            Scope::Country => self.country.as_str(),
            Scope::Prefix => self.prefix,
        }
    }
}

/// Why a bind was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// A bind quota (`bind_per_user`, `bind_per_phone`, `bind_per_client`).
    Quota {
        limit: &'static str,
        retry_after: Duration,
    },
    /// An SMS budget (docs/abuse.md) is spent.
    Budget {
        rule: &'static str,
        retry_after: Duration,
    },
    /// The breaker blocks the number's country or prefix.
    Blocked { rule: &'static str },
}

/// What a backend decided for one bind.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Decision {
    pub refusal: Option<Refusal>,
    /// Rules in shadow mode that would have refused this bind.
    pub shadowed: Vec<&'static str>,
    /// What an admitted bind took.
    pub taken: Taken,
}

/// What an admitted bind took, so that all of it can be given back when its call provably
/// never reached AutoShares (docs/abuse.md): a bit per quota and budget, and one for the
/// send counted in the breaker's windows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Taken(pub u8);

impl Taken {
    pub const USER: u8 = 1;
    pub const PHONE: u8 = 2;
    pub const CLIENT: u8 = 4;
    pub const GLOBAL: u8 = 8;
    pub const COUNTRY: u8 = 16;
    pub const PREFIX: u8 = 32;
    pub const SEND: u8 = 64;

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }

    /// The bit of a budget.
    pub fn of_budget(budget: Budget) -> u8 {
        match budget {
            Budget::Global => Self::GLOBAL,
            Budget::Country => Self::COUNTRY,
            Budget::Prefix => Self::PREFIX,
        }
    }
}

/// Whether a window of `sends` with `completions` trips the breaker.
pub fn trips(sends: u32, completions: u32, min_sends: u32, min_ratio: f64) -> bool {
    sends >= min_sends && f64::from(completions) < min_ratio * f64::from(sends)
}

/// How long a new block lasts: `base`, or twice the last one when the last trip was less
/// than 24 h before `now`, at most [`MAX_BLOCK`].
pub fn block_length(
    last_trip: Option<(Duration, Duration)>,
    now: Duration,
    base: Duration,
) -> Duration {
    match last_trip {
        Some((at, length)) if now.saturating_sub(at) < MAX_BLOCK => (length * 2).min(MAX_BLOCK),
        _ => base.min(MAX_BLOCK),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_conversion_trips_once_there_are_enough_sends() {
        let cases = [
            (9, 0, false, "too few sends"),
            (10, 0, true, "none completed"),
            (10, 1, true, "10 % completed"),
            (10, 2, false, "20 % is not below 0.2"),
            (100, 50, false, "half completed"),
        ];
        for (sends, completions, expected, what) in cases {
            assert_eq!(trips(sends, completions, 10, 0.2), expected, "{what}");
        }
    }

    #[test]
    fn a_repeat_trip_within_a_day_doubles_up_to_a_day() {
        let hour = Duration::from_secs(3600);
        let now = Duration::from_secs(100_000);
        assert_eq!(block_length(None, now, hour), hour, "first trip");
        assert_eq!(block_length(Some((now - hour, hour)), now, hour), hour * 2);
        assert_eq!(
            block_length(Some((now - hour, hour * 16)), now, hour),
            MAX_BLOCK,
            "at most a day"
        );
        assert_eq!(
            block_length(Some((now - MAX_BLOCK, hour * 4)), now, hour),
            hour,
            "a day later it starts over"
        );
    }
}
