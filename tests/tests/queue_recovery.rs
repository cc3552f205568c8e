//! Missed-event recovery against a fake forge, on both backends.
#![allow(clippy::unwrap_used)]

use async_trait::async_trait;
use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_worker::forge::{ForgeError, Inventory, OpenPullRequest};
use capstan_worker::jobs::PrCheck;
use capstan_worker::queue::{Finish, JobState};
use capstan_worker::recovery::recover_once;

both_backends!(
    queues_heads_without_a_check_and_only_those,
    forge_errors_are_reported_not_swallowed,
    replicas_take_turns_at_recovery,
);

/// Serves a fixed list of repositories and open PRs, like the GitHub API would page them.
struct FakeForge {
    prs: Vec<OpenPullRequest>,
    fail: bool,
}

/// A [`FakeForge`] that counts the listings it serves: one per recovery pass.
struct Counting(FakeForge, std::sync::atomic::AtomicUsize);

#[async_trait]
impl Inventory for Counting {
    async fn repositories(&self) -> Result<Vec<String>, ForgeError> {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0.repositories().await
    }
    async fn open_pull_requests(&self, repo: &str) -> Result<Vec<OpenPullRequest>, ForgeError> {
        self.0.open_pull_requests(repo).await
    }
}

#[async_trait]
impl Inventory for FakeForge {
    async fn repositories(&self) -> Result<Vec<String>, ForgeError> {
        let mut repos: Vec<String> = self.prs.iter().map(|p| p.repo.clone()).collect();
        repos.dedup();
        Ok(repos)
    }
    async fn open_pull_requests(&self, repo: &str) -> Result<Vec<OpenPullRequest>, ForgeError> {
        if self.fail {
            return Err(ForgeError::Other {
                repo: repo.into(),
                message: "502 Bad Gateway".into(),
            });
        }
        Ok(self
            .prs
            .iter()
            .filter(|p| p.repo == repo)
            .cloned()
            .collect())
    }
}

fn pr(repo: &str, number: u64, sha: &str) -> OpenPullRequest {
    OpenPullRequest {
        repo: repo.into(),
        number,
        head_sha: sha.into(),
        head_ref: format!("topic-{number}"),
        base_ref: "main".into(),
    }
}

fn check(repo: &str, number: u64, sha: &str) -> capstan_worker::queue::NewJob {
    PrCheck {
        repo: repo.into(),
        number,
        head_sha: sha.into(),
        head_ref: None,
        base_ref: None,
        installation_id: None,
        trigger: "pull_request.opened".into(),
        sender: None,
    }
    .into_job()
}

async fn queues_heads_without_a_check_and_only_those(b: &Backend) {
    let q = &b.queue;
    // #1: checked already (finished). #2: a check is queued. #3: only an older head was checked.
    // #4: never seen (its webhook was lost). #5: lives in a repo outside the allowlist.
    let done = q
        .enqueue(&check("acme/gitops", 1, "a1"))
        .await
        .unwrap()
        .unwrap();
    q.claim(
        "w",
        &["pr_check".to_string()],
        std::time::Duration::from_secs(30),
    )
    .await
    .unwrap();
    q.finish(
        done,
        "w",
        1,
        &Finish::Failed {
            error: "deny".into(),
        },
    )
    .await
    .unwrap();
    q.enqueue(&check("acme/gitops", 2, "b1"))
        .await
        .unwrap()
        .unwrap();
    q.enqueue(&check("acme/gitops", 3, "c-old"))
        .await
        .unwrap()
        .unwrap();
    let forge = FakeForge {
        prs: vec![
            pr("acme/gitops", 1, "a1"),
            pr("acme/gitops", 2, "b1"),
            pr("acme/gitops", 3, "c-new"),
            pr("acme/gitops", 4, "d1"),
            pr("other/repo", 5, "e1"),
        ],
        fail: false,
    };
    let allowed = |repo: &str| repo.starts_with("acme/");
    let report = recover_once(q.as_ref(), &forge, &allowed).await.unwrap();
    assert_eq!(report.repos, 1);
    assert_eq!(report.open_prs, 4);
    assert_eq!(
        report.enqueued,
        vec![
            ("acme/gitops".to_string(), 3, "c-new".to_string()),
            ("acme/gitops".to_string(), 4, "d1".to_string()),
        ]
    );
    let recovered = q
        .jobs_by_dedupe_key(&PrCheck::dedupe_key("acme/gitops", 4, "d1"))
        .await
        .unwrap();
    assert_eq!(recovered.len(), 1);
    assert_eq!(recovered[0].payload["trigger"], "recovery");
    // The new head of #3 superseded the queued check of its old head.
    let old = q
        .jobs_by_dedupe_key(&PrCheck::dedupe_key("acme/gitops", 3, "c-old"))
        .await
        .unwrap();
    assert_eq!(old[0].state, JobState::Superseded);
    // A second pass finds nothing new.
    let again = recover_once(q.as_ref(), &forge, &allowed).await.unwrap();
    assert!(again.enqueued.is_empty());
}

async fn forge_errors_are_reported_not_swallowed(b: &Backend) {
    let forge = FakeForge {
        prs: vec![pr("acme/gitops", 1, "a1")],
        fail: true,
    };
    let err = recover_once(b.queue.as_ref(), &forge, &|_: &str| true)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("acme/gitops"), "{err}");
    assert!(b.queue.depth().await.unwrap().is_empty());
}

/// `serve` runs a recovery pass at start when a forge is configured.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_runs_recovery_at_start_with_a_forge() {
    use capstan_server::config::{Config, ConfigArgs};
    use std::sync::Arc;

    let dir = tempfile::tempdir().unwrap();
    let args = ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().display().to_string()),
        repo_allowlist: Some("acme/*".into()),
        ..ConfigArgs::default()
    };
    let env = |k: &str| (k == "CAPSTAN_WEBHOOK_SECRET").then(|| "s".to_string());
    let cfg = Config::load_with(&args, &env).unwrap();
    let url = cfg.database_url.clone();
    // `serve` wants a whole forge (its handlers use every role), so this one speaks GitHub's API
    // through the in-process fake rather than serving only the recovery role.
    let fake = capstan_tests::fake_github::FakeGitHub::start("ghp_recovery", "", None).await;
    for p in [pr("acme/gitops", 21, "f1"), pr("elsewhere/x", 1, "z")] {
        fake.add_pull(
            &p.repo,
            capstan_tests::fake_github::FakePull {
                number: p.number,
                state: "open".into(),
                head_sha: p.head_sha,
                head_ref: p.head_ref,
                base_ref: p.base_ref,
                ..Default::default()
            },
        );
    }
    let forge: Arc<dyn capstan_worker::forge::Forge> = Arc::new(
        capstan_worker::forge::github::GitHubForge::new(
            capstan_worker::forge::github::GitHubConfig::new(
                fake.api_url().parse().unwrap(),
                capstan_worker::forge::github::GitHubAuth::Token("ghp_recovery".into()),
            ),
        )
        .unwrap(),
    );
    let stop = tokio_util::sync::CancellationToken::new();
    let service = tokio::spawn(capstan_server::serve::run(
        cfg,
        Some(forge),
        Some(stop.clone()),
    ));
    let key = PrCheck::dedupe_key("acme/gitops", 21, "f1");
    let mut found = Vec::new();
    for _ in 0..500 {
        if let Ok(q) = capstan_worker::queue::open(&url).await {
            found = q.jobs_by_dedupe_key(&key).await.unwrap();
            if !found.is_empty() {
                let other = PrCheck::dedupe_key("elsewhere/x", 1, "z");
                assert!(q.jobs_by_dedupe_key(&other).await.unwrap().is_empty());
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    stop.cancel();
    service.await.unwrap().unwrap();
    assert_eq!(found.len(), 1, "recovery queued the missed head");
    assert_eq!(found[0].payload["trigger"], "recovery");
}

/// Replicas sharing a database take turns: in a period one of them runs recovery, so the forge is
/// listed once however many replicas there are; when the period's lease has expired, the next
/// tick of any replica takes it.
async fn replicas_take_turns_at_recovery(b: &Backend) {
    use std::sync::Arc;
    use std::sync::atomic::Ordering;
    use std::time::Duration;
    let forge = Arc::new(Counting(
        FakeForge {
            prs: vec![pr("acme/gitops", 1, "a1")],
            fail: false,
        },
        Default::default(),
    ));
    // A period no test run outlasts: any second pass would be a replica running out of turn.
    let period = Duration::from_secs(3600);
    let stop = tokio_util::sync::CancellationToken::new();
    let mut replicas = Vec::new();
    for r in 0..3 {
        let queue = capstan_worker::queue::open(&b.url).await.unwrap();
        replicas.push(tokio::spawn(capstan_worker::recovery::run_periodically(
            queue,
            forge.clone(),
            Arc::new(|_: &str| true),
            period,
            format!("replica-{r}"),
            stop.clone(),
        )));
    }
    let start = std::time::Instant::now();
    while forge.1.load(Ordering::SeqCst) == 0 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no replica ran recovery"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every replica ticks at start; give the others time to try.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        forge.1.load(Ordering::SeqCst),
        1,
        "one replica listed the forge"
    );
    stop.cancel();
    for r in replicas {
        r.await.unwrap();
    }

    // The lease itself: held for its period, free to anyone after it.
    let q = &b.queue;
    let short = Duration::from_millis(50);
    assert!(q.take_periodic("t", "a", short).await.unwrap());
    assert!(
        !q.take_periodic("t", "b", Duration::from_secs(60))
            .await
            .unwrap()
    );
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert!(
        q.take_periodic("t", "b", Duration::from_secs(60))
            .await
            .unwrap()
    );
    assert!(!q.take_periodic("t", "a", short).await.unwrap());
}
