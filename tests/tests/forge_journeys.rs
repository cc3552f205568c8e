//! The PR, commands and promotion journeys, written once and run against each self-hosted
//! forge's fake (Gitea and GitLab): `capstan serve --forge <kind> --forge-url <fake>` building
//! its own client from the settings, that forge's authenticated webhooks over HTTP at its own
//! route, a real git repository fetched and pushed through `file://`. The assertions are the
//! GitHub journeys', in each forge's terms: the check is a commit status, the report one sticky
//! comment (a merge request note on GitLab) edited on each push, a deny fails the check, nothing
//! is posted for a superseded head; commands are authorized by the forge's permission levels and
//! answered with one reply and a 👀; a merge opens exactly one promotion pull request. A
//! [`ForgeFake`] is what differs: how to seed the fake, read it back, and word a delivery.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use capstan_server::config::{Config, ConfigArgs};
use capstan_tests::fake_forge::{StoredComment, StoredPull};
use capstan_tests::fake_gitea::FakeGitea;
use capstan_tests::fake_gitlab::FakeGitLab;
use capstan_tests::pr_harness::{
    fanout_tree, push_branch, serve_on_ephemeral_port, settings_configmap, wait_healthy,
};
use capstan_tests::webhook::{SECRET, forge_request};
use capstan_worker::forge::ForgeKind;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const REPO: &str = "acme/gitops";
const TOKEN: &str = "forge-test-token-0123456789";
const LOGIN: &str = "capstan";
const WAIT: Duration = Duration::from_secs(120);
/// The comment time every delivered command carries, so its reply's marker is known.
const WRITTEN: &str = "2026-12-01T11:00:00Z";

/// A pull (merge) request as the journeys set it up and read it back: `state` is `open`,
/// `closed` or `merged` here, each fake storing it in its forge's words.
type Pull = StoredPull;

/// One comment on a pull request's conversation.
type Comment = StoredComment;

/// A commit status, its state in the journeys' words: `pending`, `success`, `failure`, or
/// `error` for a run that ended without a verdict.
#[derive(Clone, Debug)]
struct Status {
    state: &'static str,
    context: String,
    target_url: String,
}

/// The roles the journeys grant, each forge spelling them its own way.
#[derive(Clone, Copy, Debug)]
enum Role {
    Write,
    Admin,
}

/// A pull request event the journeys deliver.
#[derive(Clone, Copy, Debug)]
enum PullEvent {
    Opened,
    Pushed,
    Merged,
}

/// What a journey needs of one forge's fake.
trait ForgeFake: Sized + Send + Sync + 'static {
    const KIND: ForgeKind;
    async fn start() -> Self;
    fn base_url(&self) -> String;
    fn grant(&self, user: &str, role: Role);
    /// Adds or replaces a pull request.
    fn put_pull(&self, pull: &Pull);
    fn pulls(&self) -> Vec<Pull>;
    /// A person's comment, stored on the fake; its id.
    fn add_comment(&self, number: u64, login: &str, text: &str) -> u64;
    fn comments(&self, number: u64) -> Vec<Comment>;
    /// Statuses of `sha`, oldest first.
    fn statuses(&self, sha: &str) -> Vec<Status>;
    /// (comment id, reaction) in GitHub's names.
    fn reactions(&self) -> Vec<(u64, String)>;
    /// How many times comment `id` was edited through the API.
    fn edits_of(&self, number: u64, id: u64) -> usize;
    /// Calls the fake refused (`METHOD path status`).
    fn refused(&self) -> Vec<String>;
    /// The event name and body the forge sends for `pull`.
    fn pull_event(&self, event: PullEvent, pull: &Pull) -> (&'static str, Value);
    fn comment_event(&self, number: u64, id: u64, login: &str, text: &str)
    -> (&'static str, Value);
    fn push_event(&self, before: &str, after: &str) -> (&'static str, Value);
}

struct GiteaWorld(FakeGitea);

fn gitea_user(login: &str) -> Value {
    json!({"id": 7, "login": login, "username": login})
}

fn gitea_repository() -> Value {
    json!({"id": 3, "full_name": REPO, "default_branch": "main"})
}

impl ForgeFake for GiteaWorld {
    const KIND: ForgeKind = ForgeKind::Gitea;

    async fn start() -> Self {
        let fake = FakeGitea::start(TOKEN, LOGIN).await;
        fake.add_repo(REPO);
        GiteaWorld(fake)
    }

    fn base_url(&self) -> String {
        self.0.base_url()
    }

    fn grant(&self, user: &str, role: Role) {
        let level = match role {
            Role::Write => "write",
            Role::Admin => "admin",
        };
        self.0.set_permission(REPO, user, level);
    }

    fn put_pull(&self, p: &Pull) {
        let pull = Pull {
            state: if p.state == "open" { "open" } else { "closed" }.into(),
            merged: p.state == "merged",
            ..p.clone()
        };
        self.0.add_pull(REPO, pull);
    }

    fn pulls(&self) -> Vec<Pull> {
        let mut all = self.0.pulls(REPO);
        for p in &mut all {
            if p.merged {
                p.state = "merged".into();
            }
        }
        all
    }

    fn add_comment(&self, number: u64, login: &str, text: &str) -> u64 {
        self.0.add_comment(REPO, number, login, text)
    }

    fn comments(&self, number: u64) -> Vec<Comment> {
        self.0.comments(REPO, number)
    }

    fn statuses(&self, sha: &str) -> Vec<Status> {
        // Gitea's states: pending, success, failure, error (and warning, unused).
        statuses_of(self.0.statuses(REPO), sha, "state", "context", "failure")
    }

    fn reactions(&self) -> Vec<(u64, String)> {
        self.0.reactions(REPO)
    }

    fn edits_of(&self, _number: u64, id: u64) -> usize {
        let path = format!("/repos/{REPO}/issues/comments/{id}");
        self.0
            .calls()
            .iter()
            .filter(|c| c.method == "PATCH" && c.path == path)
            .count()
    }

    fn refused(&self) -> Vec<String> {
        refused(self.0.calls())
    }

    fn pull_event(&self, event: PullEvent, p: &Pull) -> (&'static str, Value) {
        let action = match event {
            PullEvent::Opened => "opened",
            // Gitea's word for a push to the head branch.
            PullEvent::Pushed => "synchronized",
            PullEvent::Merged => "closed",
        };
        let merged = matches!(event, PullEvent::Merged);
        let author = gitea_user(&p.author);
        let body = json!({
            "action": action,
            "number": p.number,
            "pull_request": {
                "id": p.number + 10_000, "number": p.number,
                "state": if merged { "closed" } else { "open" }, "user": author,
                "head": {"label": p.head_ref, "ref": p.head_ref, "sha": p.head_sha},
                "base": {"label": p.base_ref, "ref": p.base_ref, "sha": p.base_sha},
                "merged": merged, "merge_commit_sha": p.merge_commit_sha,
                "merged_by": if merged { author.clone() } else { Value::Null },
            },
            "repository": gitea_repository(),
            "sender": author,
        });
        ("pull_request", body)
    }

    fn comment_event(
        &self,
        number: u64,
        id: u64,
        login: &str,
        text: &str,
    ) -> (&'static str, Value) {
        let who = gitea_user(login);
        let body = json!({
            "action": "created",
            "issue": {"id": 77, "number": number, "user": {"login": "alice"},
                      "pull_request": {"merged": false, "merged_at": null}},
            "comment": {"id": id, "body": text, "user": who,
                        "created_at": WRITTEN, "updated_at": WRITTEN},
            "repository": gitea_repository(),
            "sender": who,
            "is_pull": true,
        });
        ("issue_comment", body)
    }

    fn push_event(&self, before: &str, after: &str) -> (&'static str, Value) {
        let alice = gitea_user("alice");
        let body = json!({"ref": "refs/heads/main", "before": before, "after": after,
                          "commits": [], "repository": gitea_repository(),
                          "pusher": alice, "sender": alice});
        ("push", body)
    }
}

struct GitLabWorld(FakeGitLab);

/// GitLab's user ids for the people of the journeys (the fake hands out its own for the API;
/// hooks only need them consistent per person).
fn gitlab_user(username: &str) -> Value {
    let id = username.bytes().map(u64::from).sum::<u64>();
    json!({"id": id, "name": username, "username": username})
}

fn gitlab_project() -> Value {
    json!({"id": 1, "name": "gitops", "path_with_namespace": REPO, "default_branch": "main",
           "web_url": format!("https://gitlab.example/{REPO}")})
}

impl ForgeFake for GitLabWorld {
    const KIND: ForgeKind = ForgeKind::GitLab;

    async fn start() -> Self {
        let fake = FakeGitLab::start(TOKEN, LOGIN).await;
        fake.add_project(REPO);
        GitLabWorld(fake)
    }

    fn base_url(&self) -> String {
        self.0.base_url()
    }

    /// Developer (30) writes; Owner (50) is admin.
    fn grant(&self, user: &str, role: Role) {
        let level = match role {
            Role::Write => 30,
            Role::Admin => 50,
        };
        self.0.set_access_level(REPO, user, level);
    }

    fn put_pull(&self, p: &Pull) {
        let state = if p.state == "open" {
            "opened"
        } else {
            p.state.as_str()
        };
        let mr = Pull {
            state: state.into(),
            ..p.clone()
        };
        self.0.add_mr(REPO, mr);
    }

    fn pulls(&self) -> Vec<Pull> {
        let mut all = self.0.mrs(REPO);
        for m in &mut all {
            if m.state == "opened" {
                m.state = "open".into();
            }
        }
        all
    }

    fn add_comment(&self, number: u64, login: &str, text: &str) -> u64 {
        self.0.add_note(REPO, number, login, text)
    }

    fn comments(&self, number: u64) -> Vec<Comment> {
        self.0.notes(REPO, number)
    }

    fn statuses(&self, sha: &str) -> Vec<Status> {
        // GitLab's states: pending, running, success, failed, canceled (and skipped, unused).
        statuses_of(self.0.statuses(REPO), sha, "status", "name", "failed")
    }

    fn reactions(&self) -> Vec<(u64, String)> {
        self.0.awards(REPO)
    }

    fn edits_of(&self, number: u64, id: u64) -> usize {
        let path = format!("/projects/acme%2Fgitops/merge_requests/{number}/notes/{id}");
        self.0
            .calls()
            .iter()
            .filter(|c| c.method == "PUT" && c.path == path)
            .count()
    }

    fn refused(&self) -> Vec<String> {
        refused(self.0.calls())
    }

    fn pull_event(&self, event: PullEvent, p: &Pull) -> (&'static str, Value) {
        let mut attrs = json!({
            "id": p.number + 10_000, "iid": p.number, "title": p.title,
            "state": if matches!(event, PullEvent::Merged) { "merged" } else { "opened" },
            "action": match event {
                PullEvent::Opened => "open",
                PullEvent::Pushed => "update",
                PullEvent::Merged => "merge",
            },
            "source_branch": p.head_ref, "target_branch": p.base_ref,
            "last_commit": {"id": p.head_sha, "message": "change"},
            "merge_commit_sha": p.merge_commit_sha,
        });
        if matches!(event, PullEvent::Pushed) {
            // An update with new commits names the head it replaced.
            attrs["oldrev"] = json!(p.base_sha);
        }
        let body = json!({
            "object_kind": "merge_request", "event_type": "merge_request",
            "user": gitlab_user(&p.author), "project": gitlab_project(),
            "object_attributes": attrs,
        });
        ("Merge Request Hook", body)
    }

    fn comment_event(
        &self,
        number: u64,
        id: u64,
        login: &str,
        text: &str,
    ) -> (&'static str, Value) {
        let who = gitlab_user(login);
        let body = json!({
            "object_kind": "note", "event_type": "note",
            "user": who, "project": gitlab_project(),
            "object_attributes": {"id": id, "note": text, "noteable_type": "MergeRequest",
                                  "author_id": who["id"], "action": "create",
                                  "created_at": WRITTEN, "updated_at": WRITTEN},
            "merge_request": {"id": number + 10_000, "iid": number, "title": "t",
                              "source_branch": "feature", "target_branch": "main"},
        });
        ("Note Hook", body)
    }

    fn push_event(&self, before: &str, after: &str) -> (&'static str, Value) {
        let body = json!({"object_kind": "push", "event_name": "push", "ref": "refs/heads/main",
                          "before": before, "after": after, "user_username": "alice",
                          "project": gitlab_project(), "commits": []});
        ("Push Hook", body)
    }
}

/// `sha`'s statuses among a fake's `(sha, status)` record, read by the forge's field names for
/// the state and the name; `failure` is the forge's word for a failed check.
fn statuses_of(
    all: Vec<(String, Value)>,
    sha: &str,
    state_key: &str,
    name_key: &str,
    failure: &str,
) -> Vec<Status> {
    all.into_iter()
        .filter(|(s, _)| s == sha)
        .map(|(_, v)| Status {
            state: match v[state_key].as_str() {
                Some("pending" | "running") => "pending",
                Some("success") => "success",
                Some(f) if f == failure => "failure",
                _ => "error",
            },
            context: v[name_key].as_str().unwrap_or_default().into(),
            target_url: v["target_url"].as_str().unwrap_or_default().into(),
        })
        .collect()
}

fn refused(calls: Vec<capstan_tests::fake_forge::Call>) -> Vec<String> {
    calls
        .into_iter()
        .filter(|c| c.status >= 400)
        .map(|c| format!("{} {} {}", c.method, c.path, c.status))
        .collect()
}

/// The service under test, on one forge's fake.
struct World<F: ForgeFake> {
    dir: tempfile::TempDir,
    origin: RepoBuilder,
    fake: F,
    base_url: String,
    http: reqwest::Client,
    stop: CancellationToken,
    service: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    delivery: std::sync::atomic::AtomicU64,
}

impl<F: ForgeFake> World<F> {
    async fn start() -> World<F> {
        Self::start_with(&fanout_tree(2)).await
    }

    async fn start_with(files: &[(String, String)]) -> World<F> {
        capstan_worker::forge::github::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let origin = RepoBuilder::init(dir.path().join("origin/acme/gitops")).unwrap();
        let changes: Vec<Change<'_>> = files
            .iter()
            .map(|(p, t)| Change::Write(p, t.as_bytes()))
            .collect();
        origin.commit("initial tree", &changes).unwrap();
        let fake = F::start().await;
        fake.grant("alice", Role::Write);

        let args = ConfigArgs {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().join("data").display().to_string()),
            git_url_template: Some(format!(
                "file://{}/origin/{{owner}}/{{repo}}",
                dir.path().display()
            )),
            poll_interval_ms: Some("50".into()),
            public_url: Some("https://capstan.example".into()),
            forge: Some(F::KIND.as_str().into()),
            forge_url: Some(fake.base_url()),
            log: Some(std::env::var("CAPSTAN_TEST_LOG").unwrap_or_else(|_| "warn".into())),
            ..ConfigArgs::default()
        };
        let env = |k: &str| match k {
            "CAPSTAN_WEBHOOK_SECRET" => Some(SECRET.to_string()),
            "CAPSTAN_FORGE_TOKEN" => Some(TOKEN.to_string()),
            _ => None,
        };
        let cfg = Config::load_with(&args, &env).unwrap();
        if std::env::var("CAPSTAN_TEST_LOG").is_ok() {
            capstan_server::serve::init_tracing(&cfg);
        }
        let stop = CancellationToken::new();
        // No client handed in: the service builds its forge client from the settings, as in
        // production.
        let parts = capstan_server::serve::Parts {
            jsonnet_evaluator: Some(capstan_tests::capstan_binary()),
            shutdown: Some(stop.clone()),
            ..Default::default()
        };
        let (port, service) = serve_on_ephemeral_port(cfg, parts).await;
        let base_url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_healthy(&http, &base_url).await;
        World {
            dir,
            origin,
            fake,
            base_url,
            http,
            stop,
            service: Some(service),
            delivery: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn git(&self) -> git2::Repository {
        git2::Repository::open(self.dir.path().join("origin/acme/gitops")).unwrap()
    }

    fn tip(&self, branch: &str) -> String {
        self.git()
            .refname_to_id(&format!("refs/heads/{branch}"))
            .unwrap()
            .to_string()
    }

    /// Commits `changes` on `branch` (from `main`), leaving `main` where it was.
    fn push(&self, branch: &str, changes: &[Change<'_>]) -> String {
        let dir = self.dir.path().join("origin/acme/gitops");
        push_branch(&self.origin, &dir, branch, changes).to_string()
    }

    fn push_level(&self, branch: &str, level: &str) -> String {
        let cm = settings_configmap(level);
        self.push(
            branch,
            &[Change::Write("shared/base/settings.yaml", cm.as_bytes())],
        )
    }

    /// Pull request `number` of `branch` into main, open at the branch's tip.
    fn open_pull(&self, number: u64, branch: &str) -> Pull {
        let pull = Pull {
            number,
            state: "open".into(),
            title: format!("PR {number}"),
            author: "alice".into(),
            head_ref: branch.into(),
            head_sha: self.tip(branch),
            base_ref: "main".into(),
            base_sha: self.tip("main"),
            ..Pull::default()
        };
        self.fake.put_pull(&pull);
        pull
    }

    /// POSTs a delivery as the forge sends it, to its route.
    async fn deliver(&self, (event, body): (&str, Value)) {
        let n = self
            .delivery
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let bytes = serde_json::to_vec(&body).unwrap();
        let id = format!("d-{n}-{}", uuid::Uuid::new_v4());
        let req = forge_request(F::KIND, event, &id, &bytes, SECRET);
        let mut post = self
            .http
            .post(format!("{}{}", self.base_url, req.uri()))
            .body(bytes);
        for (name, value) in req.headers() {
            post = post.header(name, value);
        }
        let resp = post.send().await.unwrap();
        assert!(
            resp.status().is_success(),
            "webhook refused: {}",
            resp.status()
        );
    }

    /// The branch's tip as a pull request, and the event of it arriving.
    async fn pull_event(&self, event: PullEvent, number: u64, branch: &str) -> String {
        let pull = self.open_pull(number, branch);
        self.deliver(self.fake.pull_event(event, &pull)).await;
        pull.head_sha
    }

    fn report_comments(&self, number: u64) -> Vec<Comment> {
        let mut out: Vec<Comment> = self
            .fake
            .comments(number)
            .into_iter()
            .filter(|c| c.body.starts_with("<!-- capstan:report"))
            .collect();
        out.sort_by_key(|c| c.id);
        out
    }

    /// The final (not pending) status of `sha`, once there is one.
    async fn final_status(&self, sha: &str) -> Status {
        let start = Instant::now();
        loop {
            if let Some(s) = self
                .fake
                .statuses(sha)
                .into_iter()
                .rfind(|s| s.state != "pending")
            {
                return s;
            }
            assert!(start.elapsed() < WAIT, "no final status for {sha}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_idle(&self) {
        let url = format!("sqlite://{}/data/capstan.db", self.dir.path().display());
        let q = capstan_worker::queue::open(&url).await.unwrap();
        let start = Instant::now();
        loop {
            let busy = q.depth().await.unwrap().iter().any(|(_, state, n)| {
                matches!(
                    state,
                    capstan_worker::queue::JobState::Queued
                        | capstan_worker::queue::JobState::Running
                ) && *n > 0
            });
            if !busy {
                return;
            }
            assert!(start.elapsed() < WAIT, "queue never drained");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(s) = self.service.take() {
            s.await.unwrap().unwrap();
        }
    }

    /// A person's comment on PR `number`, stored on the fake and delivered as the forge sends it.
    async fn comment_event(&self, number: u64, login: &str, text: &str) -> u64 {
        let id = self.fake.add_comment(number, login, text);
        self.deliver(self.fake.comment_event(number, id, login, text))
            .await;
        id
    }

    /// Capstan's reply to comment `id`, once it is there.
    async fn reply_to(&self, number: u64, id: u64) -> String {
        let marker = format!("<!-- capstan:command-reply {id}@{WRITTEN} -->");
        let start = Instant::now();
        loop {
            if let Some(c) = self
                .fake
                .comments(number)
                .into_iter()
                .find(|c| c.body.starts_with(&marker))
            {
                assert_eq!(c.login, LOGIN);
                return c.body;
            }
            assert!(start.elapsed() < WAIT, "no reply to comment {id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether the reply's line for `command` says `outcome`.
fn has_line(reply: &str, command: &str, outcome: &str) -> bool {
    reply
        .lines()
        .any(|l| l.contains(command) && l.contains(outcome))
}

async fn pr_journey<F: ForgeFake>() {
    let w = World::<F>::start().await;

    // 1. Opened: a pending status, one comment with the per-app diff, then success.
    w.push_level("feature", "debug");
    let head1 = w.pull_event(PullEvent::Opened, 1, "feature").await;
    let status = w.final_status(&head1).await;
    assert_eq!(status.state, "success", "{status:#?}");
    assert_eq!(status.context, "capstan");
    assert!(
        status
            .target_url
            .starts_with("https://capstan.example/runs/"),
        "{status:#?}"
    );
    let states: Vec<&str> = w.fake.statuses(&head1).iter().map(|s| s.state).collect();
    assert_eq!(states.first(), Some(&"pending"), "{states:?}");
    let comments = w.report_comments(1);
    assert_eq!(comments.len(), 1);
    let first = comments[0].clone();
    assert_eq!(first.login, LOGIN);
    assert!(first.body.contains("app-000") && first.body.contains("app-001"));

    // 2. A new push: the same comment is edited.
    w.push_level("feature", "warn");
    let head2 = w.pull_event(PullEvent::Pushed, 1, "feature").await;
    assert_eq!(w.final_status(&head2).await.state, "success");
    let comments = w.report_comments(1);
    assert_eq!(comments.len(), 1, "never a second sticky comment");
    assert_eq!(comments[0].id, first.id);
    assert!(
        comments[0].body.contains("LOG_LEVEL: warn"),
        "{}",
        comments[0].body
    );
    assert_eq!(w.fake.edits_of(1, first.id), 1);

    // 3. Two pushes in a row: nothing is posted for the older head.
    let head3 = w.push_level("feature", "error");
    let head4 = w.push_level("feature", "trace");
    let older = Pull {
        head_sha: head3.clone(),
        ..w.open_pull(1, "feature")
    };
    w.deliver(w.fake.pull_event(PullEvent::Pushed, &older))
        .await;
    w.pull_event(PullEvent::Pushed, 1, "feature").await;
    assert_eq!(w.final_status(&head4).await.state, "success");
    w.wait_idle().await;
    let old = w.fake.statuses(&head3);
    assert!(
        old.iter()
            .all(|s| s.state != "success" && s.state != "failure"),
        "a verdict was posted for the old head: {old:?}"
    );
    let comments = w.report_comments(1);
    assert_eq!(comments.len(), 1);
    assert!(comments[0].body.contains("LOG_LEVEL: trace"));
    assert!(!comments[0].body.contains(&head3[..7]));

    // 4. A deny: the status fails.
    let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  selector:\n    app: web\n  ports:\n    - port: 80\n";
    let kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: app-000\nresources:\n  - ../../shared/base\n  - service.yaml\n";
    w.push(
        "feature",
        &[
            Change::Write("apps/app-000/service.yaml", service.as_bytes()),
            Change::Write("apps/app-000/kustomization.yaml", kustomization.as_bytes()),
        ],
    );
    let head5 = w.pull_event(PullEvent::Pushed, 1, "feature").await;
    let denied = w.final_status(&head5).await;
    assert_eq!(denied.state, "failure", "{denied:#?}");
    let comments = w.report_comments(1);
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].body.contains("service-exposure"),
        "{}",
        comments[0].body
    );
    // Every call carried the token and none was refused.
    assert!(w.fake.refused().is_empty(), "{:#?}", w.fake.refused());
    w.stop().await;
}

async fn commands_journey<F: ForgeFake>() {
    let w = World::<F>::start().await;
    // Write cannot hold (Capstan's default needs maintain), admin can.
    w.fake.grant("bob", Role::Write);
    w.fake.grant("carol", Role::Admin);
    w.push_level("feature", "debug");
    let head = w.pull_event(PullEvent::Opened, 1, "feature").await;
    assert_eq!(w.final_status(&head).await.state, "success");
    w.wait_idle().await;

    let by_writer = w
        .comment_event(1, "bob", "/capstan hold\n/capstan validate\n")
        .await;
    let reply = w.reply_to(1, by_writer).await;
    assert!(
        has_line(
            &reply,
            "/capstan hold",
            "refused: &#96;hold&#96; needs maintain permission on this repository; you have write"
        ),
        "{reply}"
    );
    assert!(has_line(&reply, "/capstan validate", "done:"), "{reply}");

    let by_admin = w.comment_event(1, "carol", "/capstan hold\n").await;
    let reply = w.reply_to(1, by_admin).await;
    assert!(
        has_line(&reply, "/capstan hold", "done: placed a hold"),
        "{reply}"
    );
    w.wait_idle().await;
    // The hold fails the head's check until it is lifted.
    let held = w.final_status(&head).await;
    assert_eq!(held.state, "failure", "{:#?}", w.fake.statuses(&head));

    // A stranger (read on a public Gitea repository, no member on GitLab) is refused;
    // Capstan's own comments run nothing.
    let by_reader = w.comment_event(1, "mallory", "/capstan unhold\n").await;
    let reply = w.reply_to(1, by_reader).await;
    assert!(has_line(&reply, "/capstan unhold", "refused:"), "{reply}");
    let reactions = w.fake.reactions();
    for id in [by_writer, by_admin, by_reader] {
        assert!(
            reactions.iter().any(|(c, r)| *c == id && r == "eyes"),
            "{reactions:?}"
        );
    }
    w.wait_idle().await;
    let replies = w
        .fake
        .comments(1)
        .into_iter()
        .filter(|c| c.body.starts_with("<!-- capstan:command-reply"))
        .count();
    assert_eq!(
        replies, 3,
        "one reply per command comment, none to Capstan's own"
    );
    w.stop().await;
}

const STAGING: &str = "apps/podinfo/overlays/staging/kustomization.yaml";
const PRODUCTION: &str = "apps/podinfo/overlays/production/kustomization.yaml";

fn overlay(env: &str, tag: &str) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: podinfo-{env}\n\
         images:\n  - name: ghcr.io/stefanprodan/podinfo\n    newTag: {tag}\n"
    )
}

/// A tree with one promotion rule: podinfo's image from staging to production, by pull request.
fn promotion_tree() -> Vec<(String, String)> {
    let settings = "version: 1
repoURL: https://forge.example/acme/gitops
defaultBranch: main
environments:
  - name: staging
    overlay: overlays/staging
  - name: production
    overlay: overlays/production
promotion:
  mode: pull-request
  trigger: merge
  rules:
    - name: podinfo-images
      app: podinfo
      from:
        environment: staging
        path: apps/podinfo/overlays/staging
      to:
        environment: production
        path: apps/podinfo/overlays/production
      copy:
        - images
";
    vec![
        (".capstan.yaml".into(), settings.into()),
        (STAGING.into(), overlay("staging", "6.7.0")),
        (PRODUCTION.into(), overlay("production", "6.7.0")),
    ]
}

async fn promotion_journey<F: ForgeFake>() {
    let w = World::<F>::start_with(&promotion_tree()).await;
    // Capstan pushes its promotion branch there, and git pushes only to a bare repository; the
    // tests build commits without a working tree, so the origin can say it is one.
    w.git()
        .config()
        .unwrap()
        .set_bool("core.bare", true)
        .unwrap();
    let before = w.tip("main");
    // A person's pull request bumped staging and was merged: main moves to the merge.
    let after = w
        .origin
        .commit(
            "Merge pull request 'bump podinfo' (#2)",
            &[Change::Write(
                STAGING,
                overlay("staging", "6.9.2").as_bytes(),
            )],
        )
        .unwrap()
        .to_string();
    let merged = Pull {
        number: 2,
        state: "merged".into(),
        title: "Bump podinfo".into(),
        author: "alice".into(),
        head_ref: "bump".into(),
        head_sha: after.clone(),
        base_ref: "main".into(),
        base_sha: before.clone(),
        merge_commit_sha: Some(after.clone()),
        ..Pull::default()
    };
    w.fake.put_pull(&merged);
    // The push and the merge both arrive (both forges send both), the push twice.
    for _ in 0..2 {
        w.deliver(w.fake.push_event(&before, &after)).await;
    }
    w.deliver(w.fake.pull_event(PullEvent::Merged, &merged))
        .await;
    w.wait_idle().await;

    let promos: Vec<Pull> = w
        .fake
        .pulls()
        .into_iter()
        .filter(|p| p.head_ref.starts_with("capstan/promote/"))
        .collect();
    assert_eq!(
        promos.len(),
        1,
        "exactly one promotion pull request: {promos:#?}"
    );
    let promo = &promos[0];
    assert_eq!(
        (promo.state.as_str(), promo.base_ref.as_str()),
        ("open", "main")
    );
    assert_eq!(promo.author, LOGIN);
    assert!(promo.body.contains("Source: #2"), "{}", promo.body);
    assert!(
        promo.body.contains("newTag 6.7.0 → 6.9.2"),
        "{}",
        promo.body
    );
    // The branch changes exactly the production tag, on top of the merge.
    let git = w.git();
    let tip = git
        .find_reference(&format!("refs/heads/{}", promo.head_ref))
        .unwrap()
        .peel_to_commit()
        .unwrap();
    assert_eq!(tip.parent_id(0).unwrap().to_string(), after);
    let file = |path: &str| {
        let entry = tip
            .tree()
            .unwrap()
            .get_path(std::path::Path::new(path))
            .unwrap();
        String::from_utf8(git.find_blob(entry.id()).unwrap().content().to_vec()).unwrap()
    };
    assert_eq!(file(PRODUCTION), overlay("production", "6.9.2"));
    assert_eq!(file(STAGING), overlay("staging", "6.9.2"));
    w.stop().await;
}

macro_rules! journeys {
    ($($forge:ident: $world:ty),* $(,)?) => {$(
        mod $forge {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn pr_journey_status_sticky_comment_supersede_and_deny() {
                pr_journey::<$world>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn commands_journey_permissions_replies_reactions_and_hold() {
                commands_journey::<$world>().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn promotion_journey_one_pull_request_with_exactly_that_tag() {
                promotion_journey::<$world>().await;
            }
        }
    )*};
}

journeys!(gitea: GiteaWorld, gitlab: GitLabWorld);

/// A ConfigMap of `keys` entries of about 100 bytes each, every value carrying `tag`.
fn big_configmap(keys: usize, tag: &str) -> String {
    let mut s = String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bulk\ndata:\n");
    for i in 0..keys {
        s.push_str(&format!("  KEY_{i:05}: {tag}-{}\n", "v".repeat(80)));
    }
    s
}

/// GitLab takes notes of up to 1,000,000 characters: a report larger than that becomes
/// several notes, each under the limit and each far above GitHub's 65,536, and the next push
/// edits the same notes in place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_gitlab_report_is_split_at_gitlabs_note_limit_and_edited_in_place() {
    use capstan_tests::fake_gitlab::MAX_NOTE_CHARS;
    // Three apps share a base; a bulk ConfigMap of ~450 KB added to it shows in each app's
    // diff, ~1.35 MB in all.
    let mut tree = fanout_tree(3);
    tree[1].1 = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - settings.yaml\n  - bulk.yaml\n".into();
    tree.push(("shared/base/bulk.yaml".into(), big_configmap(1, "a")));
    let w = World::<GitLabWorld>::start_with(&tree).await;

    let bulk = big_configmap(4500, "one");
    w.push(
        "feature",
        &[Change::Write("shared/base/bulk.yaml", bulk.as_bytes())],
    );
    let head1 = w.pull_event(PullEvent::Opened, 1, "feature").await;
    assert_eq!(w.final_status(&head1).await.state, "success");
    let parts = w.report_comments(1);
    assert!(parts.len() >= 2, "{} part(s)", parts.len());
    for p in &parts {
        let chars = p.body.chars().count();
        assert!(chars <= MAX_NOTE_CHARS, "a part of {chars} characters");
    }
    assert!(
        parts.iter().any(|p| p.body.len() > 4 * 65_536),
        "parts are sized to GitLab's limit, not GitHub's"
    );
    // Every app's section is there in full, not folded to its head.
    let all: String = parts.iter().map(|p| p.body.as_str()).collect();
    for app in ["app-000", "app-001", "app-002"] {
        assert!(all.contains(app), "{app} missing");
    }
    assert_eq!(
        all.matches("KEY_04499").count(),
        3,
        "each app's diff is whole"
    );

    // The next push: the same notes, edited.
    let bulk = big_configmap(4500, "two");
    w.push(
        "feature",
        &[Change::Write("shared/base/bulk.yaml", bulk.as_bytes())],
    );
    let head2 = w.pull_event(PullEvent::Pushed, 1, "feature").await;
    assert_eq!(w.final_status(&head2).await.state, "success");
    w.wait_idle().await;
    let again = w.report_comments(1);
    assert_eq!(
        again.iter().map(|c| c.id).collect::<Vec<_>>(),
        parts.iter().map(|c| c.id).collect::<Vec<_>>()
    );
    for (p, old) in again.iter().zip(&parts) {
        assert!(p.body.chars().count() <= MAX_NOTE_CHARS);
        assert!(w.fake.edits_of(1, p.id) >= 1 || p.body == old.body);
    }
    assert!(again.iter().any(|p| p.body.contains("two-vvvv")));
    assert!(w.fake.refused().is_empty(), "{:#?}", w.fake.refused());
    w.stop().await;
}

/// Gitea's comment listing has no paging: a pull request with more comments than a page holds
/// is read in one answer, each comment once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_gitea_conversation_is_read_once_without_paging() {
    use capstan_worker::forge::Comments;
    use capstan_worker::forge::gitea::{GiteaConfig, GiteaForge};
    let fake = FakeGitea::start(TOKEN, LOGIN).await;
    fake.add_repo(REPO);
    let ids: Vec<u64> = (0..120)
        .map(|i| fake.add_comment(REPO, 3, "alice", &format!("comment {i}")))
        .collect();
    let client = GiteaForge::new(GiteaConfig::new(
        fake.base_url().parse().unwrap(),
        TOKEN.into(),
    ))
    .unwrap();
    let got: Vec<u64> = client
        .comments(REPO, 3)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(got, ids);
    let reads = fake
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/issues/3/comments"))
        .count();
    assert_eq!(reads, 1);
}

/// GitLab pages by `x-next-page`: a merge request with more notes than a page holds is read
/// page by page, each note once, oldest first; the same award twice is not an error; a member's
/// access level decides the permission and a stranger has none; a repeated status state and a
/// long description are absorbed; a second merge request of a branch is refused, a closed one
/// is no longer found by its branch; a wrong token is refused and not repeated in the error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gitlab_client_pages_awards_and_reads_access_levels() {
    use capstan_worker::forge::gitlab::{GitLabConfig, GitLabForge};
    use capstan_worker::forge::{
        Checks, Comments, CommitState, CommitStatus, ForgeError, NewPullRequest, Permission,
        Permissions, PullRequestState, PullUpdate, Pulls, Reaction,
    };
    let fake = FakeGitLab::start(TOKEN, LOGIN).await;
    fake.add_project(REPO);
    fake.add_mr(
        REPO,
        StoredPull {
            number: 3,
            state: "opened".into(),
            ..StoredPull::default()
        },
    );
    let ids: Vec<u64> = (0..250)
        .map(|i| fake.add_note(REPO, 3, "alice", &format!("note {i}")))
        .collect();
    let client = |token: &str| {
        GitLabForge::new(GitLabConfig::new(
            fake.base_url().parse().unwrap(),
            token.into(),
        ))
        .unwrap()
    };
    let gl = client(TOKEN);
    let got: Vec<u64> = gl
        .comments(REPO, 3)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(got, ids);
    let pages = fake
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/merge_requests/3/notes"))
        .count();
    assert_eq!(pages, 3, "250 notes at 100 a page");

    gl.add_reaction(REPO, 3, ids[0], Reaction::Eyes)
        .await
        .unwrap();
    gl.add_reaction(REPO, 3, ids[0], Reaction::Eyes)
        .await
        .unwrap();
    assert_eq!(fake.awards(REPO), [(ids[0], "eyes".to_string())]);
    assert!(matches!(
        gl.add_reaction(REPO, 3, 999_999, Reaction::Eyes).await,
        Err(ForgeError::NotFound { .. })
    ));

    fake.set_access_level(REPO, "dev", 30);
    fake.set_access_level(REPO, "lead", 40);
    let perm = |u: &'static str| {
        let gl = &gl;
        async move { gl.collaborator_permission(REPO, u).await.unwrap() }
    };
    assert_eq!(perm("dev").await, Permission::Write);
    assert_eq!(perm("lead").await, Permission::Maintain);
    assert_eq!(
        perm("alice").await,
        Permission::None,
        "a note author, no member"
    );
    assert_eq!(perm("nobody").await, Permission::None, "no such user");

    let too_long = "x".repeat(capstan_tests::fake_gitlab::MAX_NOTE_CHARS + 1);
    match gl.create_comment(REPO, 3, &too_long).await {
        Err(ForgeError::Validation { message, .. }) => {
            assert!(message.contains("too long"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // A status set twice to the state it has is refused by GitLab ("Cannot transition"): the
    // client takes that as done. A description beyond GitLab's 255 characters is cut.
    let sha = "1111111111111111111111111111111111111111";
    let status = |state, description: &str| CommitStatus {
        state,
        context: "capstan".into(),
        description: Some(description.into()),
        target_url: Some("https://capstan.example/runs/1".into()),
    };
    for s in [
        status(CommitState::Pending, "checking"),
        status(CommitState::Pending, "checking again"),
        status(CommitState::Success, &"é".repeat(300)),
    ] {
        gl.create_commit_status(REPO, sha, &s).await.unwrap();
    }
    let posted: Vec<Value> = fake.statuses(REPO).into_iter().map(|(_, v)| v).collect();
    assert_eq!(posted.len(), 2, "{posted:#?}");
    assert_eq!(posted[1]["status"], "success");
    assert_eq!(
        posted[1]["description"].as_str().unwrap().chars().count(),
        255
    );

    // A second open merge request of the same branch: GitLab's 409, a validation error.
    let new = NewPullRequest {
        title: "Promote".into(),
        head: "capstan/promote/x".into(),
        base: "main".into(),
        body: "b".into(),
    };
    let first = gl.create_pull_request(REPO, &new).await.unwrap();
    assert!(matches!(
        gl.create_pull_request(REPO, &new).await,
        Err(ForgeError::Validation { .. })
    ));
    let open = gl.pull_requests_by_head(REPO, &new.head).await.unwrap();
    assert_eq!(
        open.iter().map(|p| p.number).collect::<Vec<_>>(),
        [first.number]
    );
    let closed = gl
        .update_pull_request(
            REPO,
            first.number,
            &PullUpdate {
                close: true,
                ..PullUpdate::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(closed.state, PullRequestState::Closed);
    assert!(
        gl.pull_requests_by_head(REPO, &new.head)
            .await
            .unwrap()
            .is_empty()
    );

    let wrong = client("not-the-token");
    match wrong.comments(REPO, 3).await {
        Err(e @ ForgeError::Unauthorized { .. }) => {
            assert!(!format!("{e} {e:?}").contains("not-the-token"), "{e:?}")
        }
        other => panic!("{other:?}"),
    }
}
