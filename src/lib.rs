//! autoshares-bff: lets first-party apps bind and verify a user's phone number at
//! AutoShares without holding AutoShares' secrets (README.md).
//!
//! A tour, outside in (README's layout section is the same map; `.ci/layers.py` checks
//! that no module imports one above it):
//! - [`cli`] and [`commands`] turn the command line into calls; [`startup`] is the one
//!   place that builds every part from [`config::Settings`] and binds the listeners.
//! - [`http`] serves the public API and the admin listener; it is the only module that
//!   knows HTTP status codes ([`http::problem`]).
//! - A request passes [`auth`] (the caller's JWT), [`identity`] (subject to AutoShares
//!   user id), [`phone`] (normalisation), [`limits`] (quotas and code attempts),
//!   [`upstream`] (AutoShares), and [`verification`] (the sealed token that links step 1
//!   to step 2).
//! - [`telemetry`] sets up logs, [`metrics`] holds the Prometheus instruments, and [`net`]
//!   builds outbound HTTP clients; [`sandbox`] is a stand-in AutoShares for `dev` and tests.
//! - [`audit`] writes the trail of every phone change to the database, off the request
//!   path.
//! - At the bottom, [`config`] (typed settings, each key read once), [`ids`] (the
//!   identifiers every layer names) and [`client_address`] (who is behind the ingress)
//!   import nothing of ours.
#![forbid(unsafe_code)]

pub mod audit;
pub mod auth;
pub mod cli;
pub mod client_address;
pub mod commands;
pub mod config;
pub mod identity;
pub mod ids;
pub mod limits;
pub mod metrics;
pub mod net;
pub mod phone;
pub mod startup;
pub mod telemetry;
pub mod upstream;
pub mod verification;

pub mod http;

#[cfg(feature = "sandbox")]
pub mod sandbox;
