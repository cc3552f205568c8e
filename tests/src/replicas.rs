//! The real `capstan` binary as processes (one or several replicas on one store), the fake GitHub
//! as an App, and a small GitOps repository pushed to on the fly: what the fault-injection, outage,
//! drain and load tests run. The end state is judged against the fake GitHub and the store by
//! [`World::assert_invariants`]: one report comment per pull request for its newest head, one
//! check run per (head, name), every accepted delivery done, no job run to success twice.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::queue::{self, JobState, Queue};
use serde_json::{Value, json};

use crate::fake_github::{FakeGitHub, FakePull};
use crate::pg::TestDb;
use crate::pr_harness::{APP_ID, INSTALLATION, REPO, app_key_path, fake_github_app};

pub const SECRET: &str = "replicas-test-secret";

/// A generous hang guard for a loaded 2-core machine; never a timing assertion.
pub const SETTLE_TIMEOUT: Duration = Duration::from_secs(240);

/// One `capstan serve` process.
pub struct Replica {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    pub url: String,
}

impl Replica {
    pub fn pid(&self) -> nix::unistd::Pid {
        nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).unwrap())
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn sigterm(&self) {
        nix::sys::signal::kill(self.pid(), nix::sys::signal::Signal::SIGTERM).unwrap();
    }

    /// The exit status once the process has ended, or `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// Waits for the process to die by SIGKILL at the failpoint `point` it was armed with.
    pub async fn wait_killed_at(&mut self, point: &str) {
        use std::os::unix::process::ExitStatusExt as _;
        let status = self
            .wait_exit(&format!("the process armed at {point}"))
            .await;
        assert_eq!(status.signal(), Some(9), "{point}: {status}");
    }

    /// Waits for the process to end (a failpoint killing it, or a drain finishing).
    pub async fn wait_exit(&mut self, what: &str) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.exited() {
                return status;
            }
            assert!(start.elapsed() < SETTLE_TIMEOUT, "{what}: still running");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `capstan serve` (the failpoint-enabled binary) on an ephemeral loopback port with
/// short leases and polls, `args` after the usual flags, `env` added, and `failpoints` as
/// `CAPSTAN_FAILPOINTS`; returns once it listens.
pub fn spawn(args: &[String], env: &[(&str, &str)], failpoints: Option<&str>) -> Replica {
    let mut cmd = Command::new(crate::capstan_failpoint_binary());
    cmd.args(["serve", "--listen", "127.0.0.1:0"])
        .args(["--job-lease-secs", "2", "--poll-interval-ms", "50"])
        .args(["--shutdown-grace-secs", "5", "--kube-dry-run", "off"])
        .args(["--public-url", "https://capstan.example"])
        .args(args)
        .env_remove("DATABASE_URL")
        .env_remove("CAPSTAN_DATABASE_URL")
        .env_remove("CAPSTAN_CONFIG")
        .env_remove("KUBECONFIG")
        .env("CAPSTAN_WEBHOOK_SECRET", SECRET)
        .env(
            "CAPSTAN_LOG",
            std::env::var("CAPSTAN_TEST_LOG").unwrap_or_else(|_| "warn".into()),
        )
        .envs(env.iter().copied())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    match failpoints {
        Some(spec) => cmd.env(capstan_worker::failpoint::ENV, spec),
        None => cmd.env_remove(capstan_worker::failpoint::ENV),
    };
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    let url = loop {
        let Some(line) = lines.next() else {
            let status = child.wait().unwrap();
            panic!("capstan exited before listening: {status}");
        };
        if let Some(rest) = line.unwrap().strip_prefix("capstan listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    Replica { child, url }
}

/// How to start a replica.
#[derive(Clone, Debug, Default)]
pub struct ReplicaOptions {
    /// `CAPSTAN_FAILPOINTS`.
    pub failpoints: Option<String>,
    /// The store to use instead of the world's (e.g. through a proxy the test can cut).
    pub database_url: Option<String>,
    /// More flags, after the usual ones.
    pub args: Vec<String>,
    pub workers: Option<usize>,
}

impl ReplicaOptions {
    pub fn failpoints(spec: &str) -> Self {
        ReplicaOptions {
            failpoints: Some(spec.into()),
            ..Self::default()
        }
    }
}

/// The fake GitHub, the origin repository and the store the replicas share.
pub struct World {
    pub dir: tempfile::TempDir,
    origin: RepoBuilder,
    pub fake: FakeGitHub,
    pub database_url: String,
    db: Option<TestDb>,
    http: reqwest::Client,
    /// Deliveries answered 2xx: id, pull request and head.
    accepted: Mutex<Vec<(String, u64, String)>>,
    started: std::sync::atomic::AtomicUsize,
}

/// The tree the replicas check: two apps on one shared base, so a push changes both, and a
/// render costs little.
fn tree() -> Vec<(String, String)> {
    crate::pr_harness::fanout_tree(2)
}

impl World {
    /// A world on a fresh SQLite file.
    pub async fn sqlite() -> World {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("capstan.db").display());
        Self::build(dir, url, None).await
    }

    /// A world on a fresh PostgreSQL database, or `None` (skip line printed) without
    /// `DATABASE_URL`.
    pub async fn postgres(test: &str) -> Option<World> {
        let db = TestDb::create(test).await?;
        let dir = tempfile::tempdir().unwrap();
        let url = db.url.clone();
        Some(Self::build(dir, url, Some(db)).await)
    }

    async fn build(dir: tempfile::TempDir, database_url: String, db: Option<TestDb>) -> World {
        capstan_worker::forge::github::install_crypto_provider();
        let origin = RepoBuilder::init(dir.path().join("origin/acme/gitops")).unwrap();
        let files = tree();
        let changes: Vec<Change<'_>> = files
            .iter()
            .map(|(p, t)| Change::Write(p, t.as_bytes()))
            .collect();
        origin.commit("initial tree", &changes).unwrap();
        let (fake, _key) = fake_github_app(crate::pr_harness::PAT).await;
        fake.set_permission(REPO, "alice", "write");
        World {
            dir,
            origin,
            fake,
            database_url,
            db,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            accepted: Mutex::new(Vec::new()),
            started: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// Starts a replica of the failpoint-enabled binary and waits until it listens.
    pub fn start(&self, opts: ReplicaOptions) -> Replica {
        let n = self
            .started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let mut args: Vec<String> = vec![
            "--workers".into(),
            opts.workers.unwrap_or(2).to_string(),
            "--data-dir".into(),
            self.dir
                .path()
                .join(format!("data-{n}"))
                .display()
                .to_string(),
            "--database-url".into(),
            opts.database_url
                .unwrap_or_else(|| self.database_url.clone()),
            "--github-api-url".into(),
            self.fake.api_url(),
            "--github-app-id".into(),
            APP_ID.to_string(),
            "--github-app-key-file".into(),
            app_key_path().display().to_string(),
            "--git-url-template".into(),
            format!(
                "file://{}/origin/{{owner}}/{{repo}}",
                self.dir.path().display()
            ),
        ];
        args.extend(opts.args);
        spawn(&args, &[], opts.failpoints.as_deref())
    }

    /// The store, opened by the test.
    pub async fn queue(&self) -> std::sync::Arc<dyn Queue> {
        queue::open(&self.database_url).await.unwrap()
    }

    fn branch_tip(&self, branch: &str) -> Option<git2::Oid> {
        let repo = git2::Repository::open(self.dir.path().join("origin/acme/gitops")).unwrap();
        repo.refname_to_id(&format!("refs/heads/{branch}")).ok()
    }

    /// Pushes a new commit to PR `number`'s branch (created from `main`), makes it the pull
    /// request's head on the fake GitHub, and returns the head and the `pull_request` event
    /// GitHub would send (`opened` for the first push, `synchronize` after).
    pub fn push(&self, number: u64, round: usize) -> (String, Value) {
        let head = self.commit(number, round);
        let body = self.announce(number, &head, round == 0);
        (head, body)
    }

    /// Commits a change to the shared base on PR `number`'s branch (created from `main`); the
    /// new head. The pull request on the fake GitHub is not changed ([`World::announce`]).
    pub fn commit(&self, number: u64, round: usize) -> String {
        let branch = format!("pr-{number}");
        let main = self.branch_tip("main").unwrap();
        let previous = self.branch_tip(&branch);
        self.origin
            .set_ref("refs/heads/main", previous.unwrap_or(main))
            .unwrap();
        let level = format!("level-{number}-{round}");
        let cm = crate::pr_harness::settings_configmap(&level);
        let head = self
            .origin
            .commit(
                &format!("PR {number} round {round}"),
                &[Change::Write("shared/base/settings.yaml", cm.as_bytes())],
            )
            .unwrap();
        self.origin
            .set_ref(&format!("refs/heads/{branch}"), head)
            .unwrap();
        self.origin.set_ref("refs/heads/main", main).unwrap();
        head.to_string()
    }

    /// Makes `head` PR `number`'s head on the fake GitHub; the `pull_request` event GitHub sends
    /// then (`opened` or `synchronize`).
    pub fn announce(&self, number: u64, head: &str, opened: bool) -> Value {
        let branch = format!("pr-{number}");
        let main = self.branch_tip("main").unwrap().to_string();
        self.fake.add_pull(
            REPO,
            FakePull {
                number,
                state: "open".into(),
                title: format!("PR {number}"),
                author: "alice".into(),
                head_sha: head.to_string(),
                head_ref: branch.clone(),
                base_sha: main.clone(),
                base_ref: "main".into(),
                ..FakePull::default()
            },
        );
        json!({
            "action": if opened { "opened" } else { "synchronize" },
            "number": number,
            "pull_request": {
                "number": number,
                "state": "open",
                "head": {"sha": head, "ref": branch},
                "base": {"sha": main, "ref": "main"},
                "merged": false,
            },
            "repository": {"full_name": REPO, "default_branch": "main"},
            "installation": {"id": INSTALLATION},
            "sender": {"login": "alice", "type": "User"},
        })
    }

    /// POSTs a signed `pull_request` delivery to `url`; the status, or `None` when the request
    /// did not get an answer (the process died or the connection was refused). A 2xx is
    /// remembered as accepted.
    pub async fn deliver(&self, url: &str, id: &str, body: &Value) -> Option<u16> {
        let status =
            crate::webhook::post_signed(&self.http, url, "pull_request", id, body, SECRET).await;
        if status.is_some_and(|s| (200..300).contains(&s)) {
            let pr = body["number"].as_u64().unwrap_or_default();
            let head = body["pull_request"]["head"]["sha"]
                .as_str()
                .unwrap_or_default();
            self.accepted
                .lock()
                .unwrap()
                .push((id.to_string(), pr, head.to_string()));
        }
        status
    }

    /// [`World::deliver`] to `url`, then to each of `others` in turn until one accepts (GitHub's
    /// "Redeliver"); panics when none does.
    pub async fn deliver_until_accepted(&self, urls: &[&str], id: &str, body: &Value) {
        for _ in 0..200 {
            for url in urls {
                if self
                    .deliver(url, id, body)
                    .await
                    .is_some_and(|s| (200..300).contains(&s))
                {
                    return;
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("delivery {id} was never accepted");
    }

    /// The ids of the deliveries answered 2xx.
    pub fn accepted(&self) -> Vec<String> {
        let accepted = self.accepted.lock().unwrap();
        accepted.iter().map(|(id, _, _)| id.clone()).collect()
    }

    /// `GET {url}/readyz`'s status, or `None` without an answer.
    pub async fn readyz(&self, url: &str) -> Option<u16> {
        self.http
            .get(format!("{url}/readyz"))
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()
            .map(|r| r.status().as_u16())
    }

    /// Capstan's report comments on PR `number`.
    pub fn report_comments(&self, number: u64) -> Vec<String> {
        self.fake
            .comments(REPO, number)
            .into_iter()
            .filter(|c| c.body.starts_with("<!-- capstan:report"))
            .map(|c| c.body)
            .collect()
    }

    /// Waits until no job is queued or running and every pull request in `newest` (number →
    /// newest head) shows its report for that head with its check run completed.
    pub async fn wait_settled(&self, newest: &BTreeMap<u64, String>) {
        let q = self.queue().await;
        let start = Instant::now();
        loop {
            let busy = match q.depth().await {
                Ok(depth) => depth.iter().any(|(_, state, n)| {
                    matches!(state, JobState::Queued | JobState::Running) && *n > 0
                }),
                Err(_) => true,
            };
            let reported = newest.iter().all(|(pr, head)| {
                let mark = format!("`{}`", &head[..7]);
                self.report_comments(*pr).iter().any(|b| b.contains(&mark))
                    && self
                        .fake
                        .check_runs(REPO)
                        .iter()
                        .any(|r| r["head_sha"] == head.as_str() && r["status"] == "completed")
            });
            if !busy && reported {
                return;
            }
            assert!(
                start.elapsed() < SETTLE_TIMEOUT,
                "never settled: depth {:?}, {} of {} pull requests reported",
                q.depth().await,
                newest
                    .iter()
                    .filter(|(pr, head)| self
                        .report_comments(**pr)
                        .iter()
                        .any(|b| b.contains(&head[..7])))
                    .count(),
                newest.len()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The end state every scenario must reach (see the module doc).
    pub async fn assert_invariants(&self, newest: &BTreeMap<u64, String>) {
        for (pr, head) in newest {
            let reports = self.report_comments(*pr);
            assert_eq!(reports.len(), 1, "PR {pr}: report comments {reports:#?}");
            assert!(
                reports[0].contains(&format!("`{}`", &head[..7])),
                "PR {pr}: the report is not for the newest head {head}: {}",
                reports[0]
            );
        }
        let mut per_head: BTreeMap<(String, String), Vec<Value>> = BTreeMap::new();
        for run in self.fake.check_runs(REPO) {
            let key = (
                run["head_sha"].as_str().unwrap_or_default().to_string(),
                run["name"].as_str().unwrap_or_default().to_string(),
            );
            per_head.entry(key).or_default().push(run);
        }
        for ((head, name), runs) in &per_head {
            assert_eq!(runs.len(), 1, "{name} check runs for {head}: {runs:#?}");
        }
        for head in newest.values() {
            let run = &per_head[&(head.clone(), "capstan".to_string())][0];
            assert_eq!(run["status"], "completed", "{run:#}");
        }

        let q = self.queue().await;
        let accepted = self.accepted.lock().unwrap().clone();
        for (id, pr, head) in &accepted {
            assert!(
                q.delivery(id).await.unwrap().is_some(),
                "delivery {id} not stored"
            );
            // The check of the delivery's head: its own job, or the one already queued for that
            // head (by recovery or an earlier delivery) that the queue deduplicated it against.
            let key = capstan_worker::jobs::PrCheck::dedupe_key(REPO, *pr, head);
            let jobs = q.jobs_by_dedupe_key(&key).await.unwrap();
            assert!(
                !jobs.is_empty(),
                "delivery {id} (PR {pr} at {head}) has no job"
            );
            for job in jobs {
                // A check that found its pull request moved on by itself (the newer delivery
                // not stored yet, so nothing superseded it) ends cancelled: done, for an old head.
                let pr = job.payload["number"].as_u64().unwrap_or_default();
                let old_head = newest
                    .get(&pr)
                    .is_some_and(|h| job.payload["head_sha"] != h.as_str());
                let cancelled_old = job.state == JobState::Cancelled && old_head;
                assert!(
                    matches!(job.state, JobState::Succeeded | JobState::Superseded)
                        || cancelled_old,
                    "delivery {id}: job {} is {} ({:?})",
                    job.id,
                    job.state,
                    job.last_error
                );
                let runs = q.job_runs(job.id).await.unwrap();
                let succeeded = runs.iter().filter(|r| r.outcome == "succeeded").count();
                assert!(succeeded <= 1, "job {} succeeded twice: {runs:?}", job.id);
            }
        }
        for (kind, state, n) in q.depth().await.unwrap() {
            assert!(
                !matches!(
                    state,
                    JobState::Failed | JobState::Dead | JobState::Queued | JobState::Running
                ),
                "{n} {kind} jobs are {state}"
            );
        }
    }

    /// Drops the test database, if any.
    pub async fn cleanup(self) {
        if let Some(db) = self.db {
            db.drop_db().await;
        }
    }
}
