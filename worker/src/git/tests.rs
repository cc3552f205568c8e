#![allow(clippy::unwrap_used)]

use super::fixture::{Change, RepoBuilder};
use super::*;
use crate::repo_fs::{EntryKind, RepoFs};

fn p(s: &str) -> RepoPath {
    RepoPath::new(s).unwrap()
}

#[test]
fn reads_a_commit_tree_and_lists_changes() {
    let tmp = tempfile::tempdir().unwrap();
    let b = RepoBuilder::init(tmp.path()).unwrap();
    let c1 = b
        .commit(
            "one",
            &[
                Change::Write("apps/web/kustomization.yaml", b"resources: [d.yaml]\n"),
                Change::Write("apps/web/d.yaml", b"kind: X\n"),
                Change::Write("README.md", b"hi\n"),
            ],
        )
        .unwrap();
    let c2 = b
        .commit(
            "two",
            &[
                Change::Write("apps/web/d.yaml", b"kind: Y\n"),
                Change::Delete("README.md"),
            ],
        )
        .unwrap();
    let repo = GitRepo::open(tmp.path()).unwrap();
    assert_eq!(repo.resolve("main").unwrap(), c2);
    assert_eq!(repo.resolve("main~1").unwrap(), c1);
    assert!(matches!(
        repo.resolve("nope"),
        Err(GitError::Resolve { .. })
    ));
    // A mistyped branch gets the near name.
    let err = repo.resolve("mian").unwrap_err().to_string();
    assert!(err.contains("did you mean `main`?"), "{err}");
    assert!(
        !repo
            .resolve("zzzzzzzz")
            .unwrap_err()
            .to_string()
            .contains("did you mean")
    );
    assert_eq!(repo.head_branch().as_deref(), Some("main"));

    let fs1 = repo.tree_fs(c1).unwrap();
    assert_eq!(&*fs1.read(&p("apps/web/d.yaml")).unwrap(), b"kind: X\n");
    assert_eq!(fs1.kind(&p("apps")).unwrap(), Some(EntryKind::Dir));
    assert_eq!(fs1.kind(&p("nope")).unwrap(), None);
    let names: Vec<_> = fs1
        .list_dir(&p("apps/web"))
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(names, vec!["d.yaml", "kustomization.yaml"]);

    let changed: Vec<_> = repo
        .changed_paths(c1, c2)
        .unwrap()
        .into_iter()
        .map(|p| p.as_str().to_string())
        .collect();
    assert_eq!(changed, vec!["README.md", "apps/web/d.yaml"]);
}

#[test]
fn symlinks_inside_are_followed_and_escapes_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let b = RepoBuilder::init(tmp.path()).unwrap();
    let c = b
        .commit(
            "links",
            &[
                Change::Write("base/cm.yaml", b"kind: ConfigMap\n"),
                Change::Symlink("app/cm.yaml", "../base/cm.yaml"),
                Change::Symlink("app/basedir", "../base"),
                Change::Symlink("passwd", "/etc/passwd"),
                Change::Symlink("up", "../../etc/passwd"),
                Change::Symlink("loop-a", "loop-b"),
                Change::Symlink("loop-b", "loop-a"),
            ],
        )
        .unwrap();
    let repo = GitRepo::open(tmp.path()).unwrap();
    let fs = repo.tree_fs(c).unwrap();
    assert_eq!(&*fs.read(&p("app/cm.yaml")).unwrap(), b"kind: ConfigMap\n");
    assert_eq!(
        &*fs.read(&p("app/basedir/cm.yaml")).unwrap(),
        b"kind: ConfigMap\n"
    );
    // Where a path really is, every link followed (kustomize's load restrictor judges that).
    for (link, real) in [
        ("app/cm.yaml", "base/cm.yaml"),
        ("app/basedir/cm.yaml", "base/cm.yaml"),
        ("app/basedir", "base"),
        ("base/cm.yaml", "base/cm.yaml"),
    ] {
        assert_eq!(fs.real_path(&p(link)).unwrap(), Some(p(real)), "{link}");
    }
    assert_eq!(fs.real_path(&p("app/missing.yaml")).unwrap(), None);
    for bad in ["passwd", "up", "loop-a"] {
        let e = fs.read(&p(bad)).unwrap_err();
        assert!(matches!(e, FsError::SymlinkEscape { .. }), "{bad}: {e}");
        assert!(!e.to_string().contains("root:"), "{e}");
    }
    let top: Vec<_> = fs
        .list_dir(&RepoPath::root())
        .unwrap()
        .into_iter()
        .map(|e| e.0)
        .collect();
    assert_eq!(top, vec!["app", "base"]);
}

#[test]
fn blobs_over_the_limit_are_refused_before_loading() {
    let tmp = tempfile::tempdir().unwrap();
    let b = RepoBuilder::init(tmp.path()).unwrap();
    let big = vec![b'a'; (crate::repo_fs::MAX_FILE_BYTES + 1) as usize];
    let c = b.commit("big", &[Change::Write("big.yaml", &big)]).unwrap();
    let fs = GitRepo::open(tmp.path()).unwrap().tree_fs(c).unwrap();
    assert!(matches!(
        fs.read(&p("big.yaml")),
        Err(FsError::TooLarge { .. })
    ));
}
