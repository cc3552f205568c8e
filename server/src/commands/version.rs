//! `capstan version`: print the version.

use std::process::ExitCode;

/// No options.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> ExitCode {
    println!("capstan {}", env!("CARGO_PKG_VERSION"));
    if capstan_worker::failpoint::COMPILED_IN {
        // On stderr, so the version line stays what scripts read; tests look for it here.
        eprintln!("capstan: failpoints compiled in (a test build, not for production)");
    }
    ExitCode::SUCCESS
}
