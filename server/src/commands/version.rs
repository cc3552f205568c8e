//! `capstan version`: print the version.

use std::process::ExitCode;

/// No options.
#[derive(clap::Args, Debug)]
pub struct Args {}

pub fn run(_args: Args) -> ExitCode {
    println!("capstan {}", env!("CARGO_PKG_VERSION"));
    ExitCode::SUCCESS
}
