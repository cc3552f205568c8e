//! `capstan check`: render the apps of a local checkout, run every policy layer, print findings
//! grouped by app, exit 1 on any `deny` or broken render (2 when the check itself cannot run).
//!
//! An app Capstan cannot render gets a `not-checked` finding, as the PR check's conclusion treats
//! it: a warning (`render.notChecked: neutral`, the default), or a deny with
//! `render.notChecked: failure` in `.capstan.yaml`.
//!
//! Apps come from the render layer (the same discovery and backends as `capstan apps` and
//! `capstan render`). With `--base REF`, `.capstan.yaml` and the policy folders are read from REF
//! (the default branch), never from the tree under review, and only the apps the change affects
//! (exact input graph, see `capstan diff`) are judged.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use capstan_worker::pipeline::analyze::{BaseRenders, Trees, analyze};
use capstan_worker::policy::findings::{Finding, Severity};
use capstan_worker::policy::{PolicyEngine, PolicySources, format};
use capstan_worker::render::{BackendChoice, NotCheckedConclusion};

use super::apps::RepoArgs;

/// Rule id for an app whose render failed: the check cannot vouch for objects it never saw.
const RULE_RENDER_ERROR: &str = "render-error";
/// Rule id for an app Capstan could not render (wholly or partly).
const RULE_NOT_CHECKED: &str = "not-checked";

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
    Markdown,
}

/// Check the repository's apps against its policies.
#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 passed, 1 a deny finding or a render error, 2 the check could not run, 3 passed but some app was not checked (Capstan cannot render it)."
)]
pub struct Args {
    /// Judge the working tree (or --head) as a pull request against this git ref (e.g.
    /// origin/main): policies and .capstan.yaml are read from it, and only affected apps are judged.
    #[arg(long)]
    pub base: Option<String>,
    /// The commit to judge (default: the working directory).
    #[arg(long)]
    pub head: Option<String>,
    /// Output format: text for a terminal, json for machines, sarif for code scanning, markdown as
    /// in the PR comment.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[arg(long, default_value = "auto", help = super::apps::BACKEND_HELP)]
    pub backend: BackendChoice,
    #[command(flatten)]
    pub repo: RepoArgs,
}

pub fn run(args: Args) -> ExitCode {
    match check(&args) {
        Ok(passed) if passed => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("capstan check: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn check(args: &Args) -> anyhow::Result<bool> {
    let local = args.repo.open()?;
    let head_fs = local.fs(args.head.as_deref())?;
    let base_fs = match &args.base {
        Some(base) => Some(
            local
                .fs(Some(base))
                .with_context(|| format!("reading {base}"))?,
        ),
        None => None,
    };
    let sources = match &base_fs {
        Some(fs) => PolicySources::read(fs.as_ref()).context("reading policies from the base")?,
        None => PolicySources::read(head_fs.as_ref()).context("reading policies")?,
    };
    let engine = PolicyEngine::new(&sources)?;

    let cfg = local.discovery_config(&args.repo.repo_urls, args.repo.default_branch.as_deref())?;
    let (renderer, settings) = args.repo.verified_renderer(&local, args.backend)?;
    let trees = Trees {
        base: base_fs.as_deref(),
        head: head_fs.as_ref(),
    };
    let analysis = analyze(&trees, &engine, &cfg, &renderer, BaseRenders::Skip)?;
    if args.base.is_some() {
        eprintln!(
            "{} of {} apps affected by the change",
            analysis.apps.len(),
            analysis.total_apps
        );
    }
    let mut report = analysis.policy;
    for (app, reason) in &analysis.skipped {
        eprintln!("note: app {app} not checked: {reason}");
        report.findings.push(Finding::new(
            RULE_NOT_CHECKED,
            match settings.not_checked {
                NotCheckedConclusion::Failure => Severity::Deny,
                NotCheckedConclusion::Neutral => Severity::Warn,
            },
            app,
            format!("not checked: Capstan could not render it: {reason}"),
        ));
    }
    for (app, message) in &analysis.render_failed {
        report.findings.push(Finding::new(
            RULE_RENDER_ERROR,
            Severity::Deny,
            app,
            format!("render failed: {message}"),
        ));
    }
    let out = match args.format {
        Format::Text => format::text(&report),
        Format::Json => format::json(&report),
        Format::Sarif => format::sarif(&report),
        Format::Markdown => format::markdown(&report),
    };
    // A closed pipe (`capstan check | head`) is not an error worth a panic.
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(out.as_bytes());
    if !out.ends_with('\n') {
        let _ = stdout.write_all(b"\n");
    }
    Ok(report.passes(engine.settings().fail_on) && analysis.render_failed.is_empty())
}
