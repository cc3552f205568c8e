//! A world for promotion tests: a bare "GitHub" repository on disk that the fake GitHub serves
//! pull requests from, the GitHub forge pointed at the fake, a store (SQLite unless the test hands
//! over another backend), and the promotion
//! engine fetching and pushing over `file://` exactly as it would over https.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use capstan_worker::forge::github::{GitHubAuth, GitHubConfig, GitHubForge};
use capstan_worker::jobs::{DefaultBranchPush, PrMerged};
use capstan_worker::promote::Engine;
use capstan_worker::services::{GitSource, PromoteRequest};
use capstan_worker::store::SqlPromotionStore;
use capstan_worker::store::runs::SqlRunStore;
use git2::{FileMode, Oid, Repository, Signature};

use crate::backend::Backend;
use crate::fake_argocd::{FakeApp, FakeArgoCd};
use crate::fake_github::FakeGitHub;
use capstan_worker::argocd::{ArgoCdCheck, ArgoClient, ArgoConfig, DryRunOptions};

pub const REPO: &str = "acme/gitops";
/// This repository's own podinfo overlays, the source and target of its promotion rule.
pub const STAGING: &str = "applications/workloads/podinfo/overlays/staging/kustomization.yaml";
pub const PRODUCTION: &str =
    "applications/workloads/podinfo/overlays/production/kustomization.yaml";

/// A file of this repository, as the worlds are seeded with the real ones.
pub fn real(path: &str) -> Vec<u8> {
    std::fs::read(crate::repo_root().join(path)).unwrap()
}

/// `/capstan promote <env>` by `bob` on PR `pr` into `main`, as the command handler hands it
/// over: `head` is the head it vouched for, `sha` the one pinned in the comment.
pub fn command_request(
    pr: u64,
    env: &str,
    head: Option<&str>,
    sha: Option<&str>,
) -> PromoteRequest {
    PromoteRequest {
        repo: REPO.into(),
        pr,
        environment: env.into(),
        app: None,
        sha: sha.map(str::to_string),
        head_at_command: head.map(str::to_string),
        actor: "bob".into(),
        installation_id: None,
        default_branch: Some("main".into()),
    }
}
pub const PAT: &str = "ghp_promote_test_token_0123456789abcdef";
pub const ARGOCD_TOKEN: &str = "argocd-promote-test-token";

/// The ArgoCD Application of podinfo in `env`, with the given sync and health.
pub fn podinfo_app(env: &str, sync: &str, health: &str) -> FakeApp {
    FakeApp::new(
        &format!("podinfo-{env}"),
        "https://github.com/acme/gitops.git",
        &format!("applications/workloads/podinfo/overlays/{env}"),
    )
    .with_status(sync, health)
}

pub struct World {
    pub dir: tempfile::TempDir,
    /// The bare repository GitHub holds.
    pub origin: PathBuf,
    pub fake: FakeGitHub,
    pub engine: Arc<Engine>,
    pub store: SqlPromotionStore,
    pub backend: Backend,
    /// The ArgoCD the engine asks about app health, when the world has one.
    pub argocd: Option<FakeArgoCd>,
}

impl World {
    /// A repository whose `main` holds `files`.
    pub async fn new(files: &[(&str, &[u8])]) -> World {
        Self::build(files, None, Backend::sqlite().await).await
    }

    /// A world whose engine reads app status from a fake ArgoCD serving `apps`.
    pub async fn with_argocd(files: &[(&str, &[u8])], apps: Vec<FakeApp>) -> World {
        Self::with_argocd_on(files, apps, Backend::sqlite().await).await
    }

    /// [`World::with_argocd`] on the given store.
    pub async fn with_argocd_on(
        files: &[(&str, &[u8])],
        apps: Vec<FakeApp>,
        backend: Backend,
    ) -> World {
        let argo = FakeArgoCd::start(ARGOCD_TOKEN).await;
        for a in apps {
            argo.add_app(a);
        }
        Self::build(files, Some(argo), backend).await
    }

    /// A world where the source environment of this repository's own rule (podinfo-staging)
    /// is Synced and Healthy, so `requireHealthy` lets promotions through.
    pub async fn with_healthy_podinfo(files: &[(&str, &[u8])]) -> World {
        Self::with_healthy_podinfo_on(files, Backend::sqlite().await).await
    }

    /// [`World::with_healthy_podinfo`] on the given store.
    pub async fn with_healthy_podinfo_on(files: &[(&str, &[u8])], backend: Backend) -> World {
        let apps = vec![podinfo_app("staging", "Synced", "Healthy")];
        Self::with_argocd_on(files, apps, backend).await
    }

    /// Drops the store (a PostgreSQL test database) once the test is done with the world.
    pub async fn finish(self) {
        self.backend.cleanup().await;
    }

    async fn build(files: &[(&str, &[u8])], argocd: Option<FakeArgoCd>, backend: Backend) -> World {
        let dir = tempfile::tempdir().unwrap();
        let origin = dir.path().join("github/acme/gitops.git");
        std::fs::create_dir_all(&origin).unwrap();
        let repo = Repository::init_bare(&origin).unwrap();
        repo.set_head("refs/heads/main").unwrap();
        drop(repo);
        let fake = FakeGitHub::start(PAT, "", None).await;
        fake.add_repo(REPO);
        fake.set_git_dir(REPO, &origin);
        let forge = GitHubForge::new(GitHubConfig::new(
            fake.api_url().parse().unwrap(),
            GitHubAuth::Token(PAT.into()),
        ))
        .unwrap();
        let db = backend.queue.db();
        let template = format!(
            "file://{}/github/{{owner}}/{{repo}}.git",
            dir.path().display()
        );
        let git = GitSource::new(template, "github.com", dir.path().join("mirrors"));
        let store = SqlPromotionStore::new(db.clone());
        let sync = argocd.as_ref().map(|argo| {
            let client =
                ArgoClient::new(&ArgoConfig::new(argo.url().parse().unwrap(), ARGOCD_TOKEN))
                    .unwrap();
            let check = ArgoCdCheck::new(client, &[], DryRunOptions::default()).unwrap();
            Arc::new(check) as Arc<dyn capstan_worker::services::AppSync>
        });
        let engine = Engine::new(
            Some(Arc::new(forge)),
            git,
            Arc::new(SqlRunStore::new(db)),
            store.clone(),
            sync,
        )
        .with_queue(backend.queue.clone());
        let w = World {
            dir,
            origin,
            fake,
            engine: Arc::new(engine),
            store,
            backend,
            argocd,
        };
        let owned: Vec<(&str, Option<&[u8]>)> = files.iter().map(|(p, b)| (*p, Some(*b))).collect();
        w.commit("main", None, "initial", &owned);
        w
    }

    pub fn git(&self) -> Repository {
        Repository::open_bare(&self.origin).unwrap()
    }

    pub fn tip(&self, branch: &str) -> Option<Oid> {
        self.git()
            .refname_to_id(&format!("refs/heads/{branch}"))
            .ok()
    }

    /// Commits `changes` (`None` deletes) on `branch`, starting it from `from` when it does not
    /// exist yet, as a person pushing would.
    pub fn commit(
        &self,
        branch: &str,
        from: Option<&str>,
        msg: &str,
        changes: &[(&str, Option<&[u8]>)],
    ) -> Oid {
        let repo = self.git();
        let parent = self
            .tip(branch)
            .or_else(|| from.and_then(|f| self.tip(f)))
            .map(|o| repo.find_commit(o).unwrap());
        let mut update = git2::build::TreeUpdateBuilder::new();
        for (path, bytes) in changes {
            match bytes {
                Some(b) => {
                    let id = repo.blob(b).unwrap();
                    update.upsert(*path, id, FileMode::Blob);
                }
                None => {
                    update.remove(*path);
                }
            }
        }
        let base = match &parent {
            Some(c) => c.tree().unwrap(),
            None => repo
                .find_tree(repo.treebuilder(None).unwrap().write().unwrap())
                .unwrap(),
        };
        let tree = repo
            .find_tree(update.create_updated(&repo, &base).unwrap())
            .unwrap();
        let sig = Signature::new(
            "Alice",
            "alice@example.com",
            &git2::Time::new(1_700_000_000, 0),
        )
        .unwrap();
        let parents: Vec<&git2::Commit<'_>> = parent.iter().collect();
        repo.commit(
            Some(&format!("refs/heads/{branch}")),
            &sig,
            &sig,
            msg,
            &tree,
            &parents,
        )
        .unwrap()
    }

    /// A file at the tip of `branch`.
    pub fn file(&self, branch: &str, path: &str) -> Vec<u8> {
        let repo = self.git();
        let tree = repo
            .find_commit(self.tip(branch).unwrap())
            .unwrap()
            .tree()
            .unwrap();
        let entry = tree.get_path(Path::new(path)).unwrap();
        repo.find_blob(entry.id()).unwrap().content().to_vec()
    }

    /// Commits reachable from `branch` whose message has `Capstan-Promotion-Id:`.
    pub fn promotion_commits(&self, branch: &str) -> Vec<(Oid, String)> {
        let repo = self.git();
        let mut walk = repo.revwalk().unwrap();
        walk.push(self.tip(branch).unwrap()).unwrap();
        walk.filter_map(|o| {
            let c = repo.find_commit(o.ok()?).ok()?;
            let m = c.message().ok()?.to_string();
            m.contains("Capstan-Promotion-Id:").then_some((c.id(), m))
        })
        .collect()
    }

    pub fn push_event(&self, before: &str, after: &str) -> DefaultBranchPush {
        DefaultBranchPush {
            repo: REPO.into(),
            git_ref: "refs/heads/main".into(),
            before: before.into(),
            after: after.into(),
            pusher: Some("alice".into()),
            installation_id: None,
        }
    }

    pub fn merged_event(&self, number: u64) -> PrMerged {
        let (pull, _, merge) = self.fake.pull(REPO, number).unwrap();
        PrMerged {
            repo: REPO.into(),
            number,
            merge_commit_sha: merge,
            head_sha: pull.head_sha,
            base_ref: pull.base_ref,
            merged_by: Some("alice".into()),
            installation_id: None,
            default_branch: Some("main".into()),
        }
    }
}
