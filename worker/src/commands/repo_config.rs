//! The command settings of a repository, read from `.capstan.yaml` on its **default branch** (the
//! remote's `HEAD`), never from the pull request the comment is on: a PR cannot lower the
//! permission its own commands need or invent an environment.
//!
//! [`config_from_tree`] is the pure part (one commit's tree → [`CommandConfig`]);
//! [`load_default_branch_config`] fetches the default branch into the repository's mirror first.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{CommandConfig, CommandSettings};
use crate::apps::local::{SETTINGS_FILE, settings_repo_urls};
use crate::apps::{DiscoveryConfig, discover};
use crate::git::GitError;
use crate::repo_fs::{EntryKind, RepoFs, RepoPath};
use crate::services::GitSource;

/// Where the fetched default branch is kept in the mirror (a namespace nobody else writes).
const DEFAULT_BRANCH_REF: &str = "refs/capstan/commands/default-branch";

/// Why the command settings could not be produced.
#[derive(Debug, thiserror::Error)]
pub enum RepoConfigError {
    /// The default branch could not be fetched or read: worth retrying.
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
/// (`Ok` with `from_file == false`); a file that does not parse, or a `commands:` or
/// `environments:` section that is not valid, is an error naming the key. `repo_urls` are extra
/// names of this repository for app discovery (its fetch URL and web URL).
pub fn config_from_tree(
    fs: &dyn RepoFs,
    repo_urls: &[String],
) -> Result<(CommandConfig, bool), RepoConfigError> {
    let broken = |m: String| RepoConfigError::Broken(m);
    let path = RepoPath::new(SETTINGS_FILE).map_err(|e| broken(e.to_string()))?;
    let text = match fs.kind(&path) {
        Ok(Some(EntryKind::File)) => fs
            .read_to_string(&path)
            .map_err(|e| broken(format!("{SETTINGS_FILE}: {e}")))?,
        Ok(None) => String::new(),
        Ok(Some(_)) => return Err(broken(format!("{SETTINGS_FILE} is not a file"))),
        Err(e) => return Err(broken(format!("{SETTINGS_FILE}: {e}"))),
    };
    let from_file = !text.is_empty();
    let doc = if from_file {
        crate::yaml::parse_single(&text, SETTINGS_FILE).map_err(|e| broken(e.to_string()))?
    } else {
        Value::Null
    };
    if !doc.is_null() && !doc.is_object() {
        return Err(broken(format!(
            "{SETTINGS_FILE}: the top level is not a mapping"
        )));
    }
    let settings: CommandSettings = match doc.get("commands") {
        None | Some(Value::Null) => CommandSettings::default(),
        Some(v) => serde_json::from_value(v.clone())
            .map_err(|e| broken(format!("{SETTINGS_FILE}: commands: {e}")))?,
    };
    let environments = environment_names(doc.get("environments"))?;
    let mut urls = repo_urls.to_vec();
    urls.extend(settings_repo_urls(fs));
    let discovery = discover(
        fs,
        &DiscoveryConfig {
            repo_urls: urls.clone(),
            default_branch: doc
                .get("defaultBranch")
                .and_then(Value::as_str)
                .unwrap_or("main")
                .to_string(),
            exclude: crate::apps::local::settings_discovery_exclude(fs),
            ..DiscoveryConfig::default()
        },
    );
    if !discovery.errors.is_empty() {
        // A broken Application elsewhere must not block commands about the apps that parse.
        tracing::info!(errors = ?discovery.errors, "app discovery reported problems");
    }
    let projects: BTreeSet<String> = discovery.apps.iter().map(|a| a.project.clone()).collect();
    let apps: BTreeSet<String> = discovery.apps.into_iter().map(|a| a.name).collect();
    let mut config = settings
        .into_config(SETTINGS_FILE, environments, apps)
        .map_err(|e| broken(e.to_string()))?;
    config.repo_urls = urls;
    config.projects = projects;
    Ok((config, from_file))
}

/// `environments:` as a list of names, or of mappings with a `name`.
fn environment_names(v: Option<&Value>) -> Result<BTreeSet<String>, RepoConfigError> {
    let items = match v {
        None | Some(Value::Null) => return Ok(BTreeSet::new()),
        Some(Value::Array(a)) => a,
        Some(_) => {
            return Err(RepoConfigError::Broken(format!(
                "{SETTINGS_FILE}: environments must be a list"
            )));
        }
    };
    let mut out = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        let name = match item {
            Value::String(s) => Some(s.as_str()),
            Value::Object(m) => m.get("name").and_then(Value::as_str),
            _ => None,
        };
        let Some(name) = name.filter(|n| !n.is_empty()) else {
            return Err(RepoConfigError::Broken(format!(
                "{SETTINGS_FILE}: environments[{i}] needs a name"
            )));
        };
        out.insert(name.to_string());
    }
    Ok(out)
}

/// Fetches the remote's `HEAD` (the default branch) of `repo` into its mirror and reads the
/// command settings from that commit. Blocking git work runs off the async threads.
pub async fn load_default_branch_config(
    git: &GitSource,
    repo: &str,
    token: Option<String>,
) -> Result<LoadedConfig, RepoConfigError> {
    let git = git.clone();
    let repo = repo.to_string();
    let joined =
        tokio::task::spawn_blocking(move || load_blocking(&git, &repo, token.as_deref())).await;
    match joined {
        Ok(r) => r,
        Err(e) => Err(RepoConfigError::Broken(format!(
            "reading the settings stopped unexpectedly: {e}"
        ))),
    }
}

fn load_blocking(
    git: &GitSource,
    repo: &str,
    token: Option<&str>,
) -> Result<LoadedConfig, RepoConfigError> {
    let git_err = |source| RepoConfigError::Git {
        repo: repo.to_string(),
        source,
    };
    let url = git.url(repo).map_err(git_err)?;
    let mirror = git.mirrors.open(repo).map_err(git_err)?;
    mirror
        .fetch(&url, &[format!("+HEAD:{DEFAULT_BRANCH_REF}")], token)
        .map_err(git_err)?;
    let local = mirror.repo().map_err(git_err)?;
    let commit = local.resolve(DEFAULT_BRANCH_REF).map_err(git_err)?;
    let fs = local.tree_fs(commit).map_err(git_err)?;
    let web_url = format!("https://{}/{repo}.git", git.host);
    let (config, from_file) = config_from_tree(&fs, &[url, web_url])?;
    Ok(LoadedConfig {
        config,
        commit: commit.to_string(),
        from_file,
    })
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
        let loaded = load_default_branch_config(&src, "acme/gitops", None)
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
        let loaded = load_default_branch_config(&src, "acme/gitops", None)
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
            let err = load_default_branch_config(&src, "acme/gitops", None)
                .await
                .unwrap_err();
            assert!(matches!(err, RepoConfigError::Broken(_)), "{err}");
            assert!(err.to_string().contains(want), "{err} lacks {want}");
        }
    }

    #[tokio::test]
    async fn an_unreachable_remote_is_a_git_error() {
        let mirrors = tempfile::tempdir().unwrap();
        let src = GitSource::new(
            "file:///nonexistent/capstan/{owner}/{repo}",
            "github.com",
            mirrors.path().to_path_buf(),
        );
        let err = load_default_branch_config(&src, "acme/gitops", None)
            .await
            .unwrap_err();
        assert!(matches!(err, RepoConfigError::Git { .. }), "{err}");
    }
}
