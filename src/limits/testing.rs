//! What the backends' unit tests share: a policy with only the two quotas on, and a
//! keyed hash.

use std::time::Duration;

use secrecy::SecretBox;

use super::{KeyedHash, Policy};
use crate::config::{AbuseSettings, ConversionSettings, Quota, RuleMode};

pub fn policy(per_user: &str, per_phone: &str) -> Policy {
    Policy {
        per_user: Quota::parse(per_user).unwrap(),
        per_phone: Quota::parse(per_phone).unwrap(),
        per_client: None,
        abuse: AbuseSettings {
            global_budget: None,
            global_mode: RuleMode::Enforce,
            country_budgets: Vec::new(),
            country_mode: RuleMode::Enforce,
            prefix_budget: None,
            prefix_mode: RuleMode::Enforce,
            prefix_drop_digits: 4,
            conversion: ConversionSettings {
                window: Duration::from_secs(3600),
                min_ratio: 0.2,
                min_sends_country: 1_000_000,
                min_sends_prefix: 1_000_000,
                block: Duration::from_secs(3600),
                mode: RuleMode::Enforce,
            },
            safe: Vec::new(),
        },
        idempotency_ttl: Duration::from_secs(60),
    }
}

pub fn hash() -> KeyedHash {
    KeyedHash::derive(&SecretBox::new(Box::new([7; 32])))
}
