//! ApplicationSet expansion for the generators that can be evaluated from the repository alone:
//! `list`, git `directories` and git `files`, `clusters` over the clusters the repository
//! declares ([`CLUSTER_FILES`]), and `matrix`/`merge` combinations of those (children that do
//! not read each other's parameters). Every other generator is recorded as unsupported, never
//! guessed.

use globset::{GlobBuilder, GlobMatcher};
use serde_json::{Map, Value};

use super::{App, Discovery, DiscoveryConfig, Unsupported, application};
use crate::render::inputs::tree_files;
use crate::repo_fs::{EntryKind, RepoFs, RepoPath};
use crate::yaml;

/// Where a repository declares the clusters ArgoCD manages, one file per cluster with `name`,
/// `server` and `labels`. ArgoCD evaluates a `clusters` generator against its cluster Secrets;
/// a repository that registers each cluster from its declaration (the Secret carries the same
/// name, server and labels) lets the generator be evaluated here. Without declarations the
/// generator stays unsupported.
pub const CLUSTER_FILES: &str = "argocd/clusters/*/cluster.yaml";

/// One parameter set, as nested JSON (goTemplate view); the flat view is derived from it.
type Params = Map<String, Value>;

/// Why a generator produced nothing.
#[derive(Debug)]
enum GenError {
    /// Not something discovery evaluates; recorded as unsupported.
    Unsupported(String),
    /// More apps than [`DiscoveryConfig::max_generated_apps`]: recorded as a limit reached, so
    /// the report says the set was not checked instead of passing it silently.
    OverLimit(String),
}

impl GenError {
    fn context(self, what: &str) -> GenError {
        match self {
            GenError::Unsupported(m) => GenError::Unsupported(format!("{what}: {m}")),
            GenError::OverLimit(m) => GenError::OverLimit(format!("{what}: {m}")),
        }
    }
}

impl From<String> for GenError {
    fn from(m: String) -> Self {
        GenError::Unsupported(m)
    }
}

impl From<&str> for GenError {
    fn from(m: &str) -> Self {
        GenError::Unsupported(m.to_string())
    }
}

/// Refuses `n` parameter sets when they are more than `max`.
fn within(n: usize, max: usize, what: &str) -> Result<(), GenError> {
    if n > max {
        return Err(GenError::OverLimit(format!(
            "{what} would generate {n} apps, more than {max}"
        )));
    }
    Ok(())
}

pub fn expand(
    doc: &Value,
    file: &RepoPath,
    fs: &dyn RepoFs,
    cfg: &DiscoveryConfig,
    d: &mut Discovery,
) -> Vec<App> {
    let set_name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("<unnamed>")
        .to_string();
    let mut unsupported = |what: String| {
        d.unsupported.push(Unsupported {
            file: file.clone(),
            object: format!("ApplicationSet {set_name}"),
            what,
        })
    };
    let spec = doc.get("spec").cloned().unwrap_or(Value::Null);
    let go = spec
        .get("goTemplate")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if spec.get("templatePatch").is_some() {
        unsupported("templatePatch".into());
        return Vec::new();
    }
    let Some(template) = spec.get("template") else {
        unsupported("no spec.template".into());
        return Vec::new();
    };
    let generators = match spec.get("generators") {
        Some(Value::Array(g)) => g.clone(),
        _ => Vec::new(),
    };
    let mut apps = Vec::new();
    let max = cfg.max_generated_apps;
    for g in &generators {
        let params = match generate(g, fs, cfg, max, go)
            .and_then(|p| within(apps.len() + p.len(), max, "the generators together").map(|()| p))
        {
            Ok(p) => p,
            Err(GenError::Unsupported(what)) => {
                unsupported(what);
                continue;
            }
            Err(GenError::OverLimit(what)) => {
                d.limits.push(crate::limits::not_checked(
                    "appset_max_apps",
                    max,
                    &format!(
                        "{file}: ApplicationSet {set_name}: {what}; none of its apps were checked"
                    ),
                ));
                return Vec::new();
            }
        };
        // A generator may carry its own template that overrides fields of the set's template.
        let tmpl = match g
            .as_object()
            .and_then(|m| m.values().next())
            .and_then(|v| v.get("template"))
        {
            Some(local) => merge(template.clone(), local.clone()),
            None => template.clone(),
        };
        for p in params {
            let rendered = match substitute(&tmpl, &p, go) {
                Ok(v) => v,
                Err(what) => {
                    unsupported(what);
                    break;
                }
            };
            let mut object = Map::new();
            object.insert("apiVersion".into(), "argoproj.io/v1alpha1".into());
            object.insert("kind".into(), "Application".into());
            if let Value::Object(m) = rendered {
                object.extend(m);
            }
            let object = Value::Object(object);
            match application::parse_application(&object, file, fs, cfg) {
                Ok(mut app) => {
                    app.generated_by = Some(set_name.clone());
                    apps.push(app);
                }
                Err(e) => d
                    .errors
                    .push(format!("{file}: ApplicationSet {set_name}: {e}")),
            }
        }
    }
    apps
}

fn merge(mut base: Value, over: Value) -> Value {
    match (&mut base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                let merged = match b.remove(&k) {
                    Some(existing) => merge(existing, v),
                    None => v,
                };
                b.insert(k, merged);
            }
            base
        }
        (_, o) => o,
    }
}

fn glob(pattern: &str) -> Result<GlobMatcher, String> {
    GlobBuilder::new(pattern)
        .literal_separator(true)
        .build()
        .map(|g| g.compile_matcher())
        .map_err(|e| format!("git generator path {pattern:?}: {e}"))
}

fn generate(
    g: &Value,
    fs: &dyn RepoFs,
    cfg: &DiscoveryConfig,
    max: usize,
    go: bool,
) -> Result<Vec<Params>, GenError> {
    let (kind, body) = g
        .as_object()
        .and_then(|m| m.iter().find(|(k, _)| k.as_str() != "selector"))
        .ok_or("empty generator")?;
    match kind.as_str() {
        "list" => {
            if body.get("elementsYaml").is_some() {
                return Err("list generator with elementsYaml".into());
            }
            let elements = match body.get("elements") {
                Some(Value::Array(e)) => e.clone(),
                _ => Vec::new(),
            };
            within(elements.len(), max, "list generator")?;
            Ok(elements
                .into_iter()
                .filter_map(|e| match e {
                    Value::Object(m) => Some(m),
                    _ => None,
                })
                .collect())
        }
        "git" => {
            let out = git_generator(body, fs, cfg)?;
            within(out.len(), max, "git generator")?;
            Ok(out)
        }
        "clusters" => {
            let out = clusters_generator(body, fs)?;
            within(out.len(), max, "clusters generator")?;
            Ok(out)
        }
        "matrix" | "merge" => {
            let children = match body.get("generators") {
                Some(Value::Array(c)) if c.len() >= 2 => c,
                _ => {
                    return Err(GenError::Unsupported(format!(
                        "{kind} generator without two child generators"
                    )));
                }
            };
            // Children that read the other child's parameters need ArgoCD's two-pass evaluation.
            if children.iter().any(|c| c.to_string().contains("{{")) {
                return Err(GenError::Unsupported(format!(
                    "{kind} generator with parameterised child generators"
                )));
            }
            let mut sets = Vec::new();
            for c in children {
                sets.push(
                    generate(c, fs, cfg, max, go)
                        .map_err(|e| e.context(&format!("{kind} generator")))?,
                );
            }
            if kind == "matrix" {
                // Checked before building: nested matrices multiply, so the product is refused
                // before a single parameter set of it is allocated.
                let product = sets
                    .iter()
                    .try_fold(1usize, |n, s| n.checked_mul(s.len()))
                    .unwrap_or(usize::MAX);
                within(product, max, "matrix generator")?;
                let mut acc: Vec<Params> = vec![Map::new()];
                for set in sets {
                    let mut next = Vec::new();
                    for a in &acc {
                        for b in &set {
                            next.push(matrix_combine(a, b, go).map_err(|key| {
                                GenError::Unsupported(format!(
                                    "matrix generator: parameter {key} differs between its child generators"
                                ))
                            })?);
                        }
                    }
                    acc = next;
                }
                Ok(acc)
            } else {
                let keys: Vec<String> = match body.get("mergeKeys") {
                    Some(Value::Array(k)) => k
                        .iter()
                        .filter_map(Value::as_str)
                        .map(str::to_string)
                        .collect(),
                    _ => return Err("merge generator without mergeKeys".into()),
                };
                let mut sets = sets.into_iter();
                let mut base = sets.next().unwrap_or_default();
                for set in sets {
                    for p in set {
                        let pf = flat(&p);
                        for b in base.iter_mut() {
                            let bf = flat(b);
                            if keys
                                .iter()
                                .all(|k| bf.get(k).is_some() && bf.get(k) == pf.get(k))
                            {
                                b.extend(p.clone());
                            }
                        }
                    }
                }
                Ok(base)
            }
        }
        other => Err(GenError::Unsupported(format!("{other} generator"))),
    }
}

/// One matrix parameter set from an earlier child's `a` and a later child's `b`, as ArgoCD
/// combines them. goTemplate: the earlier child's value of a shared parameter wins unless it is
/// empty, and maps are merged key by key the same way (mergo without override). fasttemplate:
/// a parameter both produce with different values is refused (`Err` names it), as ArgoCD
/// refuses the whole set.
fn matrix_combine(a: &Params, b: &Params, go: bool) -> Result<Params, String> {
    if !go {
        let (fa, fb) = (flat(a), flat(b));
        if let Some(key) = fb
            .iter()
            .find(|(k, v)| fa.get(*k).is_some_and(|x| x != *v))
            .map(|(k, _)| k.clone())
        {
            return Err(key);
        }
    }
    let mut out = a.clone();
    fill(&mut out, b);
    Ok(out)
}

/// Adds `from`'s entries that `into` lacks or holds empty; shared maps are filled recursively.
fn fill(into: &mut Map<String, Value>, from: &Map<String, Value>) {
    for (k, v) in from {
        match (into.get_mut(k), v) {
            (Some(Value::Object(mine)), Value::Object(theirs)) if !mine.is_empty() => {
                fill(mine, theirs);
            }
            (Some(mine), _) if !is_empty(mine) => {}
            _ => {
                into.insert(k.clone(), v.clone());
            }
        }
    }
}

/// Go's zero values, which mergo treats as absent.
fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty(),
        Value::Array(a) => a.is_empty(),
        Value::Object(m) => m.is_empty(),
    }
}

fn path_params(dir: &RepoPath, file: Option<&RepoPath>) -> Params {
    let segments: Vec<Value> = dir
        .as_str()
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| Value::String(s.to_string()))
        .collect();
    let basename = dir.file_name().to_string();
    let mut p = Map::new();
    p.insert("path".into(), Value::String(dir.as_str().to_string()));
    p.insert("basename".into(), Value::String(basename.clone()));
    p.insert(
        "basenameNormalized".into(),
        Value::String(normalize(&basename)),
    );
    p.insert("segments".into(), Value::Array(segments));
    if let Some(f) = file {
        let name = f.file_name().to_string();
        p.insert("filename".into(), Value::String(name.clone()));
        p.insert("filenameNormalized".into(), Value::String(normalize(&name)));
    }
    let mut out = Map::new();
    out.insert("path".into(), Value::Object(p));
    out
}

/// ArgoCD's "normalized" form: DNS-label friendly.
fn normalize(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '.' {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect()
}

fn git_generator(
    body: &Value,
    fs: &dyn RepoFs,
    cfg: &DiscoveryConfig,
) -> Result<Vec<Params>, String> {
    let repo_url = body.get("repoURL").and_then(Value::as_str).unwrap_or("");
    if !cfg.is_this_repo(repo_url) {
        return Err(format!("git generator on another repository ({repo_url})"));
    }
    let revision = body
        .get("revision")
        .and_then(Value::as_str)
        .unwrap_or("HEAD");
    if !cfg.is_default_revision(revision) {
        return Err(format!(
            "git generator at revision {revision}, not the default branch"
        ));
    }
    let all = tree_files(fs, &RepoPath::root()).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    if let Some(Value::Array(dirs)) = body.get("directories") {
        let mut include = Vec::new();
        let mut exclude = Vec::new();
        for d in dirs {
            let pattern = d.get("path").and_then(Value::as_str).unwrap_or("");
            let m = glob(pattern)?;
            if d.get("exclude").and_then(Value::as_bool).unwrap_or(false) {
                exclude.push(m);
            } else {
                include.push(m);
            }
        }
        let mut seen = std::collections::BTreeSet::new();
        for f in &all {
            // Every ancestor directory of every file is a candidate directory.
            let mut dir = f.parent();
            while !dir.is_root() {
                if seen.insert(dir.clone())
                    && include.iter().any(|g| g.is_match(dir.as_str()))
                    && !exclude.iter().any(|g| g.is_match(dir.as_str()))
                    && fs.kind(&dir).ok().flatten() == Some(EntryKind::Dir)
                {
                    out.push(path_params(&dir, None));
                }
                dir = dir.parent();
            }
        }
        out.sort_by(|a, b| a["path"]["path"].as_str().cmp(&b["path"]["path"].as_str()));
    }
    if let Some(Value::Array(files)) = body.get("files") {
        for f in files {
            let pattern = f.get("path").and_then(Value::as_str).unwrap_or("");
            let m = glob(pattern)?;
            for file in all.iter().filter(|p| m.is_match(p.as_str())) {
                let text = fs.read_to_string(file).map_err(|e| e.to_string())?;
                let docs =
                    yaml::parse_documents(&text, file.as_str()).map_err(|e| e.to_string())?;
                for doc in docs {
                    let items = match doc {
                        Value::Array(a) => a,
                        other => vec![other],
                    };
                    for item in items {
                        let Value::Object(mut m) = item else { continue };
                        m.extend(path_params(&file.parent(), Some(file)));
                        out.push(m);
                    }
                }
            }
        }
    }
    Ok(out)
}

/// A declared cluster, as [`CLUSTER_FILES`] holds it.
#[derive(Clone, Debug, PartialEq)]
pub struct DeclaredCluster {
    pub name: String,
    pub server: String,
    pub labels: Map<String, Value>,
}

/// Every cluster the repository declares, sorted by name. A malformed declaration is an error:
/// skipping it would silently drop that cluster's apps.
pub fn declared_clusters(fs: &dyn RepoFs) -> Result<Vec<DeclaredCluster>, String> {
    let m = glob(CLUSTER_FILES)?;
    let mut out = Vec::new();
    for file in tree_files(fs, &RepoPath::root())
        .map_err(|e| e.to_string())?
        .iter()
        .filter(|p| m.is_match(p.as_str()))
    {
        let text = fs.read_to_string(file).map_err(|e| e.to_string())?;
        let doc = yaml::parse_documents(&text, file.as_str())
            .map_err(|e| e.to_string())?
            .into_iter()
            .next()
            .unwrap_or(Value::Null);
        let field = |k: &str| {
            doc.get(k)
                .and_then(Value::as_str)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
                .ok_or_else(|| format!("{file}: cluster declaration without `{k}`"))
        };
        let labels = match doc.get("labels") {
            None => Map::new(),
            Some(Value::Object(l)) if l.values().all(Value::is_string) => l.clone(),
            Some(_) => return Err(format!("{file}: `labels` must map names to strings")),
        };
        out.push(DeclaredCluster {
            name: field("name")?,
            server: field("server")?,
            labels,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// ArgoCD's cluster generator over the declared clusters: `selector.matchLabels` filters,
/// `values` are added under `values`. `matchExpressions` is not evaluated.
fn clusters_generator(body: &Value, fs: &dyn RepoFs) -> Result<Vec<Params>, String> {
    let selector = body.get("selector").cloned().unwrap_or(Value::Null);
    if selector.get("matchExpressions").is_some() {
        return Err("clusters generator with selector.matchExpressions".into());
    }
    let want = selector
        .get("matchLabels")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let clusters = declared_clusters(fs)?;
    if clusters.is_empty() {
        return Err(format!(
            "clusters generator, and no cluster is declared in {CLUSTER_FILES}"
        ));
    }
    let values = body
        .get("values")
        .cloned()
        .unwrap_or(Value::Object(Map::new()));
    Ok(clusters
        .into_iter()
        .filter(|c| want.iter().all(|(k, v)| c.labels.get(k) == Some(v)))
        .map(|c| {
            let mut p = Map::new();
            p.insert("nameNormalized".into(), Value::String(normalize(&c.name)));
            p.insert("name".into(), Value::String(c.name));
            p.insert("server".into(), Value::String(c.server));
            p.insert(
                "metadata".into(),
                serde_json::json!({"labels": c.labels, "annotations": {}}),
            );
            p.insert("values".into(), values.clone());
            p
        })
        .collect())
}

/// The flat parameter names of fasttemplate mode: `path`, `path.basename`, `path[0]`, `a.b`.
fn flat(p: &Params) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in p {
        if k == "path"
            && let Value::Object(pm) = v
        {
            for (pk, pv) in pm {
                match (pk.as_str(), pv) {
                    ("path", v) => {
                        out.insert("path".into(), v.clone());
                    }
                    ("segments", Value::Array(segs)) => {
                        for (i, s) in segs.iter().enumerate() {
                            out.insert(format!("path[{i}]"), s.clone());
                        }
                    }
                    (other, v) => {
                        out.insert(format!("path.{other}"), v.clone());
                    }
                }
            }
            continue;
        }
        flatten_into(&mut out, k, v);
    }
    out
}

fn flatten_into(out: &mut Map<String, Value>, prefix: &str, v: &Value) {
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                flatten_into(out, &format!("{prefix}.{k}"), v);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn substitute(tmpl: &Value, p: &Params, go: bool) -> Result<Value, String> {
    let flat = flat(p);
    walk(tmpl, &|s| {
        if go {
            go_template(s, p)
        } else {
            Ok(fast_template(s, &flat))
        }
    })
}

fn walk(v: &Value, f: &dyn Fn(&str) -> Result<String, String>) -> Result<Value, String> {
    Ok(match v {
        Value::String(s) => Value::String(f(s)?),
        Value::Array(a) => Value::Array(a.iter().map(|x| walk(x, f)).collect::<Result<_, _>>()?),
        Value::Object(m) => {
            let mut out = Map::new();
            for (k, v) in m {
                out.insert(f(k)?, walk(v, f)?);
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

/// `{{name}}` and `{{ name }}`; unknown names are left as written, as ArgoCD does.
fn fast_template(s: &str, flat: &Map<String, Value>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        match after.find("}}") {
            Some(end) => {
                let key = after[..end].trim();
                match flat.get(key) {
                    Some(v) => out.push_str(&scalar(v)),
                    None => out.push_str(&rest[start..start + 2 + end + 2]),
                }
                rest = &after[end + 2..];
            }
            None => {
                out.push_str(&rest[start..]);
                rest = "";
            }
        }
    }
    out.push_str(rest);
    out
}

/// The subset of Go templates ApplicationSets mostly use: `{{ .a.b }}`,
/// `{{ index .path.segments N }}`, and pipelines through a few sprig functions (`toYaml`, `toJson`,
/// `lower`, `upper`, `quote`, `trim`). Anything else is reported as unsupported. Missing keys are
/// errors, as with `missingkey=error`.
fn go_template(s: &str, p: &Params) -> Result<String, String> {
    let root = Value::Object(p.clone());
    let mut out = String::new();
    let mut rest = s;
    while let Some(start) = rest.find("{{") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("unterminated template expression in {s:?}"))?;
        let expr = after[..end]
            .trim()
            .trim_start_matches('-')
            .trim_end_matches('-')
            .trim();
        let value = go_pipeline(expr, &root)?;
        out.push_str(&scalar(&value));
        rest = &after[end + 2..];
    }
    out.push_str(rest);
    Ok(out)
}

fn go_lookup(root: &Value, path: &str) -> Option<Value> {
    let mut cur = root;
    for part in path.trim_start_matches('.').split('.') {
        if part.is_empty() {
            continue;
        }
        cur = cur.get(part)?;
    }
    Some(cur.clone())
}

fn go_pipeline(expr: &str, root: &Value) -> Result<Value, String> {
    let unsupported = || format!("template expression {{{{{expr}}}}} is not supported");
    let missing = |what: &str| format!("template expression {{{{{expr}}}}}: no parameter {what}");
    let mut value: Option<Value> = None;
    for stage in expr.split('|').map(str::trim) {
        let words: Vec<&str> = stage.split_whitespace().collect();
        let arg = |w: &str| -> Result<Value, String> {
            if w.starts_with('.') {
                go_lookup(root, w).ok_or_else(|| missing(w))
            } else if let Some(lit) = w.strip_prefix('"').and_then(|x| x.strip_suffix('"')) {
                Ok(Value::String(lit.to_string()))
            } else {
                Err(unsupported())
            }
        };
        // The previous stage's value is the last argument of this one.
        let mut args: Vec<Value> = Vec::new();
        let (func, rest) = match words.split_first() {
            Some((f, rest)) if !f.starts_with('.') && !f.starts_with('"') => (Some(*f), rest),
            _ => (None, &words[..]),
        };
        if func == Some("index") {
            let [base, keys @ ..] = rest else {
                return Err(unsupported());
            };
            let mut cur = arg(base)?;
            for k in keys {
                cur = match k.parse::<usize>() {
                    Ok(i) => cur.get(i).cloned(),
                    Err(_) => cur.get(k.trim_matches('"')).cloned(),
                }
                .ok_or_else(|| missing(k))?;
            }
            value = Some(cur);
            continue;
        }
        for w in rest {
            args.push(arg(w)?);
        }
        if let Some(prev) = value.take() {
            args.push(prev);
        }
        value = Some(match (func, args.as_slice()) {
            (None, [v]) => v.clone(),
            (Some("toYaml"), [v]) => Value::String(
                yaml_serde::to_string(v)
                    .map_err(|e| e.to_string())?
                    .trim_end_matches('\n')
                    .to_string(),
            ),
            (Some("toJson"), [v]) => Value::String(v.to_string()),
            (Some("lower"), [v]) => Value::String(scalar(v).to_lowercase()),
            (Some("upper"), [v]) => Value::String(scalar(v).to_uppercase()),
            (Some("trim"), [v]) => Value::String(scalar(v).trim().to_string()),
            (Some("quote"), [v]) => Value::String(format!("{:?}", scalar(v))),
            _ => return Err(unsupported()),
        });
    }
    value.ok_or_else(unsupported)
}
