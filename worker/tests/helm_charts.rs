//! Charts with dependencies (issue 17): vendored in `charts/` (folder or archive), `file://`
//! charts elsewhere in the repository, and charts from an HTTP Helm repository served here on
//! loopback (the `index.yaml` contract), cached by digest and served offline from the cache.
#![allow(clippy::unwrap_used)]

mod chart_support;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::Ordering;

use chart_support::{ChartRepo, URL, archive, cfg, renderer, serve};

use capstan_worker::apps::{RenderedApp, Snapshot};
use capstan_worker::git::GitRepo;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::render::Renderer;
use capstan_worker::render::charts::ChartSettings;
use sha2::Digest;

fn cm(name: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-{name}\ndata:\n  \
         v: {{{{ .Values.v | default \"unset\" | quote }}}}\n"
    )
}

fn chart_yaml(name: &str, version: &str) -> String {
    format!("apiVersion: v2\nname: {name}\nversion: {version}\n")
}

/// The remote chart `remote` 0.2.0 and the index of a repository holding it (digest `digest`,
/// or the archive's own).
fn remote_repo(tmp: &Path, digest: Option<&str>) -> ChartRepo {
    let tgz = archive(
        tmp,
        "remote",
        &[
            ("Chart.yaml", &chart_yaml("remote", "0.2.0")),
            ("templates/cm.yaml", &cm("remote")),
        ],
    );
    let real = hex::encode(sha2::Sha256::digest(&tgz));
    let index = format!(
        "apiVersion: v1\nentries:\n  remote:\n  - name: remote\n    version: 0.2.0\n    \
         urls: [remote-0.2.0.tgz]\n    digest: {}\n  - name: remote\n    version: 0.1.0\n    \
         urls: [remote-0.1.0.tgz]\n",
        digest.unwrap_or(&real)
    );
    let mut files = BTreeMap::new();
    files.insert("index.yaml".to_string(), index.into_bytes());
    files.insert("remote-0.2.0.tgz".to_string(), tgz);
    serve(files)
}

/// A repository whose chart `charts/app` depends on a vendored folder, a vendored archive, a
/// `file://` chart and `remote` from `repo_url`; one Application renders it.
fn repo(dir: &Path, tmp: &Path, repo_url: &str) -> (GitRepo, git2::Oid) {
    let packed = archive(
        tmp,
        "packed",
        &[
            ("Chart.yaml", &chart_yaml("packed", "0.1.0")),
            ("templates/cm.yaml", &cm("packed")),
        ],
    );
    let app_chart = format!(
        "apiVersion: v2\nname: app\nversion: 1.0.0\ndependencies:\n- name: sub\n  version: 0.1.0\n\
         - name: packed\n  version: 0.1.0\n- name: common\n  version: 0.1.0\n  \
         repository: file://../common\n- name: remote\n  version: 0.2.0\n  repository: {repo_url}\n"
    );
    let application = format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: app\nspec:\n  \
         source:\n    repoURL: {URL}\n    path: charts/app\n    helm:\n      \
         valuesObject:\n        remote:\n          v: from-parent\n  destination:\n    namespace: app\n"
    );
    let b = RepoBuilder::init(dir).unwrap();
    let c = b
        .commit(
            "chart",
            &[
                Change::Write("apps/app.yaml", application.as_bytes()),
                Change::Write("charts/app/Chart.yaml", app_chart.as_bytes()),
                Change::Write("charts/app/templates/cm.yaml", cm("app").as_bytes()),
                Change::Write(
                    "charts/app/charts/sub/Chart.yaml",
                    chart_yaml("sub", "0.1.0").as_bytes(),
                ),
                Change::Write(
                    "charts/app/charts/sub/templates/cm.yaml",
                    cm("sub").as_bytes(),
                ),
                Change::Write("charts/app/charts/packed-0.1.0.tgz", &packed),
                Change::Write(
                    "charts/common/Chart.yaml",
                    chart_yaml("common", "0.1.0").as_bytes(),
                ),
                Change::Write("charts/common/templates/cm.yaml", cm("common").as_bytes()),
            ],
        )
        .unwrap();
    (GitRepo::open(dir).unwrap(), c)
}

fn outcome(fs: &dyn capstan_worker::repo_fs::RepoFs, r: &Renderer) -> RenderedApp {
    let snap = Snapshot::build(fs, &cfg(), r);
    snap.render(r, "app").unwrap().outcome
}

fn names(o: &RenderedApp) -> Vec<(String, String)> {
    match o {
        RenderedApp::Rendered(out) => out
            .objects
            .iter()
            .map(|o| {
                (
                    o.id.name.clone(),
                    o.value["data"]["v"].as_str().unwrap().to_string(),
                )
            })
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn dependencies_come_from_charts_file_and_an_http_repository_then_from_the_cache() {
    let tmp = tempfile::tempdir().unwrap();
    let server = remote_repo(tmp.path(), None);
    let (repo, c) = repo(&tmp.path().join("repo"), tmp.path(), &server.url);
    let fs = repo.tree_fs(c).unwrap();
    let cache = tmp.path().join("chart-cache");
    let online = renderer(ChartSettings {
        repositories: vec![server.url.clone()],
        cache_dir: Some(cache.clone()),
        ..ChartSettings::default()
    });
    let expected: Vec<(String, String)> = [
        ("app-app", "unset"),
        ("app-common", "unset"),
        ("app-packed", "unset"),
        ("app-remote", "from-parent"),
        ("app-sub", "unset"),
    ]
    .iter()
    .map(|(a, b)| (a.to_string(), b.to_string()))
    .collect();
    assert_eq!(names(&outcome(&fs, &online)), expected);
    assert_eq!(server.hits.load(Ordering::SeqCst), 2, "index and archive");

    // Offline, from the cache alone: the same objects, no request.
    let offline = renderer(ChartSettings {
        repositories: vec![server.url.clone()],
        cache_dir: Some(cache),
        offline: true,
        ..ChartSettings::default()
    });
    assert_eq!(names(&outcome(&fs, &offline)), expected);
    assert_eq!(server.hits.load(Ordering::SeqCst), 2);

    // Offline without the chart cached: not checked, and says why.
    let empty = renderer(ChartSettings {
        repositories: vec![server.url.clone()],
        cache_dir: Some(tmp.path().join("empty-cache")),
        offline: true,
        ..ChartSettings::default()
    });
    match outcome(&fs, &empty) {
        RenderedApp::NotChecked { reason } => {
            assert!(reason.contains("not cached"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_repository_the_operator_did_not_list_is_never_fetched() {
    let tmp = tempfile::tempdir().unwrap();
    let server = remote_repo(tmp.path(), None);
    let (repo, c) = repo(&tmp.path().join("repo"), tmp.path(), &server.url);
    let fs = repo.tree_fs(c).unwrap();
    match outcome(&fs, &renderer(ChartSettings::default())) {
        RenderedApp::NotChecked { reason } => {
            assert!(
                reason.contains("not one Capstan may fetch from"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(server.hits.load(Ordering::SeqCst), 0);
}

#[test]
fn an_archive_that_does_not_match_the_index_digest_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let server = remote_repo(tmp.path(), Some(&"0".repeat(64)));
    let (repo, c) = repo(&tmp.path().join("repo"), tmp.path(), &server.url);
    let fs = repo.tree_fs(c).unwrap();
    let r = renderer(ChartSettings {
        repositories: vec![server.url.clone()],
        ..ChartSettings::default()
    });
    match outcome(&fs, &r) {
        RenderedApp::Failed { error } => assert!(error.contains("digest"), "{error}"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn an_application_of_a_chart_from_an_http_repository_renders_with_values_from_git() {
    let tmp = tempfile::tempdir().unwrap();
    let server = remote_repo(tmp.path(), None);
    let app = |name: &str, files: &str| {
        format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\nspec:\n  \
             sources:\n  - repoURL: {}\n    chart: remote\n    targetRevision: 0.2.0\n    helm:\n      \
             valueFiles: [{files}]\n  - repoURL: {URL}\n    ref: values\n  \
             destination:\n    namespace: web\n",
            server.url
        )
    };
    let b = RepoBuilder::init(tmp.path().join("repo")).unwrap();
    let base = b
        .commit(
            "apps",
            &[
                Change::Write(
                    "apps/web.yaml",
                    app("web", "$values/values/web.yaml").as_bytes(),
                ),
                Change::Write(
                    "apps/inner.yaml",
                    app("inner", "$values/values/inner.yaml, values-inner.yaml").as_bytes(),
                ),
                Change::Write("values/web.yaml", b"v: one\n"),
                Change::Write("values/inner.yaml", b"v: one\n"),
            ],
        )
        .unwrap();
    let head = b
        .commit("values", &[Change::Write("values/web.yaml", b"v: two\n")])
        .unwrap();
    let git = GitRepo::open(tmp.path().join("repo")).unwrap();
    let r = renderer(ChartSettings {
        repositories: vec![server.url.clone()],
        ..ChartSettings::default()
    });
    let (bfs, hfs) = (git.tree_fs(base).unwrap(), git.tree_fs(head).unwrap());
    let (bs, hs) = (
        Snapshot::build(&bfs, &cfg(), &r),
        Snapshot::build(&hfs, &cfg(), &r),
    );
    let web = |s: &Snapshot<'_>| names(&s.render(&r, "web").unwrap().outcome);
    assert_eq!(
        web(&bs),
        vec![("web-remote".to_string(), "one".to_string())]
    );
    assert_eq!(
        web(&hs),
        vec![("web-remote".to_string(), "two".to_string())]
    );
    let affected: Vec<String> = capstan_worker::apps::affected::affected_apps(&bs, &hs)
        .into_iter()
        .map(|a| a.name)
        .collect();
    assert_eq!(affected, vec!["web"]);
    // A value file inside the fetched chart is not read: not checked, never rendered without it.
    match hs.render(&r, "inner").unwrap().outcome {
        RenderedApp::NotChecked { reason } => {
            assert!(reason.contains("values-inner.yaml"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn apps_rendered_in_parallel_fetch_a_shared_chart_once() {
    let tmp = tempfile::tempdir().unwrap();
    let server = remote_repo(tmp.path(), None);
    let b = RepoBuilder::init(tmp.path().join("repo")).unwrap();
    let apps: Vec<(String, String)> = (0..6)
        .map(|i| {
            (
                format!("apps/a{i}.yaml"),
                format!(
                    "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: a{i}\n\
                     spec:\n  source:\n    repoURL: {}\n    chart: remote\n    targetRevision: 0.2.0\n  \
                     destination:\n    namespace: a{i}\n",
                    server.url
                ),
            )
        })
        .collect();
    let changes: Vec<Change<'_>> = apps
        .iter()
        .map(|(p, c)| Change::Write(p, c.as_bytes()))
        .collect();
    let c = b.commit("apps", &changes).unwrap();
    let git = GitRepo::open(tmp.path().join("repo")).unwrap();
    let fs = git.tree_fs(c).unwrap();
    let r = renderer(ChartSettings {
        repositories: vec![server.url.clone()],
        ..ChartSettings::default()
    });
    let snap = Snapshot::build(&fs, &cfg(), &r);
    let all = snap.render_all(&r);
    assert_eq!(all.len(), 6);
    for a in &all {
        assert_eq!(names(&a.outcome).len(), 1, "{}", a.app.name);
    }
    assert_eq!(
        server.hits.load(Ordering::SeqCst),
        2,
        "index and archive, once"
    );
}

/// The disk cache is bounded: past `cache_max_bytes` the least recently used archives go (a
/// pull request naming many versions of an allowed chart cannot fill the disk), the one just
/// stored stays, and an evicted chart is simply fetched again.
#[test]
fn the_disk_cache_keeps_to_its_bound_evicting_the_least_recently_used() {
    use capstan_worker::render::charts::ChartFetcher;
    let tmp = tempfile::tempdir().unwrap();
    let mut files = BTreeMap::new();
    let mut index = String::from("apiVersion: v1\nentries:\n  big:\n");
    let mut sizes = Vec::new();
    for v in 1..=4 {
        // Incompressible content, so each archive is about 40 KB.
        let noise: String = (0..40_000u32)
            .map(|i| char::from(b'a' + ((i.wrapping_mul(2654435761) >> (v + 3)) % 26) as u8))
            .collect();
        let tgz = archive(
            tmp.path(),
            &format!("big-{v}"),
            &[
                ("Chart.yaml", &chart_yaml("big", &format!("1.0.{v}"))),
                ("files/noise.txt", &noise),
            ],
        );
        sizes.push(tgz.len() as u64);
        index.push_str(&format!(
            "  - name: big\n    version: 1.0.{v}\n    urls: [big-1.0.{v}.tgz]\n    digest: {}\n",
            hex::encode(sha2::Sha256::digest(&tgz))
        ));
        files.insert(format!("big-1.0.{v}.tgz"), tgz);
    }
    files.insert("index.yaml".to_string(), index.into_bytes());
    let server = serve(files);
    let cache = tmp.path().join("cache");
    // Room for two archives and a half.
    let bound = sizes[0] * 5 / 2;
    let fetcher = |offline: bool| {
        ChartFetcher::new(ChartSettings {
            repositories: vec![server.url.clone()],
            cache_dir: Some(cache.clone()),
            cache_max_bytes: bound,
            offline,
            ..ChartSettings::default()
        })
    };
    let on_disk = || -> (u64, usize) {
        std::fs::read_dir(cache.join("sha256"))
            .unwrap()
            .map(|e| e.unwrap().metadata().unwrap().len())
            .fold((0, 0), |(b, n), len| (b + len, n + 1))
    };
    let f = fetcher(false);
    f.fetch(&server.url, "big", "1.0.1").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    f.fetch(&server.url, "big", "1.0.2").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    // A new process uses 1.0.1 from the disk: it becomes the most recently used.
    assert!(
        fetcher(true)
            .fetch(&server.url, "big", "1.0.1")
            .unwrap()
            .cached
    );
    std::thread::sleep(std::time::Duration::from_millis(20));
    f.fetch(&server.url, "big", "1.0.3").unwrap();
    let (bytes, count) = on_disk();
    assert!(bytes <= bound, "{bytes} bytes on disk, bound {bound}");
    assert_eq!(count, 2);
    // 1.0.2 was the least recently used: gone from the disk, 1.0.1 and 1.0.3 stay.
    let offline = fetcher(true);
    assert!(offline.fetch(&server.url, "big", "1.0.1").is_ok());
    assert!(offline.fetch(&server.url, "big", "1.0.3").is_ok());
    assert!(offline.fetch(&server.url, "big", "1.0.2").is_err());
    // Online, an evicted chart is fetched again.
    assert!(
        !fetcher(false)
            .fetch(&server.url, "big", "1.0.2")
            .unwrap()
            .cached
    );
}
