//! An in-process GitLab speaking the parts of REST API v4 Capstan uses, written from GitLab's
//! API documentation (paths, field names, status codes): `PRIVATE-TOKEN` auth (401 otherwise),
//! projects addressed by their URL-encoded path, merge requests by `iid` (409 for a second open
//! one of the same source branch), their diffs, merge request notes (only their author may edit
//! or delete them; a body over 1,000,000 characters is refused with GitLab's 400), award emoji on
//! notes (the same one twice is a 404), external commit statuses (a state the status already
//! has is a 400 "Cannot transition status"), members by user id with access levels, users by
//! username, and `page`/`per_page` listings answered with `x-next-page` and friends. Every call
//! is recorded.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::fake_forge::{
    Call, FakeServer, Incoming, Routes, StoredComment, StoredPull, page_params, page_window,
};

/// GitLab's note limit, in characters.
pub const MAX_NOTE_CHARS: usize = 1_000_000;

#[derive(Default)]
struct Project {
    id: u64,
    mrs: BTreeMap<u64, StoredPull>,
    notes: Vec<StoredComment>,
    /// Every accepted status post, in order: (sha, status).
    statuses: Vec<(String, Value)>,
    /// (note id, emoji name, username).
    awards: Vec<(u64, String, String)>,
    /// Username → access level.
    members: BTreeMap<String, u32>,
    files: BTreeMap<u64, Vec<String>>,
}

struct Inner {
    token: String,
    login: String,
    projects: BTreeMap<String, Project>,
    /// Username → user id; the token's own user is one.
    users: BTreeMap<String, u64>,
    next_id: u64,
    calls: Vec<Call>,
}

impl Inner {
    fn user_id(&mut self, username: &str) -> u64 {
        let next = self.users.len() as u64 + 1;
        *self.users.entry(username.into()).or_insert(next)
    }

    fn id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }
}

pub struct FakeGitLab {
    server: FakeServer<Inner>,
}

impl FakeGitLab {
    /// Starts the fake; `token` is the one access token it accepts, belonging to `login`.
    pub async fn start(token: &str, login: &str) -> FakeGitLab {
        let mut inner = Inner {
            token: token.into(),
            login: login.into(),
            projects: BTreeMap::new(),
            users: BTreeMap::new(),
            next_id: 100,
            calls: Vec::new(),
        };
        inner.user_id(login);
        FakeGitLab {
            server: FakeServer::routed(inner).await,
        }
    }

    /// The instance's web address (the API is under `/api/v4`).
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    pub fn add_project(&self, path: &str) {
        let mut g = self.server.state();
        let id = g.projects.len() as u64 + 1;
        g.projects.entry(path.into()).or_insert_with(|| Project {
            id,
            ..Project::default()
        });
    }

    fn with<T>(&self, path: &str, f: impl FnOnce(&mut Project) -> T) -> T {
        self.add_project(path);
        let mut g = self.server.state();
        f(g.projects.get_mut(path).unwrap())
    }

    pub fn add_mr(&self, path: &str, mr: StoredPull) {
        self.with(path, |p| p.mrs.insert(mr.number, mr));
    }

    /// `level`: GitLab's access level (10 guest … 50 owner).
    pub fn set_access_level(&self, path: &str, user: &str, level: u32) {
        self.server.state().user_id(user);
        self.with(path, |p| p.members.insert(user.into(), level));
    }

    pub fn set_files(&self, path: &str, iid: u64, names: &[&str]) {
        let names = names.iter().map(|n| n.to_string()).collect();
        self.with(path, |p| p.files.insert(iid, names));
    }

    /// A note by someone else (a person's command); returns its id.
    pub fn add_note(&self, path: &str, iid: u64, username: &str, body: &str) -> u64 {
        let id = {
            let mut g = self.server.state();
            g.user_id(username);
            g.id()
        };
        self.with(path, |p| {
            p.notes.push(StoredComment {
                id,
                number: iid,
                body: body.into(),
                login: username.into(),
            })
        });
        id
    }

    pub fn notes(&self, path: &str, iid: u64) -> Vec<StoredComment> {
        self.with(path, |p| {
            p.notes
                .iter()
                .filter(|n| n.number == iid)
                .cloned()
                .collect()
        })
    }

    /// Accepted status posts in order: (sha, status).
    pub fn statuses(&self, path: &str) -> Vec<(String, Value)> {
        self.with(path, |p| p.statuses.clone())
    }

    /// Award emoji: (note id, name).
    pub fn awards(&self, path: &str) -> Vec<(u64, String)> {
        self.with(path, |p| {
            p.awards.iter().map(|(n, e, _)| (*n, e.clone())).collect()
        })
    }

    pub fn mrs(&self, path: &str) -> Vec<StoredPull> {
        self.with(path, |p| p.mrs.values().cloned().collect())
    }

    pub fn calls(&self) -> Vec<Call> {
        self.server.state().calls.clone()
    }
}

fn answer(status: StatusCode, v: Value) -> Response {
    (status, axum::Json(v)).into_response()
}

/// GitLab's error shape: `{"message": "404 Project Not Found"}` (a string, or an object of
/// field errors for validation failures).
fn message(status: StatusCode, m: impl Into<Value>) -> Response {
    answer(status, json!({ "message": m.into() }))
}

fn not_found(what: &str) -> Response {
    message(StatusCode::NOT_FOUND, format!("404 {what} Not Found"))
}

/// A listing page with GitLab's paging headers (`per_page` default 20, at most 100).
fn paged(req: &Incoming, items: Vec<Value>) -> Response {
    let (page, per_page) = page_params(&req.query, "per_page", 20, 100);
    let total = items.len();
    let (slice, pages) = page_window(items, page, per_page);
    let mut resp = answer(StatusCode::OK, Value::Array(slice));
    let next = if page < pages {
        (page + 1).to_string()
    } else {
        String::new()
    };
    let prev = if page > 1 {
        (page - 1).to_string()
    } else {
        String::new()
    };
    for (k, v) in [
        ("x-page", page.to_string()),
        ("x-per-page", per_page.to_string()),
        ("x-next-page", next),
        ("x-prev-page", prev),
        ("x-total", total.to_string()),
        ("x-total-pages", pages.to_string()),
    ] {
        resp.headers_mut()
            .insert(k, HeaderValue::from_str(&v).unwrap());
    }
    resp
}

fn user_json(id: u64, username: &str) -> Value {
    json!({"id": id, "username": username, "name": username, "state": "active",
           "bot": username.starts_with("project_") && username.contains("_bot"),
           "web_url": format!("https://gitlab.example/{username}")})
}

fn mr_json(
    base: &str,
    path: &str,
    project_id: u64,
    users: &BTreeMap<String, u64>,
    m: &StoredPull,
) -> Value {
    let author_id = users.get(&m.author).copied().unwrap_or(0);
    json!({
        "id": m.number + 10_000, "iid": m.number, "project_id": project_id, "title": m.title,
        "description": m.body, "state": m.state, "draft": false,
        "work_in_progress": false, "author": user_json(author_id, &m.author),
        "source_branch": m.head_ref, "target_branch": m.base_ref,
        "source_project_id": project_id, "target_project_id": project_id,
        "sha": m.head_sha, "merge_commit_sha": m.merge_commit_sha, "squash_commit_sha": null,
        "diff_refs": {"base_sha": m.base_sha, "head_sha": m.head_sha, "start_sha": m.base_sha},
        "web_url": format!("{base}/{path}/-/merge_requests/{}", m.number),
    })
}

fn note_json(users: &BTreeMap<String, u64>, n: &StoredComment) -> Value {
    let uid = users.get(&n.login).copied().unwrap_or(0);
    json!({"id": n.id, "type": null, "body": n.body, "author": user_json(uid, &n.login),
           "created_at": "2026-12-01T10:00:00.000Z", "updated_at": "2026-12-01T10:00:00.000Z",
           "system": false, "noteable_type": "MergeRequest", "noteable_iid": n.number,
           "resolvable": false})
}

impl Routes for Inner {
    const PREFIX: &'static str = "/api/v4";

    fn calls(&mut self) -> &mut Vec<Call> {
        &mut self.calls
    }

    fn route(&mut self, req: &Incoming) -> Response {
        if req.segments.is_empty() {
            return not_found("");
        }
        let bearer = req
            .header("authorization")
            .and_then(|a| a.strip_prefix("Bearer "));
        if req.header("private-token").or(bearer) != Some(self.token.as_str()) {
            return message(StatusCode::UNAUTHORIZED, "401 Unauthorized");
        }
        let seg = req.segs();
        let me = self.login.clone();
        match (req.method.as_str(), seg.as_slice()) {
            ("GET", ["user"]) => {
                let id = self.user_id(&me);
                answer(StatusCode::OK, user_json(id, &me))
            }
            ("GET", ["users"]) => {
                let want = req.query.get("username").cloned().unwrap_or_default();
                let found: Vec<Value> = self
                    .users
                    .iter()
                    .filter(|(u, _)| u.eq_ignore_ascii_case(&want))
                    .map(|(u, id)| user_json(*id, u))
                    .collect();
                answer(StatusCode::OK, Value::Array(found))
            }
            ("GET", ["projects"]) => {
                let all = self
                    .projects
                    .iter()
                    .map(|(p, proj)| json!({"id": proj.id, "path_with_namespace": p}))
                    .collect();
                paged(req, all)
            }
            (_, ["projects", id, tail @ ..]) => {
                let path = match id.parse::<u64>() {
                    Ok(n) => self
                        .projects
                        .iter()
                        .find(|(_, p)| p.id == n)
                        .map(|(k, _)| k.clone()),
                    Err(_) => self.projects.contains_key(*id).then(|| id.to_string()),
                };
                let Some(path) = path else {
                    return not_found("Project");
                };
                self.project_route(req, &path, tail)
            }
            _ => not_found(""),
        }
    }
}

impl Inner {
    fn project_route(&mut self, req: &Incoming, path: &str, tail: &[&str]) -> Response {
        let me = self.login.clone();
        let next_id = self.next_id + 1;
        let users = self.users.clone();
        let base = req.base.clone();
        let p = self.projects.get_mut(path).unwrap();
        let mr = |p: &Project, iid: &str| iid.parse::<u64>().ok().filter(|n| p.mrs.contains_key(n));
        let mut used_id = false;
        let resp = match (req.method.as_str(), tail) {
            ("GET", ["merge_requests"]) => {
                let state = req.query.get("state").map(String::as_str).unwrap_or("all");
                let source = req.query.get("source_branch");
                let all = p
                    .mrs
                    .values()
                    .filter(|m| state == "all" || m.state == state)
                    .filter(|m| source.is_none_or(|s| &m.head_ref == s))
                    .map(|m| mr_json(&base, path, p.id, &users, m))
                    .collect();
                paged(req, all)
            }
            ("POST", ["merge_requests"]) => {
                let (Some(source), Some(target), Some(title)) = (
                    req.field("source_branch"),
                    req.field("target_branch"),
                    req.field("title"),
                ) else {
                    return message(
                        StatusCode::BAD_REQUEST,
                        "400 Bad request - source_branch, target_branch, title are missing",
                    );
                };
                if let Some(open) = p
                    .mrs
                    .values()
                    .find(|m| m.state == "opened" && m.head_ref == source)
                {
                    return message(
                        StatusCode::CONFLICT,
                        json!([format!(
                            "Another open merge request already exists for this source branch: !{}",
                            open.number
                        )]),
                    );
                }
                let iid = p.mrs.keys().max().copied().unwrap_or(0) + 1;
                let m = StoredPull {
                    number: iid,
                    state: "opened".into(),
                    title,
                    body: req.field("description").unwrap_or_default(),
                    author: me.clone(),
                    head_ref: source,
                    base_ref: target,
                    ..StoredPull::default()
                };
                let v = mr_json(&base, path, p.id, &users, &m);
                p.mrs.insert(iid, m);
                answer(StatusCode::CREATED, v)
            }
            ("GET" | "PUT", ["merge_requests", iid]) => {
                let Some(n) = mr(p, iid) else {
                    return not_found("Merge Request");
                };
                let pid = p.id;
                let m = p.mrs.get_mut(&n).unwrap();
                if req.method == Method::PUT {
                    if let Some(t) = req.field("title") {
                        m.title = t;
                    }
                    if let Some(d) = req.field("description") {
                        m.body = d;
                    }
                    match req.field("state_event").as_deref() {
                        Some("close") => m.state = "closed".into(),
                        Some("reopen") => m.state = "opened".into(),
                        _ => {}
                    }
                }
                answer(StatusCode::OK, mr_json(&base, path, pid, &users, m))
            }
            ("GET", ["merge_requests", iid, "diffs"]) => {
                let Some(n) = mr(p, iid) else {
                    return not_found("Merge Request");
                };
                let all = p
                    .files
                    .get(&n)
                    .cloned()
                    .unwrap_or_default()
                    .iter()
                    .map(|f| {
                        json!({"old_path": f, "new_path": f, "a_mode": "100644", "b_mode": "100644",
                                    "new_file": false, "renamed_file": false, "deleted_file": false,
                                    "diff": "@@ -1 +1 @@\n-a\n+b\n"})
                    })
                    .collect();
                paged(req, all)
            }
            ("GET", ["repository", "commits", sha, "merge_requests"]) => {
                let all = p
                    .mrs
                    .values()
                    .filter(|m| m.head_sha == *sha || m.merge_commit_sha.as_deref() == Some(*sha))
                    .map(|m| mr_json(&base, path, p.id, &users, m))
                    .collect();
                paged(req, all)
            }
            ("GET", ["merge_requests", iid, "notes"]) => {
                let Some(n) = mr(p, iid) else {
                    return not_found("Merge Request");
                };
                let mut notes: Vec<&StoredComment> =
                    p.notes.iter().filter(|c| c.number == n).collect();
                // GitLab's default order is newest first; `sort=asc` asks for the oldest first.
                if req.query.get("sort").map(String::as_str) != Some("asc") {
                    notes.reverse();
                }
                let all = notes.into_iter().map(|c| note_json(&users, c)).collect();
                paged(req, all)
            }
            ("POST", ["merge_requests", iid, "notes"]) => {
                let Some(n) = mr(p, iid) else {
                    return not_found("Merge Request");
                };
                let Some(body) = req.field("body") else {
                    return message(StatusCode::BAD_REQUEST, "400 Bad request - body is missing");
                };
                if let Some(refusal) = too_long(&body) {
                    return refusal;
                }
                let note = StoredComment {
                    id: next_id,
                    number: n,
                    body,
                    login: me.clone(),
                };
                used_id = true;
                let v = note_json(&users, &note);
                p.notes.push(note);
                answer(StatusCode::CREATED, v)
            }
            ("PUT" | "DELETE", ["merge_requests", iid, "notes", id]) => {
                let Some(n) = mr(p, iid) else {
                    return not_found("Merge Request");
                };
                let id: u64 = id.parse().unwrap_or(0);
                let Some(i) = p.notes.iter().position(|c| c.id == id && c.number == n) else {
                    return not_found("Note");
                };
                if p.notes[i].login != me {
                    return message(StatusCode::FORBIDDEN, "403 Forbidden");
                }
                if req.method == Method::DELETE {
                    p.notes.remove(i);
                    return StatusCode::NO_CONTENT.into_response();
                }
                let Some(body) = req.field("body") else {
                    return message(StatusCode::BAD_REQUEST, "400 Bad request - body is missing");
                };
                if let Some(refusal) = too_long(&body) {
                    return refusal;
                }
                p.notes[i].body = body;
                answer(StatusCode::OK, note_json(&users, &p.notes[i]))
            }
            ("GET" | "POST", ["merge_requests", iid, "notes", id, "award_emoji"]) => {
                let id: u64 = id.parse().unwrap_or(0);
                let known =
                    mr(p, iid).is_some_and(|n| p.notes.iter().any(|c| c.id == id && c.number == n));
                if !known {
                    return not_found("Note");
                }
                if req.method == Method::GET {
                    let all = p
                        .awards
                        .iter()
                        .filter(|(n, _, _)| *n == id)
                        .map(|(_, name, who)| json!({"name": name, "user": user_json(0, who), "awardable_type": "Note"}))
                        .collect();
                    return paged(req, all);
                }
                let name = req.field("name").unwrap_or_default();
                if name.is_empty() {
                    return message(StatusCode::BAD_REQUEST, "400 Bad request - name is missing");
                }
                if p.awards
                    .iter()
                    .any(|(n, e, w)| *n == id && *e == name && *w == me)
                {
                    return message(
                        StatusCode::NOT_FOUND,
                        "404 Award Emoji Name has already been taken Not Found",
                    );
                }
                p.awards.push((id, name.clone(), me.clone()));
                answer(
                    StatusCode::CREATED,
                    json!({"id": next_id, "name": name, "user": user_json(0, &me), "awardable_id": id, "awardable_type": "Note"}),
                )
            }
            ("POST", ["statuses", sha]) => {
                let state = req.field("state").unwrap_or_default();
                if ![
                    "pending", "running", "success", "failed", "canceled", "skipped",
                ]
                .contains(&state.as_str())
                {
                    return message(
                        StatusCode::BAD_REQUEST,
                        "400 Bad request - state does not have a valid value",
                    );
                }
                let name = req
                    .field("name")
                    .or(req.field("context"))
                    .unwrap_or_else(|| "default".into());
                // The status GitLab moves is the unfinished one of that name on that commit; a
                // finished one is followed by a new status.
                let live = p
                    .statuses
                    .iter()
                    .rev()
                    .find(|(s, v)| s == sha && v["name"] == name.as_str());
                if let Some((_, v)) = live
                    && matches!(v["status"].as_str(), Some("pending" | "running"))
                    && v["status"] == state.as_str()
                {
                    return message(
                        StatusCode::BAD_REQUEST,
                        format!(
                            "Cannot transition status via :{} from :{state}",
                            if state == "pending" { "enqueue" } else { "run" }
                        ),
                    );
                }
                let description: String = req.field("description").unwrap_or_default();
                if description.chars().count() > 255 {
                    return message(
                        StatusCode::BAD_REQUEST,
                        json!({"description": ["is too long (maximum is 255 characters)"]}),
                    );
                }
                used_id = true;
                let v = json!({
                    "id": next_id, "sha": sha, "status": state, "name": name,
                    "description": description,
                    "target_url": req.field("target_url"),
                    "author": user_json(1, &me), "allow_failure": false,
                });
                p.statuses.push((sha.to_string(), v.clone()));
                answer(StatusCode::CREATED, v)
            }
            ("GET", ["members", "all", uid]) => {
                let uid: u64 = uid.parse().unwrap_or(0);
                let Some((name, _)) = users.iter().find(|(_, id)| **id == uid) else {
                    return not_found("");
                };
                match p.members.get(name) {
                    Some(level) => answer(
                        StatusCode::OK,
                        json!({"id": uid, "username": name, "name": name, "state": "active",
                               "access_level": level, "expires_at": null}),
                    ),
                    None => not_found(""),
                }
            }
            _ => not_found(""),
        };
        if used_id {
            self.next_id = next_id;
        }
        resp
    }
}

/// GitLab's refusal of a note over its limit.
fn too_long(body: &str) -> Option<Response> {
    (body.chars().count() > MAX_NOTE_CHARS).then(|| {
        message(
            StatusCode::BAD_REQUEST,
            json!({"note": [format!("is too long (maximum is {MAX_NOTE_CHARS} characters)")]}),
        )
    })
}
