//! The `capstan` binary. Subcommands are added by the issues that own them.

use clap::Parser;

#[derive(Parser)]
#[command(
    name = "capstan",
    version,
    about = "Git monorepo as the reviewed control plane of a K3s cluster run by ArgoCD"
)]
enum Cli {
    /// Print the version.
    Version,
}

fn main() -> anyhow::Result<()> {
    match Cli::parse() {
        Cli::Version => println!("capstan {}", env!("CARGO_PKG_VERSION")),
    }
    Ok(())
}
