//! `capstan promotions`: the promotion audit trail from the store `capstan serve` uses (same
//! settings: `--database-url`, `--data-dir`, `CAPSTAN_*`, `--config`), newest first.

use std::process::ExitCode;

use capstan_server::config::{Config, StoreArgs};
use capstan_worker::promote::plan::NOTHING_TO_PROMOTE;
use capstan_worker::store::{
    PromotionFilter, PromotionRecord, PromotionStatus, PromotionStore, SqlPromotionStore,
};

use super::serve::EX_CONFIG;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print JSON (one array of records) instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Only this repository (`owner/name`).
    #[arg(long, value_name = "OWNER/NAME")]
    pub repo: Option<String>,
    /// Only this app.
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
    /// Only this target environment.
    #[arg(long, value_name = "ENV")]
    pub target: Option<String>,
    /// Only this status: pending, opened, committed, no_change, conflict, refused, failed.
    #[arg(long, value_name = "STATUS")]
    pub status: Option<String>,
    /// At most this many records.
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[command(flatten)]
    pub config: StoreArgs,
}

pub fn run(args: Args) -> ExitCode {
    let status = match args
        .status
        .as_deref()
        .map(|s| (s, PromotionStatus::parse(s)))
    {
        None => None,
        Some((_, Some(s))) => Some(s),
        Some((given, None)) => {
            let allowed: Vec<&str> = PromotionStatus::ALL.iter().map(|s| s.as_str()).collect();
            eprintln!(
                "capstan promotions: --status {given:?} is not one of {}",
                allowed.join(", ")
            );
            return ExitCode::from(2);
        }
    };
    let cfg = match Config::load(&args.config.clone().into()) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("capstan: configuration error: {e}");
            return ExitCode::from(EX_CONFIG);
        }
    };
    let filter = PromotionFilter {
        repo: args.repo,
        app: args.app,
        target_env: args.target,
        status,
        limit: args.limit,
    };
    let rt = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("capstan: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Reading must not leave a database behind where none was (a mistyped --data-dir).
    if let Some(file) = capstan_worker::queue::sqlite_file(&cfg.database_url)
        && !file.exists()
    {
        eprintln!(
            "note: no database at {} yet (capstan serve creates it there); nothing is recorded",
            file.display()
        );
        if args.json {
            println!("[]");
        } else {
            print!("{}", table(&[]));
        }
        return ExitCode::SUCCESS;
    }
    let listed = rt.block_on(async {
        let queue = capstan_server::serve::open_queue(&cfg).await?;
        let store = SqlPromotionStore::new(queue.db());
        Ok::<_, anyhow::Error>(store.list_promotions(&filter).await?)
    });
    let records = match listed {
        Ok(r) => r,
        Err(e) => {
            eprintln!("capstan promotions: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if args.json {
        match serde_json::to_string_pretty(&records) {
            Ok(s) => println!("{s}"),
            Err(e) => {
                eprintln!("capstan promotions: {e}");
                return ExitCode::FAILURE;
            }
        }
    } else {
        print!("{}", table(&records));
    }
    ExitCode::SUCCESS
}

fn table(records: &[PromotionRecord]) -> String {
    if records.is_empty() {
        return "no promotions recorded\n".into();
    }
    let mut out = String::from("ID\tREPO\tAPP\tFROM→TO\tTRIGGER\tACTOR\tSTATUS\tRESULT\tSUMMARY\n");
    for r in records {
        let result = match (r.result_pr, &r.result_sha) {
            (Some(pr), _) => format!("#{pr}"),
            (None, Some(sha)) => sha.chars().take(12).collect(),
            _ => "-".into(),
        };
        // What was promoted, then why it stopped: a refusal's reason is the news, and the
        // placeholder summary of a plan never made says nothing.
        let what = Some(r.summary.as_str())
            .filter(|s| !s.is_empty() && *s != NOTHING_TO_PROMOTE || r.detail.is_none());
        let summary = match (what, &r.detail) {
            (Some(s), Some(d)) => format!("{s} — {d}"),
            (None, Some(d)) => d.clone(),
            (Some(s), None) => s.to_string(),
            (None, None) => String::new(),
        };
        out.push_str(&format!(
            "{}\t{}\t{}\t{}→{}\t{}\t{}\t{}\t{}\t{}\n",
            r.id,
            r.repo,
            r.app,
            if r.source_env.is_empty() {
                "?"
            } else {
                &r.source_env
            },
            r.target_env,
            r.trigger,
            r.actor,
            r.status.as_str(),
            result,
            summary.replace(['\t', '\n'], " ")
        ));
    }
    out
}
