//! `capstan replay`: sign a payload file with the configured webhook secret and POST it to a
//! running server with the headers GitHub sends — for trying a setup, or re-feeding an event.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use capstan_server::config::{self, ConfigArgs, ReplayArgs, SecretSource};

#[derive(clap::Args, Debug)]
#[command(
    after_help = "The secret is the server's: CAPSTAN_WEBHOOK_SECRET (the first of a comma-separated \
    list), else the webhook secret file. Replay never generates one."
)]
pub struct Args {
    /// The JSON payload, sent byte for byte.
    pub payload: PathBuf,
    /// The X-GitHub-Event value (pull_request, push, issue_comment, …).
    #[arg(long)]
    pub event: String,
    /// Where to send it; default: the configured listen address on 127.0.0.1.
    #[arg(long)]
    pub url: Option<String>,
    /// The X-GitHub-Delivery value; default: a new GUID. Reuse one to test deduplication.
    #[arg(long)]
    pub delivery: Option<String>,
    #[command(flatten)]
    pub config: ReplayArgs,
}

pub fn run(args: Args) -> ExitCode {
    let cfg = match super::serve::load_config(&ConfigArgs::from(args.config)) {
        Ok(c) => c,
        Err(code) => return code,
    };
    // Replay never generates a secret: it must match the server's.
    let source = match cfg.secrets {
        SecretSource::File { path, .. } => SecretSource::File {
            path,
            generate: false,
        },
        env => env,
    };
    let secret = match config::load_secrets(&source) {
        Ok((secrets, _)) => secrets.into_iter().next().unwrap_or_default(),
        Err(e) => {
            eprintln!(
                "capstan: {e} (start `capstan serve` once to generate it, or set CAPSTAN_WEBHOOK_SECRET)"
            );
            return ExitCode::from(super::serve::EX_CONFIG);
        }
    };
    let body = match std::fs::read(&args.payload) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("capstan: reading {}: {e}", args.payload.display());
            return ExitCode::FAILURE;
        }
    };
    let url = args
        .url
        .unwrap_or_else(|| format!("http://127.0.0.1:{}/webhooks/github", cfg.listen.port()));
    let delivery = args
        .delivery
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let signature = capstan_server::signature::sign(secret.as_bytes(), &body);
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("capstan: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let sent = rt.block_on(async {
        capstan_worker::forge::github::install_crypto_provider();
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        let resp = client
            .post(&url)
            .header("Content-Type", "application/json")
            .header("User-Agent", "GitHub-Hookshot/capstan-replay")
            .header("X-GitHub-Event", args.event.as_str())
            .header("X-GitHub-Delivery", delivery.as_str())
            .header("X-Hub-Signature-256", signature.as_str())
            .body(body)
            .send()
            .await?;
        let status = resp.status();
        Ok::<_, reqwest::Error>((status, resp.text().await?))
    });
    match sent {
        Ok((status, text)) => {
            println!("{} {} (delivery {delivery})", status.as_u16(), text.trim());
            if status.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(e) => {
            eprintln!("capstan: {url}: {e}");
            ExitCode::FAILURE
        }
    }
}
