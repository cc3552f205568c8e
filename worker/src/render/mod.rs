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

pub mod argv;
pub mod cache;
pub mod charts;
pub mod directory;
pub mod exec;
pub mod helm;
pub mod inputs;
pub mod jsonnet;
pub mod jsonnet_proc;
pub mod kustomize;
pub mod kustomize_exec;
pub mod native;
pub mod oci;
pub mod overlay;
pub mod source;
pub mod verify;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde::Serialize;

use crate::objects::{self, K8sObject, ObjectError};
use crate::repo_fs::{FsError, RepoFs, RepoPath};
use crate::yaml::YamlError;

pub use exec::ExecLimits;
pub use source::{
    DirectoryOptions, HelmOptions, JsonnetOptions, JsonnetVar, KustomizeOptions, RenderSource,
    SourceKind,
};
pub use verify::{NotCheckedConclusion, Scope, VerifyMode, VerifySettings};

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
    /// A bound on the work a pull request can cause was hit; `line` is the report's
    /// [`crate::limits::not_checked`] line.
    #[error("{file}: {line}")]
    Limit { file: String, line: String },
    #[error("{path}: preparing a scratch copy: {source}")]
    Scratch {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

impl RenderError {
    /// True when Capstan cannot render the source (a missing tool, a feature no available
    /// backend supports) as opposed to the source being wrong: the app is "not checked".
    pub fn is_not_checked(&self) -> bool {
        matches!(
            self,
            RenderError::Unavailable { .. }
                | RenderError::Unsupported { .. }
                | RenderError::Limit { .. }
        )
    }

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
    /// Chart repositories charts may be fetched from, and the chart cache.
    pub charts: charts::ChartSettings,
    /// Overrides [`native::ENGINE_VERSION`] (tests simulate an engine upgrade with it).
    pub engine_version: Option<String>,
    /// Bounds on evaluating an app's Jsonnet programs.
    pub jsonnet: jsonnet::JsonnetLimits,
    /// The `capstan` binary, whose hidden subcommand evaluates each Jsonnet program in a bounded
    /// child process ([`jsonnet_proc`]). Without it Jsonnet apps are "not checked": programs
    /// are never evaluated in this process.
    pub jsonnet_evaluator: Option<PathBuf>,
    /// Test hook: alters the native engine's result before it is used or verified.
    pub engine_hook: Option<verify::EngineHook>,
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
    /// Parts of the app that were not rendered (a multi-source app whose other sources come
    /// from elsewhere), with the reason: the app is then "not checked" although objects exist.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub not_checked: Vec<String>,
}

/// Counters for tests and benchmarks: how often a backend really ran.
#[derive(Debug, Default)]
pub struct RenderStats {
    pub backend_runs: AtomicUsize,
    pub cache_hits: AtomicUsize,
}

/// What every scoped copy of a [`Renderer`] shares.
struct Shared {
    config: RenderConfig,
    cache: cache::RenderCache,
    native: native::NativeBackend,
    kustomize: Option<kustomize_exec::KustomizeExec>,
    helm: Option<helm::HelmExec>,
    charts: Arc<charts::ChartFetcher>,
    directory: directory::DirectoryBackend,
    fidelity: verify::Fidelity,
}

/// Picks backends, computes inputs, applies the cache, verifies the native engine.
///
/// One renderer serves a process; [`Renderer::scoped`] gives a copy for one repository and its
/// verification settings that shares the cache, the backends and the pins.
pub struct Renderer {
    shared: Arc<Shared>,
    scope: verify::Scope,
    pub stats: Arc<RenderStats>,
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
        let charts = Arc::new(charts::ChartFetcher::new(config.charts.clone()));
        let helm = config
            .helm_binary
            .clone()
            .or_else(|| exec::which("helm"))
            .map(|p| helm::HelmExec::new(p, config.limits.clone(), charts.clone()));
        let kustomize =
            kustomize.map(|k| k.with_helm(helm.as_ref().map(|h| h.binary().to_path_buf())));
        let chart_fetcher = charts;
        let engine_version = config
            .engine_version
            .clone()
            .unwrap_or_else(|| native::ENGINE_VERSION.to_string());
        Renderer {
            shared: Arc::new(Shared {
                cache: cache::RenderCache::new(config.cache_dir.clone(), config.cache_limits),
                native: native::NativeBackend { helm: helm.clone() },
                kustomize,
                helm,
                charts: chart_fetcher,
                directory: directory::DirectoryBackend {
                    jsonnet: config.jsonnet,
                    evaluator: config.jsonnet_evaluator.clone(),
                },
                fidelity: verify::Fidelity::new(engine_version),
                config,
            }),
            scope: verify::Scope::default(),
            stats: Arc::new(RenderStats::default()),
        }
    }

    /// The chart fetcher every helm render of this renderer shares (tests count its requests).
    pub fn chart_fetcher(&self) -> &charts::ChartFetcher {
        &self.shared.charts
    }

    /// This renderer for one repository and its verification settings (same cache and pins).
    pub fn scoped(&self, scope: verify::Scope) -> Renderer {
        Renderer {
            shared: self.shared.clone(),
            scope,
            stats: self.stats.clone(),
        }
    }

    pub fn scope(&self) -> &verify::Scope {
        &self.scope
    }

    /// Pins, seen kustomizations and unsaved verification records.
    pub fn fidelity(&self) -> &verify::Fidelity {
        &self.shared.fidelity
    }

    /// Why sources of this kind cannot be rendered here (a missing tool), if they cannot.
    pub fn unavailable(&self, kind: &SourceKind) -> Option<String> {
        match kind {
            SourceKind::Helm(_) if self.shared.helm.is_none() => {
                Some("helm unavailable (no helm binary on PATH and none configured)".into())
            }
            _ => None,
        }
    }

    pub fn config(&self) -> &RenderConfig {
        &self.shared.config
    }

    /// The source as the chosen backend treats it (e.g. `--backend directory` on a kustomize dir).
    fn coerce(&self, source: &RenderSource) -> RenderSource {
        let mut s = source.clone();
        match (self.shared.config.backend, &s.kind) {
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
            SourceKind::Directory(opts) => {
                directory::inputs(fs, &source.path, opts, &self.shared.config.jsonnet)
            }
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
            SourceKind::Directory(opts) => {
                directory::inputs(fs, &source.path, opts, &self.shared.config.jsonnet)?
            }
        };
        let prints = inputs::fingerprint(fs, &inputs)?;
        let sh = &self.shared;
        let key = cache::key(
            sh.config.backend,
            &source,
            &prints,
            sh.fidelity.engine_version(),
            &self.scope.repo,
        );
        // A native entry cached before its kustomization was pinned is not served again.
        let pinned = matches!(source.kind, SourceKind::Kustomize(_))
            && sh.fidelity.pin(&self.scope.repo, &source.path).is_some();
        if let Some(hit) = sh
            .cache
            .get(&key)
            .filter(|h| !(pinned && h.backend == "native"))
        {
            self.stats.cache_hits.fetch_add(1, Ordering::Relaxed);
            let objects = objects::parse_stream(&hit.yaml, &source.path.to_string())?;
            return Ok(RenderOutput {
                yaml: Arc::from(hit.yaml),
                objects,
                inputs,
                backend: hit.backend.clone(),
                notes: hit.notes.clone(),
                cache_hit: true,
                not_checked: Vec::new(),
            });
        }
        self.stats.backend_runs.fetch_add(1, Ordering::Relaxed);
        let (yaml, backend) = self.run_backend(fs, &source, &inputs, &prints, &mut notes)?;
        let objects = objects::parse_stream(&yaml, &source.path.to_string())?;
        let yaml: Arc<str> = Arc::from(yaml);
        sh.cache.put(
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
            not_checked: Vec::new(),
        })
    }

    fn kustomize_exec(&self) -> Result<&kustomize_exec::KustomizeExec, RenderError> {
        self.shared
            .kustomize
            .as_ref()
            .ok_or_else(|| RenderError::Unavailable {
                backend: "kustomize".into(),
                reason: "neither kustomize nor kubectl is on PATH".into(),
            })
    }

    /// The native engine's result, through the test hook when one is set.
    fn native(
        &self,
        fs: &dyn RepoFs,
        source: &RenderSource,
        inputs: &BTreeSet<RepoPath>,
    ) -> Result<String, RenderError> {
        let out = self.shared.native.render(fs, source, inputs);
        match &self.shared.config.engine_hook {
            Some(hook) => (hook.0)(&source.path, out),
            None => out,
        }
    }

    fn run_backend(
        &self,
        fs: &dyn RepoFs,
        source: &RenderSource,
        inputs: &BTreeSet<RepoPath>,
        prints: &std::collections::BTreeMap<RepoPath, String>,
        notes: &mut Vec<String>,
    ) -> Result<(String, &'static str), RenderError> {
        let sh = &self.shared;
        match (&source.kind, sh.config.backend) {
            (SourceKind::Kustomize(_), BackendChoice::Native) => {
                Ok((self.native(fs, source, inputs)?, sh.native.name()))
            }
            (SourceKind::Kustomize(_), BackendChoice::Kustomize) => {
                let k = self.kustomize_exec()?;
                Ok((k.render(fs, source, inputs)?, k.name()))
            }
            (SourceKind::Kustomize(_), _) => self.kustomize_auto(fs, source, inputs, prints, notes),
            (SourceKind::Helm(_), _) => {
                let h = sh.helm.as_ref().ok_or_else(|| RenderError::Unavailable {
                    backend: "helm".into(),
                    reason: "no helm binary on PATH and none configured".into(),
                })?;
                Ok((h.render(fs, source, inputs)?, h.name()))
            }
            (SourceKind::Directory(_), _) => Ok((
                sh.directory.render(fs, source, inputs)?,
                sh.directory.name(),
            )),
        }
    }

    /// `auto` for a kustomization: a pinned one goes to the binary; otherwise the native engine
    /// (when [`NATIVE_FIRST`] or without a binary), verified as the scope asks, with the
    /// fallback policy of [`Renderer::native_failed`].
    fn kustomize_auto(
        &self,
        fs: &dyn RepoFs,
        source: &RenderSource,
        inputs: &BTreeSet<RepoPath>,
        prints: &std::collections::BTreeMap<RepoPath, String>,
        notes: &mut Vec<String>,
    ) -> Result<(String, &'static str), RenderError> {
        let sh = &self.shared;
        let repo = &self.scope.repo;
        if let Some(k) = &sh.kustomize {
            if let Some(pin) = sh.fidelity.pin(repo, &source.path) {
                notes.push(pin.note(k.tool_name()));
                return Ok((k.render(fs, source, inputs)?, k.name()));
            }
            if !NATIVE_FIRST {
                return Ok((k.render(fs, source, inputs)?, k.name()));
            }
        }
        let started = std::time::Instant::now();
        let native = self.native(fs, source, inputs);
        let Some(k) = &sh.kustomize else {
            return Ok((native?, sh.native.name()));
        };
        if self.scope.defer {
            sh.fidelity
                .earn(repo, started.elapsed(), self.scope.settings.verify_budget);
        }
        let native = match native {
            Ok(y) => y,
            Err(e) => return self.native_failed(e, k, fs, source, inputs, notes),
        };
        match verify::when(&sh.fidelity, &self.scope, &source.path, prints) {
            verify::When::Never => Ok((native, sh.native.name())),
            verify::When::Later { required } => {
                verify::defer(&sh.fidelity, repo, fs, source, inputs, &native, required);
                Ok((native, sh.native.name()))
            }
            verify::When::Now => self.against_binary(Ok(native), k, fs, source, inputs, notes),
        }
    }

    /// The fallback policy, in one place: what `auto` does when the native engine fails and the
    /// binary is installed. An unsupported feature goes to the binary with a note. Any other
    /// engine error is checked against the binary: when the binary succeeds its output is used
    /// and the disagreement recorded like any mismatch; when it fails too, the engine's error
    /// stands. Refused inputs (a path escaping the repository, a remote base) never reach the
    /// binary: they are refusals, not engine errors.
    fn native_failed(
        &self,
        err: RenderError,
        k: &kustomize_exec::KustomizeExec,
        fs: &dyn RepoFs,
        source: &RenderSource,
        inputs: &BTreeSet<RepoPath>,
        notes: &mut Vec<String>,
    ) -> Result<(String, &'static str), RenderError> {
        match err {
            RenderError::Unsupported { feature, file } => {
                notes.push(format!(
                    "native engine: unsupported {feature} ({file}); rendered with {}",
                    k.tool_name()
                ));
                Ok((k.render(fs, source, inputs)?, k.name()))
            }
            // A missing helm or chart is not the engine's fault: the binary would lack it too.
            RenderError::Input { .. }
            | RenderError::Scratch { .. }
            | RenderError::Unavailable { .. } => Err(err),
            other => self.against_binary(Err(other), k, fs, source, inputs, notes),
        }
    }

    /// Renders with the binary too and settles which output is used ([`verify::settle`]).
    fn against_binary(
        &self,
        native: Result<String, RenderError>,
        k: &kustomize_exec::KustomizeExec,
        fs: &dyn RepoFs,
        source: &RenderSource,
        inputs: &BTreeSet<RepoPath>,
        notes: &mut Vec<String>,
    ) -> Result<(String, &'static str), RenderError> {
        let binary = k.render(fs, source, inputs);
        let settled = verify::settle(
            &self.shared.fidelity,
            &self.scope.repo,
            source,
            native,
            binary,
        );
        match settled {
            verify::Settled::Native(y) => Ok((y, self.shared.native.name())),
            verify::Settled::Binary(y, m) => {
                notes.push(m.note(k.tool_name()));
                Ok((y, k.name()))
            }
            verify::Settled::Unverified(y, why) => {
                notes.push(format!("not verified against {}: {why}", k.tool_name()));
                Ok((y, self.shared.native.name()))
            }
            verify::Settled::Failed(e) => Err(e),
        }
    }

    /// Runs the verifications deferred for `repo` (blocking: one binary render each). Returns
    /// the mismatches found; each is already pinned and waits in [`verify::Fidelity`] to be
    /// saved. Sampled ones run only while the repository's `render.verifyBudget` has credit
    /// ([`verify::Fidelity::affordable`]); first renders after an engine change always run.
    pub fn verify_pending(&self, repo: &str) -> Vec<verify::Mismatch> {
        let Some(k) = &self.shared.kustomize else {
            return Vec::new();
        };
        let mut pending = self.shared.fidelity.take_pending(repo);
        // Required ones first: the budget only ever leaves out sampled ones.
        pending.sort_by_key(|p| !p.required);
        let next = AtomicUsize::new(0);
        let skipped = AtomicUsize::new(0);
        let found = std::sync::Mutex::new(Vec::new());
        let workers = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(pending.len());
        // One binary process per pending render, on as many threads as there are cores.
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| {
                    while let Some(p) = pending.get(next.fetch_add(1, Ordering::Relaxed)) {
                        let fid = &self.shared.fidelity;
                        if !p.required && !fid.affordable(repo) {
                            skipped.fetch_add(1, Ordering::Relaxed);
                            continue;
                        }
                        let started = std::time::Instant::now();
                        let binary = k.render(&p.files, &p.source, &p.inputs);
                        fid.spent(repo, started.elapsed(), !p.required);
                        let settled = verify::settle(
                            &self.shared.fidelity,
                            repo,
                            &p.source,
                            Ok(p.native_yaml.to_string()),
                            binary,
                        );
                        if let verify::Settled::Binary(_, m) = settled {
                            found.lock().unwrap_or_else(|e| e.into_inner()).push(m);
                        }
                    }
                });
            }
        });
        let skipped = skipped.into_inner();
        if skipped > 0 {
            tracing::info!(
                repo,
                verified = pending.len() - skipped,
                left_out = skipped,
                "render verification: sampled renders left out, render.verifyBudget is spent"
            );
        }
        found.into_inner().unwrap_or_else(|e| e.into_inner())
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
