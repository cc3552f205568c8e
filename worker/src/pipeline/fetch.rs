//! Getting a pull request's base and head into the local mirror, by exact commit id.

use git2::Oid;

use crate::git::GitError;
use crate::git::mirror::Mirror;

pub use crate::git::names::check_branch;

/// Whether the fetch URL is a local repository (tests, mirrors), which has branches but no
/// `refs/pull/*` refs.
pub fn is_local(url: &str) -> bool {
    !(url.starts_with("http://") || url.starts_with("https://") || url.starts_with("ssh://"))
}

/// Refspecs for a pull request: its base branch and its head (`refs/pull/<n>/head` on GitHub,
/// the head branch on a local remote).
pub fn refspecs(url: &str, pr: u64, base_ref: &str, head_ref: Option<&str>) -> Vec<String> {
    match head_ref {
        Some(h) if is_local(url) => branch_refspecs(base_ref, h),
        _ => vec![
            format!("+refs/heads/{base_ref}:refs/heads/{base_ref}"),
            format!("+refs/pull/{pr}/head:refs/pull/{pr}/head"),
        ],
    }
}

/// Refspecs for two branches of the repository itself: a merge queue's base and its queue branch.
pub fn branch_refspecs(base_ref: &str, head_ref: &str) -> Vec<String> {
    [base_ref, head_ref]
        .iter()
        .map(|b| format!("+refs/heads/{b}:refs/heads/{b}"))
        .collect()
}

/// The commit the mirror's copy of `branch` points at (after a fetch).
pub fn branch_tip(mirror: &Mirror, branch: &str) -> Result<Oid, GitError> {
    mirror.repo()?.resolve(&format!("refs/heads/{branch}"))
}

/// The commit to diff against: where the head branched off the base (what GitHub's "Files
/// changed" compares), or the base itself when they share no history.
pub fn diff_base(mirror: &Mirror, base: Oid, head: Oid) -> Result<Oid, GitError> {
    let repo = mirror.repo()?;
    Ok(repo.raw().merge_base(base, head).unwrap_or(base))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branch_names_are_checked() {
        assert!(check_branch("main").is_ok());
        assert!(check_branch("feature/x-1").is_ok());
        for bad in ["-x", "a..b", "a b", "", "x.lock", "a~1", "../etc"] {
            assert!(check_branch(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn github_remotes_fetch_the_pull_ref_local_ones_the_branch() {
        assert_eq!(
            refspecs("https://github.com/a/b.git", 7, "main", Some("feat")),
            vec![
                "+refs/heads/main:refs/heads/main",
                "+refs/pull/7/head:refs/pull/7/head"
            ]
        );
        assert_eq!(
            refspecs("file:///tmp/r", 7, "main", Some("feat")),
            vec![
                "+refs/heads/main:refs/heads/main",
                "+refs/heads/feat:refs/heads/feat"
            ]
        );
    }
}
