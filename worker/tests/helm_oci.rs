//! Charts from an OCI registry (issue 17): a real registry (Debian's `docker-registry`, the
//! CNCF distribution server) on loopback with token authentication, a chart this test packages
//! and pushes through the distribution push API, then rendered by Capstan and compared with the
//! Helm engine rendering the same archive locally.
//!
//! The registry sends clients to a token service here (JWTs signed with a key `openssl` makes
//! for the test, which the registry trusts): anonymous clients may pull `public/*`, `reader` may
//! pull anything, `pusher` may push. Without the registry binary the test fails, naming the
//! package: it never passes without having pulled from a real registry.
#![allow(clippy::unwrap_used)]

mod chart_support;

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine;
use chart_support::{URL, archive, cfg, renderer};
use serde_json::{Value, json};
use sha2::Digest;

use capstan_worker::apps::{RenderedApp, Snapshot};
use capstan_worker::git::GitRepo;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::render::Renderer;
use capstan_worker::render::charts::{ChartSettings, Credential, Password};

const SERVICE: &str = "capstan-test-registry";
const ISSUER: &str = "capstan-test-issuer";
const READER: (&str, &str) = ("reader", "reader-s3cret-pw");
const PUSHER: (&str, &str) = ("pusher", "pusher-s3cret-pw");

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The `docker-registry` binary, or a failure that says what to install.
fn registry_binary() -> PathBuf {
    for name in ["docker-registry", "registry"] {
        if let Some(p) = capstan_worker::render::exec::which(name) {
            return p;
        }
    }
    panic!(
        "the OCI registry tests need the `docker-registry` binary (Debian package \
         docker-registry, installed by .ci/run); it is not on PATH"
    );
}

fn openssl(args: &[&str], dir: &Path, input: Option<&[u8]>) -> Vec<u8> {
    let mut child = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("openssl (Debian package openssl) on PATH");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.unwrap_or_default()).unwrap();
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// The token service: `GET /token?service=…&scope=repository:NAME:ACTIONS`, Basic credentials
/// optional. Counts the tokens it hands out.
struct TokenService {
    realm: String,
    issued: Arc<AtomicUsize>,
}

fn token_service(dir: &Path) -> TokenService {
    let dir = dir.to_path_buf();
    let cert_der = openssl(&["x509", "-in", "cert.pem", "-outform", "DER"], &dir, None);
    let x5c = base64::engine::general_purpose::STANDARD.encode(cert_der);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let realm = format!("http://{}/token", listener.local_addr().unwrap());
    let issued = Arc::new(AtomicUsize::new(0));
    let counter = issued.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut line = String::new();
            if reader.read_line(&mut line).is_err() {
                continue;
            }
            let mut basic = None;
            let mut h = String::new();
            while reader.read_line(&mut h).is_ok_and(|n| n > 2) {
                if let Some((k, v)) = h.trim().split_once(':')
                    && k.eq_ignore_ascii_case("authorization")
                    && let Some(b) = v.trim().strip_prefix("Basic ")
                {
                    let raw = base64::engine::general_purpose::STANDARD.decode(b).unwrap();
                    basic = String::from_utf8(raw).ok();
                }
                h.clear();
            }
            let target = line.split_whitespace().nth(1).unwrap_or_default();
            let url = url::Url::parse(&format!("http://x{target}")).unwrap();
            let q: BTreeMap<String, String> = url.query_pairs().into_owned().collect();
            let user = match basic.as_deref() {
                None => Some("anonymous"),
                Some(b) if b == format!("{}:{}", READER.0, READER.1) => Some(READER.0),
                Some(b) if b == format!("{}:{}", PUSHER.0, PUSHER.1) => Some(PUSHER.0),
                Some(_) => None,
            };
            let Some(user) = user else {
                let _ = stream.write_all(
                    b"HTTP/1.1 401 Unauthorized\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
                continue;
            };
            let mut access = Vec::new();
            if let Some(scope) = q.get("scope") {
                let mut parts = scope.splitn(3, ':');
                let (kind, name, actions) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                let granted: Vec<&str> = actions
                    .split(',')
                    .filter(|a| match (user, *a) {
                        ("pusher", _) => true,
                        ("reader", "pull") => true,
                        ("anonymous", "pull") => name.starts_with("public/"),
                        _ => false,
                    })
                    .collect();
                access.push(json!({"type": kind, "name": name, "actions": granted}));
            }
            let now = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_secs();
            let header = json!({"alg": "RS256", "typ": "JWT", "x5c": [x5c]});
            let claims = json!({
                "iss": ISSUER, "sub": user, "aud": q.get("service").cloned().unwrap_or_default(),
                "exp": now + 600, "nbf": now - 60, "iat": now,
                "jti": format!("{now}-{}", counter.load(Ordering::SeqCst)), "access": access,
            });
            let signing = format!(
                "{}.{}",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let sig = openssl(
                &["dgst", "-sha256", "-sign", "key.pem"],
                &dir,
                Some(signing.as_bytes()),
            );
            counter.fetch_add(1, Ordering::SeqCst);
            let body = json!({"token": format!("{signing}.{}", b64url(&sig))}).to_string();
            let _ = stream.write_all(
                format!(
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\
                     connection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
    });
    TokenService { realm, issued }
}

/// A running registry, stopped when dropped.
struct Registry {
    host: String,
    child: Child,
    tokens: TokenService,
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_registry(dir: &Path) -> Registry {
    let binary = registry_binary();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "cert.pem",
            "-days",
            "2",
            "-subj",
            "/CN=capstan-test-token",
        ],
        dir,
        None,
    );
    let tokens = token_service(dir);
    let port = free_port();
    let host = format!("127.0.0.1:{port}");
    let config = format!(
        "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  \
         filesystem:\n    rootdirectory: {}\nhttp:\n  addr: {host}\nauth:\n  token:\n    \
         realm: {}\n    service: {SERVICE}\n    issuer: {ISSUER}\n    rootcertbundle: {}\n",
        dir.join("storage").display(),
        tokens.realm,
        dir.join("cert.pem").display()
    );
    std::fs::write(dir.join("config.yml"), config).unwrap();
    let child = Command::new(binary)
        .arg("serve")
        .arg(dir.join("config.yml"))
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("registry.log")).unwrap())
        .spawn()
        .unwrap();
    let registry = Registry {
        host,
        child,
        tokens,
    };
    // Ready when it answers (401: it wants a token).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut s) = std::net::TcpStream::connect(&registry.host) {
            let _ = s.write_all(b"GET /v2/ HTTP/1.0\r\n\r\n");
            let mut head = [0u8; 12];
            if s.read_exact(&mut head).is_ok() && head.starts_with(b"HTTP/1.") {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the registry did not start: {}",
            std::fs::read_to_string(dir.join("registry.log")).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    registry
}

/// Pushes `archive` as chart `repository:tag` through the distribution API (blob uploads, then
/// the manifest), authenticated as the pusher. Returns the layer digest (hex).
fn push(reg: &Registry, repository: &str, tag: &str, archive: &[u8], config_type: &str) -> String {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    capstan_worker::forge::github::install_crypto_provider();
    rt.block_on(async {
        let client = reqwest::Client::new();
        let token: Value = client
            .get(&reg.tokens.realm)
            .query(&[
                ("service", SERVICE),
                ("scope", &format!("repository:{repository}:pull,push")),
            ])
            .basic_auth(PUSHER.0, Some(PUSHER.1))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = token["token"].as_str().unwrap().to_string();
        let base = format!("http://{}", reg.host);
        let upload = |bytes: Vec<u8>| {
            let (client, token, base) = (client.clone(), token.clone(), base.clone());
            async move {
                let digest = format!("sha256:{}", hex::encode(sha2::Sha256::digest(&bytes)));
                let started = client
                    .post(format!("{base}/v2/{repository}/blobs/uploads/"))
                    .bearer_auth(&token)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(started.status(), 202, "{:?}", started.text().await);
                let location = started.headers()["location"].to_str().unwrap().to_string();
                let location = if location.starts_with('/') {
                    format!("{base}{location}")
                } else {
                    location
                };
                let sep = if location.contains('?') { '&' } else { '?' };
                let done = client
                    .put(format!("{location}{sep}digest={digest}"))
                    .bearer_auth(&token)
                    .header("content-type", "application/octet-stream")
                    .body(bytes.clone())
                    .send()
                    .await
                    .unwrap();
                assert_eq!(done.status(), 201, "{:?}", done.text().await);
                (digest, bytes.len())
            }
        };
        let config = br#"{"name":"web","version":"1.2.3","apiVersion":"v2"}"#.to_vec();
        let (config_digest, config_size) = upload(config).await;
        let (layer_digest, layer_size) = upload(archive.to_vec()).await;
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": config_type, "digest": config_digest, "size": config_size},
            "layers": [{
                "mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
                "digest": layer_digest, "size": layer_size,
            }],
        });
        let put = client
            .put(format!("{base}/v2/{repository}/manifests/{tag}"))
            .bearer_auth(&token)
            .header("content-type", "application/vnd.oci.image.manifest.v1+json")
            .body(manifest.to_string())
            .send()
            .await
            .unwrap();
        assert_eq!(put.status(), 201, "{:?}", put.text().await);
        layer_digest.trim_start_matches("sha256:").to_string()
    })
}

/// The chart pushed: templates that read values, the release, its namespace and the chart.
fn web_chart(tmp: &Path, version: &str) -> Vec<u8> {
    archive(
        tmp,
        "web",
        &[
            (
                "Chart.yaml",
                &format!("apiVersion: v2\nname: web\nversion: {version}\n"),
            ),
            (
                "values.yaml",
                "replicas: 1\nimage: nginx:1.27\ngreeting: hello\n",
            ),
            (
                "templates/deployment.yaml",
                "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\n  \
                 namespace: {{ .Release.Namespace }}\n  labels:\n    chart: {{ .Chart.Name }}-{{ .Chart.Version | replace \"+\" \"_\" }}\n\
                 spec:\n  replicas: {{ .Values.replicas }}\n  selector:\n    matchLabels:\n      \
                 app: {{ .Release.Name }}\n  template:\n    metadata:\n      labels:\n        \
                 app: {{ .Release.Name }}\n    spec:\n      containers:\n      - name: web\n        \
                 image: {{ .Values.image | quote }}\n",
            ),
            (
                "templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cfg\n  \
                 namespace: {{ .Release.Namespace }}\ndata:\n  greeting: {{ .Values.greeting | quote }}\n",
            ),
        ],
    )
}

fn application(name: &str, repo_url: &str, version: &str, values_file: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  \
         sources:\n  - repoURL: {repo_url}\n    chart: web\n    targetRevision: {version}\n    \
         helm:\n      valueFiles: [$values/{values_file}]\n  - repoURL: {URL}\n    ref: values\n  \
         destination:\n    namespace: shop\n"
    )
}

/// Objects by `Kind/name`.
fn objects(o: &RenderedApp) -> BTreeMap<String, Value> {
    match o {
        RenderedApp::Rendered(out) => {
            assert!(out.not_checked.is_empty(), "{:?}", out.not_checked);
            out.objects
                .iter()
                .map(|o| (format!("{}/{}", o.id.kind, o.id.name), o.value.clone()))
                .collect()
        }
        other => panic!("not rendered: {other:?}"),
    }
}

/// What the Helm engine renders from the archive itself, by `Kind/name`.
fn helm_locally(
    tmp: &Path,
    archive: &[u8],
    release: &str,
    values: &str,
) -> BTreeMap<String, Value> {
    let chart = tmp.join(format!("{release}-local.tgz"));
    std::fs::write(&chart, archive).unwrap();
    let vf = tmp.join(format!("{release}-values.yaml"));
    std::fs::write(&vf, values).unwrap();
    let out = Command::new(capstan_worker::render::helm::test_binary().unwrap())
        .arg("template")
        .arg("--namespace=shop")
        .arg("--include-crds")
        .arg(format!("--values={}", vf.display()))
        .arg("--")
        .arg(release)
        .arg(&chart)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    text.split("\n---")
        .filter_map(|doc| {
            let v: Value = yaml_serde::from_str(doc).ok()?;
            let kind = v.get("kind")?.as_str()?.to_string();
            let name = v.pointer("/metadata/name")?.as_str()?.to_string();
            Some((format!("{kind}/{name}"), v))
        })
        .collect()
}

fn not_checked(o: &RenderedApp) -> String {
    match o {
        RenderedApp::NotChecked { reason } => reason.clone(),
        other => panic!("expected not checked, got {other:?}"),
    }
}

#[test]
fn charts_are_pulled_from_a_real_registry_anonymously_and_with_credentials() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = start_registry(tmp.path());
    let public = web_chart(tmp.path(), "1.2.3");
    let digest = push(
        &reg,
        "public/charts/web",
        "1.2.3",
        &public,
        "application/vnd.cncf.helm.config.v1+json",
    );
    assert_eq!(digest, hex::encode(sha2::Sha256::digest(&public)));
    // Built from another folder so its bytes differ: a `+build` version is tagged with `_`.
    let private_dir = tmp.path().join("private");
    std::fs::create_dir_all(&private_dir).unwrap();
    let private = web_chart(&private_dir, "2.0.0+build.7");
    push(
        &reg,
        "team/web",
        "2.0.0_build.7",
        &private,
        "application/vnd.cncf.helm.config.v1+json",
    );

    let public_repo = format!("oci://{}/public/charts", reg.host);
    let bare_private = format!("{}/team", reg.host);
    let b = RepoBuilder::init(tmp.path().join("repo")).unwrap();
    let c = b
        .commit(
            "apps",
            &[
                Change::Write(
                    "apps/front.yaml",
                    application("front", &public_repo, "1.2.3", "values/front.yaml").as_bytes(),
                ),
                Change::Write(
                    "apps/back.yaml",
                    application("back", &bare_private, "2.0.0+build.7", "values/back.yaml")
                        .as_bytes(),
                ),
                Change::Write("values/front.yaml", b"replicas: 3\ngreeting: hi\n"),
                Change::Write("values/back.yaml", b"image: nginx:1.28\n"),
            ],
        )
        .unwrap();
    let git = GitRepo::open(tmp.path().join("repo")).unwrap();
    let fs = git.tree_fs(c).unwrap();
    let cache = tmp.path().join("chart-cache");
    let credential = |password: &str| Credential {
        repository: format!("oci://{}/team", reg.host),
        username: READER.0.into(),
        password: Password::new(password),
    };
    let settings = |credentials: Vec<Credential>, cache: &Path, offline: bool| ChartSettings {
        // The bare `host/team` is an OCI registry because the operator lists it as oci://.
        repositories: vec![public_repo.clone(), format!("oci://{bare_private}")],
        cache_dir: Some(cache.to_path_buf()),
        offline,
        credentials,
        ..ChartSettings::default()
    };

    // Anonymous: the public chart renders, exactly as helm renders the archive itself; the
    // private one is "not checked" and says credentials are missing.
    let r = renderer(settings(Vec::new(), &tmp.path().join("anon-cache"), false));
    let snap = Snapshot::build(&fs, &cfg(), &r);
    let front = objects(&snap.render(&r, "front").unwrap().outcome);
    assert_eq!(
        front,
        helm_locally(tmp.path(), &public, "front", "replicas: 3\ngreeting: hi\n")
    );
    assert_eq!(front["Deployment/front"]["spec"]["replicas"], 3);
    assert_eq!(front.len(), 2, "{:?}", front.keys());
    let reason = not_checked(&snap.render(&r, "back").unwrap().outcome);
    assert!(reason.contains("requires credentials"), "{reason}");
    let anonymous_tokens = reg.tokens.issued.load(Ordering::SeqCst);
    assert!(anonymous_tokens >= 1, "the Bearer challenge was followed");

    // Wrong password: refused, and the message never holds it.
    let r = renderer(settings(
        vec![credential("wrong-s3cret")],
        &tmp.path().join("wrong-cache"),
        false,
    ));
    let snap = Snapshot::build(&fs, &cfg(), &r);
    let reason = not_checked(&snap.render(&r, "back").unwrap().outcome);
    assert!(reason.contains("refused"), "{reason}");
    assert!(
        !reason.contains("wrong-s3cret") && !reason.contains(READER.1),
        "{reason}"
    );

    // With the reader's credentials both render, each equal to helm's own rendering.
    let r = renderer(settings(vec![credential(READER.1)], &cache, false));
    let snap = Snapshot::build(&fs, &cfg(), &r);
    let back = objects(&snap.render(&r, "back").unwrap().outcome);
    assert_eq!(
        back,
        helm_locally(tmp.path(), &private, "back", "image: nginx:1.28\n")
    );
    assert_eq!(
        back["Deployment/back"]["metadata"]["labels"]["chart"],
        "web-2.0.0_build.7"
    );
    assert_eq!(objects(&snap.render(&r, "front").unwrap().outcome), front);
    let fetched = snap_requests(&r);

    // Offline, from the digest-keyed cache alone: the same objects, and no token asked for.
    let before = reg.tokens.issued.load(Ordering::SeqCst);
    let r = renderer(settings(Vec::new(), &cache, true));
    let snap = Snapshot::build(&fs, &cfg(), &r);
    assert_eq!(objects(&snap.render(&r, "back").unwrap().outcome), back);
    assert_eq!(objects(&snap.render(&r, "front").unwrap().outcome), front);
    assert_eq!(reg.tokens.issued.load(Ordering::SeqCst), before);
    assert_eq!(snap_requests(&r), 0);
    assert!(fetched >= 2);

    // A chart in the repository whose dependency comes from the registry (helm's `oci://`
    // dependency repository): the archive is pulled into its charts/ folder.
    let dep_commit = b
        .commit(
            "umbrella",
            &[
                Change::Write(
                    "apps/umbrella.yaml",
                    format!(
                        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  \
                         name: umbrella\nspec:\n  source:\n    repoURL: {URL}\n    \
                         path: charts/umbrella\n  destination:\n    namespace: shop\n"
                    )
                    .as_bytes(),
                ),
                Change::Write(
                    "charts/umbrella/Chart.yaml",
                    format!(
                        "apiVersion: v2\nname: umbrella\nversion: 0.1.0\ndependencies:\n\
                         - name: web\n  version: 1.2.3\n  repository: {public_repo}\n"
                    )
                    .as_bytes(),
                ),
                Change::Write("charts/umbrella/values.yaml", b"web:\n  replicas: 4\n"),
            ],
        )
        .unwrap();
    let dep_fs = git.tree_fs(dep_commit).unwrap();
    let r = renderer(settings(Vec::new(), &tmp.path().join("dep-cache"), false));
    let snap = Snapshot::build(&dep_fs, &cfg(), &r);
    let umbrella = objects(&snap.render(&r, "umbrella").unwrap().outcome);
    assert_eq!(umbrella["Deployment/umbrella"]["spec"]["replicas"], 4);
    assert_eq!(
        umbrella["ConfigMap/umbrella-cfg"]["data"]["greeting"],
        "hello"
    );

    // Offline with an empty cache: not checked, never fetched.
    let r = renderer(settings(Vec::new(), &tmp.path().join("empty"), true));
    let snap = Snapshot::build(&fs, &cfg(), &r);
    let reason = not_checked(&snap.render(&r, "front").unwrap().outcome);
    assert!(reason.contains("not cached"), "{reason}");
}

fn snap_requests(r: &Renderer) -> usize {
    r.chart_fetcher().requests.load(Ordering::Relaxed)
}

#[test]
fn what_the_registry_holds_must_be_a_helm_chart_from_a_listed_registry() {
    let tmp = tempfile::tempdir().unwrap();
    let reg = start_registry(tmp.path());
    let chart = web_chart(tmp.path(), "1.0.0");
    // An image (not a chart config) under a chart's name is refused, not rendered.
    push(
        &reg,
        "public/image/web",
        "1.0.0",
        &chart,
        "application/vnd.oci.image.config.v1+json",
    );
    let app = |name: &str, repo: &str| application(name, repo, "1.0.0", "values/v.yaml");
    let image = format!("oci://{}/public/image", reg.host);
    let unlisted = format!("oci://{}/public/other", reg.host);
    let bare = format!("{}/public/image", reg.host);
    let b = RepoBuilder::init(tmp.path().join("repo")).unwrap();
    let c = b
        .commit(
            "apps",
            &[
                Change::Write("apps/image.yaml", app("image", &image).as_bytes()),
                Change::Write("apps/unlisted.yaml", app("unlisted", &unlisted).as_bytes()),
                Change::Write(
                    "apps/missing.yaml",
                    app("missing", &format!("oci://{}/public/none", reg.host)).as_bytes(),
                ),
                Change::Write("values/v.yaml", b"{}\n"),
            ],
        )
        .unwrap();
    let git = GitRepo::open(tmp.path().join("repo")).unwrap();
    let fs = git.tree_fs(c).unwrap();
    let r = renderer(ChartSettings {
        repositories: vec![image.clone(), format!("oci://{}/public/none", reg.host)],
        ..ChartSettings::default()
    });
    let snap = Snapshot::build(&fs, &cfg(), &r);
    match snap.render(&r, "image").unwrap().outcome {
        RenderedApp::Failed { error } => assert!(error.contains("not a Helm chart"), "{error}"),
        other => panic!("{other:?}"),
    }
    match snap.render(&r, "missing").unwrap().outcome {
        RenderedApp::Failed { error } => assert!(error.contains("is not in"), "{error}"),
        other => panic!("{other:?}"),
    }
    let before = reg.tokens.issued.load(Ordering::SeqCst);
    let reason = not_checked(&snap.render(&r, "unlisted").unwrap().outcome);
    assert!(
        reason.contains("not one Capstan may fetch from"),
        "{reason}"
    );
    assert_eq!(reg.tokens.issued.load(Ordering::SeqCst), before);

    // A bare host/path is an OCI registry only when the operator lists it as one.
    let b2 = b
        .commit(
            "bare",
            &[Change::Write(
                "apps/bare.yaml",
                app("bare", &bare).as_bytes(),
            )],
        )
        .unwrap();
    let fs2 = git.tree_fs(b2).unwrap();
    let r2 = renderer(ChartSettings {
        repositories: vec![format!("https://{bare}")],
        ..ChartSettings::default()
    });
    let snap2 = Snapshot::build(&fs2, &cfg(), &r2);
    let reason = not_checked(&snap2.render(&r2, "bare").unwrap().outcome);
    assert!(
        reason.contains(&format!("listed as oci://{bare}")),
        "{reason}"
    );
}
