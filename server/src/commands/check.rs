//! `capstan check`: render the apps of a local checkout, run every policy layer, print findings
//! grouped by app, exit 1 on any `deny` (2 when the check itself cannot run).
//!
//! Apps come from [`KubectlKustomizeSource`], a temporary adapter (kustomization directories
//! rendered with `kubectl kustomize`) until the render layer's app graph replaces it.
//! With `--base REF`, `.capstan.yaml` and the policy folders are read from REF (the default
//! branch), never from the working tree under review, and only apps whose input files differ from
//! REF are reported.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::sync::Arc;

use anyhow::{Context, bail};
use capstan_worker::policy::source::{AppSource, KubectlKustomizeSource};
use capstan_worker::policy::{PolicyEngine, PolicySources, format};
use capstan_worker::repo_fs::{DirFs, EntryKind, FsError, MAX_FILE_BYTES, RepoFs, RepoPath};

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
        Some(base) => PolicySources::read(&GitRefFs::new(root, base)?)
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
    }
    let out = match args.format {
        Format::Text => format::text(&report),
        Format::Json => format::json(&report),
        Format::Sarif => format::sarif(&report),
        Format::Markdown => format::markdown(&report),
    };
    print!("{out}");
    if !out.ends_with('\n') {
        println!();
    }
    Ok(report.passes(engine.settings().fail_on))
}

fn git(root: &std::path::Path, args: &[&str]) -> anyhow::Result<Vec<u8>> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(out.stdout)
}

/// Files that differ between `base` and the working tree, plus untracked files.
fn changed_files(root: &std::path::Path, base: &str) -> anyhow::Result<BTreeSet<String>> {
    let mut set = BTreeSet::new();
    for args in [
        &["diff", "--name-only", base, "--"][..],
        &["ls-files", "--others", "--exclude-standard"][..],
    ] {
        for line in String::from_utf8_lossy(&git(root, args)?).lines() {
            set.insert(line.to_string());
        }
    }
    Ok(set)
}

/// A read-only view of one commit through the git CLI. Temporary, like the kustomize adapter: the
/// git module's tree view replaces it at merge.
struct GitRefFs {
    root: PathBuf,
    commit: String,
}

impl GitRefFs {
    fn new(root: &std::path::Path, rev: &str) -> anyhow::Result<Self> {
        let commit = git(
            root,
            &["rev-parse", "--verify", &format!("{rev}^{{commit}}")],
        )
        .with_context(|| format!("unknown base ref {rev}"))?;
        Ok(GitRefFs {
            root: root.to_path_buf(),
            commit: String::from_utf8_lossy(&commit).trim().to_string(),
        })
    }

    fn spec(&self, path: &RepoPath) -> String {
        format!("{}:{}", self.commit, path.as_str())
    }

    fn backend(path: &RepoPath, e: anyhow::Error) -> FsError {
        FsError::Backend {
            path: path.to_string(),
            message: format!("{e:#}"),
        }
    }
}

impl RepoFs for GitRefFs {
    fn kind(&self, path: &RepoPath) -> Result<Option<EntryKind>, FsError> {
        if path.is_root() {
            return Ok(Some(EntryKind::Dir));
        }
        match git(&self.root, &["cat-file", "-t", &self.spec(path)]) {
            Ok(t) => Ok(match String::from_utf8_lossy(&t).trim() {
                "tree" => Some(EntryKind::Dir),
                "blob" => Some(EntryKind::File),
                _ => None,
            }),
            Err(_) => Ok(None),
        }
    }

    fn read(&self, path: &RepoPath) -> Result<Arc<[u8]>, FsError> {
        let size = git(&self.root, &["cat-file", "-s", &self.spec(path)])
            .map_err(|_| FsError::NotFound(path.to_string()))?;
        let size: u64 = String::from_utf8_lossy(&size)
            .trim()
            .parse()
            .unwrap_or(u64::MAX);
        if size > MAX_FILE_BYTES {
            return Err(FsError::TooLarge {
                path: path.to_string(),
                size,
                limit: MAX_FILE_BYTES,
            });
        }
        let bytes = git(&self.root, &["cat-file", "blob", &self.spec(path)])
            .map_err(|e| Self::backend(path, e))?;
        Ok(Arc::from(bytes))
    }

    fn list_dir(&self, path: &RepoPath) -> Result<Vec<(String, EntryKind)>, FsError> {
        let spec = if path.is_root() {
            self.commit.clone()
        } else {
            self.spec(path)
        };
        let out = git(&self.root, &["ls-tree", &spec]).map_err(|e| Self::backend(path, e))?;
        let mut entries = Vec::new();
        for line in String::from_utf8_lossy(&out).lines() {
            let Some((meta, name)) = line.split_once('\t') else {
                continue;
            };
            // Symlinks (mode 120000) and submodules are not followed.
            let kind = match meta.split_whitespace().nth(1) {
                Some("tree") => EntryKind::Dir,
                Some("blob") if !meta.starts_with("120000") => EntryKind::File,
                _ => continue,
            };
            entries.push((name.to_string(), kind));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(entries)
    }
}
