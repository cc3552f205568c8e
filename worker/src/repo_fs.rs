//! Read-only access to a repository tree — a working directory or a git commit — through one trait.
//!
//! Every renderer reads through [`RepoFs`], never through `std::fs` directly, so that the sandbox
//! rules hold for every backend: paths are relative to the repository root and normalised by
//! component (a sibling folder `/repo-evil` is not inside `/repo`), `..` can never climb above the
//! root, symlinks that leave the repository are refused and files over [`MAX_FILE_BYTES`] are
//! refused before they are read whole.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Largest file any backend will read.
pub const MAX_FILE_BYTES: u64 = 10 * 1024 * 1024;

/// Why a repository path could not be resolved or read.
#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// The path is absolute, or climbs above the repository root.
    #[error("path escapes the repository: {0}")]
    Escape(String),
    /// A symlink points outside the repository (or forms a loop).
    #[error("symlink leaves the repository: {path} -> {target}")]
    SymlinkEscape { path: String, target: String },
    /// Remote references (URLs, git specs) are never fetched.
    #[error("remote sources are disabled: {0}")]
    Remote(String),
    #[error("file too large: {path} is {size} bytes (limit {limit})")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("no such file or directory: {0}")]
    NotFound(String),
    #[error("not a directory: {0}")]
    NotADirectory(String),
    #[error("reading {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// Backend-specific failure (e.g. the git object database).
    #[error("reading {path}: {message}")]
    Backend { path: String, message: String },
}

/// A normalised, relative, `/`-separated path inside the repository. The root is `""`.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct RepoPath(String);

impl RepoPath {
    pub fn root() -> Self {
        RepoPath(String::new())
    }

    /// Parses a path relative to the repository root, resolving `.` and `..` by component.
    pub fn new(path: &str) -> Result<Self, FsError> {
        RepoPath::root().join(path)
    }

    /// Resolves `rel` against this directory. Absolute paths, paths that climb above the root and
    /// URLs are refused.
    pub fn join(&self, rel: &str) -> Result<RepoPath, FsError> {
        if looks_remote(rel) {
            return Err(FsError::Remote(rel.to_string()));
        }
        if rel.starts_with('/') || rel.starts_with('\\') || Path::new(rel).is_absolute() {
            return Err(FsError::Escape(rel.to_string()));
        }
        let mut parts: Vec<&str> = if self.0.is_empty() {
            Vec::new()
        } else {
            self.0.split('/').collect()
        };
        for comp in rel.split('/') {
            match comp {
                "" | "." => {}
                ".." => {
                    if parts.pop().is_none() {
                        return Err(FsError::Escape(self.display_join(rel)));
                    }
                }
                c => parts.push(c),
            }
        }
        Ok(RepoPath(parts.join("/")))
    }

    fn display_join(&self, rel: &str) -> String {
        if self.0.is_empty() {
            rel.to_string()
        } else {
            format!("{}/{}", self.0, rel)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    /// The containing directory; the root's parent is the root.
    pub fn parent(&self) -> RepoPath {
        match self.0.rfind('/') {
            Some(i) => RepoPath(self.0[..i].to_string()),
            None => RepoPath::root(),
        }
    }

    pub fn file_name(&self) -> &str {
        match self.0.rfind('/') {
            Some(i) => &self.0[i + 1..],
            None => &self.0,
        }
    }

    /// True when `self` is `dir` or lies below it (by component, not by string prefix).
    pub fn starts_with(&self, dir: &RepoPath) -> bool {
        dir.0.is_empty()
            || self.0 == dir.0
            || (self.0.len() > dir.0.len()
                && self.0.starts_with(&dir.0)
                && self.0.as_bytes()[dir.0.len()] == b'/')
    }
}

impl fmt::Display for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str(".")
        } else {
            f.write_str(&self.0)
        }
    }
}

impl serde::Serialize for RepoPath {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl fmt::Debug for RepoPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoPath({:?})", self.0)
    }
}

/// True for anything kustomize would fetch over the network: URLs and git/ssh specs.
pub fn looks_remote(s: &str) -> bool {
    let lower = s.to_ascii_lowercase();
    lower.contains("://")
        || lower.starts_with("git@")
        || lower.starts_with("github.com/")
        || lower.starts_with("gitlab.com/")
        || lower.starts_with("bitbucket.org/")
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
}

/// Read-only view of one repository tree.
pub trait RepoFs: Send + Sync {
    /// What is at `path`, following symlinks that stay inside the repository; `None` if nothing.
    fn kind(&self, path: &RepoPath) -> Result<Option<EntryKind>, FsError>;
    /// The whole file, refused over [`MAX_FILE_BYTES`].
    fn read(&self, path: &RepoPath) -> Result<Arc<[u8]>, FsError>;
    /// Entries of a directory, sorted by name.
    fn list_dir(&self, path: &RepoPath) -> Result<Vec<(String, EntryKind)>, FsError>;

    /// Where `path` really is once every symlink on the way is followed (`None` if nothing is
    /// there): kustomize's load restrictor judges a file by its real location. Views without
    /// symlinks keep the default.
    fn real_path(&self, path: &RepoPath) -> Result<Option<RepoPath>, FsError> {
        Ok(self.kind(path)?.map(|_| path.clone()))
    }

    fn read_to_string(&self, path: &RepoPath) -> Result<String, FsError> {
        let bytes = self.read(path)?;
        String::from_utf8(bytes.to_vec()).map_err(|e| FsError::Backend {
            path: path.to_string(),
            message: format!("not UTF-8: {e}"),
        })
    }
}

/// A working directory on disk. Symlinks are followed only while their target stays inside.
pub struct DirFs {
    root: PathBuf,
}

impl DirFs {
    pub fn new(root: impl AsRef<Path>) -> Result<Self, FsError> {
        let root = root.as_ref();
        let canon = root.canonicalize().map_err(|source| FsError::Io {
            path: root.display().to_string(),
            source,
        })?;
        Ok(DirFs { root: canon })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The on-disk path, after checking that every symlink on the way stays inside the root.
    fn resolve(&self, path: &RepoPath) -> Result<Option<PathBuf>, FsError> {
        let joined = self.root.join(path.as_str());
        let canon = match joined.canonicalize() {
            Ok(c) => c,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                // A dangling link still has to be refused if it points outside.
                if let Ok(target) = std::fs::read_link(&joined) {
                    let abs = joined.parent().unwrap_or(&self.root).join(&target);
                    if !contained(&self.root, &abs) {
                        return Err(FsError::SymlinkEscape {
                            path: path.to_string(),
                            target: target.display().to_string(),
                        });
                    }
                }
                return Ok(None);
            }
            Err(source) => {
                return Err(FsError::Io {
                    path: path.to_string(),
                    source,
                });
            }
        };
        if !contained(&self.root, &canon) {
            let target = std::fs::read_link(&joined)
                .map(|t| t.display().to_string())
                .unwrap_or_else(|_| canon.display().to_string());
            return Err(FsError::SymlinkEscape {
                path: path.to_string(),
                target,
            });
        }
        Ok(Some(canon))
    }
}

/// Component-wise containment: `/repo-evil` is not inside `/repo`.
fn contained(root: &Path, candidate: &Path) -> bool {
    let mut normal = PathBuf::new();
    for c in candidate.components() {
        match c {
            Component::ParentDir => {
                normal.pop();
            }
            Component::CurDir => {}
            other => normal.push(other),
        }
    }
    normal.starts_with(root)
}

impl RepoFs for DirFs {
    fn real_path(&self, path: &RepoPath) -> Result<Option<RepoPath>, FsError> {
        let Some(canon) = self.resolve(path)? else {
            return Ok(None);
        };
        let rel = canon.strip_prefix(&self.root).unwrap_or(&canon);
        let rel = rel
            .to_string_lossy()
            .replace(std::path::MAIN_SEPARATOR, "/");
        if rel.is_empty() {
            return Ok(Some(RepoPath::root()));
        }
        RepoPath::new(&rel).map(Some)
    }

    fn kind(&self, path: &RepoPath) -> Result<Option<EntryKind>, FsError> {
        let Some(p) = self.resolve(path)? else {
            return Ok(None);
        };
        let meta = std::fs::metadata(&p).map_err(|source| FsError::Io {
            path: path.to_string(),
            source,
        })?;
        Ok(Some(if meta.is_dir() {
            EntryKind::Dir
        } else {
            EntryKind::File
        }))
    }

    fn read(&self, path: &RepoPath) -> Result<Arc<[u8]>, FsError> {
        let p = self
            .resolve(path)?
            .ok_or_else(|| FsError::NotFound(path.to_string()))?;
        let meta = std::fs::metadata(&p).map_err(|source| FsError::Io {
            path: path.to_string(),
            source,
        })?;
        if meta.is_dir() {
            return Err(FsError::Backend {
                path: path.to_string(),
                message: "is a directory".into(),
            });
        }
        if meta.len() > MAX_FILE_BYTES {
            return Err(FsError::TooLarge {
                path: path.to_string(),
                size: meta.len(),
                limit: MAX_FILE_BYTES,
            });
        }
        let bytes = std::fs::read(&p).map_err(|source| FsError::Io {
            path: path.to_string(),
            source,
        })?;
        Ok(Arc::from(bytes))
    }

    fn list_dir(&self, path: &RepoPath) -> Result<Vec<(String, EntryKind)>, FsError> {
        let p = self
            .resolve(path)?
            .ok_or_else(|| FsError::NotFound(path.to_string()))?;
        if !p.is_dir() {
            return Err(FsError::NotADirectory(path.to_string()));
        }
        let rd = std::fs::read_dir(&p).map_err(|source| FsError::Io {
            path: path.to_string(),
            source,
        })?;
        let mut out = Vec::new();
        for entry in rd {
            let entry = entry.map_err(|source| FsError::Io {
                path: path.to_string(),
                source,
            })?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let child = path.join(&name)?;
            // Entries whose links leave the repository are simply not listed.
            match self.kind(&child) {
                Ok(Some(kind)) => out.push((name, kind)),
                Ok(None) | Err(FsError::SymlinkEscape { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}

/// An in-memory tree, for tests and for trees assembled from other sources.
#[derive(Default, Clone)]
pub struct MemFs {
    files: BTreeMap<RepoPath, Arc<[u8]>>,
}

impl MemFs {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a file; panics only on a path that escapes, which is a bug in the caller's fixture.
    pub fn with(mut self, path: &str, content: impl AsRef<[u8]>) -> Self {
        self.insert(path, content).expect("fixture path escapes");
        self
    }

    pub fn insert(&mut self, path: &str, content: impl AsRef<[u8]>) -> Result<(), FsError> {
        let p = RepoPath::new(path)?;
        self.files.insert(p, Arc::from(content.as_ref().to_vec()));
        Ok(())
    }
}

impl RepoFs for MemFs {
    fn kind(&self, path: &RepoPath) -> Result<Option<EntryKind>, FsError> {
        if self.files.contains_key(path) {
            return Ok(Some(EntryKind::File));
        }
        if self.files.keys().any(|k| k.starts_with(path) && k != path) {
            return Ok(Some(EntryKind::Dir));
        }
        Ok(None)
    }

    fn read(&self, path: &RepoPath) -> Result<Arc<[u8]>, FsError> {
        let bytes = self
            .files
            .get(path)
            .ok_or_else(|| FsError::NotFound(path.to_string()))?;
        if bytes.len() as u64 > MAX_FILE_BYTES {
            return Err(FsError::TooLarge {
                path: path.to_string(),
                size: bytes.len() as u64,
                limit: MAX_FILE_BYTES,
            });
        }
        Ok(bytes.clone())
    }

    fn list_dir(&self, path: &RepoPath) -> Result<Vec<(String, EntryKind)>, FsError> {
        let mut out: BTreeMap<String, EntryKind> = BTreeMap::new();
        for k in self.files.keys() {
            if !k.starts_with(path) || k == path {
                continue;
            }
            let rest = if path.is_root() {
                k.as_str()
            } else {
                &k.as_str()[path.as_str().len() + 1..]
            };
            match rest.split_once('/') {
                Some((dir, _)) => {
                    out.insert(dir.to_string(), EntryKind::Dir);
                }
                None => {
                    out.entry(rest.to_string()).or_insert(EntryKind::File);
                }
            }
        }
        if out.is_empty() && !path.is_root() {
            return Err(FsError::NotFound(path.to_string()));
        }
        Ok(out.into_iter().collect())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn join_normalises_by_component_and_refuses_escapes() {
        let dir = RepoPath::new("apps/web/overlays/staging").unwrap();
        assert_eq!(dir.join("../../base").unwrap().as_str(), "apps/web/base");
        assert_eq!(
            dir.join("./patch.yaml").unwrap().as_str(),
            "apps/web/overlays/staging/patch.yaml"
        );
        assert!(matches!(
            dir.join("../../../../../etc"),
            Err(FsError::Escape(_))
        ));
        assert!(matches!(
            RepoPath::new("/etc/passwd"),
            Err(FsError::Escape(_))
        ));
        assert!(matches!(
            dir.join("https://github.com/org/repo//base?ref=v1"),
            Err(FsError::Remote(_))
        ));
        assert!(matches!(
            dir.join("git@github.com:org/repo.git"),
            Err(FsError::Remote(_))
        ));
    }

    #[test]
    fn starts_with_is_by_component() {
        let repo = RepoPath::new("repo").unwrap();
        assert!(RepoPath::new("repo/a").unwrap().starts_with(&repo));
        assert!(!RepoPath::new("repo-evil/a").unwrap().starts_with(&repo));
    }

    #[test]
    fn dir_fs_refuses_symlinks_that_leave_and_sibling_dirs() {
        let tmp = tempfile::tempdir().unwrap();
        let repo = tmp.path().join("repo");
        let evil = tmp.path().join("repo-evil");
        std::fs::create_dir_all(&repo).unwrap();
        std::fs::create_dir_all(&evil).unwrap();
        std::fs::write(evil.join("secret.yaml"), "kind: Secret\n").unwrap();
        std::fs::write(repo.join("ok.yaml"), "kind: ConfigMap\n").unwrap();
        std::os::unix::fs::symlink("/etc/passwd", repo.join("passwd")).unwrap();
        std::os::unix::fs::symlink("../repo-evil", repo.join("evil")).unwrap();
        std::os::unix::fs::symlink("ok.yaml", repo.join("inside.yaml")).unwrap();
        let fs = DirFs::new(&repo).unwrap();
        assert!(matches!(
            fs.read(&RepoPath::new("passwd").unwrap()),
            Err(FsError::SymlinkEscape { .. })
        ));
        assert!(matches!(
            fs.read(&RepoPath::new("evil/secret.yaml").unwrap()),
            Err(FsError::SymlinkEscape { .. })
        ));
        assert_eq!(
            &*fs.read(&RepoPath::new("inside.yaml").unwrap()).unwrap(),
            b"kind: ConfigMap\n"
        );
        assert_eq!(
            fs.real_path(&RepoPath::new("inside.yaml").unwrap())
                .unwrap(),
            Some(RepoPath::new("ok.yaml").unwrap())
        );
        assert_eq!(
            fs.real_path(&RepoPath::root()).unwrap(),
            Some(RepoPath::root())
        );
        let names: Vec<_> = fs
            .list_dir(&RepoPath::root())
            .unwrap()
            .into_iter()
            .map(|e| e.0)
            .collect();
        assert_eq!(names, vec!["inside.yaml", "ok.yaml"]);
    }

    #[test]
    fn mem_fs_lists_and_reads() {
        let fs = MemFs::new()
            .with("a/b.yaml", "x")
            .with("a/c/d.yaml", "y")
            .with("e", "z");
        assert_eq!(
            fs.kind(&RepoPath::new("a").unwrap()).unwrap(),
            Some(EntryKind::Dir)
        );
        let list = fs.list_dir(&RepoPath::new("a").unwrap()).unwrap();
        assert_eq!(
            list,
            vec![
                ("b.yaml".to_string(), EntryKind::File),
                ("c".to_string(), EntryKind::Dir)
            ]
        );
        assert!(matches!(
            fs.read(&RepoPath::new("nope").unwrap()),
            Err(FsError::NotFound(_))
        ));
    }
}
