//! Issue 13, finding 12 (child processes): git, kustomize/kubectl and helm get an explicit minimal
//! environment, never the service's. The test runs itself again as a child process with canary
//! values in the variables a real deployment holds secrets in (the workspace forbids `unsafe`,
//! so it cannot set them in its own process), and stand-in tools on `PATH` record the
//! environment they were started with.
#![allow(clippy::unwrap_used)]

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::git::{GitSource, RepoName};
use capstan_worker::render::{BackendChoice, RenderConfig, RenderSource, Renderer, SourceKind};
use capstan_worker::repo_fs::{DirFs, RepoPath};

const CANARY: &str = "canary-3c1f7e-child-env";
/// Set in the re-run child: where the stand-in tools write what they saw.
const RECORD: &str = "CAPSTAN_TEST_CHILD_ENV_RECORD";

const SECRET_VARS: [&str; 6] = [
    "CAPSTAN_GITHUB_TOKEN",
    "CAPSTAN_ARGOCD_TOKEN",
    "CAPSTAN_WEBHOOK_SECRET",
    "CAPSTAN_DASHBOARD_TOKEN",
    "GITHUB_TOKEN",
    "AWS_SECRET_ACCESS_KEY",
];

fn stand_in(bin: &Path, record: &Path, name: &str, stdout: &str) {
    let path = bin.join(name);
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nenv > '{}/{name}.'$$'.env'\nprintf '%s' '{stdout}'\n",
            record.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
}

/// What the child does: one run of every tool Capstan execs, through the production code paths.
fn exercise_every_tool(record: &Path) {
    let bin = record.join("bin");
    let tmp = tempfile::tempdir().unwrap();
    let repo = tmp.path().join("repo");
    std::fs::create_dir_all(repo.join("app")).unwrap();
    std::fs::create_dir_all(repo.join("chart/templates")).unwrap();
    std::fs::write(repo.join("app/kustomization.yaml"), "resources: []\n").unwrap();
    std::fs::write(
        repo.join("chart/Chart.yaml"),
        "apiVersion: v2\nname: c\nversion: 0.1.0\n",
    )
    .unwrap();
    let fs = DirFs::new(&repo).unwrap();

    let kustomize = Renderer::new(RenderConfig {
        backend: BackendChoice::Kustomize,
        kustomize_binary: Some(bin.join("kubectl")),
        ..RenderConfig::default()
    });
    let app = RenderSource {
        path: RepoPath::new("app").unwrap(),
        kind: SourceKind::Kustomize(Default::default()),
        namespace: None,
        release_name: "app".into(),
    };
    kustomize.render(&fs, &app).unwrap();

    let helm = Renderer::new(RenderConfig {
        helm_binary: Some(bin.join("helm")),
        ..RenderConfig::default()
    });
    let chart = RenderSource {
        path: RepoPath::new("chart").unwrap(),
        kind: SourceKind::Helm(Default::default()),
        namespace: Some("web".into()),
        release_name: "chart".into(),
    };
    helm.render(&fs, &chart).unwrap();

    // git over https goes through the `git` found on PATH: the stand-in.
    let up = RepoBuilder::init(tmp.path().join("up")).unwrap();
    let commit = up
        .commit("one", &[Change::Write("a.yaml", b"a: 1\n")])
        .unwrap();
    // The service reaches git only through its async door: the same path here.
    let src = GitSource::new(
        "https://github.invalid/{owner}/{repo}.git",
        "github.invalid",
        tmp.path().join("mirrors"),
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(src.with_mirror(
        &RepoName::parse("acme/gitops").unwrap(),
        move |mirror, url| {
            mirror.fetch(
                url,
                &["+refs/heads/main:refs/heads/main".to_string()],
                Some("installation-token-for-git"),
            )?;
            capstan_worker::git::push::push_branch(
                mirror.path(),
                url,
                commit,
                "main",
                None,
                Some("installation-token-for-git"),
            )
            .map_err(|e| capstan_worker::git::GitError::Other {
                operation: "pushing".into(),
                message: e.to_string(),
            })
        },
    ))
    .unwrap();
}

#[test]
fn child_processes_never_see_the_service_environment() {
    if let Some(record) = std::env::var_os(RECORD) {
        exercise_every_tool(Path::new(&record));
        return;
    }
    let record = tempfile::tempdir().unwrap();
    let bin = record.path().join("bin");
    std::fs::create_dir_all(&bin).unwrap();
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n";
    stand_in(&bin, record.path(), "git", "");
    stand_in(&bin, record.path(), "helm", cm);
    stand_in(&bin, record.path(), "kubectl", cm);

    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut child = std::process::Command::new(std::env::current_exe().unwrap());
    child
        .args([
            "--exact",
            "child_processes_never_see_the_service_environment",
            "--nocapture",
        ])
        .env(RECORD, record.path())
        .env("PATH", &path)
        .env("HOME", record.path().join("service-home"))
        .env(
            "DATABASE_URL",
            format!("postgres://capstan:{CANARY}@db/capstan"),
        )
        .env("KUBECONFIG", record.path().join("service-kubeconfig"))
        .env("GIT_CONFIG_COUNT", "1")
        .env("GIT_CONFIG_KEY_0", "credential.helper")
        .env("GIT_CONFIG_VALUE_0", format!("!echo {CANARY}"));
    for v in SECRET_VARS {
        child.env(v, format!("{CANARY}-{v}"));
    }
    let out = child.output().unwrap();
    assert!(
        out.status.success(),
        "child run failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let mut seen = std::collections::BTreeMap::new();
    for e in std::fs::read_dir(record.path()).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "env") {
            let tool = p
                .file_name()
                .unwrap()
                .to_string_lossy()
                .split('.')
                .next()
                .unwrap()
                .to_string();
            let text = std::fs::read_to_string(&p).unwrap();
            seen.entry(tool).or_insert_with(Vec::new).push(text);
        }
    }
    // fetch and push each ran git once; each renderer ran once.
    assert_eq!(seen.get("git").map(Vec::len), Some(2), "{seen:?}");
    assert_eq!(seen.get("helm").map(Vec::len), Some(1), "{seen:?}");
    assert_eq!(seen.get("kubectl").map(Vec::len), Some(1), "{seen:?}");
    for (tool, envs) in &seen {
        for env in envs {
            assert!(!env.contains(CANARY), "{tool} saw a canary:\n{env}");
            for v in SECRET_VARS.iter().chain(&["DATABASE_URL"]) {
                assert!(
                    !env.lines().any(|l| l.starts_with(&format!("{v}="))),
                    "{tool} got {v}:\n{env}"
                );
            }
            assert!(env.contains(&format!("PATH={path}")), "{tool}:\n{env}");
            assert!(env.lines().any(|l| l == "LANG=C"), "{tool}:\n{env}");
            assert!(
                !env.contains("service-home") && !env.contains("service-kubeconfig"),
                "{tool} got the service's HOME or kubeconfig:\n{env}"
            );
            let home = env
                .lines()
                .find_map(|l| l.strip_prefix("HOME="))
                .unwrap_or_else(|| panic!("{tool} has no HOME:\n{env}"));
            assert!(!home.is_empty(), "{tool}");
        }
    }
    // git gets the token it needs, as config in the environment, and nothing of the service's.
    for env in &seen["git"] {
        assert!(env.contains("GIT_CONFIG_KEY_0=http.extraHeader"), "{env}");
        assert!(!env.contains("credential.helper"), "{env}");
        assert!(env.contains("GIT_CONFIG_NOSYSTEM=1"), "{env}");
    }
}
