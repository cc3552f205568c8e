//! `configurations:`, and the builtin plugins listed in `transformers:` and `generators:`.
//!
//! Each builtin plugin entry runs the same code as the kustomization field it stands for, with
//! the entry's own settings: a generator config becomes one `configMapGenerator` /
//! `secretGenerator` item, a patch or replacement config one item of its field, and the
//! field-spec transformers (labels, annotations, prefix/suffix, namespace, images, replica
//! count) apply exactly the field specs the entry lists. As in kustomize, `transformers:` run
//! after the kustomization's own transformers, inline entries before those given as paths, and
//! only `apiVersion: builtin` kinds are accepted: anything else is an exec/container plugin.

use serde_json::{Map, Value, json};

use super::config::{FieldSpec, TransformerConfig, field_specs, paths_for};
use super::loader::{Kust, Loader, append, string_map};
use super::resource::{Res, is_cluster_scoped};
use super::{KustomizeError, generators, images, labels, namespace, patches, prefix_suffix};
use super::{replacements, yaml_load};
use crate::repo_fs::{EntryKind, RepoPath};

/// A file a kustomization names for its own use (configurations, plugin configs): kustomize's
/// default load restrictor wants it in or below the kustomization's directory.
fn own_file(ld: &Loader, k: &Kust, entry: &str) -> Result<RepoPath, KustomizeError> {
    let path = ld.join(&k.dir, entry, &k.file)?;
    if !path.starts_with(&k.dir) {
        return Err(KustomizeError::invalid(
            &k.file,
            format!("security; file '{path}' is not in or below '{}'", k.dir),
        ));
    }
    Ok(path)
}

/// Merges the kustomization's `configurations:` files into the loader's configuration.
pub fn merge_configurations(ld: &mut Loader, k: &Kust) -> Result<(), KustomizeError> {
    for entry in k.str_list("configurations")? {
        let path = own_file(ld, k, &entry)?;
        let text = ld.read(&path)?;
        let src = path.to_string();
        let v = yaml_load::parse_kustomization(&text, &src)?;
        let cfg = TransformerConfig::parse(&v, &src)?;
        ld.config.merge(&cfg);
    }
    Ok(())
}

/// The plugin configs of `generators:` / `transformers:`: inline entries first, then the
/// files and directories, as kustomize accumulates them.
fn load_configs(ld: &mut Loader, k: &Kust, field: &str) -> Result<Vec<Res>, KustomizeError> {
    let entries = k.str_list(field)?;
    let mut out = Vec::new();
    let mut paths = Vec::new();
    for entry in entries {
        let inline = yaml_load::parse_documents(&entry, &k.file_str())
            .ok()
            .filter(|docs| !docs.is_empty() && docs.iter().all(Value::is_object));
        if inline.is_some() {
            for r in ld.parse_resources(&entry, &k.file_str())? {
                append(&mut out, r, &k.file)?;
            }
        } else {
            paths.push(entry);
        }
    }
    for entry in paths {
        let path = ld.join(&k.dir, &entry, &k.file)?;
        let found = match ld.fs.kind(&path)? {
            Some(EntryKind::File) => {
                let path = own_file(ld, k, &entry)?;
                ld.load_resources(&path)?
            }
            Some(EntryKind::Dir) => ld.accumulate_apart(&path)?,
            None => {
                return Err(KustomizeError::invalid(
                    &k.file,
                    format!("{field}: '{path}' does not exist"),
                ));
            }
        };
        for r in found {
            append(&mut out, r, &k.file)?;
        }
    }
    Ok(out)
}

/// A plugin config that must be a builtin one; returns its kind.
fn builtin_kind<'a>(r: &'a Res, what: &str) -> Result<&'a str, KustomizeError> {
    if r.api_version() != "builtin" {
        return Err(KustomizeError::unsupported(
            format!(
                "{what} plugin kind {} (apiVersion {}): only builtin plugins are supported",
                r.kind(),
                r.api_version()
            ),
            &r.origin,
        ));
    }
    Ok(r.kind())
}

/// The config without its object header, for reuse as a kustomization field item.
fn body(r: &Res) -> Map<String, Value> {
    let mut m = r.v.as_object().cloned().unwrap_or_default();
    for k in ["apiVersion", "kind", "metadata"] {
        m.shift_remove(k);
    }
    m
}

/// A kustomization holding only `field`, in the directory of `k` (paths in plugin configs are
/// relative to the kustomization that lists them).
fn synthetic(k: &Kust, field: &str, value: Value) -> Kust {
    let mut v = Map::new();
    v.insert(field.to_string(), value);
    Kust {
        dir: k.dir.clone(),
        file: k.file.clone(),
        v: Value::Object(v),
    }
}

pub fn run_generators(ld: &mut Loader, k: &Kust, ra: &mut Vec<Res>) -> Result<(), KustomizeError> {
    if k.field("generators").is_none() {
        return Ok(());
    }
    for cfg in load_configs(ld, k, "generators")? {
        let field = match builtin_kind(&cfg, "generator")? {
            "ConfigMapGenerator" => "configMapGenerator",
            "SecretGenerator" => "secretGenerator",
            other => {
                return Err(KustomizeError::unsupported(
                    format!("generator plugin kind {other}"),
                    &cfg.origin,
                ));
            }
        };
        let mut item = body(&cfg);
        item.insert("name".into(), Value::String(cfg.name().to_string()));
        if !cfg.namespace().is_empty() {
            item.insert(
                "namespace".into(),
                Value::String(cfg.namespace().to_string()),
            );
        }
        let synth = synthetic(k, field, Value::Array(vec![Value::Object(item)]));
        generators::run(ld, &synth, ra)?;
    }
    Ok(())
}

pub fn run_transformers(
    ld: &mut Loader,
    k: &Kust,
    ra: &mut Vec<Res>,
) -> Result<(), KustomizeError> {
    if k.field("transformers").is_none() {
        return Ok(());
    }
    for cfg in load_configs(ld, k, "transformers")? {
        let kind = builtin_kind(&cfg, "transformer")?.to_string();
        run_one(ld, k, &kind, &cfg, ra)?;
    }
    Ok(())
}

fn specs_of(b: &Map<String, Value>, src: &str) -> Result<Vec<FieldSpec>, KustomizeError> {
    field_specs(
        b.get("fieldSpecs").unwrap_or(&Value::Null),
        src,
        "fieldSpecs",
    )
}

/// Refuses settings of a builtin config this engine does not implement.
fn only_keys(
    b: &Map<String, Value>,
    allowed: &[&str],
    kind: &str,
    src: &str,
) -> Result<(), KustomizeError> {
    match b.keys().find(|key| !allowed.contains(&key.as_str())) {
        Some(key) => Err(KustomizeError::unsupported(
            format!("{kind} field {key}"),
            src,
        )),
        None => Ok(()),
    }
}

fn run_one(
    ld: &mut Loader,
    k: &Kust,
    kind: &str,
    cfg: &Res,
    ra: &mut Vec<Res>,
) -> Result<(), KustomizeError> {
    let src = cfg.origin.as_str();
    let b = body(cfg);
    let field = |name: &str| b.get(name).cloned().unwrap_or(Value::Null);
    match kind {
        "LabelTransformer" | "AnnotationsTransformer" => {
            let key = if kind == "LabelTransformer" {
                "labels"
            } else {
                "annotations"
            };
            only_keys(&b, &[key, "fieldSpecs"], kind, src)?;
            let pairs = string_map(b.get(key), &k.file, key)?;
            let specs = specs_of(&b, src)?;
            if !pairs.is_empty() {
                for r in ra.iter_mut() {
                    let paths = paths_for(&specs, r);
                    labels::apply_pairs(r, &paths, &pairs);
                }
            }
        }
        "PrefixSuffixTransformer" | "PrefixTransformer" | "SuffixTransformer" => {
            only_keys(&b, &["prefix", "suffix", "fieldSpecs"], kind, src)?;
            if b.get("fieldSpecs").is_none_or(Value::is_null) {
                return Err(KustomizeError::invalid(
                    src,
                    "fieldSpecs is not expected to be nil",
                ));
            }
            let text = |n: &str| b.get(n).and_then(Value::as_str).unwrap_or("").to_string();
            let prefix = if kind == "SuffixTransformer" {
                String::new()
            } else {
                text("prefix")
            };
            let suffix = if kind == "PrefixTransformer" {
                String::new()
            } else {
                text("suffix")
            };
            let specs = specs_of(&b, src)?;
            for r in ra.iter_mut() {
                if prefix_suffix::skipped(r) {
                    continue;
                }
                let on_name = specs
                    .iter()
                    .any(|fs| fs.path == "metadata/name" && fs.selects(r));
                if on_name && !(prefix.is_empty() && suffix.is_empty()) {
                    let name = format!("{prefix}{}{suffix}", r.name());
                    r.set_name(&name);
                }
                prefix_suffix::affix_extra(r, &prefix, &specs, true);
                prefix_suffix::affix_extra(r, &suffix, &specs, false);
            }
        }
        "NamespaceTransformer" => {
            only_keys(
                &b,
                &["fieldSpecs", "unsetOnly", "setRoleBindingSubjects"],
                kind,
                src,
            )?;
            if b.get("unsetOnly").and_then(Value::as_bool) == Some(true) {
                return Err(KustomizeError::unsupported(
                    "NamespaceTransformer unsetOnly",
                    src,
                ));
            }
            match b.get("setRoleBindingSubjects").and_then(Value::as_str) {
                None | Some("" | "defaultOnly") => {}
                Some(other) => {
                    return Err(KustomizeError::unsupported(
                        format!("NamespaceTransformer setRoleBindingSubjects: {other}"),
                        src,
                    ));
                }
            }
            let ns = cfg.namespace().to_string();
            let specs = specs_of(&b, src)?;
            if !ns.is_empty() {
                for r in ra.iter_mut() {
                    if !is_cluster_scoped(r.group(), r.version(), r.kind()) {
                        r.set_namespace(&ns);
                    }
                    namespace::set_specs(r, &ns, &specs);
                }
            }
        }
        "ImageTagTransformer" => {
            only_keys(&b, &["imageTag", "fieldSpecs"], kind, src)?;
            let specs = TransformerConfig {
                images: specs_of(&b, src)?,
                ..Default::default()
            };
            let synth = synthetic(k, "images", Value::Array(vec![field("imageTag")]));
            images::run(&synth, ra, &specs)?;
        }
        "ReplicaCountTransformer" => {
            only_keys(&b, &["replica", "fieldSpecs"], kind, src)?;
            replica_count(&field("replica"), &specs_of(&b, src)?, ra, src)?;
        }
        "PatchTransformer" => {
            only_keys(&b, &["path", "patch", "target", "options"], kind, src)?;
            let synth = synthetic(k, "patches", Value::Array(vec![Value::Object(b.clone())]));
            patches::run_patches(ld, &synth, ra)?;
        }
        "PatchStrategicMergeTransformer" => {
            only_keys(&b, &["paths", "patches"], kind, src)?;
            let mut list = match field("paths") {
                Value::Array(a) => a,
                Value::Null => Vec::new(),
                other => vec![other],
            };
            if let Some(Value::String(p)) = b.get("patches") {
                list.push(Value::String(p.clone()));
            }
            let synth = synthetic(k, "patchesStrategicMerge", Value::Array(list));
            patches::run_strategic_merge_legacy(ld, &synth, ra)?;
        }
        "PatchJson6902Transformer" => {
            only_keys(&b, &["target", "path", "jsonOp"], kind, src)?;
            let mut item = Map::new();
            for (from, to) in [("target", "target"), ("path", "path"), ("jsonOp", "patch")] {
                if let Some(v) = b.get(from) {
                    item.insert(to.into(), v.clone());
                }
            }
            let synth = synthetic(k, "patchesJson6902", json!([item]));
            patches::run_json6902_legacy(ld, &synth, ra)?;
        }
        "ReplacementTransformer" => {
            only_keys(&b, &["replacements"], kind, src)?;
            let synth = synthetic(k, "replacements", field("replacements"));
            replacements::run(ld, &synth, ra)?;
        }
        "HashTransformer" => {
            // kustomize keeps the "needs a hash" mark, so the top level appends the hash again.
            for r in ra.iter_mut().filter(|r| r.needs_hash) {
                let name = format!("{}-{}", r.name(), generators::hash(&r.v));
                r.set_name(&name);
            }
        }
        "SortOrderTransformer" => {
            // kustomize does not offer it as a plugin (only the top-level sortOptions field).
            return Err(KustomizeError::invalid(
                src,
                "unable to load builtin SortOrderTransformer: sortOptions is a kustomization field",
            ));
        }
        other => {
            return Err(KustomizeError::unsupported(
                format!("transformer plugin kind {other}"),
                src,
            ));
        }
    }
    Ok(())
}

/// ReplicaCountTransformer: the count goes to each field spec's path on the objects of the
/// spec's kind that have (or had) the given name; one that reaches nothing is an error.
fn replica_count(
    replica: &Value,
    specs: &[FieldSpec],
    ra: &mut [Res],
    src: &str,
) -> Result<(), KustomizeError> {
    let name = replica.get("name").and_then(Value::as_str).unwrap_or("");
    let count = replica
        .get("count")
        .and_then(Value::as_i64)
        .ok_or_else(|| KustomizeError::invalid(src, "replica.count must be an integer"))?;
    let mut found = false;
    for fs in specs {
        for r in ra.iter_mut() {
            if !r.had_name(name) || !fs.selects(r) {
                continue;
            }
            found = true;
            super::fieldpath::visit(&mut r.v, &fs.path, fs.create, &mut |v| {
                *v = Value::from(count);
            });
        }
    }
    if !found {
        let gvks: Vec<String> = specs.iter().map(|fs| fs.kind.clone()).collect();
        return Err(KustomizeError::invalid(
            src,
            format!(
                "resource with name {name} does not match a config with the following GVK [{}]",
                gvks.join(" ")
            ),
        ));
    }
    Ok(())
}
