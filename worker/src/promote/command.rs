//! `/capstan promote <env> [app] [sha]`: the same engine, started by a person. The command
//! handler has already checked the commenter's permission and which head the commenter could
//! have seen: the one Capstan knew before the comment was written (a head that arrived later is
//! refused there), or the sha pinned in the command. Here the pull request is read again and the
//! head compared once more, so a push between that check and this one is refused too, and only
//! a PR into the default branch promotes. Every attempt, refused or not, is recorded.

use async_trait::async_trait;

use super::rules::Matched;
use super::{Engine, PromoteError, Source, apply};
use crate::git::{GitError, RepoName, Sha, check_branch};
use crate::services::{PromoteRequest, Promoter};
use crate::store::{PromotionOutcome, PromotionRecord, PromotionStatus};

impl Engine {
    async fn refuse(
        &self,
        req: &PromoteRequest,
        sha: &str,
        reason: String,
    ) -> Result<String, PromoteError> {
        let record = PromotionRecord {
            id: 0,
            promotion_key: format!("command-refused:{}#{}", req.repo, req.pr),
            repo: req.repo.clone(),
            app: req.app.clone().unwrap_or_else(|| "*".into()),
            source_env: String::new(),
            target_env: req.environment.clone(),
            trigger: "command".into(),
            actor: req.actor.clone(),
            source_pr: Some(req.pr),
            source_sha: sha.to_string(),
            mode: String::new(),
            summary: String::new(),
            status: PromotionStatus::Refused,
            detail: Some(reason.clone()),
            result_pr: None,
            result_sha: None,
            created_at: 0,
            updated_at: 0,
        };
        let id = self.store.insert(&record).await?;
        self.store
            .finish(
                id,
                &PromotionOutcome {
                    status: PromotionStatus::Refused,
                    summary: String::new(),
                    detail: Some(reason.clone()),
                    result_pr: None,
                    result_sha: None,
                },
            )
            .await?;
        Ok(format!(
            "Promotion to `{}` refused: {reason}",
            req.environment
        ))
    }

    async fn run_command(&self, req: &PromoteRequest) -> Result<String, PromoteError> {
        let forge = self.forge.as_ref().ok_or_else(|| {
            PromoteError::Input(
                "promotions by command need GitHub credentials; none are configured".into(),
            )
        })?;
        let pr = forge.pull_summary(&req.repo, req.pr).await?;
        let head = pr.head_sha.clone();
        match &req.default_branch {
            Some(default) if *default == pr.base_ref => {}
            Some(default) => {
                return self
                    .refuse(
                        req,
                        &head,
                        format!(
                            "this pull request targets `{}`, not the default branch `{default}`; \
                             only the default branch promotes",
                            pr.base_ref
                        ),
                    )
                    .await;
            }
            None => {
                return self
                    .refuse(
                        req,
                        &head,
                        "the repository's default branch is not known for this command, so \
                         nothing promotes; comment again"
                            .into(),
                    )
                    .await;
            }
        }
        let merged_sha = pr.merge_commit_sha.clone().filter(|_| pr.merged);
        if let Some(sha) = &req.sha {
            let matches = sha == &head || merged_sha.as_deref() == Some(sha.as_str());
            if Sha::parse(sha).is_err() || !matches {
                return self
                    .refuse(
                        req,
                        &head,
                        format!(
                            "`{}` is not this pull request's head ({head}); give the full head sha",
                            sha.chars().take(64).collect::<String>()
                        ),
                    )
                    .await;
            }
        } else {
            // No sha and no head vouched for by the command handler: nothing says what the
            // commenter reviewed, so nothing promotes.
            let moved = match &req.head_at_command {
                Some(seen) if *seen == head => None,
                Some(seen) => Some(format!(
                    "the head moved since the command (it was {seen}, now {head}); \
                     repeat the command with the sha to promote the new head"
                )),
                None => Some(format!(
                    "no head was established for this command; repeat it with the sha of the \
                     head you reviewed ({head})"
                )),
            };
            if let Some(reason) = moved {
                return self.refuse(req, &head, reason).await;
            }
        }
        let source_sha = merged_sha.unwrap_or_else(|| head.clone());
        let token = self.token(&req.repo).await?;
        let repo = RepoName::parse(&req.repo)?;
        let sha = Sha::parse(&source_sha)?;
        let source = Source {
            repo: repo.clone(),
            default_branch: pr.base_ref.clone(),
            sha,
            before: None,
            pr: Some(req.pr),
            trigger: "command".into(),
            actor: req.actor.clone(),
        };
        if !pr.merged {
            if check_branch(&pr.head_ref).is_err() {
                return Err(PromoteError::Input(format!(
                    "the head branch name {:?} is not usable",
                    pr.head_ref
                )));
            }
            let (head_ref, token) = (pr.head_ref.clone(), token.clone());
            self.git
                .with_mirror(&repo, move |mirror, url| {
                    apply::ensure_commit(mirror, url, sha.oid(), &head_ref, token.as_deref())
                })
                .await
                .map_err(|e: GitError| PromoteError::Git(e))?;
        }
        let rules = self.prepare(&source, token.as_deref()).await?;
        let changed: Vec<String> = match forge.changed_files(&req.repo, req.pr).await {
            Ok(files) => files.into_iter().map(|f| f.filename).collect(),
            Err(_) => Vec::new(),
        };
        let affected = rules.affected(&changed);
        let mut matched: Vec<Matched<'_>> = Vec::new();
        for rule in rules
            .rules
            .iter()
            .filter(|r| r.to.environment == req.environment)
        {
            let found = match &req.app {
                Some(app) => rule.for_app(app),
                None => rule
                    .for_app(&rule.app)
                    .or_else(|| affected.iter().find(|m| m.rule.name == rule.name).cloned()),
            };
            matched.extend(found);
        }
        if matched.is_empty() {
            let what = req
                .app
                .as_deref()
                .map(|a| format!(" for app `{a}`"))
                .unwrap_or_default();
            return self
                .refuse(
                    req,
                    &source_sha,
                    format!("no promotion rule targets `{}`{what}", req.environment),
                )
                .await;
        }
        let mut lines = Vec::new();
        for m in &matched {
            match self.promote_one(m, &source, token.as_deref()).await {
                Ok(o) => lines.push(format!("- {}", o.line())),
                Err(e @ PromoteError::Input(_)) => lines.push(format!("- {}: {e}", m.app)),
                Err(e) => return Err(e),
            }
        }
        Ok(format!(
            "Promotion to `{}` from {}:\n{}",
            req.environment,
            &source_sha[..12.min(source_sha.len())],
            lines.join("\n")
        ))
    }
}

#[async_trait]
impl Promoter for Engine {
    async fn promote(&self, req: &PromoteRequest) -> Result<String, PromoteError> {
        let span = tracing::info_span!("promote_command", repo = %req.repo, pr = req.pr, env = %req.environment);
        tracing::Instrument::instrument(self.run_command(req), span).await
    }

    async fn record_refusal(&self, req: &PromoteRequest, reason: &str) {
        let sha = req
            .sha
            .clone()
            .or_else(|| req.head_at_command.clone())
            .unwrap_or_default();
        if let Err(e) = self.refuse(req, &sha, reason.to_string()).await {
            tracing::warn!(error = %e, "recording a refused promotion in the audit failed");
        }
    }
}
