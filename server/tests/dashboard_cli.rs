//! `capstan serve` and the dashboard as a user meets them: on a fresh clone it starts with the
//! embedded defaults and shows the clone's own apps; on a public address it protects the
//! dashboard with a generated token printed once; `none` on a public address refuses to start.
#![allow(clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

fn capstan() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_capstan"));
    for k in [
        "DATABASE_URL",
        "CAPSTAN_DATABASE_URL",
        "CAPSTAN_CONFIG",
        "CAPSTAN_WEBHOOK_SECRET",
        "CAPSTAN_DASHBOARD_AUTH",
        "CAPSTAN_DASHBOARD_TOKEN",
        "CAPSTAN_DASHBOARD_REPO",
        "KUBECONFIG",
    ] {
        c.env_remove(k);
    }
    // No cluster here: never pick up a developer's kubeconfig.
    c.env("KUBECONFIG", "/nonexistent/kubeconfig");
    c
}

fn git(dir: &Path, args: &[&str]) {
    let ok = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .status()
        .unwrap();
    assert!(ok.success(), "git {args:?}");
}

fn clone_like_repo(dir: &Path) {
    std::fs::create_dir_all(dir.join("argocd")).unwrap();
    std::fs::create_dir_all(dir.join("apps/guestbook")).unwrap();
    std::fs::write(
        dir.join(".capstan.yaml"),
        "version: 1\nrepoURL: https://github.com/acme/gitops.git\nenvironments:\n  - name: staging\n    overlay: overlays/staging\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("argocd/guestbook.yaml"),
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: guestbook\nspec:\n  project: default\n  source:\n    repoURL: https://github.com/acme/gitops.git\n    path: apps/guestbook\n  destination:\n    namespace: guestbook\n",
    )
    .unwrap();
    std::fs::write(
        dir.join("apps/guestbook/kustomization.yaml"),
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nimages:\n  - name: guestbook\n    newTag: 1.2.3\n",
    )
    .unwrap();
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["add", "-A"]);
    git(dir, &["commit", "-qm", "init"]);
}

type Lines = std::io::Lines<BufReader<std::process::ChildStdout>>;

/// Starts the server and returns it with its URL and everything it printed before listening.
fn start(cmd: &mut Command) -> (Child, String, String) {
    let (child, url, printed, _) = start_lines(cmd);
    (child, url, printed)
}

fn start_lines(cmd: &mut Command) -> (Child, String, String, Lines) {
    let mut server = cmd.stdout(Stdio::piped()).spawn().unwrap();
    let mut lines = BufReader::new(server.stdout.take().unwrap()).lines();
    let mut printed = String::new();
    let url = loop {
        let line = lines.next().unwrap().unwrap();
        printed.push_str(&line);
        printed.push('\n');
        if let Some(rest) = line.strip_prefix("capstan listening on ") {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    (server, url, printed, lines)
}

fn get(url: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        capstan_worker::forge::github::install_crypto_provider();
        let mut req = reqwest::Client::new()
            .get(url)
            .timeout(Duration::from_secs(10));
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    })
}

#[test]
fn serve_on_a_fresh_clone_shows_its_apps_on_loopback_without_a_token() {
    let repo = tempfile::tempdir().unwrap();
    clone_like_repo(repo.path());
    let data = tempfile::tempdir().unwrap();
    let (mut server, url, _) = start(
        capstan()
            .args(["serve", "--listen", "127.0.0.1:0", "--workers", "1"])
            .arg("--data-dir")
            .arg(data.path())
            .env("CAPSTAN_LOG", "warn")
            .current_dir(repo.path()),
    );
    let (status, html) = get(&format!("{url}/apps"), &[]);
    let (cluster_status, cluster) = get(&format!("{url}/cluster"), &[]);
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(status, 200, "{html}");
    assert!(
        html.contains("guestbook") && html.contains("guestbook:1.2.3"),
        "{html}"
    );
    assert_eq!(cluster_status, 200);
    assert!(cluster.contains("No Kubernetes access"), "{cluster}");
}

#[test]
fn serve_on_a_public_address_generates_a_token_and_refuses_without_it() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, url, printed) = start(
        capstan()
            .args(["serve", "--listen", "0.0.0.0:0", "--workers", "1"])
            .arg("--data-dir")
            .arg(data.path())
            .env("CAPSTAN_LOG", "warn"),
    );
    let url = url.replace("0.0.0.0", "127.0.0.1");
    let token = std::fs::read_to_string(data.path().join("dashboard-token")).unwrap();
    let token = token.trim();
    let (without, _) = get(&format!("{url}/"), &[]);
    let auth = format!("Bearer {token}");
    let (with, _) = get(&format!("{url}/"), &[("authorization", &auth)]);
    let (health, _) = get(&format!("{url}/healthz"), &[]);
    server.kill().unwrap();
    server.wait().unwrap();
    assert!(printed.contains("dashboard-token"), "{printed}");
    assert!(!printed.contains(token), "the token itself is not printed");
    assert_eq!((without, with, health), (401, 200, 200));
}

#[test]
fn none_on_a_public_address_refuses_to_start() {
    let data = tempfile::tempdir().unwrap();
    let out = capstan()
        .args(["serve", "--listen", "0.0.0.0:0", "--dashboard-auth", "none"])
        .arg("--data-dir")
        .arg(data.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--dashboard-auth (flag)") && err.contains("private diffs"),
        "{err}"
    );
}

#[test]
fn metrics_can_have_their_own_listener() {
    let data = tempfile::tempdir().unwrap();
    let (mut server, url, _, mut lines) = start_lines(
        capstan()
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--metrics-listen",
                "127.0.0.1:0",
            ])
            .args(["--workers", "1"])
            .arg("--data-dir")
            .arg(data.path())
            .env("CAPSTAN_LOG", "warn"),
    );
    let metrics = loop {
        let line = lines.next().unwrap().unwrap();
        if let Some(rest) = line.strip_prefix("capstan metrics on ") {
            break rest.trim().to_string();
        }
    };
    let (on_main, _) = get(&format!("{url}/metrics"), &[]);
    let (separate, body) = get(&metrics, &[]);
    let (dashboard, _) = get(&format!("{url}/"), &[]);
    server.kill().unwrap();
    server.wait().unwrap();
    assert_eq!(on_main, 404, "/metrics moved off the main listener");
    assert_eq!(separate, 200);
    assert!(body.contains("capstan_"), "{body}");
    assert_eq!(dashboard, 200);
}
