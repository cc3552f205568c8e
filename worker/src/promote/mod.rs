//! Merge-to-deploy: the repository's promotion rules (`.capstan.yaml` on the default branch)
//! move what a merge changed in one environment's overlay to the next, by a commit on the
//! default branch (`direct`) or a promotion pull request (`pull-request`), and every attempt is
//! recorded in the audit trail (`store::promotions`).
//!
//! - [`rules`]: the `promotion:` section; [`edit`]: format-preserving YAML edits;
//! - [`plan`]: the edits one rule makes; [`apply`]: git (trailers, commits, pushes);
//! - [`handler`]: `pr_merged` and `default_branch_push` jobs; [`command`]: `/capstan promote`;
//! - [`audit`]: the texts (commit message, PR body, notes) and the audit record.
//!
//! Exactly-once comes from git, not from the queue: each promotion has a key (rule, app, target,
//! change range) written as a `Capstan-Promotion-Id:` trailer, and every attempt first looks for
//! a commit carrying it. Pushes are never forced; a rejected push starts over on the new tip.

pub mod apply;
pub mod audit;
pub mod command;
pub mod edit;
pub mod handler;
pub mod plan;
pub mod rules;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use git2::{Oid, Repository};
use tracing::{info, warn};

use crate::forge::{Forge, ForgeError, NewPullRequest, PullRequestState, PullUpdate};
use crate::git::mirror::Mirror;
use crate::git::push::{PushError, push_branch};
use crate::git::{GitError, NameError, RepoName, Sha, other as step};
use crate::services::{AppSync, GitSource};
use crate::store::{
    PromotionOutcome, PromotionRecord, PromotionStatus, RunStore, SqlPromotionStore, StoreError,
};

use self::apply::{commit_files, fetch_branch, find_by_trailer};
use self::plan::{Plan, PlanError, Trees};
use self::rules::{Matched, Mode, OwnedMatch, Rules};

/// What stops a promotion job (as opposed to an outcome such as a conflict, which is recorded).
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    #[error(transparent)]
    Git(#[from] GitError),
    #[error(transparent)]
    Forge(#[from] ForgeError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Rules(#[from] rules::RulesError),
    #[error(transparent)]
    Settings(#[from] crate::settings::SettingsError),
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Injected(#[from] crate::failpoint::Injected),
}

impl crate::retry::Classify for PromoteError {
    fn retry(&self) -> crate::retry::Retry {
        match self {
            PromoteError::Git(e) => e.retry(),
            PromoteError::Forge(e) => e.retry(),
            PromoteError::Store(e) => e.retry(),
            PromoteError::Rules(_) | PromoteError::Settings(_) | PromoteError::Input(_) => {
                crate::retry::Retry::Permanent
            }
            PromoteError::Injected(_) => crate::retry::Retry::Transient,
        }
    }
}

impl From<NameError> for PromoteError {
    fn from(e: NameError) -> Self {
        PromoteError::Input(e.to_string())
    }
}

/// Called before every push attempt (tests use it to make two promotions race).
pub type PushHook = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// The promotion engine, shared by the job handlers and `/capstan promote`.
#[derive(Clone)]
pub struct Engine {
    forge: Option<Arc<dyn Forge>>,
    git: GitSource,
    runs: Arc<dyn RunStore>,
    store: SqlPromotionStore,
    sync: Option<Arc<dyn AppSync>>,
    /// Push attempts per promotion before giving up on a busy branch.
    max_push_attempts: usize,
    before_push: Option<PushHook>,
    /// Where a promotion waiting for its soak time schedules its own re-run; without it the
    /// record says when `/capstan promote` may be used instead.
    queue: Option<Arc<dyn crate::queue::Queue>>,
    /// `requireHealthy` on a merge: how long until the source app is checked again, and how
    /// many re-checks before the promotion is refused.
    health_retry: std::time::Duration,
    health_checks: u32,
}

/// Where a change comes from.
#[derive(Clone, Debug)]
pub struct Source {
    pub repo: RepoName,
    pub default_branch: String,
    /// The commit whose overlay values are promoted.
    pub sha: Sha,
    /// Only values that differ between this commit and `sha` are promoted (merges); `None`
    /// promotes every listed value that differs from the target (commands).
    pub before: Option<Sha>,
    pub pr: Option<u64>,
    /// `merge` or `command`.
    pub trigger: String,
    pub actor: String,
}

/// How one promotion ended, as recorded.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub record_id: i64,
    pub key: String,
    pub app: String,
    pub target_env: String,
    pub status: PromotionStatus,
    pub summary: String,
    pub detail: Option<String>,
    pub result_pr: Option<u64>,
    pub result_sha: Option<String>,
}

impl Outcome {
    /// One line for replies and logs.
    pub fn line(&self) -> String {
        let mut s = format!(
            "{} → {}: {}",
            self.app,
            self.target_env,
            self.status.as_str().replace('_', " ")
        );
        if let Some(pr) = self.result_pr {
            s.push_str(&format!(" (#{pr})"));
        } else if let Some(sha) = &self.result_sha {
            s.push_str(&format!(" ({})", &sha[..sha.len().min(12)]));
        }
        if !self.summary.is_empty() && self.summary != plan::NOTHING_TO_PROMOTE {
            s.push_str(&format!(" — {}", self.summary));
        }
        if let Some(d) = &self.detail {
            s.push_str(&format!(". {d}"));
        }
        s
    }
}

/// What a finished attempt reports before it is recorded.
struct Landed {
    status: PromotionStatus,
    plan: Plan,
    detail: Option<String>,
    result_pr: Option<u64>,
    result_sha: Option<String>,
}

impl Landed {
    fn new(status: PromotionStatus, plan: Plan) -> Self {
        Landed {
            status,
            plan,
            detail: None,
            result_pr: None,
            result_sha: None,
        }
    }
}

/// The promotion branch of one (app, target).
pub fn promotion_branch(app: &str, target: &str) -> String {
    format!("capstan/promote/{app}/{target}")
}

impl Engine {
    pub fn new(
        forge: Option<Arc<dyn Forge>>,
        git: GitSource,
        runs: Arc<dyn RunStore>,
        store: SqlPromotionStore,
        sync: Option<Arc<dyn AppSync>>,
    ) -> Self {
        Engine {
            forge,
            git,
            runs,
            store,
            sync,
            max_push_attempts: 5,
            before_push: None,
            queue: None,
            health_retry: std::time::Duration::from_secs(120),
            health_checks: 15,
        }
    }

    /// Where promotions waiting for a soak time or a healthy source schedule their re-runs.
    pub fn with_queue(mut self, queue: Arc<dyn crate::queue::Queue>) -> Self {
        self.queue = Some(queue);
        self
    }

    /// The forge pull requests and comments go to (a wrapper around the usual one, in tests
    /// that make it fail at a chosen step).
    pub fn with_forge(mut self, forge: Arc<dyn Forge>) -> Self {
        self.forge = Some(forge);
        self
    }

    /// The forge this engine talks to.
    pub fn forge(&self) -> Option<&Arc<dyn Forge>> {
        self.forge.as_ref()
    }

    /// Runs just before each push (after the promotion commit is built): tests use it to make
    /// two promotions meet on the same tip.
    pub fn with_before_push(mut self, hook: PushHook) -> Self {
        self.before_push = Some(hook);
        self
    }

    /// `requireHealthy`: how many times the source app is checked before the promotion is
    /// refused.
    pub fn with_health_checks(mut self, checks: u32) -> Self {
        self.health_checks = checks;
        self
    }

    async fn token(&self, repo: &str) -> Result<Option<String>, PromoteError> {
        Ok(match &self.forge {
            Some(f) => f.git_token(repo).await?,
            None => None,
        })
    }

    /// Fetches the default branch and the source commits into the mirror, and reads the rules
    /// from the default branch's `.capstan.yaml`.
    pub(crate) async fn prepare(
        &self,
        source: &Source,
        token: Option<&str>,
    ) -> Result<Rules, PromoteError> {
        let branch = source.default_branch.clone();
        let wanted: Vec<Oid> = std::iter::once(source.sha)
            .chain(source.before)
            .map(Sha::oid)
            .collect();
        let token = token.map(str::to_string);
        let what = format!(
            "{}: the default branch {branch} does not exist",
            source.repo
        );
        let bytes = self
            .git
            .with_mirror(&source.repo, move |mirror, url| {
                let tip = fetch_branch(mirror, url, &branch, token.as_deref())?
                    .ok_or(PromoteError::Input(what))?;
                for oid in wanted {
                    apply::ensure_commit(mirror, url, oid, &branch, token.as_deref())?;
                }
                let repo = open_bare(mirror)?;
                let tree = repo
                    .find_commit(tip)
                    .and_then(|c| c.tree())
                    .map_err(step("reading the default branch"))?;
                Ok::<_, PromoteError>(plan::read_blob(
                    &repo,
                    &tree,
                    crate::settings::SETTINGS_FILE,
                ))
            })
            .await?;
        let settings = match bytes {
            Some(bytes) => crate::settings::RepoSettings::parse(&String::from_utf8_lossy(&bytes))?,
            None => crate::settings::RepoSettings::default(),
        };
        Ok(Rules::from_settings(&settings)?)
    }

    /// The key of one promotion: stable across retries and redeliveries of the same change.
    pub fn key(m: &Matched<'_>, source: &Source) -> String {
        let range = match &source.before {
            Some(b) => format!("{b}..{}", source.sha),
            None => format!("command:{}", source.sha),
        };
        format!(
            "{}/{}/{}/{range}",
            m.rule.name, m.app, m.rule.to.environment
        )
    }

    /// Runs one matched rule to its end and records it (a retried job updates its record).
    pub(crate) async fn promote_one(
        &self,
        m: &Matched<'_>,
        source: &Source,
        token: Option<&str>,
    ) -> Result<Outcome, PromoteError> {
        let key = Self::key(m, source);
        let record = PromotionRecord {
            id: 0,
            promotion_key: key.clone(),
            repo: source.repo.to_string(),
            app: m.app.clone(),
            source_env: m.rule.from.environment.clone(),
            target_env: m.rule.to.environment.clone(),
            trigger: source.trigger.clone(),
            actor: source.actor.clone(),
            source_pr: source.pr,
            source_sha: source.sha.to_string(),
            mode: m.rule.mode.as_str().to_string(),
            summary: String::new(),
            status: PromotionStatus::Pending,
            detail: None,
            result_pr: None,
            result_sha: None,
            created_at: 0,
            updated_at: 0,
        };
        let existing = match source.trigger.as_str() {
            "merge" => self.store.find_by_key(&key).await?,
            _ => None,
        };
        let id = match existing {
            Some(r) => r.id,
            None => self.store.insert(&record).await?,
        };
        let soak = match source.trigger.as_str() {
            "merge" => self.soak_wait(m, source, &key).await?,
            _ => None,
        };
        let landed = match (soak, self.held(source).await?) {
            (Some(waiting), _) => {
                let mut l = Landed::new(PromotionStatus::Pending, Plan::default());
                l.detail = Some(waiting);
                l
            }
            (None, Some(by)) => {
                let mut l = Landed::new(PromotionStatus::Refused, Plan::default());
                l.detail = Some(format!(
                    "the source pull request is on hold (by {by}); `/capstan unhold` to allow it"
                ));
                l
            }
            (None, None) => match self.health_gate(m, source, &key).await? {
                Some(blocked) => blocked,
                None => self.land(m, source, &key, token).await?,
            },
        };
        let out = PromotionOutcome {
            status: landed.status,
            summary: landed.plan.summary(),
            detail: landed.detail,
            result_pr: landed.result_pr,
            result_sha: landed.result_sha,
        };
        self.store.finish(id, &out).await?;
        info!(
            key = %key,
            status = out.status.as_str(),
            result_pr = out.result_pr,
            result_sha = out.result_sha.as_deref().unwrap_or("-"),
            "promotion recorded"
        );
        let outcome = Outcome {
            record_id: id,
            key,
            app: m.app.clone(),
            target_env: m.rule.to.environment.clone(),
            status: out.status,
            summary: out.summary,
            detail: out.detail,
            result_pr: out.result_pr,
            result_sha: out.result_sha,
        };
        self.report_back(m, source, &outcome).await;
        Ok(outcome)
    }

    /// When the rule's soak time since the source commit has not passed: schedule a re-run of
    /// this change for when it has, and say so.
    async fn soak_wait(
        &self,
        m: &Matched<'_>,
        source: &Source,
        key: &str,
    ) -> Result<Option<String>, PromoteError> {
        let Some(soak) = m.rule.conditions.soak else {
            return Ok(None);
        };
        let oid = source.sha.oid();
        let committed = self
            .git
            .with_mirror(&source.repo, move |mirror, _| {
                open_bare(mirror)?
                    .find_commit(oid)
                    .map(|c| c.committer().when().seconds())
                    .map_err(step("reading the source commit"))
            })
            .await?;
        let soak_ms = i64::try_from(soak.as_millis()).unwrap_or(i64::MAX);
        let due = committed.saturating_mul(1000).saturating_add(soak_ms);
        if due <= crate::queue::now_ms() {
            return Ok(None);
        }
        let when = time::OffsetDateTime::from_unix_timestamp(due / 1000)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .unwrap_or_else(|| format!("{due} ms"));
        let Some(queue) = &self.queue else {
            return Ok(Some(format!(
                "waiting for the soak time until {when}; run `/capstan promote` after that"
            )));
        };
        let push = crate::jobs::DefaultBranchPush {
            repo: source.repo.to_string(),
            git_ref: format!("refs/heads/{}", source.default_branch),
            before: source.before.map(String::from).unwrap_or_default(),
            after: source.sha.to_string(),
            pusher: None,
            installation_id: None,
        };
        let mut job = push.into_job();
        job.dedupe_key = format!("{}:soak:{key}", job.dedupe_key);
        job.run_after = Some(due);
        queue
            .enqueue(&job)
            .await
            .map_err(|e| PromoteError::Input(format!("scheduling the soaked promotion: {e}")))?;
        Ok(Some(format!(
            "waiting for the soak time; promotes at {when}"
        )))
    }

    /// `requireHealthy`: the source environment's ArgoCD app (`<app>-<source env>`, as the sync
    /// after a direct promotion names the target's) must be Synced and Healthy. Without ArgoCD
    /// the condition cannot be checked, so the promotion is refused rather than waved through.
    /// A merge waits (`pending`) and re-checks later, a bounded number of times; a command is
    /// refused with the app's state.
    async fn health_gate(
        &self,
        m: &Matched<'_>,
        source: &Source,
        key: &str,
    ) -> Result<Option<Landed>, PromoteError> {
        if !m.rule.conditions.require_healthy {
            return Ok(None);
        }
        let app = format!("{}-{}", m.app, m.rule.from.environment);
        let blocked = |status, detail: String| {
            let mut l = Landed::new(status, Plan::default());
            l.detail = Some(detail);
            Ok(Some(l))
        };
        let Some(sync) = &self.sync else {
            return blocked(
                PromotionStatus::Refused,
                format!(
                    "requireHealthy needs ArgoCD configured: Capstan cannot check that {app} is Synced and Healthy"
                ),
            );
        };
        let why = match sync.app_status(&app).await {
            Ok(st) if st.synced_and_healthy() => return Ok(None),
            Ok(st) => format!(
                "requireHealthy: the source app {app} is {} and {}, not Synced and Healthy",
                st.sync.as_deref().unwrap_or("of unknown sync status"),
                st.health.as_deref().unwrap_or("of unknown health")
            ),
            Err(e) => {
                format!("requireHealthy: the state of the source app {app} could not be read: {e}")
            }
        };
        info!(app = %app, reason = %why, "promotion waits for a healthy source");
        if source.trigger != "merge" {
            return blocked(PromotionStatus::Refused, why);
        }
        let Some(queue) = &self.queue else {
            return blocked(
                PromotionStatus::Pending,
                format!("{why}; run `/capstan promote` once it is"),
            );
        };
        let push = crate::jobs::DefaultBranchPush {
            repo: source.repo.to_string(),
            git_ref: format!("refs/heads/{}", source.default_branch),
            before: source.before.map(String::from).unwrap_or_default(),
            after: source.sha.to_string(),
            pusher: None,
            installation_id: None,
        };
        let base = push.clone().into_job().dedupe_key;
        // One dedupe key per re-check: the running re-check holds its own key, so the next one
        // needs another, and the keys already used count the checks.
        for n in 1..=self.health_checks {
            let dedupe = format!("{base}:healthy:{key}:{n}");
            let used = queue
                .jobs_by_dedupe_key(&dedupe)
                .await
                .map_err(|e| PromoteError::Input(format!("reading the health re-checks: {e}")))?;
            if !used.is_empty() {
                continue;
            }
            let mut job = push.into_job();
            job.dedupe_key = dedupe;
            let delay = i64::try_from(self.health_retry.as_millis()).unwrap_or(i64::MAX);
            job.run_after = Some(crate::queue::now_ms().saturating_add(delay));
            queue
                .enqueue(&job)
                .await
                .map_err(|e| PromoteError::Input(format!("scheduling the health re-check: {e}")))?;
            return blocked(
                PromotionStatus::Pending,
                format!(
                    "{why}; checking again in {}s (check {n} of {})",
                    self.health_retry.as_secs(),
                    self.health_checks
                ),
            );
        }
        blocked(
            PromotionStatus::Refused,
            format!(
                "{why}; gave up after {} checks: run `/capstan promote` once it is healthy",
                self.health_checks
            ),
        )
    }

    async fn held(&self, source: &Source) -> Result<Option<String>, PromoteError> {
        match source.pr {
            Some(pr) => Ok(self.runs.hold(&source.repo, pr).await?.map(|h| h.held_by)),
            None => Ok(None),
        }
    }

    /// The retry loop: fetch, look for our commit, plan, commit, push. Git steps run under
    /// the repository's lock and between them the forge is asked what is open.
    async fn land(
        &self,
        m: &Matched<'_>,
        source: &Source,
        key: &str,
        token: Option<&str>,
    ) -> Result<Landed, PromoteError> {
        let owned = m.to_owned_match();
        let branch = promotion_branch(&m.app, &m.rule.to.environment);
        let token = token.map(str::to_string);
        for attempt in 0..self.max_push_attempts.max(1) {
            let seen = self
                .git
                .with_mirror(&source.repo, {
                    let (source, key, branch, token) = (
                        source.clone(),
                        key.to_string(),
                        branch.clone(),
                        token.clone(),
                    );
                    let owned = owned.clone();
                    move |mirror, url| look(&owned, &source, &key, &branch, mirror, url, token)
                })
                .await?;
            let (tip, branch_tip) = match seen {
                Seen::Landed(l) => return Ok(l),
                Seen::Tips { tip, branch } => (tip, branch),
            };
            let branch_tip_oid = branch_tip.as_ref().map(|b| b.tip);
            let (edit_base, parents, open) = match m.rule.mode {
                Mode::Direct => (tip, vec![tip], None),
                Mode::PullRequest => {
                    let forge = self.pr_forge()?;
                    let open = forge
                        .pull_requests_by_head(&source.repo, &branch)
                        .await?
                        .into_iter()
                        .find(|p| p.state == PullRequestState::Open);
                    if let Some(BranchTip {
                        found: Some((found, plan)),
                        ..
                    }) = branch_tip
                    {
                        let pr = self.ensure_pr(m, source, key, &branch, &plan, open).await?;
                        let mut l = Landed::new(PromotionStatus::Opened, plan);
                        l.result_pr = Some(pr);
                        l.result_sha = Some(found.to_string());
                        l.detail = Some("already on the promotion branch".into());
                        return Ok(l);
                    }
                    match (branch_tip_oid, &open) {
                        (Some(bt), Some(_)) => (bt, vec![bt], open),
                        // A stale branch (its pull request merged or closed): start from the
                        // default branch, keeping the old tip as a parent so the push is a
                        // fast-forward.
                        (Some(bt), None) => (tip, vec![tip, bt], None),
                        (None, _) => (tip, vec![tip], None),
                    }
                }
            };
            let written = self
                .git
                .with_mirror(&source.repo, {
                    let (source, key) = (source.clone(), key.to_string());
                    let owned = owned.clone();
                    move |mirror, _| write(&owned, &source, &key, mirror, edit_base, &parents, tip)
                })
                .await?;
            let (plan, commit) = match written {
                Written::Conflict(conflict) => {
                    let mut l = Landed::new(PromotionStatus::Conflict, Plan::default());
                    l.detail = Some(conflict);
                    return Ok(l);
                }
                Written::Empty { plan, same_dir } => {
                    let mut l = Landed::new(PromotionStatus::NoChange, plan);
                    if let Some(pr) = &open {
                        l.result_pr = Some(pr.number);
                        l.detail =
                            Some("the open promotion pull request already has these values".into());
                        if same_dir {
                            self.close_empty_pr(&source.repo, pr.number, &m.to_dir)
                                .await?;
                            l.detail = Some(format!(
                                "the default branch already has these values; promotion pull request #{} closed with a note",
                                pr.number
                            ));
                        }
                    } else {
                        l.detail = Some(format!(
                            "{} already has these values; no pull request opened",
                            m.rule.to.environment
                        ));
                    }
                    return Ok(l);
                }
                Written::Commit { plan, commit } => (plan, commit),
            };
            if let Some(hook) = &self.before_push {
                hook().await;
            }
            let (push_to, expected) = match m.rule.mode {
                Mode::Direct => (source.default_branch.clone(), Some(tip)),
                Mode::PullRequest => (branch.clone(), branch_tip_oid),
            };
            let pushed = self
                .git
                .with_mirror(&source.repo, {
                    let (push_to, token) = (push_to.clone(), token.clone());
                    move |mirror, url| {
                        Ok::<_, GitError>(push_branch(
                            mirror.path(),
                            url,
                            commit,
                            &push_to,
                            expected,
                            token.as_deref(),
                        ))
                    }
                })
                .await?;
            match pushed {
                Ok(()) => crate::failpoint::hit(crate::failpoint::AFTER_PROMOTION_PUSH)?,
                Err(PushError::NonFastForward { .. }) => {
                    warn!(
                        key,
                        attempt,
                        branch = %push_to,
                        "push rejected as non-fast-forward; starting over on the new tip"
                    );
                    continue;
                }
                Err(PushError::Refused { reason, .. }) => {
                    let mut l = Landed::new(PromotionStatus::Failed, plan);
                    l.detail = Some(format!("the push to {push_to} was refused: {reason}"));
                    return Ok(l);
                }
                Err(e @ PushError::Other { .. }) => {
                    return Err(PromoteError::Git(GitError::Other {
                        operation: "pushing".into(),
                        message: e.to_string(),
                    }));
                }
            }
            let mut l = match m.rule.mode {
                Mode::Direct => Landed::new(PromotionStatus::Committed, plan),
                Mode::PullRequest => {
                    let pr = self.ensure_pr(m, source, key, &branch, &plan, open).await?;
                    let mut l = Landed::new(PromotionStatus::Opened, plan);
                    l.result_pr = Some(pr);
                    l
                }
            };
            l.result_sha = Some(commit.to_string());
            if attempt > 0 {
                l.detail = Some(format!(
                    "landed after {attempt} retr{}",
                    if attempt == 1 { "y" } else { "ies" }
                ));
            }
            return Ok(l);
        }
        let mut l = Landed::new(PromotionStatus::Failed, Plan::default());
        l.detail = Some(format!(
            "gave up after {} pushes rejected as non-fast-forward (the branch keeps moving)",
            self.max_push_attempts
        ));
        Ok(l)
    }

    /// The forge a pull-request promotion needs.
    fn pr_forge(&self) -> Result<&Arc<dyn Forge>, PromoteError> {
        self.forge.as_ref().ok_or_else(|| {
            PromoteError::Input(
                "pull-request mode needs GitHub credentials; none are configured".into(),
            )
        })
    }

    /// A promotion pull request whose target folder no longer differs from the default branch
    /// is closed, with a note saying why.
    async fn close_empty_pr(&self, repo: &str, number: u64, dir: &str) -> Result<(), PromoteError> {
        let Some(forge) = &self.forge else {
            return Ok(());
        };
        forge
            .create_comment(repo, number, &audit::closed_comment(dir))
            .await?;
        forge
            .update_pull_request(
                repo,
                number,
                &PullUpdate {
                    close: true,
                    ..PullUpdate::default()
                },
            )
            .await?;
        Ok(())
    }

    /// The open promotion pull request of `branch`, created or with its body brought up to date.
    async fn ensure_pr(
        &self,
        m: &Matched<'_>,
        source: &Source,
        key: &str,
        branch: &str,
        plan: &Plan,
        open: Option<crate::forge::PullSummary>,
    ) -> Result<u64, PromoteError> {
        let forge = self
            .forge
            .as_ref()
            .ok_or_else(|| PromoteError::Input("no forge configured".into()))?;
        let title = audit::pr_title(m);
        let body = audit::pr_body(m, source, key, plan);
        if let Some(pr) = open {
            if pr.body != body || pr.title != title {
                forge
                    .update_pull_request(
                        &source.repo,
                        pr.number,
                        &PullUpdate {
                            title: Some(title),
                            body: Some(body),
                            close: false,
                        },
                    )
                    .await?;
            }
            return Ok(pr.number);
        }
        let new = NewPullRequest {
            title,
            head: branch.to_string(),
            base: source.default_branch.clone(),
            body,
        };
        match forge.create_pull_request(&source.repo, &new).await {
            Ok(pr) => Ok(pr.number),
            // Another attempt opened it between our look and our create.
            Err(ForgeError::Validation { message, .. }) if message.contains("already exists") => {
                let found = forge.pull_requests_by_head(&source.repo, branch).await?;
                found.first().map(|p| p.number).ok_or_else(|| {
                    PromoteError::Input(format!(
                        "GitHub says a pull request exists for {branch} but lists none"
                    ))
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Conflicts and refusals go to the source pull request; a direct promotion may ask ArgoCD
    /// to sync the target app. Failures here are logged, never fatal: the promotion is recorded.
    async fn report_back(&self, m: &Matched<'_>, source: &Source, outcome: &Outcome) {
        let note = match outcome.status {
            PromotionStatus::Conflict | PromotionStatus::Failed => {
                Some(audit::problem_comment(m, outcome))
            }
            _ => None,
        };
        if let (Some(note), Some(pr), Some(forge), "merge") =
            (note, source.pr, &self.forge, source.trigger.as_str())
            && let Err(e) = forge.create_comment(&source.repo, pr, &note).await
        {
            warn!(error = %e, pr, "could not comment on the source pull request");
        }
        if outcome.status == PromotionStatus::Committed
            && outcome.detail.as_deref() != Some("already on the default branch")
            && m.rule.mode == Mode::Direct
            && let Some(sync) = &self.sync
        {
            let app = format!("{}-{}", m.app, m.rule.to.environment);
            let text = match sync.sync_app(&app, outcome.result_sha.as_deref()).await {
                Ok(t) => format!("ArgoCD sync of `{app}`: {t}"),
                Err(e) => format!(
                    "ArgoCD sync of `{app}` could not start: {e} (the promotion itself landed)"
                ),
            };
            if let (Some(pr), Some(forge)) = (source.pr, &self.forge)
                && let Err(e) = forge
                    .create_comment(&source.repo, pr, &audit::sync_comment(&text))
                    .await
            {
                warn!(error = %e, pr, "could not report the sync");
            }
        }
    }
}

/// What the first git step of an attempt saw.
enum Seen {
    /// Our commit is already there.
    Landed(Landed),
    Tips {
        /// The default branch.
        tip: Oid,
        /// The promotion branch (pull-request mode), when it exists.
        branch: Option<BranchTip>,
    },
}

struct BranchTip {
    tip: Oid,
    /// Our commit on it, with the plan as it was made (against the tree it started from).
    found: Option<(Oid, Plan)>,
}

/// Fetches the default branch (and the promotion branch in pull-request mode) and looks for the
/// promotion's own commit on them.
fn look(
    m: &OwnedMatch,
    source: &Source,
    key: &str,
    branch: &str,
    mirror: &Mirror,
    url: &str,
    token: Option<String>,
) -> Result<Seen, PromoteError> {
    let m = m.get();
    let repo = open_bare(mirror)?;
    let token = token.as_deref();
    let tip = fetch_branch(mirror, url, &source.default_branch, token)?
        .ok_or_else(|| PromoteError::Input(format!("{} vanished", source.default_branch)))?;
    if let Some(done) = find_by_trailer(&repo, tip, key)? {
        let mut l = Landed::new(PromotionStatus::Committed, Plan::default());
        l.result_sha = Some(done.to_string());
        l.detail = Some("already on the default branch".into());
        return Ok(Seen::Landed(l));
    }
    if m.rule.mode == Mode::Direct {
        return Ok(Seen::Tips { tip, branch: None });
    }
    let branch = match fetch_branch(mirror, url, branch, token)? {
        None => None,
        Some(bt) => {
            let found = match find_by_trailer(&repo, bt, key)? {
                None => None,
                Some(found) => {
                    let parent = repo
                        .find_commit(found)
                        .and_then(|c| c.parent_id(0))
                        .unwrap_or(found);
                    let plan = plan_on(&m, &repo, source, parent).unwrap_or_default();
                    Some((found, plan))
                }
            };
            Some(BranchTip { tip: bt, found })
        }
    };
    Ok(Seen::Tips { tip, branch })
}

/// What the second git step of an attempt wrote.
enum Written {
    Conflict(String),
    /// Nothing to change; `same_dir`: the target folder is the same on the default branch.
    Empty {
        plan: Plan,
        same_dir: bool,
    },
    Commit {
        plan: Plan,
        commit: Oid,
    },
}

/// Plans the edits on `edit_base` and commits them (no ref moves).
fn write(
    m: &OwnedMatch,
    source: &Source,
    key: &str,
    mirror: &Mirror,
    edit_base: Oid,
    parents: &[Oid],
    tip: Oid,
) -> Result<Written, PromoteError> {
    let m = m.get();
    let repo = open_bare(mirror)?;
    let plan = match plan_on(&m, &repo, source, edit_base) {
        Ok(p) => p,
        Err(PromoteError::Input(conflict)) => return Ok(Written::Conflict(conflict)),
        Err(e) => return Err(e),
    };
    if plan.is_empty() {
        let same_dir = same_dir(&repo, edit_base, tip, &m.to_dir);
        return Ok(Written::Empty { plan, same_dir });
    }
    let message = audit::commit_message(&m, source, key, &plan);
    let commit = commit_files(&repo, edit_base, parents, &plan.files, &message)?;
    Ok(Written::Commit { plan, commit })
}

fn open_bare(mirror: &Mirror) -> Result<Repository, GitError> {
    Repository::open_bare(mirror.path()).map_err(step("opening the mirror"))
}

/// The edits `m` makes on `target`, with values from the source commit (and its `before`).
fn plan_on(
    m: &Matched<'_>,
    repo: &Repository,
    source: &Source,
    target: Oid,
) -> Result<Plan, PromoteError> {
    let tree = |oid: Oid| {
        repo.find_commit(oid)
            .and_then(|c| c.tree())
            .map_err(|e| step(&format!("reading the tree of {oid}"))(e))
    };
    let trees = Trees {
        repo,
        source: tree(source.sha.oid())?,
        before: source.before.map(|b| tree(b.oid())).transpose()?,
        target: tree(target)?,
    };
    plan::plan(m, &trees).map_err(|e| match e {
        PlanError::Conflict(c) => PromoteError::Input(c),
        PlanError::Edit(e) => PromoteError::Input(e.to_string()),
    })
}

/// Whether folder `dir` is the same in the trees of two commits.
fn same_dir(repo: &Repository, a: Oid, b: Oid, dir: &str) -> bool {
    let id = |c: Oid| {
        repo.find_commit(c)
            .and_then(|c| c.tree())
            .and_then(|t| t.get_path(std::path::Path::new(dir)).map(|e| e.id()))
            .ok()
    };
    matches!((id(a), id(b)), (Some(x), Some(y)) if x == y)
}
