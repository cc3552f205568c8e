//! Landing a planned promotion in git: fetch the tips, look for the promotion's own commit by
//! its `Capstan-Promotion-Id:` trailer (a replayed or retried job then does nothing), commit the
//! edits, push without force, and on a non-fast-forward rejection start over from the new tip.

use std::collections::BTreeMap;

use git2::{FileMode, Oid, Repository, Signature};

use crate::git::GitError;
use crate::git::mirror::Mirror;
use crate::git::other as step;

/// Trailer naming the promotion a commit carries.
pub const ID_TRAILER: &str = "Capstan-Promotion-Id";
/// Trailer naming the source (`owner/repo@sha`, plus ` (#pr)`).
pub const SOURCE_TRAILER: &str = "Capstan-Source";

/// Commits searched for a trailer, from a tip backwards.
const TRAILER_SEARCH_DEPTH: usize = 500;

/// Where Capstan keeps what it fetched of a remote branch in its mirror.
pub fn tracking_ref(branch: &str) -> String {
    format!("refs/capstan/remote/{branch}")
}

/// Fetches `branch` of `url` into the mirror; `None` when the remote has no such branch. The
/// tracking ref is dropped first, so a branch deleted on the remote is not seen as present.
pub fn fetch_branch(
    mirror: &Mirror,
    url: &str,
    branch: &str,
    token: Option<&str>,
) -> Result<Option<Oid>, GitError> {
    let tracking = tracking_ref(branch);
    let repo = Repository::open_bare(mirror.path()).map_err(step("opening the mirror"))?;
    if let Ok(mut r) = repo.find_reference(&tracking) {
        r.delete().map_err(step("resetting a tracking ref"))?;
    }
    // A glob refspec matches nothing, without an error, when the branch does not exist.
    let (prefix, last) = match branch.rsplit_once('/') {
        Some((p, l)) => (format!("{p}/"), l),
        None => (String::new(), branch),
    };
    let spec = format!("+refs/heads/{prefix}{last}*:refs/capstan/remote/{prefix}{last}*");
    mirror.fetch(url, &[spec], token)?;
    Ok(repo.refname_to_id(&tracking).ok())
}

/// Makes sure `sha` is in the mirror (fetching `branch` when it is not).
pub fn ensure_commit(
    mirror: &Mirror,
    url: &str,
    sha: Oid,
    branch: &str,
    token: Option<&str>,
) -> Result<(), GitError> {
    mirror.ensure(
        url,
        &[sha],
        &[format!("+refs/heads/{branch}:{}", tracking_ref(branch))],
        token,
    )
}

/// The newest commit reachable from `tip` whose message carries `Capstan-Promotion-Id: key`.
pub fn find_by_trailer(repo: &Repository, tip: Oid, key: &str) -> Result<Option<Oid>, GitError> {
    let mut walk = repo.revwalk().map_err(step("walking history"))?;
    walk.push(tip).map_err(step("walking history"))?;
    let wanted = format!("{ID_TRAILER}: {key}");
    for oid in walk.take(TRAILER_SEARCH_DEPTH) {
        let oid = oid.map_err(step("walking history"))?;
        let commit = repo.find_commit(oid).map_err(step("reading a commit"))?;
        if commit
            .message_raw()
            .is_ok_and(|m| m.lines().any(|l| l.trim_end() == wanted))
        {
            return Ok(Some(oid));
        }
    }
    Ok(None)
}

/// Writes a commit whose tree is `base`'s with `files` replaced, on `parents` (first parent
/// first), without moving any ref.
pub fn commit_files(
    repo: &Repository,
    base: Oid,
    parents: &[Oid],
    files: &BTreeMap<String, Vec<u8>>,
    message: &str,
) -> Result<Oid, GitError> {
    let base_tree = repo
        .find_commit(base)
        .and_then(|c| c.tree())
        .map_err(step("reading the base tree"))?;
    let mut update = git2::build::TreeUpdateBuilder::new();
    for (path, bytes) in files {
        let id = repo.blob(bytes).map_err(step("writing a blob"))?;
        let mode = match base_tree.get_path(std::path::Path::new(path)) {
            Ok(e) if e.filemode() == i32::from(FileMode::BlobExecutable) => {
                FileMode::BlobExecutable
            }
            _ => FileMode::Blob,
        };
        update.upsert(path.as_str(), id, mode);
    }
    let tree_id = update
        .create_updated(repo, &base_tree)
        .map_err(step("writing the tree"))?;
    let tree = repo.find_tree(tree_id).map_err(step("reading the tree"))?;
    let sig =
        Signature::now("Capstan", "capstan@users.noreply.github.com").map_err(step("signature"))?;
    let parents = parents
        .iter()
        .map(|p| repo.find_commit(*p))
        .collect::<Result<Vec<_>, _>>()
        .map_err(step("reading parents"))?;
    let refs: Vec<&git2::Commit<'_>> = parents.iter().collect();
    repo.commit(None, &sig, &sig, message, &tree, &refs)
        .map_err(step("committing"))
}
