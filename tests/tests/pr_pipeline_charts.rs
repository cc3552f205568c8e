//! A Helm app whose chart comes from a private HTTP chart repository, through the whole service
//! (issue 17): the chart settings come from the service's configuration (repositories, cache,
//! credentials from the environment), a PR changes the app's values file in Git, and the report
//! shows the Helm diff. The repository (served here) wants Basic credentials; they reach it and
//! never the report.
#![allow(clippy::unwrap_used)]

use std::sync::atomic::Ordering;
use std::time::Duration;

use capstan_tests::chart_repo;
use capstan_tests::pr_harness::{Auth, Harness, Setup};
use capstan_worker::git::fixture::Change;

const WAIT: Duration = Duration::from_secs(120);
const USER: &str = "chart-reader";
const PASSWORD: &str = "chart-pa55-s3cret";

fn tree(chart_repo: &str) -> Vec<(String, String)> {
    vec![
        (
            ".capstan.yaml".into(),
            "repoURL: https://github.com/acme/gitops\n".into(),
        ),
        (
            "argocd/apps/web.yaml".into(),
            format!(
                "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\n  \
                 namespace: argocd\nspec:\n  project: default\n  sources:\n  - repoURL: {chart_repo}\n    \
                 chart: web\n    targetRevision: 1.0.0\n    helm:\n      \
                 valueFiles: [$values/values/web.yaml]\n  - repoURL: https://github.com/acme/gitops\n    \
                 targetRevision: main\n    ref: values\n  destination:\n    \
                 server: https://kubernetes.default.svc\n    namespace: web\n"
            ),
        ),
        ("values/web.yaml".into(), "replicas: 2\n".into()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_values_change_of_a_chart_from_a_private_repository_shows_the_helm_diff() {
    let tmp = tempfile::tempdir().unwrap();
    let files = chart_repo::web_repository(tmp.path());
    let digest = chart_repo::sha256_hex(&files["web-1.0.0.tgz"]);
    let repo = chart_repo::serve(files, Some((USER, PASSWORD)));

    let helm = capstan_worker::render::helm::test_binary().expect("a helm for the tests");
    let repo_url = repo.url.clone();
    let cache = tmp.path().join("chart-cache");
    let cache_arg = cache.display().to_string();
    let credentials = format!(
        "[[credential]]\nrepository = \"{repo_url}\"\nusername = \"{USER}\"\npassword = \"{PASSWORD}\"\n"
    );
    let h = Harness::start_with_setup(
        Auth::App,
        &tree(&repo.url),
        Setup {
            args: Box::new(move |a| {
                a.chart_repos = Some(repo_url);
                a.chart_cache_dir = Some(cache_arg);
            }),
            env: vec![("CAPSTAN_CHART_CREDENTIALS".into(), credentials)],
            helm: Some(helm),
        },
    )
    .await;
    let head = h
        .push(
            "more-replicas",
            &[Change::Write(
                "values/web.yaml",
                b"replicas: 5\ngreeting: hi there\n",
            )],
        )
        .to_string();
    h.open_pull(21, "more-replicas");
    h.pull_request_event("opened", 21, "more-replicas", &head)
        .await;
    h.wait_for("the check run to complete", WAIT, |h| {
        h.check_runs_for(&head)
            .iter()
            .any(|r| r["status"] == "completed")
    })
    .await;
    let runs = h.check_runs_for(&head);
    let run = &runs[0];
    let summary = run["output"]["summary"].as_str().unwrap();
    assert!(summary.contains("| web |"), "{summary}");
    assert!(!summary.contains("not checked"), "{summary}");
    let comments = h.report_comments(21);
    let body = &comments[0].body;
    // The Helm diff: the chart's objects with the values from the PR.
    assert!(
        body.contains("Deployment") && body.contains("ConfigMap"),
        "{body}"
    );
    assert!(
        body.contains("-  replicas: 2") || body.contains("- replicas: 2"),
        "{body}"
    );
    assert!(
        body.contains("+  replicas: 5") || body.contains("+ replicas: 5"),
        "{body}"
    );
    assert!(body.contains("hi there"), "{body}");
    assert!(!body.contains(PASSWORD) && !summary.contains(PASSWORD));
    // The repository saw the credentials (index and archive once: then the cache serves both
    // sides), and the archive sits in the cache folder by digest.
    assert_eq!(repo.refused.load(Ordering::SeqCst), 0);
    assert_eq!(repo.served.load(Ordering::SeqCst), 2);
    assert!(cache.join("sha256").join(format!("{digest}.tgz")).is_file());
    h.stop().await;
}
