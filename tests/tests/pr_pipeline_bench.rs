//! Benchmark, ignored by default: webhook received → final comment, for a pull request that
//! changes a shared base included by 50 and by 200 apps (fake GitHub, local repository).
//! Prints the numbers; asserts only that the pipeline finished.
//!
//! The second benchmark runs the 200-app fan-out with `render.verify: off` and with `sample`
//! (the default, share 0.1) in the same process and prints both and their ratio: the time to
//! the final comment (what a reviewer waits for) and to the end of the job (which includes the
//! deferred verifications).
//!
//! ```text
//! cargo test --release -p capstan-tests --test pr_pipeline_bench -- --ignored --nocapture
//! ```
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use capstan_tests::pr_harness::{Auth, Harness, fanout_tree};
use capstan_worker::git::fixture::Change;

/// Time from the webhook POST to the completed check run (the comment is posted just before).
async fn measure(h: &Harness, pr: u64, branch: &str, level: &str) -> Duration {
    let head = h.push_level(branch, level);
    h.open_pull(pr, branch);
    let start = Instant::now();
    h.pull_request_event("synchronize", pr, branch, &head).await;
    h.wait_for("the final comment", Duration::from_secs(600), |h| {
        h.check_runs_for(&head)
            .iter()
            .any(|r| r["status"] == "completed")
            && h.report_comments(pr)
                .iter()
                .any(|c| c.body.contains(&format!("LOG_LEVEL: {level}")))
    })
    .await;
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn fanout_webhook_to_final_comment() {
    for apps in [50, 200] {
        let h = Harness::start(Auth::App, &fanout_tree(apps)).await;
        let cold = measure(&h, 1, "bench", "debug").await;
        let warm = measure(&h, 1, "bench", "warn").await;
        let parts = h.report_comments(1).len();
        println!(
            "fan-out {apps:>3} apps: webhook → final comment {:>6} ms (first run, empty mirror), {:>6} ms (next push); {parts} comment part(s)",
            cold.as_millis(),
            warm.as_millis()
        );
        h.stop().await;
    }
}

/// Time to the final comment and to the end of the job (deferred verifications included).
async fn measure_to_idle(h: &Harness, pr: u64, branch: &str, level: &str) -> (Duration, Duration) {
    let start = Instant::now();
    let comment = measure(h, pr, branch, level).await;
    h.wait_idle().await;
    (comment, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn fanout_200_verify_sample_vs_off() {
    // `CAPSTAN_BENCH_APPS` shrinks it for a quick try of the benchmark itself.
    let apps: usize = std::env::var("CAPSTAN_BENCH_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let mut results = Vec::new();
    for mode in ["off", "sample"] {
        let h = Harness::start(Auth::App, &fanout_tree(apps)).await;
        // The mode goes on main, as the base branch's settings rule.
        let settings =
            format!("repoURL: https://github.com/acme/gitops\nrender:\n  verify: {mode}\n");
        let tip = h.push(
            "settings",
            &[Change::Write(".capstan.yaml", settings.as_bytes())],
        );
        h.origin.set_ref("refs/heads/main", tip).unwrap();
        let (cold, cold_idle) = measure_to_idle(&h, 1, "bench", "debug").await;
        let mut warm = Vec::new();
        // Each push changes the level again ("info" is the base branch's: no diff).
        for level in ["warn", "error", "trace"] {
            warm.push(measure_to_idle(&h, 1, "bench", level).await);
        }
        let best = warm.iter().min_by_key(|w| w.0).copied().unwrap();
        println!(
            "verify={mode:<6} {apps} apps: first run {:>6} ms to comment, {:>6} ms to job end; next pushes (best of 3) {:>6} ms to comment, {:>6} ms to job end",
            cold.as_millis(),
            cold_idle.as_millis(),
            best.0.as_millis(),
            best.1.as_millis()
        );
        results.push(best);
        h.stop().await;
    }
    let ratio = |a: Duration, b: Duration| b.as_secs_f64() / a.as_secs_f64();
    println!(
        "sample / off, next push: to comment {:.3}×, to job end {:.3}×",
        ratio(results[0].0, results[1].0),
        ratio(results[0].1, results[1].1)
    );
}
