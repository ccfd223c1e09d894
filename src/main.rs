//! `autoshares-bff`: parses the command line, runs the command, turns errors into one line
//! on stderr and a non-zero exit status.

use std::process::ExitCode;

use autoshares_bff::{cli::Cli, commands};
use clap::Parser;

/// mimalloc rather than glibc's malloc: the request path makes many small allocations on
/// several threads, which glibc serves slower and spreads over an arena per thread.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
