//! Pushing a commit from a mirror to a branch of the configured remote, never forced.
//!
//! `file://` URLs and plain paths (mirrors, tests) go through libgit2: the objects are pushed to
//! a temporary ref, then the branch is moved with a compare-and-swap on the remote repository
//! (libgit2's local transport would otherwise overwrite the ref without checking that it still
//! points where we last saw it). `http(s)` URLs go through the `git` CLI like fetches do, with
//! the token in `GIT_CONFIG_*` variables and `--porcelain` output to tell rejections apart.

use std::path::{Path, PathBuf};
use std::process::Command;

use git2::{ErrorCode, Oid, Repository};

/// Why a push did not land.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    /// The branch moved since it was fetched: refetch, re-apply, retry.
    #[error("push to {branch} rejected: the branch moved (non-fast-forward)")]
    NonFastForward { branch: String },
    /// The remote refused the update itself (branch protection, a hook): retrying will not help.
    #[error("push to {branch} refused by the remote: {reason}")]
    Refused { branch: String, reason: String },
    #[error("push to {branch}: {message}")]
    Other { branch: String, message: String },
}

/// Move `branch` on the remote at `url` from `expected` (`None`: it must not exist yet) to
/// `commit`, which must be in `mirror`.
pub fn push_branch(
    mirror: &Path,
    url: &str,
    commit: Oid,
    branch: &str,
    expected: Option<Oid>,
    token: Option<&str>,
) -> Result<(), PushError> {
    super::names::check_branch(branch).map_err(|e| PushError::Other {
        branch: branch.chars().take(80).collect(),
        message: e.to_string(),
    })?;
    if url.starts_with("http://") || url.starts_with("https://") {
        push_cli(mirror, url, commit, branch, token)
    } else {
        push_local(mirror, url, commit, branch, expected)
    }
}

fn local_path(url: &str) -> PathBuf {
    PathBuf::from(url.strip_prefix("file://").unwrap_or(url))
}

fn push_local(
    mirror: &Path,
    url: &str,
    commit: Oid,
    branch: &str,
    expected: Option<Oid>,
) -> Result<(), PushError> {
    let other = |message: String| PushError::Other {
        branch: branch.to_string(),
        message,
    };
    let repo = Repository::open(mirror).map_err(|e| other(e.message().to_string()))?;
    let tmp = format!("refs/capstan/outgoing/{}", uuid::Uuid::new_v4());
    repo.reference(&tmp, commit, true, "capstan: outgoing promotion")
        .map_err(|e| other(e.message().to_string()))?;
    let pushed = (|| {
        let mut remote = repo.remote_anonymous(url)?;
        remote.push(&[format!("{tmp}:{tmp}")], None)
    })();
    let _ = repo.find_reference(&tmp).and_then(|mut r| r.delete());
    pushed.map_err(|e| other(format!("sending objects: {}", e.message())))?;

    let target = Repository::open(local_path(url)).map_err(|e| other(e.message().to_string()))?;
    let refname = format!("refs/heads/{branch}");
    let moved = match expected {
        Some(old) => target
            .reference_matching(&refname, commit, true, old, "capstan: promotion")
            .map(|_| ()),
        None => target
            .reference(&refname, commit, false, "capstan: promotion")
            .map(|_| ()),
    };
    let _ = target.find_reference(&tmp).and_then(|mut r| r.delete());
    match moved {
        Ok(()) => Ok(()),
        Err(e) if matches!(e.code(), ErrorCode::Modified | ErrorCode::Exists) => {
            Err(PushError::NonFastForward {
                branch: branch.to_string(),
            })
        }
        Err(e) => Err(other(e.message().to_string())),
    }
}

fn push_cli(
    mirror: &Path,
    url: &str,
    commit: Oid,
    branch: &str,
    token: Option<&str>,
) -> Result<(), PushError> {
    let home = super::mirror::scratch_home().map_err(|e| PushError::Other {
        branch: branch.to_string(),
        message: format!("preparing git's scratch home: {e}"),
    })?;
    let mut cmd = Command::new("git");
    crate::render::exec::git_env(&mut cmd, home.path());
    let mut git_dir = std::ffi::OsString::from("--git-dir=");
    git_dir.push(mirror);
    cmd.arg(git_dir)
        .args(["push", "--porcelain", "--no-recurse-submodules", "--"])
        .arg(url)
        .arg(format!("{commit}:refs/heads/{branch}"));
    if let Some(token) = token {
        super::mirror::auth_env(&mut cmd, token);
    }
    let out = cmd.output().map_err(|e| PushError::Other {
        branch: branch.to_string(),
        message: format!("running git push: {e} (is git installed?)"),
    })?;
    classify(
        branch,
        out.status.success(),
        &String::from_utf8_lossy(&out.stdout),
        &String::from_utf8_lossy(&out.stderr),
    )
}

/// Reads `git push --porcelain`: one `<flag>\t<from>:<to>\t<summary>` line per ref; `!` is a
/// rejection, whose summary says why (`[rejected] (non-fast-forward)`, `[rejected] (fetch
/// first)`, `[remote rejected] (protected branch hook declined)`).
pub fn classify(branch: &str, success: bool, stdout: &str, stderr: &str) -> Result<(), PushError> {
    for line in stdout.lines() {
        let mut parts = line.splitn(3, '\t');
        let (Some(flag), Some(_refs), Some(summary)) = (parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if flag != "!" {
            continue;
        }
        if summary.starts_with("[rejected]")
            && ["non-fast-forward", "fetch first", "stale info"]
                .iter()
                .any(|w| summary.contains(w))
        {
            return Err(PushError::NonFastForward {
                branch: branch.to_string(),
            });
        }
        let reason = summary
            .split_once('(')
            .map(|(_, r)| r.trim_end_matches(')').to_string())
            .unwrap_or_else(|| summary.to_string());
        let detail = stderr
            .lines()
            .filter(|l| l.starts_with("remote:"))
            .map(|l| l.trim_start_matches("remote:").trim())
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join(" ");
        return Err(PushError::Refused {
            branch: branch.to_string(),
            // The remote's words are quoted in reports: scrubbed like any upstream text.
            reason: crate::scrub::scrub_string(&if detail.is_empty() {
                reason
            } else {
                format!("{reason}: {detail}")
            }),
        });
    }
    if success {
        Ok(())
    } else {
        Err(PushError::Other {
            branch: branch.to_string(),
            message: crate::scrub::scrub_string(
                &stderr.trim().chars().take(2000).collect::<String>(),
            ),
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::git::fixture::{Change, RepoBuilder};

    fn setup() -> (tempfile::TempDir, PathBuf, Oid, Oid, Oid) {
        let dir = tempfile::tempdir().unwrap();
        let up = dir.path().join("up");
        let b = RepoBuilder::init(&up).unwrap();
        let one = b
            .commit("one", &[Change::Write("a.yaml", b"a: 1\n")])
            .unwrap();
        let two = b
            .commit("two", &[Change::Write("a.yaml", b"a: 2\n")])
            .unwrap();
        let bare = dir.path().join("origin.git");
        Repository::init_bare(&bare).unwrap();
        let mirror = dir.path().join("mirror.git");
        let m = Repository::init_bare(&mirror).unwrap();
        m.remote_anonymous(up.to_str().unwrap())
            .unwrap()
            .fetch(&["+refs/heads/*:refs/remotes/up/*"], None, None)
            .unwrap();
        let c = m.find_commit(two).unwrap();
        let side = m
            .commit(
                None,
                &c.author(),
                &c.author(),
                "side",
                &c.tree().unwrap(),
                &[&m.find_commit(one).unwrap()],
            )
            .unwrap();
        (dir, mirror, one, two, side)
    }

    fn head(bare: &Path) -> Option<Oid> {
        Repository::open(bare)
            .ok()?
            .refname_to_id("refs/heads/main")
            .ok()
    }

    #[test]
    fn local_push_moves_the_branch_only_from_where_it_was_seen() {
        let (dir, mirror, one, two, side) = setup();
        let origin = dir.path().join("origin.git");
        let url = format!("file://{}", origin.display());
        push_branch(&mirror, &url, one, "main", None, None).unwrap();
        assert!(matches!(
            push_branch(&mirror, &url, two, "main", None, None),
            Err(PushError::NonFastForward { .. })
        ));
        push_branch(&mirror, &url, two, "main", Some(one), None).unwrap();
        assert_eq!(head(&origin), Some(two));
        // A second writer that saw `one` loses and the branch keeps `two`.
        let err = push_branch(
            &mirror,
            origin.to_str().unwrap(),
            side,
            "main",
            Some(one),
            None,
        );
        assert!(
            matches!(err, Err(PushError::NonFastForward { .. })),
            "{err:?}"
        );
        assert_eq!(head(&origin), Some(two));
        let refs: Vec<String> = Repository::open(&origin)
            .unwrap()
            .references()
            .unwrap()
            .filter_map(|r| r.ok()?.name().ok().map(str::to_string))
            .collect();
        assert_eq!(
            refs,
            vec!["refs/heads/main".to_string()],
            "no temporary refs left"
        );
    }

    #[test]
    fn cli_push_tells_non_fast_forward_from_a_protected_branch() {
        let (dir, mirror, one, two, side) = setup();
        let origin = dir.path().join("origin.git");
        let url = format!("file://{}", origin.display());
        push_cli(&mirror, &url, one, "main", None).unwrap();
        push_cli(&mirror, &url, two, "main", None).unwrap();
        let e = push_cli(&mirror, &url, side, "main", Some("t0ken"));
        assert!(matches!(e, Err(PushError::NonFastForward { .. })), "{e:?}");
        let hook = origin.join("hooks/pre-receive");
        std::fs::write(&hook, "#!/bin/sh\necho 'GH006: Protected branch update failed for refs/heads/main.'\nexit 1\n").unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        let c = Repository::open(&mirror).unwrap();
        let t = c.find_commit(two).unwrap();
        let three = c
            .commit(
                None,
                &t.author(),
                &t.author(),
                "three",
                &t.tree().unwrap(),
                &[&t],
            )
            .unwrap();
        match push_cli(&mirror, &url, three, "main", None) {
            Err(PushError::Refused { reason, .. }) => {
                assert!(reason.contains("pre-receive hook declined"), "{reason}");
                assert!(reason.contains("GH006"), "{reason}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(head(&origin), Some(two));
    }

    #[test]
    fn porcelain_lines_are_classified() {
        let nff = "To x\n!\trefs/heads/main:refs/heads/main\t[rejected] (fetch first)\nDone\n";
        assert!(matches!(
            classify("main", false, nff, ""),
            Err(PushError::NonFastForward { .. })
        ));
        let prot = "!\tabc:refs/heads/main\t[remote rejected] (protected branch hook declined)\n";
        assert!(matches!(
            classify("main", false, prot, ""),
            Err(PushError::Refused { .. })
        ));
        assert!(classify("main", true, "=\tabc:refs/heads/main\t[up to date]\n", "").is_ok());
        assert!(matches!(
            classify("main", false, "", "fatal: unable to access"),
            Err(PushError::Other { .. })
        ));
    }
}
