//! One module per subcommand. Each exposes `Args` (clap) and `run(Args) -> ExitCode`.

pub mod apps;
pub mod check;
pub mod config;
pub mod diff;
pub mod init;
pub mod jsonnet_eval;
pub mod policy;
pub mod promotions;
pub mod render;
pub mod replay;
pub mod serve;
pub mod version;
