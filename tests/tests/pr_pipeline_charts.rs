//! A Helm app whose chart comes from a private HTTP chart repository, through the whole service
//! (issue 17): the chart settings come from the service's configuration (repositories, cache,
//! credentials from the environment), a PR changes the app's values file in Git, and the report
//! shows the Helm diff. The repository (served here) wants Basic credentials; they reach it and
//! never the report.
#![allow(clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use base64::Engine;
use capstan_tests::pr_harness::{Auth, Harness, Setup};
use capstan_worker::git::fixture::Change;

const WAIT: Duration = Duration::from_secs(120);
const USER: &str = "chart-reader";
const PASSWORD: &str = "chart-pa55-s3cret";

/// `tar czf` of the chart `web` 1.0.0: a ConfigMap of values and a Deployment.
fn chart(tmp: &Path) -> Vec<u8> {
    let dir = tmp.join("pack/web");
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: web\nversion: 1.0.0\n",
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), "replicas: 1\ngreeting: hello\n").unwrap();
    std::fs::write(
        dir.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\n\
         data:\n  greeting: {{ .Values.greeting | quote }}\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("templates/deploy.yaml"),
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n\
         spec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels:\n      \
         app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      \
         containers:\n      - name: web\n        image: nginx:1.27\n",
    )
    .unwrap();
    let out = tmp.join("web-1.0.0.tgz");
    let status = std::process::Command::new("tar")
        .arg("czf")
        .arg(&out)
        .arg("-C")
        .arg(tmp.join("pack"))
        .arg("web")
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}

/// A chart repository on loopback that answers only requests with the right Basic credentials
/// (401 otherwise). Counts authorised and refused requests.
struct ChartRepo {
    url: String,
    served: Arc<AtomicUsize>,
    refused: Arc<AtomicUsize>,
}

fn serve(files: BTreeMap<String, Vec<u8>>) -> ChartRepo {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/charts", listener.local_addr().unwrap());
    let served = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let (ok, no) = (served.clone(), refused.clone());
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{USER}:{PASSWORD}"))
    );
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut authorised = false;
            let mut h = String::new();
            while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                if let Some((k, v)) = h.trim().split_once(':')
                    && k.eq_ignore_ascii_case("authorization")
                {
                    authorised = v.trim() == expected;
                }
                h.clear();
            }
            let path = line.split_whitespace().nth(1).unwrap_or_default();
            let reply = if !authorised {
                no.fetch_add(1, Ordering::SeqCst);
                b"HTTP/1.1 401 Unauthorized\r\nwww-authenticate: Basic realm=\"charts\"\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec()
            } else if let Some(body) = path.strip_prefix("/charts/").and_then(|p| files.get(p)) {
                ok.fetch_add(1, Ordering::SeqCst);
                let mut r = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                    body.len()
                )
                .into_bytes();
                r.extend_from_slice(body);
                r
            } else {
                b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_vec()
            };
            let _ = stream.write_all(&reply);
        }
    });
    ChartRepo {
        url,
        served,
        refused,
    }
}

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
    let archive = chart(tmp.path());
    let digest: String = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &archive)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let index = format!(
        "apiVersion: v1\nentries:\n  web:\n  - name: web\n    version: 1.0.0\n    \
         urls: [web-1.0.0.tgz]\n    digest: {digest}\n"
    );
    let mut files = BTreeMap::new();
    files.insert("index.yaml".to_string(), index.into_bytes());
    files.insert("web-1.0.0.tgz".to_string(), archive);
    let repo = serve(files);

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
