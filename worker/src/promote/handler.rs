//! The `default_branch_push` and `pr_merged` jobs: find what a change to the default branch
//! touched in a rule's source overlay and promote it.
//!
//! A merge usually arrives twice (the push and `pull_request.closed`): both jobs compute the same
//! promotion key for merge and squash merges, so whichever comes second finds the first one's
//! commit by its trailer and does nothing. For a rebase merge of several commits the push covers
//! the whole range and `pr_merged` only the last commit; values already promoted are then
//! unchanged on the target and not promoted twice.

use std::sync::Arc;

use async_trait::async_trait;
use git2::Repository;
use tracing::{Instrument, info, info_span};

use super::rules::Trigger;
use super::{Engine, Outcome, PromoteError, Source};
use crate::git::{GitError, RepoName, Sha};
use crate::jobs::{DefaultBranchPush, PrMerged};
use crate::runner::{JobContext, JobError, JobHandler};

const ZERO_SHA: &str = "0000000000000000000000000000000000000000";

impl Engine {
    /// Promote what a push to the default branch changed (`before..after`).
    pub async fn on_push(&self, push: &DefaultBranchPush) -> Result<Vec<Outcome>, PromoteError> {
        let Some(branch) = push.git_ref.strip_prefix("refs/heads/") else {
            return Ok(Vec::new());
        };
        if push.before == ZERO_SHA || push.after == ZERO_SHA {
            info!(repo = %push.repo, "branch created or deleted: nothing to promote");
            return Ok(Vec::new());
        }
        let pr = match &self.forge {
            Some(f) => f
                .commit_pull_requests(&push.repo, &push.after)
                .await?
                .into_iter()
                .find(|p| p.merged && p.merge_commit_sha.as_deref() == Some(push.after.as_str()))
                .map(|p| p.number),
            None => None,
        };
        let source = Source {
            repo: RepoName::parse(&push.repo)?,
            default_branch: branch.to_string(),
            sha: Sha::parse(&push.after)?,
            before: Some(Sha::parse(&push.before)?),
            pr,
            trigger: "merge".into(),
            actor: "capstan".into(),
        };
        self.on_change(&source).await
    }

    /// Promote what a merged pull request changed (its merge commit against its first parent).
    /// Only a merge into the repository's default branch promotes; the intake already ignores the
    /// others, and a job that does not name the default branch (queued by an older version) is
    /// left to the push to the default branch, which covers every merge into it.
    pub async fn on_merged(&self, merged: &PrMerged) -> Result<Vec<Outcome>, PromoteError> {
        if merged.default_branch.as_deref() != Some(merged.base_ref.as_str()) {
            info!(
                repo = %merged.repo,
                pr = merged.number,
                base = %merged.base_ref,
                default_branch = ?merged.default_branch,
                "merged into a branch that is not the default branch: ignored, nothing promotes"
            );
            return Ok(Vec::new());
        }
        let Some(sha) = merged.merge_commit_sha.clone() else {
            return Err(PromoteError::Input(format!(
                "{}#{}: merged without a merge commit sha",
                merged.repo, merged.number
            )));
        };
        let token = self.token(&merged.repo).await?;
        let mut source = Source {
            repo: RepoName::parse(&merged.repo)?,
            default_branch: merged.base_ref.clone(),
            sha: Sha::parse(&sha)?,
            before: None,
            pr: Some(merged.number),
            trigger: "merge".into(),
            actor: "capstan".into(),
        };
        self.prepare(&source, token.as_deref()).await?;
        let oid = source.sha.oid();
        let parent = self
            .git
            .with_mirror(&source.repo, move |mirror, _| {
                let repo = Repository::open_bare(mirror.path()).map_err(|e| {
                    PromoteError::Input(format!("opening the mirror: {}", e.message()))
                })?;
                repo.find_commit(oid)
                    .ok()
                    .and_then(|c| c.parent_id(0).ok())
                    .ok_or_else(|| {
                        PromoteError::Input(format!("{sha} has no parent to diff against"))
                    })
            })
            .await?;
        source.before = Some(Sha::from_oid(parent));
        self.on_change(&source).await
    }

    async fn on_change(&self, source: &Source) -> Result<Vec<Outcome>, PromoteError> {
        let token = self.token(&source.repo).await?;
        let rules = self.prepare(source, token.as_deref()).await?;
        let Some(before) = source.before else {
            return Ok(Vec::new());
        };
        let after = source.sha;
        let changed: Vec<String> = self
            .git
            .with_mirror(&source.repo, move |mirror, _| {
                let paths = mirror.repo()?.changed_paths(before.oid(), after.oid())?;
                Ok::<_, GitError>(paths.iter().map(|p| p.as_str().to_string()).collect())
            })
            .await
            .map_err(|e| PromoteError::Input(e.to_string()))?;
        let matched: Vec<_> = rules
            .affected(&changed)
            .into_iter()
            .filter(|m| m.rule.trigger == Trigger::Merge)
            .collect();
        info!(
            repo = %source.repo,
            sha = %source.sha,
            changed = changed.len(),
            promotions = matched.len(),
            "merge to the default branch"
        );
        let mut out = Vec::new();
        for m in &matched {
            out.push(self.promote_one(m, source, token.as_deref()).await?);
        }
        Ok(out)
    }
}

/// `default_branch_push`.
pub struct PushHandler(pub Arc<Engine>);

#[async_trait]
impl JobHandler<DefaultBranchPush> for PushHandler {
    async fn run(&self, ctx: JobContext, push: DefaultBranchPush) -> Result<(), JobError> {
        let span =
            info_span!("promote_push", job = ctx.job.id, repo = %push.repo, after = %push.after);
        self.0
            .on_push(&push)
            .instrument(span)
            .await
            .map(|_| ())
            .map_err(JobError::from_error)
    }
}

/// `pr_merged`.
pub struct MergedHandler(pub Arc<Engine>);

#[async_trait]
impl JobHandler<PrMerged> for MergedHandler {
    async fn run(&self, ctx: JobContext, merged: PrMerged) -> Result<(), JobError> {
        let span =
            info_span!("promote_merged", job = ctx.job.id, repo = %merged.repo, pr = merged.number);
        self.0
            .on_merged(&merged)
            .instrument(span)
            .await
            .map(|_| ())
            .map_err(JobError::from_error)
    }
}
