//! Resident memory of the in-process limiter under many distinct keys, run by hand:
//!
//!   cargo bench --bench limiter_memory
//!
//! Feeds binds from 1 000 000 distinct users (each to a number of its own), then binds to
//! 100 000 distinct prefixes,
//! through `MemoryLimits` with the shipped defaults, and prints the RSS after each; then
//! requests from 1 000 000 distinct client addresses through the request rates
//! (`requests_per_client = 10/second`), and the keys left once they are idle and evicted.
//! Under `cargo test` (no `--bench` argument) it runs 1 000 of each, as a smoke test.

use std::time::Duration;

use autoshares_bff::client_address::TrustedProxies;
use autoshares_bff::config::{Quota, Settings, Sources};
use autoshares_bff::ids::AutosharesUserId;
use autoshares_bff::limits::{BindFacts, KeyedHash, MemoryLimits, Policy, RequestRates};
use autoshares_bff::phone::PhoneNumber;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (users, prefixes): (u64, u64) = if full {
        (1_000_000, 100_000)
    } else {
        (1_000, 1_000)
    };
    let settings = Settings::load(
        &Sources::default()
            .with("upstream.base_url", "http://127.0.0.1:1/api")
            .with("upstream.app_key", "k")
            .with("upstream.username", "u")
            .with("upstream.password", "p")
            .with("auth.issuer", "i")
            .with("auth.audience", "a")
            .with("auth.hs256_secret", "limiter-memory-bench-secret-32-bytes")
            .with(
                "verification.token_secret",
                "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            ),
    )
    .expect("bench settings are valid");
    // Every quota and rule as shipped, except that nothing refuses: the per-number quota,
    // the prefix budget and breaker (100 users share a prefix) and the country breaker would
    // otherwise stop counting new keys early.
    let mut abuse = settings.abuse.clone();
    abuse.conversion.min_sends_country = u32::MAX;
    abuse.conversion.min_sends_prefix = u32::MAX;
    let prefix_budget = abuse.prefix_budget.take();
    let roomy = Quota::parse("1000000000/second").unwrap();
    let policy = Policy {
        per_user: settings.rate_limit.bind_per_user,
        per_phone: roomy,
        per_client: None,
        abuse,
        idempotency_ttl: settings.rate_limit.idempotency_ttl,
    };
    let hash = KeyedHash::derive(&settings.verification.token_secret);
    let limits = MemoryLimits::new(&[]);
    let now = Duration::from_secs(1);
    let before = rss_mib();

    // Distinct users, each binding a number of its own (100 users share a prefix).
    for user in 0..users {
        let phone = PhoneNumber::from_trusted_e164(format!("+1{}", 2_000_000_000 + user));
        let facts = BindFacts::new(
            AutosharesUserId(user as i64 + 1),
            &phone,
            None,
            &policy,
            &hash,
        );
        limits.admit_bind(&facts, &policy, now);
    }
    let after_users = rss_mib();
    println!(
        "{users} distinct users and numbers: {after_users:.1} MiB RSS ({:+.1} MiB, {} keys)",
        after_users - before,
        limits.tracked_keys()
    );

    // Distinct prefixes, from one user whose quota is out of the way.
    let mut policy = Policy {
        per_user: roomy,
        ..policy
    };
    policy.abuse.prefix_budget = prefix_budget;
    for i in 0..prefixes {
        let phone = PhoneNumber::from_trusted_e164(format!("+1{}", 4_000_000_000 + i * 10_000));
        let facts = BindFacts::new(AutosharesUserId(0), &phone, None, &policy, &hash);
        limits.admit_bind(&facts, &policy, now);
    }
    let after_prefixes = rss_mib();
    println!(
        "+{prefixes} distinct prefixes: {after_prefixes:.1} MiB RSS ({:+.1} MiB, {} keys)",
        after_prefixes - after_users,
        limits.tracked_keys()
    );

    // A flood of distinct client addresses, each one request, against a per-client rate.
    let rates = RequestRates::new(None, Quota::parse("10/second").ok());
    let direct = TrustedProxies::default();
    let before_flood = rss_mib();
    for n in 0..users as u32 {
        let address = std::net::Ipv4Addr::from(0x0A00_0000 + n);
        let client = direct.client_of(address.into(), std::iter::empty());
        let _ = rates.admit_client(client);
    }
    let after_flood = rss_mib();
    println!(
        "{users} distinct client addresses: {after_flood:.1} MiB RSS ({:+.1} MiB, {} keys)",
        after_flood - before_flood,
        rates.keys()
    );
    // Once a key's rate is whole again (a tenth of a second here) it is evicted.
    std::thread::sleep(Duration::from_millis(1100));
    rates.evict_idle();
    println!(
        "after the eviction chore: {:.1} MiB RSS, {} keys",
        rss_mib(),
        rates.keys()
    );
    assert_eq!(rates.keys(), 0, "every idle key is evicted");
}
