//! Hostile repository content: every case is refused with a clear error, before any tool runs,
//! and no file content outside the repository (or of the refused file) appears in the error.
#![allow(clippy::unwrap_used)]

use std::path::Path;

use capstan_worker::git::GitRepo;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::render::{
    BackendChoice, KustomizeOptions, RenderConfig, RenderError, RenderSource, Renderer, SourceKind,
};
use capstan_worker::repo_fs::{DirFs, RepoFs, RepoPath};

/// A stand-in for the kustomize binary that leaves a marker when it runs, to prove refusals
/// happen before exec.
fn tripwire(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf) {
    let marker = dir.join("kustomize-ran");
    let bin = dir.join("kustomize");
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\ntouch '{}'\necho 'apiVersion: v1'\n",
            marker.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    (bin, marker)
}

fn source(path: &str) -> RenderSource {
    RenderSource {
        path: RepoPath::new(path).unwrap(),
        kind: SourceKind::Kustomize(KustomizeOptions::default()),
        namespace: None,
        release_name: "app".into(),
    }
}

/// Renders `app` with both the auto and the kustomize backend; returns the error text.
fn refused(fs: &dyn RepoFs, app: &str, scratch: &Path) -> String {
    let (bin, marker) = tripwire(scratch);
    let mut last = String::new();
    for backend in [BackendChoice::Auto, BackendChoice::Kustomize] {
        let r = Renderer::new(RenderConfig {
            backend,
            kustomize_binary: Some(bin.clone()),
            ..RenderConfig::default()
        });
        let err = r.render(fs, &source(app)).unwrap_err();
        assert!(r.inputs(fs, &source(app)).is_err());
        last = err.to_string();
        assert_eq!(
            r.stats
                .backend_runs
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
    }
    assert!(
        !marker.exists(),
        "the tool ran although the input was refused"
    );
    last
}

fn assert_no_leak(err: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!err.contains(s), "error leaks {s:?}: {err}");
    }
}

#[test]
fn symlink_to_etc_passwd_is_refused_in_a_commit_and_on_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let repo_dir = tmp.path().join("repo");
    // In a commit: the link is a blob.
    let b = RepoBuilder::init(&repo_dir).unwrap();
    let c = b
        .commit(
            "evil",
            &[
                Change::Write("app/kustomization.yaml", b"resources:\n- passwd.yaml\n"),
                Change::Symlink("app/passwd.yaml", "/etc/passwd"),
            ],
        )
        .unwrap();
    let fs = GitRepo::open(&repo_dir).unwrap().tree_fs(c).unwrap();
    let err = refused(&fs, "app", tmp.path());
    assert!(err.contains("symlink leaves the repository"), "{err}");
    assert!(err.contains("app/passwd.yaml"), "{err}");
    assert_no_leak(&err, &["root:x:0", "/bin/"]);

    // On disk (working directory).
    let wd = tmp.path().join("wd");
    std::fs::create_dir_all(wd.join("app")).unwrap();
    std::fs::write(
        wd.join("app/kustomization.yaml"),
        "resources:\n- passwd.yaml\n",
    )
    .unwrap();
    std::os::unix::fs::symlink("/etc/passwd", wd.join("app/passwd.yaml")).unwrap();
    let err = refused(&DirFs::new(&wd).unwrap(), "app", tmp.path());
    assert!(err.contains("symlink leaves the repository"), "{err}");
    assert_no_leak(&err, &["root:x:0"]);
}

#[test]
fn resources_climbing_out_of_the_repository_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("repo");
    std::fs::create_dir_all(wd.join("apps/web")).unwrap();
    std::fs::write(
        wd.join("apps/web/kustomization.yaml"),
        "resources:\n- ../../../etc\n",
    )
    .unwrap();
    let err = refused(&DirFs::new(&wd).unwrap(), "apps/web", tmp.path());
    assert!(err.contains("path escapes the repository"), "{err}");
    assert!(err.contains("apps/web/kustomization.yaml"), "{err}");
}

#[test]
fn sibling_directory_with_the_same_prefix_is_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("repo");
    let evil = tmp.path().join("repo-evil");
    std::fs::create_dir_all(wd.join("app")).unwrap();
    std::fs::create_dir_all(&evil).unwrap();
    std::fs::write(
        evil.join("secret.yaml"),
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\nstringData:\n  k: EVIL-SIBLING-CONTENT\n",
    )
    .unwrap();
    // By relative path...
    std::fs::write(
        wd.join("app/kustomization.yaml"),
        "resources:\n- ../../repo-evil/secret.yaml\n",
    )
    .unwrap();
    let fs = DirFs::new(&wd).unwrap();
    let err = refused(&fs, "app", tmp.path());
    assert!(err.contains("path escapes the repository"), "{err}");
    assert_no_leak(&err, &["EVIL-SIBLING-CONTENT"]);
    // ...and through a symlink into the sibling.
    std::os::unix::fs::symlink("../../repo-evil", wd.join("app/evil")).unwrap();
    std::fs::write(
        wd.join("app/kustomization.yaml"),
        "resources:\n- evil/secret.yaml\n",
    )
    .unwrap();
    let err = refused(&fs, "app", tmp.path());
    assert!(err.contains("symlink leaves the repository"), "{err}");
    assert_no_leak(&err, &["EVIL-SIBLING-CONTENT"]);
}

#[test]
fn remote_bases_are_refused_before_exec() {
    let tmp = tempfile::tempdir().unwrap();
    for remote in [
        "https://github.com/kubernetes-sigs/kustomize//examples/helloWorld?ref=v3.3.1",
        "github.com/org/repo/base?ref=main",
        "git@github.com:org/repo.git//base",
        "ssh://git@example.com/org/repo.git",
    ] {
        let wd = tmp.path().join("repo");
        std::fs::create_dir_all(wd.join("app")).unwrap();
        std::fs::write(
            wd.join("app/kustomization.yaml"),
            format!("resources:\n- local.yaml\n- {remote}\n"),
        )
        .unwrap();
        std::fs::write(
            wd.join("app/local.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n",
        )
        .unwrap();
        let err = refused(&DirFs::new(&wd).unwrap(), "app", tmp.path());
        assert!(
            err.contains("remote sources are disabled"),
            "{remote}: {err}"
        );
    }
}

#[test]
fn billion_laughs_is_refused_with_the_file_named() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("repo");
    std::fs::create_dir_all(wd.join("app")).unwrap();
    let mut bomb = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lol\ndata:\n  a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
    for w in names.windows(2) {
        let refs = vec![format!("*{}", w[0]); 9].join(",");
        bomb.push_str(&format!("  {}: &{} [{}]\n", w[1], w[1], refs));
    }
    std::fs::write(wd.join("app/bomb.yaml"), &bomb).unwrap();
    std::fs::write(
        wd.join("app/kustomization.yaml"),
        "resources:\n- bomb.yaml\n",
    )
    .unwrap();
    let err = refused(&DirFs::new(&wd).unwrap(), "app", tmp.path());
    assert!(err.contains("app/bomb.yaml"), "{err}");
    assert!(err.contains("repetition limit"), "{err}");
    // The bomb as the kustomization itself.
    std::fs::write(
        wd.join("app/kustomization.yaml"),
        bomb.replace("kind: ConfigMap", "kind: Kustomization"),
    )
    .unwrap();
    let err = refused(&DirFs::new(&wd).unwrap(), "app", tmp.path());
    assert!(err.contains("app/kustomization.yaml"), "{err}");
}

#[test]
fn a_50_mib_file_is_refused_without_being_read() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("repo");
    std::fs::create_dir_all(wd.join("app")).unwrap();
    // Sparse: 50 MiB on paper, nothing on disk.
    let f = std::fs::File::create(wd.join("app/huge.yaml")).unwrap();
    f.set_len(50 * 1024 * 1024).unwrap();
    std::fs::write(
        wd.join("app/kustomization.yaml"),
        "resources:\n- huge.yaml\n",
    )
    .unwrap();
    let err = refused(&DirFs::new(&wd).unwrap(), "app", tmp.path());
    assert!(err.contains("file too large"), "{err}");
    assert!(err.contains("app/huge.yaml"), "{err}");
    assert!(err.contains("52428800"), "{err}");
}

#[test]
fn duplicate_keys_are_refused_with_file_and_line() {
    let tmp = tempfile::tempdir().unwrap();
    let wd = tmp.path().join("repo");
    std::fs::create_dir_all(wd.join("app")).unwrap();
    std::fs::write(
        wd.join("app/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n",
    )
    .unwrap();
    std::fs::write(wd.join("app/kustomization.yaml"), "resources:\n- cm.yaml\n").unwrap();
    let err = refused(&DirFs::new(&wd).unwrap(), "app", tmp.path());
    assert!(err.contains("app/cm.yaml:"), "{err}");
    assert!(err.contains("duplicate entry with key \"name\""), "{err}");
}

#[test]
fn refusals_are_typed() {
    let fs = capstan_worker::repo_fs::MemFs::new().with(
        "app/kustomization.yaml",
        "resources:\n- https://example.com/x.yaml\n",
    );
    let r = Renderer::new(RenderConfig::default());
    let err = r.render(&fs, &source("app")).unwrap_err();
    assert!(err.is_remote(), "{err}");
    assert!(matches!(err, RenderError::Input { .. }));
}
