//! A repository with one local helm chart (`charts/web`, values files, a ConfigMap template) and
//! an Application file, shared by the helm backend tests.
#![allow(clippy::unwrap_used, dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use capstan_worker::apps::DiscoveryConfig;
use capstan_worker::git::GitRepo;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::render::charts::ChartSettings;
use capstan_worker::render::{RenderConfig, Renderer};

/// This repository's URL in the tests' Applications.
pub const URL: &str = "https://example.com/gitops.git";

/// A renderer with the tests' Helm engine and `charts`.
pub fn renderer(charts: ChartSettings) -> Renderer {
    Renderer::new(RenderConfig {
        helm_binary: Some(capstan_worker::render::helm::test_binary().unwrap()),
        charts,
        ..RenderConfig::default()
    })
}

/// Discovery that knows [`URL`] as this repository.
pub fn cfg() -> DiscoveryConfig {
    DiscoveryConfig {
        repo_urls: vec![URL.into()],
        ..DiscoveryConfig::default()
    }
}

/// Commits `charts/web` and `apps.yaml` holding `app` into a new repository at `dir`.
pub fn chart_repo(dir: &Path, app: &str) -> (GitRepo, git2::Oid) {
    let b = RepoBuilder::init(dir).unwrap();
    let c = b
        .commit(
            "chart",
            &[
                Change::Write("apps.yaml", app.as_bytes()),
                Change::Write(
                    "charts/web/Chart.yaml",
                    b"apiVersion: v2\nname: web\nversion: 0.1.0\n",
                ),
                Change::Write("charts/web/values.yaml", b"replicas: 1\n"),
                Change::Write("charts/web/values-prod.yaml", b"replicas: 2\n"),
                Change::Write("shared/values.yaml", b"team: a\n"),
                Change::Write(
                    "charts/web/templates/cm.yaml",
                    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n",
                ),
            ],
        )
        .unwrap();
    (GitRepo::open(dir).unwrap(), c)
}

/// A Helm chart repository on loopback: `GET /index.yaml` and the archives it lists. Counts
/// the requests it answers.
pub struct ChartRepo {
    pub url: String,
    pub hits: Arc<AtomicUsize>,
}

pub fn serve(files: BTreeMap<String, Vec<u8>>) -> ChartRepo {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/charts", listener.local_addr().unwrap());
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut line = String::new();
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            // Drain the headers.
            let mut h = String::new();
            while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                h.clear();
            }
            counter.fetch_add(1, Ordering::SeqCst);
            let path = line.split_whitespace().nth(1).unwrap_or_default();
            let reply = match path.strip_prefix("/charts/").and_then(|p| files.get(p)) {
                Some(body) => {
                    let mut r = format!(
                        "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    r.extend_from_slice(body);
                    r
                }
                None => b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    .to_vec(),
            };
            let _ = stream.write_all(&reply);
        }
    });
    ChartRepo { url, hits }
}

/// `tar czf` of a chart folder written from `files` (name → text) under `name/`.
pub fn archive(tmp: &Path, name: &str, files: &[(&str, &str)]) -> Vec<u8> {
    let dir = tmp.join(format!("pack-{name}"));
    for (p, text) in files {
        let f = dir.join(name).join(p);
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, text).unwrap();
    }
    let out = tmp.join(format!("{name}.tgz"));
    let status = std::process::Command::new("tar")
        .arg("czf")
        .arg(&out)
        .arg("-C")
        .arg(&dir)
        .arg(name)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(out).unwrap()
}
