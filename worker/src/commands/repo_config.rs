//! The command settings of a repository, read from `.capstan.yaml` on its **default branch** (the
//! remote's `HEAD`), never from the pull request the comment is on: a PR cannot lower the
//! permission its own commands need or invent an environment.
//!
//! [`config_from_tree`] is the pure part (one commit's tree → [`CommandConfig`]);
//! [`load_default_branch_config`] fetches the default branch into the repository's mirror first.

use std::collections::BTreeSet;

use super::CommandConfig;
use crate::apps::{DiscoveryConfig, discover};
use crate::git::{GitError, RepoName};
use crate::repo_fs::RepoFs;
use crate::services::GitSource;
use crate::settings::{RepoSettings, SETTINGS_FILE};

/// Where the fetched default branch is kept in the mirror (a namespace nobody else writes).
const DEFAULT_BRANCH_REF: &str = "refs/capstan/commands/default-branch";

/// Why the command settings could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum RepoConfigError {
    /// The default branch could not be fetched or read (worth retrying unless the name is bad).
    #[error("reading the default branch of {repo}: {source}")]
    Git {
        repo: String,
        #[source]
        source: GitError,
    },
    /// `.capstan.yaml` exists but cannot be used; the message is for the reply.
    #[error("{0}")]
    Broken(String),
}

impl crate::retry::Classify for RepoConfigError {
    fn retry(&self) -> crate::retry::Retry {
        match self {
            RepoConfigError::Git { source, .. } => source.retry(),
            RepoConfigError::Broken(_) => crate::retry::Retry::Permanent,
        }
    }
}

/// The settings in force and where they came from.
#[derive(Clone, Debug)]
pub struct LoadedConfig {
    pub config: CommandConfig,
    /// The default-branch commit the settings were read from.
    pub commit: String,
    /// `false` when the default branch has no `.capstan.yaml` and the defaults apply.
    pub from_file: bool,
}

/// Command settings from the tree of one commit. A missing `.capstan.yaml` gives the defaults
/// (`Ok` with `from_file == false`); a file that does not parse, or a `commands:` section that
/// is not valid, is an error naming the key. `repo_urls` are extra names of this repository for
/// app discovery (its fetch URL and web URL).
/// `default_prefix` (the service's `--command-prefix`) applies when the file sets no
/// `commands.prefix`.
pub fn config_from_tree(
    fs: &dyn RepoFs,
    repo_urls: &[String],
    default_prefix: &str,
) -> Result<(CommandConfig, bool), RepoConfigError> {
    let (mut settings, from_file) =
        RepoSettings::from_tree(fs).map_err(|e| RepoConfigError::Broken(e.to_string()))?;
    if settings.commands.prefix.is_none() {
        settings.commands.prefix = Some(default_prefix.to_string());
    }
    let config = config_from_settings(fs, &settings, repo_urls)?;
    Ok((config, from_file))
}

/// Command settings from parsed settings and the apps discovered in the same tree.
pub fn config_from_settings(
    fs: &dyn RepoFs,
    settings: &RepoSettings,
    repo_urls: &[String],
) -> Result<CommandConfig, RepoConfigError> {
    let environments: BTreeSet<String> = settings.environment_names().into_iter().collect();
    let discovery = discover(
        fs,
        &DiscoveryConfig::from_settings(settings, repo_urls.to_vec(), "main"),
    );
    if !discovery.errors.is_empty() {
        // A broken Application elsewhere must not block commands about the apps that parse.
        tracing::info!(errors = ?discovery.errors, "app discovery reported problems");
    }
    let projects: BTreeSet<String> = discovery.apps.iter().map(|a| a.project.clone()).collect();
    let apps: BTreeSet<String> = discovery.apps.into_iter().map(|a| a.name).collect();
    let mut config = settings
        .commands
        .clone()
        .into_config(SETTINGS_FILE, environments, apps)
        .map_err(|e| RepoConfigError::Broken(e.to_string()))?;
    config.repo_urls = repo_urls.to_vec();
    config.repo_urls.extend(settings.repo_urls());
    config.projects = projects;
    Ok(config)
}

/// Fetches the remote's `HEAD` (the default branch) of `repo` into its mirror and reads the
/// command settings from that commit. Git runs under the repository's lock, the reading after
/// it; both off the async threads.
pub async fn load_default_branch_config(
    git: &GitSource,
    repo: &str,
    token: Option<String>,
    default_prefix: &str,
) -> Result<LoadedConfig, RepoConfigError> {
    let git_err = |source| RepoConfigError::Git {
        repo: repo.chars().take(64).collect(),
        source,
    };
    let name = RepoName::parse(repo).map_err(|e| git_err(e.into()))?;
    let (commit, fs, url) = git
        .with_mirror(&name, move |mirror, url| {
            mirror.fetch(
                url,
                &[format!("+HEAD:{DEFAULT_BRANCH_REF}")],
                token.as_deref(),
            )?;
            let local = mirror.repo()?;
            let commit = local.resolve(DEFAULT_BRANCH_REF)?;
            Ok::<_, GitError>((commit, local.tree_fs(commit)?, url.to_string()))
        })
        .await
        .map_err(git_err)?;
    let urls = [url, format!("{}.git", git.web_url(&name))];
    let default_prefix = default_prefix.to_string();
    let (config, from_file) = crate::git::blocking(move || {
        config_from_tree(&fs, &urls, &default_prefix).map_err(BlockingError::Config)
    })
    .await
    .map_err(|e| match e {
        BlockingError::Config(e) => e,
        BlockingError::Git(e) => git_err(e),
    })?;
    Ok(LoadedConfig {
        config,
        commit: commit.to_string(),
        from_file,
    })
}

/// The reading step's failures, so the blocking pool's own failure keeps its kind.
enum BlockingError {
    Config(RepoConfigError),
    Git(GitError),
}

impl From<GitError> for BlockingError {
    fn from(e: GitError) -> Self {
        BlockingError::Git(e)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::commands::{CommandKind, Permission};
    use crate::git::fixture::{Change, RepoBuilder};

    const APP: &str = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: https://github.com/acme/gitops.git\n    path: apps/web\n  destination:\n    namespace: web\n";

    /// The remote at `dir` and a fresh mirror root for it.
    fn source(dir: &std::path::Path) -> (GitSource, tempfile::TempDir) {
        let mirrors = tempfile::tempdir().unwrap();
        let src = GitSource::new(
            format!("file://{}", dir.display()),
            "github.com",
            mirrors.path().to_path_buf(),
        );
        (src, mirrors)
    }

    fn upstream(changes: &[Change<'_>]) -> (tempfile::TempDir, GitSource, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let b = RepoBuilder::init(dir.path()).unwrap();
        b.commit("init", changes).unwrap();
        let (src, mirrors) = source(dir.path());
        (dir, src, mirrors)
    }

    #[tokio::test]
    async fn reads_the_default_branch_not_another_branch() {
        let dir = tempfile::tempdir().unwrap();
        let b = RepoBuilder::init(dir.path()).unwrap();
        let main = b
            .commit(
                "main",
                &[
                    Change::Write(
                        ".capstan.yaml",
                        b"environments:\n  - name: staging\n  - production\ncommands:\n  permissions:\n    hold: admin\n",
                    ),
                    Change::Write("argocd/web.yaml", APP.as_bytes()),
                ],
            )
            .unwrap();
        // A PR branch that tries to relax the rules; the default branch stays at `main`.
        let pr = b
            .commit(
                "relax",
                &[Change::Write(
                    ".capstan.yaml",
                    b"commands:\n  permissions:\n    hold: read\n",
                )],
            )
            .unwrap();
        b.set_ref("refs/heads/feature", pr).unwrap();
        b.set_ref("refs/heads/main", main).unwrap();
        let (src, _mirrors) = source(dir.path());
        let loaded = load_default_branch_config(&src, "acme/gitops", None, "/capstan")
            .await
            .unwrap();
        assert!(loaded.from_file);
        assert_eq!(loaded.commit, main.to_string());
        let c = &loaded.config;
        assert_eq!(c.required_permission(CommandKind::Hold), Permission::Admin);
        assert_eq!(
            c.environments.iter().cloned().collect::<Vec<_>>(),
            vec!["production".to_string(), "staging".to_string()]
        );
        assert!(c.apps.contains("web"), "{:?}", c.apps);
    }

    #[tokio::test]
    async fn a_missing_file_gives_the_defaults() {
        let (_up, src, _m) = upstream(&[Change::Write("README.md", b"hi\n")]);
        let loaded = load_default_branch_config(&src, "acme/gitops", None, "/capstan")
            .await
            .unwrap();
        assert!(!loaded.from_file);
        assert_eq!(loaded.config.prefix, "/capstan");
        assert!(loaded.config.environments.is_empty());
    }

    #[tokio::test]
    async fn broken_files_are_reported_with_the_key() {
        for (text, want) in [
            (&b"commands: [\n"[..], ".capstan.yaml"),
            (
                b"commands:\n  permissions:\n    hold: boss\n",
                "commands.permissions.hold",
            ),
            (b"commands:\n  prefx: /x\n", "prefx"),
            (b"environments: staging\n", "environments must be a list"),
            (
                b"environments:\n  - {overlay: x}\n",
                "environments[0] needs a name",
            ),
        ] {
            let (_up, src, _m) = upstream(&[Change::Write(".capstan.yaml", text)]);
            let err = load_default_branch_config(&src, "acme/gitops", None, "/capstan")
                .await
                .unwrap_err();
            assert!(matches!(err, RepoConfigError::Broken(_)), "{err}");
            assert!(err.to_string().contains(want), "{err} lacks {want}");
        }
    }

    /// The prefix lives in one place: the file's `commands.prefix`, else the service's default.
    #[test]
    fn the_repository_prefix_wins_over_the_service_default() {
        use crate::repo_fs::MemFs;
        let fs = MemFs::new().with(".capstan.yaml", "commands:\n  prefix: /cap\n");
        let (c, _) = config_from_tree(&fs, &[], "/ops").unwrap();
        assert_eq!(c.prefix, "/cap");
        assert_eq!(crate::commands::parse_comment("/cap diff", &c).len(), 1);
        assert!(crate::commands::parse_comment("/ops diff", &c).is_empty());
        let (c, from_file) = config_from_tree(&MemFs::new(), &[], "/ops").unwrap();
        assert!(!from_file);
        assert_eq!(c.prefix, "/ops");
    }

    #[tokio::test]
    async fn an_unreachable_remote_is_a_git_error() {
        let mirrors = tempfile::tempdir().unwrap();
        let src = GitSource::new(
            "file:///nonexistent/capstan/{owner}/{repo}",
            "github.com",
            mirrors.path().to_path_buf(),
        );
        let err = load_default_branch_config(&src, "acme/gitops", None, "/capstan")
            .await
            .unwrap_err();
        assert!(matches!(err, RepoConfigError::Git { .. }), "{err}");
    }
}
