//! Rendering: turning an app's source at one commit into Kubernetes objects.
//!
//! Backends sit behind one trait, [`Backend`]: `native` (the in-process kustomize engine in
//! [`kustomize`]), `kustomize` (exec `kustomize build`, else `kubectl kustomize`), `helm` (exec
//! `helm template`) and `directory` (plain manifests). [`Renderer`] picks the backend, computes the
//! app's exact input files first ([`inputs`]), refuses remote sources before any tool runs, and
//! caches results by the content hash of those inputs, so an unchanged app is never rendered twice.
//!
//! Exec backends never see the repository itself: the app's input files are copied, through the
//! sandboxed [`RepoFs`], into a temporary directory and the tool runs there. A symlink to
//! `/etc/passwd` or a file outside the input graph therefore cannot be read by the tool either.

pub mod cache;
pub mod directory;
pub mod exec;
pub mod helm;
pub mod inputs;
pub mod kustomize;
pub mod kustomize_exec;
pub mod native;
pub mod overlay;
pub mod source;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::objects::{self, K8sObject, ObjectError};
use crate::repo_fs::{FsError, RepoFs, RepoPath};
use crate::yaml::YamlError;

pub use exec::ExecLimits;
pub use source::{DirectoryOptions, HelmOptions, KustomizeOptions, RenderSource, SourceKind};

/// Whether `auto` renders kustomize sources with the native engine first (falling back to the
/// binary, with a note, on anything it reports as unsupported) or with the binary first (the native
/// engine is then used only when neither `kustomize` nor `kubectl` is installed).
///
/// Off until the native engine passes its conformance suite *and* `tests/tests/render_gitops_tree.rs`
/// with it: a trial merge on 2026-11-26 rendered `applications/system/capstan` with one extra blank
/// line after a block scalar, which the tree test caught. Flip this to make native the default.
pub const NATIVE_FIRST: bool = true;

/// Why an app could not be rendered. Each variant names the file or app concerned.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// Reading an input failed or was refused by the sandbox (escape, symlink, size, remote).
    #[error("{file}: {source}")]
    Input {
        file: String,
        #[source]
        source: FsError,
    },
    #[error(transparent)]
    Yaml(#[from] YamlError),
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    /// A feature this backend does not implement.
    #[error("unsupported: {feature} ({file})")]
    Unsupported { feature: String, file: String },
    /// The tool a backend needs is not installed or not configured.
    #[error("not rendered: {backend} unavailable ({reason})")]
    Unavailable { backend: String, reason: String },
    #[error("{source} [{path}]")]
    Exec {
        path: String,
        #[source]
        source: exec::ExecError,
    },
    #[error(transparent)]
    Objects(#[from] ObjectError),
    #[error("{path}: preparing a scratch copy: {source}")]
    Scratch {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl RenderError {
    /// True when the failure is a refused remote source.
    pub fn is_remote(&self) -> bool {
        matches!(
            self,
            RenderError::Input {
                source: FsError::Remote(_),
                ..
            }
        )
    }
}

/// One backend. `inputs` is the exact input set computed for `source`; exec backends copy only
/// those files into their scratch directory.
pub trait Backend: Send + Sync {
    fn name(&self) -> &'static str;
    fn render(
        &self,
        fs: &dyn RepoFs,
        source: &RenderSource,
        inputs: &BTreeSet<RepoPath>,
    ) -> Result<String, RenderError>;
}

/// The backend a caller asks for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendChoice {
    /// By source type; kustomize sources go native first when [`NATIVE_FIRST`], else the binary.
    #[default]
    Auto,
    Native,
    Kustomize,
    Helm,
    Directory,
}

impl std::str::FromStr for BackendChoice {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "auto" => BackendChoice::Auto,
            "native" => BackendChoice::Native,
            "kustomize" => BackendChoice::Kustomize,
            "helm" => BackendChoice::Helm,
            "directory" => BackendChoice::Directory,
            other => {
                return Err(format!(
                    "unknown backend {other:?} (auto, native, kustomize, helm, directory)"
                ));
            }
        })
    }
}

/// Settings for a [`Renderer`].
#[derive(Clone, Debug, Default)]
pub struct RenderConfig {
    pub backend: BackendChoice,
    pub limits: ExecLimits,
    /// Persistent cache folder; `None` keeps the cache in memory only.
    pub cache_dir: Option<PathBuf>,
    /// Bounds of the in-memory cache.
    pub cache_limits: cache::CacheLimits,
    /// Overrides the `kustomize`/`kubectl` lookup on `PATH`.
    pub kustomize_binary: Option<PathBuf>,
    /// Overrides the `helm` lookup on `PATH`.
    pub helm_binary: Option<PathBuf>,
}

/// The result of rendering one source.
#[derive(Clone, Debug, Serialize)]
pub struct RenderOutput {
    /// Multi-document YAML in the form `kustomize build` prints.
    #[serde(skip)]
    pub yaml: Arc<str>,
    pub objects: Vec<K8sObject>,
    /// Every repository file the render read.
    pub inputs: BTreeSet<RepoPath>,
    pub backend: String,
    /// Fallbacks and options that were not applied, in words.
    pub notes: Vec<String>,
    pub cache_hit: bool,
}

/// Counters for tests and benchmarks: how often a backend really ran.
#[derive(Debug, Default)]
pub struct RenderStats {
    pub backend_runs: AtomicUsize,
    pub cache_hits: AtomicUsize,
}

/// Picks backends, computes inputs, applies the cache.
pub struct Renderer {
    config: RenderConfig,
    cache: cache::RenderCache,
    native: native::NativeBackend,
    kustomize: Option<kustomize_exec::KustomizeExec>,
    helm: Option<helm::HelmExec>,
    directory: directory::DirectoryBackend,
    pub stats: RenderStats,
}

impl Renderer {
    pub fn new(config: RenderConfig) -> Self {
        let kustomize = match &config.kustomize_binary {
            Some(p) => Some(kustomize_exec::KustomizeExec::with_binary(
                p.clone(),
                config.limits.clone(),
            )),
            None => kustomize_exec::KustomizeExec::detect(config.limits.clone()),
        };
        let helm = config
            .helm_binary
            .clone()
            .or_else(|| exec::which("helm"))
            .map(|p| helm::HelmExec::new(p, config.limits.clone()));
        Renderer {
            cache: cache::RenderCache::new(config.cache_dir.clone(), config.cache_limits),
            native: native::NativeBackend,
            kustomize,
            helm,
            directory: directory::DirectoryBackend,
            stats: RenderStats::default(),
            config,
        }
    }

    pub fn config(&self) -> &RenderConfig {
        &self.config
    }

    /// The source as the chosen backend treats it (e.g. `--backend directory` on a kustomize dir).
    fn coerce(&self, source: &RenderSource) -> RenderSource {
        let mut s = source.clone();
        match (self.config.backend, &s.kind) {
            (BackendChoice::Native | BackendChoice::Kustomize, SourceKind::Kustomize(_))
            | (BackendChoice::Helm, SourceKind::Helm(_))
            | (BackendChoice::Directory, SourceKind::Directory(_))
            | (BackendChoice::Auto, _) => {}
            (BackendChoice::Native | BackendChoice::Kustomize, _) => {
                s.kind = SourceKind::Kustomize(KustomizeOptions::default())
            }
            (BackendChoice::Helm, _) => s.kind = SourceKind::Helm(HelmOptions::default()),
            (BackendChoice::Directory, _) => {
                s.kind = SourceKind::Directory(DirectoryOptions::default())
            }
        }
        s
    }

    /// The exact set of repository files rendering `source` reads.
    pub fn inputs(
        &self,
        fs: &dyn RepoFs,
        source: &RenderSource,
    ) -> Result<BTreeSet<RepoPath>, RenderError> {
        let source = self.coerce(source);
        match &source.kind {
            SourceKind::Kustomize(opts) => {
                let ov = overlay::with_kustomize_options(fs, &source.path, opts)?;
                inputs::kustomize_inputs(&ov, &source.path)
            }
            SourceKind::Helm(opts) => helm::inputs(fs, &source.path, opts),
            SourceKind::Directory(opts) => directory::inputs(fs, &source.path, opts),
        }
    }

    /// Renders `source`, from the cache when its inputs are unchanged.
    pub fn render(
        &self,
        fs: &dyn RepoFs,
        source: &RenderSource,
    ) -> Result<RenderOutput, RenderError> {
        let source = self.coerce(source);
        let mut notes = Vec::new();
        let overlay = match &source.kind {
            SourceKind::Kustomize(opts) => {
                if !opts.unsupported.is_empty() {
                    notes.push(format!(
                        "Application kustomize options not applied: {}",
                        opts.unsupported.join(", ")
                    ));
                }
                overlay::with_kustomize_options(fs, &source.path, opts)?
            }
            _ => overlay::OverlayFs::new(fs),
        };
        let fs: &dyn RepoFs = &overlay;
        let inputs = match &source.kind {
            SourceKind::Kustomize(_) => inputs::kustomize_inputs(fs, &source.path)?,
            SourceKind::Helm(opts) => helm::inputs(fs, &source.path, opts)?,
            SourceKind::Directory(opts) => directory::inputs(fs, &source.path, opts)?,
        };
        let prints = inputs::fingerprint(fs, &inputs)?;
        let key = cache::key(self.config.backend, &source, &prints);
        if let Some(hit) = self.cache.get(&key) {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            let objects = objects::parse_stream(&hit.yaml, &source.path.to_string())?;
            return Ok(RenderOutput {
                yaml: Arc::from(hit.yaml),
                objects,
                inputs,
                backend: hit.backend.clone(),
                notes: hit.notes.clone(),
                cache_hit: true,
            });
        }
        self.stats.backend_runs.fetch_add(1, Ordering::Relaxed);
        let (yaml, backend) = self.run_backend(fs, &source, &inputs, &mut notes)?;
        let objects = objects::parse_stream(&yaml, &source.path.to_string())?;
        let yaml: Arc<str> = Arc::from(yaml);
        self.cache.put(
            &key,
            cache::Entry {
                yaml: yaml.to_string(),
                backend: backend.to_string(),
                notes: notes.clone(),
            },
        );
        Ok(RenderOutput {
            yaml,
            objects,
            inputs,
            backend: backend.to_string(),
            notes,
            cache_hit: false,
        })
    }

    fn kustomize_exec(&self) -> Result<&kustomize_exec::KustomizeExec, RenderError> {
        self.kustomize
            .as_ref()
            .ok_or_else(|| RenderError::Unavailable {
                backend: "kustomize".into(),
                reason: "neither kustomize nor kubectl is on PATH".into(),
            })
    }

    fn run_backend(
        &self,
        fs: &dyn RepoFs,
        source: &RenderSource,
        inputs: &BTreeSet<RepoPath>,
        notes: &mut Vec<String>,
    ) -> Result<(String, &'static str), RenderError> {
        match (&source.kind, self.config.backend) {
            (SourceKind::Kustomize(_), BackendChoice::Native) => {
                Ok((self.native.render(fs, source, inputs)?, self.native.name()))
            }
            (SourceKind::Kustomize(_), BackendChoice::Kustomize) => {
                let k = self.kustomize_exec()?;
                Ok((k.render(fs, source, inputs)?, k.name()))
            }
            (SourceKind::Kustomize(_), _) => {
                if NATIVE_FIRST || self.kustomize.is_none() {
                    match self.native.render(fs, source, inputs) {
                        Ok(y) => return Ok((y, self.native.name())),
                        Err(RenderError::Unsupported { feature, file }) => {
                            if let Some(k) = &self.kustomize {
                                notes.push(format!(
                                    "native engine: unsupported {feature} ({file}); rendered with {}",
                                    k.tool_name()
                                ));
                            } else {
                                return Err(RenderError::Unsupported { feature, file });
                            }
                        }
                        Err(e) => return Err(e),
                    }
                }
                let k = self.kustomize_exec()?;
                Ok((k.render(fs, source, inputs)?, k.name()))
            }
            (SourceKind::Helm(_), _) => {
                let h = self.helm.as_ref().ok_or_else(|| RenderError::Unavailable {
                    backend: "helm".into(),
                    reason: "no helm binary on PATH and none configured".into(),
                })?;
                Ok((h.render(fs, source, inputs)?, h.name()))
            }
            (SourceKind::Directory(_), _) => Ok((
                self.directory.render(fs, source, inputs)?,
                self.directory.name(),
            )),
        }
    }
}

/// Copies `files` from `fs` into `dest`, keeping their repository paths. Reading goes through the
/// sandbox, so a refused file is never copied.
pub fn materialize(
    fs: &dyn RepoFs,
    files: &BTreeSet<RepoPath>,
    dest: &Path,
) -> Result<(), RenderError> {
    for f in files {
        let bytes = fs.read(f).map_err(|source| RenderError::Input {
            file: f.to_string(),
            source,
        })?;
        let target = dest.join(f.as_str());
        let scratch = |source| RenderError::Scratch {
            path: f.to_string(),
            source,
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(scratch)?;
        }
        std::fs::write(&target, &bytes).map_err(|source| RenderError::Scratch {
            path: f.to_string(),
            source,
        })?;
    }
    Ok(())
}
