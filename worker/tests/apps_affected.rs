//! Affected-app detection on real git repositories built in the test: exact input graph, no
//! path prefixes.
#![allow(clippy::unwrap_used)]

use capstan_worker::apps::{ChangeReason, DiscoveryConfig, Snapshot, affected::affected_apps};
use capstan_worker::git::GitRepo;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::render::{RenderConfig, Renderer};

const URL: &str = "https://github.com/example/gitops.git";

fn application(name: &str, path: &str) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\nspec:\n  project: default\n  source:\n    repoURL: {URL}\n    targetRevision: HEAD\n    path: {path}\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {name}\n"
    )
}

fn cm(name: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  value: \"{value}\"\n"
    )
}

struct Fixture {
    _tmp: tempfile::TempDir,
    builder: RepoBuilder,
    repo: GitRepo,
    base: git2::Oid,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let builder = RepoBuilder::init(tmp.path()).unwrap();
    let apps = [
        application("web-staging", "apps/web/overlays/staging"),
        application("web-production", "apps/web/overlays/production"),
        application("api-staging", "apps/api/overlays/staging"),
    ]
    .join("---\n");
    let shared_cm = cm("shared", "1");
    let web_deploy = cm("web", "1");
    let api_cm = cm("api", "1");
    let base = builder
        .commit(
            "initial",
            &[
                Change::Write("argocd/apps.yaml", apps.as_bytes()),
                Change::Write("shared/base/kustomization.yaml", b"resources:\n- shared.yaml\n"),
                Change::Write("shared/base/shared.yaml", shared_cm.as_bytes()),
                Change::Write(
                    "apps/web/base/kustomization.yaml",
                    b"resources:\n- ../../../shared/base\n- web.yaml\n",
                ),
                Change::Write("apps/web/base/web.yaml", web_deploy.as_bytes()),
                Change::Write(
                    "apps/web/overlays/staging/kustomization.yaml",
                    b"resources:\n- ../../base\npatches:\n- path: patch.yaml\n",
                ),
                Change::Write(
                    "apps/web/overlays/staging/patch.yaml",
                    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  value: staging\n",
                ),
                Change::Write("apps/web/overlays/staging/notes.yaml", b"not: referenced\n"),
                Change::Write(
                    "apps/web/overlays/production/kustomization.yaml",
                    b"resources:\n- ../../base\nnamePrefix: prod-\n",
                ),
                Change::Write(
                    "apps/api/overlays/staging/kustomization.yaml",
                    b"resources:\n- api.yaml\n",
                ),
                Change::Write("apps/api/overlays/staging/api.yaml", api_cm.as_bytes()),
                Change::Write("docs/README.md", b"# docs\n"),
            ],
        )
        .unwrap();
    let repo = GitRepo::open(tmp.path()).unwrap();
    Fixture {
        _tmp: tmp,
        builder,
        repo,
        base,
    }
}

fn cfg() -> DiscoveryConfig {
    DiscoveryConfig {
        repo_urls: vec!["git@github.com:example/gitops".into()],
        default_branch: "main".into(),
        ..Default::default()
    }
}

fn affected(f: &Fixture, changes: &[Change<'_>]) -> Vec<(String, Vec<ChangeReason>)> {
    let head = f.builder.commit("change", changes).unwrap();
    let renderer = Renderer::new(RenderConfig::default());
    let base_fs = f.repo.tree_fs(f.base).unwrap();
    let head_fs = f.repo.tree_fs(head).unwrap();
    let b = Snapshot::build(&base_fs, &cfg(), &renderer);
    let h = Snapshot::build(&head_fs, &cfg(), &renderer);
    assert!(b.discovery.errors.is_empty(), "{:?}", b.discovery.errors);
    affected_apps(&b, &h)
        .into_iter()
        .map(|a| (a.name, a.reasons))
        .collect()
}

fn names(v: &[(String, Vec<ChangeReason>)]) -> Vec<&str> {
    v.iter().map(|(n, _)| n.as_str()).collect()
}

#[test]
fn shared_base_change_marks_exactly_the_overlays_including_it() {
    let f = fixture();
    let new = cm("shared", "2");
    let got = affected(
        &f,
        &[Change::Write("shared/base/shared.yaml", new.as_bytes())],
    );
    assert_eq!(names(&got), vec!["web-production", "web-staging"]);
    assert_eq!(
        got[0].1,
        vec![ChangeReason::InputsChanged {
            files: vec![capstan_worker::repo_fs::RepoPath::new("shared/base/shared.yaml").unwrap()]
        }]
    );
}

#[test]
fn patch_file_change_marks_only_its_app() {
    let f = fixture();
    let got = affected(
        &f,
        &[Change::Write(
            "apps/web/overlays/staging/patch.yaml",
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  value: changed\n",
        )],
    );
    assert_eq!(names(&got), vec!["web-staging"]);
}

#[test]
fn files_no_app_reads_mark_none_even_inside_an_app_folder() {
    let f = fixture();
    let got = affected(
        &f,
        &[
            Change::Write("docs/README.md", b"# changed\n"),
            Change::Write("apps/web/overlays/staging/notes.yaml", b"not: read\n"),
            Change::Write("apps/web/new-unreferenced.yaml", b"a: 1\n"),
        ],
    );
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn adding_and_removing_an_application_adds_and_removes_an_app() {
    let f = fixture();
    let apps = [
        application("web-staging", "apps/web/overlays/staging"),
        application("web-production", "apps/web/overlays/production"),
        application("api-production", "apps/api/overlays/staging"),
    ]
    .join("---\n");
    let got = affected(&f, &[Change::Write("argocd/apps.yaml", apps.as_bytes())]);
    assert_eq!(
        got,
        vec![
            ("api-production".to_string(), vec![ChangeReason::Added]),
            ("api-staging".to_string(), vec![ChangeReason::Removed]),
        ]
    );
}

#[test]
fn changing_one_application_in_a_shared_file_marks_only_that_app() {
    let f = fixture();
    let apps = [
        application("web-staging", "apps/web/overlays/staging"),
        application("web-production", "apps/web/overlays/production")
            .replace("namespace: web-production\n", "namespace: web-prod\n"),
        application("api-staging", "apps/api/overlays/staging"),
    ]
    .join("---\n");
    let got = affected(&f, &[Change::Write("argocd/apps.yaml", apps.as_bytes())]);
    assert_eq!(
        got,
        vec![(
            "web-production".to_string(),
            vec![ChangeReason::ManifestChanged]
        )]
    );
}

#[test]
fn a_newly_referenced_file_is_an_input_change() {
    let f = fixture();
    let got = affected(
        &f,
        &[
            Change::Write(
                "apps/api/overlays/staging/kustomization.yaml",
                b"resources:\n- api.yaml\n- extra.yaml\n",
            ),
            Change::Write(
                "apps/api/overlays/staging/extra.yaml",
                cm("extra", "1").as_bytes(),
            ),
        ],
    );
    assert_eq!(names(&got), vec!["api-staging"]);
    assert_eq!(
        got[0].1,
        vec![ChangeReason::InputsChanged {
            files: vec![
                capstan_worker::repo_fs::RepoPath::new("apps/api/overlays/staging/extra.yaml")
                    .unwrap(),
                capstan_worker::repo_fs::RepoPath::new(
                    "apps/api/overlays/staging/kustomization.yaml"
                )
                .unwrap(),
            ]
        }]
    );
}
