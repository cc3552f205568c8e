//! One module per subcommand. Each exposes `Args` (clap) and `run(Args) -> ExitCode`.

pub mod apps;
pub mod diff;
pub mod render;
pub mod check;
pub mod policy;
pub mod version;
