//! Fault injection with the real binary (issue #16): a replica is SIGKILLed at each named
//! failpoint between side effects, a fresh one is started on the same store, and the work must
//! end exactly as without the crash: one report comment per pull request for its newest head, one
//! check run per (head, name), every accepted delivery done, no job succeeding twice. Each
//! scenario runs on SQLite and, with `DATABASE_URL`, on PostgreSQL.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;

use capstan_tests::replicas::{ReplicaOptions, World};
use capstan_worker::failpoint;

const PRS: u64 = 3;

fn accepted(status: Option<u16>) -> bool {
    status.is_some_and(|s| (200..300).contains(&s))
}

/// The flags every replica of a scenario gets: recovery often, so a lease left by a dead
/// replica is taken again within the test.
fn options(failpoints: Option<String>) -> ReplicaOptions {
    ReplicaOptions {
        failpoints,
        args: vec!["--recovery-interval-secs".into(), "3".into()],
        ..ReplicaOptions::default()
    }
}

/// Opens [`PRS`] pull requests against a replica armed to die at `point`, waits for it to die
/// there, then lets a fresh replica on the same store finish: the deliveries the dead one never
/// answered are redelivered (GitHub's "Redeliver"), every pull request is pushed again, and a
/// stray redelivery of an old event is sent.
async fn killed_at(world: World, point: &str) {
    let mut newest = BTreeMap::new();
    let mut sent = Vec::new();
    let mut first = world.start(options(Some(format!("{point}=kill"))));
    for pr in 1..=PRS {
        let (head, body) = world.push(pr, 0);
        newest.insert(pr, head);
        let id = format!("d-{pr}-0");
        let status = world.deliver(&first.url, &id, &body).await;
        sent.push((id, body, accepted(status)));
    }
    first.wait_killed_at(point).await;

    let second = world.start(options(None));
    for (id, body, ok) in &sent {
        if !ok {
            world.deliver_until_accepted(&[&second.url], id, body).await;
        }
    }
    // The interrupted work is finished first (a newer push would supersede it and hide what
    // the crash left behind), then every pull request moves on.
    world.wait_settled(&newest).await;
    world.assert_invariants(&newest).await;
    for pr in 1..=PRS {
        let (head, body) = world.push(pr, 1);
        newest.insert(pr, head);
        world
            .deliver_until_accepted(&[&second.url], &format!("d-{pr}-1"), &body)
            .await;
    }
    // A stray redelivery of an event already stored changes nothing.
    let (id, body, _) = &sent[0];
    assert_eq!(world.deliver(&second.url, id, body).await, Some(200));
    world.wait_settled(&newest).await;
    world.assert_invariants(&newest).await;
    drop(second);
    world.cleanup().await;
}

/// A replica dies holding the missed-event recovery lease (it takes it at start) and GitHub
/// never redelivers what it missed: the next replica must take the lease once its period ends
/// and queue every open pull request's head.
async fn killed_holding_the_recovery_lease(world: World) {
    let mut newest = BTreeMap::new();
    for pr in 1..=PRS {
        let (head, _body) = world.push(pr, 0);
        newest.insert(pr, head);
    }
    let point = failpoint::HOLDING_RECOVERY_LEASE;
    let mut first = world.start(options(Some(format!("{point}=kill"))));
    first.wait_killed_at(point).await;
    let second = world.start(options(None));
    world.wait_settled(&newest).await;
    world.assert_invariants(&newest).await;
    drop(second);
    world.cleanup().await;
}

/// Injected errors (not kills) right after the check run is created and after the comment is
/// posted: the job is retried in the same process, finds its check run and comment again, and
/// ends with one of each.
async fn errors_after_side_effects_are_retried(world: World) {
    let spec = format!(
        "{}=error:1,{}=error:1",
        failpoint::AFTER_CHECK_RUN_CREATE,
        failpoint::AFTER_COMMENT
    );
    let replica = world.start(options(Some(spec)));
    let mut newest = BTreeMap::new();
    for pr in 1..=PRS {
        let (head, body) = world.push(pr, 0);
        newest.insert(pr, head);
        world
            .deliver_until_accepted(&[&replica.url], &format!("d-{pr}-0"), &body)
            .await;
    }
    world.wait_settled(&newest).await;
    world.assert_invariants(&newest).await;
    let q = world.queue().await;
    let mut retried = 0;
    for (pr, head) in &newest {
        let key =
            capstan_worker::jobs::PrCheck::dedupe_key(capstan_tests::pr_harness::REPO, *pr, head);
        for job in q.jobs_by_dedupe_key(&key).await.unwrap() {
            let runs = q.job_runs(job.id).await.unwrap();
            retried += runs
                .iter()
                .filter(|r| r.error.as_deref().is_some_and(|e| e.contains("failpoint")))
                .count();
        }
    }
    assert_eq!(retried, 2, "each armed error fired once and was retried");
    drop(replica);
    world.cleanup().await;
}

/// A replica dies right after pushing a promotion commit, before the promotion pull request
/// exists and before the promotion is recorded. The next replica finishes it from the commit's
/// `Capstan-Promotion-Id`: one promotion commit for the merge, one promotion pull request.
async fn killed_after_pushing_a_promotion(backend: capstan_tests::backend::Backend) {
    use capstan_tests::promote_world::{self as pw, PRODUCTION, REPO, STAGING};
    use capstan_tests::replicas::SECRET;
    use capstan_worker::store::{PromotionFilter, PromotionStatus, PromotionStore as _};
    const BRANCH: &str = "capstan/promote/podinfo/production";
    let files: Vec<(&str, Vec<u8>)> = [".capstan.yaml", STAGING, PRODUCTION]
        .into_iter()
        .map(|p| (p, pw::real(p)))
        .collect();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    let w = pw::World::with_healthy_podinfo_on(&refs, backend).await;
    // A person's pull request bumping the staging tag, squash-merged.
    let staging = String::from_utf8(w.file("main", STAGING)).unwrap();
    let old = staging
        .lines()
        .find_map(|l| l.trim().strip_prefix("newTag: "))
        .unwrap()
        .to_string();
    let bumped = staging.replacen(&format!("newTag: {old}"), "newTag: 6.9.9", 1);
    w.commit(
        "bump",
        Some("main"),
        "bump podinfo",
        &[(STAGING, Some(bumped.as_bytes()))],
    );
    let pr = w
        .fake
        .open_pull(REPO, "bump", "main", "Bump podinfo", "alice");
    let (before, after) = w
        .fake
        .merge_pull(REPO, pr, capstan_tests::fake_github::MergeMethod::Squash)
        .unwrap();
    let push = serde_json::json!({
        "ref": "refs/heads/main", "before": before, "after": after,
        "repository": {"full_name": REPO, "default_branch": "main"},
        "pusher": {"name": "alice"},
    });
    let args = vec![
        "--database-url".to_string(),
        w.backend.url.clone(),
        "--github-api-url".into(),
        w.fake.api_url(),
        "--git-url-template".into(),
        format!(
            "file://{}/github/{{owner}}/{{repo}}.git",
            w.dir.path().display()
        ),
        "--argocd-url".into(),
        w.argocd.as_ref().unwrap().url(),
        "--recovery-interval-secs".into(),
        "3600".into(),
    ];
    let env = [
        ("CAPSTAN_GITHUB_TOKEN", pw::PAT),
        ("CAPSTAN_ARGOCD_TOKEN", pw::ARGOCD_TOKEN),
    ];
    let data = |n: &str| {
        [
            "--data-dir".to_string(),
            w.dir.path().join(n).display().to_string(),
        ]
    };
    let http = reqwest::Client::new();
    let point = failpoint::AFTER_PROMOTION_PUSH;
    let mut first = capstan_tests::replicas::spawn(
        &[args.clone(), data("data-1").to_vec()].concat(),
        &env,
        Some(&format!("{point}=kill")),
    );
    let status =
        capstan_tests::webhook::post_signed(&http, &first.url, "push", "push-1", &push, SECRET)
            .await;
    assert!(accepted(status), "{status:?}");
    first.wait_killed_at(point).await;
    assert_eq!(w.promotion_commits(BRANCH).len(), 1, "the push happened");

    let second =
        capstan_tests::replicas::spawn(&[args, data("data-2").to_vec()].concat(), &env, None);
    // The same push redelivered changes nothing; the job left by the dead replica is retried.
    let status =
        capstan_tests::webhook::post_signed(&http, &second.url, "push", "push-1", &push, SECRET)
            .await;
    assert_eq!(status, Some(200));
    let start = std::time::Instant::now();
    let records = loop {
        let records = w
            .store
            .list_promotions(&PromotionFilter::default())
            .await
            .unwrap();
        if records.iter().any(|r| r.status != PromotionStatus::Pending) {
            break records;
        }
        assert!(
            start.elapsed() < capstan_tests::replicas::SETTLE_TIMEOUT,
            "{records:?}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    };
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].status, PromotionStatus::Opened, "{records:?}");
    assert_eq!(w.promotion_commits(BRANCH).len(), 1, "one promotion commit");
    let promos = w
        .fake
        .pulls(REPO)
        .into_iter()
        .filter(|p| p.head_ref == BRANCH)
        .count();
    assert_eq!(promos, 1, "one promotion pull request");
    let jobs = w.backend.queue.jobs_for_delivery("push-1").await.unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(
        jobs[0].state,
        capstan_worker::queue::JobState::Succeeded,
        "{jobs:?}"
    );
    drop(second);
    w.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_pushing_a_promotion_sqlite() {
    killed_after_pushing_a_promotion(capstan_tests::backend::Backend::sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_after_pushing_a_promotion_postgres() {
    let Some(b) =
        capstan_tests::backend::Backend::postgres("killed_after_pushing_a_promotion").await
    else {
        return;
    };
    killed_after_pushing_a_promotion(b).await;
}

macro_rules! scenarios {
    ($($name:ident => $run:expr),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    ($run)(capstan_tests::replicas::World::sqlite().await).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(world) = capstan_tests::replicas::World::postgres(stringify!($name)).await else {
                        return;
                    };
                    ($run)(world).await;
                }
            )*
        }
    };
}

scenarios! {
    killed_after_persisting_a_delivery => |w| super::killed_at(w, capstan_worker::failpoint::AFTER_DELIVERY_STORED),
    killed_holding_a_job_lease => |w| super::killed_at(w, capstan_worker::failpoint::HOLDING_JOB_LEASE),
    killed_after_fetching => |w| super::killed_at(w, capstan_worker::failpoint::AFTER_FETCH),
    killed_after_rendering => |w| super::killed_at(w, capstan_worker::failpoint::AFTER_RENDER),
    killed_after_creating_the_check_run => |w| super::killed_at(w, capstan_worker::failpoint::AFTER_CHECK_RUN_CREATE),
    killed_after_posting_the_comment => |w| super::killed_at(w, capstan_worker::failpoint::AFTER_COMMENT),
    killed_holding_the_recovery_lease => super::killed_holding_the_recovery_lease,
    errors_after_side_effects_are_retried => super::errors_after_side_effects_are_retried,
}

/// PostgreSQL goes away in the middle of a run (every connection closed, new ones refused by a
/// proxy the test owns) and comes back. While it is away the intake answers 503 (so GitHub keeps
/// the delivery to redeliver) and `/readyz` says 503; the process stays up, and once the store is
/// back every pull request ends as if nothing had happened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_going_away_mid_run_loses_nothing() {
    use capstan_tests::tcp_proxy::TcpProxy;
    let Some(world) = World::postgres("postgres_going_away_mid_run_loses_nothing").await else {
        return;
    };
    let proxy = TcpProxy::start(TcpProxy::upstream_of(&world.database_url)).await;
    let mut replica = world.start(ReplicaOptions {
        database_url: Some(proxy.url_through(&world.database_url)),
        ..options(None)
    });
    let mut newest = BTreeMap::new();
    for pr in 1..=PRS {
        let (head, body) = world.push(pr, 0);
        newest.insert(pr, head);
        let status = world
            .deliver(&replica.url, &format!("d-{pr}-0"), &body)
            .await;
        assert!(accepted(status), "PR {pr} before the outage: {status:?}");
    }
    assert_eq!(world.readyz(&replica.url).await, Some(200));

    proxy.cut();
    let mut refused = Vec::new();
    for pr in 1..=PRS {
        let (head, body) = world.push(pr, 1);
        newest.insert(pr, head);
        let id = format!("d-{pr}-1");
        let status = world.deliver(&replica.url, &id, &body).await;
        assert_eq!(status, Some(503), "PR {pr} during the outage");
        refused.push((id, body));
    }
    assert_eq!(world.readyz(&replica.url).await, Some(503));
    assert!(
        replica.exited().is_none(),
        "the process must ride out a store outage"
    );

    proxy.restore();
    let start = std::time::Instant::now();
    while world.readyz(&replica.url).await != Some(200) {
        assert!(
            start.elapsed() < capstan_tests::replicas::SETTLE_TIMEOUT,
            "never ready again"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // GitHub's "Redeliver" for what was refused.
    for (id, body) in &refused {
        world
            .deliver_until_accepted(&[&replica.url], id, body)
            .await;
    }
    world.wait_settled(&newest).await;
    world.assert_invariants(&newest).await;
    assert!(replica.exited().is_none(), "the process exited");
    drop(replica);
    drop(proxy);
    world.cleanup().await;
}

/// On SIGTERM `/readyz` answers 503 at once, while the listener stays open for the drain delay
/// (a webhook sent then is still stored); then the process exits cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_fails_at_once_on_sigterm_while_the_drain_runs() {
    let world = World::sqlite().await;
    let mut replica = world.start(ReplicaOptions {
        args: vec!["--drain-delay-secs".into(), "3".into()],
        ..options(None)
    });
    assert_eq!(world.readyz(&replica.url).await, Some(200));
    replica.sigterm();
    let start = std::time::Instant::now();
    loop {
        match world.readyz(&replica.url).await {
            Some(503) => break,
            Some(200) => {}
            other => panic!("/readyz during the drain: {other:?}"),
        }
        assert!(start.elapsed() < capstan_tests::replicas::SETTLE_TIMEOUT);
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(
        replica.exited().is_none(),
        "the drain ended before /readyz said 503"
    );
    // Still serving while draining: a delivery is stored for whichever replica runs it.
    let (head, body) = world.push(1, 0);
    let status = world.deliver(&replica.url, "d-drain", &body).await;
    assert!(accepted(status), "a delivery during the drain: {status:?}");
    let status = replica.wait_exit("the drain").await;
    assert!(status.success(), "exit status {status}");
    let q = world.queue().await;
    let jobs = q.jobs_for_delivery("d-drain").await.unwrap();
    assert_eq!(jobs.len(), 1, "{jobs:?}");
    assert_eq!(jobs[0].payload["head_sha"], head.as_str());
}

/// A load run: `prs` pull requests pushed `pushes` times each, one signed delivery per push,
/// spread over two replicas on one store.
struct Load {
    prs: u64,
    pushes: usize,
    /// Deliveries per second (a steady rate, many in flight); `None`: four at a time, as fast
    /// as they are answered.
    rate: Option<f64>,
    /// SIGKILL the first replica half-way and start it again at three quarters.
    kill_mid_way: bool,
}

struct LoadResult {
    deliveries: usize,
    sending: std::time::Duration,
    /// Intake latency of every answered delivery, sorted.
    latencies: Vec<std::time::Duration>,
    /// From the last delivery sent to every pull request reported and the queue empty.
    drain: std::time::Duration,
    /// Jobs that ended (succeeded, superseded, or cancelled as their pull request moved on) over
    /// the whole run, per second.
    jobs_per_sec: f64,
    jobs: i64,
}

async fn run_load(world: &World, plan: &Load) -> LoadResult {
    use futures::StreamExt as _;
    use std::time::{Duration, Instant};

    // The commits exist before the run; each push is announced (the pull request's head moves
    // on the fake GitHub) at the moment its delivery is sent.
    let mut pushes = Vec::new();
    for round in 0..plan.pushes {
        for pr in 1..=plan.prs {
            pushes.push((pr, round, world.commit(pr, round)));
        }
    }
    let mut newest = BTreeMap::new();
    for (pr, _, head) in &pushes {
        newest.insert(*pr, head.clone());
    }
    let opts = || ReplicaOptions {
        workers: Some(2),
        ..options(None)
    };
    let mut first = Some(world.start(opts()));
    let second = world.start(opts());
    let total = pushes.len();
    let phases: Vec<std::ops::Range<usize>> = if plan.kill_mid_way {
        vec![0..total / 2, total / 2..total * 3 / 4, total * 3 / 4..total]
    } else {
        std::iter::once(0..total).collect()
    };
    let started = Instant::now();
    let mut latencies = Vec::new();
    let mut unanswered = Vec::new();
    for (phase, range) in phases.into_iter().enumerate() {
        if plan.kill_mid_way && phase == 1 {
            first.as_mut().unwrap().kill();
            first = None;
        }
        if plan.kill_mid_way && phase == 2 {
            first = Some(world.start(opts()));
        }
        let urls: Vec<String> = first
            .iter()
            .chain(std::iter::once(&second))
            .map(|r| r.url.clone())
            .collect();
        let phase_start = Instant::now();
        let offset = range.start;
        let sends = pushes[range]
            .iter()
            .enumerate()
            .map(|(i, (pr, round, head))| {
                let url = urls[i % urls.len()].clone();
                let at = plan
                    .rate
                    .map(|r| phase_start + Duration::from_secs_f64(i as f64 / r));
                async move {
                    if let Some(at) = at {
                        tokio::time::sleep_until(at.into()).await;
                    }
                    let body = world.announce(*pr, head, *round == 0);
                    let id = format!("load-{}", offset + i);
                    let t = Instant::now();
                    let status = world.deliver(&url, &id, &body).await;
                    (id, body, status, t.elapsed())
                }
            });
        let lanes = if plan.rate.is_some() { 256 } else { 4 };
        // The kill lands while deliveries to that replica are in flight and its workers hold
        // jobs: near the end of the first phase rather than between phases.
        let kill_at = (plan.kill_mid_way && phase == 0).then_some(total / 2 * 9 / 10);
        let victim = first.as_ref().map(|r| r.pid());
        let mut answered = 0;
        let mut answers = futures::stream::iter(sends).buffer_unordered(lanes);
        while let Some((id, body, status, took)) = answers.next().await {
            answered += 1;
            if Some(answered) == kill_at
                && let Some(pid) = victim
            {
                nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL).unwrap();
            }
            if accepted(status) {
                latencies.push(took);
            } else {
                unanswered.push((id, body));
            }
        }
    }
    let sending = started.elapsed();
    // GitHub's "Redeliver" for what the killed replica never answered.
    let urls: Vec<&str> = first
        .iter()
        .chain(std::iter::once(&second))
        .map(|r| r.url.as_str())
        .collect();
    for (id, body) in &unanswered {
        world.deliver_until_accepted(&urls, id, body).await;
    }
    let sent_all = Instant::now();
    world.wait_settled(&newest).await;
    let drain = sent_all.elapsed();
    let jobs: i64 = world
        .queue()
        .await
        .depth()
        .await
        .unwrap()
        .iter()
        .filter(|(_, s, _)| {
            matches!(
                s,
                capstan_worker::queue::JobState::Succeeded
                    | capstan_worker::queue::JobState::Superseded
                    | capstan_worker::queue::JobState::Cancelled
            )
        })
        .map(|(_, _, n)| n)
        .sum();
    let jobs_per_sec = jobs as f64 / started.elapsed().as_secs_f64();
    world.assert_invariants(&newest).await;
    assert_eq!(
        world.accepted().len(),
        total,
        "every delivery accepted once"
    );
    latencies.sort();
    LoadResult {
        deliveries: total,
        sending,
        latencies,
        drain,
        jobs_per_sec,
        jobs,
    }
}

fn percentile(sorted: &[std::time::Duration], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted.get(i).map_or(0.0, |d| d.as_secs_f64() * 1000.0)
}

fn print_result(what: &str, r: &LoadResult) {
    println!(
        "{what}: {} deliveries in {:.1} s = {:.0} deliveries/s; intake p50 {:.1} ms, p99 {:.1} ms; \
         {} jobs ended, {:.1} jobs/s over the run; queue drained {:.1} s after the last delivery",
        r.deliveries,
        r.sending.as_secs_f64(),
        r.deliveries as f64 / r.sending.as_secs_f64(),
        percentile(&r.latencies, 0.50),
        percentile(&r.latencies, 0.99),
        r.jobs,
        r.jobs_per_sec,
        r.drain.as_secs_f64(),
    );
}

/// The CI-sized load test: two replicas on one PostgreSQL database, 1,000 deliveries over 100
/// pull requests (ten pushes each), the first replica SIGKILLed half-way and started again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_a_thousand_deliveries_one_killed_mid_way() {
    let Some(world) = World::postgres("two_replicas_a_thousand_deliveries").await else {
        return;
    };
    let r = run_load(
        &world,
        &Load {
            prs: 100,
            pushes: 10,
            rate: None,
            kill_mid_way: true,
        },
    )
    .await;
    print_result("load (CI size, one replica killed)", &r);
    world.cleanup().await;
}

/// The full benchmark: 10,000 deliveries over 200 pull requests at a steady rate
/// (`CAPSTAN_BENCH_RATE`, default 100/s) into two replicas on one PostgreSQL database. Run it in
/// release: `cargo nextest run --release -p capstan-tests --test faults --run-ignored only
/// --no-capture load_benchmark`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: minutes long; run in release by hand (README)"]
async fn load_benchmark() {
    let Some(world) = World::postgres("load_benchmark").await else {
        return;
    };
    let rate = std::env::var("CAPSTAN_BENCH_RATE")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(100.0);
    let r = run_load(
        &world,
        &Load {
            prs: 200,
            pushes: 50,
            rate: Some(rate),
            kill_mid_way: false,
        },
    )
    .await;
    print_result(&format!("load benchmark at {rate}/s"), &r);
    world.cleanup().await;
}
