//! A Helm chart repository on loopback for the end-to-end tests and benchmarks: a packed test
//! chart, its `index.yaml` with the archive's digest, and a server that optionally demands Basic
//! credentials and counts what it served.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;

/// `tar czf` of the chart `web` 1.0.0: a ConfigMap of values and a Deployment.
pub fn web_chart(tmp: &Path) -> Vec<u8> {
    let dir = tmp.join("pack/web");
    std::fs::create_dir_all(dir.join("templates")).expect("a scratch folder");
    let files = [
        ("Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\n"),
        ("values.yaml", "replicas: 1\ngreeting: hello\n"),
        (
            "templates/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\n\
             data:\n  greeting: {{ .Values.greeting | quote }}\n",
        ),
        (
            "templates/deploy.yaml",
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n\
             spec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels:\n      \
             app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      \
             containers:\n      - name: web\n        image: nginx:1.27\n",
        ),
    ];
    for (name, text) in files {
        std::fs::write(dir.join(name), text).expect("writing the chart");
    }
    let out = tmp.join("web-1.0.0.tgz");
    let status = std::process::Command::new("tar")
        .arg("czf")
        .arg(&out)
        .arg("-C")
        .arg(tmp.join("pack"))
        .arg("web")
        .status()
        .expect("running tar");
    assert!(status.success(), "tar failed");
    std::fs::read(out).expect("the packed chart")
}

/// The hex SHA-256 of `bytes`, as `index.yaml` and the chart cache name archives.
pub fn sha256_hex(bytes: &[u8]) -> String {
    aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The files of a repository holding `web` 1.0.0: `index.yaml` and the archive.
pub fn web_repository(tmp: &Path) -> BTreeMap<String, Vec<u8>> {
    let archive = web_chart(tmp);
    let index = format!(
        "apiVersion: v1\nentries:\n  web:\n  - name: web\n    version: 1.0.0\n    \
         urls: [web-1.0.0.tgz]\n    digest: {}\n",
        sha256_hex(&archive)
    );
    let mut files = BTreeMap::new();
    files.insert("index.yaml".to_string(), index.into_bytes());
    files.insert("web-1.0.0.tgz".to_string(), archive);
    files
}

/// A running chart repository: its URL (`http://127.0.0.1:PORT/charts`) and counters of the
/// requests it answered with a file and refused for want of credentials.
pub struct ChartRepo {
    pub url: String,
    pub served: Arc<AtomicUsize>,
    pub refused: Arc<AtomicUsize>,
}

/// Serves `files` under `/charts/`; with `basic` (user, password) only to requests carrying
/// exactly those credentials (401 otherwise).
pub fn serve(files: BTreeMap<String, Vec<u8>>, basic: Option<(&str, &str)>) -> ChartRepo {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a loopback port");
    let url = format!(
        "http://{}/charts",
        listener.local_addr().expect("the bound address")
    );
    let served = Arc::new(AtomicUsize::new(0));
    let refused = Arc::new(AtomicUsize::new(0));
    let (ok, no) = (served.clone(), refused.clone());
    let expected = basic.map(|(user, password)| {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"))
        )
    });
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let Ok(read_half) = stream.try_clone() else {
                continue;
            };
            let mut reader = BufReader::new(read_half);
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut authorised = expected.is_none();
            let mut h = String::new();
            while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                if let Some((k, v)) = h.trim().split_once(':')
                    && k.eq_ignore_ascii_case("authorization")
                {
                    authorised = expected.as_deref() == Some(v.trim());
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
