//! `autoshares-bff`: parses the command line, runs the command, turns errors into one line
//! on stderr and a non-zero exit status.

use std::process::ExitCode;

use autoshares_bff::{cli::Cli, commands};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = actix_web::rt::System::new().block_on(commands::run(cli));
    match outcome {
        Ok(code) => code,
        Err(error) => {
            eprintln!("{error:#}");
            ExitCode::FAILURE
        }
    }
}
