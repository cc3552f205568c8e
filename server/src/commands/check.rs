//! `capstan check`: render the apps of a local checkout, run every policy layer, print findings
//! grouped by app, exit 1 on any `deny` (2 when the check itself cannot run).
//!
//! Apps come from [`KubectlKustomizeSource`], a temporary adapter (kustomization directories
//! rendered with `kubectl kustomize`) until the render layer's app graph replaces it.
//! With `--base REF`, `.capstan.yaml` and the policy folders are read from REF (the default
//! branch), never from the working tree under review, and only apps whose input files differ from
//! REF are reported.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use capstan_worker::policy::source::{AppSource, GitRefFs, KubectlKustomizeSource, git};
use capstan_worker::policy::{PolicyEngine, PolicySources, format};
use capstan_worker::repo_fs::DirFs;

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
    /// Judge the working tree as a pull request against this git ref (e.g. origin/main): policies
    /// and .capstan.yaml are read from it, and only apps whose input files changed are reported.
    #[arg(long)]
    pub base: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    /// Repository root.
    #[arg(long, default_value = ".")]
    pub repo: PathBuf,
    /// GitOps folders searched for kustomizations (default: bootstrap argocd infrastructure applications).
    #[arg(long = "tree", value_delimiter = ',')]
    pub tree: Vec<String>,
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
    let root = &args.repo;
    let sources = match &args.base {
        Some(base) => PolicySources::read(&GitRefFs::new(root, base).map_err(anyhow::Error::msg)?)
            .with_context(|| format!("reading policies from {base}"))?,
        None => PolicySources::read(&DirFs::new(root)?).context("reading policies")?,
    };
    let engine = PolicyEngine::new(&sources)?;
    let mut source = KubectlKustomizeSource::new(root);
    if !args.tree.is_empty() {
        source.tree = args.tree.clone();
    }
    let apps = source.apps()?;
    let mut report = engine.check(&apps)?;
    if let Some(base) = &args.base {
        let changed = changed_files(root, base)?;
        let affected: BTreeSet<&str> = apps
            .iter()
            .filter(|a| a.files.iter().any(|f| changed.contains(&f.path)))
            .map(|a| a.name.as_str())
            .collect();
        eprintln!(
            "{} of {} apps affected by changes since {base}",
            affected.len(),
            apps.len()
        );
        report
            .findings
            .retain(|f| f.app.is_empty() || affected.contains(f.app.as_str()));
        report
            .suppressed
            .retain(|s| s.finding.app.is_empty() || affected.contains(s.finding.app.as_str()));
        report
            .apps
            .retain(|(name, _)| affected.contains(name.as_str()));
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
    Ok(report.passes(engine.settings().fail_on))
}

/// Files that differ between `base` and the working tree, plus untracked files.
fn changed_files(root: &std::path::Path, base: &str) -> anyhow::Result<BTreeSet<String>> {
    let mut set = BTreeSet::new();
    for args in [
        &["diff", "--name-only", base, "--"][..],
        &["ls-files", "--others", "--exclude-standard"][..],
    ] {
        for line in String::from_utf8_lossy(&git(root, args).map_err(anyhow::Error::msg)?).lines() {
            set.insert(line.to_string());
        }
    }
    Ok(set)
}
