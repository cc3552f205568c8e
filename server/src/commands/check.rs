//! `capstan check`: render the apps of a local checkout, run every policy layer, print findings
//! grouped by app, exit 1 on any `deny` or broken render (2 when the check itself cannot run).
//!
//! Apps come from the render layer (the same discovery and backends as `capstan apps` and
//! `capstan render`). With `--base REF`, `.capstan.yaml` and the policy folders are read from REF
//! (the default branch), never from the tree under review, and only the apps the change affects
//! (exact input graph, see `capstan diff`) are judged.

use std::collections::BTreeSet;
use std::io::Write;
use std::process::ExitCode;

use anyhow::Context;
use capstan_worker::apps::Snapshot;
use capstan_worker::apps::affected::affected_apps;
use capstan_worker::policy::findings::{Finding, Severity};
use capstan_worker::policy::source::render_apps;
use capstan_worker::policy::{PolicyEngine, PolicySources, format};
use capstan_worker::render::BackendChoice;

use super::apps::RepoArgs;

/// Rule id for an app whose render failed: the check cannot vouch for objects it never saw.
const RULE_RENDER_ERROR: &str = "render-error";

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Sarif,
    Markdown,
}

/// Check the repository's apps against its policies.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Judge the working tree (or --head) as a pull request against this git ref (e.g.
    /// origin/main): policies and .capstan.yaml are read from it, and only affected apps are judged.
    #[arg(long)]
    pub base: Option<String>,
    /// The commit to judge (default: the working directory).
    #[arg(long)]
    pub head: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[arg(long, default_value = "auto")]
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

    let cfg = local.discovery_config(&args.repo.repo_urls, args.repo.default_branch.as_deref());
    let renderer = args.repo.renderer(args.backend);
    let head = Snapshot::build(head_fs.as_ref(), &cfg, &renderer);
    let renders = match &base_fs {
        Some(fs) => {
            let base = Snapshot::build(fs.as_ref(), &cfg, &renderer);
            let names: Vec<String> = affected_apps(&base, &head)
                .into_iter()
                .map(|a| a.name)
                .filter(|n| head.app(n).is_some())
                .collect();
            eprintln!(
                "{} of {} apps affected by the change",
                names.len(),
                head.discovery.apps.len()
            );
            head.render_many(&renderer, &names)
                .into_iter()
                .flatten()
                .collect()
        }
        None => head.render_all(&renderer),
    };
    let rendered = render_apps(head_fs.as_ref(), &renders);
    for (app, reason) in &rendered.skipped {
        eprintln!("note: app {app} not checked: {reason}");
    }
    let mut report = engine.check(&rendered.apps)?;
    let judged: BTreeSet<&str> = rendered.apps.iter().map(|a| a.name.as_str()).collect();
    // Cross-app findings about apps outside the change are noise in a PR-style check.
    if args.base.is_some() {
        report
            .findings
            .retain(|f| f.app.is_empty() || judged.contains(f.app.as_str()));
    }
    for (app, message) in &rendered.failed {
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
    Ok(report.passes(engine.settings().fail_on) && rendered.failed.is_empty())
}
