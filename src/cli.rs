//! The command line (README.md "Commands"), as clap types. `commands/` does the work.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "autoshares-bff",
    version,
    about = "Binds and verifies phone numbers at AutoShares for first-party apps"
)]
pub struct Cli {
    /// A configuration file applied after config/default.toml and config/{BFF_ENV}.toml.
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service with the configuration.
    Serve,
    /// Run a local stack in one process: the service, an AutoShares sandbox, SQLite, a JWT.
    Dev,
    /// Run only the AutoShares sandbox.
    Sandbox {
        /// Address to listen on (default: sandbox.listen, 127.0.0.1:8081).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// Apply database migrations and exit.
    Migrate,
    /// Manage subject -> AutoShares user id links.
    Users {
        #[command(subcommand)]
        command: UsersCommand,
    },
    /// Tokens for tests and local use.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create or replace the link of SUBJECT.
    Link {
        subject: String,
        #[arg(allow_negative_numbers = true)]
        autoshares_user_id: String,
    },
    /// Remove the link of SUBJECT (exits 0 whether or not there was one).
    Unlink { subject: String },
    /// Print the link of SUBJECT (exits 1 when there is none).
    Show { subject: String },
    /// Import links from a CSV with the header `subject,autoshares_user_id`, all or nothing.
    Import { file: PathBuf },
    /// Print SUBJECT's audit events, newest first (exits 1 when there are none).
    History {
        subject: String,
        /// How many events at most (1-1000).
        #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=1000))]
        limit: u32,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Mint an HS256 JWT with the configured auth.hs256_secret, issuer and audience.
    Mint {
        /// The `sub` claim.
        #[arg(long)]
        sub: String,
        /// Lifetime, e.g. 1h, 30m, 90s.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// An extra claim `k=v`; a value of digits only becomes an integer.
        #[arg(long = "claim", value_name = "K=V")]
        claims: Vec<String>,
        /// The `auth_time` claim: how long ago the user logged in (e.g. 0s, 20m); a
        /// minted token is a fresh login unless told otherwise.
        #[arg(long = "auth-age", default_value = "0s")]
        auth_age: String,
        /// The `acr` claim (authentication context class), for `auth.bind_acr_values`.
        #[arg(long)]
        acr: Option<String>,
    },
}
