//! `helmCharts` in kustomizations through the render layer: what cannot be rendered is "not
//! checked" with its reason, hostile paths are refused, the chart folder and values files are the
//! app's inputs, and the kustomize binary backend inflates charts in the repository (only those)
//! with `--enable-helm`. Output fidelity is the `helm-*` conformance cases'
//! (`kustomize_conformance.rs`).
#![allow(clippy::unwrap_used)]

mod chart_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;

use capstan_worker::render::charts::ChartSettings;
use sha2::Digest;

use capstan_worker::render::{
    BackendChoice, KustomizeOptions, RenderConfig, RenderError, RenderSource, Renderer, SourceKind,
};
use capstan_worker::repo_fs::{DirFs, RepoFs, RepoPath};

const CHART: &str = "apiVersion: v2\nname: web\nversion: 0.1.0\n";
const VALUES: &str = "greeting: hello\n";
const TEMPLATE: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-web\ndata:\n  greeting: {{ .Values.greeting | quote }}\n";

fn source(path: &str) -> RenderSource {
    RenderSource {
        path: RepoPath::new(path).unwrap(),
        kind: SourceKind::Kustomize(KustomizeOptions::default()),
        namespace: None,
        release_name: "app".into(),
    }
}

/// The helm kustomize's binary is given: a real helm v3, else the test engine behind the
/// version-gate adapter (see `tests/kustomize/helm-v3-gate`).
fn gate_helm() -> PathBuf {
    let engine = capstan_worker::render::helm::test_binary().unwrap();
    let out = std::process::Command::new(&engine)
        .args(["version", "--short"])
        .output()
        .unwrap();
    if String::from_utf8_lossy(&out.stdout).starts_with("v3.") {
        engine
    } else {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/kustomize/helm-v3-gate")
    }
}

fn renderer(backend: BackendChoice, helm: Option<PathBuf>) -> Renderer {
    Renderer::new(RenderConfig {
        backend,
        helm_binary: helm,
        ..RenderConfig::default()
    })
}

/// A repository with `app/` using the chart `app/charts/web`.
fn repo(kustomization: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |rel: &str, text: &str| {
        let p = dir.path().join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write("app/kustomization.yaml", kustomization);
    write("app/charts/web/Chart.yaml", CHART);
    write("app/charts/web/values.yaml", VALUES);
    write("app/charts/web/templates/cm.yaml", TEMPLATE);
    write("app/values/prod.yaml", "greeting: prod\n");
    write("app/values/extra.yaml", "other: 1\n");
    dir
}

#[test]
fn without_a_helm_binary_a_chart_is_not_checked() {
    let dir = repo("helmCharts:\n- name: web\n  releaseName: r\n");
    let fs = DirFs::new(dir.path()).unwrap();
    for backend in [BackendChoice::Native, BackendChoice::Auto] {
        let err = renderer(backend, None)
            .render(&fs, &source("app"))
            .unwrap_err();
        assert!(err.is_not_checked(), "{backend:?}: {err}");
        assert!(
            err.to_string()
                .starts_with("not rendered: helm unavailable"),
            "{err}"
        );
    }
}

#[test]
fn a_chart_from_a_repository_that_is_not_allowed_is_not_checked_with_the_reason() {
    let dir = repo(
        "helmCharts:\n- name: remote\n  repo: https://charts.example.com/stable\n  version: 1.0.0\n  releaseName: r\n",
    );
    let fs = DirFs::new(dir.path()).unwrap();
    let helm = capstan_worker::render::helm::test_binary().unwrap();
    for backend in [BackendChoice::Native, BackendChoice::Auto] {
        let r = renderer(backend, Some(helm.clone()));
        let err = r.render(&fs, &source("app")).unwrap_err();
        assert!(err.is_not_checked(), "{backend:?}: {err}");
        let msg = err.to_string();
        assert!(msg.contains("https://charts.example.com/stable"), "{msg}");
        assert!(msg.contains("not one Capstan may fetch"), "{msg}");
        assert_eq!(
            r.chart_fetcher()
                .requests
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
    // The kustomize binary would pull the chart itself: it is never asked.
    let r = Renderer::new(RenderConfig {
        backend: BackendChoice::Kustomize,
        kustomize_binary: Some("kubectl".into()),
        helm_binary: Some(gate_helm()),
        ..RenderConfig::default()
    });
    let err = r.render(&fs, &source("app")).unwrap_err();
    assert!(matches!(err, RenderError::Unsupported { .. }), "{err}");
}

#[test]
fn values_files_and_charts_outside_the_repository_or_the_kustomization_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.yaml"), "greeting: leaked\n").unwrap();
    std::fs::create_dir_all(outside.path().join("web/templates")).unwrap();
    std::fs::write(outside.path().join("web/Chart.yaml"), CHART).unwrap();
    std::fs::write(outside.path().join("web/templates/cm.yaml"), TEMPLATE).unwrap();
    let helm = capstan_worker::render::helm::test_binary().unwrap();
    let entry = "helmCharts:\n- name: web\n  releaseName: r\n";
    type Setup = Box<dyn Fn(&Path)>;
    let cases: Vec<(String, Setup)> = vec![
        (
            format!("{entry}  valuesFile: /etc/passwd\n"),
            Box::new(|_| {}),
        ),
        (
            format!("{entry}  additionalValuesFiles: [/etc/hosts]\n"),
            Box::new(|_| {}),
        ),
        (
            format!("{entry}  valuesFile: ../../x.yaml\n"),
            Box::new(|_| {}),
        ),
        (
            format!("{entry}  valuesFile: https://example.com/v.yaml\n"),
            Box::new(|_| {}),
        ),
        (
            format!("helmGlobals:\n  chartHome: /tmp\n{entry}"),
            Box::new(|_| {}),
        ),
        (format!("{entry}  valuesFile: link.yaml\n"), {
            let target = outside.path().join("secret.yaml");
            Box::new(move |root: &Path| {
                std::os::unix::fs::symlink(&target, root.join("app/link.yaml")).unwrap();
            })
        }),
        (format!("helmGlobals:\n  chartHome: linked\n{entry}"), {
            let target = outside.path().to_path_buf();
            Box::new(move |root: &Path| {
                std::os::unix::fs::symlink(&target, root.join("app/linked")).unwrap();
            })
        }),
    ];
    for (k, setup) in cases {
        let dir = repo(&k);
        setup(dir.path());
        let fs = DirFs::new(dir.path()).unwrap();
        for backend in [BackendChoice::Native, BackendChoice::Auto] {
            let r = renderer(backend, Some(helm.clone()));
            let err = r.render(&fs, &source("app")).unwrap_err();
            assert!(
                !err.is_not_checked(),
                "{k}: refused, not unrenderable: {err}"
            );
            let msg = err.to_string();
            assert!(!msg.contains("leaked") && !msg.contains("root:"), "{msg}");
        }
    }
}

#[test]
fn the_chart_folder_and_the_values_files_are_inputs() {
    let dir = repo(
        "helmCharts:\n- name: web\n  releaseName: r\n  valuesFile: values/prod.yaml\n  additionalValuesFiles: [values/extra.yaml]\n",
    );
    let fs = DirFs::new(dir.path()).unwrap();
    let inputs = renderer(BackendChoice::Auto, None)
        .inputs(&fs, &source("app"))
        .unwrap();
    let got: Vec<&str> = inputs.iter().map(|p| p.as_str()).collect();
    assert_eq!(
        got,
        [
            "app/charts/web/Chart.yaml",
            "app/charts/web/templates/cm.yaml",
            "app/charts/web/values.yaml",
            "app/kustomization.yaml",
            "app/values/extra.yaml",
            "app/values/prod.yaml",
        ]
    );
}

#[test]
fn the_native_engine_and_the_kustomize_binary_with_enable_helm_agree() {
    let dir = repo(
        "namePrefix: p-\nhelmCharts:\n- name: web\n  releaseName: r\n  valuesFile: values/prod.yaml\n  valuesInline:\n    greeting: inline\n",
    );
    let fs = DirFs::new(dir.path()).unwrap();
    let native = renderer(
        BackendChoice::Native,
        Some(capstan_worker::render::helm::test_binary().unwrap()),
    )
    .render(&fs, &source("app"))
    .unwrap();
    assert!(native.yaml.contains("name: p-r-web"), "{}", native.yaml);
    assert!(native.yaml.contains("greeting: inline"), "{}", native.yaml);
    let binary = Renderer::new(RenderConfig {
        backend: BackendChoice::Kustomize,
        kustomize_binary: Some(capstan_worker::render::exec::which("kubectl").unwrap()),
        helm_binary: Some(gate_helm()),
        ..RenderConfig::default()
    })
    .render(&fs, &source("app"))
    .unwrap();
    assert_eq!(binary.backend, "kustomize");
    assert_eq!(&*binary.yaml, &*native.yaml);
    let _ = fs.kind(&RepoPath::new("app").unwrap());
}

/// A chart a kustomization names by `repo:` comes through Capstan's chart fetcher when the
/// operator lists the repository: fetched once (index and archive, digest checked), then served
/// from the cache, offline too, and inflated exactly as the same chart kept in the repository.
#[test]
fn a_chart_from_a_listed_repository_is_fetched_cached_and_inflated_like_a_local_one() {
    let tmp = tempfile::tempdir().unwrap();
    let tgz = chart_support::archive(
        tmp.path(),
        "web",
        &[
            ("Chart.yaml", CHART),
            ("values.yaml", VALUES),
            ("templates/cm.yaml", TEMPLATE),
        ],
    );
    let index = format!(
        "apiVersion: v1\nentries:\n  web:\n  - name: web\n    version: 0.1.0\n    \
         urls: [web-0.1.0.tgz]\n    digest: {}\n",
        hex::encode(sha2::Sha256::digest(&tgz))
    );
    let mut files = BTreeMap::new();
    files.insert("index.yaml".to_string(), index.into_bytes());
    files.insert("web-0.1.0.tgz".to_string(), tgz);
    let served = chart_support::serve(files);

    // The same chart, from the repository and from the kustomization's own chart folder.
    let fields = "  version: 0.1.0\n  releaseName: r\n  namespace: team\n  \
                  valuesInline:\n    greeting: inline\nnamePrefix: p-\n";
    let remote = repo(&format!(
        "helmCharts:\n- name: web\n  repo: {}\n{fields}",
        served.url
    ));
    let local = repo(&format!("helmCharts:\n- name: web\n{fields}"));
    let helm = capstan_worker::render::helm::test_binary().unwrap();
    let cache = tmp.path().join("chart-cache");
    let with_charts = |offline: bool| {
        Renderer::new(RenderConfig {
            backend: BackendChoice::Native,
            helm_binary: Some(helm.clone()),
            charts: ChartSettings {
                repositories: vec![served.url.clone()],
                cache_dir: Some(cache.clone()),
                offline,
                ..ChartSettings::default()
            },
            ..RenderConfig::default()
        })
    };
    let want = renderer(BackendChoice::Native, Some(helm.clone()))
        .render(&DirFs::new(local.path()).unwrap(), &source("app"))
        .unwrap();
    assert!(want.yaml.contains("name: p-r-web"), "{}", want.yaml);
    assert!(want.yaml.contains("greeting: inline"), "{}", want.yaml);

    let remote_fs = DirFs::new(remote.path()).unwrap();
    let fetched = with_charts(false)
        .render(&remote_fs, &source("app"))
        .unwrap();
    assert_eq!(fetched.yaml, want.yaml);
    let after_fetch = served.hits.load(Ordering::SeqCst);
    assert_eq!(after_fetch, 2, "the index and the archive, once each");

    // A new process with the cache: nothing is asked of the repository.
    let cached = with_charts(true)
        .render(&remote_fs, &source("app"))
        .unwrap();
    assert_eq!(cached.yaml, want.yaml);
    assert_eq!(served.hits.load(Ordering::SeqCst), after_fetch);
}
