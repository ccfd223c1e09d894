//! Resident memory of the in-process limiter under many distinct keys, run by hand:
//!
//!   cargo bench --bench limiter_memory
//!
//! Feeds binds from 1 000 000 distinct users, then binds to 100 000 distinct prefixes,
//! through `MemoryLimits` with the shipped defaults, and prints the RSS after each. Under
//! `cargo test` (no `--bench` argument) it runs 1 000 of each, as a smoke test.

use std::time::Duration;

use autoshares_bff::config::{Settings, Sources};
use autoshares_bff::ids::AutosharesUserId;
use autoshares_bff::limits::{BindFacts, KeyedHash, MemoryLimits, Policy};
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
    let (users, prefixes) = if full {
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
    let policy = Policy {
        per_user: settings.rate_limit.bind_per_user,
        per_phone: settings.rate_limit.bind_per_phone,
        abuse: settings.abuse.clone(),
        idempotency_ttl: settings.rate_limit.idempotency_ttl,
    };
    let hash = KeyedHash::derive(&settings.verification.token_secret);
    let limits = MemoryLimits::new(&[]);
    let now = Duration::from_secs(1);
    let before = rss_mib();

    // Distinct users, all binding numbers of one prefix block (few phone and prefix keys).
    let phone = PhoneNumber::from_trusted_e164("+13108904569".to_owned());
    for user in 0..users {
        let facts = BindFacts::new(AutosharesUserId(user + 1), &phone, &policy, &hash);
        limits.admit_bind(&facts, &policy, now);
    }
    let after_users = rss_mib();
    println!(
        "{users} distinct users: {:.1} MiB RSS ({:+.1} MiB, {} keys)",
        after_users,
        after_users - before,
        limits.tracked_keys()
    );

    // Distinct prefixes (and numbers), from one user whose quota is out of the way.
    let roomy = Policy {
        per_user: autoshares_bff::config::Quota::parse("1000000000/second").unwrap(),
        ..policy.clone()
    };
    for i in 0..prefixes {
        let phone = PhoneNumber::from_trusted_e164(format!("+1{:010}", 2_000_000_000 + i * 10_000));
        let facts = BindFacts::new(AutosharesUserId(0), &phone, &roomy, &hash);
        limits.admit_bind(&facts, &roomy, now);
    }
    let after_prefixes = rss_mib();
    println!(
        "+{prefixes} distinct prefixes: {:.1} MiB RSS ({:+.1} MiB, {} keys)",
        after_prefixes,
        after_prefixes - after_users,
        limits.tracked_keys()
    );
}
