//! Reading an ArgoCD `Application` object into an [`App`].

use indexmap::IndexMap;
use serde_json::Value;

use super::{App, AppSource, Destination, DiscoveryConfig, SourceStatus};
use crate::render::source::{
    DirectoryOptions, HelmOptions, JsonnetOptions, JsonnetVar, KustomizeOptions, RemoteChart,
};
use crate::render::{RenderSource, SourceKind, source::detect_kind};
use crate::repo_fs::{EntryKind, RepoFs, RepoPath};

fn s(v: &Value, key: &str) -> Option<String> {
    v.get(key)
        .and_then(Value::as_str)
        .map(str::to_string)
        .filter(|x| !x.is_empty())
}

fn string_map(v: Option<&Value>) -> IndexMap<String, String> {
    let mut out = IndexMap::new();
    if let Some(Value::Object(m)) = v {
        for (k, val) in m {
            let text = match val {
                Value::String(x) => x.clone(),
                other => other.to_string(),
            };
            out.insert(k.clone(), text);
        }
    }
    out
}

fn strings(v: Option<&Value>) -> Vec<String> {
    match v {
        Some(Value::Array(a)) => a
            .iter()
            .filter_map(|x| x.as_str().map(str::to_string))
            .collect(),
        _ => Vec::new(),
    }
}

/// Builds an [`App`] from an Application object (`value`) found in `file`.
pub fn parse_application(
    value: &Value,
    file: &RepoPath,
    fs: &dyn RepoFs,
    cfg: &DiscoveryConfig,
) -> Result<App, String> {
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .ok_or("Application without metadata.name")?
        .to_string();
    let spec = value.get("spec").cloned().unwrap_or(Value::Null);
    let dest = spec.get("destination").cloned().unwrap_or(Value::Null);
    let destination = Destination {
        server: s(&dest, "server"),
        name: s(&dest, "name"),
        namespace: s(&dest, "namespace"),
    };
    let raw_sources: Vec<Value> = match (spec.get("sources"), spec.get("source")) {
        (Some(Value::Array(list)), _) if !list.is_empty() => list.clone(),
        (_, Some(src)) => vec![src.clone()],
        _ => Vec::new(),
    };
    if raw_sources.is_empty() {
        return Err(format!(
            "Application {name}: no spec.source or spec.sources"
        ));
    }
    let project = s(&spec, "project").unwrap_or_else(|| "default".into());
    let mut sources: Vec<AppSource> = raw_sources
        .iter()
        .map(|src| parse_source(src, &name, &project, &destination, fs, cfg))
        .collect();
    resolve_value_refs(&mut sources, &raw_sources);
    Ok(App {
        name,
        namespace: value
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .map(str::to_string),
        project,
        destination,
        sources,
        defined_in: file.clone(),
        generated_by: None,
        parent: None,
        ignore_differences: match spec.get("ignoreDifferences") {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        },
        manifest: value.clone(),
    })
}

fn parse_source(
    src: &Value,
    app: &str,
    project: &str,
    dest: &Destination,
    fs: &dyn RepoFs,
    cfg: &DiscoveryConfig,
) -> AppSource {
    let repo_url = s(src, "repoURL").unwrap_or_default();
    let target_revision = s(src, "targetRevision").unwrap_or_else(|| "HEAD".into());
    let path = s(src, "path");
    let chart = s(src, "chart");
    let ref_name = s(src, "ref");
    let mut out = AppSource {
        repo_url: repo_url.clone(),
        target_revision: target_revision.clone(),
        path: path.clone(),
        chart: chart.clone(),
        ref_name,
        kind: None,
        status: SourceStatus::Local,
        render: None,
        watch: Vec::new(),
    };
    let skip = |out: &mut AppSource, reason: String| out.status = SourceStatus::NotRendered(reason);
    if let Some(chart) = &chart {
        // An HTTP repository, `oci://…`, or a bare `host/path` OCI registry: which one, and
        // whether it may be fetched at all, is the chart fetcher's call (operator settings).
        let mut opts = src.get("helm").map(helm_options).unwrap_or_default();
        opts.chart = Some(RemoteChart {
            repo_url: repo_url.clone(),
            name: chart.clone(),
            version: target_revision.clone(),
        });
        out.kind = Some("helm".into());
        out.render = Some(RenderSource {
            path: RepoPath::root(),
            kind: SourceKind::Helm(opts),
            namespace: dest.namespace.clone(),
            release_name: app.to_string(),
        });
        return out;
    }
    if !cfg.is_this_repo(&repo_url) {
        skip(
            &mut out,
            format!("repoURL {repo_url} is not this repository (configure an alias if it is)"),
        );
        return out;
    }
    if !cfg.is_default_revision(&target_revision) {
        skip(
            &mut out,
            format!(
                "targetRevision {target_revision} is not the default branch {}",
                cfg.default_branch
            ),
        );
        return out;
    }
    let Some(path) = path else {
        if out.ref_name.is_some() {
            skip(&mut out, "values-only source (ref)".into());
        } else {
            skip(&mut out, "source without a path".into());
        }
        return out;
    };
    let repo_path = match RepoPath::new(&path) {
        Ok(p) => p,
        Err(e) => {
            out.status = SourceStatus::Error(format!("source path {path}: {e}"));
            return out;
        }
    };
    match fs.kind(&repo_path) {
        Ok(Some(EntryKind::Dir)) => {}
        Ok(_) => {
            out.status = SourceStatus::Error(format!(
                "source path {path} is not a directory in the repository"
            ));
            return out;
        }
        Err(e) => {
            out.status = SourceStatus::Error(format!("source path {path}: {e}"));
            return out;
        }
    }
    let kind = if let Some(k) = src.get("kustomize") {
        SourceKind::Kustomize(kustomize_options(k))
    } else if let Some(h) = src.get("helm") {
        SourceKind::Helm(helm_options(h))
    } else if let Some(d) = src.get("directory") {
        let env = BuildEnv {
            app,
            namespace: dest.namespace.as_deref().unwrap_or(""),
            project,
            repo_url: &repo_url,
            path: &path,
            target_revision: &target_revision,
        };
        let jsonnet = match jsonnet_options(d.get("jsonnet"), &env) {
            Ok(j) => j,
            Err(reason) => {
                skip(&mut out, reason);
                out.watch.push(repo_path);
                return out;
            }
        };
        SourceKind::Directory(DirectoryOptions {
            recurse: d.get("recurse").and_then(Value::as_bool).unwrap_or(false),
            include: s(d, "include"),
            exclude: s(d, "exclude"),
            disable_extension_filter: d
                .get("disableExtensionFilter")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            jsonnet,
        })
    } else if src.get("plugin").is_some() {
        skip(&mut out, "config management plugins are not run".into());
        out.watch.push(repo_path);
        return out;
    } else {
        match detect_kind(fs, &repo_path) {
            Ok(k) => k,
            Err(e) => {
                out.status = SourceStatus::Error(format!("source path {path}: {e}"));
                return out;
            }
        }
    };
    out.kind = Some(kind.name().to_string());
    out.render = Some(RenderSource {
        path: repo_path,
        kind,
        namespace: dest.namespace.clone(),
        release_name: app.to_string(),
    });
    out
}

/// ArgoCD's build environment, substituted into Jsonnet ext vars and TLAs.
struct BuildEnv<'a> {
    app: &'a str,
    namespace: &'a str,
    project: &'a str,
    repo_url: &'a str,
    path: &'a str,
    target_revision: &'a str,
}

impl BuildEnv<'_> {
    /// `os.Expand` with ArgoCD's mapping: `$NAME` and `${NAME}` are replaced, `$$` is `$`, an
    /// unknown name is empty. The revision variables name the commit being rendered, which this
    /// layer does not know: they are refused rather than replaced by a wrong value.
    fn substitute(&self, s: &str) -> Result<String, String> {
        let lookup = |name: &str| -> Result<String, String> {
            Ok(match name {
                "$" => "$".into(),
                "ARGOCD_APP_NAME" => self.app.into(),
                "ARGOCD_APP_NAMESPACE" => self.namespace.into(),
                "ARGOCD_APP_PROJECT_NAME" => self.project.into(),
                "ARGOCD_APP_SOURCE_REPO_URL" => self.repo_url.into(),
                "ARGOCD_APP_SOURCE_PATH" => self.path.into(),
                "ARGOCD_APP_SOURCE_TARGET_REVISION" => self.target_revision.into(),
                "ARGOCD_APP_REVISION"
                | "ARGOCD_APP_REVISION_SHORT"
                | "ARGOCD_APP_REVISION_SHORT_8" => {
                    return Err(format!(
                        "directory.jsonnet uses ${name}, the commit being synced, which is not substituted"
                    ));
                }
                _ => String::new(),
            })
        };
        expand(s, lookup)
    }
}

/// Go's `os.Expand`.
fn expand(
    s: &str,
    mut lookup: impl FnMut(&str) -> Result<String, String>,
) -> Result<String, String> {
    let special = |c: u8| b"*#$@!?-0123456789".contains(&c);
    let b = s.as_bytes();
    let mut out = String::new();
    let (mut i, mut j) = (0, 0);
    while j < b.len() {
        if b[j] == b'$' && j + 1 < b.len() {
            out.push_str(&s[i..j]);
            let rest = &s[j + 1..];
            let rb = rest.as_bytes();
            // (name, bytes consumed after the '$')
            let (name, width) = if rb[0] == b'{' {
                if rb.len() > 2 && special(rb[1]) && rb[2] == b'}' {
                    (&rest[1..2], 3)
                } else {
                    match rest[1..].find('}') {
                        Some(0) => ("", 2),
                        Some(end) => (&rest[1..1 + end], end + 2),
                        None => ("", 1),
                    }
                }
            } else if special(rb[0]) {
                (&rest[0..1], 1)
            } else {
                let n = rb
                    .iter()
                    .take_while(|c| **c == b'_' || c.is_ascii_alphanumeric())
                    .count();
                (&rest[..n], n)
            };
            if name.is_empty() && width == 0 {
                out.push('$');
            } else if !name.is_empty() {
                out.push_str(&lookup(name)?);
            }
            j += width;
            i = j + 1;
        }
        j += 1;
    }
    out.push_str(&s[i.min(s.len())..]);
    Ok(out)
}

/// `directory.jsonnet` of an Application.
fn jsonnet_options(j: Option<&Value>, env: &BuildEnv<'_>) -> Result<JsonnetOptions, String> {
    let vars = |key: &str| -> Result<Vec<JsonnetVar>, String> {
        let mut out = Vec::new();
        if let Some(Value::Array(list)) = j.and_then(|j| j.get(key)) {
            for v in list {
                let name =
                    s(v, "name").ok_or(format!("directory.jsonnet.{key}: entry without a name"))?;
                let value = v.get("value").and_then(Value::as_str).unwrap_or_default();
                out.push(JsonnetVar {
                    name,
                    value: env.substitute(value)?,
                    code: v.get("code").and_then(Value::as_bool).unwrap_or(false),
                });
            }
        }
        Ok(out)
    };
    Ok(JsonnetOptions {
        ext_vars: vars("extVars")?,
        tlas: vars("tlas")?,
        libs: strings(j.and_then(|j| j.get("libs"))),
    })
}

fn kustomize_options(k: &Value) -> KustomizeOptions {
    const KNOWN: [&str; 9] = [
        "namePrefix",
        "nameSuffix",
        "namespace",
        "commonLabels",
        "commonAnnotations",
        "images",
        "replicas",
        "components",
        "patches",
    ];
    let mut o = KustomizeOptions {
        name_prefix: s(k, "namePrefix"),
        name_suffix: s(k, "nameSuffix"),
        namespace: s(k, "namespace"),
        common_labels: string_map(k.get("commonLabels")),
        common_annotations: string_map(k.get("commonAnnotations")),
        images: strings(k.get("images")),
        replicas: match k.get("replicas") {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        },
        components: strings(k.get("components")),
        patches: match k.get("patches") {
            Some(Value::Array(a)) => a.clone(),
            _ => Vec::new(),
        },
        unsupported: Vec::new(),
    };
    if let Value::Object(m) = k {
        for key in m.keys() {
            if !KNOWN.contains(&key.as_str()) && key != "version" {
                o.unsupported.push(key.clone());
            }
        }
    }
    o
}

fn helm_options(h: &Value) -> HelmOptions {
    let mut parameters = Vec::new();
    if let Some(Value::Array(ps)) = h.get("parameters") {
        for p in ps {
            if let (Some(n), Some(v)) = (s(p, "name"), p.get("value")) {
                let v = match v {
                    Value::String(x) => x.clone(),
                    other => other.to_string(),
                };
                let force = p
                    .get("forceString")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                parameters.push((n, v, force));
            }
        }
    }
    let mut file_parameters = Vec::new();
    if let Some(Value::Array(ps)) = h.get("fileParameters") {
        for p in ps {
            if let (Some(n), Some(path)) = (s(p, "name"), s(p, "path")) {
                file_parameters.push((n, path));
            }
        }
    }
    let flag = |key: &str| h.get(key).and_then(Value::as_bool).unwrap_or(false);
    HelmOptions {
        chart: None,
        value_files: strings(h.get("valueFiles")),
        // ArgoCD prefers `valuesObject` when both are set.
        values: h
            .get("valuesObject")
            .cloned()
            .filter(|v| !v.is_null())
            .or_else(|| h.get("values").cloned())
            .filter(|v| !v.is_null() && v.as_str() != Some("")),
        parameters,
        file_parameters,
        release_name: s(h, "releaseName"),
        namespace: s(h, "namespace"),
        skip_crds: flag("skipCrds"),
        skip_schema_validation: flag("skipSchemaValidation"),
        skip_tests: flag("skipTests"),
        ignore_missing_value_files: flag("ignoreMissingValueFiles"),
        kube_version: s(h, "kubeVersion"),
        api_versions: strings(h.get("apiVersions")),
    }
}

/// Multi-source apps name value files as `$ref/path`; rewrite them relative to the chart when the
/// referenced source is this repository, and refuse them otherwise.
fn resolve_value_refs(sources: &mut [AppSource], raw: &[Value]) {
    let refs: Vec<(String, bool)> = sources
        .iter()
        .filter_map(|s| {
            s.ref_name.clone().map(|r| {
                let local = matches!(s.status, SourceStatus::Local)
                    || matches!(&s.status, SourceStatus::NotRendered(m) if m.starts_with("values-only"));
                (r, local)
            })
        })
        .collect();
    for (src, raw) in sources.iter_mut().zip(raw) {
        // A chart from a helm repository reads value files from this repository: they count as
        // its inputs even when it is not rendered.
        if src.chart.is_some() {
            let files = raw.pointer("/helm/valueFiles").map(|v| strings(Some(v)));
            for vf in files.unwrap_or_default() {
                let Some((name, path)) = vf.strip_prefix('$').and_then(|r| r.split_once('/'))
                else {
                    continue;
                };
                if refs.iter().any(|(r, local)| r == name && *local)
                    && let Ok(p) = RepoPath::new(path)
                {
                    src.watch.push(p);
                }
            }
        }
        let Some(render) = &mut src.render else {
            continue;
        };
        let SourceKind::Helm(opts) = &mut render.kind else {
            continue;
        };
        let depth = render
            .path
            .as_str()
            .split('/')
            .filter(|c| !c.is_empty())
            .count();
        let mut problem = None;
        let paths = opts
            .value_files
            .iter_mut()
            .chain(opts.file_parameters.iter_mut().map(|(_, path)| path));
        let remote = opts.chart.as_ref().map(|c| c.name.clone());
        for vf in paths {
            let Some(rest) = vf.strip_prefix('$') else {
                if let Some(chart) = &remote {
                    // Relative to the fetched chart, which Capstan hands to helm unopened.
                    problem = Some(format!(
                        "value file {vf} is a file of the chart {chart}, which is not read"
                    ));
                }
                continue;
            };
            let (name, path) = rest.split_once('/').unwrap_or((rest, ""));
            match refs.iter().find(|(r, _)| r == name) {
                Some((_, true)) => *vf = format!("{}{}", "../".repeat(depth), path),
                _ => {
                    problem = Some(format!(
                        "value file {vf} refers to a source that is not rendered"
                    ))
                }
            }
        }
        if let Some(p) = problem {
            src.status = SourceStatus::NotRendered(p);
            src.render = None;
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn build_environment_is_substituted_as_go_os_expand_does() {
        let env = BuildEnv {
            app: "web",
            namespace: "ns",
            project: "team",
            repo_url: "https://example.com/r",
            path: "apps/web",
            target_revision: "main",
        };
        let sub = |s: &str| env.substitute(s).unwrap();
        assert_eq!(sub("$ARGOCD_APP_NAME"), "web");
        assert_eq!(sub("${ARGOCD_APP_NAMESPACE}-x"), "ns-x");
        assert_eq!(
            sub("$ARGOCD_APP_PROJECT_NAME/$ARGOCD_APP_SOURCE_PATH"),
            "team/apps/web"
        );
        assert_eq!(sub("$$ARGOCD_APP_NAME"), "$ARGOCD_APP_NAME");
        assert_eq!(sub("cost: 5$"), "cost: 5$");
        assert_eq!(sub("$UNKNOWN!"), "!");
        assert_eq!(sub("a${}b"), "ab");
        assert_eq!(sub("a${ARGOCD_APP_NAME"), "aARGOCD_APP_NAME");
        assert_eq!(sub("$-x $1y"), "x y");
        assert_eq!(sub("$ $"), "$ $");
        assert!(env.substitute("rev-$ARGOCD_APP_REVISION_SHORT").is_err());
    }
}
