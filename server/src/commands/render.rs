//! `capstan render APP|DIR`: the multi-document YAML an app or folder renders to, in the form
//! `kustomize build` prints.
//!
//! A folder may be anywhere (absolute, or relative to the current directory): the repository is
//! the one that contains it, and only what the folder's render reads is looked at (the rest of
//! the repository is never walked). Exit status: 0 rendered, 2 error, 3 not checked (Capstan
//! cannot render it: a missing tool, a plugin, a source from elsewhere; the reason is
//! printed).

use std::process::ExitCode;

use capstan_worker::apps::local::LocalRepo;
use capstan_worker::apps::{RenderedApp, Snapshot};
use capstan_worker::render::{
    BackendChoice, RenderError, RenderOutput, RenderSource, Renderer, source::detect_kind,
};
use capstan_worker::repo_fs::{EntryKind, RepoFs, RepoPath};

use super::apps::RepoArgs;

/// Exit status of `render` and `diff` when some app or folder could not be rendered.
pub const EXIT_NOT_CHECKED: u8 = 3;

#[derive(clap::Args, Debug)]
#[command(
    after_help = "Exit status: 0 rendered, 2 error, 3 not checked (Capstan cannot render \
    it: a missing tool, a plugin, a source from elsewhere; the reason is printed)."
)]
pub struct Args {
    /// An Application name, or a folder anywhere (absolute, or relative to the current directory
    /// or the repository root); the repository is the one that contains the folder.
    pub target: String,
    /// Read the tree of this commit, branch or tag instead of the working directory.
    #[arg(long = "ref")]
    pub reference: Option<String>,
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

/// The repository and folder `target` names when it is a folder: on disk (the repository that
/// contains it), else relative to the repository root in the tree read. `None`: not a folder.
pub fn folder_target(
    target: &str,
    repo: &RepoArgs,
    fs_of: impl Fn(&LocalRepo) -> anyhow::Result<Box<dyn RepoFs>>,
) -> anyhow::Result<Option<(LocalRepo, RepoPath)>> {
    if let Some((local, path)) = LocalRepo::containing(target, &repo.repo)? {
        return Ok(Some((local, path)));
    }
    let local = repo.open()?;
    let Ok(path) = local.repo_path(target) else {
        return Ok(None);
    };
    let fs = fs_of(&local)?;
    if fs.kind(&path).ok().flatten() == Some(EntryKind::Dir) {
        return Ok(Some((local, path)));
    }
    Ok(None)
}

/// Renders one folder as ArgoCD would pick its type.
pub fn render_folder(
    fs: &dyn RepoFs,
    path: &RepoPath,
    renderer: &Renderer,
) -> Result<RenderOutput, RenderError> {
    let kind = detect_kind(fs, path).map_err(|source| RenderError::Input {
        file: path.to_string(),
        source,
    })?;
    let source = RenderSource {
        release_name: path.file_name().to_string(),
        path: path.clone(),
        kind,
        namespace: None,
    };
    renderer.render(fs, &source)
}

fn print_output(out: &RenderOutput) {
    for n in &out.notes {
        eprintln!("note: {n}");
    }
    print!("{}", out.yaml);
}

fn run_inner(args: Args) -> anyhow::Result<ExitCode> {
    // A folder wins when the argument names one; otherwise it must be an Application.
    let folder = folder_target(&args.target, &args.repo, |l| {
        Ok(l.fs(args.reference.as_deref())?)
    })?;
    if let Some((local, path)) = folder {
        let fs = local.fs(args.reference.as_deref())?;
        let (renderer, _) = args.repo.verified_renderer(&local, args.backend)?;
        return match render_folder(fs.as_ref(), &path, &renderer) {
            Ok(out) => {
                print_output(&out);
                Ok(ExitCode::SUCCESS)
            }
            Err(e) if e.is_not_checked() => {
                eprintln!("{}: not checked: {e}", args.target);
                Ok(ExitCode::from(EXIT_NOT_CHECKED))
            }
            Err(e) => Err(e.into()),
        };
    }
    let local = args.repo.open()?;
    let fs = local.fs(args.reference.as_deref())?;
    let (renderer, _) = args.repo.verified_renderer(&local, args.backend)?;
    let cfg = local.discovery_config(&args.repo.repo_urls, args.repo.default_branch.as_deref())?;
    let snap = Snapshot::build(fs.as_ref(), &cfg, &renderer);
    let Some(r) = snap.render(&renderer, &args.target) else {
        let near = capstan_worker::settings::did_you_mean_hint(
            &args.target,
            snap.discovery.apps.iter().map(|a| a.name.as_str()),
        );
        anyhow::bail!(
            "{} is neither a folder in the repository nor an Application (see `capstan apps`){near}",
            args.target
        );
    };
    let not_checked = r.not_checked();
    match r.outcome {
        RenderedApp::Rendered(out) => {
            print_output(&out);
            match not_checked {
                Some(why) => {
                    eprintln!("{}: not checked: {why}", args.target);
                    Ok(ExitCode::from(EXIT_NOT_CHECKED))
                }
                None => Ok(ExitCode::SUCCESS),
            }
        }
        RenderedApp::NotChecked { reason } => {
            eprintln!("{}: not checked: {reason}", args.target);
            Ok(ExitCode::from(EXIT_NOT_CHECKED))
        }
        RenderedApp::Failed { error } => anyhow::bail!("{}: {error}", args.target),
    }
}
