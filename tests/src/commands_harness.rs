//! The slash-command world shared by `commands_e2e.rs` and `adversarial_commands.rs`: signed
//! `issue_comment` (and `pull_request`) webhooks into the server's router, the job runner with
//! the server's handler registry, the GitHub forge against the fake GitHub, and a real git
//! repository (built here) as the remote whose default branch holds `.capstan.yaml`. ArgoCD sync
//! and the promotion engine are small recording fakes of their traits.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use axum::Router;
use axum::http::StatusCode;
use capstan_server::app::{AppState, router};
use capstan_worker::commands::CommandHandler;
use capstan_worker::forge::Forge;
use capstan_worker::forge::github::{GitHubAuth, GitHubConfig, GitHubForge};
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::jobs::{self, PrCheck};
use capstan_worker::promote::PromoteError;
use capstan_worker::queue::{Finish, Job};
use capstan_worker::runner::{Metrics, Registry, Runner, RunnerConfig};
use capstan_worker::services::{
    AppOrigin, AppSync, GitSource, PromoteRequest, Promoter, Services, SyncError,
};
use capstan_worker::store::runs::SqlRunStore;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::backend::Backend;
use crate::fake_github::{FakeComment, FakeGitHub, FakePull};
use crate::webhook::{SECRET, send, signed};

pub const REPO: &str = "acme/gitops";
pub const PR: u64 = 7;
pub const PAT: &str = "ghp_commands_e2e_token";
/// The fake GitHub's login for the token: Capstan itself.
pub const SELF_LOGIN: &str = "capstan-user";

pub const SETTINGS: &str =
    "environments:\n  - name: staging\n  - name: production\ncommands:\n  prefix: /capstan\n";
/// The PR tries to let anyone promote; the default branch's settings must still apply.
pub const RELAXED: &str = "environments:\n  - name: staging\n  - name: production\ncommands:\n  permissions:\n    promote: read\n    hold: read\n";
pub const APP: &str = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: https://github.com/acme/gitops.git\n    path: apps/web\n  destination:\n    namespace: web\n";

/// The remote: `main` with the settings and one app, `feature` (the PR head) on top.
pub struct Upstream {
    pub dir: tempfile::TempDir,
    pub head: String,
}

pub fn upstream() -> Upstream {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("acme").join("gitops");
    std::fs::create_dir_all(&path).unwrap();
    let b = RepoBuilder::init(&path).unwrap();
    let base = b
        .commit(
            "base",
            &[
                Change::Write(".capstan.yaml", SETTINGS.as_bytes()),
                Change::Write("argocd/web.yaml", APP.as_bytes()),
                Change::Write(
                    "apps/web/kustomization.yaml",
                    b"resources:\n  - configmap.yaml\n",
                ),
                Change::Write(
                    "apps/web/configmap.yaml",
                    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  a: \"1\"\n",
                ),
            ],
        )
        .unwrap();
    let head = b
        .commit(
            "relax the rules and change the app",
            &[
                Change::Write(".capstan.yaml", RELAXED.as_bytes()),
                Change::Write(
                    "apps/web/configmap.yaml",
                    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  a: \"2\"\n",
                ),
            ],
        )
        .unwrap();
    b.set_ref("refs/heads/feature", head).unwrap();
    b.set_ref("refs/heads/main", base).unwrap();
    Upstream {
        dir,
        head: head.to_string(),
    }
}

#[derive(Default)]
pub struct FakeSync {
    pub calls: Mutex<Vec<String>>,
    /// What ArgoCD says about an app's sources and project; an app not listed comes from this
    /// repository in project `default`.
    pub origins: Mutex<BTreeMap<String, Result<AppOrigin, String>>>,
}

#[async_trait]
impl AppSync for FakeSync {
    async fn sync_app(&self, app: &str, revision: Option<&str>) -> Result<String, SyncError> {
        self.calls.lock().unwrap().push(app.to_string());
        Ok(format!(
            "operation started at {}",
            revision.unwrap_or("the target revision")
        ))
    }

    async fn app_origin(&self, app: &str) -> Result<AppOrigin, SyncError> {
        self.origins
            .lock()
            .unwrap()
            .get(app)
            .cloned()
            .map(|r| r.map_err(SyncError::Refused))
            .unwrap_or_else(|| {
                Ok(AppOrigin {
                    project: "default".into(),
                    repo_urls: vec![format!("https://github.com/{REPO}.git")],
                })
            })
    }
}

#[derive(Default)]
pub struct FakePromoter {
    pub calls: Mutex<Vec<PromoteRequest>>,
    /// (actor, environment, reason) of promotions refused before reaching the engine.
    pub refusals: Mutex<Vec<(String, String, String)>>,
}

#[async_trait]
impl Promoter for FakePromoter {
    async fn promote(&self, req: &PromoteRequest) -> Result<String, PromoteError> {
        self.calls.lock().unwrap().push(req.clone());
        Ok(format!(
            "promotion pull request opened for {}",
            req.environment
        ))
    }

    async fn record_refusal(&self, req: &PromoteRequest, reason: &str) {
        self.refusals.lock().unwrap().push((
            req.actor.clone(),
            req.environment.clone(),
            reason.to_string(),
        ));
    }
}

/// The fake GitHub with the open PR at the upstream's head and one user per permission level.
pub async fn fake_github(up: &Upstream) -> FakeGitHub {
    let fake = FakeGitHub::start(PAT, "", None).await;
    fake.add_pull(
        REPO,
        FakePull {
            number: PR,
            state: "open".into(),
            title: "Change web".into(),
            author: "alice".into(),
            head_sha: up.head.clone(),
            head_ref: "feature".into(),
            base_sha: "b".repeat(40),
            base_ref: "main".into(),
            ..FakePull::default()
        },
    );
    for (user, role) in [
        ("reader", "read"),
        ("triager", "triage"),
        ("writer", "write"),
        ("maintainer", "maintain"),
        ("admin", "admin"),
    ] {
        fake.set_permission(REPO, user, role);
    }
    fake
}

/// A comment time as GitHub writes it (`2026-12-07T01:02:03Z`, whole seconds) `offset_secs`
/// from the next whole second: with 0, a comment written just now, after everything the test
/// did before (GitHub truncates, so the current second could be earlier than those steps).
pub fn github_time(offset_secs: i64) -> String {
    let now = time::OffsetDateTime::now_utc()
        .replace_nanosecond(0)
        .unwrap();
    (now + time::Duration::seconds(1 + offset_secs))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap()
}

/// The check GitHub's `pull_request.opened` queued before the test began, already finished:
/// Capstan has seen `head` since before any comment of the test. [`Harness::checks_of_head`]
/// leaves it out.
async fn opened_check(queue: &Arc<dyn capstan_worker::queue::Queue>, head: &str) {
    let job = PrCheck {
        repo: REPO.into(),
        number: PR,
        head_sha: head.into(),
        head_ref: Some("feature".into()),
        base_ref: Some("main".into()),
        installation_id: None,
        trigger: OPENED.into(),
        sender: None,
    }
    .into_job();
    queue.enqueue(&job).await.unwrap().unwrap();
    let kinds = [jobs::PR_CHECK.to_string()];
    let claimed = queue
        .claim("test-setup", &kinds, Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    let (id, attempt) = (claimed.job.id, claimed.job.attempts);
    assert!(
        queue
            .finish(id, "test-setup", attempt, &Finish::Succeeded)
            .await
            .unwrap()
    );
}

/// The trigger of the setup's check (the one `pull_request.opened` would have queued), apart
/// from any the tests queue themselves.
pub const OPENED: &str = "harness.opened";

/// Which handlers the runner has.
pub enum Handlers {
    /// The server's own registry (`serve::default_registry`).
    Server,
    /// Only the command handler, so the test controls the state of `pr_check` jobs.
    CommandsOnly,
}

pub struct Harness {
    pub fake: FakeGitHub,
    pub app: Router,
    pub services: Arc<Services>,
    pub sync: Arc<FakeSync>,
    pub promoter: Arc<FakePromoter>,
    pub up: Upstream,
    pub _mirrors: tempfile::TempDir,
    pub stop: CancellationToken,
    pub runner: tokio::task::JoinHandle<()>,
    pub deliveries: AtomicU64,
}

impl Harness {
    pub async fn start(b: &Backend, handlers: Handlers) -> Harness {
        Self::start_with_timeout(b, handlers, Duration::from_secs(10)).await
    }

    /// [`Harness::start`] with the forge's request timeout set to `timeout`.
    pub async fn start_with_timeout(b: &Backend, handlers: Handlers, timeout: Duration) -> Harness {
        let up = upstream();
        let fake = fake_github(&up).await;
        let mut cfg = GitHubConfig::new(
            fake.api_url().parse().unwrap(),
            GitHubAuth::Token(PAT.into()),
        );
        cfg.timeout = timeout;
        cfg.max_rate_limit_wait = Duration::from_secs(1);
        let forge: Arc<dyn Forge> = Arc::new(GitHubForge::new(cfg).unwrap());
        let mirrors = tempfile::tempdir().unwrap();
        let sync = Arc::new(FakeSync::default());
        let promoter = Arc::new(FakePromoter::default());
        let services = Arc::new(Services {
            queue: b.queue.clone(),
            runs: Arc::new(SqlRunStore::new(b.queue.db())),
            forge: Some(forge),
            git: GitSource::new(
                format!("file://{}/{{owner}}/{{repo}}", up.dir.path().display()),
                "github.com",
                mirrors.path().to_path_buf(),
            ),
            public_url: "http://capstan.test".into(),
            cluster: Vec::new(),
            sync: Some(sync.clone()),
            promoter: Some(promoter.clone()),
            limits: Default::default(),
        });
        let registry = match handlers {
            Handlers::Server => capstan_server::serve::default_registry(&services),
            Handlers::CommandsOnly => {
                let mut r = Registry::new();
                r.register::<jobs::Command>(CommandHandler::new(services.clone()));
                r
            }
        };
        let kinds = registry.kinds();
        let runner = Runner::new(
            b.queue.clone(),
            registry,
            RunnerConfig {
                workers: 2,
                poll_interval: Duration::from_millis(20),
                backoff_base: Duration::from_millis(50),
                backoff_max: Duration::from_millis(200),
                ..RunnerConfig::default()
            },
            Arc::new(Metrics::new()),
        );
        let state = AppState::new(b.queue.clone(), vec![SECRET.to_string()])
            .with_wake(runner.waker(), kinds);
        let app = router(Arc::new(state), true);
        let stop = CancellationToken::new();
        opened_check(&b.queue, &up.head).await;
        let runner = tokio::spawn(runner.run(stop.clone()));
        Harness {
            fake,
            app,
            services,
            sync,
            promoter,
            up,
            _mirrors: mirrors,
            stop,
            runner,
            deliveries: AtomicU64::new(0),
        }
    }

    pub async fn stop(self) {
        self.stop.cancel();
        self.runner.await.unwrap();
    }

    pub fn head(&self) -> &str {
        &self.up.head
    }

    /// A new comment by `login`, delivered as `issue_comment.created`; returns its id.
    pub async fn comment(&self, login: &str, body: &str) -> u64 {
        let id = self.fake.add_comment(REPO, PR, login, false, body);
        self.deliver("created", id, login, "User", body, "v1", None)
            .await;
        id
    }

    /// Delivers an `issue_comment` event and waits until the jobs it produced have finished.
    /// `delivery` reuses a delivery id (GitHub's "Redeliver"); `None` makes a fresh one.
    #[allow(clippy::too_many_arguments)]
    pub async fn deliver(
        &self,
        action: &str,
        comment_id: u64,
        login: &str,
        user_type: &str,
        body: &str,
        version: &str,
        delivery: Option<&str>,
    ) -> String {
        let payload = json!({
            "action": action,
            "issue": {"number": PR, "pull_request": {"url": format!("https://api.github.com/repos/{REPO}/pulls/{PR}")}},
            "comment": {
                "id": comment_id,
                "body": body,
                "user": {"login": login, "type": user_type},
                "author_association": "MEMBER",
                "created_at": github_time(0),
                "updated_at": version,
            },
            "repository": {"full_name": REPO, "default_branch": "main"},
            "sender": {"login": login, "type": user_type},
        });
        self.deliver_json("issue_comment", &payload, delivery).await
    }

    /// Delivers any event payload signed, as GitHub would, and waits until its jobs are final.
    pub async fn deliver_json(
        &self,
        event: &str,
        payload: &serde_json::Value,
        delivery: Option<&str>,
    ) -> String {
        let delivery = delivery
            .map(str::to_string)
            .unwrap_or_else(|| self.delivery_id(event));
        let status = self.post_as(event, payload, &delivery).await;
        assert!(
            status == StatusCode::ACCEPTED || status == StatusCode::OK,
            "delivery {delivery}: {status}"
        );
        self.settle(&delivery).await;
        delivery
    }

    /// Posts a signed event under a fresh delivery id; the intake's status and the id.
    pub async fn post(&self, event: &str, payload: &serde_json::Value) -> (StatusCode, String) {
        let delivery = self.delivery_id(event);
        (self.post_as(event, payload, &delivery).await, delivery)
    }

    fn delivery_id(&self, event: &str) -> String {
        format!("{event}-{}", self.deliveries.fetch_add(1, Ordering::SeqCst))
    }

    async fn post_as(
        &self,
        event: &str,
        payload: &serde_json::Value,
        delivery: &str,
    ) -> StatusCode {
        let bytes = serde_json::to_vec(payload).unwrap();
        send(&self.app, signed(event, delivery, &bytes, SECRET))
            .await
            .0
    }

    /// GitHub's `pull_request.synchronize` for `head` (the PR's head on the fake moves there),
    /// so Capstan has seen it. Returns once the delivery is stored: the queued check is the
    /// record of the sighting, whether or not a pipeline runs it.
    pub async fn synchronize(&self, head: &str) {
        self.fake.set_head(REPO, PR, head);
        let payload = json!({
            "action": "synchronize",
            "number": PR,
            "pull_request": {
                "number": PR,
                "head": {"ref": "feature", "sha": head},
                "base": {"ref": "main", "sha": "b".repeat(40)},
            },
            "repository": {"full_name": REPO, "default_branch": "main"},
            "sender": {"login": "alice", "type": "User"},
        });
        let (status, delivery) = self.post("pull_request", &payload).await;
        assert!(
            status == StatusCode::ACCEPTED,
            "delivery {delivery}: {status}"
        );
    }

    /// Waits until every job of `delivery` is final.
    pub async fn settle(&self, delivery: &str) -> Vec<Job> {
        let q = &self.services.queue;
        for _ in 0..1500 {
            let jobs = q.jobs_for_delivery(delivery).await.unwrap();
            if jobs.iter().all(|j| j.state.is_final()) {
                return jobs;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!(
            "jobs of {delivery} did not finish: {:?}",
            q.jobs_for_delivery(delivery).await.unwrap()
        );
    }

    /// A check of the head queued by `trigger` and claimed by a stand-in for the pipeline.
    pub async fn pipeline_claims(&self, trigger: &str) -> Job {
        let q = &self.services.queue;
        let job = PrCheck {
            repo: REPO.into(),
            number: PR,
            head_sha: self.head().into(),
            head_ref: Some("feature".into()),
            base_ref: Some("main".into()),
            installation_id: None,
            trigger: trigger.into(),
            sender: None,
        }
        .into_job();
        q.enqueue(&job).await.unwrap().unwrap();
        let kinds = [jobs::PR_CHECK.to_string()];
        let lease = Duration::from_secs(60);
        let claimed = q.claim("test-pipeline", &kinds, lease).await;
        claimed.unwrap().unwrap().job
    }

    /// The re-checks a `hold`/`unhold` comment (version `v1`) queued.
    pub async fn rechecks(&self, comment: u64) -> Vec<Job> {
        let key = format!(
            "{}/command:{comment}@v1",
            PrCheck::dedupe_key(REPO, PR, self.head())
        );
        self.services.queue.jobs_by_dedupe_key(&key).await.unwrap()
    }

    /// Waits until job `id` is final and returns it.
    pub async fn finished(&self, id: i64) -> Job {
        for _ in 0..1500 {
            let job = self.services.queue.job(id).await.unwrap().unwrap();
            if job.state.is_final() {
                return job;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("job {id} did not finish");
    }

    /// Capstan's replies to `comment_id` (any version), oldest first.
    pub fn replies(&self, comment_id: u64) -> Vec<FakeComment> {
        let marker = format!("<!-- capstan:command-reply {comment_id}@");
        self.fake
            .comments(REPO, PR)
            .into_iter()
            .filter(|c| c.body.starts_with(&marker))
            .inspect(|c| assert_eq!(c.login, SELF_LOGIN, "replies come from Capstan"))
            .collect()
    }

    /// The one reply to `comment_id`.
    pub fn reply(&self, comment_id: u64) -> String {
        let replies = self.replies(comment_id);
        assert_eq!(replies.len(), 1, "one reply to {comment_id}: {replies:?}");
        replies[0].body.clone()
    }

    pub fn reacted(&self, comment_id: u64) -> bool {
        self.fake
            .reactions(REPO)
            .iter()
            .any(|(id, content)| *id == comment_id && content == "eyes")
    }

    /// The checks of the head queued during the test (the setup's `opened` check left out).
    pub async fn checks_of_head(&self) -> Vec<Job> {
        self.services
            .queue
            .jobs_by_dedupe_key(&PrCheck::dedupe_key(REPO, PR, self.head()))
            .await
            .unwrap()
            .into_iter()
            .filter(|j| j.payload["trigger"] != OPENED)
            .collect()
    }
}

pub fn has_line(reply: &str, command: &str, outcome: &str) -> bool {
    reply
        .lines()
        .any(|l| l.starts_with(&format!("- {command} → {outcome}")))
}

/// (command line, start of its outcome) pairs expected in a reply.
pub type Expected = &'static [(&'static str, &'static str)];
