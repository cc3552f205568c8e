//! What job handlers share: the stores, the forge, the git source and the links they print.
//! Built once by `capstan serve` (or a test) and handed to each handler's constructor.

use std::sync::Arc;

use crate::forge::Forge;
use crate::queue::Queue;
use crate::store::RunStore;

/// Where repositories are fetched from, and the one async door to git (see [`crate::git::source`]).
pub use crate::git::GitSource;

/// Shared by every handler.
#[derive(Clone)]
pub struct Services {
    pub queue: Arc<dyn Queue>,
    pub runs: Arc<dyn RunStore>,
    /// `None` without GitHub credentials: reports then go to the store and the log only.
    pub forge: Option<Arc<dyn Forge>>,
    pub git: GitSource,
    /// Base URL of the dashboard as users reach it (`http://localhost:8080`), for run links.
    pub public_url: String,
    /// Cluster-side checks run per affected app (empty when none is configured).
    pub cluster: Vec<Arc<dyn ClusterCheck>>,
    /// ArgoCD sync, when configured.
    pub sync: Option<Arc<dyn AppSync>>,
    /// The promotion engine, when this build has it.
    pub promoter: Option<Arc<dyn Promoter>>,
    /// Bounds on what one pull request can make a job do.
    pub limits: crate::limits::Limits,
}

impl Services {
    /// Link to a run's page.
    pub fn run_url(&self, id: i64) -> String {
        format!("{}/runs/{id}", self.public_url.trim_end_matches('/'))
    }
}

/// What one affected app looks like to a cluster-side checker.
#[derive(Clone, Debug)]
pub struct ClusterCheckRequest<'a> {
    pub repo: &'a str,
    pub pr: u64,
    /// The ArgoCD Application name.
    pub app: &'a str,
    pub environment: Option<&'a str>,
    /// 40-hex head commit.
    pub head_sha: &'a str,
    /// The app's objects rendered at head (what would be applied).
    pub head_objects: &'a [crate::objects::K8sObject],
    /// The objects that differ between base and head.
    pub changed: &'a [crate::objects::ObjectId],
}

/// What a cluster-side checker found for one app. Every part is optional: a checker that is not
/// configured for the app returns `ClusterFindings::default()`.
#[derive(Clone, Debug, Default)]
pub struct ClusterFindings {
    /// ArgoCD's sync/health/dry-run verdict, or why it could not be asked.
    pub argocd: Option<crate::report::ArgoStatus>,
    /// Head manifests against the live cluster state (what will change in the cluster).
    pub live_diff: Option<crate::diff::AppDiff>,
    /// Server-side dry-run rejections and the like, as report findings.
    pub findings: Vec<crate::report::ReportFinding>,
    /// One-line notes shown in the app's section (e.g. "kube dry-run: 4 objects accepted").
    pub notes: Vec<String>,
}

/// A cluster-side check run per affected app during `pr_check` (ArgoCD live diff and dry-run,
/// Kubernetes server-side dry-run). Implementations never fail the run: errors become
/// `ArgoStatus::Unreachable` or notes.
#[async_trait::async_trait]
pub trait ClusterCheck: Send + Sync + 'static {
    /// Short name for logs (`argocd`, `kube-dry-run`).
    fn name(&self) -> &'static str;
    async fn check_app(&self, req: &ClusterCheckRequest<'_>) -> ClusterFindings;
}

/// Why ArgoCD could not do what [`AppSync`] asked; the text is for the reply.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// ArgoCD could not be reached or refused the request.
    #[error(transparent)]
    Argo(#[from] crate::argocd::ArgoError),
    /// The request cannot be made as asked (a revision for an app with several sources).
    #[error("{0}")]
    Refused(String),
    /// This client cannot read what was asked.
    #[error("{0} is not supported by this client")]
    Unsupported(&'static str),
}

impl crate::retry::Classify for SyncError {
    fn retry(&self) -> crate::retry::Retry {
        match self {
            SyncError::Argo(e) => e.retry(),
            SyncError::Refused(_) | SyncError::Unsupported(_) => crate::retry::Retry::Permanent,
        }
    }
}

/// `/capstan sync <app>` and the promotion follow-up: ask ArgoCD to sync an app.
#[async_trait::async_trait]
pub trait AppSync: Send + Sync + 'static {
    /// Start a sync of `app` at `revision` (or the app's target revision); the text is the
    /// outcome for the reply, the error says why it could not start.
    async fn sync_app(&self, app: &str, revision: Option<&str>) -> Result<String, SyncError>;

    /// Where the app takes its manifests from and its project, as ArgoCD reports them (never
    /// from the repository's files, which a PR may change); the error says why it could not be
    /// read. Implementations that cannot read it keep the default, and `sync` then refuses.
    async fn app_origin(&self, app: &str) -> Result<AppOrigin, SyncError> {
        let _ = app;
        Err(SyncError::Unsupported("reading an app's sources"))
    }

    /// The app's sync and health status as ArgoCD reports them; the error says why it could not
    /// be read. Implementations that cannot read status keep the default.
    async fn app_status(&self, app: &str) -> Result<AppStatus, SyncError> {
        let _ = app;
        Err(SyncError::Unsupported("reading an app's status"))
    }
}

/// An ArgoCD Application's project and the `repoURL` of each of its sources.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppOrigin {
    /// `spec.project` (`default` when ArgoCD leaves it empty).
    pub project: String,
    pub repo_urls: Vec<String>,
}

/// One app's state as the ArgoCD reports it (`None`: the field was absent).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AppStatus {
    /// `Synced`, `OutOfSync`, `Unknown`.
    pub sync: Option<String>,
    /// `Healthy`, `Progressing`, `Degraded`, `Suspended`, `Missing`, `Unknown`.
    pub health: Option<String>,
}

impl AppStatus {
    pub fn synced_and_healthy(&self) -> bool {
        self.sync.as_deref() == Some("Synced") && self.health.as_deref() == Some("Healthy")
    }
}

/// `/capstan promote <env> [app] [sha]` as the command handler hands it to the promotion engine.
#[derive(Clone, Debug)]
pub struct PromoteRequest {
    pub repo: String,
    pub pr: u64,
    pub environment: String,
    pub app: Option<String>,
    /// The sha given in the command, if any.
    pub sha: Option<String>,
    /// The PR head the command handler established the commenter could have seen (Capstan knew
    /// it as the head before the comment was written); the engine refuses if the head moved
    /// since. `None` with a `sha`: the pinned sha decides.
    pub head_at_command: Option<String>,
    pub actor: String,
    pub installation_id: Option<u64>,
    /// The repository's default branch (from the webhook's repository); a PR into any other
    /// branch never promotes. `None` refuses.
    pub default_branch: Option<String>,
}

#[async_trait::async_trait]
pub trait Promoter: Send + Sync + 'static {
    /// Run the promotion: `Ok` is the outcome for the reply (refusals included), `Err` why it
    /// could not run (the engine has recorded what it could in the audit either way).
    async fn promote(&self, req: &PromoteRequest) -> Result<String, crate::promote::PromoteError>;

    /// A promotion refused before it reached the engine (the commenter's permission), so the
    /// audit shows every attempt. Best effort: the refusal is answered whatever happens here.
    async fn record_refusal(&self, req: &PromoteRequest, reason: &str) {
        let _ = (req, reason);
    }
}
