//! Reading kustomizations and accumulating their resources, in kustomize's order.

use std::collections::BTreeSet;

use serde_json::Value;

use super::resource::{Behavior, Res};
use super::{KustomizeError, generators, yaml_load};
use crate::repo_fs::{EntryKind, RepoFs, RepoPath};

const KUSTOMIZATION_FILES: [&str; 3] = ["kustomization.yaml", "kustomization.yml", "Kustomization"];

/// Fields this engine implements; anything else in a kustomization is reported as unsupported.
const KNOWN_FIELDS: &[&str] = &[
    "apiVersion",
    "kind",
    "metadata",
    "resources",
    "bases",
    "components",
    "namespace",
    "namePrefix",
    "nameSuffix",
    "commonLabels",
    "labels",
    "commonAnnotations",
    "images",
    "replicas",
    "patches",
    "patchesStrategicMerge",
    "patchesJson6902",
    "configMapGenerator",
    "secretGenerator",
    "generatorOptions",
    "replacements",
    "sortOptions",
    "vars",
    "buildMetadata",
    "configurations",
    "transformers",
    "generators",
    "helmCharts",
    "helmChartInflationGenerator",
    "helmGlobals",
];

pub struct Loader<'a> {
    pub fs: &'a dyn RepoFs,
    pub inputs: BTreeSet<RepoPath>,
    depth: usize,
    /// Kustomizations accumulated so far; bounds diamond-shaped trees that re-include bases.
    visits: usize,
    vars: Vec<super::vars::Var>,
    /// Extra field specs from `configurations:` of the accumulation being built.
    pub config: super::config::TransformerConfig,
    /// The helm `helmCharts` are inflated with; `None` makes them "not checked".
    pub helm: Option<&'a dyn super::ChartRenderer>,
}

/// More kustomization visits than this in one build is refused (a tree that includes its bases
/// over and over would otherwise take exponential time).
const MAX_VISITS: usize = 10_000;

/// One kustomization file, parsed.
pub struct Kust {
    pub dir: RepoPath,
    pub file: RepoPath,
    pub v: Value,
}

/// A map of strings (`commonLabels`, label pairs): every value must be a scalar.
pub fn string_map(
    v: Option<&Value>,
    file: &RepoPath,
    what: &str,
) -> Result<Vec<(String, String)>, KustomizeError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Object(m)) => m
            .iter()
            .map(|(a, b)| match b {
                Value::String(s) => Ok((a.clone(), s.clone())),
                other => Err(KustomizeError::invalid(
                    file,
                    format!("{what}: value of {a} is not a string: {other}"),
                )),
            })
            .collect(),
        Some(other) => Err(KustomizeError::invalid(
            file,
            format!("{what}: expected a map, got {other}"),
        )),
    }
}

impl Kust {
    pub fn field(&self, name: &str) -> Option<&Value> {
        self.v.get(name).filter(|v| !v.is_null())
    }
    pub fn file_str(&self) -> String {
        self.file.to_string()
    }
    /// A list of strings (`resources`, `components`, ...).
    pub fn str_list(&self, name: &str) -> Result<Vec<String>, KustomizeError> {
        match self.field(name) {
            None => Ok(Vec::new()),
            Some(Value::Array(items)) => items
                .iter()
                .map(|i| match i {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(KustomizeError::invalid(
                        self.file_str(),
                        format!("{name}: expected a list of strings, got {other}"),
                    )),
                })
                .collect(),
            Some(other) => Err(KustomizeError::invalid(
                self.file_str(),
                format!("{name}: expected a list, got {other}"),
            )),
        }
    }
    pub fn str_field(&self, name: &str) -> Result<Option<String>, KustomizeError> {
        match self.field(name) {
            None => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(KustomizeError::invalid(
                self.file_str(),
                format!("{name}: expected a string, got {other}"),
            )),
        }
    }
}

impl<'a> Loader<'a> {
    pub fn new(fs: &'a dyn RepoFs) -> Self {
        Loader {
            fs,
            inputs: BTreeSet::new(),
            depth: 0,
            visits: 0,
            vars: Vec::new(),
            config: Default::default(),
            helm: None,
        }
    }

    pub fn read(&mut self, path: &RepoPath) -> Result<String, KustomizeError> {
        let text = self.fs.read_to_string(path)?;
        self.inputs.insert(path.clone());
        Ok(text)
    }

    /// Resolves `rel` against `dir`, refusing remote references and escapes.
    pub fn join(
        &self,
        dir: &RepoPath,
        rel: &str,
        file: &RepoPath,
    ) -> Result<RepoPath, KustomizeError> {
        dir.join(rel).map_err(|e| match e {
            // Remote bases are refused by policy (the sandbox), not a missing feature.
            remote @ crate::repo_fs::FsError::Remote(_) => KustomizeError::invalid(file, remote),
            other => KustomizeError::invalid(file, other),
        })
    }

    /// Like [`Self::join`] for a file (resource, patch, generator source, replacement): kustomize's
    /// default load restrictor refuses files outside the kustomization's directory, while
    /// directories (bases, components) may be anywhere.
    pub fn join_file(
        &self,
        dir: &RepoPath,
        rel: &str,
        file: &RepoPath,
    ) -> Result<RepoPath, KustomizeError> {
        let path = self.join(dir, rel, file)?;
        let outside = || {
            KustomizeError::invalid(
                file,
                format!("security; file '{path}' is not in or below '{dir}'"),
            )
        };
        if !path.starts_with(dir) {
            return Err(outside());
        }
        // The restriction is on where the file really is: a symlink to a file outside the
        // kustomization's directory is refused too (both sides with their symlinks followed).
        if let (Some(real), Some(real_dir)) = (self.fs.real_path(&path)?, self.fs.real_path(dir)?)
            && !real.parent().starts_with(&real_dir)
        {
            return Err(outside());
        }
        Ok(path)
    }

    pub fn load_kustomization(&mut self, dir: &RepoPath) -> Result<Kust, KustomizeError> {
        let mut found = Vec::new();
        for name in KUSTOMIZATION_FILES {
            let p = dir.join(name)?;
            if self.fs.kind(&p)? == Some(EntryKind::File) {
                found.push(p);
            }
        }
        let file = match found.len() {
            0 => {
                return Err(KustomizeError::invalid(
                    dir,
                    "unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory",
                ));
            }
            1 => found.remove(0),
            _ => {
                return Err(KustomizeError::invalid(
                    dir,
                    "Found multiple kustomization files",
                ));
            }
        };
        let text = self.read(&file)?;
        let v = yaml_load::parse_kustomization(&text, &file.to_string())?;
        let v = match v {
            Value::Null => Value::Object(Default::default()),
            Value::Object(_) => v,
            _ => {
                return Err(KustomizeError::invalid(
                    &file,
                    "kustomization is not a mapping",
                ));
            }
        };
        if v.as_object()
            .is_some_and(|o| o.keys().all(|k| k == "apiVersion" || k == "kind"))
        {
            return Err(KustomizeError::invalid(
                &file,
                "kustomization.yaml is empty",
            ));
        }
        if let Some(obj) = v.as_object() {
            for k in obj.keys() {
                if !KNOWN_FIELDS.contains(&k.as_str()) {
                    let file_s = file.to_string();
                    return Err(match k.as_str() {
                        "crds" | "openapi" | "validators" | "buildMetadata" | "imageTags"
                        | "commonLabel" => KustomizeError::unsupported(k, file_s),
                        _ => KustomizeError::invalid(
                            file_s,
                            format!("invalid Kustomization: json: unknown field \"{k}\""),
                        ),
                    });
                }
            }
        }
        Ok(Kust {
            dir: dir.clone(),
            file,
            v,
        })
    }

    /// `kustomize build dir`.
    pub fn build_root(&mut self, dir: &RepoPath) -> Result<Vec<Res>, KustomizeError> {
        // A Component built directly is accumulated like a Kustomization, as kustomize does.
        let kust = self.load_kustomization(dir)?;
        let mut ra = Vec::new();
        self.accumulate(&kust, &mut ra)?;
        generators::add_hashes(&mut ra)?;
        super::nameref::fix(&mut ra, &kust.file_str(), &self.config)?;
        super::vars::resolve(&self.vars, &mut ra, &self.config)?;
        ra.retain(|r| {
            r.v.pointer("/metadata/annotations/config.kubernetes.io~1local-config")
                .and_then(Value::as_str)
                != Some("true")
        });
        build_metadata(&kust, &mut ra)?;
        super::order::sort(&kust, &mut ra)?;
        for r in &mut ra {
            strip_internal(&mut r.v);
        }
        Ok(ra)
    }

    fn accumulate(&mut self, k: &Kust, ra: &mut Vec<Res>) -> Result<(), KustomizeError> {
        self.depth += 1;
        self.visits += 1;
        if self.visits > MAX_VISITS {
            return Err(KustomizeError::invalid(
                &k.file,
                format!("more than {MAX_VISITS} kustomizations in one build"),
            ));
        }
        if self.depth > 64 {
            return Err(KustomizeError::invalid(
                &k.file,
                "kustomizations nest too deeply (cycle?)",
            ));
        }
        let mut entries = k.str_list("resources")?;
        entries.extend(k.str_list("bases")?);
        for entry in entries {
            let path = self.join(&k.dir, &entry, &k.file)?;
            match self.fs.kind(&path)? {
                Some(EntryKind::Dir) => {
                    let sub = self.load_kustomization(&path)?;
                    if sub.v.get("kind").and_then(Value::as_str) == Some("Component") {
                        return Err(KustomizeError::invalid(
                            &sub.file,
                            format!(
                                "expected kind 'Kustomization' for path '{path}' but got 'Component'"
                            ),
                        ));
                    }
                    let mut sub_ra = Vec::new();
                    // A base is accumulated with its own configuration, which then joins ours.
                    let ours = std::mem::take(&mut self.config);
                    self.accumulate(&sub, &mut sub_ra)?;
                    let theirs = std::mem::replace(&mut self.config, ours);
                    self.config.merge(&theirs);
                    for r in sub_ra {
                        append(ra, r, &k.file)?;
                    }
                }
                Some(EntryKind::File) => {
                    let path = self.join_file(&k.dir, &entry, &k.file)?;
                    for r in self.load_resources(&path)? {
                        append(ra, r, &k.file)?;
                    }
                }
                None => {
                    return Err(KustomizeError::invalid(
                        &k.file,
                        format!("accumulating resources: '{path}' does not exist"),
                    ));
                }
            }
        }
        super::plugins::merge_configurations(self, k)?;
        generators::run(self, k, ra)?;
        super::helm_charts::run(self, k, ra)?;
        super::plugins::run_generators(self, k, ra)?;
        for entry in k.str_list("components")? {
            let path = self.join(&k.dir, &entry, &k.file)?;
            if self.fs.kind(&path)? != Some(EntryKind::Dir) {
                return Err(KustomizeError::invalid(
                    &k.file,
                    format!("component '{path}' is not a directory"),
                ));
            }
            let sub = self.load_kustomization(&path)?;
            if sub.v.get("kind").and_then(Value::as_str) != Some("Component") {
                return Err(KustomizeError::invalid(
                    &sub.file,
                    format!("expected kind 'Component' for path '{path}'"),
                ));
            }
            self.accumulate(&sub, ra)?;
        }
        super::patches::run_strategic_merge_legacy(self, k, ra)?;
        super::patches::run_patches(self, k, ra)?;
        super::namespace::run(k, ra, &self.config)?;
        super::prefix_suffix::run(k, ra, &self.config)?;
        super::labels::run(k, ra, &self.config)?;
        super::labels::run_annotations(k, ra, &self.config)?;
        super::patches::run_json6902_legacy(self, k, ra)?;
        super::replicas::run(k, ra, &self.config)?;
        super::images::run(k, ra, &self.config)?;
        super::replacements::run(self, k, ra)?;
        super::plugins::run_transformers(self, k, ra)?;
        super::vars::collect(k.field("vars"), &k.file_str(), &mut self.vars)?;
        self.depth -= 1;
        Ok(())
    }

    /// Every object in one resource file (`List` kinds expanded).
    pub fn load_resources(&mut self, path: &RepoPath) -> Result<Vec<Res>, KustomizeError> {
        let text = self.read(path)?;
        self.parse_resources(&text, &path.to_string())
    }

    /// The objects a kustomization in `dir` produces before any top-level step (hashes, name
    /// references, vars), built apart from the current accumulation: its configuration and
    /// vars do not join ours (kustomize's loading of plugin configs from a directory).
    pub fn accumulate_apart(&mut self, dir: &RepoPath) -> Result<Vec<Res>, KustomizeError> {
        let sub = self.load_kustomization(dir)?;
        let saved_cfg = std::mem::take(&mut self.config);
        let saved_vars = std::mem::take(&mut self.vars);
        let mut ra = Vec::new();
        let res = self.accumulate(&sub, &mut ra);
        self.config = saved_cfg;
        self.vars = saved_vars;
        res.map(|()| ra)
    }

    /// Every object in one YAML text (`List` kinds expanded).
    pub fn parse_resources(&self, text: &str, file: &str) -> Result<Vec<Res>, KustomizeError> {
        let mut out = Vec::new();
        for (doc, nulls) in yaml_load::parse_resource_documents(text, file)? {
            let Value::Object(obj) = &doc else {
                return Err(KustomizeError::invalid(file, "document is not a mapping"));
            };
            // A `kind: Kustomization` document (a Flux Kustomization, even a kustomize one) is
            // an ordinary object to kustomize when it is listed as a resource file.
            let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
            if kind.ends_with("List")
                && let Some(Value::Array(items)) = obj.get("items")
            {
                for (i, item) in items.iter().enumerate() {
                    let mut r = check_object(item.clone(), file)?;
                    r.nulls = nulls.below(&format!("/items/{i}"));
                    out.push(r);
                }
                continue;
            }
            let mut r = check_object(doc, file)?;
            r.nulls = nulls;
            out.push(r);
        }
        Ok(out)
    }
}

fn check_object(v: Value, file: &str) -> Result<Res, KustomizeError> {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    if kind.is_empty() {
        return Err(KustomizeError::invalid(
            file,
            "missing Resource metadata: kind is required",
        ));
    }
    let name = v
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    if name.is_empty() {
        return Err(KustomizeError::invalid(
            file,
            format!("missing metadata.name in object of kind {kind}"),
        ));
    }
    Ok(Res::new(v, file.to_string()))
}

/// Adds a resource, refusing a second one with the same id.
pub fn append(ra: &mut Vec<Res>, r: Res, file: &RepoPath) -> Result<(), KustomizeError> {
    let id = r.id();
    if ra.iter().any(|x| x.id().same_as(&id)) {
        return Err(KustomizeError::invalid(
            file,
            format!("may not add resource with an already registered id: {id}"),
        ));
    }
    ra.push(r);
    Ok(())
}

/// Absorbs generated objects according to their behavior.
pub fn absorb(ra: &mut Vec<Res>, r: Res, file: &str) -> Result<(), KustomizeError> {
    let id = r.id();
    // kustomize matches on the current id or any earlier one (a base may have renamed or
    // re-namespaced the object since).
    let eff = |kind: &str, ns: &str| {
        super::resource::eff_ns(&id.group, &id.version, kind, ns).to_string()
    };
    let want_ns = eff(&id.kind, &id.namespace);
    let existing: Vec<usize> = ra
        .iter()
        .enumerate()
        .filter(|(_, x)| {
            let xi = x.id();
            xi.kind == id.kind
                && xi.group == id.group
                && ((xi.name == id.name && eff(&xi.kind, &xi.namespace) == want_ns)
                    || x.prev
                        .iter()
                        .any(|p| p.1 == id.name && eff(&p.0, &p.2) == want_ns))
        })
        .map(|(i, _)| i)
        .collect();
    match (r.behavior.unwrap_or(Behavior::Create), existing.as_slice()) {
        (Behavior::Create, []) => {
            ra.push(r);
            Ok(())
        }
        (Behavior::Create, _) => Err(KustomizeError::invalid(
            file,
            format!("may not add resource with an already registered id: {id}"),
        )),
        (Behavior::Merge | Behavior::Replace, []) => Err(KustomizeError::invalid(
            file,
            format!("id {id} does not exist; cannot merge or replace"),
        )),
        (b, [i]) => {
            generators::merge_into(&mut ra[*i], r, b);
            Ok(())
        }
        _ => Err(KustomizeError::invalid(
            file,
            format!("found multiple objects {id} that could accept merge"),
        )),
    }
}

/// kustomize rewrites the top-level annotations as a string map when it removes its internal
/// build annotations, so scalar values that reached them as numbers or booleans become text.
fn strip_internal(v: &mut Value) {
    if let Some(meta) = v.get_mut("metadata").and_then(Value::as_object_mut)
        && meta
            .get("annotations")
            .is_some_and(|a| a.is_null() || a.as_object().is_some_and(|o| o.is_empty()))
    {
        meta.shift_remove("annotations");
    }
    if let Some(Value::Object(ann)) = v.pointer_mut("/metadata/annotations") {
        for val in ann.values_mut() {
            match val {
                Value::Number(n) => {
                    let text = match n.as_f64() {
                        Some(f) if !n.is_i64() && !n.is_u64() => super::emit::go_json_float(f),
                        _ => n.to_string(),
                    };
                    *val = Value::String(text);
                }
                Value::Bool(b) => *val = Value::String(b.to_string()),
                _ => {}
            }
        }
    }
}

/// `buildMetadata` of the top kustomization (kustomize ignores it below the top): `originAnnotations` and `managedByLabel` (as
/// `kubectl kustomize` stamps it; its embedded kustomize reports its version as `(devel)`).
fn build_metadata(k: &Kust, ra: &mut [Res]) -> Result<(), KustomizeError> {
    let opts = k.str_list("buildMetadata")?;
    for o in &opts {
        if o != "originAnnotations" && o != "managedByLabel" {
            return Err(KustomizeError::unsupported(
                format!("buildMetadata: {o}"),
                &k.file,
            ));
        }
    }
    let origin = opts.iter().any(|o| o == "originAnnotations");
    let managed = opts.iter().any(|o| o == "managedByLabel");
    for r in ra.iter_mut() {
        if origin {
            if r.json_patched {
                return Err(KustomizeError::unsupported(
                    "originAnnotations on an object changed by a JSON patch",
                    &k.file,
                ));
            }
            let rel = relative(&k.dir, &r.origin);
            if !rel
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-".contains(c))
            {
                return Err(KustomizeError::unsupported(
                    "originAnnotations for an unusual path",
                    &r.origin,
                ));
            }
            let text = match r.generated_by {
                Some(g) => format!(
                    "configuredIn: {rel}\nconfiguredBy:\n  apiVersion: builtin\n  kind: {g}\n"
                ),
                None => format!("path: {rel}\n"),
            };
            let meta = r.meta_mut();
            let ann = super::resource::obj_mut(meta.entry("annotations").or_insert(Value::Null));
            ann.insert("config.kubernetes.io/origin".into(), Value::String(text));
        }
        if managed {
            let meta = r.meta_mut();
            let labels = super::resource::obj_mut(meta.entry("labels").or_insert(Value::Null));
            labels.insert(
                "app.kubernetes.io/managed-by".into(),
                Value::String("kustomize-(devel)".into()),
            );
        }
    }
    Ok(())
}

/// `file` relative to `dir` (both repository paths), with `..` where it lies outside.
fn relative(dir: &RepoPath, file: &str) -> String {
    let d: Vec<&str> = dir.as_str().split('/').filter(|s| !s.is_empty()).collect();
    let f: Vec<&str> = file.split('/').filter(|s| !s.is_empty()).collect();
    let common = d.iter().zip(f.iter()).take_while(|(a, b)| a == b).count();
    let mut parts: Vec<&str> = vec![".."; d.len() - common];
    parts.extend(&f[common..]);
    parts.join("/")
}
