//! Posting a run's report to the forge: the `capstan` check run (or a commit status when the
//! credentials cannot create check runs) and the sticky comment, kept to one set of parts per
//! pull request.

use std::collections::BTreeMap;

use tracing::{debug, info};

use crate::forge::{
    CheckConclusion, CheckOutput, CheckRun, CheckStatus, CommitState, CommitStatus, Forge,
    ForgeError, IssueComment,
};
use crate::report::{self, CheckRunOutput, Conclusion, RenderedComment, parse_marker};

/// The check's name on GitHub (check-run name and commit-status context).
pub const CHECK_NAME: &str = "capstan";
/// GitHub keeps only this many characters of a status description.
const STATUS_DESCRIPTION_MAX: usize = 140;

/// Where the check's progress goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CheckHandle {
    /// A check run with this id.
    CheckRun(u64),
    /// Commit statuses (personal-token auth: GitHub lets only Apps create check runs).
    Status,
}

/// One pull-request head on the forge.
pub struct Target<'a> {
    pub forge: &'a dyn Forge,
    pub repo: &'a str,
    pub pr: u64,
    pub head_sha: &'a str,
    /// The run page, linked from the check and the comment.
    pub details_url: &'a str,
}

impl Target<'_> {
    /// Marks the check as started: a check run `in_progress`, or a `pending` status when the
    /// forge refuses check runs to these credentials. `earlier` is the check run an earlier
    /// attempt at this head created: it is restarted rather than joined by another, so a head
    /// has one check run of Capstan's name however often it is checked.
    /// `look_up` (an attempt after the first) also asks the forge for one this head already has
    /// when no id was recorded: an attempt that died between creating its check run and
    /// recording the id left one there.
    pub async fn start_check(
        &self,
        earlier: Option<u64>,
        look_up: bool,
    ) -> Result<CheckHandle, ForgeError> {
        let run = CheckRun {
            name: CHECK_NAME.into(),
            head_sha: self.head_sha.into(),
            status: CheckStatus::InProgress,
            conclusion: None,
            details_url: Some(self.details_url.into()),
            external_id: None,
            output: Some(CheckOutput {
                title: "Rendering and checking the affected apps".into(),
                summary: format!("Capstan is checking `{}`.", short(self.head_sha)),
                ..CheckOutput::default()
            }),
        };
        let earlier = match earlier {
            Some(id) => Some(id),
            None if look_up => self
                .forge
                .find_check_run(self.repo, self.head_sha, CHECK_NAME)
                .await
                .unwrap_or_else(|e| {
                    info!(repo = self.repo, error = %e, "could not look for an earlier check run");
                    None
                }),
            None => None,
        };
        if let Some(id) = earlier {
            match self.forge.update_check_run(self.repo, id, &run).await {
                Ok(()) => return Ok(CheckHandle::CheckRun(id)),
                // Gone, no longer ours, or refused to restart: a new one is what every attempt
                // made before, so the check is never lost for the sake of reuse.
                Err(e) => {
                    info!(repo = self.repo, check_run = id, error = %e, "starting a new check run");
                }
            }
        }
        match self.forge.create_check_run(self.repo, &run).await {
            Ok(id) => Ok(CheckHandle::CheckRun(id)),
            Err(ForgeError::Unsupported { .. } | ForgeError::Forbidden { .. }) => {
                info!(
                    repo = self.repo,
                    "check runs unavailable; using commit statuses"
                );
                self.status(CommitState::Pending, "checking the affected apps")
                    .await?;
                Ok(CheckHandle::Status)
            }
            Err(e) => Err(e),
        }
    }

    /// Completes the check with the report's verdict.
    pub async fn complete_check(
        &self,
        handle: CheckHandle,
        out: &CheckRunOutput,
    ) -> Result<(), ForgeError> {
        match handle {
            CheckHandle::CheckRun(id) => {
                let annotations = out.annotation_batches.iter().flatten().cloned().collect();
                let run = self.completed(
                    conclusion(out.conclusion),
                    CheckOutput {
                        title: out.title.clone(),
                        summary: out.summary.clone(),
                        text: None,
                        annotations,
                    },
                );
                self.forge.update_check_run(self.repo, id, &run).await
            }
            CheckHandle::Status => {
                let state = match out.conclusion {
                    Conclusion::Failure => CommitState::Failure,
                    // A commit status has no "neutral": warnings do not block.
                    Conclusion::Success | Conclusion::Neutral => CommitState::Success,
                };
                self.status(state, &out.title).await
            }
        }
    }

    /// Completes the check as failed because the run itself broke (`error` says why).
    pub async fn fail_check(&self, handle: CheckHandle, error: &str) -> Result<(), ForgeError> {
        match handle {
            CheckHandle::CheckRun(id) => {
                let (summary, _) = report::markdown::truncate(error, 60_000);
                let run = self.completed(
                    CheckConclusion::Failure,
                    CheckOutput {
                        title: "Capstan could not check this pull request".into(),
                        summary: report::markdown::fenced(summary, "text"),
                        ..CheckOutput::default()
                    },
                );
                self.forge.update_check_run(self.repo, id, &run).await
            }
            CheckHandle::Status => {
                self.status(CommitState::Error, &format!("check failed: {error}"))
                    .await
            }
        }
    }

    /// Closes the check of a head that a newer push replaced, without a verdict.
    pub async fn cancel_check(&self, handle: CheckHandle) -> Result<(), ForgeError> {
        const WHY: &str = "superseded by a newer push";
        match handle {
            CheckHandle::CheckRun(id) => {
                let run = self.completed(
                    CheckConclusion::Cancelled,
                    CheckOutput {
                        title: WHY.into(),
                        summary: format!(
                            "Capstan stopped checking `{}`: {WHY}.",
                            short(self.head_sha)
                        ),
                        ..CheckOutput::default()
                    },
                );
                self.forge.update_check_run(self.repo, id, &run).await
            }
            CheckHandle::Status => self.status(CommitState::Error, WHY).await,
        }
    }

    fn completed(&self, conclusion: CheckConclusion, output: CheckOutput) -> CheckRun {
        CheckRun {
            name: CHECK_NAME.into(),
            head_sha: self.head_sha.into(),
            status: CheckStatus::Completed,
            conclusion: Some(conclusion),
            details_url: Some(self.details_url.into()),
            external_id: None,
            output: Some(output),
        }
    }

    async fn status(&self, state: CommitState, description: &str) -> Result<(), ForgeError> {
        let description: String = description.chars().take(STATUS_DESCRIPTION_MAX).collect();
        let status = CommitStatus {
            state,
            context: CHECK_NAME.into(),
            description: Some(description),
            target_url: Some(self.details_url.into()),
        };
        self.forge
            .create_commit_status(self.repo, self.head_sha, &status)
            .await
    }

    /// Makes the pull request show exactly `comment`'s parts: existing parts (found by the marker
    /// at their start and by Capstan's own login) are edited only when their body differs, missing
    /// parts are created and parts no longer needed are deleted, after the others are in place.
    /// Returns the comment ids in part order.
    pub async fn sync_comment(&self, comment: &RenderedComment) -> Result<Vec<u64>, ForgeError> {
        let me = self.forge.identity().await?.login;
        let existing = self.forge.comments(self.repo, self.pr).await?;
        let (mut ours, duplicates) = own_parts(&existing, self.pr, &me);
        let mut ids = Vec::with_capacity(comment.parts.len());
        for part in &comment.parts {
            match ours.remove(&part.number) {
                Some(c) if c.body == part.body => {
                    debug!(part = part.number, id = c.id, "comment part unchanged");
                    ids.push(c.id);
                }
                Some(c) => {
                    self.forge
                        .update_comment(self.repo, self.pr, c.id, &part.body)
                        .await?;
                    ids.push(c.id);
                }
                None => {
                    let c = self
                        .forge
                        .create_comment(self.repo, self.pr, &part.body)
                        .await?;
                    ids.push(c.id);
                }
            }
        }
        // Whatever is left is a part number this rendering no longer has.
        for c in ours.into_values().chain(duplicates) {
            self.forge.delete_comment(self.repo, self.pr, c.id).await?;
        }
        Ok(ids)
    }
}

/// Capstan's comment parts on `pr` by part number (the oldest per number), and any younger
/// duplicates of a number (left by a crash between create and record) to delete.
fn own_parts<'c>(
    comments: &'c [IssueComment],
    pr: u64,
    me: &str,
) -> (BTreeMap<usize, &'c IssueComment>, Vec<&'c IssueComment>) {
    let mut parts: BTreeMap<usize, &IssueComment> = BTreeMap::new();
    let mut duplicates = Vec::new();
    for c in comments.iter().filter(|c| c.author == me) {
        let Some((marker_pr, number)) = parse_marker(&c.body) else {
            continue;
        };
        if marker_pr != pr {
            continue;
        }
        match parts.get(&number) {
            Some(first) if first.id < c.id => duplicates.push(c),
            Some(first) => {
                duplicates.push(first);
                parts.insert(number, c);
            }
            None => {
                parts.insert(number, c);
            }
        }
    }
    (parts, duplicates)
}

fn conclusion(c: Conclusion) -> CheckConclusion {
    match c {
        Conclusion::Success => CheckConclusion::Success,
        Conclusion::Failure => CheckConclusion::Failure,
        Conclusion::Neutral => CheckConclusion::Neutral,
    }
}

pub(crate) fn short(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(id: u64, author: &str, body: &str) -> IssueComment {
        IssueComment {
            id,
            body: body.into(),
            author: author.into(),
            author_is_bot: true,
        }
    }

    #[test]
    fn own_parts_need_the_marker_at_the_start_and_capstans_login() {
        let m1 = report::marker(7, 1);
        let m2 = report::marker(7, 2);
        let comments = vec![
            c(1, "someone", &format!("{m1}\nforged")),
            c(2, "capstan[bot]", &format!("{m1}\nreal")),
            c(3, "capstan[bot]", &format!("quoting {m2}")),
            c(4, "capstan[bot]", &report::marker(8, 2)),
            c(5, "capstan[bot]", &format!("{m2}\npart two")),
            c(6, "capstan[bot]", &format!("{m1}\nduplicate")),
        ];
        let (parts, dups) = own_parts(&comments, 7, "capstan[bot]");
        let ids: Vec<(usize, u64)> = parts.iter().map(|(n, c)| (*n, c.id)).collect();
        assert_eq!(ids, vec![(1, 2), (2, 5)]);
        assert_eq!(dups.iter().map(|c| c.id).collect::<Vec<_>>(), vec![6]);
    }
}
