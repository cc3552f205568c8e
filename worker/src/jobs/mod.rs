//! Job kinds, their payloads, and how webhook events become jobs.
//!
//! Each kind has a serde payload struct and builds its [`NewJob`] (dedupe and supersede keys
//! included) here, so the intake, recovery and the handlers agree on one shape.

pub mod events;
pub mod mapping;
pub mod ping;

use serde::{Deserialize, Serialize};

use crate::git::names::{NameError, RepoName, Sha};
use crate::queue::NewJob;
use crate::runner::JobKind;

/// Checks the repository and commits a job would carry into paths, URLs and argvs, before it
/// is stored. A job holding a name that cannot be used would fail only when it ran, long after
/// its delivery was answered; refused here, the delivery is recorded as rejected with the
/// reason. Job kinds without such names pass.
pub fn check_names(job: &NewJob) -> Result<(), String> {
    fn typed<T: serde::de::DeserializeOwned>(job: &NewJob) -> Result<T, String> {
        serde_json::from_value(job.payload.clone())
            .map_err(|e| format!("{} payload does not read back: {e}", job.kind))
    }
    let checked = match job.kind.as_str() {
        PR_CHECK => {
            let j: PrCheck = typed(job)?;
            names(&j.repo, [Some(&j.head_sha)])
        }
        MERGE_GROUP_CHECK => {
            let j: MergeGroupCheck = typed(job)?;
            names(&j.repo, [Some(&j.head_sha), Some(&j.base_sha)])
        }
        PR_MERGED => {
            let j: PrMerged = typed(job)?;
            names(&j.repo, [Some(&j.head_sha), j.merge_commit_sha.as_ref()])
        }
        DEFAULT_BRANCH_PUSH => {
            let j: DefaultBranchPush = typed(job)?;
            names(&j.repo, [Some(&j.after)])
        }
        COMMAND => {
            let j: Command = typed(job)?;
            names(&j.repo, [])
        }
        _ => Ok(()),
    };
    checked.map_err(|e| format!("{} job refused: {e}", job.kind))
}

fn names<'a>(
    repo: &str,
    shas: impl IntoIterator<Item = Option<&'a String>>,
) -> Result<(), NameError> {
    RepoName::parse(repo)?;
    for sha in shas.into_iter().flatten() {
        Sha::parse(sha)?;
    }
    Ok(())
}

impl JobKind for PrCheck {
    const NAME: &'static str = PR_CHECK;
}

impl JobKind for MergeGroupCheck {
    const NAME: &'static str = MERGE_GROUP_CHECK;
}

impl JobKind for PrMerged {
    const NAME: &'static str = PR_MERGED;
}

impl JobKind for DefaultBranchPush {
    const NAME: &'static str = DEFAULT_BRANCH_PUSH;
}

impl JobKind for Command {
    const NAME: &'static str = COMMAND;
}

impl JobKind for Ping {
    const NAME: &'static str = PING;
}

pub use mapping::{Classified, Decision, MalformedPayload, MappingOptions, classify};

/// Render, diff and check a PR head.
pub const PR_CHECK: &str = "pr_check";
/// Render, diff and check the merge commit GitHub's merge queue built (no comment).
pub const MERGE_GROUP_CHECK: &str = "merge_group_check";
/// A PR was merged: promotion rules.
pub const PR_MERGED: &str = "pr_merged";
/// The default branch moved.
pub const DEFAULT_BRANCH_PUSH: &str = "default_branch_push";
/// A slash-command in a PR comment.
pub const COMMAND: &str = "command";
/// GitHub's ping after a hook is created: bookkeeping only.
pub const PING: &str = "ping";

/// Payload of a `pr_check` job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrCheck {
    pub repo: String,
    pub number: u64,
    pub head_sha: String,
    pub head_ref: Option<String>,
    pub base_ref: Option<String>,
    pub installation_id: Option<u64>,
    /// What asked for it: `pull_request.opened`, `check_run.rerequested`, `recovery`, …
    pub trigger: String,
    /// Who caused it: the pusher of a `synchronize`, the commenter of a command (an authorized
    /// `ok-to-test` approves cluster checks of this head for them).
    #[serde(default)]
    pub sender: Option<String>,
}

impl PrCheck {
    /// All checks of one PR share this key: a newer head supersedes older ones.
    pub fn supersede_key(repo: &str, number: u64) -> String {
        format!("pr:{repo}#{number}")
    }

    pub fn dedupe_key(repo: &str, number: u64, head_sha: &str) -> String {
        format!("{PR_CHECK}:{repo}#{number}@{head_sha}")
    }

    pub fn into_job(self) -> NewJob {
        let dedupe = Self::dedupe_key(&self.repo, self.number, &self.head_sha);
        let supersede = Self::supersede_key(&self.repo, self.number);
        NewJob::new(Self::NAME, dedupe, to_value(&self)).superseding(supersede)
    }
}

/// Payload of a `merge_group_check` job: the commit GitHub's merge queue made of the base
/// branch and the queued pull requests, which must pass the required checks before the queue
/// merges it. Branch names are short (`main`), as the pipeline fetches them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MergeGroupCheck {
    pub repo: String,
    /// The merge commit to check and to report on.
    pub head_sha: String,
    /// The queue's temporary branch (`gh-readonly-queue/main/pr-7-<sha>`).
    pub head_ref: String,
    /// The merge group's parent commit on the base branch.
    pub base_sha: String,
    pub base_ref: String,
    pub installation_id: Option<u64>,
}

impl MergeGroupCheck {
    pub fn into_job(self) -> NewJob {
        let dedupe = format!("{MERGE_GROUP_CHECK}:{}@{}", self.repo, self.head_sha);
        NewJob::new(Self::NAME, dedupe, to_value(&self))
    }

    /// The pull request at the tip of the group, when the queue's branch names it
    /// (`gh-readonly-queue/<base>/pr-<n>-<sha>`): the run is listed under it and its hold holds
    /// the group. `None` for a branch of any other shape.
    pub fn tip_pull_request(&self) -> Option<u64> {
        let rest = self.head_ref.strip_prefix("gh-readonly-queue/")?;
        let last = rest.rsplit('/').next()?;
        let digits = last.strip_prefix("pr-")?.split('-').next()?;
        digits.parse().ok().filter(|n| *n > 0)
    }
}

/// Payload of a `pr_merged` job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PrMerged {
    pub repo: String,
    pub number: u64,
    pub merge_commit_sha: Option<String>,
    pub head_sha: String,
    pub base_ref: String,
    pub merged_by: Option<String>,
    pub installation_id: Option<u64>,
    /// The repository's default branch as the event reported it; only a merge into it promotes.
    /// `None` in jobs queued before this field existed: the handler then refuses to promote.
    #[serde(default)]
    pub default_branch: Option<String>,
}

impl PrMerged {
    pub fn into_job(self) -> NewJob {
        let dedupe = format!("{PR_MERGED}:{}#{}", self.repo, self.number);
        NewJob::new(Self::NAME, dedupe, to_value(&self))
    }
}

/// Payload of a `default_branch_push` job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefaultBranchPush {
    pub repo: String,
    pub git_ref: String,
    pub before: String,
    pub after: String,
    pub pusher: Option<String>,
    pub installation_id: Option<u64>,
}

impl DefaultBranchPush {
    pub fn into_job(self) -> NewJob {
        let dedupe = format!("{DEFAULT_BRANCH_PUSH}:{}@{}", self.repo, self.after);
        NewJob::new(Self::NAME, dedupe, to_value(&self))
    }
}

/// Payload of a `command` job: the raw command lines; parsing and authorization belong to the
/// `commands` module.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    pub repo: String,
    pub number: u64,
    pub comment_id: u64,
    /// The comment's `updated_at`, so an edit is a new command and a redelivery is not.
    pub comment_version: String,
    /// Who the commands run as: the event's sender, which the intake only lets through when it
    /// is the comment's author (an edit by anyone else borrows nobody's permission).
    pub author: String,
    pub author_association: Option<String>,
    pub lines: Vec<String>,
    pub installation_id: Option<u64>,
    /// When this version of the comment was written (GitHub's `updated_at`, else `created_at`),
    /// in Unix milliseconds. A promotion refuses a head Capstan first saw after this moment.
    #[serde(default)]
    pub written_at: Option<i64>,
    /// The repository's default branch from the event; only a PR into it may promote.
    #[serde(default)]
    pub default_branch: Option<String>,
}

impl Command {
    pub fn into_job(self) -> NewJob {
        let dedupe = format!(
            "{COMMAND}:{}#{}/{}@{}",
            self.repo, self.number, self.comment_id, self.comment_version
        );
        // The commands of one PR run one at a time in the order they were queued (delivery
        // order), on whichever replica claims them.
        let order = format!("{COMMAND}:{}#{}", self.repo, self.number);
        NewJob::new(Self::NAME, dedupe, to_value(&self)).ordered(order)
    }
}

/// Payload of a `ping` job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ping {
    pub delivery_id: String,
    pub hook_id: Option<u64>,
    pub zen: Option<String>,
    pub repo: Option<String>,
}

impl Ping {
    pub fn into_job(self) -> NewJob {
        let dedupe = format!("{PING}:{}", self.delivery_id);
        // Bookkeeping never needs many retries.
        NewJob::new(Self::NAME, dedupe, to_value(&self)).max_attempts(3)
    }
}

fn to_value<T: Serialize>(v: &T) -> serde_json::Value {
    // These structs hold only strings and integers: serialization cannot fail.
    serde_json::to_value(v).unwrap_or(serde_json::Value::Null)
}
