//! GitLab (gitlab.com or self-managed, a path prefix allowed) over its REST API v4
//! (`<base>/api/v4`, a project access token in `PRIVATE-TOKEN`): every role of [`super::Forge`].
//! Differences from GitHub that the roles absorb:
//!
//! - a pull request is a merge request, numbered by its `iid`; its base commit is
//!   `diff_refs.base_sha`, which GitLab fills in only once the diff is computed (until then the
//!   call fails as transient and the job is retried);
//! - a project is addressed by its URL-encoded path (`acme%2Fgitops`). Capstan's repository
//!   names are `owner/name`, so a project in a nested group (`a/b/c`) is refused here and at
//!   intake rather than half-supported;
//! - the sticky report is a merge request note, addressed through its merge request; notes hold
//!   up to 1,000,000 characters ([`GITLAB_NOTE_LIMIT`]), which is what the report's parts are
//!   sized to; GitLab's own system notes ("added 1 commit") are not comments and are skipped;
//! - there are no check runs: the check is an external commit status
//!   (`POST /projects/:id/statuses/:sha`, states pending, running, success, failed, canceled);
//! - reactions are award emoji on the note (`eyes`, `thumbsup`, …), the same one twice a 404;
//! - permission is the member's access level, mapped by [`permission_of_level`];
//! - listings page by the `x-next-page` header, up to a bound.
//!
//! Requests never follow redirects (the token would go with them) and name the project in
//! every error; the token appears in no error or `Debug` output.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use super::rest::{NO_REPO, Rest, no_check_runs};
use super::{
    Access, ChangedFile, CheckRun, Checks, Comments, CommitState, CommitStatus, ForgeError,
    Identity, Inventory, IssueComment, NewPullRequest, OpenPullRequest, Permission, Permissions,
    PullRequest, PullRequestState, PullSummary, PullUpdate, Pulls, Reaction,
};
use crate::git::RepoName;

/// GitLab's maximum note body ("Note is too long (maximum is 1000000 characters)").
pub const GITLAB_NOTE_LIMIT: usize = 1_000_000;

/// GitLab keeps at most this much of a commit status's description.
const STATUS_DESCRIPTION_MAX: usize = 255;

/// Where the instance is and how Capstan signs in.
#[derive(Clone)]
pub struct GitLabConfig {
    /// The instance's web address (`https://gitlab.example.com`, a path prefix allowed).
    pub base_url: Url,
    /// A project (or group) access token.
    pub token: String,
    pub timeout: Duration,
    /// Items per page when listing (GitLab allows at most 100).
    pub page_size: usize,
    /// Stop listing after this many pages (a runaway guard).
    pub max_pages: usize,
}

impl GitLabConfig {
    pub fn new(base_url: Url, token: String) -> GitLabConfig {
        GitLabConfig {
            base_url,
            token,
            timeout: Duration::from_secs(30),
            page_size: 100,
            max_pages: 200,
        }
    }
}

impl std::fmt::Debug for GitLabConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitLabConfig")
            .field("base_url", &self.base_url.as_str())
            .field("token", &"***")
            .finish()
    }
}

/// The client: the shared HTTP plumbing with GitLab's token header, and the token for git.
pub struct GitLabForge {
    rest: Rest,
    token: String,
    page_size: usize,
    max_pages: usize,
}

// The parts of GitLab's API objects Capstan reads (its documented field names), defined once.

#[derive(Debug, Deserialize)]
struct User {
    #[serde(default)]
    id: u64,
    username: String,
    /// Set on bot users (project and group access tokens are bots).
    #[serde(default)]
    bot: bool,
}

#[derive(Debug, Deserialize)]
struct Project {
    path_with_namespace: String,
}

#[derive(Debug, Deserialize)]
struct DiffRefs {
    base_sha: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MergeRequest {
    iid: u64,
    /// `opened`, `closed`, `locked` or `merged`.
    state: String,
    #[serde(default)]
    draft: bool,
    /// The older name of `draft`, still sent.
    #[serde(default)]
    work_in_progress: bool,
    #[serde(default)]
    title: String,
    #[serde(default)]
    description: Option<String>,
    author: Option<User>,
    /// The head commit; `None` briefly after creation.
    sha: Option<String>,
    source_branch: String,
    target_branch: String,
    #[serde(default)]
    source_project_id: u64,
    #[serde(default)]
    target_project_id: u64,
    merge_commit_sha: Option<String>,
    squash_commit_sha: Option<String>,
    diff_refs: Option<DiffRefs>,
    #[serde(default)]
    web_url: String,
}

#[derive(Debug, Deserialize)]
struct Diff {
    old_path: String,
    new_path: String,
    #[serde(default)]
    new_file: bool,
    #[serde(default)]
    renamed_file: bool,
    #[serde(default)]
    deleted_file: bool,
    /// The unified diff; empty when GitLab collapsed a large one.
    #[serde(default)]
    diff: String,
}

#[derive(Debug, Deserialize)]
struct Note {
    id: u64,
    #[serde(default)]
    body: String,
    author: User,
    /// GitLab's own notes about the merge request ("added 1 commit").
    #[serde(default)]
    system: bool,
}

#[derive(Debug, Deserialize)]
struct Member {
    access_level: u32,
    /// `active`, or `awaiting`/`blocked` for members who cannot act yet.
    #[serde(default)]
    state: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Award {
    name: String,
}

#[derive(Serialize)]
struct NoteBody<'a> {
    body: &'a str,
}

#[derive(Serialize)]
struct AwardBody<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct StatusBody<'a> {
    state: &'a str,
    name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_url: Option<&'a str>,
}

#[derive(Serialize)]
struct CreateMergeRequest<'a> {
    source_branch: &'a str,
    target_branch: &'a str,
    title: &'a str,
    description: &'a str,
}

#[derive(Serialize, Default)]
struct EditMergeRequest<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state_event: Option<&'a str>,
}

impl GitLabForge {
    pub fn new(cfg: GitLabConfig) -> Result<GitLabForge, ForgeError> {
        let rest = Rest::new(
            &cfg.base_url,
            "api/v4",
            cfg.timeout,
            "private-token",
            cfg.token.clone(),
            "GitLab",
        )?;
        Ok(GitLabForge {
            rest,
            token: cfg.token,
            page_size: cfg.page_size.clamp(1, 100),
            max_pages: cfg.max_pages.max(1),
        })
    }

    /// `projects/<group%2Fproject>/…` for a checked repository name; nested groups are refused.
    fn project_url(&self, repo: &str, rest: &[&str]) -> Result<Url, ForgeError> {
        let name = project_path(repo)?;
        let mut segments = vec!["projects", name.as_str()];
        segments.extend_from_slice(rest);
        Ok(self.rest.url(&segments))
    }

    /// `…/merge_requests/<iid>/…`.
    fn mr_url(&self, repo: &str, iid: u64, rest: &[&str]) -> Result<Url, ForgeError> {
        let iid = iid.to_string();
        let mut segments = vec!["merge_requests", iid.as_str()];
        segments.extend_from_slice(rest);
        self.project_url(repo, &segments)
    }

    /// Every item of a listing: the page GitLab names in `x-next-page` follows, until it is
    /// empty. Without the header (GitLab omits it for very large listings) a short page ends.
    async fn get_all<T: DeserializeOwned>(
        &self,
        repo: &str,
        url: Url,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, ForgeError> {
        let mut out = Vec::new();
        let mut page = 1u64;
        for _ in 0..self.max_pages {
            let mut u = url.clone();
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in query {
                    q.append_pair(k, v);
                }
                q.append_pair("page", &page.to_string());
                q.append_pair("per_page", &self.page_size.to_string());
            }
            let answer = self.rest.send::<()>(repo, Method::GET, u, None).await?;
            let items: Vec<T> = self.rest.decode(repo, &answer.bytes)?;
            let n = items.len();
            out.extend(items);
            let next = answer
                .headers
                .get("x-next-page")
                .map(|v| v.to_str().unwrap_or("").trim().to_string());
            match next {
                Some(next) if next.is_empty() => return Ok(out),
                Some(next) => match next.parse::<u64>() {
                    // Only forward: a page number that does not advance would loop.
                    Ok(p) if p > page => page = p,
                    _ => {
                        return Err(ForgeError::Other {
                            repo: repo.into(),
                            message: format!("GitLab named an unusable next page {next:?}"),
                        });
                    }
                },
                None if n < self.page_size => return Ok(out),
                None => page += 1,
            }
        }
        Err(ForgeError::Other {
            repo: repo.into(),
            message: format!("more than {} pages listed; stopped", self.max_pages),
        })
    }

    /// The user named `username`, or `None` when there is none.
    async fn user_by_name(&self, repo: &str, username: &str) -> Result<Option<User>, ForgeError> {
        let mut url = self.rest.url(&["users"]);
        url.query_pairs_mut().append_pair("username", username);
        let users: Vec<User> = self.rest.get(repo, url).await?;
        // The lookup is case-insensitive on GitLab; the name asked for is the one meant.
        Ok(users
            .into_iter()
            .find(|u| u.username.eq_ignore_ascii_case(username)))
    }
}

/// `repo` as a GitLab project path: a checked `group/project`. A nested group (`a/b/c`) fails
/// the check with a message saying so.
fn project_path(repo: &str) -> Result<String, ForgeError> {
    if repo.matches('/').count() > 1 {
        return Err(ForgeError::Validation {
            repo: repo.into(),
            message: NESTED_GROUPS.into(),
        });
    }
    let name = RepoName::parse(repo).map_err(|e| ForgeError::Validation {
        repo: repo.into(),
        message: e.to_string(),
    })?;
    Ok(name.as_str().to_string())
}

/// Why a project in a subgroup is refused (shared with intake's refusal).
pub const NESTED_GROUPS: &str = "GitLab projects in nested groups (group/subgroup/project) are \
     not supported: Capstan names repositories owner/name; move the project to a top-level group";

/// GitLab's access levels on Capstan's permission scale. Levels are ordered numerically and
/// GitLab has added levels between the documented ones (Planner, 15), so a level counts as the
/// highest role it reaches:
///
/// | GitLab                  | level | Capstan   | why                                         |
/// |-------------------------|-------|-----------|---------------------------------------------|
/// | no access, minimal      | 0, 5  | none      | cannot see the code                         |
/// | Guest, Planner          | 10,15 | read      | can see and comment                         |
/// | Reporter                | 20    | triage    | manages issues and labels, cannot push      |
/// | Developer               | 30    | write     | pushes to unprotected branches              |
/// | Maintainer              | 40    | maintain  | manages protected branches and settings     |
/// | Owner                   | 50    | admin     | owns the project                            |
pub fn permission_of_level(level: u32) -> Permission {
    match level {
        50.. => Permission::Admin,
        40..=49 => Permission::Maintain,
        30..=39 => Permission::Write,
        20..=29 => Permission::Triage,
        10..=19 => Permission::Read,
        _ => Permission::None,
    }
}

/// A commit status state GitLab accepts for Capstan's. An error (the check could not finish, or
/// a newer push superseded it) is `canceled`: not a verdict, and not a pass either.
fn status_state(state: CommitState) -> &'static str {
    match state {
        CommitState::Pending => "pending",
        CommitState::Success => "success",
        CommitState::Failure => "failed",
        CommitState::Error => "canceled",
    }
}

/// GitLab's award emoji names for GitHub's reactions.
fn award_name(r: Reaction) -> &'static str {
    match r {
        Reaction::PlusOne => "thumbsup",
        Reaction::MinusOne => "thumbsdown",
        Reaction::Laugh => "laughing",
        Reaction::Confused => "confused",
        Reaction::Heart => "heart",
        Reaction::Hooray => "tada",
        Reaction::Rocket => "rocket",
        Reaction::Eyes => "eyes",
    }
}

fn state(s: &str) -> PullRequestState {
    if s == "opened" {
        PullRequestState::Open
    } else {
        PullRequestState::Closed
    }
}

fn summary(m: MergeRequest) -> PullSummary {
    let merged = m.state == "merged";
    let head_sha = m.sha.unwrap_or_default();
    // A fast-forward merge has neither a merge nor a squash commit: the head itself landed.
    let merge_commit_sha = m
        .merge_commit_sha
        .or(m.squash_commit_sha)
        .filter(|s| !s.is_empty())
        .or_else(|| (merged && !head_sha.is_empty()).then(|| head_sha.clone()));
    PullSummary {
        number: m.iid,
        state: state(&m.state),
        merged,
        title: m.title,
        body: m.description.unwrap_or_default(),
        head_ref: m.source_branch,
        head_sha,
        base_ref: m.target_branch,
        merge_commit_sha,
        html_url: m.web_url,
    }
}

fn comment(n: Note) -> IssueComment {
    IssueComment {
        id: n.id,
        body: n.body,
        author_is_bot: n.author.bot,
        author: n.author.username,
    }
}

/// Lines added and removed in a unified diff (its `---`/`+++` header lines are not changes).
fn count_lines(diff: &str) -> (u64, u64) {
    let mut add = 0;
    let mut del = 0;
    for line in diff.lines() {
        if line.starts_with('+') && !line.starts_with("+++") {
            add += 1;
        } else if line.starts_with('-') && !line.starts_with("---") {
            del += 1;
        }
    }
    (add, del)
}

fn changed_file(d: Diff) -> ChangedFile {
    let (additions, deletions) = count_lines(&d.diff);
    let (status, filename, previous) = if d.new_file {
        ("added", d.new_path, None)
    } else if d.deleted_file {
        ("removed", d.old_path, None)
    } else if d.renamed_file {
        ("renamed", d.new_path, Some(d.old_path))
    } else {
        ("modified", d.new_path, None)
    };
    ChangedFile {
        filename,
        status: status.into(),
        previous_filename: previous,
        additions,
        deletions,
    }
}

#[async_trait]
impl Inventory for GitLabForge {
    async fn repositories(&self) -> Result<Vec<String>, ForgeError> {
        let projects: Vec<Project> = self
            .get_all(
                NO_REPO,
                self.rest.url(&["projects"]),
                &[("membership", "true"), ("simple", "true")],
            )
            .await?;
        // Projects in nested groups cannot be named as owner/name: they are left out here as
        // their webhooks are refused at intake.
        Ok(projects
            .into_iter()
            .map(|p| p.path_with_namespace)
            .filter(|p| project_path(p).is_ok())
            .collect())
    }

    async fn open_pull_requests(&self, repo: &str) -> Result<Vec<OpenPullRequest>, ForgeError> {
        let url = self.project_url(repo, &["merge_requests"])?;
        let mrs: Vec<MergeRequest> = self.get_all(repo, url, &[("state", "opened")]).await?;
        Ok(mrs
            .into_iter()
            .map(|m| OpenPullRequest {
                repo: repo.to_string(),
                number: m.iid,
                head_sha: m.sha.unwrap_or_default(),
                head_ref: m.source_branch,
                base_ref: m.target_branch,
            })
            .collect())
    }
}

#[async_trait]
impl Pulls for GitLabForge {
    async fn pull_request(&self, repo: &str, number: u64) -> Result<PullRequest, ForgeError> {
        let m: MergeRequest = self.rest.get(repo, self.mr_url(repo, number, &[])?).await?;
        let base_sha = m.diff_refs.as_ref().and_then(|d| d.base_sha.clone());
        let (Some(head_sha), Some(base_sha)) = (m.sha.clone(), base_sha) else {
            // GitLab computes the diff after creating the merge request; asked again shortly
            // it has both.
            return Err(ForgeError::Other {
                repo: repo.into(),
                message: format!("merge request !{number} has no diff yet"),
            });
        };
        Ok(PullRequest {
            repo: repo.to_string(),
            number: m.iid,
            state: state(&m.state),
            draft: m.draft || m.work_in_progress,
            merged: m.state == "merged",
            title: m.title,
            author: m.author.map(|u| u.username).unwrap_or_default(),
            head_sha,
            head_ref: m.source_branch,
            base_sha,
            base_ref: m.target_branch,
        })
    }

    async fn pull_summary(&self, repo: &str, number: u64) -> Result<PullSummary, ForgeError> {
        Ok(summary(
            self.rest.get(repo, self.mr_url(repo, number, &[])?).await?,
        ))
    }

    /// `GET …/merge_requests/:iid/diffs` (GitLab 15.7 and later), paged.
    async fn changed_files(&self, repo: &str, number: u64) -> Result<Vec<ChangedFile>, ForgeError> {
        let url = self.mr_url(repo, number, &["diffs"])?;
        let diffs: Vec<Diff> = self.get_all(repo, url, &[]).await?;
        Ok(diffs.into_iter().map(changed_file).collect())
    }

    /// GitLab answers 409 ("Another open merge request already exists for this source
    /// branch") when one is open: a [`ForgeError::Validation`], as GitHub's 422.
    async fn create_pull_request(
        &self,
        repo: &str,
        pr: &NewPullRequest,
    ) -> Result<PullSummary, ForgeError> {
        let url = self.project_url(repo, &["merge_requests"])?;
        let body = CreateMergeRequest {
            source_branch: &pr.head,
            target_branch: &pr.base,
            title: &pr.title,
            description: &pr.body,
        };
        Ok(summary(
            self.rest.json(repo, Method::POST, url, Some(&body)).await?,
        ))
    }

    async fn pull_requests_by_head(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Vec<PullSummary>, ForgeError> {
        let url = self.project_url(repo, &["merge_requests"])?;
        let mrs: Vec<MergeRequest> = self
            .get_all(repo, url, &[("state", "opened"), ("source_branch", branch)])
            .await?;
        // A fork's branch of the same name is someone else's: only this project's own.
        Ok(mrs
            .into_iter()
            .filter(|m| m.source_branch == branch && m.source_project_id == m.target_project_id)
            .map(summary)
            .collect())
    }

    async fn update_pull_request(
        &self,
        repo: &str,
        number: u64,
        update: &PullUpdate,
    ) -> Result<PullSummary, ForgeError> {
        let body = EditMergeRequest {
            title: update.title.as_deref(),
            description: update.body.as_deref(),
            state_event: update.close.then_some("close"),
        };
        let url = self.mr_url(repo, number, &[])?;
        Ok(summary(
            self.rest.json(repo, Method::PUT, url, Some(&body)).await?,
        ))
    }

    async fn commit_pull_requests(
        &self,
        repo: &str,
        sha: &str,
    ) -> Result<Vec<PullSummary>, ForgeError> {
        let url = self.project_url(repo, &["repository", "commits", sha, "merge_requests"])?;
        let mrs: Vec<MergeRequest> = self.get_all(repo, url, &[]).await?;
        Ok(mrs.into_iter().map(summary).collect())
    }
}

#[async_trait]
impl Comments for GitLabForge {
    async fn comments(&self, repo: &str, number: u64) -> Result<Vec<IssueComment>, ForgeError> {
        let url = self.mr_url(repo, number, &["notes"])?;
        let notes: Vec<Note> = self
            .get_all(repo, url, &[("sort", "asc"), ("order_by", "created_at")])
            .await?;
        let mut out: Vec<IssueComment> = notes
            .into_iter()
            .filter(|n| !n.system)
            .map(comment)
            .collect();
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    async fn create_comment(
        &self,
        repo: &str,
        number: u64,
        body: &str,
    ) -> Result<IssueComment, ForgeError> {
        let url = self.mr_url(repo, number, &["notes"])?;
        let n: Note = self
            .rest
            .json(repo, Method::POST, url, Some(&NoteBody { body }))
            .await?;
        Ok(comment(n))
    }

    async fn update_comment(
        &self,
        repo: &str,
        number: u64,
        comment_id: u64,
        body: &str,
    ) -> Result<IssueComment, ForgeError> {
        let url = self.mr_url(repo, number, &["notes", &comment_id.to_string()])?;
        let n: Note = self
            .rest
            .json(repo, Method::PUT, url, Some(&NoteBody { body }))
            .await?;
        Ok(comment(n))
    }

    async fn delete_comment(
        &self,
        repo: &str,
        number: u64,
        comment_id: u64,
    ) -> Result<(), ForgeError> {
        let url = self.mr_url(repo, number, &["notes", &comment_id.to_string()])?;
        self.rest
            .send::<()>(repo, Method::DELETE, url, None)
            .await
            .map(drop)
    }

    async fn add_reaction(
        &self,
        repo: &str,
        number: u64,
        comment_id: u64,
        reaction: Reaction,
    ) -> Result<(), ForgeError> {
        let id = comment_id.to_string();
        let url = self.mr_url(repo, number, &["notes", &id, "award_emoji"])?;
        let body = AwardBody {
            name: award_name(reaction),
        };
        match self
            .rest
            .send(repo, Method::POST, url.clone(), Some(&body))
            .await
            .map(drop)
        {
            // GitLab answers the same emoji a second time with 404 ("Award Emoji Name has
            // already been taken"), as it does a missing note: the note's awards tell which.
            Err(ForgeError::NotFound { .. }) => {
                let awards: Vec<Award> = self.get_all(repo, url, &[]).await?;
                if awards.iter().any(|a| a.name == body.name) {
                    Ok(())
                } else {
                    Err(ForgeError::NotFound { repo: repo.into() })
                }
            }
            other => other,
        }
    }

    fn comment_limit(&self) -> usize {
        GITLAB_NOTE_LIMIT
    }
}

#[async_trait]
impl Checks for GitLabForge {
    async fn create_check_run(&self, repo: &str, _run: &CheckRun) -> Result<u64, ForgeError> {
        Err(no_check_runs(repo, "GitLab"))
    }

    /// GitLab has no check runs, so there is none to find: a commit status is keyed by its
    /// name and ref, and a later one for the same name moves it to its new state.
    async fn find_check_run(
        &self,
        _repo: &str,
        _head_sha: &str,
        _name: &str,
    ) -> Result<Option<u64>, ForgeError> {
        Ok(None)
    }

    async fn update_check_run(
        &self,
        repo: &str,
        _id: u64,
        _run: &CheckRun,
    ) -> Result<(), ForgeError> {
        Err(no_check_runs(repo, "GitLab"))
    }

    async fn create_commit_status(
        &self,
        repo: &str,
        sha: &str,
        status: &CommitStatus,
    ) -> Result<(), ForgeError> {
        let url = self.project_url(repo, &["statuses", sha])?;
        let description: Option<String> = status
            .description
            .as_deref()
            .map(|d| d.chars().take(STATUS_DESCRIPTION_MAX).collect());
        let body = StatusBody {
            state: status_state(status.state),
            name: &status.context,
            description: description.as_deref(),
            target_url: status.target_url.as_deref(),
        };
        match self
            .rest
            .send(repo, Method::POST, url, Some(&body))
            .await
            .map(drop)
        {
            // Setting the state a status already has is refused ("Cannot transition status via
            // :enqueue from :pending"): the status is as asked.
            Err(ForgeError::Validation { message, .. })
                if message.contains("Cannot transition status") =>
            {
                Ok(())
            }
            other => other,
        }
    }
}

#[async_trait]
impl Permissions for GitLabForge {
    /// The member's access level, inherited ones included (`members/all`); a user who is not a
    /// member, is unknown or is not active has none.
    async fn collaborator_permission(
        &self,
        repo: &str,
        user: &str,
    ) -> Result<Permission, ForgeError> {
        // Checked first: the user lookup is instance-wide and should not be asked about a
        // project this client would refuse.
        project_path(repo)?;
        let Some(u) = self.user_by_name(repo, user).await? else {
            return Ok(Permission::None);
        };
        let url = self.project_url(repo, &["members", "all", &u.id.to_string()])?;
        match self.rest.get::<Member>(repo, url).await {
            Ok(m) if m.state.as_deref().is_none_or(|s| s == "active") => {
                Ok(permission_of_level(m.access_level))
            }
            Ok(_) => Ok(Permission::None),
            // 404 for a user who is no member; the project itself was just found above.
            Err(ForgeError::NotFound { .. }) => Ok(Permission::None),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Access for GitLabForge {
    async fn identity(&self) -> Result<Identity, ForgeError> {
        let me: User = self.rest.get(NO_REPO, self.rest.url(&["user"])).await?;
        Ok(Identity {
            login: me.username,
            app_slug: None,
            can_create_check_runs: false,
        })
    }

    /// The access token itself: GitLab takes it as the password of git over https with any
    /// non-empty user name.
    async fn git_token(&self, _repo: &str) -> Result<Option<String>, ForgeError> {
        Ok(Some(self.token.clone()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn forge(base: &str) -> GitLabForge {
        GitLabForge::new(GitLabConfig::new(base.parse().unwrap(), "t".into())).unwrap()
    }

    #[test]
    fn project_paths_are_one_escaped_segment_under_the_path_prefix() {
        let f = forge("https://example.com/gitlab/");
        assert_eq!(
            f.project_url("acme/gitops", &[]).unwrap().as_str(),
            "https://example.com/gitlab/api/v4/projects/acme%2Fgitops"
        );
        // A branch, sha or user id never becomes path syntax either.
        assert_eq!(
            f.project_url("acme/gitops", &["statuses", "a/../b?c#d"])
                .unwrap()
                .as_str(),
            "https://example.com/gitlab/api/v4/projects/acme%2Fgitops/statuses/a%2F..%2Fb%3Fc%23d"
        );
        assert_eq!(
            f.mr_url("acme/gitops", 7, &["notes", "9", "award_emoji"])
                .unwrap()
                .as_str(),
            "https://example.com/gitlab/api/v4/projects/acme%2Fgitops/merge_requests/7/notes/9/award_emoji"
        );
        let without_prefix = forge("https://gitlab.example");
        assert_eq!(
            without_prefix.rest.url(&["user"]).as_str(),
            "https://gitlab.example/api/v4/user"
        );
    }

    #[test]
    fn nested_groups_and_bad_names_are_refused_with_a_reason() {
        let f = forge("https://gitlab.example");
        match f.project_url("a/b/c", &[]) {
            Err(ForgeError::Validation { message, .. }) => {
                assert!(message.contains("nested groups"), "{message}")
            }
            other => panic!("{other:?}"),
        }
        for bad in ["../x", "acme", "acme/", "acme/git ops", "acme/%2e%2e"] {
            assert!(f.project_url(bad, &[]).is_err(), "{bad}");
        }
    }

    #[test]
    fn access_levels_map_to_the_permission_scale() {
        let cases = [
            (0, Permission::None),
            (5, Permission::None),
            (10, Permission::Read),
            (15, Permission::Read),
            (20, Permission::Triage),
            (30, Permission::Write),
            (40, Permission::Maintain),
            (50, Permission::Admin),
            (60, Permission::Admin),
        ];
        for (level, want) in cases {
            assert_eq!(permission_of_level(level), want, "level {level}");
        }
    }

    #[test]
    fn states_reactions_and_diffs_take_gitlabs_names() {
        assert_eq!(status_state(CommitState::Failure), "failed");
        assert_eq!(status_state(CommitState::Error), "canceled");
        assert_eq!(award_name(Reaction::PlusOne), "thumbsup");
        assert_eq!(award_name(Reaction::Hooray), "tada");
        let f = changed_file(Diff {
            old_path: "a.yaml".into(),
            new_path: "b.yaml".into(),
            new_file: false,
            renamed_file: true,
            deleted_file: false,
            diff: "--- a/a.yaml\n+++ b/b.yaml\n@@ -1 +1,2 @@\n-x\n+y\n+z\n".into(),
        });
        assert_eq!(
            (
                f.status.as_str(),
                f.filename.as_str(),
                f.previous_filename.as_deref()
            ),
            ("renamed", "b.yaml", Some("a.yaml"))
        );
        assert_eq!((f.additions, f.deletions), (2, 1));
    }

    #[test]
    fn the_token_is_not_in_debug_output() {
        let cfg = GitLabConfig::new("https://g.example".parse().unwrap(), "glpat-s3cret".into());
        assert!(!format!("{cfg:?}").contains("s3cret"));
    }
}
