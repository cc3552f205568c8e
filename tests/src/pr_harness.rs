//! The whole service for pull-request tests and the fan-out benchmark: `capstan serve` in-process
//! on an ephemeral port, the fake GitHub (as an App, or with a personal token), and a real git
//! repository built on the fly that the service fetches through `--git-url-template file://…`.
//! Webhooks are signed and POSTed over HTTP, as GitHub sends them.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use capstan_server::config::{Config, ConfigArgs};
use capstan_worker::forge::Forge;
use capstan_worker::forge::github::{AppKey, GitHubAuth, GitHubConfig, GitHubForge};
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::queue::JobState;
use git2::Oid;
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use crate::fake_github::{FakeApp, FakeComment, FakeGitHub, FakePull};

pub const REPO: &str = "acme/gitops";
pub const PAT: &str = "ghp_test_personal_token_0123456789abcdef";
pub const APP_ID: u64 = 4242;
pub const INSTALLATION: u64 = 77;
pub const APP_LOGIN: &str = "capstan[bot]";
const SECRET: &str = "pr-pipeline-secret";

/// How the service authenticates to the fake GitHub.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Auth {
    App,
    Token,
    /// No GitHub credentials at all: reports go to the store and the log only.
    None,
}

/// Settings [`Harness::start_with_setup`] adds to the usual ones.
pub struct Setup {
    /// Edits the flags.
    pub args: Box<dyn FnOnce(&mut ConfigArgs) + Send>,
    /// Environment variables the configuration sees.
    pub env: Vec<(String, String)>,
    pub helm: Option<std::path::PathBuf>,
}

impl Default for Setup {
    fn default() -> Self {
        Setup {
            args: Box::new(|_| {}),
            env: Vec::new(),
            helm: None,
        }
    }
}

pub struct Harness {
    pub dir: tempfile::TempDir,
    pub origin: RepoBuilder,
    pub fake: FakeGitHub,
    pub base_url: String,
    pub database_url: String,
    http: reqwest::Client,
    stop: CancellationToken,
    service: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    delivery: std::sync::atomic::AtomicU64,
}

impl Harness {
    /// Starts the fake GitHub and `capstan serve`; `origin` starts with one commit of `files`.
    pub async fn start(auth: Auth, files: &[(String, String)]) -> Harness {
        Self::build(auth, files, true, None, Setup::default()).await
    }

    /// [`Harness::start`] with more settings: flags, environment variables and the `helm` the
    /// service's own renderer (built from those settings) runs.
    pub async fn start_with_setup(auth: Auth, files: &[(String, String)], setup: Setup) -> Harness {
        Self::build(auth, files, true, None, setup).await
    }

    /// [`Harness::start`] with the PR checks' renderer given (e.g. one with an engine hook).
    pub async fn start_with_renderer(
        auth: Auth,
        files: &[(String, String)],
        renderer: Arc<capstan_worker::render::Renderer>,
    ) -> Harness {
        Self::build(auth, files, true, Some(renderer), Setup::default()).await
    }

    /// The fake GitHub and the origin repository only, for tests that run a worker of their own
    /// (a running service's missed-event recovery would check their pull requests too).
    pub async fn without_service(files: &[(String, String)]) -> Harness {
        Self::build(Auth::App, files, false, None, Setup::default()).await
    }

    async fn build(
        auth: Auth,
        files: &[(String, String)],
        serve: bool,
        renderer: Option<Arc<capstan_worker::render::Renderer>>,
        setup: Setup,
    ) -> Harness {
        capstan_worker::forge::github::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let origin_dir = dir.path().join("origin/acme/gitops");
        let origin = RepoBuilder::init(&origin_dir).unwrap();
        let changes: Vec<Change<'_>> = files
            .iter()
            .map(|(p, t)| Change::Write(p, t.as_bytes()))
            .collect();
        origin.commit("initial tree", &changes).unwrap();

        let (fake, key) = fake_github_app(PAT).await;
        // The usual PR author is a writer, as in a team repository: cluster checks run for her.
        fake.set_permission(REPO, "alice", "write");
        let auth = match auth {
            Auth::App => Some(GitHubAuth::App {
                app_id: APP_ID,
                key: Arc::new(key),
            }),
            Auth::Token => Some(GitHubAuth::Token(PAT.into())),
            Auth::None => None,
        };
        let forge: Option<Arc<dyn Forge>> = auth.map(|auth| {
            let mut gh = GitHubConfig::new(fake.api_url().parse().unwrap(), auth);
            gh.timeout = Duration::from_secs(20);
            Arc::new(GitHubForge::new(gh).unwrap()) as Arc<dyn Forge>
        });

        let mut args = ConfigArgs {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().join("data").display().to_string()),
            git_url_template: Some(format!(
                "file://{}/origin/{{owner}}/{{repo}}",
                dir.path().display()
            )),
            poll_interval_ms: Some("50".into()),
            public_url: Some("https://capstan.example".into()),
            github_api_url: Some(fake.api_url()),
            log: Some(std::env::var("CAPSTAN_TEST_LOG").unwrap_or_else(|_| "warn".into())),
            ..ConfigArgs::default()
        };
        (setup.args)(&mut args);
        let env = |k: &str| {
            if k == "CAPSTAN_WEBHOOK_SECRET" {
                return Some(SECRET.to_string());
            }
            setup
                .env
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
        };
        let cfg = Config::load_with(&args, &env).unwrap();
        if std::env::var("CAPSTAN_TEST_LOG").is_ok() {
            capstan_server::serve::init_tracing(&cfg);
        }
        let database_url = cfg.database_url.clone();
        let stop = CancellationToken::new();
        let (port, service) = if serve {
            let parts = capstan_server::serve::Parts {
                forge,
                renderer,
                helm_binary: setup.helm,
                // The service evaluates Jsonnet with its own binary; here that is a test binary.
                jsonnet_evaluator: Some(crate::capstan_binary()),
                shutdown: Some(stop.clone()),
            };
            let (port, task) = serve_on_ephemeral_port(cfg, parts).await;
            (port, Some(task))
        } else {
            (0, None)
        };
        let base_url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        if service.is_some() {
            wait_healthy(&http, &base_url).await;
        }
        Harness {
            dir,
            origin,
            fake,
            base_url,
            database_url,
            http,
            stop,
            service,
            delivery: std::sync::atomic::AtomicU64::new(0),
        }
    }

    /// The tip of `main` in the origin repository.
    pub fn main_tip(&self) -> Oid {
        self.branch_tip("main")
    }

    pub fn branch_tip(&self, branch: &str) -> Oid {
        let repo = git2::Repository::open(self.dir.path().join("origin/acme/gitops")).unwrap();
        repo.refname_to_id(&format!("refs/heads/{branch}")).unwrap()
    }

    /// Commits `changes` on `branch` (created from `main` when missing); `main` stays where it was.
    pub fn push(&self, branch: &str, changes: &[Change<'_>]) -> Oid {
        push_branch(
            &self.origin,
            &self.dir.path().join("origin/acme/gitops"),
            branch,
            changes,
        )
    }

    /// Pushes a change of the shared base's log level to `branch` (every app changes); the new
    /// head as hex.
    pub fn push_level(&self, branch: &str, level: &str) -> String {
        let cm = settings_configmap(level);
        self.push(
            branch,
            &[Change::Write("shared/base/settings.yaml", cm.as_bytes())],
        )
        .to_string()
    }

    /// Registers PR `number` from `branch` into `main` on the fake GitHub at the branch's tip.
    pub fn open_pull(&self, number: u64, branch: &str) -> String {
        self.open_pull_by(number, branch, "alice")
    }

    /// [`Harness::open_pull`] written by `author` (a stranger's or a fork's pull request).
    pub fn open_pull_by(&self, number: u64, branch: &str, author: &str) -> String {
        let head = self.branch_tip(branch).to_string();
        self.fake.add_pull(
            REPO,
            FakePull {
                number,
                state: "open".into(),
                title: format!("PR {number}"),
                author: author.into(),
                head_sha: head.clone(),
                head_ref: branch.into(),
                base_sha: self.main_tip().to_string(),
                base_ref: "main".into(),
                ..FakePull::default()
            },
        );
        head
    }

    /// POSTs a signed `pull_request` webhook for PR `number` at `head`; returns when accepted.
    pub async fn pull_request_event(&self, action: &str, number: u64, branch: &str, head: &str) {
        let body = json!({
            "action": action,
            "number": number,
            "pull_request": {
                "number": number,
                "state": "open",
                "head": {"sha": head, "ref": branch},
                "base": {"sha": self.main_tip().to_string(), "ref": "main"},
                "merged": false,
            },
            "repository": {"full_name": REPO, "default_branch": "main"},
            "installation": {"id": INSTALLATION},
            "sender": {"login": "alice", "type": "User"},
        });
        self.webhook("pull_request", &body).await;
    }

    /// POSTs a signed `merge_group` `checks_requested` webhook: the merge queue asks for the
    /// checks of `head` on its branch `queue_branch`, built on `base` of `main`.
    pub async fn merge_group_event(&self, queue_branch: &str, head: &str, base: &str) {
        let body = json!({
            "action": "checks_requested",
            "merge_group": {
                "head_sha": head,
                "head_ref": format!("refs/heads/{queue_branch}"),
                "base_sha": base,
                "base_ref": "refs/heads/main",
                "head_commit": {
                    "id": head,
                    "tree_id": "0000000000000000000000000000000000000000",
                    "message": "Merge queue",
                    "timestamp": "2026-12-01T10:00:00Z",
                    "author": {"name": "alice", "email": "alice@example.invalid"},
                    "committer": {"name": "GitHub", "email": "noreply@github.com"},
                },
            },
            "repository": {"full_name": REPO, "default_branch": "main"},
            "installation": {"id": INSTALLATION},
            "sender": {"login": "alice", "type": "User"},
        });
        self.webhook("merge_group", &body).await;
    }

    pub async fn webhook(&self, event: &str, body: &Value) {
        let n = self
            .delivery
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let delivery = format!("delivery-{n}-{}", uuid());
        post_webhook(&self.http, &self.base_url, event, &delivery, body, SECRET).await;
    }

    /// Capstan's report comments on PR `number`, oldest first.
    pub fn report_comments(&self, number: u64) -> Vec<FakeComment> {
        self.fake
            .comments(REPO, number)
            .into_iter()
            .filter(|c| c.body.starts_with("<!-- capstan:report"))
            .collect()
    }

    /// The check runs for `sha`.
    pub fn check_runs_for(&self, sha: &str) -> Vec<Value> {
        self.fake
            .check_runs(REPO)
            .into_iter()
            .filter(|r| r["head_sha"] == sha)
            .collect()
    }

    /// The one completed check run of `sha`, once there is one (a head has one check run).
    pub async fn completed_check(&self, sha: &str, timeout: Duration) -> Value {
        self.wait_for("the check run to complete", timeout, |h| {
            h.check_runs_for(sha)
                .iter()
                .any(|r| r["status"] == "completed")
        })
        .await;
        let runs = self.check_runs_for(sha);
        assert_eq!(runs.len(), 1, "one check run per head: {runs:#?}");
        runs.into_iter().next().unwrap()
    }

    /// Waits until `done` holds (polling), or panics after `timeout` with `what`.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        mut done: impl FnMut(&Self) -> bool,
    ) {
        let start = Instant::now();
        while !done(self) {
            assert!(start.elapsed() < timeout, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Waits until no job is queued or running.
    pub async fn wait_idle(&self) {
        let q = capstan_worker::queue::open(&self.database_url)
            .await
            .unwrap();
        let start = Instant::now();
        loop {
            let depth = q.depth().await.unwrap();
            let busy = depth.iter().any(|(_, state, n)| {
                matches!(state, JobState::Queued | JobState::Running) && *n > 0
            });
            if !busy {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "queue never drained: {depth:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub async fn stop(mut self) {
        self.stop.cancel();
        if let Some(s) = self.service.take() {
            s.await.unwrap().unwrap();
        }
    }
}

/// Waits (up to ten seconds) until the service at `base_url` answers `/healthz`.
pub async fn wait_healthy(http: &reqwest::Client, base_url: &str) {
    for _ in 0..500 {
        if http
            .get(format!("{base_url}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// POSTs `body` to the service at `base_url` as GitHub would, signed with `secret`; panics unless
/// it is accepted.
pub async fn post_webhook(
    http: &reqwest::Client,
    base_url: &str,
    event: &str,
    delivery: &str,
    body: &Value,
    secret: &str,
) {
    let status = crate::webhook::post_signed(http, base_url, event, delivery, body, secret).await;
    assert!(
        status.is_some_and(|s| (200..300).contains(&s)),
        "webhook refused: {status:?}"
    );
}

/// The test-only GitHub App key.
pub fn app_key_path() -> std::path::PathBuf {
    crate::own_fixtures().join("TEST-ONLY-github-app-key.pem")
}

/// The fake GitHub accepting personal token `token` and knowing the App (installation
/// [`INSTALLATION`] on `acme`), with [`REPO`] registered; and the App's key.
pub async fn fake_github_app(token: &str) -> (FakeGitHub, AppKey) {
    let key = AppKey::from_file(&app_key_path()).unwrap();
    let fake = FakeGitHub::start(
        token,
        "",
        Some(FakeApp {
            app_id: APP_ID,
            slug: "capstan".into(),
            public_key_der: key.public_key_der(),
            installations: vec![(INSTALLATION, "acme".into())],
        }),
    )
    .await;
    fake.add_repo(REPO);
    (fake, key)
}

/// Builds the service from `cfg` (its `listen` is not used) and serves it on a listener bound
/// here to an ephemeral loopback port, so no port is guessed and raced for. Returns the port and
/// the service task.
pub async fn serve_on_ephemeral_port(
    cfg: Config,
    parts: capstan_server::serve::Parts,
) -> (u16, tokio::task::JoinHandle<anyhow::Result<()>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        capstan_server::serve::App::build_with(cfg, parts)
            .await?
            .serve(listener)
            .await
    });
    (port, task)
}

fn uuid() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// A GitOps tree of `apps` Applications whose kustomizations all include `shared/base`, so one
/// change to the shared base fans out to every app.
pub fn fanout_tree(apps: usize) -> Vec<(String, String)> {
    let mut files = vec![
        (
            ".capstan.yaml".to_string(),
            "repoURL: https://github.com/acme/gitops\n".to_string(),
        ),
        (
            "shared/base/kustomization.yaml".to_string(),
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - settings.yaml\n".to_string(),
        ),
        (
            "shared/base/settings.yaml".to_string(),
            settings_configmap("info"),
        ),
    ];
    for i in 0..apps {
        let name = format!("app-{i:03}");
        files.push((format!("argocd/apps/{name}.yaml"), application(&name)));
        files.push((
            format!("apps/{name}/kustomization.yaml"),
            format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: {name}\nresources:\n  - ../../shared/base\n"
            ),
        ));
    }
    files
}

pub fn settings_configmap(level: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  LOG_LEVEL: {level}\n"
    )
}

pub fn application(name: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: {name}
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://github.com/acme/gitops
    targetRevision: main
    path: apps/{name}
  destination:
    server: https://kubernetes.default.svc
    namespace: {name}
  syncPolicy:
    syncOptions:
      - CreateNamespace=true
"
    )
}

/// Commits `changes` on `branch` of `origin` (created from `main` when missing), leaving `main`
/// where it was: the builder commits on `main`, so it is pointed at the branch for the commit.
pub fn push_branch(
    origin: &RepoBuilder,
    origin_dir: &std::path::Path,
    branch: &str,
    changes: &[Change<'_>],
) -> Oid {
    let repo = git2::Repository::open(origin_dir).unwrap();
    let main = repo.refname_to_id("refs/heads/main").unwrap();
    let parent = repo
        .refname_to_id(&format!("refs/heads/{branch}"))
        .unwrap_or(main);
    origin.set_ref("refs/heads/main", parent).unwrap();
    let head = origin.commit("change", changes).unwrap();
    origin
        .set_ref(&format!("refs/heads/{branch}"), head)
        .unwrap();
    origin.set_ref("refs/heads/main", main).unwrap();
    head
}
