//! `capstan diff --base REF [--head REF] [FOLDER]`: per-object diff of every affected app, or of
//! one folder. Exit status 0 when nothing differs, 1 when something does, 2 on error (including
//! an app that fails to render at head), 3 when some app could not be rendered (not checked) at
//! base or head and nothing failed: the diff cannot vouch for it.

use std::process::ExitCode;

use capstan_worker::apps::Snapshot;
use capstan_worker::apps::affected::affected_apps;
use capstan_worker::diff::{AppDiff, DiffReport, NOT_CHECKED, SideProblem, diff_app, diff_objects};
use capstan_worker::objects::K8sObject;
use capstan_worker::render::{BackendChoice, RenderOutput, Renderer};
use capstan_worker::repo_fs::{EntryKind, RepoFs, RepoPath};

use super::apps::RepoArgs;
use super::render::{EXIT_NOT_CHECKED, folder_target, render_folder};

#[derive(clap::ValueEnum, Clone, Copy, Debug)]
pub enum Format {
    Text,
    Markdown,
    Json,
}

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 no change, 1 changes, 2 error (an app fails to render at \
    head, a bad ref), 3 some app or the folder was not checked (Capstan cannot render it: a \
    missing tool, a plugin, a source from elsewhere) and nothing failed."
)]
pub struct Args {
    /// Diff this folder (absolute, or relative to the current directory or the repository root)
    /// instead of the affected apps; the repository is the one that contains it, and nothing
    /// else of it is read.
    pub folder: Option<String>,
    /// The commit, branch or tag to compare against.
    #[arg(long)]
    pub base: String,
    /// The commit to compare (default: the working directory).
    #[arg(long)]
    pub head: Option<String>,
    /// Only this app (when it is affected).
    #[arg(long)]
    pub app: Option<String>,
    /// Output format: text for a terminal, markdown as in the PR comment, json for machines.
    #[arg(long, value_enum, default_value = "text")]
    pub format: Format,
    #[arg(long, default_value = "auto", help = super::apps::BACKEND_HELP)]
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
    let report = match &args.folder {
        Some(folder) => folder_report(&args, folder)?,
        None => apps_report(&args)?,
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
    } else if report.has_not_checked() {
        ExitCode::from(EXIT_NOT_CHECKED)
    } else if report.has_changes() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn apps_report(args: &Args) -> anyhow::Result<DiffReport> {
    let local = args.repo.open()?;
    let cfg = local.discovery_config(&args.repo.repo_urls, args.repo.default_branch.as_deref())?;
    let base_fs = local.fs(Some(&args.base))?;
    let head_fs = local.fs(args.head.as_deref())?;
    let (renderer, _) = args.repo.verified_renderer(&local, args.backend)?;
    let base = Snapshot::build(base_fs.as_ref(), &cfg, &renderer);
    let head = Snapshot::build(head_fs.as_ref(), &cfg, &renderer);
    if let Some(wanted) = &args.app {
        // A misspelt name would otherwise read as "this app has no change".
        let known: std::collections::BTreeSet<&str> = base
            .discovery
            .apps
            .iter()
            .chain(&head.discovery.apps)
            .map(|a| a.name.as_str())
            .collect();
        if !known.contains(wanted.as_str()) {
            let mut msg = format!("no app named `{wanted}` at base or head");
            match capstan_worker::settings::did_you_mean(wanted, known.iter().copied()) {
                Some(s) => msg.push_str(&format!("; did you mean `{s}`?")),
                None if known.is_empty() => {
                    msg.push_str(" (no apps found: `capstan apps` says where it looked)")
                }
                None => msg.push_str(&format!(
                    " (apps: {})",
                    known
                        .iter()
                        .take(20)
                        .copied()
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            }
            anyhow::bail!(msg);
        }
    }
    let affected: Vec<_> = affected_apps(&base, &head)
        .into_iter()
        .filter(|a| args.app.as_ref().is_none_or(|n| &a.name == n))
        .collect();
    let names: Vec<String> = affected.iter().map(|a| a.name.clone()).collect();
    let before = base.render_many(&renderer, &names);
    let after = head.render_many(&renderer, &names);
    Ok(DiffReport {
        apps: affected
            .iter()
            .zip(before.iter().zip(after.iter()))
            .map(|(a, (b, h))| {
                let mut d = diff_app(&a.name, b.as_ref(), h.as_ref());
                d.reasons = a.reasons.iter().map(ToString::to_string).collect();
                d
            })
            .collect(),
    })
}

/// One side of a folder diff: `None` when the folder does not exist there.
fn folder_side(
    fs: &dyn RepoFs,
    path: &RepoPath,
    renderer: &Renderer,
    side: &str,
) -> Option<Result<RenderOutput, SideProblem>> {
    if fs.kind(path).ok().flatten() != Some(EntryKind::Dir) {
        return None;
    }
    Some(render_folder(fs, path, renderer).map_err(|e| SideProblem {
        side: side.into(),
        status: if e.is_not_checked() {
            NOT_CHECKED.into()
        } else {
            "failed".into()
        },
        message: e.to_string(),
    }))
}

fn folder_report(args: &Args, folder: &str) -> anyhow::Result<DiffReport> {
    let target = folder_target(folder, &args.repo, |l| Ok(l.fs(args.head.as_deref())?))?;
    let Some((local, path)) = target else {
        anyhow::bail!("{folder} is not a folder");
    };
    let base_fs = local.fs(Some(&args.base))?;
    let head_fs = local.fs(args.head.as_deref())?;
    let (renderer, _) = args.repo.verified_renderer(&local, args.backend)?;
    let base = folder_side(base_fs.as_ref(), &path, &renderer, "base");
    let head = folder_side(head_fs.as_ref(), &path, &renderer, "head");
    let objects = |s: &Option<Result<RenderOutput, SideProblem>>| -> Vec<K8sObject> {
        match s {
            Some(Ok(out)) => out.objects.clone(),
            _ => Vec::new(),
        }
    };
    let name = if path.is_root() { "." } else { path.as_str() };
    let head_failed = matches!(head, Some(Err(_)));
    let mut d: AppDiff = if head_failed {
        diff_objects(name, &[], &[], &[])
    } else {
        diff_objects(name, &objects(&base), &objects(&head), &[])
    };
    for (side, s) in [("base", &base), ("head", &head)] {
        match s {
            Some(Ok(out)) => d.notes.extend(out.notes.iter().map(|n| match side {
                "base" => format!("base: {n}"),
                _ => n.clone(),
            })),
            Some(Err(p)) => d.problems.push(p.clone()),
            None => {}
        }
    }
    Ok(DiffReport {
        apps: if d.has_changes() || !d.problems.is_empty() || !d.notes.is_empty() {
            vec![d]
        } else {
            Vec::new()
        },
    })
}
