//! Transformer configuration (`configurations:` files): extra field specs per transformer,
//! merged into the defaults the transformer modules carry in their own tables.
//!
//! kustomize keeps one configuration per accumulation: a kustomization's configuration is the
//! default one merged with those of every base it includes and with its own files, and the top
//! kustomization's configuration drives the final name-reference and `vars` passes. The engine
//! holds only the *extra* specs here (the defaults stay in `labels.rs`, `nameref.rs`, ...); a
//! transformer applies its defaults plus the extras that match the resource.

use serde_json::Value;

use super::KustomizeError;
use super::resource::Res;

/// One field spec: which resources (group/version/kind, each empty for any) and which path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldSpec {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub path: String,
    pub create: bool,
}

impl FieldSpec {
    /// kustomize's `IsSelected`: every given part of the spec's GVK equals the resource's.
    pub fn selects(&self, r: &Res) -> bool {
        (self.group.is_empty() || self.group == r.group())
            && (self.version.is_empty() || self.version == r.version())
            && (self.kind.is_empty() || self.kind == r.kind())
    }

    fn same_target(&self, o: &FieldSpec) -> bool {
        self.group == o.group
            && self.version == o.version
            && self.kind == o.kind
            && self.path == o.path
    }
}

/// Name references to objects of one kind from fields of other objects.
#[derive(Clone, Debug, Default)]
pub struct NameBackRef {
    pub group: String,
    pub kind: String,
    pub referrers: Vec<FieldSpec>,
}

/// The extra field specs of every transformer (kustomize's `TransformerConfig` keys).
#[derive(Clone, Debug, Default)]
pub struct TransformerConfig {
    pub name_prefix: Vec<FieldSpec>,
    pub name_suffix: Vec<FieldSpec>,
    pub namespace: Vec<FieldSpec>,
    pub common_labels: Vec<FieldSpec>,
    pub labels: Vec<FieldSpec>,
    pub template_labels: Vec<FieldSpec>,
    pub common_annotations: Vec<FieldSpec>,
    pub name_reference: Vec<NameBackRef>,
    pub var_reference: Vec<FieldSpec>,
    pub images: Vec<FieldSpec>,
    pub replicas: Vec<FieldSpec>,
}

/// Adds the specs of `extra` that `into` does not hold yet (same GVK and path).
fn merge_specs(into: &mut Vec<FieldSpec>, extra: &[FieldSpec]) {
    for fs in extra {
        if !into.iter().any(|x| x.same_target(fs)) {
            into.push(fs.clone());
        }
    }
}

impl TransformerConfig {
    /// kustomize's merge: field specs are unioned per transformer, name references per
    /// referenced kind.
    pub fn merge(&mut self, o: &TransformerConfig) {
        merge_specs(&mut self.name_prefix, &o.name_prefix);
        merge_specs(&mut self.name_suffix, &o.name_suffix);
        merge_specs(&mut self.namespace, &o.namespace);
        merge_specs(&mut self.common_labels, &o.common_labels);
        merge_specs(&mut self.labels, &o.labels);
        merge_specs(&mut self.template_labels, &o.template_labels);
        merge_specs(&mut self.common_annotations, &o.common_annotations);
        merge_specs(&mut self.var_reference, &o.var_reference);
        merge_specs(&mut self.images, &o.images);
        merge_specs(&mut self.replicas, &o.replicas);
        for nb in &o.name_reference {
            match self
                .name_reference
                .iter_mut()
                .find(|x| x.kind == nb.kind && x.group == nb.group)
            {
                Some(x) => merge_specs(&mut x.referrers, &nb.referrers),
                None => self.name_reference.push(nb.clone()),
            }
        }
    }

    /// Reads one `configurations:` file.
    pub fn parse(v: &Value, file: &str) -> Result<TransformerConfig, KustomizeError> {
        let mut c = TransformerConfig::default();
        let obj = match v {
            Value::Null => return Ok(c),
            Value::Object(o) => o,
            _ => {
                return Err(KustomizeError::invalid(
                    file,
                    "transformer configuration is not a mapping",
                ));
            }
        };
        for (key, val) in obj {
            let specs = || field_specs(val, file, key);
            match key.as_str() {
                "namePrefix" => c.name_prefix = specs()?,
                "nameSuffix" => c.name_suffix = specs()?,
                "namespace" => c.namespace = specs()?,
                "commonLabels" => c.common_labels = specs()?,
                "labels" => c.labels = specs()?,
                "templateLabels" => c.template_labels = specs()?,
                "commonAnnotations" => c.common_annotations = specs()?,
                "varReference" => c.var_reference = specs()?,
                "images" => c.images = specs()?,
                "replicas" => c.replicas = specs()?,
                "nameReference" => c.name_reference = name_refs(val, file)?,
                "volumeClaimTemplateLabels" => {
                    if !specs()?.is_empty() {
                        return Err(KustomizeError::unsupported(
                            "configurations: volumeClaimTemplateLabels",
                            file,
                        ));
                    }
                }
                other => {
                    return Err(KustomizeError::invalid(
                        file,
                        format!("error unmarshaling JSON: json: unknown field \"{other}\""),
                    ));
                }
            }
        }
        Ok(c)
    }

    /// Extra referrer fields of `r` for name references: (referenced kind, path).
    pub fn name_refs_of<'a>(&'a self, r: &Res) -> Vec<(&'a str, &'a str)> {
        let mut out = Vec::new();
        for nb in &self.name_reference {
            for fs in &nb.referrers {
                if fs.selects(r) {
                    out.push((nb.kind.as_str(), fs.path.as_str()));
                }
            }
        }
        out
    }
}

/// The specs of `list` that select `r`, as (path, create) pairs.
pub fn paths_for<'a>(list: &'a [FieldSpec], r: &Res) -> Vec<(&'a str, bool)> {
    list.iter()
        .filter(|fs| fs.selects(r))
        .map(|fs| (fs.path.as_str(), fs.create))
        .collect()
}

fn str_of(
    m: &serde_json::Map<String, Value>,
    k: &str,
    file: &str,
) -> Result<String, KustomizeError> {
    match m.get(k) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(KustomizeError::invalid(
            file,
            format!("field spec: {k} must be a string, got {other}"),
        )),
    }
}

/// kustomize reads configurations strictly: an unknown key is an error.
fn known_keys(
    m: &serde_json::Map<String, Value>,
    known: &[&str],
    file: &str,
) -> Result<(), KustomizeError> {
    match m.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(KustomizeError::invalid(
            file,
            format!("error unmarshaling JSON: json: unknown field \"{k}\""),
        )),
        None => Ok(()),
    }
}

/// A list, or nothing.
fn list<'a>(v: &'a Value, file: &str, what: &str) -> Result<&'a [Value], KustomizeError> {
    match v {
        Value::Null => Ok(&[]),
        Value::Array(a) => Ok(a),
        _ => Err(KustomizeError::invalid(
            file,
            format!("{what}: expected a list"),
        )),
    }
}

/// A `fieldSpecs` list.
pub fn field_specs(v: &Value, file: &str, what: &str) -> Result<Vec<FieldSpec>, KustomizeError> {
    let items = list(v, file, what)?;
    let mut out: Vec<FieldSpec> = Vec::new();
    for item in items {
        let Value::Object(m) = item else {
            return Err(KustomizeError::invalid(
                file,
                format!("{what}: a field spec must be a mapping"),
            ));
        };
        known_keys(m, &["group", "version", "kind", "path", "create"], file)?;
        let create = match m.get("create") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                return Err(KustomizeError::invalid(
                    file,
                    format!("field spec: create must be a boolean, got {other}"),
                ));
            }
        };
        let fs = FieldSpec {
            group: str_of(m, "group", file)?,
            version: str_of(m, "version", file)?,
            kind: str_of(m, "kind", file)?,
            path: str_of(m, "path", file)?,
            create,
        };
        // Paths with list-element selectors or escaped slashes are walked differently by
        // kustomize; refuse rather than guess.
        if fs.path.contains('=') || fs.path.contains('\\') || fs.path.is_empty() {
            return Err(KustomizeError::unsupported(
                format!("field spec path '{}'", fs.path),
                file,
            ));
        }
        if let Some(x) = out.iter().find(|x| x.same_target(&fs)) {
            if x.create != fs.create {
                return Err(KustomizeError::invalid(file, "conflicting fieldspecs"));
            }
            continue;
        }
        out.push(fs);
    }
    Ok(out)
}

fn name_refs(v: &Value, file: &str) -> Result<Vec<NameBackRef>, KustomizeError> {
    let items = list(v, file, "nameReference")?;
    let mut out: Vec<NameBackRef> = Vec::new();
    for item in items {
        let Value::Object(m) = item else {
            return Err(KustomizeError::invalid(
                file,
                "nameReference: an entry must be a mapping",
            ));
        };
        known_keys(m, &["group", "version", "kind", "fieldSpecs"], file)?;
        let nb = NameBackRef {
            group: str_of(m, "group", file)?,
            kind: str_of(m, "kind", file)?,
            referrers: field_specs(
                m.get("fieldSpecs").unwrap_or(&Value::Null),
                file,
                "nameReference.fieldSpecs",
            )?,
        };
        let mut one = TransformerConfig::default();
        one.name_reference.push(nb);
        let mut merged = TransformerConfig {
            name_reference: std::mem::take(&mut out),
            ..Default::default()
        };
        merged.merge(&one);
        out = merged.name_reference;
    }
    Ok(out)
}
