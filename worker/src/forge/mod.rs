//! The forge (GitHub) as Capstan needs it, split by role so each consumer names what it uses and
//! a second forge is told by the compiler what it lacks: [`Inventory`] (repositories and open pull
//! requests, for missed-event recovery), [`Pulls`], [`Comments`], [`Checks`] (check runs and
//! commit statuses), [`Permissions`] (collaborator permission) and [`Access`] (Capstan's identity
//! and the git credential). [`Forge`] is all of them, as the service wires it. No role method has
//! a default body. `forge::github` implements every role over GitHub's REST API.

pub mod gitea;
pub mod github;
pub mod gitlab;
mod rest;

use std::time::Duration;

use async_trait::async_trait;

/// Which forge the repositories live on (`--forge`). It decides the webhook route, the API client
/// and the shape of links to pull requests, comments and checks. GitHub is the default.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ForgeKind {
    #[default]
    GitHub,
    /// Gitea and Forgejo (Forgejo keeps Gitea's API and webhooks).
    Gitea,
    GitLab,
}

impl ForgeKind {
    /// `github`, `gitea` (or `forgejo`), `gitlab`.
    pub fn parse(s: &str) -> Option<ForgeKind> {
        Some(match s {
            "github" => ForgeKind::GitHub,
            "gitea" | "forgejo" => ForgeKind::Gitea,
            "gitlab" => ForgeKind::GitLab,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::GitHub => "github",
            ForgeKind::Gitea => "gitea",
            ForgeKind::GitLab => "gitlab",
        }
    }

    /// What people call it, for messages.
    pub fn display_name(self) -> &'static str {
        match self {
            ForgeKind::GitHub => "GitHub",
            ForgeKind::Gitea => "Gitea/Forgejo",
            ForgeKind::GitLab => "GitLab",
        }
    }

    /// The web page of pull (merge) request `number` of `repo`, under the forge's web base `web`
    /// (no trailing slash).
    pub fn pull_url(self, web: &str, repo: &str, number: u64) -> String {
        match self {
            ForgeKind::GitHub => format!("{web}/{repo}/pull/{number}"),
            ForgeKind::Gitea => format!("{web}/{repo}/pulls/{number}"),
            ForgeKind::GitLab => format!("{web}/{repo}/-/merge_requests/{number}"),
        }
    }

    /// One comment (a GitLab note) on that pull request's page.
    pub fn comment_url(self, web: &str, repo: &str, number: u64, comment_id: u64) -> String {
        let pull = self.pull_url(web, repo, number);
        match self {
            ForgeKind::GitHub | ForgeKind::Gitea => format!("{pull}#issuecomment-{comment_id}"),
            ForgeKind::GitLab => format!("{pull}#note_{comment_id}"),
        }
    }

    /// Where the check of `head_sha` is shown: GitHub's check run page when there is one, else
    /// the commit's page, which lists its statuses on every forge.
    pub fn check_url(
        self,
        web: &str,
        repo: &str,
        head_sha: &str,
        check_run_id: Option<u64>,
    ) -> String {
        match (self, check_run_id) {
            (ForgeKind::GitHub, Some(id)) => format!("{web}/{repo}/runs/{id}"),
            (ForgeKind::GitHub | ForgeKind::Gitea, _) => format!("{web}/{repo}/commit/{head_sha}"),
            (ForgeKind::GitLab, _) => format!("{web}/{repo}/-/commit/{head_sha}"),
        }
    }
}

impl std::fmt::Display for ForgeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An open pull request and the head it currently points at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OpenPullRequest {
    pub repo: String,
    pub number: u64,
    pub head_sha: String,
    pub head_ref: String,
    pub base_ref: String,
}

/// Whether a pull request is still open. GitHub reports merged pull requests as `closed` with
/// `merged: true`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullRequestState {
    Open,
    Closed,
}

/// One pull request as the pipeline needs it: exact SHAs to fetch and whether it is worth checking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    pub repo: String,
    pub number: u64,
    pub state: PullRequestState,
    pub draft: bool,
    pub merged: bool,
    pub title: String,
    pub author: String,
    pub head_sha: String,
    pub head_ref: String,
    pub base_sha: String,
    pub base_ref: String,
}

/// A pull request as promotions see it: enough to find, describe and close one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullSummary {
    pub number: u64,
    pub state: PullRequestState,
    pub merged: bool,
    pub title: String,
    pub body: String,
    pub head_ref: String,
    pub head_sha: String,
    pub base_ref: String,
    /// Set once merged (the merge, squash or last rebased commit).
    pub merge_commit_sha: Option<String>,
    pub html_url: String,
}

/// A pull request to open: `head` is a branch of the same repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPullRequest {
    pub title: String,
    pub head: String,
    pub base: String,
    pub body: String,
}

/// Fields of a pull request to change; `None` leaves one as it is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PullUpdate {
    pub title: Option<String>,
    pub body: Option<String>,
    /// `true` closes the pull request (without merging).
    pub close: bool,
}

/// A file a pull request changes (`previous_filename` is set for renames).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChangedFile {
    pub filename: String,
    /// GitHub's status: added, removed, modified, renamed, copied, changed, unchanged.
    pub status: String,
    pub previous_filename: Option<String>,
    pub additions: u64,
    pub deletions: u64,
}

/// A comment on a pull request's conversation (GitHub's "issue comment").
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IssueComment {
    pub id: u64,
    pub body: String,
    pub author: String,
    /// The author is a bot account (`type: "Bot"`), which never gets to run commands.
    pub author_is_bot: bool,
}

/// Reactions GitHub accepts on a comment (serialized as GitHub's `content` values).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reaction {
    #[serde(rename = "+1")]
    PlusOne,
    #[serde(rename = "-1")]
    MinusOne,
    Laugh,
    Confused,
    Heart,
    Hooray,
    Rocket,
    Eyes,
}

impl Reaction {
    /// The `content` value of GitHub's reactions API.
    pub fn as_str(self) -> &'static str {
        match self {
            Reaction::PlusOne => "+1",
            Reaction::MinusOne => "-1",
            Reaction::Laugh => "laugh",
            Reaction::Confused => "confused",
            Reaction::Heart => "heart",
            Reaction::Hooray => "hooray",
            Reaction::Rocket => "rocket",
            Reaction::Eyes => "eyes",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckStatus {
    Queued,
    InProgress,
    Completed,
}

impl CheckStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckStatus::Queued => "queued",
            CheckStatus::InProgress => "in_progress",
            CheckStatus::Completed => "completed",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckConclusion {
    Success,
    Failure,
    Neutral,
    Cancelled,
    Skipped,
    TimedOut,
    ActionRequired,
}

impl CheckConclusion {
    pub fn as_str(self) -> &'static str {
        match self {
            CheckConclusion::Success => "success",
            CheckConclusion::Failure => "failure",
            CheckConclusion::Neutral => "neutral",
            CheckConclusion::Cancelled => "cancelled",
            CheckConclusion::Skipped => "skipped",
            CheckConclusion::TimedOut => "timed_out",
            CheckConclusion::ActionRequired => "action_required",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AnnotationLevel {
    Notice,
    Warning,
    Failure,
}

impl AnnotationLevel {
    pub fn as_str(self) -> &'static str {
        match self {
            AnnotationLevel::Notice => "notice",
            AnnotationLevel::Warning => "warning",
            AnnotationLevel::Failure => "failure",
        }
    }
}

/// A finding pinned to a file and line of the head commit, with GitHub's field names.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Annotation {
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub annotation_level: AnnotationLevel,
    pub message: String,
    /// Empty: none is sent.
    pub title: String,
}

/// The visible body of a check run. GitHub takes at most 50 annotations per request; the GitHub
/// forge sends any number in batches of 50.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CheckOutput {
    pub title: String,
    /// At most 65,535 characters (GitHub's limit); the caller shortens it.
    pub summary: String,
    pub text: Option<String>,
    pub annotations: Vec<Annotation>,
}

/// A check run to create (`head_sha` set) or update.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckRun {
    pub name: String,
    pub head_sha: String,
    pub status: CheckStatus,
    /// Required when `status` is `Completed`.
    pub conclusion: Option<CheckConclusion>,
    pub details_url: Option<String>,
    pub external_id: Option<String>,
    pub output: Option<CheckOutput>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CommitState {
    Pending,
    Success,
    Failure,
    Error,
}

impl CommitState {
    pub fn as_str(self) -> &'static str {
        match self {
            CommitState::Pending => "pending",
            CommitState::Success => "success",
            CommitState::Failure => "failure",
            CommitState::Error => "error",
        }
    }
}

/// A commit status: the fallback for check runs, which personal tokens cannot create.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitStatus {
    pub state: CommitState,
    pub context: String,
    /// GitHub keeps only the first 140 characters.
    pub description: Option<String>,
    pub target_url: Option<String>,
}

/// A collaborator's permission on a repository, ordered from least to most: GitHub's roles, and
/// the minimums `.capstan.yaml` sets for commands (`None` for no access).
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    serde::Serialize,
    serde::Deserialize,
    schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Permission {
    None,
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

impl Permission {
    /// Parses GitHub's role names (and `.capstan.yaml` minimums). `pull`/`push` are the legacy
    /// names some endpoints still use.
    pub fn parse(s: &str) -> Option<Permission> {
        Some(match s {
            "none" => Permission::None,
            "read" | "pull" => Permission::Read,
            "triage" => Permission::Triage,
            "write" | "push" => Permission::Write,
            "maintain" => Permission::Maintain,
            "admin" => Permission::Admin,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::None => "none",
            Permission::Read => "read",
            Permission::Triage => "triage",
            Permission::Write => "write",
            Permission::Maintain => "maintain",
            Permission::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Permission {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A permission name that is not one of GitHub's roles.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission `{0}`; allowed: none, read, triage, write, maintain, admin")]
pub struct UnknownPermission(pub String);

/// The role names only, as `.capstan.yaml` spells them (the legacy `pull`/`push` are for what
/// GitHub's endpoints return: see [`Permission::parse`]).
impl std::str::FromStr for Permission {
    type Err = UnknownPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pull" | "push" => Err(UnknownPermission(s.to_string())),
            _ => Permission::parse(s).ok_or_else(|| UnknownPermission(s.to_string())),
        }
    }
}

/// Who Capstan is on the forge, so it recognises (and ignores) its own comments.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// The login its comments carry: `<slug>[bot]` for an App, the user's login for a token.
    pub login: String,
    /// The App's slug when authenticated as an App.
    pub app_slug: Option<String>,
    /// Whether check runs are available (GitHub allows them to Apps only).
    pub can_create_check_runs: bool,
}

/// Errors talking to the forge, by what the caller can do about them. Each names the repository
/// (or `(installation)` for calls not about one).
#[derive(Debug, thiserror::Error)]
pub enum ForgeError {
    /// Credentials missing, expired or refused.
    #[error("{repo}: the forge refused the credentials: {message}")]
    Unauthorized { repo: String, message: String },
    /// The repository does not exist or is not visible to the installation.
    #[error("{repo}: not found on the forge")]
    NotFound { repo: String },
    /// The credentials are valid but not allowed to do this (missing App permission, token scope).
    #[error("{repo}: the forge forbids this request: {message}")]
    Forbidden { repo: String, message: String },
    /// A primary or secondary rate limit whose wait exceeds what the client is willing to sleep.
    #[error("{repo}: rate limited by the forge (retry after {retry_after:?}): {message}")]
    RateLimited {
        repo: String,
        retry_after: Option<Duration>,
        message: String,
    },
    /// The forge rejected the request's content (HTTP 422), with its own message.
    #[error("{repo}: the forge rejected the request: {message}")]
    Validation { repo: String, message: String },
    /// The credentials cannot do this kind of request at all (check runs with a personal token:
    /// GitHub allows them to Apps only). Not a missing implementation: the role traits below have
    /// no defaults, so a forge implements every method of each role it claims.
    #[error("{repo}: not supported by this forge: {what}")]
    Unsupported { repo: String, what: String },
    /// Anything else (network, 5xx): worth retrying later.
    #[error("{repo}: forge request failed: {message}")]
    Other { repo: String, message: String },
}

/// What exists to be checked: the repositories the credentials cover and their open pull
/// requests. Missed-event recovery needs only this role.
#[async_trait]
pub trait Inventory: Send + Sync {
    /// Repositories this installation can see (`owner/name`).
    async fn repositories(&self) -> Result<Vec<String>, ForgeError>;

    /// Open pull requests of `repo` with their head SHAs, across all pages.
    async fn open_pull_requests(&self, repo: &str) -> Result<Vec<OpenPullRequest>, ForgeError>;
}

/// Pull requests: read one, list by head or commit, open and edit (promotions).
#[async_trait]
pub trait Pulls: Send + Sync {
    async fn pull_request(&self, repo: &str, number: u64) -> Result<PullRequest, ForgeError>;

    /// One pull request with its body and merge commit (GET `/repos/{o}/{r}/pulls/{n}`).
    async fn pull_summary(&self, repo: &str, number: u64) -> Result<PullSummary, ForgeError>;

    /// Every file the pull request changes, across all pages.
    async fn changed_files(&self, repo: &str, number: u64) -> Result<Vec<ChangedFile>, ForgeError>;

    /// Opens a pull request. GitHub answers 422 ("A pull request already exists for
    /// owner:branch.") when one is open for the branch.
    async fn create_pull_request(
        &self,
        repo: &str,
        pr: &NewPullRequest,
    ) -> Result<PullSummary, ForgeError>;

    /// Open pull requests whose head is `branch` of `repo` itself.
    async fn pull_requests_by_head(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Vec<PullSummary>, ForgeError>;

    async fn update_pull_request(
        &self,
        repo: &str,
        number: u64,
        update: &PullUpdate,
    ) -> Result<PullSummary, ForgeError>;

    /// Pull requests associated with a commit (its merge, squash or rebase result included).
    async fn commit_pull_requests(
        &self,
        repo: &str,
        sha: &str,
    ) -> Result<Vec<PullSummary>, ForgeError>;
}

/// The pull request's conversation: the sticky report, command replies, reactions.
#[async_trait]
pub trait Comments: Send + Sync {
    /// Every comment on the pull request's conversation, oldest first, across all pages.
    async fn comments(&self, repo: &str, number: u64) -> Result<Vec<IssueComment>, ForgeError>;

    async fn create_comment(
        &self,
        repo: &str,
        number: u64,
        body: &str,
    ) -> Result<IssueComment, ForgeError>;

    /// Edits comment `comment_id` on pull request `number` (GitLab addresses a note through its
    /// merge request; GitHub and Gitea need only the id).
    async fn update_comment(
        &self,
        repo: &str,
        number: u64,
        comment_id: u64,
        body: &str,
    ) -> Result<IssueComment, ForgeError>;

    async fn delete_comment(
        &self,
        repo: &str,
        number: u64,
        comment_id: u64,
    ) -> Result<(), ForgeError>;

    async fn add_reaction(
        &self,
        repo: &str,
        number: u64,
        comment_id: u64,
        reaction: Reaction,
    ) -> Result<(), ForgeError>;

    /// The longest comment body this forge takes: the report is split into parts of at most
    /// this size (`report::render_comment_capped`).
    fn comment_limit(&self) -> usize;
}

/// The verdict on a commit: check runs (Apps) or commit statuses (tokens).
#[async_trait]
pub trait Checks: Send + Sync {
    /// Creates a check run and returns its id. [`ForgeError::Unsupported`] when the credentials
    /// cannot create check runs; callers fall back to commit statuses.
    async fn create_check_run(&self, repo: &str, run: &CheckRun) -> Result<u64, ForgeError>;

    /// Updates check run `id` (status, conclusion, output; `head_sha` is ignored).
    async fn update_check_run(&self, repo: &str, id: u64, run: &CheckRun)
    -> Result<(), ForgeError>;

    /// The oldest check run named `name` on commit `head_sha` that these credentials created (an
    /// App sees its own), or `None`; `None` also where the credentials cannot have created one.
    /// An attempt that crashed between creating its check run and recording the id finds it
    /// again here instead of adding a second one.
    async fn find_check_run(
        &self,
        repo: &str,
        head_sha: &str,
        name: &str,
    ) -> Result<Option<u64>, ForgeError>;

    async fn create_commit_status(
        &self,
        repo: &str,
        sha: &str,
        status: &CommitStatus,
    ) -> Result<(), ForgeError>;
}

/// Who may do what: commands and cluster checks are authorized by this.
#[async_trait]
pub trait Permissions: Send + Sync {
    /// `user`'s permission on `repo`. Callers treat an error as "refuse".
    async fn collaborator_permission(
        &self,
        repo: &str,
        user: &str,
    ) -> Result<Permission, ForgeError>;
}

/// Capstan's own standing on the forge: who it is, and what `git` may use to fetch and push.
#[async_trait]
pub trait Access: Send + Sync {
    /// Capstan's own login on the forge.
    async fn identity(&self) -> Result<Identity, ForgeError>;

    /// A token `git fetch`/`git push` over https may use for `repo`, when the forge has one
    /// (an installation token or the personal token). `None`: fetch anonymously.
    async fn git_token(&self, repo: &str) -> Result<Option<String>, ForgeError>;
}

/// Everything Capstan asks of a forge, as the service wires it (`Services::forge`). Consumers
/// take the narrowest role they need (`&dyn Permissions`, `&dyn Inventory`, …); a type gets
/// `Forge` by implementing every role, so the compiler lists what a second forge still lacks.
pub trait Forge: Inventory + Pulls + Comments + Checks + Permissions + Access + 'static {}

impl<T> Forge for T where T: Inventory + Pulls + Comments + Checks + Permissions + Access + 'static {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_take_each_forges_shape() {
        let (web, repo) = ("https://f.example", "acme/gitops");
        let all = [ForgeKind::GitHub, ForgeKind::Gitea, ForgeKind::GitLab];
        let pulls: Vec<_> = all.iter().map(|k| k.pull_url(web, repo, 7)).collect();
        assert_eq!(
            pulls,
            [
                "https://f.example/acme/gitops/pull/7",
                "https://f.example/acme/gitops/pulls/7",
                "https://f.example/acme/gitops/-/merge_requests/7",
            ]
        );
        let comments: Vec<_> = all.iter().map(|k| k.comment_url(web, repo, 7, 9)).collect();
        assert_eq!(
            comments,
            [
                "https://f.example/acme/gitops/pull/7#issuecomment-9",
                "https://f.example/acme/gitops/pulls/7#issuecomment-9",
                "https://f.example/acme/gitops/-/merge_requests/7#note_9",
            ]
        );
        assert_eq!(
            ForgeKind::GitHub.check_url(web, repo, "abc", Some(5)),
            "https://f.example/acme/gitops/runs/5"
        );
        assert_eq!(
            ForgeKind::Gitea.check_url(web, repo, "abc", Some(5)),
            "https://f.example/acme/gitops/commit/abc"
        );
        assert_eq!(
            ForgeKind::GitLab.check_url(web, repo, "abc", None),
            "https://f.example/acme/gitops/-/commit/abc"
        );
    }

    #[test]
    fn forge_names_parse_and_round_trip() {
        for k in [ForgeKind::GitHub, ForgeKind::Gitea, ForgeKind::GitLab] {
            assert_eq!(ForgeKind::parse(k.as_str()), Some(k));
        }
        assert_eq!(ForgeKind::parse("forgejo"), Some(ForgeKind::Gitea));
        assert_eq!(ForgeKind::parse("GitHub"), None);
        assert_eq!(ForgeKind::parse("bitbucket"), None);
    }
}
