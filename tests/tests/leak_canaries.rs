//! Leak canaries (issue 13): every secret setting holds a distinct canary value, a canary file
//! sits on disk, and a hostile pull request tries every way we know to get one of them into an
//! output: generators reading `/proc/self/environ` or the canary file, `file://` and `..`
//! resources, symlinks, patches from absolute paths, `$(VAR)` references, helm value files outside
//! the chart and flag-shaped release names. Every output the test can collect (GitHub requests,
//! comments, check runs and statuses, dashboard pages and API answers, stored run and job
//! records, the log) is searched for every canary; the hostile PR must still get a report.
//!
//! Each scenario re-runs this test binary with the canaries in its process environment (the
//! workspace forbids `unsafe`, so the test cannot set them in its own), which is also where a
//! real deployment keeps them.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use capstan_server::config::{Config, ConfigArgs};
use capstan_tests::fake_argocd::FakeArgoCd;
use capstan_tests::fake_github::{FakeGitHub, FakePull};
use capstan_tests::pr_harness::{
    APP_ID, INSTALLATION, REPO, app_key_path, fake_github_app, post_webhook,
    serve_on_ephemeral_port,
};
use capstan_worker::forge::Comments;
use capstan_worker::forge::github::{GitHubAuth, GitHubConfig, GitHubForge};
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::store::RunStore;
use capstan_worker::store::runs::{RunFilter, RunStatus, SqlRunStore};
use serde_json::json;
use tokio_util::sync::CancellationToken;

const INNER: &str = "CAPSTAN_TEST_LEAK_CANARY_DIR";
const WAIT: Duration = Duration::from_secs(120);

/// The canaries of one scenario, passed to the re-run through its environment.
struct Canaries {
    webhook: String,
    github_token: String,
    argocd: String,
    dashboard: String,
    db_password: String,
    env_only: String,
    file: String,
}

impl Canaries {
    fn new() -> Canaries {
        let id = || uuid::Uuid::new_v4().simple().to_string();
        Canaries {
            webhook: format!("canary-webhook-{}", id()),
            github_token: format!("canary-ghtoken-{}", id()),
            argocd: format!("canary-argocd-{}", id()),
            dashboard: format!("canary-dashboard-{}", id()),
            db_password: format!("canary-dbpass-{}", id()),
            env_only: format!("canary-env-{}", id()),
            file: format!("canary-file-{}", id()),
        }
    }

    fn from_env() -> Canaries {
        let v = |k: &str| std::env::var(k).unwrap();
        Canaries {
            webhook: v("CAPSTAN_WEBHOOK_SECRET"),
            github_token: v("CANARY_GITHUB_TOKEN"),
            argocd: v("CAPSTAN_ARGOCD_TOKEN"),
            dashboard: v("CAPSTAN_DASHBOARD_TOKEN"),
            db_password: v("CANARY_DB_PASSWORD"),
            env_only: v("CANARY_ENV"),
            file: v("CANARY_FILE_CONTENT"),
        }
    }

    /// The App key's canaries: lines of its PEM body.
    fn key_lines() -> Vec<String> {
        let pem = std::fs::read_to_string(app_key_path()).unwrap();
        pem.lines()
            .filter(|l| !l.starts_with("-----") && l.len() >= 40)
            .map(str::to_string)
            .collect()
    }

    fn all(&self) -> Vec<(String, String)> {
        let mut v = vec![
            ("webhook secret".to_string(), self.webhook.clone()),
            ("GitHub token".into(), self.github_token.clone()),
            ("ArgoCD token".into(), self.argocd.clone()),
            ("dashboard token".into(), self.dashboard.clone()),
            ("database password".into(), self.db_password.clone()),
            ("environment variable".into(), self.env_only.clone()),
            ("file content".into(), self.file.clone()),
        ];
        for (i, l) in Self::key_lines().into_iter().enumerate() {
            v.push((format!("App key line {i}"), l));
        }
        v
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Auth {
    App,
    Token,
}

/// The outer half: a canary-filled environment for a second run of `test`.
fn rerun(test: &str, auth: Auth, database_url: Option<String>) {
    let dir = tempfile::tempdir().unwrap();
    let c = Canaries::new();
    let canary_file = dir.path().join("canary-secret.txt");
    std::fs::write(&canary_file, format!("{}\n", c.file)).unwrap();
    let tools = stand_in_helm(dir.path());
    let path = format!(
        "{}:{}",
        tools.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture"])
        .env(INNER, dir.path())
        .env("PATH", path)
        .env("CAPSTAN_WEBHOOK_SECRET", &c.webhook)
        .env("CAPSTAN_ARGOCD_TOKEN", &c.argocd)
        .env("CAPSTAN_DASHBOARD_TOKEN", &c.dashboard)
        .env("CAPSTAN_DASHBOARD_AUTH", "token")
        .env("CANARY_GITHUB_TOKEN", &c.github_token)
        .env("CANARY_DB_PASSWORD", &c.db_password)
        .env("CANARY_ENV", &c.env_only)
        .env("CANARY_FILE_CONTENT", &c.file)
        .env("CANARY_FILE", &canary_file)
        .env_remove("CAPSTAN_DATABASE_URL")
        .env_remove("DATABASE_URL");
    match auth {
        Auth::Token => {
            cmd.env("CAPSTAN_GITHUB_TOKEN", &c.github_token);
        }
        Auth::App => {
            cmd.env("CAPSTAN_GITHUB_APP_ID", APP_ID.to_string())
                .env("CAPSTAN_GITHUB_APP_KEY_FILE", app_key_path());
        }
    }
    if let Some(url) = database_url {
        // Trust authentication ignores the password, so the canary can sit in the URL.
        let mut u = url::Url::parse(&url).unwrap();
        u.set_password(Some(&c.db_password)).unwrap();
        cmd.env("DATABASE_URL", u.as_str());
    }
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "the canary run failed:\n{stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("canary scenario complete"),
        "the canary run did not run the scenario:\n{stdout}"
    );
    if std::env::var_os("CANARY_DUMP").is_some() {
        println!("{stdout}");
    }
    check_helm_runs(&tools, &canary_file, &c);
    // The re-run's own output (its panics, anything printed) is an output too.
    for (what, canary) in c.all() {
        assert!(
            !stdout.contains(&canary) && !stderr.contains(&canary),
            "the {what} canary appeared in the process output"
        );
    }
}

/// A `helm` for the service to find on `PATH`: it records the argv and environment of each run
/// next to itself and prints a ConfigMap named after the release.
fn stand_in_helm(dir: &std::path::Path) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let tools = dir.join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    let helm = tools.join("helm");
    let d = tools.display();
    std::fs::write(
        &helm,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{d}/argv-'$$\n\
             env > '{d}/env-'$$\nfor a; do release=$chart; chart=$a; done\n\
             printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: %s\\n' \"$release\"\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helm, std::fs::Permissions::from_mode(0o755)).unwrap();
    tools
}

/// The stand-in helm ran for the valid chart only, with no flag from the repository and none of
/// the service's secrets in its environment.
fn check_helm_runs(tools: &std::path::Path, canary_file: &std::path::Path, c: &Canaries) {
    let mut argvs = Vec::new();
    for e in std::fs::read_dir(tools).unwrap() {
        let p = e.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        let text = std::fs::read_to_string(&p).unwrap_or_default();
        if name.starts_with("env-") {
            for (what, canary) in c.all() {
                assert!(
                    !text.contains(&canary),
                    "helm's environment held the {what}"
                );
            }
        } else if name.starts_with("argv-") {
            argvs.push(text);
        }
    }
    assert_eq!(argvs.len(), 1, "helm runs: {argvs:#?}");
    let argv: Vec<&str> = argvs[0].lines().collect();
    let dash = argv.iter().position(|a| *a == "--").unwrap();
    assert_eq!(argv[dash + 1], "helm-ok", "{argv:?}");
    assert!(
        !argvs[0].contains(&canary_file.display().to_string())
            && !argvs[0].contains("--set-file")
            && !argvs[0].contains("--post-renderer"),
        "{argv:?}"
    );
}

/// A captured log, shared with the subscriber's writer.
#[derive(Clone, Default)]
struct LogBuf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn application(name: &str, path: &str, source_extra: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name:?}\n  namespace: argocd\n\
         spec:\n  project: default\n  source:\n    repoURL: https://github.com/acme/gitops\n    \
         targetRevision: main\n    path: {path}\n{source_extra}  destination:\n    \
         server: https://kubernetes.default.svc\n    namespace: web\n"
    )
}

/// The base tree: one ordinary app.
fn base_tree() -> Vec<(String, String)> {
    vec![
        (
            ".capstan.yaml".into(),
            "repoURL: https://github.com/acme/gitops\n".into(),
        ),
        (
            "argocd/apps/web.yaml".into(),
            application("web", "apps/web", ""),
        ),
        (
            "apps/web/kustomization.yaml".into(),
            "resources:\n- cm.yaml\n".into(),
        ),
        (
            "apps/web/cm.yaml".into(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  LOG_LEVEL: info\n"
                .into(),
        ),
    ]
}

/// The hostile pull request: every app tries another way to read a canary.
fn hostile_changes(canary_file: &str) -> Vec<(String, String)> {
    let up = "../".repeat(12);
    let rel = format!("{up}{}", canary_file.trim_start_matches('/'));
    let mut files = vec![
        // Generators over the process environment and the canary file, absolute and relative.
        (
            "argocd/apps/envleak.yaml".to_string(),
            application("envleak", "apps/envleak", ""),
        ),
        (
            "apps/envleak/kustomization.yaml".into(),
            format!(
                "configMapGenerator:\n- name: environ\n  envs: [/proc/self/environ]\n\
                 - name: relenviron\n  envs: [{up}proc/self/environ]\n\
                 - name: file\n  files: [{canary_file}]\n\
                 - name: relfile\n  files: [leak={rel}]\n\
                 - name: literal\n  literals: [\"TOKEN=$(CAPSTAN_GITHUB_TOKEN)\", \"X=$(CANARY_ENV)\"]\n"
            ),
        ),
        // Remote-looking and absolute resources and patches.
        (
            "argocd/apps/fileurl.yaml".into(),
            application("fileurl", "apps/fileurl", ""),
        ),
        (
            "apps/fileurl/kustomization.yaml".into(),
            format!(
                "resources:\n- file:///proc/self/environ\n- file://{canary_file}\n- {canary_file}\n\
                 patches:\n- path: {canary_file}\n"
            ),
        ),
        // Symlinks out of the repository.
        (
            "argocd/apps/symlink.yaml".into(),
            application("symlink", "apps/symlink", ""),
        ),
        (
            "apps/symlink/kustomization.yaml".into(),
            "resources:\n- leak.yaml\nconfigMapGenerator:\n- name: environ\n  envs: [environ.env]\n"
                .into(),
        ),
        // Environment references inside objects and Application options.
        (
            "argocd/apps/envref.yaml".into(),
            application(
                "envref",
                "apps/envref",
                "    kustomize:\n      namePrefix: \"$(CAPSTAN_ARGOCD_TOKEN)-\"\n      \
                 commonAnnotations:\n        leak: \"${CAPSTAN_DASHBOARD_TOKEN}\"\n",
            ),
        ),
        (
            "apps/envref/kustomization.yaml".into(),
            "resources:\n- deploy.yaml\n".into(),
        ),
        (
            "apps/envref/deploy.yaml".into(),
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: envref\nspec:\n  selector:\n    \
             matchLabels: {app: e}\n  template:\n    metadata:\n      labels: {app: e}\n    spec:\n      \
             containers:\n      - name: e\n        image: busybox\n        \
             command: [sh, -c, \"echo $(CAPSTAN_WEBHOOK_SECRET) $DATABASE_URL\"]\n        env:\n        \
             - name: T\n          value: $(CAPSTAN_GITHUB_TOKEN)\n"
                .into(),
        ),
        // Helm: value files outside the chart and the repository, flag-shaped release names.
        (
            "argocd/apps/helmleak.yaml".into(),
            application(
                "helmleak",
                "charts/leak",
                &format!(
                    "    helm:\n      releaseName: \"--set-file=x={canary_file}\"\n      \
                     valueFiles: [{canary_file}, {rel}, /proc/self/environ]\n      parameters:\n      \
                     - name: --set-file\n        value: y={canary_file}\n"
                ),
            ),
        ),
        (
            "argocd/apps/helmok.yaml".into(),
            application(
                "helmok",
                "charts/leak",
                "    helm:\n      releaseName: helm-ok\n      parameters:\n      \
                 - name: note\n        value: \"a,b\"\n",
            ),
        ),
        (
            "argocd/apps/helmname.yaml".into(),
            application("--post-renderer=/bin/sh", "charts/leak", "    helm:\n      skipCrds: true\n"),
        ),
        (
            "charts/leak/Chart.yaml".into(),
            "apiVersion: v2\nname: leak\nversion: 0.1.0\n".into(),
        ),
        (
            "charts/leak/templates/cm.yaml".into(),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n".into(),
        ),
        // A malformed file whose parse error quotes its content (and a secret-shaped string).
        (
            "argocd/apps/echo.yaml".into(),
            application("echo", "apps/echo", ""),
        ),
        (
            "apps/echo/kustomization.yaml".into(),
            format!("resources:\n- bad.yaml\nnamePrefix: \"{canary_file}\"\n"),
        ),
        (
            "apps/echo/bad.yaml".into(),
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  : [unclosed\ndata:\n  \
             password: Authorization: Bearer ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789\n"
                .into(),
        ),
    ];
    files.push((
        "apps/envleak/README".into(),
        "tries the environment\n".into(),
    ));
    files
}

/// The inner half: the service with canaries configured, the hostile PR, every output checked.
async fn scenario(auth: Auth, database: &str) {
    let dir = std::path::PathBuf::from(std::env::var(INNER).unwrap());
    let canaries = Canaries::from_env();
    let canary_file = std::env::var("CANARY_FILE").unwrap();
    capstan_worker::forge::github::install_crypto_provider();

    let (fake, _key) = fake_github_app(&canaries.github_token).await;
    let argocd = FakeArgoCd::start(&canaries.argocd).await;

    let origin_dir = dir.join("origin/acme/gitops");
    let origin = RepoBuilder::init(&origin_dir).unwrap();
    let base = base_tree();
    let changes: Vec<Change<'_>> = base
        .iter()
        .map(|(p, t)| Change::Write(p, t.as_bytes()))
        .collect();
    let main = origin.commit("base", &changes).unwrap();
    let hostile = hostile_changes(&canary_file);
    let mut changes: Vec<Change<'_>> = hostile
        .iter()
        .map(|(p, t)| Change::Write(p, t.as_bytes()))
        .collect();
    let up = "../".repeat(12);
    let link_target = format!("{up}{}", canary_file.trim_start_matches('/'));
    changes.push(Change::Symlink("apps/symlink/leak.yaml", &canary_file));
    changes.push(Change::Symlink(
        "apps/symlink/environ.env",
        "/proc/self/environ",
    ));
    changes.push(Change::Symlink("apps/symlink/rel.yaml", &link_target));
    let head = origin.commit("hostile", &changes).unwrap();
    origin.set_ref("refs/heads/hostile", head).unwrap();
    origin.set_ref("refs/heads/main", main).unwrap();

    let args = ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.join("data").display().to_string()),
        git_url_template: Some(format!(
            "file://{}/origin/{{owner}}/{{repo}}",
            dir.display()
        )),
        poll_interval_ms: Some("50".into()),
        public_url: Some("https://capstan.example".into()),
        github_api_url: Some(fake.api_url()),
        argocd_url: Some(argocd.url()),
        log: Some("debug,sqlx=info,hyper=info,reqwest=info,h2=info,rustls=info".into()),
        ..ConfigArgs::default()
    };
    // Secrets come from the process environment, as in a deployment.
    let cfg = Config::load_with(&args, &|k| std::env::var(k).ok()).unwrap();
    assert_eq!(
        cfg.database_url.starts_with("postgres"),
        database == "postgres"
    );
    let log = LogBuf::default();
    {
        let log = log.clone();
        capstan_server::serve::init_tracing_with(&cfg, move || log.clone());
    }
    let database_url = cfg.database_url.clone();
    let stop = CancellationToken::new();
    let parts = capstan_server::serve::Parts {
        shutdown: Some(stop.clone()),
        ..Default::default()
    };
    let (port, service) = serve_on_ephemeral_port(cfg, parts).await;
    let base_url = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    let start = Instant::now();
    while !http
        .get(format!("{base_url}/healthz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(start.elapsed() < WAIT, "the service never became healthy");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let head_hex = head.to_string();
    fake.add_pull(
        REPO,
        FakePull {
            number: 7,
            state: "open".into(),
            title: "hostile".into(),
            author: "mallory".into(),
            head_sha: head_hex.clone(),
            head_ref: "hostile".into(),
            base_sha: main.to_string(),
            base_ref: "main".into(),
            ..FakePull::default()
        },
    );
    let body = json!({
        "action": "opened",
        "number": 7,
        "pull_request": {
            "number": 7, "state": "open", "merged": false,
            "head": {"sha": head_hex, "ref": "hostile"},
            "base": {"sha": main.to_string(), "ref": "main"},
        },
        "repository": {"full_name": REPO, "default_branch": "main"},
        "installation": {"id": INSTALLATION},
        "sender": {"login": "mallory", "type": "User"},
    });
    let delivery = uuid::Uuid::new_v4().to_string();
    post_webhook(
        &http,
        &base_url,
        "pull_request",
        &delivery,
        &body,
        &canaries.webhook,
    )
    .await;

    // Wait for the run to finish.
    let q = capstan_worker::queue::open(&database_url).await.unwrap();
    let store = SqlRunStore::new(q.db());
    let run = loop {
        let runs = store
            .list_runs(&RunFilter {
                repo: Some(REPO.into()),
                pr: Some(7),
                ..RunFilter::default()
            })
            .await
            .unwrap();
        if let Some(r) = runs.iter().find(|r| r.status != RunStatus::Running) {
            break r.clone();
        }
        assert!(start.elapsed() < WAIT, "no finished run: {runs:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let record = store.run(run.id).await.unwrap().unwrap();

    // Everything that left, or can be read back.
    let mut outputs: Vec<(String, String)> = Vec::new();
    for call in fake.calls() {
        outputs.push((
            format!("GitHub request {} {}", call.method, call.path),
            call.body.map(|b| b.to_string()).unwrap_or_default(),
        ));
    }
    let comments = fake.comments(REPO, 7);
    for c in &comments {
        outputs.push(("PR comment".into(), c.body.clone()));
    }
    for r in fake.check_runs(REPO) {
        outputs.push(("check run".into(), r.to_string()));
    }
    for (sha, s) in fake.statuses(REPO) {
        outputs.push((format!("status {sha}"), s.to_string()));
    }
    for call in argocd.calls() {
        outputs.push((
            format!("ArgoCD request {}", call.path),
            format!("{:?}", call.body),
        ));
    }
    outputs.push(("stored run".into(), serde_json::to_string(&record).unwrap()));
    for page in [
        "/".to_string(),
        "/runs".into(),
        format!("/runs/{}", run.id),
        "/apps".into(),
        "/promotions".into(),
        "/services".into(),
        "/cluster".into(),
        "/api/overview".into(),
        "/api/runs".into(),
        format!("/api/runs/{}", run.id),
        "/api/apps".into(),
        "/api/promotions".into(),
        "/api/services".into(),
        "/api/cluster".into(),
        "/login".into(),
        "/metrics".into(),
    ] {
        let r = http
            .get(format!("{base_url}{page}"))
            .bearer_auth(&canaries.dashboard)
            .send()
            .await
            .unwrap();
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(
            status.is_success(),
            "dashboard {page} answered {status}: {text}"
        );
        outputs.push((format!("dashboard {page}"), text));
    }
    // A failed sign-in answers with an error page; it must not echo anything either.
    let r = http
        .post(format!("{base_url}/login"))
        .form(&[("token", format!("{}x", canaries.dashboard))])
        .send()
        .await
        .unwrap();
    outputs.push(("failed login".into(), r.text().await.unwrap()));
    // Job records (their errors are shown on the dashboard).
    if let Some(id) = record.job_id {
        outputs.push((
            "job record".into(),
            format!("{:?}", q.job(id).await.unwrap()),
        ));
        outputs.push((
            "job attempts".into(),
            format!("{:?}", q.job_runs(id).await.unwrap()),
        ));
    }
    stop.cancel();
    service.await.unwrap().unwrap();
    outputs.push((
        "log".into(),
        String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned(),
    ));

    for (what, canary) in canaries.all() {
        for (place, text) in &outputs {
            assert!(
                !text.contains(&canary),
                "the {what} canary leaked into {place}:\n{}",
                excerpt(text, &canary)
            );
        }
    }
    // The secret-shaped string the PR itself put in a malformed file never leaves either.
    for (place, text) in &outputs {
        assert!(
            !text.contains("ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789"),
            "a GitHub token shape survived in {place}"
        );
    }

    // Refusals, not silence: the PR got its report, naming the hostile apps as failed.
    let report: Vec<&String> = comments
        .iter()
        .map(|c| &c.body)
        .filter(|b| b.starts_with("<!-- capstan:report"))
        .collect();
    assert!(!report.is_empty(), "no report comment: {comments:#?}");
    let text = report.iter().map(|s| s.as_str()).collect::<String>();
    for app in ["envleak", "fileurl", "symlink", "helmleak", "echo"] {
        assert!(
            text.contains(app),
            "the report does not mention {app}:\n{text}"
        );
    }
    match auth {
        Auth::App => {
            let runs = fake.check_runs(REPO);
            assert!(
                runs.iter()
                    .any(|r| r["head_sha"] == head_hex && r["status"] == "completed"),
                "no completed check run: {runs:#?}"
            );
        }
        Auth::Token => {
            let statuses = fake.statuses(REPO);
            assert!(
                statuses
                    .iter()
                    .any(|(sha, s)| *sha == head_hex && s["state"] != "pending"),
                "no final commit status: {statuses:#?}"
            );
        }
    }
    let log_bytes = outputs.last().map_or(0, |(_, l)| l.len());
    let mut stdout = std::io::stdout();
    writeln!(
        stdout,
        "canary scenario complete: {} outputs searched, {log_bytes} bytes of log",
        outputs.len()
    )
    .unwrap();
    if std::env::var_os("CANARY_DUMP").is_some() {
        for (place, text) in &outputs {
            writeln!(stdout, "=== {place}\n{text}").unwrap();
        }
    }
}

fn excerpt(text: &str, needle: &str) -> String {
    let i = text.find(needle).unwrap_or(0);
    let start = text[..i]
        .char_indices()
        .rev()
        .nth(300)
        .map_or(0, |(j, _)| j);
    let end = (i + needle.len() + 300).min(text.len());
    text.get(start..end).unwrap_or(text).to_string()
}

fn inner() -> bool {
    std::env::var_os(INNER).is_some()
}

mod sqlite {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn app_auth() {
        if inner() {
            return scenario(Auth::App, "sqlite").await;
        }
        rerun("sqlite::app_auth", Auth::App, None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn token_auth() {
        if inner() {
            return scenario(Auth::Token, "sqlite").await;
        }
        rerun("sqlite::token_auth", Auth::Token, None);
    }
}

mod postgres {
    use super::*;

    async fn run(test: &str, auth: Auth) {
        if inner() {
            return scenario(auth, "postgres").await;
        }
        let Some(db) = capstan_tests::pg::TestDb::create(test).await else {
            return;
        };
        let url = db.url.clone();
        tokio::task::spawn_blocking({
            let test = test.to_string();
            move || rerun(&test, auth, Some(url))
        })
        .await
        .unwrap();
        db.drop_db().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn app_auth() {
        run("postgres::app_auth", Auth::App).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn token_auth() {
        run("postgres::token_auth", Auth::Token).await;
    }
}

/// Finding 11 at the GitHub sink: upstream text quoted in a comment is scrubbed before GitHub
/// receives it (a report quotes tool stderr and ArgoCD messages verbatim).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn github_requests_are_scrubbed_before_they_leave() {
    capstan_worker::forge::github::install_crypto_provider();
    let fake = FakeGitHub::start("ghp_test_personal_token_0123456789abcdef", "", None).await;
    fake.add_repo(REPO);
    fake.add_pull(
        REPO,
        FakePull {
            number: 1,
            ..FakePull::default()
        },
    );
    let gh = GitHubForge::new(GitHubConfig::new(
        fake.api_url().parse().unwrap(),
        GitHubAuth::Token("ghp_test_personal_token_0123456789abcdef".into()),
    ))
    .unwrap();
    let body = "kustomize failed: fetching https://deploy:hunter2hunter2@git.example/x.git\n\
                ArgoCD: rpc error: Authorization: Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJhZG1pbiJ9.c2ln\n\
                -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEAzyx\n-----END RSA PRIVATE KEY-----\n\
                commit 0123456789abcdef0123456789abcdef01234567";
    gh.create_comment(REPO, 1, body).await.unwrap();
    let posted = &fake.comments(REPO, 1)[0].body;
    for secret in [
        "hunter2hunter2",
        "eyJzdWIiOiJhZG1pbiJ9",
        "MIIEowIBAAKCAQEAzyx",
    ] {
        assert!(
            !posted.contains(secret),
            "{secret} reached GitHub:\n{posted}"
        );
    }
    assert!(posted.contains("[REDACTED"), "{posted}");
    // What is not a secret arrives as written.
    assert!(
        posted.contains("commit 0123456789abcdef0123456789abcdef01234567"),
        "{posted}"
    );
}

/// Finding 11 at the log sink: an error quoting a credential is logged redacted.
#[test]
fn log_lines_are_scrubbed() {
    let dir = tempfile::tempdir().unwrap();
    let args = ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().display().to_string()),
        log: Some("info".into()),
        ..ConfigArgs::default()
    };
    let cfg = Config::load_with(&args, &|_| None).unwrap();
    let log = LogBuf::default();
    {
        let log = log.clone();
        capstan_server::serve::init_tracing_with(&cfg, move || log.clone());
    }
    capstan_worker::scrub::register("registered-service-secret-77");
    tracing::warn!(
        error = "fetch https://x-access-token:ghs_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789@github.com/a/b failed",
        "git fetch failed; the service secret registered-service-secret-77 was echoed"
    );
    let text = String::from_utf8_lossy(&log.0.lock().unwrap()).into_owned();
    assert!(text.contains("git fetch failed"), "nothing logged: {text}");
    assert!(!text.contains("ghs_AbCd"), "{text}");
    assert!(!text.contains("registered-service-secret-77"), "{text}");
}
