//! Benchmark, ignored by default: webhook received → final comment, for a pull request that
//! changes a shared base included by 50 and by 200 apps (fake GitHub, local repository), and by
//! 1,000 (`fanout_1000`).
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

/// The single-node target of #16: a 1,000-app monorepo whose shared base changes. Verification
/// is `off` so the measured pushes are the steady state (the first run after an engine change
/// verifies every kustomization once with the binary, after its comment; 1,000 of them would hold
/// the next push of the same pull request for minutes). Prints the first run and each next push.
/// `CAPSTAN_BENCH_APPS` changes the size; `CAPSTAN_BENCH_LOG` (a log filter) prints the logs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn fanout_1000_webhook_to_final_comment() {
    let apps: usize = std::env::var("CAPSTAN_BENCH_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    // `CAPSTAN_BENCH_LOG=capstan_worker::pipeline=info` prints the pr_check step timings.
    if let Ok(filter) = std::env::var("CAPSTAN_BENCH_LOG") {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
            .with_test_writer()
            .try_init();
    }
    let h = Harness::start(Auth::App, &fanout_tree(apps)).await;
    let settings = "repoURL: https://github.com/acme/gitops\nrender:\n  verify: off\n";
    let tip = h.push(
        "settings",
        &[Change::Write(".capstan.yaml", settings.as_bytes())],
    );
    h.origin.set_ref("refs/heads/main", tip).unwrap();
    let (cold, _) = measure_to_idle(&h, 1, "bench", "debug").await;
    let mut warm = Vec::new();
    for level in ["warn", "error", "trace", "debug", "warn"] {
        warm.push(measure_to_idle(&h, 1, "bench", level).await.0);
    }
    let parts = h.report_comments(1).len();
    h.stop().await;
    let mut sorted = warm.clone();
    sorted.sort();
    println!(
        "fan-out {apps} apps: webhook → final comment {} ms (first run, empty mirror); next pushes {:?} ms: best {} ms, median {} ms; {parts} comment part(s)",
        cold.as_millis(),
        warm.iter().map(Duration::as_millis).collect::<Vec<_>>(),
        sorted[0].as_millis(),
        sorted[sorted.len() / 2].as_millis(),
    );
}

/// 50 multi-source Helm apps (a chart from an HTTP chart repository, values from Git through
/// `$values`) that share one values file. The first push fills the chart cache and the render
/// cache of the base; the measured pushes each change the shared file, so every app is rendered
/// again at head. The peer is `helm template` run by hand for the same 50 apps at head, one after
/// another, with the chart archive already on disk: the least any tool must do.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "benchmark: run with --ignored --nocapture"]
async fn helm_50_values_change_warm_chart_cache() {
    use capstan_tests::chart_repo;
    // `CAPSTAN_BENCH_APPS` shrinks it for a quick try of the benchmark itself.
    let apps: usize = std::env::var("CAPSTAN_BENCH_APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(50);
    let tmp = tempfile::tempdir().unwrap();
    let charts = chart_repo::web_repository(tmp.path());
    let archive = tmp.path().join("web-1.0.0.tgz");
    let repo = chart_repo::serve(charts, None);
    let helm = capstan_worker::render::helm::test_binary().expect("a helm for the benchmark");

    let mut files = vec![(
        ".capstan.yaml".to_string(),
        "repoURL: https://github.com/acme/gitops\nrender:\n  verify: off\n".to_string(),
    )];
    files.push(("values/common.yaml".into(), "greeting: hello\n".into()));
    for i in 0..apps {
        files.push((
            format!("argocd/apps/web-{i}.yaml"),
            format!(
                "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web-{i}\n  \
                 namespace: argocd\nspec:\n  project: default\n  sources:\n  - repoURL: {}\n    \
                 chart: web\n    targetRevision: 1.0.0\n    helm:\n      \
                 valueFiles: [$values/values/common.yaml, $values/values/web-{i}.yaml]\n  \
                 - repoURL: https://github.com/acme/gitops\n    targetRevision: main\n    ref: values\n  \
                 destination:\n    server: https://kubernetes.default.svc\n    namespace: web-{i}\n",
                repo.url
            ),
        ));
        files.push((
            format!("values/web-{i}.yaml"),
            format!("replicas: {}\n", 1 + i % 3),
        ));
    }
    let repo_url = repo.url.clone();
    let cache = tmp.path().join("chart-cache").display().to_string();
    let h = Harness::start_with_setup(
        Auth::App,
        &files,
        capstan_tests::pr_harness::Setup {
            args: Box::new(move |a| {
                a.chart_repos = Some(repo_url);
                a.chart_cache_dir = Some(cache);
            }),
            env: Vec::new(),
            helm: Some(helm.clone()),
        },
    )
    .await;
    let mut times = Vec::new();
    // Greetings no other text of the report contains.
    for greeting in ["hello-one", "hello-two", "hello-three", "hello-four"] {
        let head = h
            .push(
                "values",
                &[Change::Write(
                    "values/common.yaml",
                    format!("greeting: {greeting}\n").as_bytes(),
                )],
            )
            .to_string();
        // The fake forge's pull request follows the branch's new head.
        h.open_pull(7, "values");
        let start = Instant::now();
        h.pull_request_event("synchronize", 7, "values", &head)
            .await;
        let wait = std::env::var("CAPSTAN_BENCH_WAIT_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_secs)
            .unwrap_or(Duration::from_secs(900));
        let done = |h: &Harness| {
            h.check_runs_for(&head)
                .iter()
                .any(|r| r["status"] == "completed")
                && h.report_comments(7)
                    .iter()
                    .any(|c| c.body.contains(greeting))
        };
        while !done(&h) {
            // Say what the report holds, so a wrong wait is told from a slow pipeline.
            assert!(
                start.elapsed() < wait,
                "no final comment with {greeting}: check runs {:?}, comments {:?}",
                h.check_runs_for(&head),
                h.report_comments(7)
                    .iter()
                    .map(|c| c.body.chars().take(3000).collect::<String>())
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        times.push(start.elapsed());
        let summary = h.check_runs_for(&head)[0]["output"]["summary"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        assert!(!summary.contains("not checked"), "{summary}");
    }
    h.stop().await;
    let first = times[0];
    let warm = times[1..].iter().min().copied().unwrap();

    // The peer: the same 50 head renders with helm itself.
    let common = tmp.path().join("common.yaml");
    std::fs::write(&common, "greeting: hello-four\n").unwrap();
    let start = Instant::now();
    for i in 0..apps {
        let own = tmp.path().join(format!("web-{i}.yaml"));
        std::fs::write(&own, format!("replicas: {}\n", 1 + i % 3)).unwrap();
        let out = std::process::Command::new(&helm)
            .args(["template", &format!("web-{i}")])
            .arg(&archive)
            .args(["--namespace", &format!("web-{i}"), "--values"])
            .arg(&common)
            .arg("--values")
            .arg(&own)
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
    }
    let peer = start.elapsed();
    println!(
        "helm {apps} apps, shared values change: webhook → final comment {} ms (first push, cold caches), {} ms (next pushes, best of 3, chart cache warm); `helm template` by hand for the {apps} head renders {} ms; capstan / helm {:.2}×",
        first.as_millis(),
        warm.as_millis(),
        peer.as_millis(),
        warm.as_secs_f64() / peer.as_secs_f64()
    );
}
