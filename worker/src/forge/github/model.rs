//! GitHub's REST objects as Capstan reads and writes them, one type per schema of GitHub's REST
//! description (`pull-request`, `diff-entry`, `issue-comment`, `simple-user`, `check-run`, …).
//! The client deserializes these and the fake GitHub of `tests/` serializes the very same types,
//! so the two cannot drift; `tests/tests/forge_github.rs` reads GitHub's own example payloads
//! with them.
//!
//! A field GitHub documents as required is required here: a response without it is an error that
//! names the field (octocrab reports the JSON path), never an empty string. `Option` marks what
//! GitHub documents as optional or nullable. Fields Capstan does not use are ignored.
//!
//! Why not octocrab's own models: they are `#[non_exhaustive]`, so a fake outside that crate
//! cannot build them, and they make nearly every field optional, which is the silent `""` this
//! module exists to avoid. Octocrab still carries every request (transport, App JWT, `Page` with
//! its `Link` parsing, the error body): see `transport.rs`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::forge::{AnnotationLevel, CheckConclusion, CheckStatus, CommitState, Reaction};

/// `simple-user`: the account on comments, pull requests and `GET /user`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SimpleUser {
    pub login: String,
    pub id: u64,
    /// `User`, `Bot` or `Organization`.
    #[serde(rename = "type")]
    pub kind: String,
}

impl SimpleUser {
    pub fn is_bot(&self) -> bool {
        self.kind == "Bot"
    }
}

/// A pull request's `state`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PullState {
    Open,
    Closed,
}

/// `head` and `base` of a pull request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRef {
    #[serde(rename = "ref")]
    pub git_ref: String,
    pub sha: String,
}

/// `pull-request` (one pull request) and `pull-request-simple` (the list endpoints).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullRequest {
    pub number: u64,
    pub state: PullState,
    pub title: String,
    /// Nullable: a pull request may have no description.
    #[serde(default)]
    pub body: Option<String>,
    pub user: SimpleUser,
    /// Documented as optional (absent on old Enterprise Server versions): not a draft then.
    #[serde(default)]
    pub draft: bool,
    /// Sent by `GET /pulls/{n}` only; lists carry `merged_at` alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged: Option<bool>,
    #[serde(default)]
    pub merged_at: Option<String>,
    #[serde(default)]
    pub merge_commit_sha: Option<String>,
    pub html_url: String,
    pub head: PullRef,
    pub base: PullRef,
}

impl PullRequest {
    /// Merged, by whichever of the two fields this endpoint sends.
    pub fn is_merged(&self) -> bool {
        self.merged.unwrap_or(false) || self.merged_at.is_some()
    }
}

/// `diff-entry`: one file of `GET /pulls/{n}/files`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DiffEntry {
    /// Nullable for some entries (e.g. submodules).
    #[serde(default)]
    pub sha: Option<String>,
    pub filename: String,
    /// added, removed, modified, renamed, copied, changed, unchanged.
    pub status: String,
    pub additions: u64,
    pub deletions: u64,
    pub changes: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous_filename: Option<String>,
}

/// `issue-comment`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct IssueComment {
    pub id: u64,
    pub html_url: String,
    /// Optional in GitHub's schema: only the text media types leave it out, and Capstan asks for
    /// the default one, so an absent body is an empty comment.
    #[serde(default)]
    pub body: Option<String>,
    /// Nullable (`nullable-simple-user`): the account may be gone.
    pub user: Option<SimpleUser>,
}

/// Body of `POST /issues/{n}/comments` and `PATCH /issues/comments/{id}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommentBody {
    pub body: String,
}

/// Body of `POST /issues/comments/{id}/reactions`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewReaction {
    pub content: Reaction,
}

/// `reaction`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReactionResponse {
    pub id: u64,
    pub content: Reaction,
    pub user: Option<SimpleUser>,
}

/// Body of `POST /pulls`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPull {
    pub title: String,
    pub head: String,
    pub base: String,
    pub body: String,
}

/// Body of `PATCH /pulls/{n}`; absent fields stay as they are.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PullPatch {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<PullState>,
}

/// One annotation of a check-run request.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnnotationBody {
    pub path: String,
    pub start_line: u32,
    pub end_line: u32,
    pub annotation_level: AnnotationLevel,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
}

/// `output` of a check-run request. GitHub appends `annotations` across updates.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRunOutputBody {
    pub title: String,
    pub summary: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub annotations: Vec<AnnotationBody>,
}

/// Body of `POST /check-runs` (`head_sha` required) and `PATCH /check-runs/{id}` (no `head_sha`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRunBody {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head_sha: Option<String>,
    pub status: CheckStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conclusion: Option<CheckConclusion>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<CheckRunOutputBody>,
}

/// `output` of a `check-run` as GitHub returns it: annotations are only counted.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRunOutput {
    pub title: Option<String>,
    pub summary: Option<String>,
    pub text: Option<String>,
    pub annotations_count: u64,
}

/// `check-run`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRun {
    pub id: u64,
    pub name: String,
    pub head_sha: String,
    pub status: CheckStatus,
    pub conclusion: Option<CheckConclusion>,
    pub details_url: Option<String>,
    pub external_id: Option<String>,
    pub output: CheckRunOutput,
}

/// `GET /repos/{owner}/{repo}/commits/{ref}/check-runs`: one page of check runs, wrapped.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CheckRunList {
    pub total_count: u64,
    pub check_runs: Vec<CheckRun>,
}

/// Body of `POST /statuses/{sha}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusBody {
    pub state: CommitState,
    pub context: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_url: Option<String>,
}

/// `status`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    pub id: u64,
    pub state: CommitState,
    pub context: String,
    pub description: Option<String>,
    pub target_url: Option<String>,
}

/// `repository-collaborator-permission`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CollaboratorPermission {
    /// `admin`, `write`, `read` or `none`: maintain and triage fold into write and read.
    pub permission: String,
    /// The role with maintain and triage kept (or a custom role's name). Older Enterprise
    /// Server versions do not send it.
    #[serde(default)]
    pub role_name: Option<String>,
    pub user: Option<SimpleUser>,
}

/// `repository`, the part Capstan reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Repository {
    pub id: u64,
    pub name: String,
    pub full_name: String,
    pub private: bool,
}

/// The account an App is installed on. Enterprise accounts have a `slug` and no `login`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationAccount {
    #[serde(default)]
    pub login: Option<String>,
}

/// `installation`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Installation {
    pub id: u64,
    pub account: Option<InstallationAccount>,
}

/// Body of `POST /app/installations/{id}/access_tokens`: `repositories` scopes the token to
/// those names of the installation's account.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessTokenRequest {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repositories: Option<Vec<String>>,
}

/// `installation-token`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstallationToken {
    pub token: String,
    /// RFC 3339.
    pub expires_at: String,
    #[serde(default)]
    pub permissions: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository_selection: Option<String>,
}

/// `integration`: the App itself (`GET /app`). Capstan needs the slug for its own login.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct App {
    pub id: u64,
    pub slug: String,
    pub name: String,
}

/// One entry of an error body's `errors`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    pub resource: String,
    pub code: String,
    pub field: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// `basic-error` / `validation-error`: what GitHub answers with a 4xx or 5xx. The client reads
/// it through octocrab's `GitHubError`, which has these fields.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub message: String,
    pub documentation_url: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<ErrorDetail>,
    pub status: String,
}
