//! The HTTP-level tests: one binary, each test with its own service over real HTTP.

mod admin;
mod auth;
mod bind;
mod complete;
mod helpers;
mod identity;
mod limits;
mod openapi;
mod problems;
mod read_and_unbind;
mod sandbox;
mod store;
mod upstream_failures;
