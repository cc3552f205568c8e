//! The `pr_check` job: fetch, analyze, ask the cluster, publish, record. The
//! `merge_group_check` job runs the same steps on the commit a merge queue built, and reports
//! on it with the check alone (no pull request conversation to comment on).
//!
//! Steps run in order and the job looks at its stop signal between each: a newer push to the
//! same pull request supersedes this job, and results for an old head are never posted (the
//! forge is asked for the current head once more right before posting).

use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, anyhow};
use async_trait::async_trait;
use git2::Oid;
use tracing::{Instrument, info, info_span, warn};

use super::analyze::{BaseRenders, Trees, analyze, app_sections_within};
use super::cluster::run_cluster_checks;
use super::fetch;
use super::fidelity;
use super::publish::{CheckHandle, Target, short};
use super::trust::{self, Trust, TrustPolicy};
use crate::apps::DiscoveryConfig;
use crate::failpoint;
use crate::forge::{Forge, ForgeError, PullRequestState};
use crate::git::{GitError, GitTreeFs, RepoName, Sha};
use crate::jobs::{MergeGroupCheck, PrCheck};
use crate::objects::K8sObject;
use crate::policy::{PolicyEngine, PolicySources};
use crate::render::{NotCheckedConclusion, Renderer, Scope, VerifySettings};
use crate::report::{self, Conclusion, RunReport};
use crate::retry::{Classify, Retry};
use crate::runner::{JobContext, JobError, JobHandler};
use crate::services::Services;
use crate::settings::RepoSettings;
use crate::store::SqlFidelityStore;
use crate::store::runs::{AttemptId, NewRun, RunOutcome, RunStatus};

/// Runs `pr_check` and `merge_group_check` jobs.
#[derive(Clone)]
pub struct PrCheckHandler {
    services: Arc<Services>,
    renderer: Arc<Renderer>,
}

impl PrCheckHandler {
    pub fn new(services: Arc<Services>, renderer: Arc<Renderer>) -> Self {
        PrCheckHandler { services, renderer }
    }

    async fn check(
        &self,
        ctx: &JobContext,
        job: &PrCheck,
        subject: Subject,
    ) -> Result<(), JobError> {
        let repo = RepoName::parse(&job.repo)
            .map_err(|e| JobError::Permanent(anyhow!("{} payload: {e}", subject.kind())))?;
        Check {
            repo,
            services: &self.services,
            renderer: &self.renderer,
            ctx,
            job,
            subject,
            started: Instant::now(),
        }
        .run()
        .await
    }

    /// One check with the render records around it, and the check again when a sampled
    /// verification found the fast renderer wrong.
    async fn check_verified(
        &self,
        ctx: &JobContext,
        job: &PrCheck,
        subject: Subject,
        span: tracing::Span,
    ) -> Result<(), JobError> {
        let records = SqlFidelityStore::new(self.services.queue.db());
        fidelity::load(&records, &self.renderer).await;
        let result = self.check(ctx, job, subject).instrument(span.clone()).await;
        fidelity::save(&records, &self.renderer).await;
        // Sampled verifications run after the report is out, off its latency; a mismatch pins
        // the kustomization, and the check runs again on the binary's output.
        if result.is_ok()
            && !fidelity::verify_deferred(&records, &self.renderer, &job.repo)
                .await
                .is_empty()
            && !ctx.should_stop()
        {
            let again = PrCheck {
                trigger: format!("{} (render verification)", job.trigger),
                ..job.clone()
            };
            return self.check(ctx, &again, subject).instrument(span).await;
        }
        result
    }
}

#[async_trait]
impl JobHandler<PrCheck> for PrCheckHandler {
    async fn run(&self, ctx: JobContext, job: PrCheck) -> Result<(), JobError> {
        let span = info_span!("pr_check", job = ctx.job.id, repo = %job.repo, pr = job.number,
            sha = %short(&job.head_sha), trigger = %job.trigger);
        self.check_verified(&ctx, &job, Subject::Pull, span).await
    }
}

#[async_trait]
impl JobHandler<MergeGroupCheck> for PrCheckHandler {
    async fn run(&self, ctx: JobContext, job: MergeGroupCheck) -> Result<(), JobError> {
        let span = info_span!("merge_group_check", job = ctx.job.id, repo = %job.repo,
            sha = %short(&job.head_sha), queue = %job.head_ref);
        let base_sha = Sha::parse(&job.base_sha)
            .map_err(|e| JobError::Permanent(anyhow!("merge_group_check payload: {e}")))?
            .oid();
        // The run is listed under the pull request at the group's tip (0 when the queue's
        // branch does not name one), so the dashboard shows it next to that pull request.
        let as_check = PrCheck {
            number: job.tip_pull_request().unwrap_or(0),
            repo: job.repo.clone(),
            head_sha: job.head_sha.clone(),
            head_ref: Some(job.head_ref.clone()),
            base_ref: Some(job.base_ref.clone()),
            installation_id: job.installation_id,
            trigger: "merge_group.checks_requested".into(),
            sender: None,
        };
        self.check_verified(&ctx, &as_check, Subject::MergeGroup { base_sha }, span)
            .await
    }
}

/// What a run checks.
#[derive(Clone, Copy, Debug)]
enum Subject {
    /// A pull request's head: read from the forge, superseded by a newer push, reported in the
    /// sticky comment and the check.
    Pull,
    /// A merge queue's merge commit: the event names its parent on the base branch, there is no
    /// pull request to read or comment on and the commit never moves; the check alone reports.
    MergeGroup { base_sha: Oid },
}

impl Subject {
    fn kind(self) -> &'static str {
        match self {
            Subject::Pull => "pr_check",
            Subject::MergeGroup { .. } => "merge_group_check",
        }
    }
}

/// A failure with what to do about it (the policy is [`crate::retry`]).
struct Failed {
    error: anyhow::Error,
    retry: Retry,
}

impl Failed {
    fn permanent(error: impl Into<anyhow::Error>) -> Self {
        Failed {
            error: error.into(),
            retry: Retry::Permanent,
        }
    }

    fn transient(error: impl Into<anyhow::Error>) -> Self {
        Failed {
            error: error.into(),
            retry: Retry::Transient,
        }
    }

    /// A domain error as it classifies itself, saying what was being done.
    fn of<E>(e: E, doing: &'static str) -> Self
    where
        E: Classify + std::error::Error + Send + Sync + 'static,
    {
        Failed {
            retry: e.retry(),
            error: anyhow::Error::new(e).context(doing),
        }
    }

    fn forge(e: ForgeError) -> Self {
        Failed {
            retry: e.retry(),
            error: e.into(),
        }
    }

    fn into_job_error(self) -> JobError {
        JobError::with_retry(self.retry, self.error)
    }
}

impl From<GitError> for Failed {
    fn from(e: GitError) -> Self {
        Failed {
            retry: e.retry(),
            error: e.into(),
        }
    }
}

/// Why a run stopped before its end.
enum Halt {
    /// The job was told to stop, or the pull request moved on.
    Stopped,
    Failed(Failed),
}

impl From<Failed> for Halt {
    fn from(f: Failed) -> Self {
        Halt::Failed(f)
    }
}

impl From<failpoint::Injected> for Halt {
    fn from(e: failpoint::Injected) -> Self {
        Halt::Failed(Failed::transient(e))
    }
}

/// The pull request as this run sees it.
struct Resolved {
    base_sha: Oid,
    head_sha: Oid,
    base_ref: String,
    head_ref: Option<String>,
    /// The PR's author, when a forge says.
    author: Option<String>,
}

struct Check<'a> {
    /// `job.repo`, checked.
    repo: RepoName,
    services: &'a Arc<Services>,
    renderer: &'a Arc<Renderer>,
    ctx: &'a JobContext,
    job: &'a PrCheck,
    subject: Subject,
    started: Instant,
}

impl Check<'_> {
    fn forge(&self) -> Option<&dyn Forge> {
        self.services.forge.as_deref()
    }

    fn step_done(&self, step: &str, t: Instant) {
        info!(
            step,
            step_ms = t.elapsed().as_millis() as u64,
            total_ms = self.started.elapsed().as_millis() as u64,
            "step done"
        );
    }

    fn stop_point(&self) -> Result<(), Halt> {
        if self.ctx.should_stop() {
            Err(Halt::Stopped)
        } else {
            Ok(())
        }
    }

    async fn run(self) -> Result<(), JobError> {
        let head_sha = Sha::parse(&self.job.head_sha)
            .map_err(|e| JobError::Permanent(anyhow!("{} payload: {e}", self.subject.kind())))?
            .oid();

        let t = Instant::now();
        let pr = match (self.forge(), self.subject) {
            (Some(forge), Subject::Pull) => Some(
                forge
                    .pull_request(&self.job.repo, self.job.number)
                    .await
                    .map_err(|e| Failed::forge(e).into_job_error())?,
            ),
            _ => None,
        };
        self.step_done("resolve", t);
        if let Some(pr) = &pr {
            if pr.head_sha != self.job.head_sha {
                info!(current = %short(&pr.head_sha), "the pull request moved on; nothing to check for this head");
                // This job may have been queued after the newer head's (a redelivery, or
                // deliveries out of order) and superseded its check on the way in; the newer
                // head is checked now rather than at the next recovery pass.
                if let Subject::Pull = self.subject {
                    let newer = PrCheck {
                        repo: self.job.repo.clone(),
                        number: self.job.number,
                        head_sha: pr.head_sha.clone(),
                        head_ref: Some(pr.head_ref.clone()),
                        base_ref: Some(pr.base_ref.clone()),
                        installation_id: self.job.installation_id,
                        trigger: "moved-on".into(),
                        sender: None,
                    };
                    let queued = crate::recovery::ensure_checked(&*self.services.queue, newer)
                        .await
                        .map_err(|e| {
                            JobError::Transient(anyhow!("queueing the newer head: {e}"))
                        })?;
                    if queued {
                        info!(current = %short(&pr.head_sha), "queued the check of the newer head, which had none");
                    }
                }
                return Ok(());
            }
            if pr.state == PullRequestState::Closed {
                info!("the pull request is closed; nothing to check");
                return Ok(());
            }
        }
        let resolved = match &pr {
            Some(pr) => Resolved {
                base_sha: Sha::parse(&pr.base_sha)
                    .map_err(|e| JobError::Permanent(anyhow!("base sha from the forge: {e}")))?
                    .oid(),
                head_sha,
                base_ref: pr.base_ref.clone(),
                head_ref: Some(pr.head_ref.clone()),
                author: Some(pr.author.clone()),
            },
            None => Resolved {
                // Without a forge: filled in from the mirror once the base branch is fetched.
                base_sha: match self.subject {
                    Subject::MergeGroup { base_sha } => base_sha,
                    Subject::Pull => Oid::ZERO_SHA1,
                },
                head_sha,
                base_ref: self.job.base_ref.clone().unwrap_or_else(|| "main".into()),
                head_ref: self.job.head_ref.clone(),
                author: None,
            },
        };
        for b in std::iter::once(&resolved.base_ref).chain(resolved.head_ref.as_ref()) {
            fetch::check_branch(b).map_err(|e| JobError::Permanent(anyhow!("pr_check: {e}")))?;
        }

        // A head already checked (a retry, a redelivery, `/capstan diff`) reopens its run.
        let run = self
            .services
            .runs
            .create_run(&NewRun {
                repo: self.job.repo.clone(),
                pr: self.job.number,
                head_sha: self.job.head_sha.clone(),
                trigger: self.job.trigger.clone(),
                job_id: Some(self.ctx.job.id),
            })
            .await
            .map_err(|e| Failed::of(e, "recording the run").into_job_error())?;
        let run_url = self.services.run_url(run.run);
        info!(run = run.run, attempt = run.attempt, url = %run_url, "run started");

        let mut posted = Posted::default();
        // The overall deadline: whatever a PR makes the steps do, the job ends and says so.
        let deadline = self.services.limits.job_deadline;
        let result =
            tokio::time::timeout(deadline, self.steps(run, &run_url, resolved, &mut posted))
                .await
                .unwrap_or_else(|_| {
                    Err(Halt::Failed(Failed::permanent(anyhow!(
                        crate::limits::not_checked(
                            "job_deadline_secs",
                            deadline.as_secs(),
                            "the check did not finish in time"
                        )
                    ))))
                });
        self.conclude(run, &run_url, posted, result).await
    }

    /// Records how the run ended and tells the forge where it can.
    async fn conclude(
        &self,
        run: AttemptId,
        run_url: &str,
        posted: Posted,
        result: Result<Finished, Halt>,
    ) -> Result<(), JobError> {
        let target = self.target(run_url);
        let (outcome, ret) = match result {
            Ok(fin) => (
                RunOutcome {
                    status: fin.status,
                    error: None,
                    report: Some(fin.report),
                    comment_ids: fin.comment_ids,
                },
                Ok(()),
            ),
            Err(Halt::Stopped) => {
                // Only a head that moved is superseded; a shutdown leaves the check to the retry.
                let moved = self.head_moved().await.unwrap_or(false);
                if moved
                    && let (Some(t), Some(h)) = (&target, posted.check)
                    && let Err(e) = t.cancel_check(h).await
                {
                    warn!(error = %e, "could not close the superseded check");
                }
                (
                    RunOutcome {
                        status: RunStatus::Superseded,
                        error: Some(if moved {
                            "superseded by a newer push".into()
                        } else {
                            "stopped before finishing".into()
                        }),
                        report: None,
                        comment_ids: Vec::new(),
                    },
                    Err(JobError::Stopped),
                )
            }
            Err(Halt::Failed(f)) => {
                let message = format!("{:#}", f.error);
                warn!(error = %message, retry = ?f.retry, "run failed");
                if let (Some(t), Some(h)) = (&target, posted.check)
                    && let Err(e) = t.fail_check(h, &message).await
                {
                    warn!(error = %e, "could not mark the check as failed");
                }
                (
                    RunOutcome {
                        status: RunStatus::Error,
                        error: Some(message),
                        report: None,
                        comment_ids: Vec::new(),
                    },
                    Err(f.into_job_error()),
                )
            }
        };
        if let Err(e) = self.services.runs.finish_run(run, &outcome).await {
            warn!(run = run.run, attempt = run.attempt, error = %e, "could not record the run's outcome");
            if ret.is_ok() {
                return Err(Failed::of(e, "recording the run").into_job_error());
            }
        }
        info!(
            run = run.run,
            attempt = run.attempt,
            status = outcome.status.as_str(),
            total_ms = self.started.elapsed().as_millis() as u64,
            "run finished"
        );
        ret
    }

    /// This job's pull-request head on the forge, when there is a forge.
    fn target<'t>(&'t self, run_url: &'t str) -> Option<Target<'t>> {
        self.forge().map(|forge| Target {
            forge,
            repo: &self.job.repo,
            pr: self.job.number,
            head_sha: &self.job.head_sha,
            details_url: run_url,
        })
    }

    /// Whether the forge now shows another head for the pull request.
    async fn head_moved(&self) -> Result<bool, ForgeError> {
        let (Some(forge), Subject::Pull) = (self.forge(), self.subject) else {
            // A merge group's commit is fixed: the queue makes a new group rather than move it.
            return Ok(false);
        };
        let pr = forge.pull_request(&self.job.repo, self.job.number).await?;
        Ok(pr.head_sha != self.job.head_sha || pr.state == PullRequestState::Closed)
    }

    async fn steps(
        &self,
        run: AttemptId,
        run_url: &str,
        mut resolved: Resolved,
        posted: &mut Posted,
    ) -> Result<Finished, Halt> {
        let author = resolved.author.take();
        let target = self.target(run_url);
        if let Some(t) = &target {
            let t0 = Instant::now();
            // A later attempt at this head restarts the check run an earlier one created.
            let earlier = if run.attempt > 1 {
                match self.services.runs.check_run_id(run.run).await {
                    Ok(id) => id,
                    Err(e) => {
                        warn!(error = %e, "could not read the run's earlier check run");
                        None
                    }
                }
            } else {
                None
            };
            let handle = t
                .start_check(earlier, run.attempt > 1)
                .await
                .map_err(Failed::forge)?;
            failpoint::hit(failpoint::AFTER_CHECK_RUN_CREATE)?;
            if let CheckHandle::CheckRun(id) = handle
                && let Err(e) = self.services.runs.set_check_run(run, id).await
            {
                warn!(error = %e, "could not record the check run id");
            }
            posted.check = Some(handle);
            self.step_done("check_started", t0);
        }
        self.stop_point()?;

        let t0 = Instant::now();
        let token = match self.forge() {
            Some(f) => f.git_token(&self.job.repo).await.map_err(Failed::forge)?,
            None => None,
        };
        let (base_ref, head_ref) = (resolved.base_ref.clone(), resolved.head_ref.clone());
        let (base, head, pr) = (resolved.base_sha, resolved.head_sha, self.job.number);
        let queue_branch = matches!(self.subject, Subject::MergeGroup { .. });
        let fetched = self
            .services
            .git
            .with_mirror(&self.repo, move |mirror, url| -> Result<_, GitError> {
                // The queue's merge commit is on its branch, not under `refs/pull/`.
                let specs = match head_ref.as_deref() {
                    Some(h) if queue_branch => fetch::branch_refspecs(&base_ref, h),
                    _ => fetch::refspecs(url, pr, &base_ref, head_ref.as_deref()),
                };
                let mut wanted = vec![head];
                if base.is_zero() {
                    // Without a forge the base is whatever the base branch is now.
                    mirror.fetch(url, &specs, token.as_deref())?;
                } else {
                    wanted.push(base);
                }
                mirror.ensure(url, &wanted, &specs, token.as_deref())?;
                let base = if base.is_zero() {
                    fetch::branch_tip(mirror, &base_ref)?
                } else {
                    base
                };
                Ok((base, fetch::diff_base(mirror, base, head)?))
            })
            .await
            .map_err(|e| Failed::of(e, "fetching the pull request"))?;
        resolved.base_sha = fetched.0;
        let diff_base = fetched.1;
        // The run shows what was compared, which is not always what the forge said at the start
        // (no forge at all, or a base that moved): the tip fetched and the merge base diffed.
        if let Err(e) = self
            .services
            .runs
            .record_base(run, &resolved.base_sha.to_string(), &diff_base.to_string())
            .await
        {
            warn!(error = %e, "could not record the compared base");
        }
        self.step_done("fetch", t0);
        failpoint::hit(failpoint::AFTER_FETCH)?;
        self.stop_point()?;

        let t0 = Instant::now();
        let (settings_sha, head) = (resolved.base_sha, resolved.head_sha);
        let trees = self
            .services
            .git
            .with_mirror(&self.repo, move |mirror, _| {
                let git = mirror.repo()?;
                let tree = |oid: Oid, what: &str| {
                    git.tree_fs(oid).map_err(|e| Failed {
                        retry: e.retry(),
                        error: anyhow!(e).context(format!("reading the {what} commit {oid}")),
                    })
                };
                Ok::<_, Failed>(Commits {
                    settings: tree(settings_sha, "base")?,
                    base: tree(diff_base, "merge-base")?,
                    head: tree(head, "head")?,
                })
            })
            .await?;
        let analyzed = {
            let services = self.services.clone();
            let renderer = self.renderer.clone();
            let repo = self.repo.clone();
            let base_ref = resolved.base_ref.clone();
            // Reading the trees goes on outside the repository's lock: the objects are fixed.
            tokio::task::spawn_blocking(move || {
                analyze_trees(&services, &renderer, &repo, &base_ref, &trees)
            })
            .await
            .map_err(|e| Failed::transient(anyhow!("analysis task: {e}")))??
        };
        self.step_done("analyze", t0);
        failpoint::hit(failpoint::AFTER_RENDER)?;
        info!(
            affected = analyzed.sections.len(),
            apps = analyzed.total_apps,
            "apps analyzed"
        );
        self.stop_point()?;

        let t0 = Instant::now();
        let mut sections = analyzed.sections;
        if !self.services.cluster.is_empty() {
            // Untrusted heads never reach the cluster: no ArgoCD render, dry-run or live state.
            let policy = analyzed.trust;
            let trust = match self.subject {
                Subject::Pull => {
                    trust::for_head(self.services, self.job, author.as_deref(), policy).await
                }
                Subject::MergeGroup { .. } => trust::for_merge_group(policy),
            };
            match trust {
                Trust::Allowed(why) => {
                    info!(%why, "cluster checks allowed");
                    run_cluster_checks(
                        &self.services.cluster,
                        &self.job.repo,
                        self.job.number,
                        &self.job.head_sha,
                        &mut sections,
                        &analyzed.head_objects,
                    )
                    .await;
                }
                Trust::Skipped(why) => {
                    info!(%why, "cluster checks skipped");
                    let note = match self.subject {
                        Subject::Pull => trust::skipped_note(
                            &why,
                            &analyzed.command_prefix,
                            policy.min_permission,
                        ),
                        Subject::MergeGroup { .. } => trust::skipped_note_merge_group(&why),
                    };
                    for s in &mut sections {
                        s.diff.notes.push(note.clone());
                    }
                }
            }
        }
        self.step_done("cluster", t0);
        self.stop_point()?;

        let hold = self
            .services
            .runs
            .hold(&self.job.repo, self.job.number)
            .await
            .map_err(|e| Failed::of(e, "reading the hold"))?;
        let mut report = RunReport {
            repo: self.job.repo.clone(),
            pr: self.job.number,
            head_sha: self.job.head_sha.clone(),
            run_url: run_url.to_string(),
            held_by: hold.map(|h| h.held_by),
            apps: sections,
            limits: analyzed.limits,
        };
        let t0 = Instant::now();
        let not_checked = analyzed.not_checked;
        let max_parts = self.services.limits.comment_max_parts;
        // Parts as large as the forge takes (without one, as large as GitHub's, for the log).
        let comment_limit = self
            .services
            .forge
            .as_ref()
            .map_or(report::COMMENT_LIMIT, |f| f.comment_limit());
        let (report, comment, output) = tokio::task::spawn_blocking(move || {
            let (comment, _) = report::render_comment_capped(&mut report, max_parts, comment_limit);
            let mut output = report::check_run_with(&report, not_checked);
            if report.apps.is_empty() && report.held_by.is_none() && report.limits.is_empty() {
                output.conclusion = Conclusion::Neutral;
            }
            (report, comment, output)
        })
        .await
        .map_err(|e| Failed::transient(anyhow!("report task: {e}")))?;
        self.step_done("report", t0);
        let status = match output.conclusion {
            Conclusion::Failure => RunStatus::Failure,
            Conclusion::Success => RunStatus::Success,
            Conclusion::Neutral if report.apps.is_empty() || report.not_checked_count() > 0 => {
                RunStatus::Neutral
            }
            Conclusion::Neutral => RunStatus::Success,
        };
        self.stop_point()?;

        let Some(t) = &target else {
            info!(
                status = status.as_str(),
                apps = report.apps.len(),
                denies = report.deny_count(),
                warns = report.warn_count(),
                render_errors = report.render_error_count(),
                title = %output.title,
                "no forge configured: the report is on the dashboard only"
            );
            return Ok(Finished {
                status,
                report,
                comment_ids: Vec::new(),
            });
        };
        // Last look before posting: results for an old head must never appear.
        if self.head_moved().await.map_err(Failed::forge)? {
            return Err(Halt::Stopped);
        }
        let comment_ids = match self.subject {
            Subject::Pull => {
                let t0 = Instant::now();
                let ids = t.sync_comment(&comment).await.map_err(Failed::forge)?;
                self.step_done("comment", t0);
                failpoint::hit(failpoint::AFTER_COMMENT)?;
                ids
            }
            // A merge group has no conversation: the check's summary is the report.
            Subject::MergeGroup { .. } => Vec::new(),
        };
        if let Some(h) = posted.check {
            let t0 = Instant::now();
            t.complete_check(h, &output).await.map_err(Failed::forge)?;
            self.step_done("check_completed", t0);
        }
        Ok(Finished {
            status,
            report,
            comment_ids,
        })
    }
}

/// What was already posted for this run (to close it when the run cannot finish).
#[derive(Default)]
struct Posted {
    check: Option<CheckHandle>,
}

struct Finished {
    status: RunStatus,
    report: RunReport,
    comment_ids: Vec<u64>,
}

struct Analyzed {
    sections: Vec<report::AppSection>,
    /// Bounds hit while discovering apps.
    limits: Vec<String>,
    /// Per section: the app's objects rendered at head (empty when not rendered); `None` when
    /// the change removes the app.
    head_objects: Vec<Option<Vec<K8sObject>>>,
    total_apps: usize,
    /// `render.notChecked` of the base branch.
    not_checked: NotCheckedConclusion,
    /// `trust:` of the base branch: who gets the cluster checks.
    trust: TrustPolicy,
    /// `commands.prefix` of the base branch, for the ok-to-test hint.
    command_prefix: String,
}

/// The three commits a check reads, opened under the repository's lock.
struct Commits {
    /// The base branch's tip: settings and policies.
    settings: GitTreeFs,
    /// Where the head branched off.
    base: GitTreeFs,
    head: GitTreeFs,
}

/// Reads settings and policies at the base branch's tip, and analyzes the merge base → head.
fn analyze_trees(
    services: &Services,
    renderer: &Renderer,
    repo: &RepoName,
    base_ref: &str,
    trees: &Commits,
) -> Result<Analyzed, Failed> {
    let (settings_fs, base_fs, head_fs) = (&trees.settings, &trees.base, &trees.head);
    // A broken policy folder or .capstan.yaml on the base is the repository's to fix: retrying
    // the same commits cannot help.
    let (settings, _) = RepoSettings::from_tree(settings_fs)
        .context("reading .capstan.yaml from the base branch")
        .map_err(Failed::permanent)?;
    let mut cfg = DiscoveryConfig::from_settings(&settings, Vec::new(), base_ref);
    cfg.repo_urls.push(services.git.web_url(repo));
    cfg.repo_urls.push(services.git.url(repo));
    cfg.max_generated_apps = services.limits.appset_max_apps;
    let sources = PolicySources::read_with(settings_fs, &settings.policy)
        .context("reading .capstan.yaml and policies from the base branch")
        .map_err(Failed::permanent)?;
    let engine = PolicyEngine::new(&sources)
        .context("loading the policies of the base branch")
        .map_err(Failed::permanent)?;
    let renderer = &renderer.scoped(Scope {
        repo: repo.to_string(),
        settings: VerifySettings::from(&settings.render),
        defer: true,
    });
    let analysis = analyze(
        &Trees {
            base: Some(base_fs),
            head: head_fs,
        },
        &engine,
        &cfg,
        renderer,
        BaseRenders::Render,
    )
    .context("running the policies")
    .map_err(Failed::permanent)?;
    let sections = app_sections_within(&analysis, &services.limits.diff);
    let head_objects = analysis
        .apps
        .iter()
        .map(|a| a.head.as_ref().map(|h| h.objects().to_vec()))
        .collect();
    Ok(Analyzed {
        sections,
        limits: analysis.limits,
        head_objects,
        total_apps: analysis.total_apps,
        not_checked: settings.render.not_checked,
        trust: settings.trust,
        command_prefix: settings
            .commands
            .prefix
            .clone()
            .unwrap_or_else(|| crate::commands::DEFAULT_PREFIX.to_string()),
    })
}
