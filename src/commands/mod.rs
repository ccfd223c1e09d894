//! One file per subcommand of README.md "Commands". Each returns `anyhow::Result`; `main` prints
//! the one-line error and picks the exit status.

#[cfg(feature = "sandbox")]
pub mod dev;
pub mod migrate;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod serve;
pub mod token;
pub mod users;

use std::process::ExitCode;

use crate::cli::{Cli, Command};
use crate::config::Sources;

/// Runs the parsed command line inside an actix system.
pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let sources = Sources::standard(cli.config);
    match cli.command {
        Command::Serve => serve::run(sources).await.map(|()| ExitCode::SUCCESS),
        Command::Migrate => migrate::run(sources).await.map(|()| ExitCode::SUCCESS),
        Command::Users { command } => users::run(sources, command).await,
        Command::Token { command } => token::run(sources, command).map(|()| ExitCode::SUCCESS),
        #[cfg(feature = "sandbox")]
        Command::Dev => dev::run(sources).await.map(|()| ExitCode::SUCCESS),
        #[cfg(feature = "sandbox")]
        Command::Sandbox { listen } => sandbox::run(sources, listen)
            .await
            .map(|()| ExitCode::SUCCESS),
        #[cfg(not(feature = "sandbox"))]
        Command::Dev | Command::Sandbox { .. } => {
            anyhow::bail!("this build has no sandbox; rebuild with the `sandbox` feature")
        }
    }
}
