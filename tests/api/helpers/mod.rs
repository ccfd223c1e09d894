//! Test harness: each test gets its own service on random ports, its own database
//! (a temporary SQLite file, or a fresh PostgreSQL database when `BFF_TEST_DATABASE_URL`
//! is set), a random signing secret, and a fake AutoShares over real HTTP: the sandbox
//! for stateful flows, or a scripted server for faults. One file per tool:
//! `database.rs`, `scripted.rs` (a fake AutoShares that answers what a test scripts),
//! `proxy.rs` (a TCP forwarder a test can take down), `app.rs` (the app and a client per
//! route) and `poll.rs`.

mod app;
mod database;
mod poll;
mod proxy;
mod raw;
mod scripted;

use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;

pub use app::*;
pub use database::{TestDatabase, connect};
pub use poll::{audit_events, wait_for_status};
pub use proxy::TcpProxy;
pub use raw::RawUpstream;
pub use scripted::{Reply, Scripted};

/// The value of the series `series` (its whole name, labels included) in the Prometheus
/// text `metrics`.
pub fn sample(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or_else(|| panic!("no {series} in:\n{metrics}"))
}

pub fn random_hex(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    aws_lc_rs::rand::fill(&mut buffer).unwrap();
    buffer.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn random_key_base64() -> String {
    let mut key = [0u8; 32];
    aws_lc_rs::rand::fill(&mut key).unwrap();
    base64::engine::general_purpose::STANDARD.encode(key)
}

pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}
