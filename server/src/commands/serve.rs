//! `capstan serve`: run the webhook intake, the job workers, or both.

use std::process::ExitCode;

use capstan_server::config::{Config, ConfigArgs};

/// Exit status for bad configuration (sysexits EX_CONFIG).
pub const EX_CONFIG: u8 = 78;

/// Every setting can also come from `CAPSTAN_*` variables or a TOML file (see the README).
#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The configuration, or the exit status after saying which key is wrong.
pub fn load_config(args: &ConfigArgs) -> Result<Config, ExitCode> {
    Config::load(args).map_err(|e| {
        eprintln!("capstan: configuration error: {e}");
        ExitCode::from(EX_CONFIG)
    })
}

pub fn run(args: Args) -> ExitCode {
    let cfg = match load_config(&args.config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    capstan_server::serve::init_tracing(&cfg);
    // One TLS stack process-wide: with two rustls providers linked in, clients that rely on the
    // process default (kube, sqlx) would panic at first use.
    capstan_worker::forge::github::install_crypto_provider();
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("capstan: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(capstan_server::serve::run(cfg, None, None)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capstan: {e:#}");
            ExitCode::FAILURE
        }
    }
}
