//! The `command` job: one PR comment's command lines, evaluated once per comment version.
//!
//! Steps: ignore Capstan's own comments and bots (the intake filters them too; this is the second
//! line), skip a comment version an earlier job already answered, react 👀, read the command
//! settings from the default branch, parse strictly, look the author's permission up once, run
//! what is allowed, and post one reply with the outcome of every line. A forge or git failure
//! that may pass is retried (`Transient`); everything else is answered in the reply.
//!
//! `diff`/`validate` enqueue a `pr_check` for the PR's current head with the usual per-head
//! dedupe key: the queue only deduplicates live jobs, so a finished run is re-run, and a queued
//! or running one is reported as such. `hold`/`unhold` change the stored hold and enqueue a
//! re-check under a key of their own, which supersedes a check of the same head already under
//! way, so the published conclusion always reflects the hold.

use std::str::FromStr;
use std::sync::Arc;

use anyhow::anyhow;
use async_trait::async_trait;
use tracing::{Instrument, info, info_span, warn};

use super::reply::{self, Outcome, ReplyItem};
use super::repo_config::{RepoConfigError, load_default_branch_config};
use super::{
    Command, CommandConfig, CommandKind, Decision, LookupError, Permission, PermissionLookup,
    authorize, check_sync_scope, parse_comment,
};
use crate::forge::{
    Forge, ForgeError, Identity, Permissions, PullRequest, PullRequestState, Reaction,
};
use crate::jobs::{self, PrCheck};
use crate::queue::JobState;
use crate::retry::{Classify, Retry};
use crate::runner::{JobContext, JobError, JobHandler};
use crate::services::{PromoteRequest, Services};
use crate::store::HeadHistory;
use crate::store::heads::OK_TO_TEST_TRIGGER;

/// Runs `command` jobs.
pub struct CommandHandler {
    services: Arc<Services>,
    /// The service's `--command-prefix`: used when `.capstan.yaml` sets no `commands.prefix`.
    default_prefix: String,
}

impl CommandHandler {
    pub fn new(services: Arc<Services>) -> Self {
        CommandHandler {
            services,
            default_prefix: super::DEFAULT_PREFIX.to_string(),
        }
    }

    /// The prefix used when the repository sets none (the repository's setting always wins).
    pub fn with_default_prefix(mut self, prefix: &str) -> Self {
        self.default_prefix = prefix.to_string();
        self
    }
}

#[async_trait]
impl JobHandler<jobs::Command> for CommandHandler {
    async fn run(&self, ctx: JobContext, cmd: jobs::Command) -> Result<(), JobError> {
        let span = info_span!(
            "command",
            job = ctx.job.id,
            repo = %cmd.repo,
            pr = cmd.number,
            comment = cmd.comment_id,
            author = %cmd.author,
        );
        self.handle(&ctx, &cmd).instrument(span).await
    }
}

/// The author's permission through the forge's collaborator-permission API.
struct ForgePermissions<'a> {
    forge: &'a dyn Permissions,
    repo: &'a str,
}

#[async_trait]
impl PermissionLookup for ForgePermissions<'_> {
    async fn permission(&self, user: &str) -> Result<Permission, LookupError> {
        let failed = |message: String| LookupError {
            user: user.to_string(),
            message,
        };
        let p = self
            .forge
            .collaborator_permission(self.repo, user)
            .await
            .map_err(|e| failed(e.to_string()))?;
        Permission::from_str(p.as_str()).map_err(|e| failed(e.to_string()))
    }
}

/// A forge or store failure with what was being done, retried as [`crate::retry`] says.
fn forge_error(what: &str, e: ForgeError) -> JobError {
    domain_error(what, e)
}

fn store_error<E>(what: &str, e: E) -> JobError
where
    E: Classify + std::error::Error + Send + Sync + 'static,
{
    domain_error(what, e)
}

fn domain_error<E>(what: &str, e: E) -> JobError
where
    E: Classify + std::error::Error + Send + Sync + 'static,
{
    let retry = e.retry();
    JobError::with_retry(retry, anyhow!(e).context(what.to_string()))
}

fn is_self(me: &Identity, author: &str) -> bool {
    me.login.eq_ignore_ascii_case(author)
        || me
            .app_slug
            .as_deref()
            .is_some_and(|slug| author.eq_ignore_ascii_case(&format!("{slug}[bot]")))
}

/// The promotion `command` asks for, as the engine takes it (`None` for other commands).
fn promote_request(
    cmd: &jobs::Command,
    command: &Command,
    head_at_command: Option<String>,
) -> Option<PromoteRequest> {
    let Command::Promote {
        environment,
        app,
        sha,
    } = command
    else {
        return None;
    };
    Some(PromoteRequest {
        repo: cmd.repo.clone(),
        pr: cmd.number,
        environment: environment.clone(),
        app: app.clone(),
        sha: sha.clone(),
        head_at_command,
        actor: cmd.author.clone(),
        installation_id: cmd.installation_id,
        default_branch: cmd.default_branch.clone(),
    })
}

fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// What enqueueing a check came to.
enum Recheck {
    Queued,
    /// A job with the same key is queued or running (or finished a moment ago).
    AlreadyLive(JobState),
}

fn live_words(state: JobState) -> &'static str {
    match state {
        JobState::Queued => "queued",
        JobState::Running => "running",
        _ => "finished",
    }
}

impl CommandHandler {
    async fn handle(&self, ctx: &JobContext, cmd: &jobs::Command) -> Result<(), JobError> {
        let Some(forge) = self.services.forge.clone() else {
            warn!("no forge is configured, so commands cannot be authorized or answered; ignored");
            return Ok(());
        };
        if cmd.author.ends_with("[bot]") {
            info!("comment by a bot; ignored");
            return Ok(());
        }
        let me = match forge.identity().await {
            Ok(me) if is_self(&me, &cmd.author) => {
                info!("comment by Capstan itself; ignored");
                return Ok(());
            }
            Ok(me) => me,
            Err(e) => return Err(forge_error("reading Capstan's own identity", e)),
        };
        if self.already_answered(ctx).await? {
            info!(
                version = %cmd.comment_version,
                "this comment version was already answered; ignored"
            );
            return Ok(());
        }
        match forge
            .add_reaction(&cmd.repo, cmd.number, cmd.comment_id, Reaction::Eyes)
            .await
        {
            Ok(()) => {}
            Err(ForgeError::NotFound { .. }) => {
                info!("the comment no longer exists; nothing to answer");
                return Ok(());
            }
            Err(e @ (ForgeError::Other { .. } | ForgeError::RateLimited { .. })) => {
                return Err(forge_error("reacting to the comment", e));
            }
            Err(e) => warn!(error = %e, "could not react to the comment; answering anyway"),
        }
        let token = forge
            .git_token(&cmd.repo)
            .await
            .map_err(|e| forge_error("getting a token to fetch the repository", e))?;
        let body = match load_default_branch_config(
            &self.services.git,
            &cmd.repo,
            token,
            &self.default_prefix,
        )
        .await
        {
            Ok(loaded) => {
                if !loaded.from_file {
                    info!(
                        commit = %loaded.commit,
                        "no .capstan.yaml on the default branch; default command settings apply"
                    );
                }
                self.evaluate(forge.as_ref(), cmd, &loaded.config).await?
            }
            Err(RepoConfigError::Broken(msg)) => reply::render_note(
                cmd.comment_id,
                &cmd.comment_version,
                &format!(
                    "the settings on the default branch cannot be used ({msg}); fix them there and comment again"
                ),
            ),
            Err(e @ RepoConfigError::Git { .. }) => {
                if e.retry() != Retry::Permanent && ctx.job.attempts < ctx.job.max_attempts {
                    return Err(JobError::from_error(e));
                }
                // Out of retries: say so rather than leave the comment unanswered.
                warn!(error = %e, "giving up reading the default branch");
                reply::render_note(
                    cmd.comment_id,
                    &cmd.comment_version,
                    "the repository's default branch could not be fetched to read its settings; try again later",
                )
            }
        };
        self.post_reply(ctx, forge.as_ref(), &me, cmd, &body).await
    }

    /// An earlier job for the same comment version finished: a redelivery of that event.
    async fn already_answered(&self, ctx: &JobContext) -> Result<bool, JobError> {
        let jobs = ctx
            .queue
            .jobs_by_dedupe_key(&ctx.job.dedupe_key)
            .await
            .map_err(|e| store_error("looking for earlier jobs of this comment", e))?;
        Ok(jobs
            .iter()
            .any(|j| j.id != ctx.job.id && j.state == JobState::Succeeded))
    }

    async fn evaluate(
        &self,
        forge: &dyn Forge,
        cmd: &jobs::Command,
        config: &CommandConfig,
    ) -> Result<String, JobError> {
        let lines = parse_comment(&cmd.lines.join("\n"), config);
        if lines.is_empty() {
            return Ok(reply::render_note(
                cmd.comment_id,
                &cmd.comment_version,
                &format!(
                    "no line starts with this repository's command prefix {} (set in .capstan.yaml on the default branch)",
                    config.prefix
                ),
            ));
        }
        let lookup = ForgePermissions {
            forge,
            repo: &cmd.repo,
        };
        let decisions = authorize(&lines, &cmd.author, config, &lookup).await;
        let needs_pr = decisions
            .iter()
            .any(|d| matches!(d, Decision::Allowed { command, .. } if *command != Command::Help));
        let pr: Result<PullRequest, String> = if needs_pr {
            match forge.pull_request(&cmd.repo, cmd.number).await {
                Ok(pr) => Ok(pr),
                Err(ForgeError::NotFound { .. }) => {
                    Err(format!("pull request {} was not found", cmd.number))
                }
                Err(e @ (ForgeError::Other { .. } | ForgeError::RateLimited { .. })) => {
                    return Err(forge_error("reading the pull request", e));
                }
                Err(e) => Err(format!("the pull request could not be read: {e}")),
            }
        } else {
            Err(String::new())
        };
        let mut items = Vec::with_capacity(lines.len());
        for (line, decision) in lines.iter().zip(decisions) {
            let outcome = match decision {
                Decision::Refused { reason, .. } => {
                    info!(line = line.line, %reason, "command refused");
                    if let (Ok(c @ Command::Promote { .. }), Some(promoter)) =
                        (&line.outcome, &self.services.promoter)
                        && let Some(req) = promote_request(cmd, c, None)
                    {
                        promoter.record_refusal(&req, &reason).await;
                    }
                    Outcome::Refused(reason)
                }
                Decision::Allowed {
                    command,
                    permission,
                    ..
                } => {
                    info!(command = %command.kind(), %permission, "running command");
                    self.execute(cmd, config, &command, pr.as_ref()).await?
                }
            };
            items.push(ReplyItem {
                text: line.text.clone(),
                outcome,
            });
        }
        Ok(reply::render(
            cmd.comment_id,
            &cmd.comment_version,
            &cmd.author,
            &items,
        ))
    }

    async fn execute(
        &self,
        cmd: &jobs::Command,
        config: &CommandConfig,
        command: &Command,
        pr: Result<&PullRequest, &String>,
    ) -> Result<Outcome, JobError> {
        if *command == Command::Help {
            return Ok(Outcome::Help(config.help_text()));
        }
        if let Command::Promote {
            environment, sha, ..
        } = command
        {
            let Some(promoter) = &self.services.promoter else {
                return Ok(Outcome::Refused(
                    "promotion is not configured on this Capstan installation".into(),
                ));
            };
            // A pinned sha says exactly what the commenter reviewed; the engine checks it is
            // this PR's head (or merge commit). Without one, the head must be one the commenter
            // could have seen: known to Capstan before the comment was written.
            let seen =
                match (sha, pr) {
                    (Some(_), _) => Ok(None),
                    (None, Ok(pr)) => self.head_seen_by_comment(cmd, pr).await?.map(Some).map_err(
                        |why| {
                            format!(
                                "{why}; to promote it, repeat the command with the full sha of the \
                             head you reviewed: `{}`",
                                pr.head_sha
                            )
                        },
                    ),
                    (None, Err(why)) => Err(why.clone()),
                };
            let head = match seen {
                Ok(head) => head,
                Err(why) => {
                    if let Some(req) = promote_request(cmd, command, None) {
                        promoter.record_refusal(&req, &why).await;
                    }
                    return Ok(Outcome::Refused(format!(
                        "promotion to `{environment}`: {why}"
                    )));
                }
            };
            let Some(req) = promote_request(cmd, command, head) else {
                return Err(JobError::Permanent(anyhow!(
                    "a promote command without its request"
                )));
            };
            return Ok(match promoter.promote(&req).await {
                Ok(text) => Outcome::DoneWith {
                    summary: format!("promotion to `{environment}`"),
                    detail: text,
                },
                Err(why) => Outcome::Refused(format!("promotion to `{environment}`: {why}")),
            });
        }
        if let Command::Sync { app } = command {
            let Some(sync) = &self.services.sync else {
                return Ok(Outcome::Refused(
                    "ArgoCD sync is not configured on this Capstan installation".into(),
                ));
            };
            // The app as ArgoCD holds it, not as the repository describes it: refuse apps fed
            // by other repositories or in projects this repository does not use.
            let scope = match sync.app_origin(app).await {
                Ok(origin) => check_sync_scope(app, &origin, &config.repo_urls, &config.projects),
                Err(why) => Err(format!("`{app}` could not be read from ArgoCD ({why})")),
            };
            if let Err(why) = scope {
                warn!(%app, reason = %why, "sync refused");
                return Ok(Outcome::Refused(format!(
                    "ArgoCD sync of `{app}` refused: {why}"
                )));
            }
            return Ok(match sync.sync_app(app, None).await {
                Ok(text) => Outcome::DoneWith {
                    summary: format!("ArgoCD sync of `{app}`"),
                    detail: text,
                },
                Err(why) => {
                    Outcome::Refused(format!("ArgoCD sync of `{app}` did not start: {why}"))
                }
            });
        }
        let pr = match pr {
            Ok(pr) => pr,
            Err(why) => return Ok(Outcome::Refused(why.clone())),
        };
        let open = pr.state == PullRequestState::Open;
        match command {
            Command::Diff | Command::Validate => {
                if !open {
                    return Ok(Outcome::Refused(
                        "the pull request is closed; there is nothing to check".into(),
                    ));
                }
                let trigger = format!("command.{}", command.kind());
                Ok(Outcome::Done(
                    match self.recheck(cmd, pr, &trigger, None).await? {
                        Recheck::Queued => format!(
                            "a new check of `{}` is queued; the `capstan` check and the report will update",
                            short(&pr.head_sha)
                        ),
                        Recheck::AlreadyLive(state) => format!(
                            "a check of `{}` is already {}; its result will update the `capstan` check",
                            short(&pr.head_sha),
                            live_words(state)
                        ),
                    },
                ))
            }
            Command::Hold => {
                let runs = &self.services.runs;
                if let Some(h) = runs
                    .hold(&cmd.repo, cmd.number)
                    .await
                    .map_err(|e| store_error("reading the hold", e))?
                {
                    return Ok(Outcome::Done(format!(
                        "this pull request is already on hold (placed by {})",
                        crate::report::markdown::inline_max(&h.held_by, 60)
                    )));
                }
                runs.set_hold(&cmd.repo, cmd.number, &cmd.author)
                    .await
                    .map_err(|e| store_error("placing the hold", e))?;
                let rerun = self.recheck_after_hold(cmd, pr, "hold", open).await?;
                Ok(Outcome::Done(format!(
                    "placed a hold: the `capstan` check fails until someone with {} permission comments `{} unhold`; {rerun}",
                    config.required_permission(CommandKind::Unhold),
                    config.prefix
                )))
            }
            Command::Unhold => {
                let lifted = self
                    .services
                    .runs
                    .clear_hold(&cmd.repo, cmd.number)
                    .await
                    .map_err(|e| store_error("lifting the hold", e))?;
                if !lifted {
                    return Ok(Outcome::Done(
                        "there was no hold on this pull request".into(),
                    ));
                }
                let rerun = self.recheck_after_hold(cmd, pr, "unhold", open).await?;
                Ok(Outcome::Done(format!("lifted the hold; {rerun}")))
            }
            Command::OkToTest => {
                if !open {
                    return Ok(Outcome::Refused(
                        "the pull request is closed; there is nothing to check".into(),
                    ));
                }
                // The approval is for the head the commenter could have seen, never for one
                // pushed after the comment.
                if let Err(why) = self.head_seen_by_comment(cmd, pr).await? {
                    return Ok(Outcome::Refused(format!(
                        "nothing was approved: {why}; comment again to approve the current head"
                    )));
                }
                let key = format!("ok-to-test:{}@{}", cmd.comment_id, cmd.comment_version);
                let rerun = match self
                    .recheck(cmd, pr, OK_TO_TEST_TRIGGER, Some(&key))
                    .await?
                {
                    Recheck::Queued => "a check with them is queued".to_string(),
                    Recheck::AlreadyLive(state) => {
                        format!("a check with them is already {}", live_words(state))
                    }
                };
                Ok(Outcome::Done(format!(
                    "cluster checks approved for `{}` (a new push needs a new approval); {rerun}",
                    short(&pr.head_sha)
                )))
            }
            Command::Help | Command::Promote { .. } | Command::Sync { .. } => Err(
                JobError::Permanent(anyhow!("command {} reached the PR step", command.kind())),
            ),
        }
    }

    /// The PR head, when Capstan knew it as the head before the comment was written; otherwise
    /// why the commenter cannot be taken to have seen it (the reason for the reply).
    async fn head_seen_by_comment(
        &self,
        cmd: &jobs::Command,
        pr: &PullRequest,
    ) -> Result<Result<String, String>, JobError> {
        let Some(written) = cmd.written_at else {
            return Ok(Err(
                "the comment's time is unknown, so the head it was written for cannot be told"
                    .into(),
            ));
        };
        let since = HeadHistory::new(self.services.queue.db())
            .current_since(&cmd.repo, cmd.number, &pr.head_sha)
            .await
            .map_err(|e| store_error("reading the head history", e))?;
        Ok(match since {
            Some(at) if at <= written => Ok(pr.head_sha.clone()),
            Some(_) => Err(format!(
                "the head changed to `{}` after this comment was written",
                short(&pr.head_sha)
            )),
            None => Err(format!(
                "Capstan has not seen `{}` become the head before this comment was written",
                short(&pr.head_sha)
            )),
        })
    }

    /// A re-check so the published conclusion follows the hold. Its key is unique to this comment
    /// version: it supersedes a check of the same head that may have read the old hold.
    async fn recheck_after_hold(
        &self,
        cmd: &jobs::Command,
        pr: &PullRequest,
        what: &str,
        open: bool,
    ) -> Result<String, JobError> {
        if !open {
            return Ok("the pull request is closed, so no check was re-run".into());
        }
        let key = format!("command:{}@{}", cmd.comment_id, cmd.comment_version);
        let trigger = format!("command.{what}");
        Ok(match self.recheck(cmd, pr, &trigger, Some(&key)).await? {
            Recheck::Queued => format!("a re-check of `{}` is queued", short(&pr.head_sha)),
            Recheck::AlreadyLive(state) => {
                format!(
                    "a re-check of `{}` is already {}",
                    short(&pr.head_sha),
                    live_words(state)
                )
            }
        })
    }

    async fn recheck(
        &self,
        cmd: &jobs::Command,
        pr: &PullRequest,
        trigger: &str,
        key_suffix: Option<&str>,
    ) -> Result<Recheck, JobError> {
        let mut job = PrCheck {
            repo: cmd.repo.clone(),
            number: cmd.number,
            head_sha: pr.head_sha.clone(),
            head_ref: Some(pr.head_ref.clone()),
            base_ref: Some(pr.base_ref.clone()),
            installation_id: cmd.installation_id,
            trigger: trigger.to_string(),
            sender: Some(cmd.author.clone()),
        }
        .into_job();
        if let Some(suffix) = key_suffix {
            job.dedupe_key = format!("{}/{suffix}", job.dedupe_key);
        }
        let queue = &self.services.queue;
        if let Some(id) = queue
            .enqueue(&job)
            .await
            .map_err(|e| store_error("queueing a check", e))?
        {
            info!(check_job = id, %trigger, head = %pr.head_sha, "check queued");
            return Ok(Recheck::Queued);
        }
        let live = queue
            .jobs_by_dedupe_key(&job.dedupe_key)
            .await
            .map_err(|e| store_error("reading the live check", e))?
            .into_iter()
            .rev()
            .find(|j| !j.state.is_final())
            .map(|j| j.state)
            // It finished between the two statements: the result is already published.
            .unwrap_or(JobState::Succeeded);
        Ok(Recheck::AlreadyLive(live))
    }

    async fn post_reply(
        &self,
        ctx: &JobContext,
        forge: &dyn Forge,
        me: &Identity,
        cmd: &jobs::Command,
        body: &str,
    ) -> Result<(), JobError> {
        if ctx.job.attempts > 1 {
            // An earlier attempt may have posted the reply and failed afterwards.
            let comments = forge
                .comments(&cmd.repo, cmd.number)
                .await
                .map_err(|e| forge_error("listing comments", e))?;
            let posted = comments.iter().any(|c| {
                reply::is_reply_to(&c.body, cmd.comment_id, &cmd.comment_version)
                    && is_self(me, &c.author)
            });
            if posted {
                info!("the reply was posted by an earlier attempt");
                return Ok(());
            }
        }
        forge
            .create_comment(&cmd.repo, cmd.number, body)
            .await
            .map_err(|e| forge_error("posting the reply", e))?;
        info!("reply posted");
        Ok(())
    }
}
