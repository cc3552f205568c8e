//! [`RepoFs`] over the tree of one commit, read from the object database (no checkout).
//!
//! Symlink blobs are followed only while their target stays inside the repository: the target is
//! resolved by component against the link's directory, so absolute targets, targets that climb
//! above the root and link loops are all refused as [`FsError::SymlinkEscape`].

use std::path::Path;
use std::sync::{Arc, Mutex};

use git2::{ObjectType, Oid, Repository};

use super::GitError;
use crate::repo_fs::{EntryKind, FsError, MAX_FILE_BYTES, RepoFs, RepoPath};

const MODE_TREE: i32 = 0o040000;
const MODE_LINK: i32 = 0o120000;
const MODE_COMMIT: i32 = 0o160000;
/// Same bound as the Linux kernel's symlink resolution.
const MAX_LINK_HOPS: usize = 40;

/// The tree of one commit. `git2::Repository` is not `Sync`, so reads take a lock; they are short.
pub struct GitTreeFs {
    repo: Mutex<Repository>,
    commit: Oid,
    root: Oid,
}

enum Node {
    Tree(Oid),
    Blob(Oid),
}

impl GitTreeFs {
    pub(super) fn open(path: &Path, commit: Oid) -> Result<Self, GitError> {
        let repo = Repository::open(path).map_err(|e| GitError::Open {
            path: path.display().to_string(),
            message: e.message().to_string(),
        })?;
        let root = repo
            .find_commit(commit)
            .and_then(|c| c.tree())
            .map(|t| t.id())
            .map_err(|e| GitError::Resolve {
                reference: commit.to_string(),
                message: e.message().to_string(),
            })?;
        Ok(GitTreeFs {
            repo: Mutex::new(repo),
            commit,
            root,
        })
    }

    /// The commit this view reads.
    pub fn commit(&self) -> Oid {
        self.commit
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Repository> {
        // A panic while holding the lock leaves the repository handle itself intact.
        self.repo.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn backend(path: &RepoPath, e: git2::Error) -> FsError {
        FsError::Backend {
            path: path.to_string(),
            message: e.message().to_string(),
        }
    }

    /// Walks `path` from the root tree, following in-repository symlinks.
    fn resolve(&self, repo: &Repository, path: &RepoPath) -> Result<Option<Node>, FsError> {
        Ok(self.resolve_real(repo, path)?.map(|(n, _)| n))
    }

    /// [`Self::resolve`], also giving the path reached (every symlink followed).
    fn resolve_real(
        &self,
        repo: &Repository,
        path: &RepoPath,
    ) -> Result<Option<(Node, String)>, FsError> {
        let mut pending: Vec<String> = components(path.as_str()).rev().collect();
        let mut dir: Vec<String> = Vec::new();
        let mut tree_id = self.root;
        let mut hops = 0;
        while let Some(name) = pending.pop() {
            let tree = repo
                .find_tree(tree_id)
                .map_err(|e| Self::backend(path, e))?;
            let Some(entry) = tree.get_name(&name) else {
                return Ok(None);
            };
            match entry.filemode() {
                MODE_TREE => {
                    dir.push(name);
                    tree_id = entry.id();
                }
                MODE_LINK => {
                    hops += 1;
                    let blob = repo
                        .find_blob(entry.id())
                        .map_err(|e| Self::backend(path, e))?;
                    let target = String::from_utf8_lossy(blob.content()).into_owned();
                    let escape = || FsError::SymlinkEscape {
                        path: path.to_string(),
                        target: target.clone(),
                    };
                    if hops > MAX_LINK_HOPS {
                        return Err(escape());
                    }
                    let link_dir = RepoPath::new(&dir.join("/")).map_err(|_| escape())?;
                    let resolved = link_dir.join(&target).map_err(|_| escape())?;
                    // `pending` is a stack: the link target's first component goes on top.
                    pending.extend(components(resolved.as_str()).rev());
                    dir.clear();
                    tree_id = self.root;
                }
                MODE_COMMIT => {
                    return Err(FsError::Backend {
                        path: path.to_string(),
                        message: "git submodules are not read".into(),
                    });
                }
                _ => {
                    if pending.is_empty() {
                        dir.push(name);
                        return Ok(Some((Node::Blob(entry.id()), dir.join("/"))));
                    }
                    return Err(FsError::NotADirectory(path.to_string()));
                }
            }
        }
        Ok(Some((Node::Tree(tree_id), dir.join("/"))))
    }
}

fn components(p: &str) -> impl DoubleEndedIterator<Item = String> + '_ {
    p.split('/').filter(|c| !c.is_empty()).map(str::to_string)
}

impl RepoFs for GitTreeFs {
    fn real_path(&self, path: &RepoPath) -> Result<Option<RepoPath>, FsError> {
        let repo = self.lock();
        match self.resolve_real(&repo, path)? {
            None => Ok(None),
            Some((_, real)) if real.is_empty() => Ok(Some(RepoPath::root())),
            Some((_, real)) => RepoPath::new(&real).map(Some),
        }
    }

    fn kind(&self, path: &RepoPath) -> Result<Option<EntryKind>, FsError> {
        let repo = self.lock();
        Ok(self.resolve(&repo, path)?.map(|n| match n {
            Node::Tree(_) => EntryKind::Dir,
            Node::Blob(_) => EntryKind::File,
        }))
    }

    fn read(&self, path: &RepoPath) -> Result<Arc<[u8]>, FsError> {
        let repo = self.lock();
        let id = match self.resolve(&repo, path)? {
            None => return Err(FsError::NotFound(path.to_string())),
            Some(Node::Tree(_)) => {
                return Err(FsError::Backend {
                    path: path.to_string(),
                    message: "is a directory".into(),
                });
            }
            Some(Node::Blob(id)) => id,
        };
        // The header gives the size without inflating the object, so a huge blob is refused
        // before it is loaded.
        let odb = repo.odb().map_err(|e| Self::backend(path, e))?;
        let (size, kind) = odb.read_header(id).map_err(|e| Self::backend(path, e))?;
        if kind != ObjectType::Blob {
            return Err(FsError::NotFound(path.to_string()));
        }
        if size as u64 > MAX_FILE_BYTES {
            return Err(FsError::TooLarge {
                path: path.to_string(),
                size: size as u64,
                limit: MAX_FILE_BYTES,
            });
        }
        let blob = repo.find_blob(id).map_err(|e| Self::backend(path, e))?;
        Ok(Arc::from(blob.content()))
    }

    fn list_dir(&self, path: &RepoPath) -> Result<Vec<(String, EntryKind)>, FsError> {
        let names: Vec<(String, i32)> = {
            let repo = self.lock();
            let tree_id = match self.resolve(&repo, path)? {
                None => return Err(FsError::NotFound(path.to_string())),
                Some(Node::Blob(_)) => return Err(FsError::NotADirectory(path.to_string())),
                Some(Node::Tree(id)) => id,
            };
            let tree = repo
                .find_tree(tree_id)
                .map_err(|e| Self::backend(path, e))?;
            tree.iter()
                .filter_map(|e| e.name().ok().map(|n| (n.to_string(), e.filemode())))
                .collect()
        };
        let mut out = Vec::new();
        for (name, mode) in names {
            let kind = match mode {
                MODE_TREE => EntryKind::Dir,
                MODE_COMMIT => continue,
                MODE_LINK => {
                    // Links that leave the repository or dangle are not listed, like DirFs.
                    match self.kind(&path.join(&name)?) {
                        Ok(Some(k)) => k,
                        Ok(None) | Err(FsError::SymlinkEscape { .. }) => continue,
                        Err(e) => return Err(e),
                    }
                }
                _ => EntryKind::File,
            };
            out.push((name, kind));
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }
}
