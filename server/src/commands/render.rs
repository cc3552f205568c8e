//! `capstan render APP|DIR`: the multi-document YAML an app or folder renders to, in the form
//! `kustomize build` prints.

use std::process::ExitCode;

use capstan_worker::apps::{RenderedApp, Snapshot};
use capstan_worker::render::{BackendChoice, RenderSource, source::detect_kind};

use super::apps::RepoArgs;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// An Application name, or a folder (relative to the current directory or the repo root).
    pub target: String,
    /// Read the tree of this commit, branch or tag instead of the working directory.
    #[arg(long = "ref")]
    pub reference: Option<String>,
    /// auto (native engine, falling back to the kustomize binary), native, kustomize, helm, directory.
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
    let fs = local.fs(args.reference.as_deref())?;
    let renderer = args.repo.renderer(args.backend);
    let cfg = local.discovery_config(&args.repo.repo_urls, args.repo.default_branch.as_deref())?;

    // A folder wins when the argument names one; otherwise it must be an Application.
    let as_dir = local
        .repo_path(&args.target)
        .ok()
        .filter(|p| fs.kind(p).ok().flatten() == Some(capstan_worker::repo_fs::EntryKind::Dir));
    if let Some(path) = as_dir {
        let kind = detect_kind(fs.as_ref(), &path)?;
        let source = RenderSource {
            release_name: path.file_name().to_string(),
            path,
            kind,
            namespace: None,
        };
        let out = renderer.render(fs.as_ref(), &source)?;
        for n in &out.notes {
            eprintln!("note: {n}");
        }
        print!("{}", out.yaml);
        return Ok(ExitCode::SUCCESS);
    }
    let snap = Snapshot::build(fs.as_ref(), &cfg, &renderer);
    let Some(r) = snap.render(&renderer, &args.target) else {
        anyhow::bail!(
            "{} is neither a folder in the repository nor an Application (see `capstan apps`)",
            args.target
        );
    };
    match r.outcome {
        RenderedApp::Rendered(out) => {
            for n in &out.notes {
                eprintln!("note: {n}");
            }
            print!("{}", out.yaml);
            Ok(ExitCode::SUCCESS)
        }
        RenderedApp::NotRendered { reason } => {
            eprintln!("{}: not rendered: {reason}", args.target);
            Ok(ExitCode::from(2))
        }
        RenderedApp::Failed { error } => anyhow::bail!("{}: {error}", args.target),
    }
}
