//! `helmCharts:` (and the legacy `helmChartInflationGenerator:`), as kustomize v5.5's
//! HelmChartInflationGenerator inflates them under `kustomize build --enable-helm`.
//!
//! The engine reads and merges values itself (so they stay inside the repository and are
//! recorded as inputs) and hands one `helm template` per entry to a [`ChartRenderer`]: the render
//! layer's helm, which copies local charts into a scratch folder and takes charts from a
//! repository only through Capstan's chart fetcher, never letting helm pull anything. What comes
//! back joins the build after `configMapGenerator` and `secretGenerator` and before
//! `generators:`, absorbed like any generated object.
//!
//! kustomize's rules, kept here:
//! - the chart is `<chartHome>/<name>`, where `chartHome` (`helmGlobals.chartHome`, default
//!   `charts`) is relative to the kustomization; with both `repo` and `version` it is
//!   `<chartHome>/<name>-<version>/<name>`; a chart missing there comes from `repo`, or is an
//!   error without one;
//! - the values file (`valuesFile`, default the chart's own `values.yaml`) and
//!   `additionalValuesFiles` are loaded like any kustomization file (in or below its folder);
//! - with `valuesInline`, `valuesMerge: override` (default) merges it over the values file,
//!   `merge` merges the values file over it, `replace` uses it alone; merging is kyaml's merge
//!   walk (maps merge, lists are replaced, `null` deletes);
//! - `helm template [RELEASE|--generate-name] CHART --namespace --name-template -f VALUES
//!   -f ADDITIONAL... --api-versions --kube-version --include-crds --skip-tests --no-hooks`.

use serde_json::{Map, Value};

use super::loader::{Kust, Loader, absorb};
use super::resource::Res;
use super::{KustomizeError, patch_smp, yaml_load};
use crate::render::argv;
use crate::repo_fs::{EntryKind, RepoFs, RepoPath};

/// Where the chart of one entry is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ChartLocation {
    /// A chart folder in the repository.
    Local(RepoPath),
    /// A chart kustomize would `helm pull` from `repo` (HTTP or `oci://`).
    Remote {
        repo: String,
        name: String,
        version: String,
    },
}

/// One `helm template` run, every value already checked.
#[derive(Clone, Debug)]
pub struct TemplateRequest {
    pub chart: ChartLocation,
    /// `None`: helm generates a name (`--generate-name`), as kustomize asks it to.
    pub release_name: Option<String>,
    pub namespace: Option<String>,
    pub name_template: Option<String>,
    /// The text of each `-f` file, in order.
    pub values: Vec<String>,
    pub api_versions: Vec<String>,
    pub kube_version: Option<String>,
    pub include_crds: bool,
    pub skip_tests: bool,
    pub skip_hooks: bool,
    /// The kustomization that asked, for errors.
    pub file: String,
}

/// The helm the engine inflates charts with (see [`super::build_with`]).
pub trait ChartRenderer: Sync {
    /// `helm template` for `req`: what helm prints.
    fn template(&self, fs: &dyn RepoFs, req: &TemplateRequest) -> Result<String, KustomizeError>;
    /// The `values.yaml` of a chart from a repository (`None` when it has none).
    fn remote_values(
        &self,
        repo: &str,
        name: &str,
        version: &str,
        file: &str,
    ) -> Result<Option<String>, KustomizeError>;
}

/// `helmGlobals`.
#[derive(Clone, Debug, Default)]
pub struct Globals {
    pub chart_home: String,
}

/// One `helmCharts` entry.
#[derive(Clone, Debug, Default)]
pub struct ChartEntry {
    pub name: String,
    pub version: String,
    pub repo: String,
    pub release_name: String,
    pub namespace: String,
    pub name_template: String,
    pub values_file: String,
    pub additional_values_files: Vec<String>,
    pub values_inline: Map<String, Value>,
    pub values_merge: String,
    pub include_crds: bool,
    pub skip_hooks: bool,
    pub skip_tests: bool,
    pub api_versions: Vec<String>,
    pub kube_version: String,
    pub debug: bool,
}

const CHART_FIELDS: &[&str] = &[
    "name",
    "version",
    "repo",
    "releaseName",
    "namespace",
    "nameTemplate",
    "valuesFile",
    "additionalValuesFiles",
    "valuesInline",
    "valuesMerge",
    "includeCRDs",
    "skipHooks",
    "skipTests",
    "apiVersions",
    "kubeVersion",
    "debug",
];
const LEGACY_FIELDS: &[&str] = &[
    "chartName",
    "chartVersion",
    "chartRepoUrl",
    "chartHome",
    "chartRepoName",
    "helmBin",
    "helmHome",
    "values",
    "valuesLocal",
    "valuesMerge",
    "releaseName",
    "releaseNamespace",
    "extraArgs",
];
const GLOBAL_FIELDS: &[&str] = &["chartHome", "configHome"];

/// Field readers with kustomize's strict decoding: an unknown field or a wrong type is an error.
struct Fields<'a> {
    m: &'a Map<String, Value>,
    file: &'a str,
    what: &'a str,
}

impl Fields<'_> {
    fn new<'a>(
        v: &'a Value,
        known: &[&str],
        file: &'a str,
        what: &'a str,
    ) -> Result<Fields<'a>, KustomizeError> {
        let Value::Object(m) = v else {
            return Err(KustomizeError::invalid(
                file,
                format!("{what}: expected a mapping, got {v}"),
            ));
        };
        if let Some(k) = m.keys().find(|k| !known.contains(&k.as_str())) {
            return Err(KustomizeError::invalid(
                file,
                format!("invalid Kustomization: json: unknown field \"{k}\""),
            ));
        }
        Ok(Fields { m, file, what })
    }
    fn get(&self, k: &str) -> Option<&Value> {
        self.m.get(k).filter(|v| !v.is_null())
    }
    fn bad(&self, k: &str, want: &str) -> KustomizeError {
        KustomizeError::invalid(self.file, format!("{}: {k}: expected {want}", self.what))
    }
    fn string(&self, k: &str) -> Result<String, KustomizeError> {
        match self.get(k) {
            None => Ok(String::new()),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(self.bad(k, "a string")),
        }
    }
    fn boolean(&self, k: &str) -> Result<bool, KustomizeError> {
        match self.get(k) {
            None => Ok(false),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(self.bad(k, "a boolean")),
        }
    }
    fn strings(&self, k: &str) -> Result<Vec<String>, KustomizeError> {
        match self.get(k) {
            None => Ok(Vec::new()),
            Some(Value::Array(a)) => a
                .iter()
                .map(|x| {
                    x.as_str()
                        .map(str::to_string)
                        .ok_or_else(|| self.bad(k, "strings"))
                })
                .collect(),
            Some(_) => Err(self.bad(k, "a list of strings")),
        }
    }
    fn map(&self, k: &str) -> Result<Map<String, Value>, KustomizeError> {
        match self.get(k) {
            None => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(_) => Err(self.bad(k, "a mapping")),
        }
    }
}

fn list<'a>(v: Option<&'a Value>, file: &str, what: &str) -> Result<&'a [Value], KustomizeError> {
    match v {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(KustomizeError::invalid(
            file,
            format!("{what}: expected a list, got {other}"),
        )),
    }
}

/// The chart entries of a kustomization (`helmCharts`, then the converted legacy
/// `helmChartInflationGenerator` ones) and the globals that apply to them.
pub fn entries(k: &Value, file: &str) -> Result<(Globals, Vec<ChartEntry>), KustomizeError> {
    let mut out = Vec::new();
    for item in list(k.get("helmCharts"), file, "helmCharts")? {
        let f = Fields::new(item, CHART_FIELDS, file, "helmCharts")?;
        out.push(ChartEntry {
            name: f.string("name")?,
            version: f.string("version")?,
            repo: f.string("repo")?,
            release_name: f.string("releaseName")?,
            namespace: f.string("namespace")?,
            name_template: f.string("nameTemplate")?,
            values_file: f.string("valuesFile")?,
            additional_values_files: f.strings("additionalValuesFiles")?,
            values_inline: f.map("valuesInline")?,
            values_merge: f.string("valuesMerge")?,
            include_crds: f.boolean("includeCRDs")?,
            skip_hooks: f.boolean("skipHooks")?,
            skip_tests: f.boolean("skipTests")?,
            api_versions: f.strings("apiVersions")?,
            kube_version: f.string("kubeVersion")?,
            debug: f.boolean("debug")?,
        });
    }
    // kustomize converts the legacy field: only these keys carry over, and its chartHome /
    // helmHome become the globals when the kustomization has no `helmGlobals` at all.
    let mut legacy_home = String::new();
    for item in list(
        k.get("helmChartInflationGenerator"),
        file,
        "helmChartInflationGenerator",
    )? {
        let f = Fields::new(item, LEGACY_FIELDS, file, "helmChartInflationGenerator")?;
        f.strings("extraArgs")?;
        let home = f.string("chartHome")?;
        if !home.is_empty() {
            legacy_home = home;
        }
        out.push(ChartEntry {
            name: f.string("chartName")?,
            version: f.string("chartVersion")?,
            repo: f.string("chartRepoUrl")?,
            values_file: f.string("values")?,
            values_inline: f.map("valuesLocal")?,
            values_merge: f.string("valuesMerge")?,
            release_name: f.string("releaseName")?,
            ..ChartEntry::default()
        });
    }
    let globals = match k.get("helmGlobals") {
        Some(g) if !g.is_null() => {
            let f = Fields::new(g, GLOBAL_FIELDS, file, "helmGlobals")?;
            f.string("configHome")?;
            Globals {
                chart_home: f.string("chartHome")?,
            }
        }
        _ => Globals {
            chart_home: legacy_home,
        },
    };
    Ok((globals, out))
}

/// A path a kustomization names: relative only (Capstan refuses absolute paths, which would
/// reach outside the repository), and no remote reference.
fn relative<'a>(p: &'a str, file: &str, what: &str) -> Result<&'a str, KustomizeError> {
    if p.starts_with('/') || crate::repo_fs::looks_remote(p) {
        return Err(KustomizeError::invalid(
            file,
            format!(
                "{what} {p:?}: only paths inside the repository, relative to the kustomization, are allowed"
            ),
        ));
    }
    Ok(p)
}

impl ChartEntry {
    /// kustomize's `absChartHome`: the chart home, versioned when the chart comes from a
    /// repository at a given version.
    pub fn chart_home(
        &self,
        g: &Globals,
        dir: &RepoPath,
        file: &str,
    ) -> Result<RepoPath, KustomizeError> {
        let home = if g.chart_home.is_empty() {
            "charts"
        } else {
            relative(&g.chart_home, file, "helmGlobals.chartHome")?
        };
        let home = dir
            .join(home)
            .map_err(|e| KustomizeError::invalid(file, e))?;
        if !self.version.is_empty() && !self.repo.is_empty() {
            return home
                .join(&format!("{}-{}", self.name, self.version))
                .map_err(|e| KustomizeError::invalid(file, e));
        }
        Ok(home)
    }

    /// The chart's folder in the repository, when it is there (kustomize then never pulls).
    pub fn local_chart(
        &self,
        fs: &dyn RepoFs,
        g: &Globals,
        dir: &RepoPath,
        file: &str,
    ) -> Result<Option<RepoPath>, KustomizeError> {
        if self.name.is_empty() {
            return Err(KustomizeError::invalid(file, "chart name cannot be empty"));
        }
        relative(&self.name, file, "helmCharts name")?;
        let chart = self
            .chart_home(g, dir, file)?
            .join(&self.name)
            .map_err(|e| KustomizeError::invalid(file, e))?;
        Ok((fs.kind(&chart)? == Some(EntryKind::Dir)).then_some(chart))
    }

    /// The values files the build reads from the repository: `valuesFile` when given, and
    /// `additionalValuesFiles` (the default values file is inside the chart).
    pub fn named_values_files(&self) -> impl Iterator<Item = &String> {
        (!self.values_file.is_empty())
            .then_some(&self.values_file)
            .into_iter()
            .chain(&self.additional_values_files)
    }
}

/// Runs the chart entries of `k` and absorbs what they generate into `ra`.
pub fn run(ld: &mut Loader, k: &Kust, ra: &mut Vec<Res>) -> Result<(), KustomizeError> {
    let file = k.file_str();
    let (globals, charts) = entries(&k.v, &file)?;
    if charts.is_empty() {
        return Ok(());
    }
    let Some(helm) = ld.helm else {
        return Err(KustomizeError::Unavailable {
            tool: "helm".into(),
            reason: format!(
                "{file}: helmCharts need a helm binary (none on PATH and none configured)"
            ),
        });
    };
    for c in &charts {
        let req = request(ld, helm, k, &globals, c)?;
        let text = helm.template(ld.fs, &req)?;
        for mut r in ld.parse_resources(&text, &file)? {
            r.generated_by = Some("HelmChartInflationGenerator");
            absorb(ra, r, &file)?;
        }
    }
    Ok(())
}

fn request(
    ld: &mut Loader,
    helm: &dyn ChartRenderer,
    k: &Kust,
    g: &Globals,
    c: &ChartEntry,
) -> Result<TemplateRequest, KustomizeError> {
    let file = k.file_str();
    let bad =
        |e: argv::ArgError| KustomizeError::invalid(&file, format!("helmCharts {}: {e}", c.name));
    if c.debug {
        return Err(KustomizeError::unsupported("helmCharts debug", &file));
    }
    let local = c.local_chart(ld.fs, g, &k.dir, &file)?;
    // In kustomize's order: additional values files are loaded while the entry is configured,
    // before the merge option is checked.
    let mut additional = Vec::new();
    for f in &c.additional_values_files {
        let p = ld.join_file(
            &k.dir,
            relative(f, &file, "additionalValuesFiles")?,
            &k.file,
        )?;
        additional.push(ld.read(&p).map_err(|e| {
            KustomizeError::invalid(&file, format!("could not load additionalValuesFile: {e}"))
        })?);
    }
    let merge = match c.values_merge.as_str() {
        "" | "override" => "override",
        "merge" => "merge",
        "replace" => "replace",
        _ => {
            return Err(KustomizeError::invalid(
                &file,
                "valuesMerge must be one of [merge override replace]",
            ));
        }
    };
    let chart = match local {
        Some(dir) => ChartLocation::Local(dir),
        None if c.repo.is_empty() => {
            return Err(KustomizeError::invalid(
                &file,
                "no repo specified for pull, no chart found at ''",
            ));
        }
        None => ChartLocation::Remote {
            repo: c.repo.clone(),
            name: c.name.clone(),
            version: c.version.clone(),
        },
    };
    let needs_values_file = c.values_inline.is_empty() || merge != "replace";
    let values_text = if needs_values_file {
        Some(values_file(ld, helm, k, g, c, &chart)?)
    } else {
        None
    };
    let first = if c.values_inline.is_empty() {
        values_text.unwrap_or_default()
    } else {
        let inline = Value::Object(c.values_inline.clone());
        let merged = match values_text {
            None => inline,
            Some(text) => {
                let (chart_values, chart_nulls) = single_document(&text, &file)?;
                let inline_nulls = Default::default();
                let (mut dst, dst_nulls, src, src_nulls) = if merge == "override" {
                    (chart_values, chart_nulls, inline, inline_nulls)
                } else {
                    (inline, inline_nulls, chart_values, chart_nulls)
                };
                match patch_smp::apply(&mut dst, &dst_nulls, &src, &src_nulls) {
                    Ok(Some(_)) => dst,
                    Ok(None) => Value::Object(Map::new()),
                    Err(patch_smp::Failure::Unsupported(f)) => {
                        return Err(KustomizeError::unsupported(
                            format!("helm values: {f}"),
                            &file,
                        ));
                    }
                    Err(patch_smp::Failure::Invalid(m)) => {
                        return Err(KustomizeError::invalid(
                            &file,
                            format!("could not merge values: {m}"),
                        ));
                    }
                }
            }
        };
        // JSON is YAML, and it is what kustomize's YAML marshalling goes through anyway.
        serde_json::to_string(&merged).map_err(|e| KustomizeError::invalid(&file, e))?
    };
    let opt = |s: &str| (!s.is_empty()).then(|| s.to_string());
    let release_name = match opt(&c.release_name) {
        Some(r) => Some(argv::release_name(&r).map_err(bad)?.to_string()),
        None => None,
    };
    let namespace = match opt(&c.namespace) {
        Some(n) => Some(argv::namespace(&n).map_err(bad)?.to_string()),
        None => None,
    };
    let name_template = match opt(&c.name_template) {
        Some(t) if t.chars().any(char::is_control) => {
            return Err(KustomizeError::invalid(
                &file,
                "helmCharts nameTemplate: control characters are refused",
            ));
        }
        other => other,
    };
    let kube_version = match opt(&c.kube_version) {
        Some(v) => Some(kube_version(&v).ok_or_else(|| {
            KustomizeError::invalid(
                &file,
                format!(
                    "helmCharts {}: kubeVersion {v:?} is not a Kubernetes version",
                    c.name
                ),
            )
        })?),
        None => None,
    };
    let api_versions = c
        .api_versions
        .iter()
        .map(|v| argv::api_version(v).map(str::to_string).map_err(bad))
        .collect::<Result<Vec<_>, _>>()?;
    let mut values = vec![first];
    values.extend(additional);
    Ok(TemplateRequest {
        chart,
        release_name,
        namespace,
        name_template,
        values,
        api_versions,
        kube_version,
        include_crds: c.include_crds,
        skip_tests: c.skip_tests,
        skip_hooks: c.skip_hooks,
        file,
    })
}

/// The text of the entry's values file: `valuesFile` relative to the kustomization, else the
/// chart's own `values.yaml` (from the archive for a chart from a repository). Both must be in
/// or below the kustomization's folder, as kustomize's loader demands.
fn values_file(
    ld: &mut Loader,
    helm: &dyn ChartRenderer,
    k: &Kust,
    g: &Globals,
    c: &ChartEntry,
    chart: &ChartLocation,
) -> Result<String, KustomizeError> {
    let file = k.file_str();
    if !c.values_file.is_empty() {
        let rel = relative(&c.values_file, &file, "valuesFile")?;
        let p = ld.join_file(&k.dir, rel, &k.file)?;
        return ld.read(&p);
    }
    let home = c.chart_home(g, &k.dir, &file)?;
    let default = home
        .join(&format!("{}/values.yaml", c.name))
        .map_err(|e| KustomizeError::invalid(&file, e))?;
    match chart {
        ChartLocation::Local(_) => {
            let p = ld.join_file(&k.dir, &relative_to(&k.dir, &default), &k.file)?;
            ld.read(&p)
        }
        ChartLocation::Remote {
            repo,
            name,
            version,
        } => {
            if !default.starts_with(&k.dir) {
                return Err(KustomizeError::invalid(
                    &file,
                    format!("security; file '{default}' is not in or below '{}'", k.dir),
                ));
            }
            helm.remote_values(repo, name, version, &file)?
                .ok_or_else(|| {
                    KustomizeError::invalid(
                        &file,
                        format!("chart {name} {version} has no values.yaml"),
                    )
                })
        }
    }
}

/// `path` relative to `dir` when below it, else with `..` steps (for [`Loader::join_file`],
/// which then refuses it as kustomize's loader does).
fn relative_to(dir: &RepoPath, path: &RepoPath) -> String {
    let d: Vec<&str> = dir.as_str().split('/').filter(|s| !s.is_empty()).collect();
    let p: Vec<&str> = path.as_str().split('/').filter(|s| !s.is_empty()).collect();
    let common = d.iter().zip(&p).take_while(|(a, b)| a == b).count();
    let mut parts = vec![".."; d.len() - common];
    parts.extend(&p[common..]);
    parts.join("/")
}

fn single_document(
    text: &str,
    file: &str,
) -> Result<(Value, yaml_load::NullSpelling), KustomizeError> {
    let docs = yaml_load::parse_resource_documents(text, file)?;
    match docs.into_iter().next() {
        Some((v @ Value::Object(_), n)) => Ok((v, n)),
        // An empty values file is an empty map to kyaml.
        Some((Value::Null, _)) | None => Ok((Value::Object(Map::new()), Default::default())),
        Some(_) => Err(KustomizeError::invalid(
            file,
            "could not parse values file into rnode: not a mapping",
        )),
    }
}

/// A `--kube-version` as helm reads it: `[v]MAJOR.MINOR[.PATCH]` with an optional pre-release or
/// build suffix. kustomize passes it unchanged, so does Capstan, once it is known to be one.
fn kube_version(v: &str) -> Option<String> {
    let rest = v.strip_prefix('v').unwrap_or(v);
    let core = rest.split(['-', '+']).next().unwrap_or_default();
    let parts: Vec<&str> = core.split('.').collect();
    let ok = (2..=3).contains(&parts.len())
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && rest
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'+'));
    ok.then(|| v.to_string())
}
