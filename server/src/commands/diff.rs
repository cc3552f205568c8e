//! `capstan diff --base REF [--head REF]`: per-object diff of every affected app. Exit status 0
//! when nothing differs, 1 when something does, 2 on error (including an app that fails to render).

use std::process::ExitCode;

use capstan_worker::apps::Snapshot;
use capstan_worker::apps::affected::affected_apps;
use capstan_worker::diff::{DiffReport, diff_app};
use capstan_worker::render::BackendChoice;

use super::apps::RepoArgs;

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    /// The commit, branch or tag to compare against.
    #[arg(long)]
    pub base: String,
    /// The commit to compare (default: the working directory).
    #[arg(long)]
    pub head: Option<String>,
    /// Only this app (when it is affected).
    #[arg(long)]
    pub app: Option<String>,
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[arg(long, default_value = "auto")]
    pub backend: BackendChoice,
    #[command(flatten)]
    pub repo: RepoArgs,
}

pub fn run(args: Args) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn run_inner(args: Args) -> anyhow::Result<ExitCode> {
    let local = args.repo.open()?;
    let cfg = local.discovery_config(&args.repo.repo_urls, args.repo.default_branch.as_deref())?;
    let base_fs = local.fs(Some(&args.base))?;
    let head_fs = local.fs(args.head.as_deref())?;
    let renderer = args.repo.renderer(args.backend);
    let base = Snapshot::build(base_fs.as_ref(), &cfg, &renderer);
    let head = Snapshot::build(head_fs.as_ref(), &cfg, &renderer);
    let affected: Vec<_> = affected_apps(&base, &head)
        .into_iter()
        .filter(|a| args.app.as_ref().is_none_or(|n| &a.name == n))
        .collect();
    let names: Vec<String> = affected.iter().map(|a| a.name.clone()).collect();
    let before = base.render_many(&renderer, &names);
    let after = head.render_many(&renderer, &names);
    let report = DiffReport {
        apps: affected
            .iter()
            .zip(before.iter().zip(after.iter()))
            .map(|(a, (b, h))| {
                let mut d = diff_app(&a.name, b.as_ref(), h.as_ref());
                d.reasons = a.reasons.iter().map(ToString::to_string).collect();
                d
            })
            .collect(),
    };
    let out = match args.format {
        Format::Text => report.to_text(),
        Format::Markdown => report.to_markdown(),
        Format::Json => report.to_json(),
    };
    print!("{out}");
    if !out.ends_with('\n') {
        println!();
    }
    Ok(if report.has_failures() {
        ExitCode::from(2)
    } else if report.has_changes() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
