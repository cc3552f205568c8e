//! Benchmark, ignored by default: webhook received → final comment, for a pull request that
//! changes a shared base included by 50 and by 200 apps (fake GitHub, local repository).
//! Prints the numbers; asserts only that the pipeline finished.
//!
//! ```text
//! cargo test --release -p capstan-tests --test pr_pipeline_bench -- --ignored --nocapture
//! ```
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use capstan_tests::pr_harness::{Auth, Harness, fanout_tree};

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
