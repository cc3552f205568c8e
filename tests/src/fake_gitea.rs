//! An in-process Gitea speaking the parts of REST API v1 Capstan uses, written from Gitea's API
//! description (swagger names and status codes): token auth (`Authorization: token …`), pull
//! requests (409 for a second open one of the same branches), issue comments (only their poster
//! may edit or delete them), reactions, commit statuses (the five states Gitea accepts),
//! collaborator permissions, `page`/`limit` listings. Every call is recorded.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::fake_forge::{
    Call, FakeServer, Incoming, Routes, StoredComment, StoredPull, page_params, page_window,
};

#[derive(Default)]
struct Repo {
    pulls: BTreeMap<u64, StoredPull>,
    comments: Vec<StoredComment>,
    statuses: Vec<(String, Value)>,
    reactions: Vec<(u64, String)>,
    permissions: BTreeMap<String, String>,
    files: BTreeMap<u64, Vec<String>>,
}

struct Inner {
    token: String,
    login: String,
    repos: BTreeMap<String, Repo>,
    next_id: u64,
    calls: Vec<Call>,
}

pub struct FakeGitea {
    server: FakeServer<Inner>,
}

impl FakeGitea {
    /// Starts the fake; `token` is the one access token it accepts, belonging to `login`.
    pub async fn start(token: &str, login: &str) -> FakeGitea {
        let server = FakeServer::routed(Inner {
            token: token.into(),
            login: login.into(),
            repos: BTreeMap::new(),
            next_id: 100,
            calls: Vec::new(),
        })
        .await;
        FakeGitea { server }
    }

    /// The instance's web address (the API is under `/api/v1`).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn add_repo(&self, full: &str) {
        self.server.state().repos.entry(full.into()).or_default();
    }

    pub fn add_pull(&self, repo: &str, pull: StoredPull) {
        let mut g = self.server.state();
        g.repos
            .entry(repo.into())
            .or_default()
            .pulls
            .insert(pull.number, pull);
    }

    pub fn set_permission(&self, repo: &str, user: &str, permission: &str) {
        let mut g = self.server.state();
        g.repos
            .entry(repo.into())
            .or_default()
            .permissions
            .insert(user.into(), permission.into());
    }

    /// A comment by someone else (a person's command).
    pub fn add_comment(&self, repo: &str, issue: u64, login: &str, body: &str) -> u64 {
        let mut g = self.server.state();
        g.next_id += 1;
        let id = g.next_id;
        g.repos
            .entry(repo.into())
            .or_default()
            .comments
            .push(StoredComment {
                id,
                number: issue,
                body: body.into(),
                login: login.into(),
            });
        id
    }

    pub fn comments(&self, repo: &str, issue: u64) -> Vec<StoredComment> {
        let g = self.server.state();
        g.repos
            .get(repo)
            .map(|r| {
                r.comments
                    .iter()
                    .filter(|c| c.number == issue)
                    .cloned()
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Commit statuses in the order they were set: (sha, status).
    pub fn statuses(&self, repo: &str) -> Vec<(String, Value)> {
        let g = self.server.state();
        g.repos
            .get(repo)
            .map(|r| r.statuses.clone())
            .unwrap_or_default()
    }

    pub fn reactions(&self, repo: &str) -> Vec<(u64, String)> {
        let g = self.server.state();
        g.repos
            .get(repo)
            .map(|r| r.reactions.clone())
            .unwrap_or_default()
    }

    pub fn pulls(&self, repo: &str) -> Vec<StoredPull> {
        let g = self.server.state();
        g.repos
            .get(repo)
            .map(|r| r.pulls.values().cloned().collect())
            .unwrap_or_default()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.server.state().calls.clone()
    }
}

fn answer(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

fn message(status: StatusCode, m: &str) -> Response {
    answer(
        status,
        json!({ "message": m, "url": "https://gitea.example/api/swagger" }),
    )
}

fn user(login: &str) -> Value {
    json!({"id": login.len(), "login": login, "username": login, "full_name": "", "email": ""})
}

fn pull_json(base: &str, repo: &str, p: &StoredPull) -> Value {
    let branch =
        |r: &str, sha: &str| json!({"label": r, "ref": r, "sha": sha, "repo": {"full_name": repo}});
    json!({
        "id": p.number + 10_000, "number": p.number, "state": p.state, "draft": false,
        "merged": p.merged, "title": p.title, "body": p.body, "user": user(&p.author),
        "head": branch(&p.head_ref, &p.head_sha), "base": branch(&p.base_ref, &p.base_sha),
        "merge_commit_sha": p.merge_commit_sha,
        "html_url": format!("{base}/{repo}/pulls/{}", p.number),
    })
}

fn comment_json(c: &StoredComment) -> Value {
    json!({"id": c.id, "body": c.body, "user": user(&c.login),
           "created_at": "2026-12-01T10:00:00Z", "updated_at": "2026-12-01T10:00:00Z"})
}

/// `page`/`limit` of a listing (Gitea's defaults: page 1, limit 30, at most 50).
fn page(query: &BTreeMap<String, String>, items: Vec<Value>) -> Vec<Value> {
    let (page, limit) = page_params(query, "limit", 30, 50);
    page_window(items, page, limit).0
}

impl Routes for Inner {
    const PREFIX: &'static str = "/api/v1";

    fn calls(&mut self) -> &mut Vec<Call> {
        &mut self.calls
    }

    fn route(&mut self, req: &Incoming) -> Response {
        if req.segments.is_empty() {
            return message(StatusCode::NOT_FOUND, "not found");
        }
        let auth = req.header("authorization").unwrap_or("");
        let token = auth
            .strip_prefix("token ")
            .or_else(|| auth.strip_prefix("Bearer "));
        if token != Some(self.token.as_str()) {
            return message(StatusCode::UNAUTHORIZED, "token is required");
        }
        let seg = req.segs();
        let me = self.login.clone();
        let method = &req.method;
        match (method.as_str(), seg.as_slice()) {
            ("GET", ["user"]) => answer(StatusCode::OK, user(&me)),
            ("GET", ["user", "repos"]) => {
                let all = self.repos.keys().map(|r| json!({"full_name": r})).collect();
                answer(StatusCode::OK, Value::Array(page(&req.query, all)))
            }
            ("GET" | "POST" | "PATCH" | "DELETE", ["repos", owner, name, tail @ ..]) => {
                let full = format!("{owner}/{name}");
                let next_id = self.next_id + 1;
                let Some(repo) = self.repos.get_mut(&full) else {
                    return message(StatusCode::NOT_FOUND, "repository does not exist");
                };
                let r = repo_route(
                    repo,
                    &full,
                    &req.base,
                    &me,
                    next_id,
                    method,
                    tail,
                    &req.query,
                    req.body.as_ref(),
                );
                if r.1 {
                    self.next_id = next_id;
                }
                r.0
            }
            _ => message(StatusCode::NOT_FOUND, "not found"),
        }
    }
}

/// One repository's endpoints; the flag says the id `next_id` was used.
#[allow(clippy::too_many_arguments)]
fn repo_route(
    repo: &mut Repo,
    full: &str,
    base: &str,
    me: &str,
    next_id: u64,
    method: &Method,
    tail: &[&str],
    query: &BTreeMap<String, String>,
    body: Option<&Value>,
) -> (Response, bool) {
    let s = |v: Option<&Value>, k: &str| v.and_then(|b| b[k].as_str()).map(str::to_string);
    let r = match (method.as_str(), tail) {
        ("GET", ["pulls"]) => {
            let want = query.get("state").cloned().unwrap_or_else(|| "open".into());
            let all = repo
                .pulls
                .values()
                .filter(|p| want == "all" || p.state == want)
                .map(|p| pull_json(base, full, p))
                .collect();
            answer(StatusCode::OK, Value::Array(page(query, all)))
        }
        ("POST", ["pulls"]) => {
            let (Some(title), Some(head), Some(base_ref)) =
                (s(body, "title"), s(body, "head"), s(body, "base"))
            else {
                return (
                    message(
                        StatusCode::UNPROCESSABLE_ENTITY,
                        "title, head and base are required",
                    ),
                    false,
                );
            };
            if repo
                .pulls
                .values()
                .any(|p| p.state == "open" && p.head_ref == head && p.base_ref == base_ref)
            {
                return (
                    message(
                        StatusCode::CONFLICT,
                        "pull request already exists for these targets",
                    ),
                    false,
                );
            }
            let number = repo.pulls.keys().max().copied().unwrap_or(0) + 1;
            let p = StoredPull {
                number,
                state: "open".into(),
                title,
                body: s(body, "body").unwrap_or_default(),
                author: me.into(),
                head_ref: head,
                base_ref,
                ..StoredPull::default()
            };
            let v = pull_json(base, full, &p);
            repo.pulls.insert(number, p);
            answer(StatusCode::CREATED, v)
        }
        ("GET" | "PATCH", ["pulls", n]) => {
            let Some(p) = n.parse().ok().and_then(|n: u64| repo.pulls.get_mut(&n)) else {
                return (
                    message(StatusCode::NOT_FOUND, "pull request does not exist"),
                    false,
                );
            };
            if method == Method::PATCH {
                if let Some(t) = s(body, "title") {
                    p.title = t;
                }
                if let Some(b) = s(body, "body") {
                    p.body = b;
                }
                if let Some(st) = s(body, "state") {
                    p.state = st;
                }
            }
            answer(StatusCode::OK, pull_json(base, full, p))
        }
        ("GET", ["pulls", n, "files"]) => {
            let names = n
                .parse()
                .ok()
                .and_then(|n: u64| repo.files.get(&n).cloned())
                .unwrap_or_default();
            let all = names
                .iter()
                .map(|f| json!({"filename": f, "status": "changed", "additions": 1, "deletions": 1, "changes": 2}))
                .collect();
            answer(StatusCode::OK, Value::Array(page(query, all)))
        }
        ("GET", ["commits", sha, "pull"]) => match repo
            .pulls
            .values()
            .find(|p| p.merge_commit_sha.as_deref() == Some(*sha) || p.head_sha == *sha)
        {
            Some(p) => answer(StatusCode::OK, pull_json(base, full, p)),
            None => message(StatusCode::NOT_FOUND, "pull request does not exist"),
        },
        ("GET", ["issues", n, "comments"]) => {
            let n: u64 = n.parse().unwrap_or(0);
            let all = repo
                .comments
                .iter()
                .filter(|c| c.number == n)
                .map(comment_json)
                .collect();
            // Gitea's issue comment listing has no paging parameters: everything, always.
            answer(StatusCode::OK, Value::Array(all))
        }
        ("POST", ["issues", n, "comments"]) => {
            let Some(text) = s(body, "body") else {
                return (
                    message(StatusCode::UNPROCESSABLE_ENTITY, "body is required"),
                    false,
                );
            };
            let c = StoredComment {
                id: next_id,
                number: n.parse().unwrap_or(0),
                body: text,
                login: me.into(),
            };
            let v = comment_json(&c);
            repo.comments.push(c);
            return (answer(StatusCode::CREATED, v), true);
        }
        ("PATCH" | "DELETE", ["issues", "comments", id]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let Some(i) = repo.comments.iter().position(|c| c.id == id) else {
                return (
                    message(StatusCode::NOT_FOUND, "comment does not exist"),
                    false,
                );
            };
            if repo.comments[i].login != me {
                return (message(StatusCode::FORBIDDEN, "not the poster"), false);
            }
            if method == Method::DELETE {
                repo.comments.remove(i);
                return ((StatusCode::NO_CONTENT).into_response(), false);
            }
            let Some(text) = s(body, "body") else {
                return (
                    message(StatusCode::UNPROCESSABLE_ENTITY, "body is required"),
                    false,
                );
            };
            repo.comments[i].body = text;
            answer(StatusCode::OK, comment_json(&repo.comments[i]))
        }
        ("POST", ["issues", "comments", id, "reactions"]) => {
            let id: u64 = id.parse().unwrap_or(0);
            let content = s(body, "content").unwrap_or_default();
            let allowed = [
                "+1", "-1", "laugh", "hooray", "confused", "heart", "rocket", "eyes",
            ];
            if !allowed.contains(&content.as_str()) {
                return (
                    message(StatusCode::FORBIDDEN, "reaction not allowed"),
                    false,
                );
            }
            if !repo.comments.iter().any(|c| c.id == id) {
                return (
                    message(StatusCode::NOT_FOUND, "comment does not exist"),
                    false,
                );
            }
            let v = json!({"user": user(me), "content": content});
            if repo.reactions.contains(&(id, content.clone())) {
                answer(StatusCode::OK, v)
            } else {
                repo.reactions.push((id, content));
                answer(StatusCode::CREATED, v)
            }
        }
        ("POST", ["statuses", sha]) => {
            let state = s(body, "state").unwrap_or_default();
            if !["pending", "success", "error", "failure", "warning"].contains(&state.as_str()) {
                return (
                    message(StatusCode::UNPROCESSABLE_ENTITY, "invalid state"),
                    false,
                );
            }
            let v = json!({
                "id": next_id, "state": state, "context": s(body, "context").unwrap_or_default(),
                "description": s(body, "description").unwrap_or_default(),
                "target_url": s(body, "target_url").unwrap_or_default(),
            });
            repo.statuses.push((sha.to_string(), v.clone()));
            return (answer(StatusCode::CREATED, v), true);
        }
        ("GET", ["collaborators", who, "permission"]) => {
            // A public repository: anyone not listed reads.
            let p = repo
                .permissions
                .get(*who)
                .cloned()
                .unwrap_or_else(|| "read".into());
            answer(
                StatusCode::OK,
                json!({"permission": p, "role_name": p, "user": user(who)}),
            )
        }
        _ => message(StatusCode::NOT_FOUND, "not found"),
    };
    (r, false)
}
