//! `capstan __jsonnet-eval` (hidden): the child process in which the service and the CLI evaluate
//! one Jsonnet program under operating-system limits. Its input comes on stdin from the parent
//! (`capstan_worker::render::jsonnet_proc`); it is no command for people.

use std::process::ExitCode;

use capstan_worker::render::jsonnet_proc::{self, ChildBounds};

/// The bounds the child sets on itself before reading its input.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Address space limit (`RLIMIT_AS`), in bytes.
    #[arg(long)]
    pub max_memory_bytes: u64,
    /// CPU time limit (`RLIMIT_CPU`), in seconds.
    #[arg(long)]
    pub cpu_secs: u64,
}

pub fn run(args: Args) -> ExitCode {
    jsonnet_proc::child_main(ChildBounds {
        max_memory_bytes: args.max_memory_bytes,
        cpu_seconds: args.cpu_secs,
    })
}
