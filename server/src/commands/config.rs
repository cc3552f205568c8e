//! `capstan config`: the effective service configuration, one line per setting with where its
//! value came from (flag, environment, the TOML file, or the default), secrets redacted.

use std::process::ExitCode;

use capstan_server::config::{Config, ConfigArgs, Effective};

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(args: Args) -> ExitCode {
    // The whole configuration is checked first, so what is printed would start.
    if let Err(code) = super::serve::load_config(&args.config) {
        return code;
    }
    match Config::effective(&args.config) {
        Ok(settings) => {
            println!(
                "# capstan's effective configuration: a flag beats the environment, which beats \
                 the file, which beats the default"
            );
            for s in &settings {
                println!("{}", Effective::line(s));
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("capstan: configuration error: {e}");
            ExitCode::from(super::serve::EX_CONFIG)
        }
    }
}
