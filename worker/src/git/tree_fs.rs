//! [`RepoFs`] over the tree of one commit, read from the object database (no checkout).
//!
//! Symlink blobs are followed only while their target stays inside the repository: the target is
//! resolved by component against the link's directory, so absolute targets, targets that climb
//! above the root and link loops are all refused as [`FsError::SymlinkEscape`].

use std::collections::HashMap;
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
    repo: Mutex<Trees>,
    commit: Oid,
    root: Oid,
}

/// Entries of one tree by name: (file mode, object id).
type Entries = Arc<HashMap<Vec<u8>, (i32, Oid)>>;

/// Tree entries kept once a tree is parsed: stored in at most this many entries in all.
const MAX_CACHED_ENTRIES: usize = 1 << 20;

/// The repository with the trees already read. libgit2 keeps no tree over 4 KiB in its object
/// cache, so without this every path lookup inflated, hash-checked and parsed each directory on
/// the way again: with 1,000 apps under one directory, reading each app's files re-read that
/// 1,000-entry tree every time (quadratic; most of a 1,000-app check). Trees are immutable by
/// id, so a cached one is never stale.
struct Trees {
    repo: Repository,
    parsed: HashMap<Oid, Entries>,
    cached_entries: usize,
}

impl Trees {
    fn entries(&mut self, id: Oid) -> Result<Entries, git2::Error> {
        if let Some(e) = self.parsed.get(&id) {
            return Ok(e.clone());
        }
        let tree = self.repo.find_tree(id)?;
        let entries: Entries = Arc::new(
            tree.iter()
                .map(|e| (e.name_bytes().to_vec(), (e.filemode(), e.id())))
                .collect(),
        );
        if self.cached_entries + entries.len() > MAX_CACHED_ENTRIES {
            self.parsed.clear();
            self.cached_entries = 0;
        }
        self.cached_entries += entries.len();
        self.parsed.insert(id, entries.clone());
        Ok(entries)
    }
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
            repo: Mutex::new(Trees {
                repo,
                parsed: HashMap::new(),
                cached_entries: 0,
            }),
            commit,
            root,
        })
    }

    /// The commit this view reads.
    pub fn commit(&self) -> Oid {
        self.commit
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Trees> {
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
    fn resolve(&self, repo: &mut Trees, path: &RepoPath) -> Result<Option<Node>, FsError> {
        Ok(self.resolve_real(repo, path)?.map(|(n, _)| n))
    }

    /// [`Self::resolve`], also giving the path reached (every symlink followed).
    fn resolve_real(
        &self,
        repo: &mut Trees,
        path: &RepoPath,
    ) -> Result<Option<(Node, String)>, FsError> {
        let mut pending: Vec<String> = components(path.as_str()).rev().collect();
        let mut dir: Vec<String> = Vec::new();
        let mut tree_id = self.root;
        let mut hops = 0;
        while let Some(name) = pending.pop() {
            let entries = repo.entries(tree_id).map_err(|e| Self::backend(path, e))?;
            let Some(&(mode, id)) = entries.get(name.as_bytes()) else {
                return Ok(None);
            };
            match mode {
                MODE_TREE => {
                    dir.push(name);
                    tree_id = id;
                }
                MODE_LINK => {
                    hops += 1;
                    let blob = repo
                        .repo
                        .find_blob(id)
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
                        return Ok(Some((Node::Blob(id), dir.join("/"))));
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
        let mut repo = self.lock();
        match self.resolve_real(&mut repo, path)? {
            None => Ok(None),
            Some((_, real)) if real.is_empty() => Ok(Some(RepoPath::root())),
            Some((_, real)) => RepoPath::new(&real).map(Some),
        }
    }

    fn kind(&self, path: &RepoPath) -> Result<Option<EntryKind>, FsError> {
        let mut repo = self.lock();
        Ok(self.resolve(&mut repo, path)?.map(|n| match n {
            Node::Tree(_) => EntryKind::Dir,
            Node::Blob(_) => EntryKind::File,
        }))
    }

    fn read(&self, path: &RepoPath) -> Result<Arc<[u8]>, FsError> {
        let mut repo = self.lock();
        let id = match self.resolve(&mut repo, path)? {
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
        let odb = repo.repo.odb().map_err(|e| Self::backend(path, e))?;
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
        let blob = repo
            .repo
            .find_blob(id)
            .map_err(|e| Self::backend(path, e))?;
        Ok(Arc::from(blob.content()))
    }

    fn list_dir(&self, path: &RepoPath) -> Result<Vec<(String, EntryKind)>, FsError> {
        let names: Vec<(String, i32)> = {
            let mut repo = self.lock();
            let tree_id = match self.resolve(&mut repo, path)? {
                None => return Err(FsError::NotFound(path.to_string())),
                Some(Node::Blob(_)) => return Err(FsError::NotADirectory(path.to_string())),
                Some(Node::Tree(id)) => id,
            };
            let tree = repo
                .repo
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
