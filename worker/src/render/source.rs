//! What to render: a path in the repository and how ArgoCD would treat it.

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::repo_fs::{EntryKind, FsError, RepoFs, RepoPath};

/// One renderable source (an Application's `source`, or a directory given on the command line).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RenderSource {
    pub path: RepoPath,
    pub kind: SourceKind,
    /// Namespace the app deploys to (helm's `--namespace`).
    pub namespace: Option<String>,
    /// Release name for helm (ArgoCD uses the app name).
    pub release_name: String,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum SourceKind {
    Kustomize(KustomizeOptions),
    Helm(HelmOptions),
    Directory(DirectoryOptions),
}

impl SourceKind {
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Kustomize(_) => "kustomize",
            SourceKind::Helm(_) => "helm",
            SourceKind::Directory(_) => "directory",
        }
    }
}

/// `spec.source.kustomize` of an Application: applied as `kustomize edit` would, before building.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct KustomizeOptions {
    pub name_prefix: Option<String>,
    pub name_suffix: Option<String>,
    pub namespace: Option<String>,
    pub common_labels: IndexMap<String, String>,
    pub common_annotations: IndexMap<String, String>,
    /// `kustomize edit set image` arguments (`name=new:tag`, `name:tag`, `name@digest`).
    pub images: Vec<String>,
    /// `{name, count}` entries.
    pub replicas: Vec<Value>,
    pub components: Vec<String>,
    pub patches: Vec<Value>,
    /// Option keys present in the Application that this layer does not apply.
    pub unsupported: Vec<String>,
}

impl KustomizeOptions {
    pub fn is_empty(&self) -> bool {
        self.name_prefix.is_none()
            && self.name_suffix.is_none()
            && self.namespace.is_none()
            && self.common_labels.is_empty()
            && self.common_annotations.is_empty()
            && self.images.is_empty()
            && self.replicas.is_empty()
            && self.components.is_empty()
            && self.patches.is_empty()
    }
}

/// A chart from an HTTP Helm repository (an Application's `repoURL` + `chart` +
/// `targetRevision`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct RemoteChart {
    pub repo_url: String,
    pub name: String,
    pub version: String,
}

impl RenderSource {
    /// How messages name the source: its path, or the chart it fetches.
    pub fn label(&self) -> String {
        match &self.kind {
            SourceKind::Helm(HelmOptions { chart: Some(c), .. }) => {
                format!("chart {} {} from {}", c.name, c.version, c.repo_url)
            }
            _ => self.path.to_string(),
        }
    }
}

/// `spec.source.helm` of an Application.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct HelmOptions {
    /// The chart comes from a Helm repository rather than from `path` in this repository; value
    /// files are then `$ref/...` files of this repository (`path` is the repository root).
    pub chart: Option<RemoteChart>,
    /// Relative to the chart directory, as in ArgoCD.
    pub value_files: Vec<String>,
    /// Inline `values` (a YAML string or an object).
    pub values: Option<Value>,
    /// `--set name=value` pairs (`forceString` ones become `--set-string`).
    pub parameters: Vec<(String, String, bool)>,
    /// `--set-file name=path` pairs; paths relative to the chart directory, as value files.
    pub file_parameters: Vec<(String, String)>,
    pub release_name: Option<String>,
    /// `helm.namespace`: overrides the destination namespace for `--namespace`.
    pub namespace: Option<String>,
    pub skip_crds: bool,
    pub skip_schema_validation: bool,
    pub skip_tests: bool,
    /// Value files that do not exist are left out instead of failing the render.
    pub ignore_missing_value_files: bool,
    /// `helm.kubeVersion` as written; normalised as ArgoCD does when passed (see
    /// [`super::argv::kube_version`]).
    pub kube_version: Option<String>,
    /// `helm.apiVersions` (`[group/]version[/Kind]`), passed as `--api-versions`.
    pub api_versions: Vec<String>,
}

/// `spec.source.directory` of an Application.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct DirectoryOptions {
    pub recurse: bool,
    /// Glob (ArgoCD syntax, `{a,b}` alternatives allowed) on the path relative to the source.
    pub include: Option<String>,
    pub exclude: Option<String>,
    /// Every file is a candidate, whatever its extension (include/exclude still apply).
    pub disable_extension_filter: bool,
    pub jsonnet: JsonnetOptions,
}

/// `spec.source.directory.jsonnet` of an Application, with ArgoCD's build environment
/// (`$ARGOCD_APP_NAME`, ...) already substituted into the values.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JsonnetOptions {
    pub ext_vars: Vec<JsonnetVar>,
    pub tlas: Vec<JsonnetVar>,
    /// Library search folders, relative to the repository root (not to the app).
    pub libs: Vec<String>,
}

/// One external variable or top-level argument: a string, or Jsonnet code when `code`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct JsonnetVar {
    pub name: String,
    pub value: String,
    pub code: bool,
}

/// What ArgoCD would pick for a path without an explicit type: a kustomization makes it kustomize,
/// a `Chart.yaml` makes it helm, anything else is a plain directory.
pub fn detect_kind(fs: &dyn RepoFs, path: &RepoPath) -> Result<SourceKind, FsError> {
    if super::inputs::kustomization_file(fs, path)?.is_some() {
        return Ok(SourceKind::Kustomize(KustomizeOptions::default()));
    }
    if fs.kind(&path.join("Chart.yaml")?)? == Some(EntryKind::File) {
        return Ok(SourceKind::Helm(HelmOptions::default()));
    }
    Ok(SourceKind::Directory(DirectoryOptions::default()))
}
