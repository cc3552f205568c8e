//! A `pr_check` worker of a test's own (the PR pipeline's handler, the GitHub forge against the
//! fake GitHub of a [`Harness`]), with the cluster checkers and bounds the test chooses.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use capstan_worker::forge::Forge;
use capstan_worker::forge::github::{AppKey, GitHubAuth, GitHubConfig, GitHubForge};
use capstan_worker::jobs::PrCheck;
use capstan_worker::limits::Limits;
use capstan_worker::pipeline::PrCheckHandler;
use capstan_worker::queue::{JobState, Queue};
use capstan_worker::render::{RenderConfig, Renderer};
use capstan_worker::runner::{Metrics, Registry, Runner, RunnerConfig};
use capstan_worker::services::{ClusterCheck, GitSource, Services};
use capstan_worker::store::runs::SqlRunStore;
use tokio_util::sync::CancellationToken;

use crate::pr_harness::{APP_ID, Harness, INSTALLATION, REPO};

/// A check of PR `number` at `head` (branch `feature` into `main`) queued by `trigger`, caused by
/// `sender`.
pub fn pr_check(number: u64, head: &str, trigger: &str, sender: Option<&str>) -> PrCheck {
    PrCheck {
        repo: REPO.into(),
        number,
        head_sha: head.into(),
        head_ref: Some("feature".into()),
        base_ref: Some("main".into()),
        installation_id: Some(INSTALLATION),
        trigger: trigger.into(),
        sender: sender.map(str::to_string),
    }
}

/// One worker polling often.
fn test_runner() -> RunnerConfig {
    RunnerConfig {
        workers: 1,
        poll_interval: Duration::from_millis(20),
        ..RunnerConfig::default()
    }
}

/// A `pr_check` worker of the test's own, with the given cluster checkers.
pub struct Worker {
    _dir: tempfile::TempDir,
    pub queue: Arc<dyn Queue>,
    stop: CancellationToken,
    runner: tokio::task::JoinHandle<()>,
}

impl Worker {
    pub async fn start(h: &Harness, cluster: Vec<Arc<dyn ClusterCheck>>) -> Worker {
        Self::start_with(h, cluster, Limits::default()).await
    }

    /// [`Worker::start`] with the given bounds.
    pub async fn start_with(
        h: &Harness,
        cluster: Vec<Arc<dyn ClusterCheck>>,
        limits: Limits,
    ) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        let queue = capstan_worker::queue::open(&format!("sqlite://{}/q.db", dir.path().display()))
            .await
            .unwrap();
        Self::start_on(h, cluster, limits, queue, dir, test_runner()).await
    }

    /// [`Worker::start_with`] on the given queue (and its database for the run store), e.g. a
    /// PostgreSQL [`crate::backend::Backend`]'s.
    pub async fn start_on_queue(
        h: &Harness,
        cluster: Vec<Arc<dyn ClusterCheck>>,
        limits: Limits,
        queue: Arc<dyn Queue>,
    ) -> Worker {
        let dir = tempfile::tempdir().unwrap();
        Self::start_on(h, cluster, limits, queue, dir, test_runner()).await
    }

    /// [`Worker::start_on_queue`] without cluster checks, retrying a transient failure after
    /// milliseconds instead of seconds (tests of what a retry leaves behind).
    pub async fn start_retrying_fast(h: &Harness, queue: Arc<dyn Queue>) -> Worker {
        let runner = RunnerConfig {
            backoff_base: Duration::from_millis(20),
            backoff_max: Duration::from_millis(100),
            ..test_runner()
        };
        let dir = tempfile::tempdir().unwrap();
        Self::start_on(h, vec![], Limits::default(), queue, dir, runner).await
    }

    async fn start_on(
        h: &Harness,
        cluster: Vec<Arc<dyn ClusterCheck>>,
        limits: Limits,
        queue: Arc<dyn Queue>,
        dir: tempfile::TempDir,
        runner: RunnerConfig,
    ) -> Worker {
        let key =
            AppKey::from_file(&crate::own_fixtures().join("TEST-ONLY-github-app-key.pem")).unwrap();
        let forge: Arc<dyn Forge> = Arc::new(
            GitHubForge::new(GitHubConfig::new(
                h.fake.api_url().parse().unwrap(),
                GitHubAuth::App {
                    app_id: APP_ID,
                    key: Arc::new(key),
                },
            ))
            .unwrap(),
        );
        let services = Arc::new(Services {
            runs: Arc::new(SqlRunStore::new(queue.db())),
            queue: queue.clone(),
            forge: Some(forge),
            git: GitSource::new(
                format!(
                    "file://{}/origin/{{owner}}/{{repo}}",
                    h.dir.path().display()
                ),
                "github.com",
                dir.path().join("mirrors"),
            ),
            public_url: "https://capstan.example".into(),
            cluster,
            sync: None,
            promoter: None,
            limits,
        });
        let mut registry = Registry::new();
        registry.register::<PrCheck>(PrCheckHandler::new(
            services,
            Arc::new(Renderer::new(RenderConfig {
                cache_limits: limits.render_cache,
                jsonnet: limits.jsonnet,
                jsonnet_evaluator: Some(crate::capstan_binary()),
                ..RenderConfig::default()
            })),
        ));
        let stop = CancellationToken::new();
        let runner = tokio::spawn(
            Runner::new(queue.clone(), registry, runner, Arc::new(Metrics::new()))
                .run(stop.clone()),
        );
        Worker {
            _dir: dir,
            queue,
            stop,
            runner,
        }
    }

    /// Queues a check of PR `number` at `head` (branch `feature` into `main`).
    pub async fn check(&self, number: u64, head: &str) -> i64 {
        self.enqueue(pr_check(number, head, "pull_request.opened", None))
            .await
    }

    pub async fn enqueue(&self, job: PrCheck) -> i64 {
        self.queue.enqueue(&job.into_job()).await.unwrap().unwrap()
    }

    /// Waits until job `id` has finished; its final state.
    pub async fn finished(&self, id: i64) -> JobState {
        let start = std::time::Instant::now();
        loop {
            let state = self.queue.job(id).await.unwrap().unwrap().state;
            if !matches!(state, JobState::Queued | JobState::Running) {
                return state;
            }
            assert!(
                start.elapsed() < Duration::from_secs(120),
                "job {id} never finished"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn runs(&self) -> SqlRunStore {
        SqlRunStore::new(self.queue.db())
    }

    pub async fn stop(self) {
        self.stop.cancel();
        self.runner.await.unwrap();
    }
}
