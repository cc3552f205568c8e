//! The fake's pull-request writes and git backing, for promotions: create (`POST /pulls`), list
//! by head branch (`GET /pulls?head=owner:branch`), update and close (`PATCH /pulls/{n}`), the
//! pull requests of a commit (`GET /commits/{sha}/pulls`), and a test helper that merges a pull
//! request in the backing bare repository the way GitHub's merge button does (merge commit,
//! squash or rebase). Status codes and messages follow GitHub's: 422 "A pull request already
//! exists for owner:branch.", 422 "No commits between main and branch", 404 for unknown numbers.

use std::path::{Path, PathBuf};

use axum::http::StatusCode;
use axum::response::Response;
use capstan_worker::forge::github::model;
use git2::{Oid, Repository, Signature};
use serde_json::Value;

use super::{
    FakeGitHub, FakePull, Repo, not_found, ok, paginate, read, url_pairs, user, validation,
};

/// What a promotion needs of a pull request beyond [`FakePull`].
#[derive(Clone, Debug, Default)]
pub(super) struct PullExtra {
    pub body: String,
    pub merge_commit_sha: Option<String>,
    /// Commits GitHub associates with the pull request (its head and its merge result).
    pub commits: Vec<String>,
}

/// How the merge button merges.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MergeMethod {
    Merge,
    Squash,
    Rebase,
}

fn branch_sha(dir: &Path, branch: &str) -> Option<String> {
    let repo = Repository::open(dir).ok()?;
    repo.refname_to_id(&format!("refs/heads/{branch}"))
        .ok()
        .map(|o| o.to_string())
}

/// A pull request as GitHub's `pull-request` schema has it (lists send the same here).
pub(super) fn pull_model(repo: &str, p: &FakePull, x: Option<&PullExtra>) -> model::PullRequest {
    model::PullRequest {
        number: p.number,
        state: if p.state == "open" {
            model::PullState::Open
        } else {
            model::PullState::Closed
        },
        title: p.title.clone(),
        body: x.map(|x| x.body.clone()),
        user: user(&p.author, false),
        draft: p.draft,
        merged: Some(p.merged),
        merged_at: p.merged.then(|| "2026-11-26T10:00:00Z".to_string()),
        merge_commit_sha: x.and_then(|x| x.merge_commit_sha.clone()),
        html_url: format!("https://github.com/{repo}/pull/{}", p.number),
        head: model::PullRef {
            git_ref: p.head_ref.clone(),
            sha: p.head_sha.clone(),
        },
        base: model::PullRef {
            git_ref: p.base_ref.clone(),
            sha: p.base_sha.clone(),
        },
    }
}

#[allow(clippy::too_many_arguments)]
pub(super) fn route(
    repo: &mut Repo,
    full: &str,
    m: &str,
    rest: &[&str],
    query: &str,
    body: Option<&Value>,
    author: &str,
    full_path: &str,
) -> Option<Response> {
    let owner = full.split('/').next().unwrap_or_default();
    Some(match (m, rest) {
        ("GET", ["pulls"]) => {
            let params = url_pairs(query);
            let head = params.iter().find(|(k, _)| k == "head")?.1.clone();
            let state = params
                .iter()
                .find(|(k, _)| k == "state")
                .map(|(_, v)| v.clone())
                .unwrap_or_else(|| "open".into());
            let items: Vec<model::PullRequest> = repo
                .pulls
                .values()
                .filter(|p| format!("{owner}:{}", p.head_ref) == head)
                .filter(|p| state == "all" || p.state == state)
                .map(|p| pull_model(full, p, repo.pull_extra.get(&p.number)))
                .collect();
            paginate(full_path, query, items, None)
        }
        ("GET", ["pulls", n]) => match n.parse::<u64>().ok().and_then(|n| repo.pulls.get(&n)) {
            Some(p) => ok(
                StatusCode::OK,
                pull_model(full, p, repo.pull_extra.get(&p.number)),
            ),
            None => not_found(),
        },
        ("POST", ["pulls"]) => {
            let Ok(model::NewPull {
                title,
                head,
                base,
                body: text,
            }) = read(body, "PullRequest")
            else {
                return Some(validation(
                    "PullRequest",
                    "head",
                    "title, head and base are required",
                ));
            };
            let head = head
                .strip_prefix(&format!("{owner}:"))
                .unwrap_or(&head)
                .to_string();
            let dir = repo.git_dir.clone()?;
            let Some(head_sha) = branch_sha(&dir, &head) else {
                return Some(validation("PullRequest", "head", "invalid"));
            };
            let Some(base_sha) = branch_sha(&dir, &base) else {
                return Some(validation("PullRequest", "base", "invalid"));
            };
            if repo
                .pulls
                .values()
                .any(|p| p.state == "open" && p.head_ref == head && p.base_ref == base)
            {
                return Some(validation(
                    "PullRequest",
                    "",
                    &format!("A pull request already exists for {owner}:{head}."),
                ));
            }
            if head_sha == base_sha {
                return Some(validation(
                    "PullRequest",
                    "",
                    &format!("No commits between {base} and {head}"),
                ));
            }
            let number = repo.pulls.keys().max().copied().unwrap_or(0) + 1;
            let p = FakePull {
                number,
                state: "open".into(),
                title,
                author: author.to_string(),
                head_sha: head_sha.clone(),
                head_ref: head,
                base_sha,
                base_ref: base,
                ..FakePull::default()
            };
            let x = PullExtra {
                body: text,
                merge_commit_sha: None,
                commits: vec![head_sha],
            };
            let v = pull_model(full, &p, Some(&x));
            repo.pulls.insert(number, p);
            repo.pull_extra.insert(number, x);
            ok(StatusCode::CREATED, v)
        }
        ("PATCH", ["pulls", n]) => {
            let Some(n) = n.parse::<u64>().ok().filter(|n| repo.pulls.contains_key(n)) else {
                return Some(not_found());
            };
            let Ok(patch) = read::<model::PullPatch>(body, "PullRequest") else {
                return Some(validation("PullRequest", "state", "state is not valid"));
            };
            let x = repo.pull_extra.entry(n).or_default();
            if let Some(b) = patch.body {
                x.body = b;
            }
            let p = repo.pulls.get_mut(&n)?;
            if let Some(t) = patch.title {
                p.title = t;
            }
            match patch.state {
                None => {}
                Some(_) if p.merged => {
                    return Some(validation("PullRequest", "state", "state is not valid"));
                }
                Some(model::PullState::Closed) => p.state = "closed".into(),
                Some(model::PullState::Open) => p.state = "open".into(),
            }
            ok(StatusCode::OK, pull_model(full, p, repo.pull_extra.get(&n)))
        }
        ("GET", ["commits", sha, "pulls"]) => {
            if let Some(dir) = &repo.git_dir {
                let known = Repository::open(dir)
                    .ok()
                    .zip(Oid::from_str(sha).ok())
                    .is_some_and(|(r, o)| r.find_commit(o).is_ok());
                if !known {
                    return Some(validation(
                        "Commit",
                        "sha",
                        &format!("No commit found for SHA: {sha}"),
                    ));
                }
            }
            let items: Vec<model::PullRequest> = repo
                .pulls
                .values()
                .filter(|p| {
                    p.head_sha == *sha
                        || repo
                            .pull_extra
                            .get(&p.number)
                            .is_some_and(|x| x.commits.iter().any(|c| c == sha))
                })
                .map(|p| pull_model(full, p, repo.pull_extra.get(&p.number)))
                .collect();
            paginate(full_path, query, items, None)
        }
        _ => return None,
    })
}

fn sig() -> Signature<'static> {
    // GitHub's merge button commits as the web-flow user.
    Signature::new(
        "GitHub",
        "noreply@github.com",
        &git2::Time::new(1_700_000_000, 0),
    )
    .unwrap_or_else(|e| panic!("{e}"))
}

impl FakeGitHub {
    /// Backs `repo` with the bare repository at `dir` (pull requests resolve branches there).
    pub fn set_git_dir(&self, repo: &str, dir: impl Into<PathBuf>) {
        let mut g = self.server.state();
        g.repos.entry(repo.to_string()).or_default().git_dir = Some(dir.into());
    }

    /// Opens a pull request from branch `head` as `author` would; returns its number.
    pub fn open_pull(&self, repo: &str, head: &str, base: &str, title: &str, author: &str) -> u64 {
        let mut g = self.server.state();
        let r = g.repos.entry(repo.to_string()).or_default();
        let dir = r.git_dir.clone().expect("set_git_dir first");
        let head_sha = branch_sha(&dir, head).expect("head branch exists");
        let number = r.pulls.keys().max().copied().unwrap_or(0) + 1;
        r.pulls.insert(
            number,
            FakePull {
                number,
                state: "open".into(),
                title: title.into(),
                author: author.into(),
                head_sha: head_sha.clone(),
                head_ref: head.into(),
                base_sha: branch_sha(&dir, base).expect("base branch exists"),
                base_ref: base.into(),
                ..FakePull::default()
            },
        );
        r.pull_extra.insert(
            number,
            PullExtra {
                body: String::new(),
                merge_commit_sha: None,
                commits: vec![head_sha],
            },
        );
        number
    }

    /// GitHub moves a pull request's head when its branch is pushed to: re-read it from git.
    pub fn refresh_head(&self, repo: &str, number: u64) {
        let mut g = self.server.state();
        let r = g.repos.get_mut(repo).expect("known repo");
        let dir = r.git_dir.clone().expect("set_git_dir first");
        let p = r.pulls.get_mut(&number).expect("known pull request");
        p.head_sha = branch_sha(&dir, &p.head_ref).expect("head branch exists");
        let sha = p.head_sha.clone();
        r.pull_extra.entry(number).or_default().commits.push(sha);
    }

    /// Moves a pull request's head to `sha` without a git directory behind it (a push GitHub
    /// has seen; the tests say which commit).
    pub fn set_head(&self, repo: &str, number: u64, sha: &str) {
        let mut g = self.server.state();
        let r = g.repos.get_mut(repo).expect("known repo");
        r.pulls
            .get_mut(&number)
            .expect("known pull request")
            .head_sha = sha.to_string();
    }

    /// Sets a pull request's base branch (a PR into a branch other than the default).
    pub fn set_base(&self, repo: &str, number: u64, base_ref: &str) {
        let mut g = self.server.state();
        let r = g.repos.get_mut(repo).expect("known repo");
        r.pulls
            .get_mut(&number)
            .expect("known pull request")
            .base_ref = base_ref.to_string();
    }

    /// The pull request with its body and merge commit, as the fake holds it.
    pub fn pull(&self, repo: &str, number: u64) -> Option<(FakePull, String, Option<String>)> {
        let g = self.server.state();
        let r = g.repos.get(repo)?;
        let p = r.pulls.get(&number)?.clone();
        let x = r.pull_extra.get(&number).cloned().unwrap_or_default();
        Some((p, x.body, x.merge_commit_sha))
    }

    /// Every pull request of `repo`, by number.
    pub fn pulls(&self, repo: &str) -> Vec<FakePull> {
        let g = self.server.state();
        g.repos
            .get(repo)
            .map(|r| r.pulls.values().cloned().collect())
            .unwrap_or_default()
    }

    /// Merges pull request `number` in the backing repository like the merge button, moving the
    /// base branch; returns (base before, base after) for the push event to deliver. A conflict
    /// is an error, as GitHub's 405 "Pull Request is not mergeable".
    pub fn merge_pull(
        &self,
        repo: &str,
        number: u64,
        method: MergeMethod,
    ) -> Result<(String, String), String> {
        let mut g = self.server.state();
        let r = g.repos.get_mut(repo).ok_or("unknown repo")?;
        let dir = r.git_dir.clone().ok_or("no git dir")?;
        let p = r
            .pulls
            .get(&number)
            .cloned()
            .ok_or("unknown pull request")?;
        if p.state != "open" {
            return Err("Pull Request is not mergeable (closed)".into());
        }
        let git = Repository::open(&dir).map_err(|e| e.to_string())?;
        let base_ref = format!("refs/heads/{}", p.base_ref);
        let base = git.refname_to_id(&base_ref).map_err(|e| e.to_string())?;
        let head = git
            .refname_to_id(&format!("refs/heads/{}", p.head_ref))
            .map_err(|e| e.to_string())?;
        let e = |e: git2::Error| e.to_string();
        let base_c = git.find_commit(base).map_err(e)?;
        let mut result_commits = Vec::new();
        let after = match method {
            MergeMethod::Merge | MergeMethod::Squash => {
                let head_c = git.find_commit(head).map_err(e)?;
                let mut idx = git.merge_commits(&base_c, &head_c, None).map_err(e)?;
                if idx.has_conflicts() {
                    return Err("Pull Request is not mergeable".into());
                }
                let tree = git
                    .find_tree(idx.write_tree_to(&git).map_err(e)?)
                    .map_err(e)?;
                let msg = format!("{} (#{number})\n", p.title);
                let parents: Vec<&git2::Commit<'_>> = if method == MergeMethod::Merge {
                    vec![&base_c, &head_c]
                } else {
                    vec![&base_c]
                };
                git.commit(None, &sig(), &sig(), &msg, &tree, &parents)
                    .map_err(e)?
            }
            MergeMethod::Rebase => {
                let mut walk = git.revwalk().map_err(e)?;
                walk.push(head).map_err(e)?;
                walk.hide(base).map_err(e)?;
                let mut picks: Vec<Oid> = walk.collect::<Result<_, _>>().map_err(e)?;
                picks.reverse();
                let mut onto = base_c.clone();
                for pick in picks {
                    let c = git.find_commit(pick).map_err(e)?;
                    let mut idx = git.cherrypick_commit(&c, &onto, 0, None).map_err(e)?;
                    if idx.has_conflicts() {
                        return Err("Pull Request is not mergeable".into());
                    }
                    let tree = git
                        .find_tree(idx.write_tree_to(&git).map_err(e)?)
                        .map_err(e)?;
                    let id = git
                        .commit(
                            None,
                            &c.author(),
                            &sig(),
                            c.message().unwrap_or_default(),
                            &tree,
                            &[&onto],
                        )
                        .map_err(e)?;
                    result_commits.push(id.to_string());
                    onto = git.find_commit(id).map_err(e)?;
                }
                onto.id()
            }
        };
        git.reference_matching(&base_ref, after, true, base, "merge button")
            .map_err(e)?;
        let pull = r.pulls.get_mut(&number).ok_or("vanished")?;
        pull.state = "closed".into();
        pull.merged = true;
        let x = r.pull_extra.entry(number).or_default();
        x.merge_commit_sha = Some(after.to_string());
        x.commits.push(after.to_string());
        x.commits.extend(result_commits);
        Ok((base.to_string(), after.to_string()))
    }
}
