//! The parts of GitHub's webhook payloads Capstan reads. Unknown fields are ignored; a missing
//! required field fails deserialization, which the intake records as a rejection.

use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Repository {
    pub full_name: String,
    pub default_branch: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct Installation {
    pub id: u64,
}

#[derive(Debug, Deserialize)]
pub struct User {
    pub login: String,
    #[serde(rename = "type")]
    pub kind: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct GitRef {
    pub sha: String,
    #[serde(rename = "ref")]
    pub name: String,
}

#[derive(Debug, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub head: GitRef,
    pub base: GitRef,
    #[serde(default)]
    pub merged: Option<bool>,
    pub merge_commit_sha: Option<String>,
    pub merged_by: Option<User>,
}

#[derive(Debug, Deserialize)]
pub struct PullRequestEvent {
    pub action: String,
    pub pull_request: PullRequest,
    pub repository: Repository,
    pub installation: Option<Installation>,
    /// Who caused the event (for `synchronize`, who pushed).
    pub sender: Option<User>,
}

#[derive(Debug, Deserialize)]
pub struct Pusher {
    pub name: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct PushEvent {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub before: String,
    pub after: String,
    #[serde(default)]
    pub deleted: bool,
    pub repository: Repository,
    pub pusher: Option<Pusher>,
    pub installation: Option<Installation>,
}

#[derive(Debug, Deserialize)]
pub struct Issue {
    pub number: u64,
    /// Present (an object of links) only when the issue is a pull request.
    pub pull_request: Option<serde::de::IgnoredAny>,
}

#[derive(Debug, Deserialize)]
pub struct Comment {
    pub id: u64,
    pub body: Option<String>,
    pub user: User,
    pub author_association: Option<String>,
    pub created_at: Option<String>,
    pub updated_at: Option<String>,
}

#[derive(Debug, Deserialize)]
pub struct IssueCommentEvent {
    pub action: String,
    pub issue: Issue,
    pub comment: Comment,
    pub repository: Repository,
    pub installation: Option<Installation>,
    /// Who caused the event: the commenter for `created`, whoever edited for `edited` (a
    /// maintainer may edit anyone's comment, so this is not always the comment's author).
    pub sender: Option<User>,
}

/// A PR as check runs and suites list it.
#[derive(Debug, Deserialize)]
pub struct CheckPullRequest {
    pub number: u64,
    pub head: GitRef,
    pub base: GitRef,
}

#[derive(Debug, Deserialize)]
pub struct CheckRun {
    pub head_sha: String,
    #[serde(default)]
    pub pull_requests: Vec<CheckPullRequest>,
}

#[derive(Debug, Deserialize)]
pub struct CheckRunEvent {
    pub action: String,
    pub check_run: CheckRun,
    pub repository: Repository,
    pub installation: Option<Installation>,
}

#[derive(Debug, Deserialize)]
pub struct CheckSuite {
    pub head_sha: String,
    #[serde(default)]
    pub pull_requests: Vec<CheckPullRequest>,
}

#[derive(Debug, Deserialize)]
pub struct CheckSuiteEvent {
    pub action: String,
    pub check_suite: CheckSuite,
    pub repository: Repository,
    pub installation: Option<Installation>,
}

/// The merge queue's group: the commit to check (`head_sha` on the queue's branch `head_ref`)
/// and its parent on the base branch. Both refs are full (`refs/heads/…`).
#[derive(Debug, Deserialize)]
pub struct MergeGroup {
    pub head_sha: String,
    pub head_ref: String,
    pub base_sha: String,
    pub base_ref: String,
}

#[derive(Debug, Deserialize)]
pub struct MergeGroupEvent {
    pub action: String,
    pub merge_group: MergeGroup,
    pub repository: Repository,
    pub installation: Option<Installation>,
}

#[derive(Debug, Deserialize)]
pub struct PingEvent {
    pub zen: Option<String>,
    pub hook_id: Option<u64>,
    pub repository: Option<Repository>,
}

/// Any other event: just enough to record it and apply the allowlist.
#[derive(Debug, Deserialize)]
pub struct Envelope {
    pub action: Option<String>,
    pub repository: Option<Repository>,
}

/// GitLab's webhook payloads (`X-Gitlab-Event`): another contract, so its own model. Only what
/// Capstan reads; unknown fields are ignored.
pub mod gitlab {
    use serde::Deserialize;

    #[derive(Debug, Deserialize)]
    pub struct Project {
        /// `group/name` (subgroups add segments: `group/sub/name`).
        pub path_with_namespace: String,
        pub default_branch: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct User {
        pub id: Option<u64>,
        pub username: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct Commit {
        pub id: String,
    }

    #[derive(Debug, Deserialize)]
    pub struct MergeRequestAttrs {
        pub iid: u64,
        /// open, reopen, update, merge, close, approved, …; absent in some old payloads.
        pub action: Option<String>,
        pub source_branch: String,
        pub target_branch: String,
        pub last_commit: Commit,
        /// Set on an `update` that pushed new commits (the previous head).
        pub oldrev: Option<String>,
        pub merge_commit_sha: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct MergeRequestEvent {
        pub user: Option<User>,
        pub project: Project,
        pub object_attributes: MergeRequestAttrs,
    }

    #[derive(Debug, Deserialize)]
    pub struct PushEvent {
        #[serde(rename = "ref")]
        pub git_ref: String,
        pub before: String,
        pub after: String,
        pub user_username: Option<String>,
        pub project: Project,
    }

    #[derive(Debug, Deserialize)]
    pub struct NoteAttrs {
        pub id: u64,
        #[serde(default)]
        pub note: String,
        pub noteable_type: String,
        pub author_id: Option<u64>,
        pub created_at: Option<String>,
        pub updated_at: Option<String>,
        /// `create` or `update`; absent in payloads of older GitLab versions (a creation).
        pub action: Option<String>,
    }

    #[derive(Debug, Deserialize)]
    pub struct NoteMergeRequest {
        pub iid: u64,
    }

    #[derive(Debug, Deserialize)]
    pub struct NoteEvent {
        /// Who wrote (or edited) the note.
        pub user: User,
        pub project: Project,
        pub object_attributes: NoteAttrs,
        pub merge_request: Option<NoteMergeRequest>,
    }

    /// Any other hook: enough to record it and apply the allowlist.
    #[derive(Debug, Deserialize)]
    pub struct Envelope {
        pub object_kind: Option<String>,
        pub project: Option<Project>,
    }
}
