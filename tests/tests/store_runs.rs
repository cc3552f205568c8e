//! The run and hold store, on SQLite and PostgreSQL alike.
#![allow(clippy::unwrap_used)]

use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_worker::diff::AppDiff;
use capstan_worker::report::{AppSection, ReportFinding, RunReport, Severity};
use capstan_worker::store::runs::SqlRunStore;
use capstan_worker::store::{AttemptId, NewRun, RunFilter, RunOutcome, RunStatus, RunStore};

both_backends!(
    run_lifecycle_keeps_the_report,
    listings_filter_and_omit_reports,
    holds_keep_their_first_holder,
    stored_runs_are_scrubbed,
    attempts_at_one_head_share_its_run_which_reads_as_the_latest,
    concurrent_creation_for_one_head_ends_with_one_run,
);

fn new_run(pr: u64, sha: &str) -> NewRun {
    NewRun {
        repo: "acme/gitops".into(),
        pr,
        head_sha: sha.into(),
        trigger: "pull_request.opened".into(),
        job_id: Some(7),
    }
}

fn report(sha: &str) -> RunReport {
    RunReport {
        repo: "acme/gitops".into(),
        pr: 1,
        head_sha: sha.into(),
        run_url: "http://localhost:8080/runs/1".into(),
        held_by: None,
        limits: Vec::new(),
        apps: vec![AppSection {
            name: "web-staging".into(),
            environment: Some("staging".into()),
            diff: AppDiff {
                app: "web-staging".into(),
                reasons: vec!["inputs changed: web/base/deployment.yaml".into()],
                changes: vec![],
                problems: vec![],
                notes: vec![],
            },
            findings: vec![ReportFinding {
                rule_id: "pss-run-as-non-root".into(),
                severity: Severity::Deny,
                object: "apps/Deployment web/web".into(),
                file: Some("web/base/deployment.yaml".into()),
                line: Some(12),
                message: "runs as root".into(),
            }],
            preexisting: Vec::new(),
            argocd: None,
            render_error: None,
            live_diff: None,
        }],
    }
}

async fn run_lifecycle_keeps_the_report(b: &Backend) {
    let store = SqlRunStore::new(b.queue.db());
    let sha = "a".repeat(40);
    let id = store.create_run(&new_run(1, &sha)).await.unwrap();
    let running = store.run(id.run).await.unwrap().unwrap();
    assert_eq!(running.status, RunStatus::Running);
    assert!(running.finished_at.is_none() && running.report.is_none());

    store.set_check_run(id, 4_000_000_001).await.unwrap();
    store
        .finish_run(
            id,
            &RunOutcome {
                status: RunStatus::Failure,
                error: None,
                report: Some(report(&sha)),
                comment_ids: vec![11, 12],
            },
        )
        .await
        .unwrap();
    let done = store.run(id.run).await.unwrap().unwrap();
    assert_eq!(done.status, RunStatus::Failure);
    assert_eq!(done.check_run_id, Some(4_000_000_001));
    assert_eq!(done.comment_ids, [11, 12]);
    assert_eq!((done.apps, done.denies, done.warns), (1, 1, 0));
    let back = done.report.unwrap();
    assert_eq!(back.apps[0].findings[0].line, Some(12));
    assert_eq!(back.apps[0].diff.reasons.len(), 1);
    assert!(store.run(id.run + 1000).await.unwrap().is_none());

    let posted = store
        .last_posted_run("acme/gitops", 1)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(posted.id, id.run);
    assert!(
        store
            .last_posted_run("acme/gitops", 2)
            .await
            .unwrap()
            .is_none()
    );
}

/// Issue 13, finding 11: upstream text quoted in a run (tool stderr in a render error, an
/// ArgoCD message in the run error) is scrubbed before the dashboard can show it.
async fn stored_runs_are_scrubbed(b: &Backend) {
    let store = SqlRunStore::new(b.queue.db());
    let sha = "a".repeat(40);
    let id = store.create_run(&new_run(1, &sha)).await.unwrap();
    let mut r = report(&sha);
    r.apps[0].render_error = Some(
        "kustomize build failed: fetching https://deploy:hunter2hunter2@git.example/x.git".into(),
    );
    store
        .finish_run(
            id,
            &RunOutcome {
                status: RunStatus::Error,
                error: Some("argocd: rpc error: Authorization: Bearer abcdefgh12345678".into()),
                report: Some(r),
                comment_ids: vec![],
            },
        )
        .await
        .unwrap();
    let done = store.run(id.run).await.unwrap().unwrap();
    let error = done.error.unwrap();
    assert!(!error.contains("abcdefgh12345678"), "{error}");
    assert!(
        error.contains("Authorization: Bearer [REDACTED]"),
        "{error}"
    );
    let render_error = done.report.unwrap().apps[0].render_error.clone().unwrap();
    assert!(!render_error.contains("hunter2hunter2"), "{render_error}");
    // The commit id is not a secret and survives.
    assert_eq!(done.head_sha, sha);
}

async fn listings_filter_and_omit_reports(b: &Backend) {
    let store = SqlRunStore::new(b.queue.db());
    let mut ids = vec![];
    for (pr, sha) in [(1, "1"), (2, "2"), (1, "3")] {
        let id = store
            .create_run(&new_run(pr, &sha.repeat(40)))
            .await
            .unwrap();
        ids.push(id);
    }
    store
        .finish_run(
            ids[0],
            &RunOutcome {
                status: RunStatus::Superseded,
                error: None,
                report: Some(report(&"1".repeat(40))),
                comment_ids: vec![],
            },
        )
        .await
        .unwrap();
    let all = store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(
        all.iter().map(|r| r.id).collect::<Vec<_>>(),
        [ids[2].run, ids[1].run, ids[0].run]
    );
    assert!(all.iter().all(|r| r.report.is_none()));
    let pr1 = store
        .list_runs(&RunFilter {
            pr: Some(1),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(pr1.len(), 2);
    let superseded = store
        .list_runs(&RunFilter {
            status: Some(RunStatus::Superseded),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(superseded.len(), 1);
    assert_eq!(superseded[0].id, ids[0].run);
    let limited = store
        .list_runs(&RunFilter {
            repo: Some("acme/gitops".into()),
            limit: 1,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);
    let other = store
        .list_runs(&RunFilter {
            repo: Some("acme/other".into()),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert!(other.is_empty());
}

async fn holds_keep_their_first_holder(b: &Backend) {
    let store = SqlRunStore::new(b.queue.db());
    assert!(store.hold("acme/gitops", 5).await.unwrap().is_none());
    let first = store.set_hold("acme/gitops", 5, "alice").await.unwrap();
    assert_eq!(first.held_by, "alice");
    let again = store.set_hold("acme/gitops", 5, "bob").await.unwrap();
    assert_eq!(again.held_by, "alice", "a second hold does not take over");
    assert!(store.hold("acme/gitops", 6).await.unwrap().is_none());
    assert!(store.clear_hold("acme/gitops", 5).await.unwrap());
    assert!(!store.clear_hold("acme/gitops", 5).await.unwrap());
    assert!(store.hold("acme/gitops", 5).await.unwrap().is_none());
}

fn outcome(status: RunStatus, error: Option<&str>, comment_ids: Vec<u64>) -> RunOutcome {
    RunOutcome {
        status,
        error: error.map(str::to_string),
        report: (status == RunStatus::Success).then(|| report(&"a".repeat(40))),
        comment_ids,
    }
}

/// Issue 19, item 4: a second attempt at a head (a retry, another job for it) reopens the head's
/// run; the run reads as its latest attempt, an attempt that ends late changes only its own row,
/// the compared base is the latest attempt's, and a new head is a new run.
async fn attempts_at_one_head_share_its_run_which_reads_as_the_latest(b: &Backend) {
    let store = SqlRunStore::new(b.queue.db());
    let sha = "a".repeat(40);
    let (tip, fork) = ("b".repeat(40), "c".repeat(40));
    let first = store.create_run(&new_run(1, &sha)).await.unwrap();
    assert_eq!(first.attempt, 1);
    store.set_check_run(first, 900).await.unwrap();
    store.record_base(first, &tip, &fork).await.unwrap();
    store
        .finish_run(first, &outcome(RunStatus::Success, None, vec![21, 22]))
        .await
        .unwrap();

    let mut retry = new_run(1, &sha);
    retry.trigger = "command.diff".into();
    retry.job_id = Some(8);
    let second = store.create_run(&retry).await.unwrap();
    assert_eq!(
        second,
        AttemptId {
            run: first.run,
            attempt: 2
        }
    );
    let running = store.run(first.run).await.unwrap().unwrap();
    assert_eq!(running.status, RunStatus::Running);
    assert_eq!(
        (running.trigger.as_str(), running.job_id),
        ("command.diff", Some(8))
    );
    assert!(running.report.is_none() && running.finished_at.is_none());
    assert_eq!(
        (running.base_sha, running.merge_base),
        (None, None),
        "not fetched yet"
    );
    assert_eq!(
        running.check_run_id,
        Some(900),
        "the check run is still the head's"
    );

    // The second attempt fails before posting anything: the run says so, and keeps the comment
    // the first attempt posted (it is still on the pull request).
    store
        .finish_run(
            second,
            &outcome(RunStatus::Error, Some("GitHub answered 500"), vec![]),
        )
        .await
        .unwrap();
    // A late end of the first attempt (its lease had expired) does not overwrite the latest.
    store
        .finish_run(first, &outcome(RunStatus::Success, None, vec![21]))
        .await
        .unwrap();
    store.record_base(first, &fork, &fork).await.unwrap();
    let run = store.run(first.run).await.unwrap().unwrap();
    assert_eq!(run.status, RunStatus::Error);
    assert_eq!(run.error.as_deref(), Some("GitHub answered 500"));
    assert_eq!(run.attempts, 2);
    assert_eq!(run.comment_ids, [21, 22]);
    assert_eq!(run.base_sha, None);
    let history: Vec<(i64, RunStatus, Option<i64>, &str)> = run
        .attempt_history
        .iter()
        .map(|a| (a.attempt, a.status, a.job_id, a.trigger.as_str()))
        .collect();
    assert_eq!(
        history,
        [
            (1, RunStatus::Success, Some(7), "pull_request.opened"),
            (2, RunStatus::Error, Some(8), "command.diff"),
        ]
    );
    assert_eq!(
        run.attempt_history[1].error.as_deref(),
        Some("GitHub answered 500")
    );
    assert!(run.attempt_history.iter().all(|a| a.finished_at.is_some()));

    // The third attempt compares and succeeds: base and merge base are its own.
    let third = store.create_run(&new_run(1, &sha)).await.unwrap();
    store.record_base(third, &tip, &fork).await.unwrap();
    store
        .finish_run(third, &outcome(RunStatus::Success, None, vec![21, 22]))
        .await
        .unwrap();
    let listed = store.list_runs(&RunFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 1, "one row per head: {listed:#?}");
    assert_eq!(listed[0].attempts, 3);
    assert_eq!(listed[0].status, RunStatus::Success);
    assert_eq!(listed[0].base_sha.as_deref(), Some(tip.as_str()));
    assert_eq!(listed[0].merge_base.as_deref(), Some(fork.as_str()));
    assert!(
        listed[0].attempt_history.is_empty(),
        "listings leave attempts out"
    );

    // Another head of the same PR, and the same head on another PR, are runs of their own.
    let other_head = store
        .create_run(&new_run(1, &"d".repeat(40)))
        .await
        .unwrap();
    let other_pr = store.create_run(&new_run(2, &sha)).await.unwrap();
    assert_eq!(other_head.attempt, 1);
    assert_eq!(other_pr.attempt, 1);
    let ids = [first.run, other_head.run, other_pr.run];
    assert_eq!(
        ids.iter().collect::<std::collections::BTreeSet<_>>().len(),
        3
    );
}

/// Two replicas (or two workers) opening the run of one head at the same moment end with one
/// run and one attempt each, numbered without gaps or repeats.
async fn concurrent_creation_for_one_head_ends_with_one_run(b: &Backend) {
    const N: i64 = 12;
    let sha = "e".repeat(40);
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(N as usize));
    let mut tasks = Vec::new();
    for _ in 0..N {
        let store = SqlRunStore::new(b.queue.db());
        let (barrier, run) = (barrier.clone(), new_run(3, &sha));
        tasks.push(tokio::spawn(async move {
            barrier.wait().await;
            store.create_run(&run).await.unwrap()
        }));
    }
    let mut opened = Vec::new();
    for t in tasks {
        opened.push(t.await.unwrap());
    }
    let run = opened[0].run;
    assert!(opened.iter().all(|a| a.run == run), "{opened:?}");
    let mut numbers: Vec<i64> = opened.iter().map(|a| a.attempt).collect();
    numbers.sort_unstable();
    assert_eq!(numbers, (1..=N).collect::<Vec<_>>());
    let store = SqlRunStore::new(b.queue.db());
    let listed = store
        .list_runs(&RunFilter {
            pr: Some(3),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0].attempts, N);
    let full = store.run(run).await.unwrap().unwrap();
    assert_eq!(full.attempt_history.len(), N as usize);
}

type LegacyRow = (
    i64,
    i64,
    char,
    &'static str,
    &'static str,
    Option<i64>,
    &'static str,
);

/// The runs a database holds from before runs were one per head: `migrations/<backend>` up to
/// 0004 applied, and these rows written the way that schema stored them. (id, pr, head, status,
/// trigger, check run, comment ids.)
const LEGACY_ROWS: [LegacyRow; 4] = [
    (
        1,
        1,
        'a',
        "success",
        "pull_request.opened",
        Some(500),
        "[11,12]",
    ),
    (
        2,
        1,
        'b',
        "success",
        "pull_request.synchronize",
        Some(501),
        "[11]",
    ),
    (3, 1, 'a', "error", "command.diff", None, "[]"),
    (4, 2, 'a', "failure", "recovery", Some(502), "[13]"),
];

/// Applies the migrations before 0005 (from a copy of their files, as an older Capstan did) and
/// writes [`LEGACY_ROWS`]; then opening the queue applies the rest.
async fn legacy_database(backend: &str, url: &str, pool_dir: &std::path::Path) {
    let source = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../worker/src/queue/migrations")
        .join(backend);
    let old = pool_dir.join("old-migrations");
    std::fs::create_dir_all(&old).unwrap();
    for entry in std::fs::read_dir(&source).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if name.as_str() < "0005" {
            std::fs::copy(&path, old.join(&name)).unwrap();
        }
    }
    let migrator = sqlx::migrate::Migrator::new(old.as_path()).await.unwrap();
    let insert = "INSERT INTO runs (id, repo, pr, head_sha, base_sha, trigger_name, job_id, \
                  status, started_at, finished_at, check_run_id, comment_ids) \
                  VALUES ($1, 'acme/gitops', $2, $3, NULL, $4, $1, $5, $6, $7, $8, $9)";
    macro_rules! legacy {
        ($pool:expr, $insert:expr) => {{
            migrator.run(&$pool).await.unwrap();
            for (id, pr, head, status, trigger, check, comments) in LEGACY_ROWS {
                sqlx::query(sqlx::AssertSqlSafe($insert))
                    .bind(id)
                    .bind(pr)
                    .bind(head.to_string().repeat(40))
                    .bind(trigger)
                    .bind(status)
                    .bind(id * 1000)
                    .bind(id * 1000 + 10)
                    .bind(check)
                    .bind(comments)
                    .execute(&$pool)
                    .await
                    .unwrap();
            }
            $pool.close().await;
        }};
    }
    if backend == "sqlite" {
        let options = <sqlx::sqlite::SqliteConnectOptions as std::str::FromStr>::from_str(url)
            .unwrap()
            .create_if_missing(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.unwrap();
        legacy!(pool, insert.replace('$', "?"));
    } else {
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        legacy!(pool, insert.to_string());
        // The ids were written by hand: the sequence goes on after them, as it would have.
        let pool = sqlx::PgPool::connect(url).await.unwrap();
        sqlx::query("SELECT setval('runs_id_seq', 4)")
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
}

/// Migration 0005 on a database with runs: each old row becomes one attempt of its head's run
/// (the newest row stays the run, with the comment an older attempt posted), an old run id
/// still finds its run, and the next attempt at a merged head joins it.
async fn legacy_runs_become_one_attempt_each(url: &str) {
    let queue = capstan_worker::queue::open(url).await.unwrap();
    let store = SqlRunStore::new(queue.db());
    let runs = store.list_runs(&RunFilter::default()).await.unwrap();
    let heads: Vec<(i64, u64, char, i64)> = runs
        .iter()
        .map(|r| (r.id, r.pr, r.head_sha.chars().next().unwrap(), r.attempts))
        .collect();
    assert_eq!(heads, [(4, 2, 'a', 1), (3, 1, 'a', 2), (2, 1, 'b', 1)]);
    let merged = store.run(3).await.unwrap().unwrap();
    assert_eq!(merged.status, RunStatus::Error, "the newest row's outcome");
    assert_eq!(merged.check_run_id, Some(500));
    assert_eq!(
        merged.comment_ids,
        [11, 12],
        "the comment an older attempt posted"
    );
    let history: Vec<(i64, Option<i64>, &str, RunStatus)> = merged
        .attempt_history
        .iter()
        .map(|a| (a.attempt, a.job_id, a.trigger.as_str(), a.status))
        .collect();
    assert_eq!(
        history,
        [
            (1, Some(1), "pull_request.opened", RunStatus::Success),
            (2, Some(3), "command.diff", RunStatus::Error),
        ]
    );
    assert_eq!(
        store.run(1).await.unwrap().unwrap().id,
        3,
        "a link to the old run id lands on its head's run"
    );
    assert_eq!(store.run(4).await.unwrap().unwrap().attempts, 1);

    let mut again = new_run(1, &"a".repeat(40));
    again.job_id = Some(9);
    let next = store.create_run(&again).await.unwrap();
    assert_eq!(next, AttemptId { run: 3, attempt: 3 });
    let fresh = store
        .create_run(&new_run(1, &"f".repeat(40)))
        .await
        .unwrap();
    assert!(fresh.run > 4, "new runs never reuse an old id: {fresh:?}");
    drop(store);
    drop(queue);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_legacy_runs_become_one_attempt_each() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("capstan.db").display());
    legacy_database("sqlite", &url, dir.path()).await;
    legacy_runs_become_one_attempt_each(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_legacy_runs_become_one_attempt_each() {
    let Some(db) = capstan_tests::pg::TestDb::create("legacy_runs_become_one_attempt_each").await
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    legacy_database("postgres", &db.url, dir.path()).await;
    legacy_runs_become_one_attempt_each(&db.url).await;
    db.drop_db().await;
}
