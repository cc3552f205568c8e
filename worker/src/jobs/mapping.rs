//! Webhook event → jobs. Runs after the signature is verified; parses only the event's own shape.
//!
//! | event | action / condition | job |
//! |---|---|---|
//! | `pull_request` | opened, synchronize, reopened, ready_for_review | `pr_check` (repo, number, head sha) |
//! | `pull_request` | closed with `merged: true` into the default branch | `pr_merged` |
//! | `push` | to the default branch, not a deletion | `default_branch_push` |
//! | `issue_comment` | created/edited on a PR by its author (the sender), a command line, not by a bot or Capstan | `command` |
//! | `check_run`, `check_suite` | rerequested, per PR listed | `pr_check` for that head |
//! | `merge_group` | checks_requested | `merge_group_check` (the queue's merge commit) |
//! | `ping` | | `ping` |
//! | anything else | | ignored (recorded) |
//!
//! Gitea and Forgejo ([`classify_gitea`]) send the same three events Capstan acts on in the
//! same shape for every field it reads; their differences are handled there: the action
//! `synchronized` (GitHub's `synchronize`), a branch deletion as a push to the zero commit, and
//! no check, merge-queue or ping events.

use serde::de::DeserializeOwned;
use serde_json::error::Category;

use super::events::{
    CheckPullRequest, CheckRunEvent, CheckSuiteEvent, Envelope, Installation, IssueCommentEvent,
    MergeGroupEvent, PingEvent, PullRequestEvent, PushEvent,
};
use super::{Command, DefaultBranchPush, MergeGroupCheck, Ping, PrCheck, PrMerged};
use crate::queue::NewJob;

/// Marker Capstan puts in every comment it writes, so its own comments never trigger commands.
pub const COMMENT_MARKER: &str = "<!-- capstan";

/// Settings that shape the mapping.
#[derive(Clone, Debug)]
pub struct MappingOptions {
    /// Command lines start with this (default `/capstan`).
    pub command_prefix: String,
    /// Also accept bare `/diff`-style commands.
    pub bare_commands: bool,
    /// Logins Capstan itself comments as (its App's `<slug>[bot]`, or a token's user).
    pub self_logins: Vec<String>,
}

impl Default for MappingOptions {
    fn default() -> Self {
        MappingOptions {
            command_prefix: "/capstan".into(),
            bare_commands: false,
            self_logins: Vec::new(),
        }
    }
}

/// The bare command words (`/diff`), accepted when `bare_commands` is on.
pub const BARE_COMMANDS: [&str; 8] = [
    "help",
    "diff",
    "validate",
    "promote",
    "sync",
    "hold",
    "unhold",
    "ok-to-test",
];

/// What to do with a delivery.
#[derive(Debug, PartialEq)]
pub enum Decision {
    Jobs(Vec<NewJob>),
    /// Valid but not acted on; the reason is recorded.
    Ignored(String),
    /// Well-formed JSON missing what the event requires; the reason is recorded.
    Rejected(String),
}

/// A classified delivery.
#[derive(Debug, PartialEq)]
pub struct Classified {
    pub action: Option<String>,
    /// `owner/name`, for the allowlist and the record.
    pub repo: Option<String>,
    pub decision: Decision,
}

/// The body is not JSON, or nests deeper than [`MAX_JSON_DEPTH`]: nothing is stored.
#[derive(Debug, thiserror::Error)]
#[error("delivery {delivery_id}: body is not acceptable JSON for a {event} event: {reason}")]
pub struct MalformedPayload {
    pub delivery_id: String,
    pub event: String,
    pub reason: String,
}

/// GitHub's payloads nest about ten levels; anything past this is refused before parsing.
pub const MAX_JSON_DEPTH: usize = 64;

/// Deepest `[`/`{` nesting in `body`, ignoring brackets inside strings. A linear byte scan, so a
/// hostile body costs no recursion and no allocation.
pub fn json_depth(body: &[u8]) -> usize {
    let (mut depth, mut max, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &b in body {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match b {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                max = max.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// Classify one verified GitHub delivery.
pub fn classify(
    event: &str,
    delivery_id: &str,
    body: &[u8],
    opts: &MappingOptions,
) -> Result<Classified, MalformedPayload> {
    classify_unchecked(event, delivery_id, body, opts).map(names_checked)
}

/// Classify one verified Gitea or Forgejo delivery (`X-Gitea-Event` / `X-Forgejo-Event`).
pub fn classify_gitea(
    event: &str,
    delivery_id: &str,
    body: &[u8],
    opts: &MappingOptions,
) -> Result<Classified, MalformedPayload> {
    classify_gitea_unchecked(event, delivery_id, body, opts).map(names_checked)
}

/// Classify one verified GitLab delivery (`X-Gitlab-Event`).
pub fn classify_gitlab(
    event: &str,
    delivery_id: &str,
    body: &[u8],
    opts: &MappingOptions,
) -> Result<Classified, MalformedPayload> {
    classify_gitlab_unchecked(event, delivery_id, body, opts).map(names_checked)
}

/// Every forge's jobs pass [`super::check_names`] on the way out: one unusable name rejects
/// the whole delivery, so no part of it runs.
fn names_checked(c: Classified) -> Classified {
    let Decision::Jobs(jobs) = &c.decision else {
        return c;
    };
    match jobs.iter().map(super::check_names).find_map(Result::err) {
        Some(reason) => Classified {
            decision: Decision::Rejected(reason),
            ..c
        },
        None => c,
    }
}

/// GitHub's events to jobs, before the name check.
fn classify_unchecked(
    event: &str,
    delivery_id: &str,
    body: &[u8],
    opts: &MappingOptions,
) -> Result<Classified, MalformedPayload> {
    check_depth(event, delivery_id, body)?;
    let typed = match event {
        "pull_request" => parse(body).map(pull_request),
        "push" => parse(body).map(push),
        "issue_comment" => parse(body).map(|e| issue_comment(e, opts)),
        "check_run" => parse(body).map(|e: CheckRunEvent| {
            let trigger = format!("check_run.{}", e.action);
            checks(
                e.action,
                &e.repository.full_name,
                e.installation,
                e.check_run.pull_requests,
                trigger,
            )
        }),
        "check_suite" => parse(body).map(|e: CheckSuiteEvent| {
            let trigger = format!("check_suite.{}", e.action);
            checks(
                e.action,
                &e.repository.full_name,
                e.installation,
                e.check_suite.pull_requests,
                trigger,
            )
        }),
        "merge_group" => parse(body).map(merge_group),
        "ping" => parse(body).map(|e| ping(e, delivery_id)),
        _ => parse(body).map(|e: Envelope| Classified {
            action: e.action,
            repo: e.repository.map(|r| r.full_name),
            decision: Decision::Ignored(format!("event {event} is not handled")),
        }),
    };
    settle(event, delivery_id, typed, || {
        let envelope: Option<Envelope> = serde_json::from_slice(body).ok();
        (
            envelope.as_ref().and_then(|e| e.action.clone()),
            envelope.and_then(|e| e.repository.map(|r| r.full_name)),
        )
    })
}

/// A body nesting deeper than [`MAX_JSON_DEPTH`] is refused before any parsing.
fn check_depth(event: &str, delivery_id: &str, body: &[u8]) -> Result<(), MalformedPayload> {
    let depth = json_depth(body);
    if depth > MAX_JSON_DEPTH {
        return Err(MalformedPayload {
            delivery_id: delivery_id.to_string(),
            event: event.to_string(),
            reason: format!("nesting depth {depth} exceeds {MAX_JSON_DEPTH}"),
        });
    }
    Ok(())
}

/// The typed parse's outcome as the intake records it: well-formed JSON missing what the event
/// requires is a recorded rejection (with the action and repository `identify` can still read),
/// anything else is not JSON at all.
fn settle(
    event: &str,
    delivery_id: &str,
    typed: Result<Classified, serde_json::Error>,
    identify: impl FnOnce() -> (Option<String>, Option<String>),
) -> Result<Classified, MalformedPayload> {
    match typed {
        Ok(c) => Ok(c),
        Err(e) if e.classify() == Category::Data => {
            let (action, repo) = identify();
            Ok(Classified {
                action,
                repo,
                decision: Decision::Rejected(format!("{event} payload: {e}")),
            })
        }
        Err(e) => Err(MalformedPayload {
            delivery_id: delivery_id.to_string(),
            event: event.to_string(),
            reason: e.to_string(),
        }),
    }
}

/// Gitea's events read as GitHub's, with their differences, before the name check.
fn classify_gitea_unchecked(
    event: &str,
    delivery_id: &str,
    body: &[u8],
    opts: &MappingOptions,
) -> Result<Classified, MalformedPayload> {
    match event {
        // Their comments on pull requests arrive as `issue_comment` (the event type header says
        // `pull_request_comment`); either name is taken.
        "pull_request" | "push" | "issue_comment" | "pull_request_comment" => {
            let event = if event == "pull_request_comment" {
                "issue_comment"
            } else {
                event
            };
            let mut c = classify_unchecked(event, delivery_id, body, opts)?;
            // Re-classified with Gitea's differences; `classify` has checked depth and shape.
            match event {
                "pull_request" => {
                    if let Ok(mut e) = parse::<PullRequestEvent>(body) {
                        if e.action == "synchronized" {
                            e.action = "synchronize".into();
                        }
                        c = pull_request(e);
                    }
                }
                "push" => {
                    if let Ok(mut e) = parse::<PushEvent>(body) {
                        e.deleted |= !e.after.is_empty() && e.after.bytes().all(|b| b == b'0');
                        c = push(e);
                    }
                }
                _ => {}
            }
            Ok(c)
        }
        _ => classify_unchecked("unhandled", delivery_id, body, opts).map(|c| Classified {
            decision: Decision::Ignored(format!("Gitea event {event} is not handled")),
            ..c
        }),
    }
}

/// GitLab's hooks, before the name check: merge request, push and note hooks
/// make the same jobs as GitHub's events. A merge request's `update` checks the head only when
/// it carries new commits (`oldrev`); a note runs commands only on a merge request, written (or
/// edited) by its own author.
fn classify_gitlab_unchecked(
    event: &str,
    delivery_id: &str,
    body: &[u8],
    opts: &MappingOptions,
) -> Result<Classified, MalformedPayload> {
    use super::events::gitlab;
    check_depth(event, delivery_id, body)?;
    let typed = match event {
        "Merge Request Hook" => parse(body).map(gitlab_merge_request),
        "Push Hook" => parse(body).map(|e: gitlab::PushEvent| {
            push(PushEvent {
                deleted: !e.after.is_empty() && e.after.bytes().all(|b| b == b'0'),
                git_ref: e.git_ref,
                before: e.before,
                after: e.after,
                repository: gitlab_repository(e.project),
                pusher: e
                    .user_username
                    .map(|name| super::events::Pusher { name: Some(name) }),
                installation: None,
            })
        }),
        "Note Hook" => parse(body).map(|e| gitlab_note(e, opts)),
        _ => parse(body).map(|e: gitlab::Envelope| Classified {
            action: e.object_kind,
            repo: e.project.map(|p| p.path_with_namespace),
            decision: Decision::Ignored(format!("GitLab event {event} is not handled")),
        }),
    };
    let mut c = settle(event, delivery_id, typed, || {
        let envelope: Option<gitlab::Envelope> = serde_json::from_slice(body).ok();
        (
            envelope.as_ref().and_then(|e| e.object_kind.clone()),
            envelope.and_then(|e| e.project.map(|p| p.path_with_namespace)),
        )
    })?;
    // A project in a nested group has no owner/name; refused here, with the reason recorded,
    // rather than queued for a client that would refuse every call about it.
    if matches!(c.decision, Decision::Jobs(_))
        && c.repo
            .as_deref()
            .is_some_and(|r| r.matches('/').count() > 1)
    {
        c.decision = Decision::Rejected(crate::forge::gitlab::NESTED_GROUPS.into());
    }
    Ok(c)
}

fn gitlab_repository(p: super::events::gitlab::Project) -> super::events::Repository {
    super::events::Repository {
        full_name: p.path_with_namespace,
        default_branch: p.default_branch,
    }
}

fn gitlab_merge_request(e: super::events::gitlab::MergeRequestEvent) -> Classified {
    let mr = e.object_attributes;
    let action = mr.action.clone().unwrap_or_else(|| "open".into());
    let repository = gitlab_repository(e.project);
    let repo = repository.full_name.clone();
    let sender = e.user.map(|u| u.username);
    // GitHub's names for the same moments, so triggers and trust rules read alike.
    let github_action = match action.as_str() {
        "open" => Some("opened"),
        "reopen" => Some("reopened"),
        "update" if mr.oldrev.is_some() => Some("synchronize"),
        _ => None,
    };
    let decision = if let Some(a) = github_action {
        Decision::Jobs(vec![
            PrCheck {
                repo: repo.clone(),
                number: mr.iid,
                head_sha: mr.last_commit.id,
                head_ref: Some(mr.source_branch),
                base_ref: Some(mr.target_branch),
                installation_id: None,
                sender,
                trigger: format!("pull_request.{a}"),
            }
            .into_job(),
        ])
    } else if action == "merge" {
        match repository.default_branch {
            Some(default) if default == mr.target_branch => Decision::Jobs(vec![
                PrMerged {
                    repo: repo.clone(),
                    number: mr.iid,
                    merge_commit_sha: mr.merge_commit_sha,
                    head_sha: mr.last_commit.id,
                    base_ref: mr.target_branch,
                    merged_by: sender,
                    installation_id: None,
                    default_branch: Some(default),
                }
                .into_job(),
            ]),
            Some(default) => Decision::Ignored(format!(
                "merge request merged into {} (default branch is {default}): nothing promotes",
                mr.target_branch
            )),
            None => Decision::Rejected(
                "Merge Request Hook payload: project.default_branch is missing".into(),
            ),
        }
    } else if action == "update" {
        Decision::Ignored("merge request updated without new commits".into())
    } else {
        Decision::Ignored(format!("merge request action {action} is not handled"))
    };
    Classified {
        action: Some(action),
        repo: Some(repo),
        decision,
    }
}

fn gitlab_note(e: super::events::gitlab::NoteEvent, opts: &MappingOptions) -> Classified {
    let repo = e.project.path_with_namespace.clone();
    let attrs = e.object_attributes;
    let action = attrs.action.clone().unwrap_or_else(|| "create".into());
    let login = e.user.username.clone();
    let edited_by_other = matches!((e.user.id, attrs.author_id), (Some(u), Some(a)) if u != a);
    let decision = if !matches!(action.as_str(), "create" | "update") {
        Decision::Ignored(format!("note action {action} is not handled"))
    } else if attrs.noteable_type != "MergeRequest" || e.merge_request.is_none() {
        Decision::Ignored(format!(
            "note on a {}, not a merge request",
            attrs.noteable_type
        ))
    } else if edited_by_other {
        Decision::Ignored(format!(
            "note {action}d by {login}, not its author: commands are not run"
        ))
    } else if login.ends_with("[bot]")
        || login.starts_with("project_") && login.contains("_bot")
        || opts.self_logins.iter().any(|l| l == &login)
        || attrs.note.contains(COMMENT_MARKER)
    {
        Decision::Ignored(format!("note by bot {login}"))
    } else {
        let lines = command_lines(&attrs.note, opts);
        match (lines.is_empty(), e.merge_request) {
            (false, Some(mr)) => Decision::Jobs(vec![
                Command {
                    repo: repo.clone(),
                    number: mr.iid,
                    comment_id: attrs.id,
                    comment_version: attrs.updated_at.clone().unwrap_or_else(|| action.clone()),
                    author: login,
                    author_association: None,
                    lines,
                    installation_id: None,
                    written_at: gitlab_time(attrs.updated_at.as_deref())
                        .or_else(|| gitlab_time(attrs.created_at.as_deref())),
                    default_branch: e.project.default_branch,
                }
                .into_job(),
            ]),
            _ => Decision::Ignored("note has no command line".into()),
        }
    };
    Classified {
        action: Some(action),
        repo: Some(repo),
        decision,
    }
}

/// GitLab's hook times (`2026-12-01 11:00:00 UTC`, or RFC 3339 in newer payloads) in Unix
/// milliseconds.
fn gitlab_time(s: Option<&str>) -> Option<i64> {
    use time::format_description::well_known::Rfc3339;
    let s = s?;
    let t = time::OffsetDateTime::parse(s, &Rfc3339).ok().or_else(|| {
        let fmt =
            time::macros::format_description!("[year]-[month]-[day] [hour]:[minute]:[second] UTC");
        time::PrimitiveDateTime::parse(s, &fmt)
            .ok()
            .map(|p| p.assume_utc())
    })?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, serde_json::Error> {
    // serde_json refuses nesting deeper than 128 levels, so hostile depth is an error, not a
    // stack overflow.
    serde_json::from_slice(body)
}

fn installation_id(i: &Option<Installation>) -> Option<u64> {
    i.as_ref().map(|i| i.id)
}

fn pull_request(e: PullRequestEvent) -> Classified {
    let repo = e.repository.full_name.clone();
    let pr = e.pull_request;
    let decision = match e.action.as_str() {
        "opened" | "synchronize" | "reopened" | "ready_for_review" => Decision::Jobs(vec![
            PrCheck {
                repo: repo.clone(),
                number: pr.number,
                head_sha: pr.head.sha,
                head_ref: Some(pr.head.name),
                base_ref: Some(pr.base.name),
                installation_id: installation_id(&e.installation),
                sender: e.sender.as_ref().map(|u| u.login.clone()),
                trigger: format!("pull_request.{}", e.action),
            }
            .into_job(),
        ]),
        "closed" if pr.merged == Some(true) => match e.repository.default_branch {
            // Only the default branch promotes: a merge into any other branch would read
            // promotion rules from a branch its author may control.
            Some(default) if default == pr.base.name => Decision::Jobs(vec![
                PrMerged {
                    repo: repo.clone(),
                    number: pr.number,
                    merge_commit_sha: pr.merge_commit_sha,
                    head_sha: pr.head.sha,
                    base_ref: pr.base.name,
                    merged_by: pr.merged_by.map(|u| u.login),
                    installation_id: installation_id(&e.installation),
                    default_branch: Some(default),
                }
                .into_job(),
            ]),
            Some(default) => Decision::Ignored(format!(
                "pull request merged into {} (default branch is {default}): nothing promotes",
                pr.base.name
            )),
            None => Decision::Rejected(
                "pull_request payload: repository.default_branch is missing".into(),
            ),
        },
        "closed" => Decision::Ignored("pull request closed without merging".into()),
        other => Decision::Ignored(format!("pull_request action {other} is not handled")),
    };
    Classified {
        action: Some(e.action),
        repo: Some(repo),
        decision,
    }
}

fn push(e: PushEvent) -> Classified {
    let repo = e.repository.full_name.clone();
    let decision = match e.repository.default_branch.as_deref() {
        _ if e.deleted => Decision::Ignored(format!("push deletes {}", e.git_ref)),
        Some(default) if e.git_ref == format!("refs/heads/{default}") => Decision::Jobs(vec![
            DefaultBranchPush {
                repo: repo.clone(),
                git_ref: e.git_ref,
                before: e.before,
                after: e.after,
                pusher: e.pusher.and_then(|p| p.name),
                installation_id: installation_id(&e.installation),
            }
            .into_job(),
        ]),
        Some(default) => Decision::Ignored(format!(
            "push to {} (default branch is {default})",
            e.git_ref
        )),
        None => Decision::Rejected("push payload: repository.default_branch is missing".into()),
    };
    Classified {
        action: None,
        repo: Some(repo),
        decision,
    }
}

fn issue_comment(e: IssueCommentEvent, opts: &MappingOptions) -> Classified {
    let repo = e.repository.full_name.clone();
    let author = &e.comment.user;
    let body = e.comment.body.as_deref().unwrap_or("");
    let edited_by_other = match &e.sender {
        Some(sender) => !sender.login.eq_ignore_ascii_case(&author.login),
        // GitHub always names the sender; without one nobody can say who edited.
        None => e.action == "edited",
    };
    let decision = if !matches!(e.action.as_str(), "created" | "edited") {
        Decision::Ignored(format!("issue_comment action {} is not handled", e.action))
    } else if e.issue.pull_request.is_none() {
        Decision::Ignored("comment on an issue, not a pull request".into())
    } else if edited_by_other {
        // A maintainer (or an App) editing someone else's comment must not run commands with
        // the author's permission, nor with their own under the author's name: nothing runs and
        // nothing is replied.
        Decision::Ignored(format!(
            "comment by {} {} by {}, not its author: commands are not run",
            author.login,
            e.action,
            e.sender
                .as_ref()
                .map_or("an unnamed sender", |s| s.login.as_str())
        ))
    } else if author.kind.as_deref() == Some("Bot")
        || author.login.ends_with("[bot]")
        || opts.self_logins.iter().any(|l| l == &author.login)
        || body.contains(COMMENT_MARKER)
    {
        Decision::Ignored(format!("comment by bot {}", author.login))
    } else {
        let lines = command_lines(body, opts);
        if lines.is_empty() {
            Decision::Ignored("comment has no command line".into())
        } else {
            Decision::Jobs(vec![
                Command {
                    repo: repo.clone(),
                    number: e.issue.number,
                    comment_id: e.comment.id,
                    comment_version: e
                        .comment
                        .updated_at
                        .clone()
                        .unwrap_or_else(|| e.action.clone()),
                    // The sender, who is the author (anyone else was ignored above).
                    author: author.login.clone(),
                    author_association: e.comment.author_association.clone(),
                    lines,
                    installation_id: installation_id(&e.installation),
                    written_at: written_at(&e.comment),
                    default_branch: e.repository.default_branch.clone(),
                }
                .into_job(),
            ])
        }
    };
    Classified {
        action: Some(e.action),
        repo: Some(repo),
        decision,
    }
}

/// When this version of the comment was written, in Unix milliseconds: `updated_at` (an edit
/// rewrites the commands), else `created_at`; `None` when neither is an RFC 3339 time.
fn written_at(c: &super::events::Comment) -> Option<i64> {
    let parse = |s: &Option<String>| {
        let t = time::OffsetDateTime::parse(
            s.as_deref()?,
            &time::format_description::well_known::Rfc3339,
        )
        .ok()?;
        i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
    };
    parse(&c.updated_at).or_else(|| parse(&c.created_at))
}

/// The lines of `body` that may be commands, found by the strict parser of `commands`: a line
/// starting in column 0 with a prefix (or, with `bare_commands`, a known `/word`), outside fenced
/// code blocks and HTML comments. Indented lines are not commands (four spaces make a code block).
/// Lines are passed on as written, so the handler's parse sees exactly what a reader sees; it also
/// refuses the malformed ones with a reason.
///
/// The prefix that counts is the repository's `commands.prefix`, which only the handler knows (it
/// reads `.capstan.yaml` from the default branch); the service's prefix is its default. So besides
/// the service's prefix, any prefix-shaped word followed by a command name (`/cap diff`) is passed
/// on, and the handler keeps the lines with the repository's prefix.
pub fn command_lines(body: &str, opts: &MappingOptions) -> Vec<String> {
    let mut prefixes = vec![opts.command_prefix.clone()];
    for line in body.split('\n') {
        let mut words = line.trim_end_matches(['\r', ' ', '\t']).split(' ');
        if let (Some(p), Some(cmd)) = (words.next(), words.next())
            && crate::commands::valid_prefix(p)
            && BARE_COMMANDS.contains(&cmd)
            && !prefixes.iter().any(|x| x == p)
        {
            prefixes.push(p.to_string());
        }
    }
    let mut found: Vec<(usize, String)> = Vec::new();
    for (i, prefix) in prefixes.into_iter().enumerate() {
        let config = crate::commands::CommandConfig {
            prefix,
            bare: i == 0 && opts.bare_commands,
            ..crate::commands::CommandConfig::default()
        };
        for l in crate::commands::parse_comment(body, &config) {
            if !found.iter().any(|(n, _)| *n == l.line) {
                found.push((l.line, l.text));
            }
        }
    }
    found.sort_by_key(|(n, _)| *n);
    found.into_iter().map(|(_, t)| t).collect()
}

fn checks(
    action: String,
    repo: &str,
    installation: Option<Installation>,
    prs: Vec<CheckPullRequest>,
    trigger: String,
) -> Classified {
    let decision = if action != "rerequested" {
        Decision::Ignored(format!("{trigger} is not handled"))
    } else if prs.is_empty() {
        Decision::Ignored(format!("{trigger} lists no pull request"))
    } else {
        Decision::Jobs(
            prs.into_iter()
                .map(|pr| {
                    PrCheck {
                        repo: repo.to_string(),
                        number: pr.number,
                        head_sha: pr.head.sha,
                        head_ref: Some(pr.head.name),
                        base_ref: Some(pr.base.name),
                        installation_id: installation_id(&installation),
                        trigger: trigger.clone(),
                        sender: None,
                    }
                    .into_job()
                })
                .collect(),
        )
    };
    Classified {
        action: Some(action),
        repo: Some(repo.to_string()),
        decision,
    }
}

/// A merge queue asking for the required checks of a group's merge commit. The refs must be
/// branches: anything else is a payload Capstan cannot fetch, so it is rejected, not guessed at.
fn merge_group(e: MergeGroupEvent) -> Classified {
    let repo = e.repository.full_name.clone();
    let g = e.merge_group;
    let decision = if e.action != "checks_requested" {
        Decision::Ignored(format!("merge_group action {} is not handled", e.action))
    } else {
        match (
            g.head_ref.strip_prefix("refs/heads/"),
            g.base_ref.strip_prefix("refs/heads/"),
        ) {
            (Some(head_ref), Some(base_ref)) => Decision::Jobs(vec![
                MergeGroupCheck {
                    repo: repo.clone(),
                    head_sha: g.head_sha,
                    head_ref: head_ref.to_string(),
                    base_sha: g.base_sha,
                    base_ref: base_ref.to_string(),
                    installation_id: installation_id(&e.installation),
                }
                .into_job(),
            ]),
            _ => Decision::Rejected(format!(
                "merge_group payload: head_ref {:?} and base_ref {:?} must be branches (refs/heads/…)",
                g.head_ref, g.base_ref
            )),
        }
    };
    Classified {
        action: Some(e.action),
        repo: Some(repo),
        decision,
    }
}

fn ping(e: PingEvent, delivery_id: &str) -> Classified {
    let repo = e.repository.map(|r| r.full_name);
    Classified {
        action: None,
        repo: repo.clone(),
        decision: Decision::Jobs(vec![
            Ping {
                delivery_id: delivery_id.to_string(),
                hook_id: e.hook_id,
                zen: e.zen,
                repo,
            }
            .into_job(),
        ]),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn kinds(c: &Classified) -> Vec<&str> {
        match &c.decision {
            Decision::Jobs(jobs) => jobs.iter().map(|j| j.kind.as_str()).collect(),
            _ => vec![],
        }
    }

    fn comment(body: &str, login: &str, kind: &str, on_pr: bool) -> Vec<u8> {
        let mut issue = json!({"number": 7});
        if on_pr {
            issue["pull_request"] = json!({"url": "https://example.invalid/pulls/7"});
        }
        serde_json::to_vec(&json!({
            "action": "created",
            "issue": issue,
            "comment": {"id": 99, "body": body, "user": {"login": login, "type": kind},
                        "updated_at": "2026-11-26T08:00:00Z"},
            "repository": {"full_name": "acme/gitops"}
        }))
        .unwrap()
    }

    #[test]
    fn command_comment_on_pr_becomes_a_command_job() {
        let c = classify(
            "issue_comment",
            "d1",
            &comment("LGTM\n/capstan diff\n", "alice", "User", true),
            &MappingOptions::default(),
        )
        .unwrap();
        assert_eq!(kinds(&c), vec!["command"]);
        let Decision::Jobs(jobs) = &c.decision else {
            panic!()
        };
        assert_eq!(jobs[0].payload["lines"], json!(["/capstan diff"]));
        assert_eq!(jobs[0].payload["number"], json!(7));
    }

    #[test]
    fn bot_self_and_marker_comments_are_ignored() {
        let opts = MappingOptions {
            self_logins: vec!["capstan-ci".into()],
            ..MappingOptions::default()
        };
        for (login, kind, body) in [
            ("dependabot[bot]", "Bot", "/capstan diff"),
            ("some-app[bot]", "User", "/capstan diff"),
            ("capstan-ci", "User", "/capstan diff"),
            ("alice", "User", "<!-- capstan:sticky -->\n/capstan diff"),
        ] {
            let c = classify(
                "issue_comment",
                "d",
                &comment(body, login, kind, true),
                &opts,
            )
            .unwrap();
            assert!(
                matches!(c.decision, Decision::Ignored(ref r) if r.contains("bot")),
                "{login}: {:?}",
                c.decision
            );
        }
    }

    #[test]
    fn comment_on_plain_issue_is_ignored() {
        let c = classify(
            "issue_comment",
            "d",
            &comment("/capstan diff", "alice", "User", false),
            &MappingOptions::default(),
        )
        .unwrap();
        assert!(matches!(c.decision, Decision::Ignored(_)));
    }

    #[test]
    fn command_lines_need_the_prefix_as_a_word_and_skip_code_blocks() {
        let opts = MappingOptions::default();
        assert_eq!(
            command_lines(
                "/capstan promote production web\n  /capstan hold\n/capstanx\n",
                &opts
            ),
            vec!["/capstan promote production web"]
        );
        assert!(command_lines("```\n/capstan diff\n```", &opts).is_empty());
        assert!(command_lines("~~~yaml\n/capstan diff\n~~~", &opts).is_empty());
        assert!(command_lines("<!--\n/capstan diff\n-->", &opts).is_empty());
        // Addressed to Capstan but malformed: passed on, so the reply can say why it was refused.
        assert_eq!(
            command_lines("/capstan\u{00A0}diff", &opts),
            vec!["/capstan\u{00A0}diff"]
        );
        assert!(command_lines("/diff", &opts).is_empty());
        let bare = MappingOptions {
            bare_commands: true,
            ..opts
        };
        assert_eq!(command_lines("/diff\n/unknown", &bare), vec!["/diff"]);
    }

    /// The repository's `commands.prefix` wins over the service's `--command-prefix`: a comment
    /// with another prefix followed by a command reaches the handler, which reads the setting.
    #[test]
    fn a_repository_prefix_other_than_the_services_reaches_the_handler() {
        let opts = MappingOptions::default();
        assert_eq!(
            command_lines("hello\n/cap diff\n/capstan help", &opts),
            vec!["/cap diff", "/capstan help"]
        );
        assert!(command_lines("/cc @alice\n/capx\n/cap/x diff", &opts).is_empty());
        assert!(command_lines("```\n/cap diff\n```", &opts).is_empty());
        let c = classify(
            "issue_comment",
            "d",
            &comment("/ops promote production web", "alice", "User", true),
            &opts,
        )
        .unwrap();
        assert!(matches!(c.decision, Decision::Jobs(_)), "{:?}", c.decision);
    }

    #[test]
    fn missing_required_field_is_a_recorded_rejection() {
        let body = br#"{"action":"opened","repository":{"full_name":"acme/gitops"}}"#;
        let c = classify("pull_request", "d", body, &MappingOptions::default()).unwrap();
        assert_eq!(c.repo.as_deref(), Some("acme/gitops"));
        assert!(
            matches!(c.decision, Decision::Rejected(ref r) if r.contains("pull_request")),
            "{:?}",
            c.decision
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_a_crash() {
        let depth = 10_000;
        let open = "[".repeat(depth);
        let close = "]".repeat(depth);
        let bodies = [
            format!("{open}{close}"),
            format!(r#"{{"action":"opened","x":{open}{close}}}"#),
            format!(r#"{{"action":"opened","pull_request":{open}{close}}}"#),
            format!(r#"{{"action":"opened","pull_request":{{"number":{open}{close}}}}}"#),
        ];
        for body in &bodies {
            for event in ["pull_request", "push", "ping", "unknown_event"] {
                let err =
                    classify(event, "d", body.as_bytes(), &MappingOptions::default()).unwrap_err();
                assert!(err.reason.contains("nesting depth 1000"), "{event}: {err}");
            }
        }
    }

    #[test]
    fn depth_scan_ignores_brackets_in_strings() {
        assert_eq!(json_depth(br#"{"a":[1,{"b":"[[[{{{\"]]"}]}"#), 3);
        assert_eq!(json_depth(b"[]"), 1);
        assert_eq!(json_depth(b"42"), 0);
    }

    #[test]
    fn rerequested_check_suite_without_prs_is_ignored() {
        let body = br#"{"action":"rerequested","check_suite":{"head_sha":"abc","pull_requests":[]},"repository":{"full_name":"a/b"}}"#;
        let c = classify("check_suite", "d", body, &MappingOptions::default()).unwrap();
        assert!(matches!(c.decision, Decision::Ignored(_)));
    }

    fn repo() -> serde_json::Value {
        json!({"full_name": "acme/gitops", "default_branch": "main"})
    }

    /// Commit ids for payloads: the mapping refuses anything that is not one.
    const ABC: &str = "abcabcabcabcabcabcabcabcabcabcabcabcabca";
    const DEF: &str = "defdefdefdefdefdefdefdefdefdefdefdefdefd";

    #[test]
    fn rerequested_check_run_checks_each_listed_pr_head() {
        let pr = |n: u64, sha: &str| json!({"number": n, "head": {"ref": "f", "sha": sha}, "base": {"ref": "main", "sha": DEF}});
        let body = serde_json::to_vec(&json!({
            "action": "rerequested",
            "check_run": {"head_sha": ABC, "pull_requests": [pr(1, ABC), pr(2, ABC)]},
            "repository": repo(),
        }))
        .unwrap();
        let c = classify("check_run", "d", &body, &MappingOptions::default()).unwrap();
        let Decision::Jobs(jobs) = c.decision else {
            panic!("{:?}", c.decision)
        };
        let keys: Vec<_> = jobs.iter().map(|j| j.dedupe_key.as_str()).collect();
        assert_eq!(
            keys,
            [
                format!("pr_check:acme/gitops#1@{ABC}"),
                format!("pr_check:acme/gitops#2@{ABC}")
            ]
        );
        assert_eq!(jobs[0].payload["trigger"], "check_run.rerequested");
        assert_eq!(jobs[0].supersede_key.as_deref(), Some("pr:acme/gitops#1"));
    }

    #[test]
    fn only_merged_closes_and_default_branch_pushes_make_jobs() {
        let pr = |merged: bool| {
            serde_json::to_vec(&json!({
                "action": "closed",
                "pull_request": {"number": 3, "merged": merged, "merge_commit_sha": ABC,
                                 "head": {"ref": "f", "sha": DEF}, "base": {"ref": "main", "sha": DEF}},
                "repository": repo(),
            }))
            .unwrap()
        };
        let merged = classify("pull_request", "d", &pr(true), &MappingOptions::default()).unwrap();
        assert_eq!(kinds(&merged), ["pr_merged"]);
        let closed = classify("pull_request", "d", &pr(false), &MappingOptions::default()).unwrap();
        assert!(matches!(closed.decision, Decision::Ignored(_)));

        let push = |r: &str, deleted: bool| {
            serde_json::to_vec(&json!({"ref": r, "before": ABC, "after": DEF, "deleted": deleted, "repository": repo()}))
                .unwrap()
        };
        let main = classify(
            "push",
            "d",
            &push("refs/heads/main", false),
            &MappingOptions::default(),
        )
        .unwrap();
        assert_eq!(kinds(&main), ["default_branch_push"]);
        for (r, deleted) in [
            ("refs/heads/topic", false),
            ("refs/tags/v1", false),
            ("refs/heads/main", true),
        ] {
            let c = classify("push", "d", &push(r, deleted), &MappingOptions::default()).unwrap();
            assert!(matches!(c.decision, Decision::Ignored(_)), "{r} {deleted}");
        }
    }

    fn merge_group(action: &str, head_ref: &str) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "action": action,
            "merge_group": {"head_sha": ABC, "head_ref": head_ref,
                            "base_sha": DEF, "base_ref": "refs/heads/main"},
            "repository": repo(),
        }))
        .unwrap()
    }

    #[test]
    fn a_merge_group_asking_for_checks_checks_its_merge_commit() {
        let c = classify(
            "merge_group",
            "d",
            &merge_group(
                "checks_requested",
                "refs/heads/gh-readonly-queue/main/pr-9-abc",
            ),
            &MappingOptions::default(),
        )
        .unwrap();
        let Decision::Jobs(jobs) = c.decision else {
            panic!("{:?}", c.decision)
        };
        assert_eq!(jobs.len(), 1);
        assert_eq!(jobs[0].kind, "merge_group_check");
        assert_eq!(
            jobs[0].dedupe_key,
            format!("merge_group_check:acme/gitops@{ABC}")
        );
        assert_eq!(jobs[0].supersede_key, None);
        let job: MergeGroupCheck = serde_json::from_value(jobs[0].payload.clone()).unwrap();
        assert_eq!(job.head_ref, "gh-readonly-queue/main/pr-9-abc");
        assert_eq!(
            (job.base_ref.as_str(), job.base_sha.as_str()),
            ("main", DEF)
        );
        assert_eq!(job.tip_pull_request(), Some(9));
    }

    #[test]
    fn a_destroyed_group_or_refs_that_are_not_branches_make_no_job() {
        let destroyed = classify(
            "merge_group",
            "d",
            &merge_group("destroyed", "refs/heads/gh-readonly-queue/main/pr-9-abc"),
            &MappingOptions::default(),
        )
        .unwrap();
        assert!(matches!(destroyed.decision, Decision::Ignored(_)));
        let tag = classify(
            "merge_group",
            "d",
            &merge_group("checks_requested", "refs/tags/v1"),
            &MappingOptions::default(),
        )
        .unwrap();
        assert!(
            matches!(tag.decision, Decision::Rejected(ref r) if r.contains("refs/tags/v1")),
            "{:?}",
            tag.decision
        );
    }

    #[test]
    fn the_tip_pull_request_is_read_only_from_the_queues_branch_shape() {
        let tip = |head_ref: &str| {
            MergeGroupCheck {
                repo: "a/b".into(),
                head_sha: "abc".into(),
                head_ref: head_ref.into(),
                base_sha: "def".into(),
                base_ref: "main".into(),
                installation_id: None,
            }
            .tip_pull_request()
        };
        assert_eq!(tip("gh-readonly-queue/release/v2/pr-41-0a1b"), Some(41));
        assert_eq!(tip("gh-readonly-queue/main/pr-0-0a1b"), None);
        assert_eq!(tip("gh-readonly-queue/main/pr-x-0a1b"), None);
        assert_eq!(tip("feature/pr-3-0a1b"), None);
    }

    #[test]
    fn edited_command_is_a_new_job_but_a_redelivery_is_not() {
        let body = |updated: &str| {
            serde_json::to_vec(&json!({
                "action": "edited",
                "issue": {"number": 7, "pull_request": {}},
                "comment": {"id": 5, "body": "/capstan sync web", "user": {"login": "al", "type": "User"},
                            "updated_at": updated},
                "repository": repo(),
                "sender": {"login": "al", "type": "User"},
            }))
            .unwrap()
        };
        let key = |b: &[u8]| match classify("issue_comment", "d", b, &MappingOptions::default())
            .unwrap()
            .decision
        {
            Decision::Jobs(j) => j[0].dedupe_key.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(key(&body("t1")), key(&body("t1")));
        assert_ne!(key(&body("t1")), key(&body("t2")));
    }

    /// A delivery whose repository or commits could not safely reach a path, a URL or an argv
    /// is refused when it arrives, on every forge and every job kind: stored, it would only
    /// fail when it ran (the fuzzer's first finding, on a merge_group and a pull_request).
    #[test]
    fn unsafe_names_are_refused_at_intake_not_stored_as_jobs() {
        let sha = "a".repeat(40);
        let pr = |full_name: &str, head: &str| {
            serde_json::to_vec(&json!({
                "action": "opened",
                "pull_request": {"number": 3, "head": {"ref": "f", "sha": head},
                                 "base": {"ref": "main", "sha": sha}},
                "repository": {"full_name": full_name, "default_branch": "main"},
            }))
            .unwrap()
        };
        let group = |head: &str, base: &str| {
            serde_json::to_vec(&json!({
                "action": "checks_requested",
                "merge_group": {"head_sha": head, "head_ref": "refs/heads/q", "base_sha": base,
                                "base_ref": "refs/heads/main"},
                "repository": repo(),
            }))
            .unwrap()
        };
        let push = |after: &str| {
            serde_json::to_vec(
                &json!({"ref": "refs/heads/main", "before": sha, "after": after,
                                       "repository": repo()}),
            )
            .unwrap()
        };
        let merged = |merge_sha: &str| {
            serde_json::to_vec(&json!({
                "action": "closed",
                "pull_request": {"number": 3, "merged": true, "merge_commit_sha": merge_sha,
                                 "head": {"ref": "f", "sha": sha}, "base": {"ref": "main", "sha": sha}},
                "repository": repo(),
            }))
            .unwrap()
        };
        let gitlab_note = |path: &str| {
            serde_json::to_vec(&json!({
                "object_kind": "note",
                "user": {"id": 1, "username": "al"},
                "project": {"path_with_namespace": path, "default_branch": "main"},
                "object_attributes": {"id": 5, "note": "/capstan diff", "noteable_type": "MergeRequest",
                                      "author_id": 1, "action": "create"},
                "merge_request": {"iid": 7},
            }))
            .unwrap()
        };
        let opts = MappingOptions::default();
        let cases: Vec<(&str, Result<Classified, MalformedPayload>)> = vec![
            (
                "head sha",
                classify("pull_request", "d", &pr("acme/gitops", "h"), &opts),
            ),
            (
                "argv-looking sha",
                classify(
                    "pull_request",
                    "d",
                    &pr("acme/gitops", "--upload-pack=x"),
                    &opts,
                ),
            ),
            (
                "traversing repo",
                classify("pull_request", "d", &pr("../../etc", &sha), &opts),
            ),
            (
                "repo with a query",
                classify("pull_request", "d", &pr("acme/gitops?x=1", &sha), &opts),
            ),
            (
                "group head",
                classify("merge_group", "d", &group("abc", &sha), &opts),
            ),
            (
                "group base",
                classify("merge_group", "d", &group(&sha, "def"), &opts),
            ),
            ("push after", classify("push", "d", &push("b"), &opts)),
            (
                "merge commit",
                classify("pull_request", "d", &merged("m"), &opts),
            ),
            (
                "gitea head",
                classify_gitea("pull_request", "d", &pr("acme/gitops", "h"), &opts),
            ),
            (
                "gitlab repo",
                classify_gitlab("Note Hook", "d", &gitlab_note("a/../b"), &opts),
            ),
        ];
        for (what, c) in cases {
            let c = c.unwrap();
            assert!(
                matches!(c.decision, Decision::Rejected(_)),
                "{what}: {:?}",
                c.decision
            );
        }
        // The same shapes with safe names still make their jobs.
        assert_eq!(
            kinds(&classify("pull_request", "d", &pr("acme/gitops", &sha), &opts).unwrap()),
            ["pr_check"]
        );
        assert_eq!(
            kinds(&classify("merge_group", "d", &group(&sha, &sha), &opts).unwrap()),
            ["merge_group_check"]
        );
        assert_eq!(
            kinds(&classify_gitlab("Note Hook", "d", &gitlab_note("acme/gitops"), &opts).unwrap()),
            ["command"]
        );
    }
}
