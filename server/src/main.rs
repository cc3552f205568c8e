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
    /// Print the effective service configuration, each value with its origin (secrets redacted).
    Config(commands::config::Args),
    /// Sign a payload file with the configured secret and POST it like GitHub would.
    Replay(commands::replay::Args),
    /// Adopt Capstan in an existing repository: find its apps and environments, write .capstan.yaml.
    Init(commands::init::Args),
    /// Print the version.
    Version(commands::version::Args),
    /// List the ArgoCD Applications the repository defines.
    Apps(commands::apps::Args),
    /// Render an app or a folder to multi-document YAML.
    Render(commands::render::Args),
    /// Per-object diff of the apps a change affects (exit 0 none, 1 diff, 2 error).
    Diff(commands::diff::Args),
    /// Render the apps, run every policy layer, exit 1 on any deny.
    Check(commands::check::Args),
    /// Test and benchmark Rego policies.
    Policy(commands::policy::Args),
    /// The promotion audit trail (`--json` for machines).
    Promotions(commands::promotions::Args),
    /// Internal: evaluates one Jsonnet program for a parent `capstan` process.
    #[command(name = "__jsonnet-eval", hide = true)]
    JsonnetEval(commands::jsonnet_eval::Args),
}

fn main() -> ExitCode {
    match Cli::parse() {
        Cli::Version(args) => commands::version::run(args),
        Cli::Init(args) => commands::init::run(args),
        Cli::Apps(args) => commands::apps::run(args),
        Cli::Render(args) => commands::render::run(args),
        Cli::Diff(args) => commands::diff::run(args),
        Cli::Check(args) => commands::check::run(args),
        Cli::Policy(args) => commands::policy::run(args),
        Cli::Serve(args) => commands::serve::run(args),
        Cli::Config(args) => commands::config::run(args),
        Cli::Replay(args) => commands::replay::run(args),
        Cli::Promotions(args) => commands::promotions::run(args),
        Cli::JsonnetEval(args) => commands::jsonnet_eval::run(args),
    }
}
