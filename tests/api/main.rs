//! The HTTP-level tests: one binary, each test with its own service over real HTTP.
// These tests drive the sandbox, which production builds leave out.
#![cfg(feature = "sandbox")]

#[path = "../common/mod.rs"]
mod common;

mod abuse;
mod admin;
mod audit;
mod audit_before_call;
mod auth;
mod bind;
mod capacity;
mod client_address;
mod complete;
mod cors;
mod engines;
mod faults;
mod helpers;
mod idempotency;
mod identity;
mod limits;
mod metrics;
mod openapi;
mod problems;
mod read_and_unbind;
mod readiness;
mod redis_limits;
mod request_rates;
mod sandbox;
mod step_up;
mod store;
mod upstream_failures;
