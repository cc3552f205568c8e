//! Issue 13, finding 1: nothing from a repository reaches an exec'd tool's argv as a flag.
//! Stand-in `helm` and `kubectl` executables record the argv they were given, so each test shows
//! exactly what reached the tool (or that the tool never ran).
#![allow(clippy::unwrap_used)]

mod chart_support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use capstan_worker::apps::{DiscoveryConfig, RenderedApp, Snapshot};
use capstan_worker::git::GitRepo;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::render::{BackendChoice, RenderConfig, Renderer};

/// A stand-in tool that writes its argv (one argument per line) to `<dir>/<name>.argv` and prints
/// a ConfigMap, so a render through it succeeds.
fn recording_tool(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let bin = dir.join(name);
    let log = dir.join(format!("{name}.argv"));
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\nfor a in \"$@\"; do printf '%s\\n' \"$a\"; done > '{}'\n\
             printf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: recorded\\n'\n",
            log.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, log)
}

fn argv(log: &Path) -> Vec<String> {
    std::fs::read_to_string(log)
        .unwrap_or_else(|e| panic!("the tool never ran ({}): {e}", log.display()))
        .lines()
        .map(str::to_string)
        .collect()
}

/// An Application over a local chart with the given `metadata.name` and `spec.source.helm` body
/// (YAML, indented under `helm:`) and destination namespace.
fn chart_repo(dir: &Path, name: &str, helm: &str, namespace: &str) -> (GitRepo, git2::Oid) {
    let app = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name:?}\nspec:\n  \
         source:\n    repoURL: https://example.com/repo.git\n    path: charts/web\n    helm:\n{helm}\n  \
         destination:\n    namespace: {namespace:?}\n"
    );
    chart_support::chart_repo(dir, &app)
}

fn cfg() -> DiscoveryConfig {
    DiscoveryConfig {
        repo_urls: vec!["https://example.com/repo".into()],
        default_branch: "main".into(),
        ..Default::default()
    }
}

/// Renders the only app of the repository through the recording helm; the outcome and the argv
/// file.
fn render_helm(
    name: &str,
    helm: &str,
    namespace: &str,
) -> (RenderedApp, PathBuf, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, c) = chart_repo(&tmp.path().join("repo"), name, helm, namespace);
    let (bin, log) = recording_tool(tmp.path(), "helm");
    let r = Renderer::new(RenderConfig {
        helm_binary: Some(bin),
        ..RenderConfig::default()
    });
    let fs = repo.tree_fs(c).unwrap();
    let snap = Snapshot::build(&fs, &cfg(), &r);
    let app = snap
        .discovery
        .apps
        .first()
        .unwrap_or_else(|| panic!("no app discovered for {name:?}"))
        .name
        .clone();
    let out = snap.render(&r, &app).unwrap().outcome;
    (out, log, tmp)
}

fn assert_refused(out: &RenderedApp, log: &Path, what: &str) {
    match out {
        RenderedApp::Failed { error } => {
            assert!(error.contains(what), "{what:?} not named in {error:?}");
            assert!(error.contains("refused"), "{error:?}");
        }
        other => panic!("expected a refusal naming {what:?}, got {other:?}"),
    }
    assert!(
        !log.exists(),
        "helm ran with {:?} although the input was refused",
        argv(log)
    );
}

#[test]
fn flag_shaped_release_names_are_refused_before_helm_runs() {
    for release in ["--set-file=x=/proc/1/environ", "--post-renderer=/bin/sh"] {
        let (out, log, _tmp) =
            render_helm("web", &format!("      releaseName: {release:?}"), "web");
        assert_refused(&out, &log, "helm release name");
    }
    // Without `releaseName`, ArgoCD uses the Application's name as the release.
    let (out, log, _tmp) = render_helm("--post-renderer=/bin/sh", "      skipCrds: false", "web");
    assert_refused(&out, &log, "helm release name");
    // Valid for Kubernetes but not for helm: too long.
    let (out, log, _tmp) = render_helm(&"a".repeat(54), "      skipCrds: false", "web");
    assert_refused(&out, &log, "helm release name");
}

#[test]
fn flag_shaped_value_files_parameters_and_namespaces_are_refused() {
    for (helm, ns, what) in [
        (
            "      valueFiles: [\"--post-renderer=/bin/sh\"]",
            "web",
            "value file",
        ),
        (
            "      valueFiles: [/proc/self/environ]",
            "web",
            "value file",
        ),
        (
            "      parameters:\n      - name: --set-file\n        value: x=/proc/1/environ",
            "web",
            "helm parameter name",
        ),
        (
            "      parameters:\n      - name: a=b,c\n        value: x",
            "web",
            "helm parameter name",
        ),
        (
            "      parameters:\n      - name: image.tag\n        value: \"a\\nb\"",
            "web",
            "helm parameter value",
        ),
        (
            "      skipCrds: false",
            "--kubeconfig=/etc/passwd",
            "namespace",
        ),
    ] {
        let (out, log, _tmp) = render_helm("web", helm, ns);
        match &out {
            // A path outside the repository is stopped by the sandbox before exec, with its own
            // message; either way helm must not run.
            RenderedApp::Failed { error } if what == "value file" && error.contains("escapes") => {
                assert!(!log.exists(), "helm ran for {helm}");
            }
            _ => assert_refused(&out, &log, what),
        }
    }
}

#[test]
fn helm_positionals_follow_a_double_dash_and_values_stay_in_their_flag() {
    let helm = "      releaseName: web-prod\n      valueFiles: [values-prod.yaml, ../../shared/values.yaml]\n      \
                parameters:\n      - name: replicas\n        value: \"3\"\n      - name: note\n        \
                value: \"x,global.evil=1\"\n      - name: offset\n        value: \"-1\"\n        forceString: true";
    let (out, log, _tmp) = render_helm("web", helm, "web");
    assert!(matches!(out, RenderedApp::Rendered(_)), "{out:?}");
    let args = argv(&log);
    let n = args.len();
    assert_eq!(args[0], "template");
    assert_eq!(args[n - 3], "--", "{args:?}");
    assert_eq!(args[n - 2], "web-prod", "{args:?}");
    assert!(args[n - 1].ends_with("/repo/charts/web"), "{args:?}");
    // Before the `--`, every element is one flag with its value: nothing stands alone.
    for a in &args[1..n - 3] {
        assert!(
            a.starts_with("--") && !a.contains('\n'),
            "{a:?} in {args:?}"
        );
    }
    assert!(args.contains(&"--namespace=web".to_string()), "{args:?}");
    assert!(args.contains(&"--set=replicas=3".to_string()), "{args:?}");
    // A comma would start a second assignment in helm's --set grammar: escaped as ArgoCD does.
    assert!(
        args.contains(&r"--set=note=x\,global.evil=1".to_string()),
        "{args:?}"
    );
    assert!(
        args.contains(&"--set-string=offset=-1".to_string()),
        "{args:?}"
    );
    // Value files are normalised repository paths: no `..` reaches helm.
    let values: Vec<&String> = args.iter().filter(|a| a.starts_with("--values=")).collect();
    assert_eq!(values.len(), 2, "{args:?}");
    assert!(
        values[0].ends_with("/repo/charts/web/values-prod.yaml"),
        "{args:?}"
    );
    assert!(values[1].ends_with("/repo/shared/values.yaml"), "{args:?}");
    assert!(values.iter().all(|v| !v.contains("..")), "{args:?}");
}

#[test]
fn kustomize_build_gets_its_directory_after_a_double_dash() {
    let tmp = tempfile::tempdir().unwrap();
    let b = RepoBuilder::init(&tmp.path().join("repo")).unwrap();
    let c = b
        .commit(
            "kustomization",
            &[
                Change::Write("app/kustomization.yaml", b"resources:\n- cm.yaml\n"),
                Change::Write(
                    "app/cm.yaml",
                    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n",
                ),
            ],
        )
        .unwrap();
    let repo = GitRepo::open(&tmp.path().join("repo")).unwrap();
    for tool in ["kubectl", "kustomize"] {
        let (bin, log) = recording_tool(tmp.path(), tool);
        let r = Renderer::new(RenderConfig {
            backend: BackendChoice::Kustomize,
            kustomize_binary: Some(bin),
            ..RenderConfig::default()
        });
        let fs = repo.tree_fs(c).unwrap();
        let source = capstan_worker::render::RenderSource {
            path: capstan_worker::repo_fs::RepoPath::new("app").unwrap(),
            kind: capstan_worker::render::SourceKind::Kustomize(Default::default()),
            namespace: None,
            release_name: "app".into(),
        };
        r.render(&fs, &source).unwrap();
        let args = argv(&log);
        let n = args.len();
        assert_eq!(
            args[0],
            if tool == "kubectl" {
                "kustomize"
            } else {
                "build"
            }
        );
        assert_eq!(args[n - 2], "--", "{args:?}");
        assert!(args[n - 1].ends_with("/repo/app"), "{args:?}");
        assert!(
            args[1..n - 2]
                .iter()
                .all(|a| a.starts_with("--") && a.contains('=')),
            "{args:?}"
        );
    }
}
