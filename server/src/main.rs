//! The `capstan` binary. Each subcommand lives in `commands/<name>.rs`, exposing
//! `#[derive(clap::Args)] pub struct Args` and `pub fn run(args) -> ExitCode`; this file only
//! dispatches, so adding a subcommand is one variant and one match arm.

mod commands;

use std::process::ExitCode;

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "capstan",
    version,
    about = "Git monorepo as the reviewed control plane of a K3s cluster run by ArgoCD"
)]
enum Cli {
    /// Run the service: webhook intake, job workers, or both (`--role`).
    Serve(commands::serve::Args),
    /// Sign a payload file with the configured secret and POST it like GitHub would.
    Replay(commands::replay::Args),
    /// Print the version.
    Version(commands::version::Args),
}

fn main() -> ExitCode {
    match Cli::parse() {
        Cli::Serve(args) => commands::serve::run(args),
        Cli::Replay(args) => commands::replay::run(args),
        Cli::Version(args) => commands::version::run(args),
    }
}
