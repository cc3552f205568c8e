//! Gitea and Forgejo over their REST API v1 (`<base>/api/v1`, token auth): every role of
//! [`super::Forge`]. Differences from GitHub that the roles absorb:
//!
//! - there are no check runs: `create_check_run` is [`ForgeError::Unsupported`], so the pipeline
//!   reports with a commit status (`POST /repos/{o}/{r}/statuses/{sha}`);
//! - a collaborator's permission is `none`, `read`, `write`, `admin` or `owner` (owner is admin);
//! - pull requests, their files and repositories are listed by page (`page`, `limit`); a pull
//!   request's comments come in one answer; a commit's pull request is one object
//!   (`GET /repos/{o}/{r}/commits/{sha}/pull`), 404 when there is none;
//! - an existing pull request for the same branches is refused with 409.
//!
//! Requests never follow redirects (the token would go with them) and name the repository in
//! every error; the token appears in no error or `Debug` output.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::Method;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use url::Url;

use super::rest::{NO_REPO, Rest, no_check_runs};
use super::{
    Access, ChangedFile, CheckRun, Checks, Comments, CommitStatus, ForgeError, Identity, Inventory,
    IssueComment, NewPullRequest, OpenPullRequest, Permission, Permissions, PullRequest,
    PullRequestState, PullSummary, PullUpdate, Pulls, Reaction,
};
use crate::git::RepoName;

/// Where the instance is and how Capstan signs in.
#[derive(Clone)]
pub struct GiteaConfig {
    /// The instance's web address (`https://git.example.com`, a path prefix allowed).
    pub base_url: Url,
    pub token: String,
    pub timeout: Duration,
    /// Items per page when listing (Gitea's default maximum is 50).
    pub page_size: usize,
    /// Stop listing after this many pages (a runaway guard).
    pub max_pages: usize,
}

impl GiteaConfig {
    pub fn new(base_url: Url, token: String) -> GiteaConfig {
        GiteaConfig {
            base_url,
            token,
            timeout: Duration::from_secs(30),
            page_size: 50,
            max_pages: 200,
        }
    }
}

impl std::fmt::Debug for GiteaConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GiteaConfig")
            .field("base_url", &self.base_url.as_str())
            .field("token", &"***")
            .finish()
    }
}

/// The client: the shared HTTP plumbing with Gitea's token header, and the token for git.
pub struct GiteaForge {
    rest: Rest,
    token: String,
    page_size: usize,
    max_pages: usize,
}

// The parts of Gitea's API objects Capstan reads (swagger names), defined once here.

#[derive(Debug, Deserialize)]
struct User {
    login: String,
}

#[derive(Debug, Deserialize)]
struct Branch {
    #[serde(rename = "ref")]
    name: String,
    sha: String,
    /// The repository the branch is in; `None` when it was deleted.
    repo: Option<Repo>,
}

#[derive(Debug, Deserialize)]
struct Repo {
    full_name: String,
}

#[derive(Debug, Deserialize)]
struct Pull {
    number: u64,
    state: String,
    #[serde(default)]
    draft: bool,
    #[serde(default)]
    merged: bool,
    #[serde(default)]
    title: String,
    #[serde(default)]
    body: Option<String>,
    user: Option<User>,
    head: Branch,
    base: Branch,
    merge_commit_sha: Option<String>,
    #[serde(default)]
    html_url: String,
}

#[derive(Debug, Deserialize)]
struct File {
    filename: String,
    status: String,
    previous_filename: Option<String>,
    #[serde(default)]
    additions: u64,
    #[serde(default)]
    deletions: u64,
}

#[derive(Debug, Deserialize)]
struct Comment {
    id: u64,
    #[serde(default)]
    body: String,
    user: User,
}

#[derive(Debug, Deserialize)]
struct CollaboratorPermission {
    permission: String,
}

#[derive(Serialize)]
struct Body<'a> {
    body: &'a str,
}

#[derive(Serialize)]
struct ReactionBody<'a> {
    content: &'a str,
}

#[derive(Serialize)]
struct StatusBody<'a> {
    state: &'a str,
    context: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    description: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    target_url: Option<&'a str>,
}

#[derive(Serialize)]
struct CreatePull<'a> {
    title: &'a str,
    head: &'a str,
    base: &'a str,
    body: &'a str,
}

#[derive(Serialize, Default)]
struct EditPull<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    title: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
}

impl GiteaForge {
    pub fn new(cfg: GiteaConfig) -> Result<GiteaForge, ForgeError> {
        let rest = Rest::new(
            &cfg.base_url,
            "api/v1",
            cfg.timeout,
            "authorization",
            format!("token {}", cfg.token),
            "Gitea",
        )?;
        Ok(GiteaForge {
            rest,
            token: cfg.token,
            page_size: cfg.page_size.clamp(1, 50),
            max_pages: cfg.max_pages.max(1),
        })
    }

    fn url(&self, segments: &[&str]) -> Url {
        self.rest.url(segments)
    }

    /// `repos/{owner}/{name}/…` for a checked repository name.
    fn repo_url(&self, repo: &str, rest: &[&str]) -> Result<Url, ForgeError> {
        let name = RepoName::parse(repo).map_err(|e| ForgeError::Validation {
            repo: repo.into(),
            message: e.to_string(),
        })?;
        let mut segments = vec!["repos", name.owner(), name.name()];
        segments.extend_from_slice(rest);
        Ok(self.url(&segments))
    }

    /// Every item of a listing, page by page, until a short page.
    async fn get_all<T: DeserializeOwned>(
        &self,
        repo: &str,
        url: Url,
        query: &[(&str, &str)],
    ) -> Result<Vec<T>, ForgeError> {
        let mut out = Vec::new();
        for page in 1..=self.max_pages {
            let mut u = url.clone();
            {
                let mut q = u.query_pairs_mut();
                for (k, v) in query {
                    q.append_pair(k, v);
                }
                q.append_pair("page", &page.to_string());
                q.append_pair("limit", &self.page_size.to_string());
            }
            let items: Vec<T> = self.rest.get(repo, u).await?;
            let n = items.len();
            out.extend(items);
            if n < self.page_size {
                return Ok(out);
            }
        }
        Err(ForgeError::Other {
            repo: repo.into(),
            message: format!("more than {} pages listed; stopped", self.max_pages),
        })
    }
}

fn summary(p: Pull) -> PullSummary {
    PullSummary {
        number: p.number,
        state: state(&p.state),
        merged: p.merged,
        title: p.title,
        body: p.body.unwrap_or_default(),
        head_ref: p.head.name,
        head_sha: p.head.sha,
        base_ref: p.base.name,
        merge_commit_sha: p.merge_commit_sha.filter(|s| !s.is_empty()),
        html_url: p.html_url,
    }
}

fn state(s: &str) -> PullRequestState {
    if s == "open" {
        PullRequestState::Open
    } else {
        PullRequestState::Closed
    }
}

fn comment(c: Comment) -> IssueComment {
    IssueComment {
        id: c.id,
        body: c.body,
        // Gitea marks no account as a bot; Capstan's own login is recognised by the caller.
        author_is_bot: false,
        author: c.user.login,
    }
}

/// Gitea's permission names as Capstan's scale (`owner` is the repository's owner: admin).
fn permission(s: &str) -> Option<Permission> {
    match s {
        "owner" => Some(Permission::Admin),
        other => Permission::parse(other),
    }
}

#[async_trait]
impl Inventory for GiteaForge {
    async fn repositories(&self) -> Result<Vec<String>, ForgeError> {
        let repos: Vec<Repo> = self
            .get_all(NO_REPO, self.url(&["user", "repos"]), &[])
            .await?;
        Ok(repos.into_iter().map(|r| r.full_name).collect())
    }

    async fn open_pull_requests(&self, repo: &str) -> Result<Vec<OpenPullRequest>, ForgeError> {
        let url = self.repo_url(repo, &["pulls"])?;
        let pulls: Vec<Pull> = self.get_all(repo, url, &[("state", "open")]).await?;
        Ok(pulls
            .into_iter()
            .map(|p| OpenPullRequest {
                repo: repo.to_string(),
                number: p.number,
                head_sha: p.head.sha,
                head_ref: p.head.name,
                base_ref: p.base.name,
            })
            .collect())
    }
}

#[async_trait]
impl Pulls for GiteaForge {
    async fn pull_request(&self, repo: &str, number: u64) -> Result<PullRequest, ForgeError> {
        let url = self.repo_url(repo, &["pulls", &number.to_string()])?;
        let p: Pull = self.rest.get(repo, url).await?;
        Ok(PullRequest {
            repo: repo.to_string(),
            number: p.number,
            state: state(&p.state),
            draft: p.draft,
            merged: p.merged,
            title: p.title,
            author: p.user.map(|u| u.login).unwrap_or_default(),
            head_sha: p.head.sha,
            head_ref: p.head.name,
            base_sha: p.base.sha,
            base_ref: p.base.name,
        })
    }

    async fn pull_summary(&self, repo: &str, number: u64) -> Result<PullSummary, ForgeError> {
        let url = self.repo_url(repo, &["pulls", &number.to_string()])?;
        Ok(summary(self.rest.get(repo, url).await?))
    }

    async fn changed_files(&self, repo: &str, number: u64) -> Result<Vec<ChangedFile>, ForgeError> {
        let url = self.repo_url(repo, &["pulls", &number.to_string(), "files"])?;
        let files: Vec<File> = self.get_all(repo, url, &[]).await?;
        Ok(files
            .into_iter()
            .map(|f| ChangedFile {
                filename: f.filename,
                status: f.status,
                previous_filename: f.previous_filename.filter(|p| !p.is_empty()),
                additions: f.additions,
                deletions: f.deletions,
            })
            .collect())
    }

    async fn create_pull_request(
        &self,
        repo: &str,
        pr: &NewPullRequest,
    ) -> Result<PullSummary, ForgeError> {
        let url = self.repo_url(repo, &["pulls"])?;
        let body = CreatePull {
            title: &pr.title,
            head: &pr.head,
            base: &pr.base,
            body: &pr.body,
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
        // Gitea's listing has no head filter: the open ones are read and the head matched here,
        // in this repository only (a fork's branch of the same name is someone else's).
        let url = self.repo_url(repo, &["pulls"])?;
        let pulls: Vec<Pull> = self.get_all(repo, url, &[("state", "open")]).await?;
        Ok(pulls
            .into_iter()
            .filter(|p| {
                p.head.name == branch
                    && p.head
                        .repo
                        .as_ref()
                        .is_some_and(|r| r.full_name.eq_ignore_ascii_case(repo))
            })
            .map(summary)
            .collect())
    }

    async fn update_pull_request(
        &self,
        repo: &str,
        number: u64,
        update: &PullUpdate,
    ) -> Result<PullSummary, ForgeError> {
        let url = self.repo_url(repo, &["pulls", &number.to_string()])?;
        let body = EditPull {
            title: update.title.as_deref(),
            body: update.body.as_deref(),
            state: update.close.then_some("closed"),
        };
        Ok(summary(
            self.rest
                .json(repo, Method::PATCH, url, Some(&body))
                .await?,
        ))
    }

    async fn commit_pull_requests(
        &self,
        repo: &str,
        sha: &str,
    ) -> Result<Vec<PullSummary>, ForgeError> {
        let url = self.repo_url(repo, &["commits", sha, "pull"])?;
        match self.rest.get::<Pull>(repo, url).await {
            Ok(p) => Ok(vec![summary(p)]),
            Err(ForgeError::NotFound { .. }) => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}

#[async_trait]
impl Comments for GiteaForge {
    async fn comments(&self, repo: &str, number: u64) -> Result<Vec<IssueComment>, ForgeError> {
        // This listing takes no `page`/`limit` (only `since`/`before`): one request has them all.
        let url = self.repo_url(repo, &["issues", &number.to_string(), "comments"])?;
        let all: Vec<Comment> = self.rest.get(repo, url).await?;
        let mut out: Vec<IssueComment> = all.into_iter().map(comment).collect();
        out.sort_by_key(|c| c.id);
        Ok(out)
    }

    async fn create_comment(
        &self,
        repo: &str,
        number: u64,
        body: &str,
    ) -> Result<IssueComment, ForgeError> {
        let url = self.repo_url(repo, &["issues", &number.to_string(), "comments"])?;
        let c: Comment = self
            .rest
            .json(repo, Method::POST, url, Some(&Body { body }))
            .await?;
        Ok(comment(c))
    }

    async fn update_comment(
        &self,
        repo: &str,
        _number: u64,
        comment_id: u64,
        body: &str,
    ) -> Result<IssueComment, ForgeError> {
        let url = self.repo_url(repo, &["issues", "comments", &comment_id.to_string()])?;
        let c: Comment = self
            .rest
            .json(repo, Method::PATCH, url, Some(&Body { body }))
            .await?;
        Ok(comment(c))
    }

    async fn delete_comment(
        &self,
        repo: &str,
        _number: u64,
        comment_id: u64,
    ) -> Result<(), ForgeError> {
        let url = self.repo_url(repo, &["issues", "comments", &comment_id.to_string()])?;
        self.rest
            .send::<()>(repo, Method::DELETE, url, None)
            .await?;
        Ok(())
    }

    async fn add_reaction(
        &self,
        repo: &str,
        _number: u64,
        comment_id: u64,
        reaction: Reaction,
    ) -> Result<(), ForgeError> {
        let url = self.repo_url(
            repo,
            &["issues", "comments", &comment_id.to_string(), "reactions"],
        )?;
        let body = ReactionBody {
            content: reaction.as_str(),
        };
        self.rest.send(repo, Method::POST, url, Some(&body)).await?;
        Ok(())
    }

    /// Gitea documents no limit of its own; GitHub's keeps each part well within what its
    /// database columns hold.
    fn comment_limit(&self) -> usize {
        crate::report::COMMENT_LIMIT
    }
}

#[async_trait]
impl Checks for GiteaForge {
    async fn create_check_run(&self, repo: &str, _run: &CheckRun) -> Result<u64, ForgeError> {
        Err(no_check_runs(repo, "Gitea"))
    }

    /// Gitea has no check runs, so there is none to find: a commit status is keyed by its context
    /// and a second one simply replaces the first.
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
        Err(no_check_runs(repo, "Gitea"))
    }

    async fn create_commit_status(
        &self,
        repo: &str,
        sha: &str,
        status: &CommitStatus,
    ) -> Result<(), ForgeError> {
        let url = self.repo_url(repo, &["statuses", sha])?;
        let body = StatusBody {
            state: status.state.as_str(),
            context: &status.context,
            description: status.description.as_deref(),
            target_url: status.target_url.as_deref(),
        };
        self.rest.send(repo, Method::POST, url, Some(&body)).await?;
        Ok(())
    }
}

#[async_trait]
impl Permissions for GiteaForge {
    async fn collaborator_permission(
        &self,
        repo: &str,
        user: &str,
    ) -> Result<Permission, ForgeError> {
        let url = self.repo_url(repo, &["collaborators", user, "permission"])?;
        let p: CollaboratorPermission = self.rest.get(repo, url).await?;
        permission(&p.permission).ok_or_else(|| ForgeError::Other {
            repo: repo.into(),
            message: format!("unknown permission {:?} from Gitea", p.permission),
        })
    }
}

#[async_trait]
impl Access for GiteaForge {
    async fn identity(&self) -> Result<Identity, ForgeError> {
        let me: User = self.rest.get(NO_REPO, self.url(&["user"])).await?;
        Ok(Identity {
            login: me.login,
            app_slug: None,
            can_create_check_runs: false,
        })
    }

    async fn git_token(&self, _repo: &str) -> Result<Option<String>, ForgeError> {
        Ok(Some(self.token.clone()))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn owner_is_admin_and_unknown_names_are_not_guessed() {
        assert_eq!(permission("owner"), Some(Permission::Admin));
        assert_eq!(permission("write"), Some(Permission::Write));
        assert_eq!(permission("none"), Some(Permission::None));
        assert_eq!(permission("superuser"), None);
    }

    #[test]
    fn urls_escape_names_and_keep_the_path_prefix() {
        let f = GiteaForge::new(GiteaConfig::new(
            "https://example.com/git/".parse().unwrap(),
            "t".into(),
        ))
        .unwrap();
        assert_eq!(
            f.repo_url("acme/gitops", &["collaborators", "a/../b", "permission"])
                .unwrap()
                .as_str(),
            "https://example.com/git/api/v1/repos/acme/gitops/collaborators/a%2F..%2Fb/permission"
        );
        assert!(f.repo_url("../x", &[]).is_err());
        assert!(
            !format!(
                "{:?}",
                GiteaConfig::new(f.rest.api().clone(), "s3cret".into())
            )
            .contains("s3cret")
        );
    }
}
