//! Backends against the real tools: the kustomize exec backend reproduces `kubectl kustomize`,
//! Application options are applied like `kustomize edit`, the input graph is exact, plain
//! directories, helm availability and the render cache.
#![allow(clippy::unwrap_used)]

mod chart_support;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::atomic::Ordering;

use capstan_worker::apps::{DiscoveryConfig, RenderedApp, Snapshot};
use capstan_worker::git::GitRepo;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::render::{
    DirectoryOptions, KustomizeOptions, RenderConfig, RenderSource, Renderer, SourceKind,
};
use capstan_worker::repo_fs::{DirFs, RepoPath};

fn kubectl() -> bool {
    if capstan_worker::render::exec::which("kubectl").is_some() {
        true
    } else {
        println!("skipped: kubectl is not on PATH");
        false
    }
}

fn kubectl_kustomize(dir: &Path) -> String {
    let out = std::process::Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// A kustomization exercising every field through which kustomize reads files.
const FILES: &[(&str, &str)] = &[
    (
        "shared/base/kustomization.yaml",
        "resources:\n- deployment.yaml\nconfigurations:\n- transformer-config.yaml\n",
    ),
    (
        "shared/base/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.25\n        env:\n        - name: COLOR\n          value: placeholder\n",
    ),
    ("shared/base/transformer-config.yaml", "nameReference: []\n"),
    (
        "shared/component/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources:\n- pdb.yaml\n",
    ),
    (
        "shared/component/pdb.yaml",
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata:\n  name: web\nspec:\n  minAvailable: 1\n  selector:\n    matchLabels: {app: web}\n",
    ),
    (
        "app/kustomization.yaml",
        "namespace: shop\nresources:\n- ../shared/base\ncomponents:\n- ../shared/component\npatches:\n- path: replicas.yaml\npatchesJson6902:\n- target: {group: apps, version: v1, kind: Deployment, name: web}\n  path: json-patch.yaml\nconfigMapGenerator:\n- name: settings\n  files:\n  - app.properties\n  - renamed=other.txt\n  envs:\n  - settings.env\nsecretGenerator:\n- name: creds\n  literals:\n  - user=admin\nreplacements:\n- path: replacement.yaml\nimages:\n- name: nginx\n  newTag: '1.27'\n",
    ),
    (
        "app/replicas.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n",
    ),
    (
        "app/json-patch.yaml",
        "- op: add\n  path: /metadata/labels\n  value: {tier: front}\n",
    ),
    ("app/app.properties", "a=1\n"),
    ("app/other.txt", "hello\n"),
    ("app/settings.env", "COLOR=blue\n"),
    (
        "app/replacement.yaml",
        "source:\n  kind: ConfigMap\n  name: settings\n  fieldPath: data.COLOR\ntargets:\n- select:\n    kind: Deployment\n  fieldPaths:\n  - spec.template.spec.containers.[name=web].env.[name=COLOR].value\n",
    ),
    ("app/unused.yaml", "not: read\n"),
];

fn write_tree(root: &Path, files: &[(&str, &str)]) {
    for (p, c) in files {
        let path = root.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
}

fn kustomize_source(path: &str, opts: KustomizeOptions) -> RenderSource {
    RenderSource {
        path: RepoPath::new(path).unwrap(),
        kind: SourceKind::Kustomize(opts),
        namespace: None,
        release_name: "app".into(),
    }
}

#[test]
fn exec_backend_matches_kubectl_and_the_input_graph_is_exact() {
    if !kubectl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), FILES);
    let fs = DirFs::new(tmp.path()).unwrap();
    let r = Renderer::new(RenderConfig::default());
    let out = r
        .render(&fs, &kustomize_source("app", KustomizeOptions::default()))
        .unwrap();
    assert_eq!(&*out.yaml, kubectl_kustomize(&tmp.path().join("app")));
    assert!(out.yaml.contains("nginx:1.27") && out.yaml.contains("value: blue"));
    assert_eq!(out.objects.len(), 4);
    if capstan_worker::render::NATIVE_FIRST {
        // The native engine is tried first; when it declines, the fallback is said out loud.
        assert!(
            out.backend == "native" || out.notes.iter().any(|n| n.contains("native engine")),
            "{} {:?}",
            out.backend,
            out.notes
        );
    } else {
        assert_eq!(out.backend, "kustomize");
    }
    let expected: BTreeSet<RepoPath> = FILES
        .iter()
        .map(|(p, _)| *p)
        .filter(|p| *p != "app/unused.yaml")
        .map(|p| RepoPath::new(p).unwrap())
        .collect();
    assert_eq!(out.inputs, expected);

    // The same tree in a commit renders identically, without a checkout.
    let repo_dir = tmp.path().join("git");
    let b = RepoBuilder::init(&repo_dir).unwrap();
    let changes: Vec<Change<'_>> = FILES
        .iter()
        .map(|(p, c)| Change::Write(p, c.as_bytes()))
        .collect();
    let c = b.commit("tree", &changes).unwrap();
    let tree = GitRepo::open(&repo_dir).unwrap().tree_fs(c).unwrap();
    let fresh = Renderer::new(RenderConfig::default());
    let from_git = fresh
        .render(&tree, &kustomize_source("app", KustomizeOptions::default()))
        .unwrap();
    assert_eq!(from_git.yaml, out.yaml);
    assert!(
        std::fs::read_dir(&repo_dir)
            .unwrap()
            .all(|e| e.unwrap().file_name() == ".git")
    );
}

#[test]
fn application_kustomize_options_match_the_edited_kustomization() {
    if !kubectl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    write_tree(tmp.path(), FILES);
    let opts = KustomizeOptions {
        name_prefix: Some("prod-".into()),
        namespace: Some("shop-prod".into()),
        images: vec!["nginx=registry.local/nginx:1.28".into()],
        common_labels: [("env".to_string(), "prod".to_string())]
            .into_iter()
            .collect(),
        ..KustomizeOptions::default()
    };
    let r = Renderer::new(RenderConfig::default());
    let fs = DirFs::new(tmp.path()).unwrap();
    let out = r.render(&fs, &kustomize_source("app", opts)).unwrap();
    // What `kustomize edit set nameprefix/namespace/image` + `edit add label` would leave behind.
    let edited = tmp.path().join("edited");
    write_tree(&edited, FILES);
    let k = std::fs::read_to_string(edited.join("app/kustomization.yaml")).unwrap();
    let k = k
        .replace(
            "namespace: shop\n",
            "namespace: shop-prod\nnamePrefix: prod-\ncommonLabels:\n  env: prod\n",
        )
        .replace(
            "- name: nginx\n  newTag: '1.27'\n",
            "- name: nginx\n  newName: registry.local/nginx\n  newTag: '1.28'\n",
        );
    std::fs::write(edited.join("app/kustomization.yaml"), k).unwrap();
    assert_eq!(&*out.yaml, kubectl_kustomize(&edited.join("app")));
    // The working tree was not modified.
    assert!(
        std::fs::read_to_string(tmp.path().join("app/kustomization.yaml"))
            .unwrap()
            .contains("namespace: shop\n")
    );
}

/// The names of the objects the directory source `m` renders to with `opts`.
fn directory_names(
    r: &Renderer,
    fs: &capstan_worker::repo_fs::MemFs,
    opts: DirectoryOptions,
) -> Vec<String> {
    let src = RenderSource {
        path: RepoPath::new("m").unwrap(),
        kind: SourceKind::Directory(opts),
        namespace: None,
        release_name: "m".into(),
    };
    r.render(fs, &src)
        .unwrap()
        .objects
        .iter()
        .map(|o| o.id.name.clone())
        .collect()
}

#[test]
fn plain_directory_with_recurse_include_and_exclude() {
    let fs = capstan_worker::repo_fs::MemFs::new()
        .with("m/a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")
        .with("m/b.json", "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"b\"}}")
        .with("m/README.md", "# not a manifest\n")
        .with("m/sub/c.yml", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: c1\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: c2\n")
        .with("m/sub/skip.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: skipped\n");
    let r = Renderer::new(RenderConfig::default());
    let render = |opts: DirectoryOptions| directory_names(&r, &fs, opts);
    assert_eq!(render(DirectoryOptions::default()), vec!["a", "b"]);
    assert_eq!(
        render(DirectoryOptions {
            recurse: true,
            ..Default::default()
        }),
        vec!["a", "b", "c1", "c2", "skipped"]
    );
    assert_eq!(
        render(DirectoryOptions {
            recurse: true,
            include: Some("{*.yaml,sub/*.yml}".into()),
            exclude: Some("sub/skip.yaml".into()),
            ..Default::default()
        }),
        vec!["a", "c1", "c2"]
    );
}

/// What ArgoCD's `findManifests` does and the first directory backend did not: globs match the
/// path relative to the source (never the bare file name) and `*` crosses `/`; any object with an
/// `items` array is a list; a file with the skip marker is left out; a YAML file that is not a
/// manifest at all is ignored.
#[test]
fn plain_directory_matches_argocd_globs_lists_markers_and_stray_yaml() {
    let cm = |n: &str| format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n");
    let fs = capstan_worker::repo_fs::MemFs::new()
        .with("m/cm.yaml", cm("top"))
        .with("m/sub/cm.yaml", cm("nested"))
        .with("m/sub/deep/x.yaml", cm("deep"))
        .with("m/.hidden.yaml", cm("hidden"))
        .with(
            "m/list.yaml",
            "apiVersion: v1\nkind: ConfigMapList\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: l1\n- apiVersion: v1\n  kind: ConfigMap\n  metadata:\n    name: l2\n",
        )
        .with("m/empty-list.yaml", "apiVersion: v1\nkind: ConfigMapList\nitems: null\n")
        .with("m/skipped.yaml", format!("# +argocd:skip-file-rendering\n{}", cm("skipped")))
        .with("m/values.yaml", "replicas: 3\nimage: nginx\n");
    let r = Renderer::new(RenderConfig::default());
    let names = |opts: DirectoryOptions| directory_names(&r, &fs, opts);
    assert_eq!(
        names(DirectoryOptions::default()),
        vec!["hidden", "top", "l1", "l2"]
    );
    assert_eq!(
        names(DirectoryOptions {
            recurse: true,
            exclude: Some("cm.yaml".into()),
            ..Default::default()
        }),
        vec!["hidden", "l1", "l2", "nested", "deep"],
        "exclude `cm.yaml` is the top file only, not every file named so"
    );
    assert_eq!(
        names(DirectoryOptions {
            recurse: true,
            include: Some("sub/*.yaml".into()),
            ..Default::default()
        }),
        vec!["nested", "deep"],
        "`*` crosses `/`"
    );
    // Not YAML at all and nothing like a manifest (a Helm-style template): ignored too.
    let fs = fs.with("m/tpl.yaml", "{{ .Values.x }}: [\n");
    assert_eq!(
        directory_names(&r, &fs, DirectoryOptions::default()),
        vec!["hidden", "top", "l1", "l2"]
    );
    // With `disableExtensionFilter` every file is a candidate; include/exclude still apply.
    let fs = fs.with("m/extra.txt", cm("txt"));
    assert_eq!(
        directory_names(
            &r,
            &fs,
            DirectoryOptions {
                disable_extension_filter: true,
                include: Some("{extra.txt,cm.yaml}".into()),
                ..Default::default()
            }
        ),
        vec!["top", "txt"]
    );
    // A stray YAML file that looks like a manifest is an error, not ignored.
    let bad = capstan_worker::repo_fs::MemFs::new().with(
        "m/bad.yaml",
        "apiVersion: v1\nmetadata:\n  name: x\nkind:\n",
    );
    let src = RenderSource {
        path: RepoPath::new("m").unwrap(),
        kind: SourceKind::Directory(DirectoryOptions::default()),
        namespace: None,
        release_name: "m".into(),
    };
    assert!(r.render(&bad, &src).is_err());
}

fn helm_repo(tmp: &Path) -> (GitRepo, git2::Oid) {
    let app = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: chart-app\nspec:\n  source:\n    repoURL: https://example.com/repo.git\n    path: charts/web\n    helm:\n      valueFiles: [values-prod.yaml]\n      parameters:\n      - name: replicas\n        value: '3'\n  destination:\n    namespace: web\n";
    chart_support::chart_repo(tmp, app)
}

fn cfg() -> DiscoveryConfig {
    DiscoveryConfig {
        repo_urls: vec!["https://example.com/repo".into()],
        default_branch: "main".into(),
        ..Default::default()
    }
}

#[test]
fn helm_without_a_binary_is_reported_not_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, c) = helm_repo(tmp.path());
    let fs = repo.tree_fs(c).unwrap();
    let r = Renderer::new(RenderConfig {
        helm_binary: None,
        ..RenderConfig::default()
    });
    let snap = Snapshot::build(&fs, &cfg(), &r);
    let app = snap.app("chart-app").unwrap();
    assert_eq!(app.sources[0].kind.as_deref(), Some("helm"));
    // Chart files and the value file are the app's inputs even when it cannot be rendered.
    let inputs: Vec<&str> = snap.inputs["chart-app"]
        .as_ref()
        .unwrap()
        .keys()
        .map(|p| p.as_str())
        .collect();
    assert_eq!(
        inputs,
        vec![
            "charts/web/Chart.yaml",
            "charts/web/templates/cm.yaml",
            "charts/web/values-prod.yaml",
            "charts/web/values.yaml"
        ]
    );
    if capstan_worker::render::exec::which("helm").is_some() {
        println!("skipped: a helm binary is installed, so helm is available");
        return;
    }
    match snap.render(&r, "chart-app").unwrap().outcome {
        RenderedApp::NotChecked { reason } => {
            assert!(reason.contains("helm unavailable"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn helm_exec_gets_the_chart_values_and_parameters() {
    let tmp = tempfile::tempdir().unwrap();
    let (repo, c) = helm_repo(&tmp.path().join("repo"));
    // A stand-in helm that prints its arguments as a ConfigMap.
    let bin = tmp.path().join("helm");
    std::fs::write(
        &bin,
        "#!/bin/sh\nfor a; do release=$chart; chart=$a; done\nprintf 'apiVersion: v1\\nkind: ConfigMap\\nmetadata:\\n  name: %s\\ndata:\\n  args: \"%s\"\\n' \"$release\" \"$*\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let r = Renderer::new(RenderConfig {
        helm_binary: Some(bin),
        ..RenderConfig::default()
    });
    let fs = repo.tree_fs(c).unwrap();
    let snap = Snapshot::build(&fs, &cfg(), &r);
    let out = snap.render(&r, "chart-app").unwrap();
    let obj = &out.objects()[0];
    assert_eq!(obj.id.name, "chart-app");
    let args = obj.value["data"]["args"].as_str().unwrap();
    // Flags first, each with its value; the release name and chart after `--` (issue 13).
    assert!(args.starts_with("template --namespace=web "), "{args}");
    assert!(args.contains(" -- chart-app "), "{args}");
    assert!(args.ends_with("charts/web"), "{args}");
    assert!(
        args.contains("charts/web/values-prod.yaml --set=replicas=3"),
        "{args}"
    );
}

#[test]
fn cache_renders_each_input_state_once() {
    if !kubectl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    let b = RepoBuilder::init(&repo_dir).unwrap();
    let changes: Vec<Change<'_>> = FILES
        .iter()
        .map(|(p, c)| Change::Write(p, c.as_bytes()))
        .collect();
    let c1 = b.commit("one", &changes).unwrap();
    let c2 = b
        .commit(
            "unrelated",
            &[Change::Write("app/unused.yaml", b"still: unused\n")],
        )
        .unwrap();
    let c3 = b
        .commit(
            "related",
            &[Change::Write("app/settings.env", b"COLOR=green\n")],
        )
        .unwrap();
    let repo = GitRepo::open(&repo_dir).unwrap();
    let cache = tmp.path().join("cache");
    let config = RenderConfig {
        cache_dir: Some(cache.clone()),
        ..RenderConfig::default()
    };
    let r = Renderer::new(config.clone());
    let src = kustomize_source("app", KustomizeOptions::default());
    let a = r.render(&repo.tree_fs(c1).unwrap(), &src).unwrap();
    let b2 = r.render(&repo.tree_fs(c2).unwrap(), &src).unwrap();
    assert!(!a.cache_hit && b2.cache_hit);
    assert_eq!(a.yaml, b2.yaml);
    let c = r.render(&repo.tree_fs(c3).unwrap(), &src).unwrap();
    assert!(!c.cache_hit);
    assert!(c.yaml.contains("green"));
    assert_eq!(r.stats.backend_runs.load(Ordering::Relaxed), 2);
    // A new process (new renderer) finds both on disk.
    let again = Renderer::new(config);
    assert!(
        again
            .render(&repo.tree_fs(c1).unwrap(), &src)
            .unwrap()
            .cache_hit
    );
    assert!(
        again
            .render(&repo.tree_fs(c3).unwrap(), &src)
            .unwrap()
            .cache_hit
    );
    assert_eq!(again.stats.backend_runs.load(Ordering::Relaxed), 0);
}

#[test]
fn tool_errors_name_repository_paths_not_the_scratch_copy() {
    if !kubectl() {
        return;
    }
    let fs = capstan_worker::repo_fs::MemFs::new()
        .with("app/kustomization.yaml", "resources:\n- x.yaml\n")
        .with("app/x.yaml", "apiVersion: v1\nmetadata:\n  name: x\n");
    let r = Renderer::new(RenderConfig {
        backend: capstan_worker::render::BackendChoice::Kustomize,
        ..RenderConfig::default()
    });
    let err = r
        .render(&fs, &kustomize_source("app", KustomizeOptions::default()))
        .unwrap_err()
        .to_string();
    assert!(err.contains("missing kind"), "{err}");
    assert!(err.contains("'app/x.yaml'"), "{err}");
    let tmp = std::env::temp_dir().display().to_string();
    assert!(!err.contains(&tmp), "{err}");
}

#[test]
fn native_backend_either_declines_or_agrees_with_the_binary() {
    if !kubectl() {
        return;
    }
    // `--backend native` never silently differs from kustomize: what the engine cannot
    // reproduce exactly is an `unsupported:` error, anything else must match the binary.
    let fs = capstan_worker::repo_fs::MemFs::new()
        .with("app/kustomization.yaml", "resources:\n- cm.yaml\n")
        .with(
            "app/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
        );
    let native = Renderer::new(RenderConfig {
        backend: capstan_worker::render::BackendChoice::Native,
        ..RenderConfig::default()
    });
    match native.render(&fs, &kustomize_source("app", KustomizeOptions::default())) {
        Ok(out) => {
            // The engine supports this input: it must then agree with the binary.
            let exec = Renderer::new(RenderConfig {
                backend: capstan_worker::render::BackendChoice::Kustomize,
                ..RenderConfig::default()
            });
            let by_exec = exec
                .render(&fs, &kustomize_source("app", KustomizeOptions::default()))
                .unwrap();
            assert_eq!(out.yaml, by_exec.yaml);
            assert_eq!(out.backend, "native");
        }
        Err(e) => assert!(e.to_string().starts_with("unsupported:"), "{e}"),
    }
}

/// An executable standing in for a kustomize binary (e.g. a newer one than the engine follows).
fn fake_kustomize(dir: &Path, script: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let bin = dir.join("kustomize");
    std::fs::write(&bin, format!("#!/bin/sh\n{script}\n")).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    bin
}

/// An ArgoCD hook Job named by `generateName`: kustomize v5.5 and the engine reject it, newer
/// kustomize builds it.
fn generate_name_app() -> capstan_worker::repo_fs::MemFs {
    capstan_worker::repo_fs::MemFs::new()
        .with("app/kustomization.yaml", "resources:\n- job.yaml\n")
        .with(
            "app/job.yaml",
            "apiVersion: batch/v1\nkind: Job\nmetadata:\n  generateName: migrate-\nspec: {}\n",
        )
}

#[test]
fn auto_falls_back_to_the_binary_when_the_engine_rejects_what_it_builds() {
    let tmp = tempfile::tempdir().unwrap();
    // What the binary prints is its business; a named object keeps the object parser content.
    let bin = fake_kustomize(
        tmp.path(),
        "printf 'apiVersion: batch/v1\\nkind: Job\\nmetadata:\\n  name: migrate-1\\n'",
    );
    let r = Renderer::new(RenderConfig {
        kustomize_binary: Some(bin),
        ..RenderConfig::default()
    });
    let out = r
        .render(
            &generate_name_app(),
            &kustomize_source("app", KustomizeOptions::default()),
        )
        .unwrap();
    assert_eq!(out.backend, "kustomize");
    assert!(out.yaml.contains("name: migrate-1"), "{}", out.yaml);
    assert!(
        out.notes
            .iter()
            .any(|n| n.contains("native engine") && n.contains("metadata.name")),
        "{:?}",
        out.notes
    );
}

#[test]
fn auto_keeps_the_engine_error_when_the_binary_fails_too() {
    let tmp = tempfile::tempdir().unwrap();
    let bin = fake_kustomize(tmp.path(), "echo 'Error: boom' >&2; exit 1");
    let r = Renderer::new(RenderConfig {
        kustomize_binary: Some(bin),
        ..RenderConfig::default()
    });
    let err = r
        .render(
            &generate_name_app(),
            &kustomize_source("app", KustomizeOptions::default()),
        )
        .unwrap_err()
        .to_string();
    assert!(err.contains("metadata.name"), "{err}");
    assert!(err.contains("app/job.yaml"), "{err}");
}
