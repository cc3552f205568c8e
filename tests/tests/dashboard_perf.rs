//! Server-side render time of the dashboard pages with 1,000 stored runs (and 1,000 promotions),
//! measured through the router including the store queries. Prints the numbers; asserts only that
//! every page rendered (tests never assert times). Run with
//! `cargo nextest run -p capstan-tests --test dashboard_perf --no-capture`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use capstan_server::app::{self, AppState};
use capstan_server::dashboard::Dashboard;
use capstan_tests::backend::Backend;
use capstan_tests::dashboard::{MemoryPromotions, app as section, gitops_repo, promotion, report};
use capstan_tests::webhook::send;
use capstan_worker::store::runs::SqlRunStore;
use capstan_worker::store::{NewRun, PromotionStatus, RunOutcome, RunStatus, RunStore};

const RUNS: u64 = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_render_quickly_with_a_thousand_runs() {
    let b = Backend::sqlite().await;
    let runs = Arc::new(SqlRunStore::new(b.queue.db()));
    let mut last = 0;
    for pr in 0..RUNS {
        let at = runs
            .create_run(&NewRun {
                repo: format!("acme/repo-{}", pr % 7),
                pr,
                head_sha: format!("{pr:0>40}"),
                trigger: "pull_request.synchronize".into(),
                job_id: None,
            })
            .await
            .unwrap();
        let id = at.run;
        let url = format!("http://localhost/runs/{id}");
        runs.finish_run(
            at,
            &RunOutcome {
                status: if pr % 5 == 0 {
                    RunStatus::Failure
                } else {
                    RunStatus::Success
                },
                error: None,
                report: Some(report(
                    "acme/gitops",
                    pr,
                    &url,
                    (0..3)
                        .map(|i| section(&format!("app-{i}"), "staging", 20))
                        .collect(),
                )),
                comment_ids: vec![],
            },
        )
        .await
        .unwrap();
        last = id;
    }
    let promotions = Arc::new(MemoryPromotions::default());
    for i in 0..1000 {
        promotions.add(promotion(
            i,
            &format!("app-{}", i % 20),
            "production",
            PromotionStatus::Committed,
        ));
    }
    let repo = tempfile::tempdir().unwrap();
    gitops_repo(repo.path());
    let d = Dashboard::new(runs, b.queue.clone())
        .with_promotions(promotions)
        .with_repo(repo.path().to_path_buf());
    let st = AppState::new(b.queue.clone(), vec!["s".into()]).with_dashboard(Arc::new(d));
    let r = app::router(Arc::new(st), true);

    let pages = [
        "/".to_string(),
        "/api/overview".into(),
        "/runs".into(),
        "/runs?limit=1000".into(),
        format!("/runs/{last}"),
        "/apps".into(),
        "/promotions?limit=1000".into(),
        "/services".into(),
        "/cluster".into(),
    ];
    println!(
        "server-side render with {RUNS} runs (median of 20, {} build):",
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        }
    );
    for p in &pages {
        let mut times: Vec<Duration> = Vec::new();
        for _ in 0..20 {
            let t = Instant::now();
            let (status, _) = send(&r, Request::get(p.as_str()).body(Body::empty()).unwrap()).await;
            times.push(t.elapsed());
            assert_eq!(status, StatusCode::OK, "{p}");
        }
        times.sort();
        println!(
            "  {p:<28} median {:>7.2} ms   max {:>7.2} ms",
            ms(times[10]),
            ms(times[19])
        );
    }
    b.cleanup().await;
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
