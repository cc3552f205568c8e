//! The `capstan apps / render / diff / check` commands on a repository built in the test: output
//! form and exit codes (diff: 0 no diff, 1 diff, 2 error, 3 not checked).
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use capstan_worker::git::fixture::{Change, RepoBuilder};

fn capstan() -> PathBuf {
    capstan_tests::capstan_binary()
}

fn run(repo: &Path, args: &[&str]) -> Output {
    Command::new(capstan())
        .args(args)
        .args([
            "--repo",
            repo.to_str().unwrap(),
            "--repo-url",
            "https://example.com/gitops.git",
        ])
        .env_remove("CAPSTAN_REPO_URLS")
        .env_remove("CAPSTAN_RENDER_CACHE")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

const APP: &str = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: web\nspec:\n  project: default\n  source:\n    repoURL: https://example.com/gitops\n    targetRevision: HEAD\n    path: web\n  destination:\n    namespace: web\n";
const OTHER: &str = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: other\nspec:\n  source:\n    repoURL: https://github.com/someone/else\n    path: x\n  destination:\n    namespace: x\n";

fn secret(pw_b64: &str) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\ndata:\n  password: {pw_b64}\n")
}

fn repo(tmp: &Path) -> PathBuf {
    let dir = tmp.join("repo");
    let b = RepoBuilder::init(&dir).unwrap();
    b.commit(
        "base",
        &[
            Change::Write("argocd/web.yaml", APP.as_bytes()),
            Change::Write("argocd/other.yaml", OTHER.as_bytes()),
            Change::Write(
                "web/kustomization.yaml",
                b"resources:\n- cm.yaml\n- secret.yaml\n",
            ),
            Change::Write(
                "web/cm.yaml",
                b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v1\n",
            ),
            // "b2xkLXB3" is base64 of old-pw
            Change::Write("web/secret.yaml", secret("b2xkLXB3").as_bytes()),
        ],
    )
    .unwrap();
    b.set_ref("refs/tags/base", b.commit("noop", &[]).unwrap())
        .unwrap();
    let head = b
        .commit(
            "change",
            &[
                Change::Write(
                    "web/cm.yaml",
                    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v2\n",
                ),
                // "bmV3LXB3" is base64 of new-pw
                Change::Write("web/secret.yaml", secret("bmV3LXB3").as_bytes()),
            ],
        )
        .unwrap();
    b.set_ref("refs/tags/broken", {
        b.commit(
            "broken",
            &[Change::Write(
                "web/kustomization.yaml",
                b"resources:\n- ../../../etc\n",
            )],
        )
        .unwrap()
    })
    .unwrap();
    // The broken commit is only reachable through its tag.
    b.set_ref("refs/heads/main", head).unwrap();
    dir
}

fn has_kubectl() -> bool {
    if capstan_worker::render::exec::which("kubectl").is_some() {
        true
    } else {
        println!("skipped: kubectl is not on PATH");
        false
    }
}

#[test]
fn apps_lists_local_and_external_apps() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = repo(tmp.path());
    let out = run(&dir, &["apps", "--ref", "main", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let apps = v["apps"].as_array().unwrap();
    assert_eq!(apps.len(), 2);
    assert_eq!(apps[0]["name"], "other");
    assert_eq!(apps[0]["sources"][0]["status"], "not_rendered");
    assert!(
        apps[0]["sources"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not this repository")
    );
    assert_eq!(apps[1]["name"], "web");
    assert_eq!(
        apps[1]["inputs"],
        serde_json::json!(["web/cm.yaml", "web/kustomization.yaml", "web/secret.yaml"])
    );
    let table = run(&dir, &["apps", "--ref", "main"]);
    let t = text(&table.stdout);
    assert!(
        t.lines()
            .any(|l| l.starts_with("web ") && l.ends_with(" rendered")),
        "{t}"
    );
    assert!(
        t.lines()
            .any(|l| l.starts_with("other ") && l.contains("not checked: repoURL")),
        "{t}"
    );
}

#[test]
fn render_prints_what_kubectl_kustomize_prints() {
    if !has_kubectl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = repo(tmp.path());
    let by_app = run(&dir, &["render", "web", "--ref", "main"]);
    assert!(by_app.status.success(), "{}", text(&by_app.stderr));
    let by_dir = run(
        &dir,
        &["render", "web", "--ref", "main", "--backend", "kustomize"],
    );
    assert_eq!(by_app.stdout, by_dir.stdout);
    // kubectl on a checkout of the same commit.
    let wd = tmp.path().join("checkout");
    std::fs::create_dir_all(wd.join("web")).unwrap();
    std::fs::write(
        wd.join("web/kustomization.yaml"),
        "resources:\n- cm.yaml\n- secret.yaml\n",
    )
    .unwrap();
    std::fs::write(
        wd.join("web/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v2\n",
    )
    .unwrap();
    std::fs::write(wd.join("web/secret.yaml"), secret("bmV3LXB3")).unwrap();
    let k = Command::new("kubectl")
        .arg("kustomize")
        .arg(wd.join("web"))
        .output()
        .unwrap();
    assert_eq!(text(&by_app.stdout), text(&k.stdout));
    let missing = run(&dir, &["render", "nope", "--ref", "main"]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("neither a folder"),
        "{}",
        text(&missing.stderr)
    );
    // A near name is suggested, for apps and for refs alike.
    let typo = run(&dir, &["render", "webb", "--ref", "main"]);
    assert_eq!(typo.status.code(), Some(2));
    assert!(
        text(&typo.stderr).contains("did you mean `web`?"),
        "{}",
        text(&typo.stderr)
    );
    let bad_ref = run(&dir, &["render", "web", "--ref", "mian"]);
    assert_eq!(bad_ref.status.code(), Some(2));
    assert!(
        text(&bad_ref.stderr).contains("did you mean `main`?"),
        "{}",
        text(&bad_ref.stderr)
    );
}

#[test]
fn diff_exit_codes_and_formats() {
    if !has_kubectl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = repo(tmp.path());
    let same = run(&dir, &["diff", "--base", "main", "--head", "main"]);
    assert_eq!(same.status.code(), Some(0), "{}", text(&same.stderr));
    for format in ["text", "markdown", "json"] {
        let out = run(
            &dir,
            &[
                "diff", "--base", "base", "--head", "main", "--format", format,
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{format}: {}",
            text(&out.stderr)
        );
        let s = text(&out.stdout);
        assert!(s.contains("data.password: changed"), "{format}: {s}");
        for leaked in ["old-pw", "new-pw", "b2xkLXB3", "bmV3LXB3"] {
            assert!(!s.contains(leaked), "{format} leaks {leaked}: {s}");
        }
        assert!(
            s.contains("k: v2") || s.contains("k: v2\\n"),
            "{format}: {s}"
        );
    }
    let why = run(&dir, &["diff", "--base", "base", "--head", "main"]);
    assert!(
        text(&why.stdout).contains("why: inputs changed: web/cm.yaml, web/secret.yaml"),
        "{}",
        text(&why.stdout)
    );
    let only_other = run(
        &dir,
        &["diff", "--base", "base", "--head", "main", "--app", "other"],
    );
    assert_eq!(only_other.status.code(), Some(0));
    // A misspelt app is an error that names the nearest one, not an empty diff.
    let typo = run(
        &dir,
        &["diff", "--base", "base", "--head", "main", "--app", "webb"],
    );
    assert_eq!(typo.status.code(), Some(2), "{}", text(&typo.stdout));
    assert!(
        text(&typo.stderr).contains("no app named `webb` at base or head; did you mean `web`?"),
        "{}",
        text(&typo.stderr)
    );
    let broken = run(&dir, &["diff", "--base", "main", "--head", "broken"]);
    assert_eq!(broken.status.code(), Some(2), "{}", text(&broken.stdout));
    assert!(
        text(&broken.stdout).contains("path escapes the repository"),
        "{}",
        text(&broken.stdout)
    );
    // Repairing an app that is broken at base is not an error: its objects show as added.
    let repaired = run(&dir, &["diff", "--base", "broken", "--head", "main"]);
    assert_eq!(
        repaired.status.code(),
        Some(1),
        "{}",
        text(&repaired.stdout)
    );
    assert!(
        text(&repaired.stdout).contains("base failed"),
        "{}",
        text(&repaired.stdout)
    );
    assert!(
        text(&repaired.stdout).contains("== added ConfigMap c"),
        "{}",
        text(&repaired.stdout)
    );
    let bad_ref = run(&dir, &["diff", "--base", "no-such-ref"]);
    assert_eq!(bad_ref.status.code(), Some(2));
    assert!(text(&bad_ref.stderr).contains("no-such-ref"));
}

#[test]
fn diff_against_the_working_directory() {
    if !has_kubectl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = repo(tmp.path());
    // A working directory matching main (the fixture only writes git objects).
    let files = [
        ("argocd/web.yaml", APP.to_string()),
        ("argocd/other.yaml", OTHER.to_string()),
        (
            "web/kustomization.yaml",
            "resources:\n- cm.yaml\n- secret.yaml\n".to_string(),
        ),
        (
            "web/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v2\n".to_string(),
        ),
        ("web/secret.yaml", secret("bmV3LXB3")),
    ];
    for (p, c) in &files {
        let path = dir.join(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, c).unwrap();
    }
    let clean = run(&dir, &["diff", "--base", "main"]);
    assert_eq!(
        clean.status.code(),
        Some(0),
        "{}{}",
        text(&clean.stdout),
        text(&clean.stderr)
    );
    std::fs::write(
        dir.join("web/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: local-edit\n",
    )
    .unwrap();
    let edited = run(&dir, &["diff", "--base", "main"]);
    assert_eq!(edited.status.code(), Some(1), "{}", text(&edited.stderr));
    assert!(
        text(&edited.stdout).contains("+  k: local-edit"),
        "{}",
        text(&edited.stdout)
    );
}

const JSONNET_APP: &str = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: jsonnet-app\nspec:\n  project: default\n  source:\n    repoURL: https://example.com/gitops\n    targetRevision: HEAD\n    path: jsonnet\n    directory:\n      jsonnet:\n        libs: [vendor]\n        tlas:\n        - name: replicas\n          value: '1'\n          code: true\n  destination:\n    namespace: j\n";

const PLUGIN_APP: &str = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: plugin-app\nspec:\n  project: default\n  source:\n    repoURL: https://example.com/gitops\n    targetRevision: HEAD\n    path: plugin\n    plugin:\n      name: sops\n  destination:\n    namespace: p\n";

/// A repository with one app, defined by `app` and reading `files`; `base` and `main` differ
/// in `changed`.
fn one_app_repo(tmp: &Path, app: &str, files: &[(&str, &str)], changed: (&str, &str)) -> PathBuf {
    let dir = tmp.join("one-app");
    let b = RepoBuilder::init(&dir).unwrap();
    let mut changes = vec![Change::Write("argocd/app.yaml", app.as_bytes())];
    changes.extend(files.iter().map(|(p, c)| Change::Write(p, c.as_bytes())));
    let base = b.commit("base", &changes).unwrap();
    b.set_ref("refs/tags/base", base).unwrap();
    let head = b
        .commit("change", &[Change::Write(changed.0, changed.1.as_bytes())])
        .unwrap();
    b.set_ref("refs/heads/main", head).unwrap();
    dir
}

#[test]
fn a_jsonnet_app_renders_and_diffs_like_any_other() {
    let tmp = tempfile::tempdir().unwrap();
    let lib = "{ cm(n):: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'jcm' }, data: { replicas: std.toString(n) } } }\n";
    let dir = one_app_repo(
        tmp.path(),
        JSONNET_APP,
        &[
            (
                "jsonnet/main.jsonnet",
                "function(replicas) [(import 'k.libsonnet').cm(replicas)]\n",
            ),
            ("vendor/k.libsonnet", lib),
        ],
        // Only the library changes: 1 * 3 at head.
        (
            "vendor/k.libsonnet",
            &lib.replace("toString(n)", "toString(n * 3)"),
        ),
    );
    // Through the Application, the TLA and `libs` apply: 1 * 3.
    let out = run(&dir, &["render", "jsonnet-app", "--ref", "main"]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let yaml = text(&out.stdout);
    assert!(
        yaml.contains("kind: ConfigMap") && yaml.contains("name: jcm"),
        "{yaml}"
    );
    assert!(yaml.contains("replicas: '3'"), "{yaml}");
    // The bare folder has no `libs`: the import fails, naming the file and the import.
    let out = run(&dir, &["render", "jsonnet", "--ref", "main"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stdout));
    let err = text(&out.stderr);
    assert!(
        err.contains("jsonnet/main.jsonnet") && err.contains("k.libsonnet"),
        "{err}"
    );

    let out = run(&dir, &["diff", "--base", "base", "--head", "main"]);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let s = text(&out.stdout);
    assert!(
        s.contains("jsonnet-app") && s.contains("vendor/k.libsonnet"),
        "{s}"
    );
    assert!(!s.contains("not checked"), "{s}");
}

#[test]
fn an_app_capstan_cannot_render_is_not_checked_in_apps_render_diff_and_check() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = one_app_repo(
        tmp.path(),
        PLUGIN_APP,
        &[("plugin/secrets.enc.yaml", "k: ENC[1]\n")],
        ("plugin/secrets.enc.yaml", "k: ENC[2]\n"),
    );

    let table = run(&dir, &["apps", "--ref", "main"]);
    let t = text(&table.stdout);
    assert!(
        t.lines().any(|l| l.starts_with("plugin-app ")
            && l.contains("not checked: config management plugins are not run")),
        "{t}"
    );
    let json = run(&dir, &["apps", "--ref", "main", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(v["apps"][0]["check"], "not_checked", "{v:#}");

    let out = run(&dir, &["render", "plugin-app", "--ref", "main"]);
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert!(text(&out.stdout).is_empty(), "{}", text(&out.stdout));
    assert!(
        text(&out.stderr).contains("not checked")
            && text(&out.stderr).contains("plugins are not run"),
        "{}",
        text(&out.stderr)
    );

    for format in ["text", "markdown", "json"] {
        let out = run(
            &dir,
            &[
                "diff", "--base", "base", "--head", "main", "--format", format,
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(3),
            "{format}: {}",
            text(&out.stdout)
        );
        let s = text(&out.stdout);
        assert!(!s.contains("no apps affected"), "{s}");
        assert!(s.contains("plugin-app"), "{s}");
        assert!(
            s.contains("not checked") || s.contains("not_checked"),
            "{s}"
        );
    }
    let help = Command::new(capstan())
        .args(["diff", "--help"])
        .output()
        .unwrap();
    let help = text(&help.stdout)
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    assert!(
        help.contains("3 some app or the folder was not checked"),
        "{help}"
    );

    // `check` treats it as the PR check does by default: a warning (neutral), not a pass.
    let check = run(&dir, &["check", "--base", "base", "--head", "main"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}{}",
        text(&check.stdout),
        text(&check.stderr)
    );
    assert!(
        text(&check.stdout).contains("not-checked") && text(&check.stdout).contains("warn"),
        "{}",
        text(&check.stdout)
    );
}

#[test]
fn diff_notes_a_fallback_to_the_binary_in_every_format() {
    if !has_kubectl() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("frepo");
    let b = RepoBuilder::init(&dir).unwrap();
    // `crds:` is a kustomization field the native engine declines; the binary renders it.
    let kust = "crds: []\nresources:\n- cm.yaml\n";
    let base = b
        .commit(
            "base",
            &[
                Change::Write("argocd/web.yaml", APP.as_bytes()),
                Change::Write("web/kustomization.yaml", kust.as_bytes()),
                Change::Write(
                    "web/cm.yaml",
                    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v1\n",
                ),
            ],
        )
        .unwrap();
    b.set_ref("refs/tags/base", base).unwrap();
    let head = b
        .commit(
            "change",
            &[Change::Write(
                "web/cm.yaml",
                b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v2\n",
            )],
        )
        .unwrap();
    b.set_ref("refs/heads/main", head).unwrap();
    let render = run(&dir, &["render", "web", "--ref", "main"]);
    let note = "rendered with kubectl kustomize";
    if !text(&render.stderr).contains(note) {
        println!("skipped: the native engine now supports crds; no fallback to show");
        return;
    }
    for format in ["text", "markdown", "json"] {
        let out = run(
            &dir,
            &[
                "diff", "--base", "base", "--head", "main", "--format", format,
            ],
        );
        assert_eq!(
            out.status.code(),
            Some(1),
            "{format}: {}",
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).contains(note),
            "{format}: {}",
            text(&out.stdout)
        );
    }
}

/// Runs `capstan` in `cwd` without `--repo`, killing it after `secs` seconds (`None` then).
fn run_in(cwd: &Path, args: &[&str], secs: u64) -> Option<Output> {
    let mut child = Command::new(capstan())
        .args(args)
        .current_dir(cwd)
        .env_remove("CAPSTAN_REPO_URLS")
        .env_remove("CAPSTAN_RENDER_CACHE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > std::time::Duration::from_secs(secs) {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Some(child.wait_with_output().unwrap())
}

#[test]
fn a_folder_anywhere_renders_from_the_repository_that_contains_it_without_a_walk() {
    let tmp = tempfile::tempdir().unwrap();
    let here = repo(tmp.path());
    // Another repository with a checked-out folder, and next to it a folder no walk survives: a
    // FIFO named like a manifest blocks whoever reads it, and thousands of files.
    let other = tmp.path().join("other");
    let ob = RepoBuilder::init(&other).unwrap();
    std::fs::create_dir_all(other.join("apps/web")).unwrap();
    std::fs::write(
        other.join("apps/web/kustomization.yaml"),
        "resources:\n- cm.yaml\n",
    )
    .unwrap();
    std::fs::write(
        other.join("apps/web/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: elsewhere\n",
    )
    .unwrap();
    let junk = other.join("junk");
    std::fs::create_dir_all(&junk).unwrap();
    for i in 0..3000 {
        std::fs::write(junk.join(format!("f{i}.yaml")), "argoproj.io: {\n").unwrap();
    }
    let fifo = junk.join("stuck.yaml");
    let made = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(made.success());

    let folder = other.join("apps/web");
    let abs = folder.to_str().unwrap();
    // From inside the first repository, an absolute path into the other one.
    let out = run_in(&here, &["render", abs], 60).expect("render walked into the FIFO");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("name: elsewhere"),
        "{}",
        text(&out.stdout)
    );
    // Relative to the current directory.
    let out = run_in(&other.join("apps"), &["render", "web"], 60).expect("render hung");
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("name: elsewhere"));
    // `diff` of a folder: the working directory against a commit where it did not exist.
    ob.set_ref("refs/tags/empty", ob.commit("empty", &[]).unwrap())
        .unwrap();
    let out = run_in(&here, &["diff", "--base", "empty", abs], 60).expect("diff hung");
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).contains("added ConfigMap elsewhere"),
        "{}",
        text(&out.stdout)
    );
}

/// Issue 18: a typo in `.capstan.yaml` (`promtion:`) fails `capstan check` with the key, the line
/// and a suggestion: on its own tree (the settings cannot be used: exit 2) and as a change
/// against a base with good settings (a `capstan-settings-invalid` finding: exit 1).
#[test]
fn a_typo_in_the_settings_fails_check_with_key_line_and_suggestion() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let b = RepoBuilder::init(&dir).unwrap();
    let good = b
        .commit(
            "base",
            &[
                Change::Write("argocd/web.yaml", APP.as_bytes()),
                Change::Write("web/kustomization.yaml", b"resources:\n- cm.yaml\n"),
                Change::Write(
                    "web/cm.yaml",
                    b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: v1\n",
                ),
                Change::Write(".capstan.yaml", b"version: 1\n"),
            ],
        )
        .unwrap();
    b.set_ref("refs/tags/good", good).unwrap();
    let typo = b
        .commit(
            "typo",
            &[Change::Write(
                ".capstan.yaml",
                b"version: 1\npromtion:\n  mode: direct\n",
            )],
        )
        .unwrap();
    b.set_ref("refs/heads/feature", typo).unwrap();
    b.set_ref("refs/heads/main", good).unwrap();
    let says_it = |s: &str| {
        s.contains(".capstan.yaml:2")
            && s.contains("promtion")
            && s.contains("did you mean `promotion`?")
    };

    let alone = run(&dir, &["check", "--head", "feature"]);
    let err = text(&alone.stderr);
    assert_eq!(alone.status.code(), Some(2), "{err}");
    assert!(says_it(&err), "{err}");

    let change = run(&dir, &["check", "--base", "main", "--head", "feature"]);
    let out = text(&change.stdout);
    assert_eq!(
        change.status.code(),
        Some(1),
        "{out}\n{}",
        text(&change.stderr)
    );
    assert!(out.contains("capstan-settings-invalid"), "{out}");
    assert!(says_it(&out), "{out}");
}

/// `capstan check --base` on a repository that already breaks a rule: a change that adds no
/// finding exits 0 and lists the old one apart; a change that adds one exits 1 and counts only it.
#[test]
fn check_with_a_base_counts_only_the_findings_the_change_brings() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let b = RepoBuilder::init(&dir).unwrap();
    let lb = |name: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\nspec:\n  type: LoadBalancer\n  ports:\n    - port: 80\n"
        )
    };
    let cm = |v: &str| {
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  k: {v}\n")
    };
    let base = b
        .commit(
            "base",
            &[
                Change::Write(
                    "argocd/web.yaml",
                    format!("{APP}  syncPolicy:\n    syncOptions: [CreateNamespace=true]\n")
                        .as_bytes(),
                ),
                Change::Write(
                    "web/kustomization.yaml",
                    b"resources:\n- cm.yaml\n- old.yaml\n",
                ),
                Change::Write("web/cm.yaml", cm("v1").as_bytes()),
                Change::Write("web/old.yaml", lb("old").as_bytes()),
            ],
        )
        .unwrap();
    b.set_ref("refs/tags/base", base).unwrap();
    let quiet = b
        .commit(
            "quiet",
            &[Change::Write("web/cm.yaml", cm("v2").as_bytes())],
        )
        .unwrap();
    b.set_ref("refs/tags/quiet", quiet).unwrap();
    let adds = b
        .commit(
            "adds one",
            &[
                Change::Write("web/new.yaml", lb("new").as_bytes()),
                Change::Write(
                    "web/kustomization.yaml",
                    b"resources:\n- cm.yaml\n- old.yaml\n- new.yaml\n",
                ),
            ],
        )
        .unwrap();
    b.set_ref("refs/tags/adds", adds).unwrap();

    let ok = run(&dir, &["check", "--base", "base", "--head", "quiet"]);
    let out = text(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{out}{}", text(&ok.stderr));
    assert!(out.contains("already on the base branch"), "{out}");
    assert!(out.contains("service-exposure [web] Service old"), "{out}");
    assert!(out.contains("no new findings"), "{out}");
    assert!(out.contains("0 deny"), "{out}");

    let bad = run(&dir, &["check", "--base", "quiet", "--head", "adds"]);
    let out = text(&bad.stdout);
    assert_eq!(bad.status.code(), Some(1), "{out}{}", text(&bad.stderr));
    assert!(out.contains("1 deny"), "{out}");
    let counted = out.split("already on the base branch").next().unwrap();
    assert!(counted.contains("Service new"), "{out}");
    assert!(!counted.contains("Service old"), "{out}");

    let sarif = run(
        &dir,
        &[
            "check", "--base", "quiet", "--head", "adds", "--format", "sarif",
        ],
    );
    let doc: serde_json::Value = serde_json::from_slice(&sarif.stdout).unwrap();
    let states: Vec<(String, String)> = doc["runs"][0]["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["ruleId"] == "service-exposure")
        .map(|r| {
            (
                r["message"]["text"].as_str().unwrap().to_string(),
                r["baselineState"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(states.len(), 2, "{states:?}");
    assert!(
        states
            .iter()
            .any(|(m, s)| m.contains("Service new") && s == "new")
    );
    assert!(
        states
            .iter()
            .any(|(m, s)| m.contains("Service old") && s == "unchanged")
    );
}

/// A clusters ApplicationSet over two declared clusters, and an Application sent to a cluster
/// by a server the repository does not declare.
fn clusters_repo(tmp: &Path) -> PathBuf {
    let dir = tmp.join("clusters");
    let set = "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: ingress\nspec:\n  goTemplate: true\n  generators:\n    - clusters:\n        selector:\n          matchLabels:\n            capstan.dev/managed: \"true\"\n  template:\n    metadata:\n      name: 'ingress-{{.name}}'\n    spec:\n      project: default\n      source:\n        repoURL: https://example.com/gitops\n        targetRevision: HEAD\n        path: 'overlays/{{.metadata.labels.ingressOverlay}}'\n      destination:\n        server: '{{.server}}'\n        namespace: kube-system\n";
    let cluster = |name: &str, server: &str, overlay: &str| {
        format!(
            "name: {name}\nserver: {server}\nlabels:\n  capstan.dev/managed: \"true\"\n  ingressOverlay: {overlay}\n"
        )
    };
    let local = cluster("in-cluster", "https://kubernetes.default.svc", "production");
    let edge = cluster("edge", "https://edge.example.net:6443", "staging");
    let stray = APP.replace("name: web", "name: stray").replace(
        "  destination:\n",
        "  destination:\n    server: https://10.0.0.9:6443\n",
    );
    let b = RepoBuilder::init(&dir).unwrap();
    let cm = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n";
    let head = b
        .commit(
            "clusters",
            &[
                Change::Write("argocd/ingress.yaml", set.as_bytes()),
                Change::Write("argocd/stray.yaml", stray.as_bytes()),
                Change::Write("argocd/clusters/in-cluster/cluster.yaml", local.as_bytes()),
                Change::Write("argocd/clusters/edge/cluster.yaml", edge.as_bytes()),
                Change::Write("overlays/production/cm.yaml", cm),
                Change::Write("overlays/staging/cm.yaml", cm),
                Change::Write("web/cm.yaml", cm),
            ],
        )
        .unwrap();
    b.set_ref("refs/heads/main", head).unwrap();
    dir
}

#[test]
fn apps_shows_the_cluster_of_each_app() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = clusters_repo(tmp.path());
    let out = run(&dir, &["apps", "--ref", "main", "--json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let clusters: Vec<(String, String)> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap().to_string(),
                a["cluster"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("ingress-edge", "edge"),
        ("ingress-in-cluster", "in-cluster"),
        // Not declared: the server is shown as the app names it, never a guessed name.
        ("stray", "https://10.0.0.9:6443"),
    ];
    assert_eq!(
        clusters,
        want.map(|(a, c)| (a.to_string(), c.to_string())),
        "{}",
        text(&out.stdout)
    );
    assert!(v["unsupported"].as_array().unwrap().is_empty(), "{v}");

    let table = text(&run(&dir, &["apps", "--ref", "main"]).stdout);
    let header = table.lines().next().unwrap();
    let col = header.find("CLUSTER").expect("a CLUSTER column");
    for (app, cluster) in want {
        let line = table
            .lines()
            .find(|l| l.starts_with(&format!("{app} ")))
            .unwrap_or_else(|| panic!("{app} missing:\n{table}"));
        assert!(
            line[col..].starts_with(&format!("{cluster} ")),
            "{app} should show cluster {cluster}:\n{table}"
        );
    }
}

/// `capstan apps` with nothing to show says where it looked and what to try; Applications that
/// all point elsewhere name their repoURLs and the three ways to say this repository is one.
#[test]
fn apps_explains_an_empty_or_foreign_table() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("repo");
    let b = RepoBuilder::init(&dir).unwrap();
    let empty = b
        .commit("empty", &[Change::Write("README.md", b"# nothing\n")])
        .unwrap();
    b.set_ref("refs/tags/empty", empty).unwrap();
    b.commit(
        "foreign",
        &[Change::Write("argocd/other.yaml", OTHER.as_bytes())],
    )
    .unwrap();

    let none = run(&dir, &["apps", "--ref", "empty"]);
    assert_eq!(none.status.code(), Some(0));
    let err = text(&none.stderr);
    assert!(
        err.contains("no Application or ApplicationSet found in commit empty"),
        "{err}"
    );
    assert!(err.contains("capstan render DIR"), "{err}");

    let foreign = run(&dir, &["apps", "--ref", "HEAD"]);
    let err = text(&foreign.stderr);
    assert!(
        err.contains("no Application points at this repository; their repoURLs are https://github.com/someone/else"),
        "{err}"
    );
    assert!(
        err.contains("--repo-url, CAPSTAN_REPO_URLS or `repoURLs` in .capstan.yaml"),
        "{err}"
    );
    // With an app of this repository beside the foreign one there is nothing to explain.
    let mixed = repo(&tmp.path().join("mixed"));
    let fine = run(&mixed, &["apps", "--ref", "base"]);
    let err = text(&fine.stderr);
    assert!(text(&fine.stdout).contains("other"));
    assert!(!err.contains("note:"), "{err}");
}
