//! Strict structural validation of objects against the Kubernetes API schema and CRD schemas.
//!
//! Schemas use one compact form (see `worker/data/k8s-schema/generate.py`): built-in kinds come
//! from the embedded, generated Kubernetes 1.34 schema; custom kinds from the shipped
//! `policies/schemas/*.yaml` and from `CustomResourceDefinition` objects among the rendered input.
//! Unknown fields and missing required fields are errors, as in `kubectl apply
//! --validate=strict`; a kind no schema knows is reported once as a warning.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::objects::K8sObject;

/// The generated Kubernetes 1.34 schema (see `worker/data/k8s-schema/generate.py`).
const K8S_SCHEMA: &str = include_str!("../../data/k8s-schema/v1.34.json");

/// A type expression.
#[derive(Clone, Debug)]
pub enum Ty {
    Str,
    Int,
    Num,
    Bool,
    Any,
    IntOrStr,
    NumOrStr,
    /// A named entry of the type table.
    Ref(Arc<str>),
    List(Box<Ty>),
    Map(Box<Ty>),
    Obj(Arc<ObjTy>),
}

/// A closed object: fields not listed (and not covered by `extra`) are errors.
#[derive(Debug, Default)]
pub struct ObjTy {
    pub props: HashMap<String, Ty>,
    pub required: Vec<String>,
    pub extra: Option<Ty>,
}

/// The compact form as written in JSON or YAML.
#[derive(Deserialize)]
#[serde(untagged)]
enum TyRepr {
    Name(String),
    List {
        l: Box<TyRepr>,
    },
    Map {
        m: Box<TyRepr>,
    },
    Obj {
        #[serde(default)]
        p: indexmap::IndexMap<String, TyRepr>,
        #[serde(default)]
        r: Vec<String>,
        #[serde(default)]
        x: Option<Box<TyRepr>>,
    },
}

#[derive(Deserialize)]
struct SchemaFile {
    #[serde(default)]
    kinds: HashMap<String, String>,
    #[serde(default)]
    types: HashMap<String, TyRepr>,
    /// Kinds (`group/version/Kind`) that are cluster-scoped.
    #[serde(default, rename = "clusterScoped")]
    cluster_scoped: Vec<String>,
}

/// A schema source that could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("{file}: {message}")]
    Invalid { file: String, message: String },
    #[error("{file}: type {name} refers to unknown type {missing}")]
    Dangling {
        file: String,
        name: String,
        missing: String,
    },
}

fn convert(repr: TyRepr) -> Ty {
    match repr {
        TyRepr::Name(n) => match n.as_str() {
            "str" => Ty::Str,
            "int" => Ty::Int,
            "num" => Ty::Num,
            "bool" => Ty::Bool,
            "any" => Ty::Any,
            "int-or-str" => Ty::IntOrStr,
            "num-or-str" => Ty::NumOrStr,
            _ => Ty::Ref(Arc::from(n.as_str())),
        },
        TyRepr::List { l } => Ty::List(Box::new(convert(*l))),
        TyRepr::Map { m } => Ty::Map(Box::new(convert(*m))),
        TyRepr::Obj { p, r, x } => Ty::Obj(Arc::new(ObjTy {
            props: p.into_iter().map(|(k, v)| (k, convert(v))).collect(),
            required: r,
            extra: x.map(|t| convert(*t)),
        })),
    }
}

/// Kinds Kubernetes itself serves without a namespace (facts of the core API).
const BUILTIN_CLUSTER_SCOPED: &[&str] = &[
    "Namespace",
    "Node",
    "PersistentVolume",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "StorageClass",
    "CSIDriver",
    "CSINode",
    "VolumeAttachment",
    "VolumeAttributesClass",
    "PriorityClass",
    "RuntimeClass",
    "IngressClass",
    "APIService",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "ValidatingAdmissionPolicy",
    "ValidatingAdmissionPolicyBinding",
    "MutatingAdmissionPolicy",
    "MutatingAdmissionPolicyBinding",
    "CertificateSigningRequest",
    "FlowSchema",
    "PriorityLevelConfiguration",
    "ComponentStatus",
    "DeviceClass",
    "ResourceSlice",
    "IPAddress",
    "ServiceCIDR",
];

/// All known kinds and types.
#[derive(Clone, Debug, Default)]
pub struct SchemaSet {
    types: HashMap<Arc<str>, Ty>,
    /// `apiVersion/Kind` → root type.
    kinds: HashMap<String, Ty>,
    cluster_scoped: BTreeSet<String>,
}

/// One schema violation inside an object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    /// Dotted path with list indices, e.g. `spec.template.spec.containers[0].imagePullPolicy`.
    pub path: String,
    pub message: String,
}

impl SchemaSet {
    /// The embedded Kubernetes schema plus the shipped CRD schemas.
    pub fn builtin() -> Result<Self, SchemaError> {
        let mut set = SchemaSet::default();
        set.add_compact_json(K8S_SCHEMA, "worker/data/k8s-schema/v1.34.json")?;
        for (file, text) in super::bundle::SHIPPED_SCHEMAS {
            set.add_compact_yaml(text, file)?;
        }
        for k in BUILTIN_CLUSTER_SCOPED {
            set.cluster_scoped.insert((*k).to_string());
        }
        set.check_refs("schemas")?;
        Ok(set)
    }

    fn add_compact_json(&mut self, text: &str, file: &str) -> Result<(), SchemaError> {
        let parsed: SchemaFile = serde_json::from_str(text).map_err(|e| SchemaError::Invalid {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        self.add_file(parsed);
        Ok(())
    }

    /// Adds a compact schema file written in YAML (the `policies/schemas/` form).
    pub fn add_compact_yaml(&mut self, text: &str, file: &str) -> Result<(), SchemaError> {
        let value = crate::yaml::parse_single(text, file).map_err(|e| SchemaError::Invalid {
            file: file.to_string(),
            message: e.to_string(),
        })?;
        let parsed: SchemaFile =
            serde_json::from_value(value).map_err(|e| SchemaError::Invalid {
                file: file.to_string(),
                message: e.to_string(),
            })?;
        self.add_file(parsed);
        self.check_refs(file)
    }

    fn add_file(&mut self, file: SchemaFile) {
        for (name, repr) in file.types {
            self.types.insert(Arc::from(name.as_str()), convert(repr));
        }
        for (kind, ty) in file.kinds {
            self.kinds.insert(kind, Ty::Ref(Arc::from(ty.as_str())));
        }
        for k in file.cluster_scoped {
            // Stored by kind name: scope does not change across versions of a kind.
            let kind = k.rsplit('/').next().unwrap_or(&k).to_string();
            self.cluster_scoped.insert(kind);
        }
    }

    /// Every named reference must resolve, so a typo in a schema file fails loudly at load time.
    fn check_refs(&self, file: &str) -> Result<(), SchemaError> {
        fn walk(set: &SchemaSet, ty: &Ty, owner: &str, file: &str) -> Result<(), SchemaError> {
            match ty {
                Ty::Ref(n) if !set.types.contains_key(n) => Err(SchemaError::Dangling {
                    file: file.to_string(),
                    name: owner.to_string(),
                    missing: n.to_string(),
                }),
                Ty::List(t) | Ty::Map(t) => walk(set, t, owner, file),
                Ty::Obj(o) => {
                    for t in o.props.values().chain(o.extra.iter()) {
                        walk(set, t, owner, file)?;
                    }
                    Ok(())
                }
                _ => Ok(()),
            }
        }
        for (name, ty) in &self.types {
            walk(self, ty, name, file)?;
        }
        for (name, ty) in &self.kinds {
            walk(self, ty, name, file)?;
        }
        Ok(())
    }

    /// Registers the served versions of a `CustomResourceDefinition` found among the objects.
    /// Returns an error message when the object is not a usable CRD.
    pub fn add_crd(&mut self, crd: &Value) -> Result<(), String> {
        let spec = crd.get("spec").ok_or("CRD without spec")?;
        let group = spec
            .get("group")
            .and_then(Value::as_str)
            .ok_or("CRD without spec.group")?;
        let kind = spec
            .pointer("/names/kind")
            .and_then(Value::as_str)
            .ok_or("CRD without spec.names.kind")?;
        if spec.get("scope").and_then(Value::as_str) == Some("Cluster") {
            self.cluster_scoped.insert(kind.to_string());
        }
        let versions = spec
            .get("versions")
            .and_then(Value::as_array)
            .ok_or("CRD without spec.versions")?;
        for v in versions {
            let Some(name) = v.get("name").and_then(Value::as_str) else {
                continue;
            };
            let root = match v.pointer("/schema/openAPIV3Schema") {
                Some(s) => {
                    let mut ty = from_openapi(s);
                    // metadata is always ObjectMeta, whatever the CRD says.
                    if let Ty::Obj(o) = &mut ty {
                        let mut props = HashMap::new();
                        for (k, t) in &o.props {
                            props.insert(k.clone(), t.clone());
                        }
                        props.insert("metadata".into(), Ty::Ref(Arc::from("meta.v1.ObjectMeta")));
                        props.insert("apiVersion".into(), Ty::Str);
                        props.insert("kind".into(), Ty::Str);
                        *o = Arc::new(ObjTy {
                            props,
                            required: o.required.clone(),
                            extra: o.extra.clone(),
                        });
                    }
                    ty
                }
                None => Ty::Any,
            };
            self.kinds.insert(format!("{group}/{name}/{kind}"), root);
        }
        Ok(())
    }

    /// Whether objects of this kind live outside namespaces.
    pub fn is_cluster_scoped(&self, kind: &str) -> bool {
        self.cluster_scoped.contains(kind)
    }

    /// Whether a schema exists for this `apiVersion` and kind.
    pub fn knows(&self, api_version: &str, kind: &str) -> bool {
        self.kinds.contains_key(&format!("{api_version}/{kind}"))
    }

    /// Validates one object. `None` when its kind is unknown.
    pub fn validate(&self, obj: &K8sObject) -> Option<Vec<Violation>> {
        let root = self
            .kinds
            .get(&format!("{}/{}", obj.api_version, obj.id.kind))?;
        let mut out = Vec::new();
        let mut path = String::new();
        self.check(root, &obj.value, &mut path, &mut out);
        Some(out)
    }

    fn check(&self, ty: &Ty, v: &Value, path: &mut String, out: &mut Vec<Violation>) {
        // Kubernetes treats an explicit null like an absent field.
        if v.is_null() {
            return;
        }
        let ok = match ty {
            Ty::Any => true,
            Ty::Str => v.is_string(),
            Ty::Int => v.is_i64() || v.is_u64(),
            Ty::Num => v.is_number(),
            Ty::Bool => v.is_boolean(),
            Ty::IntOrStr => v.is_string() || v.is_i64() || v.is_u64(),
            Ty::NumOrStr => v.is_string() || v.is_number(),
            Ty::Ref(name) => {
                match self.types.get(name) {
                    Some(t) => self.check(t, v, path, out),
                    None => out.push(Violation {
                        path: display(path),
                        message: format!("schema has no type {name}"),
                    }),
                }
                return;
            }
            Ty::List(item) => {
                if let Some(items) = v.as_array() {
                    for (i, x) in items.iter().enumerate() {
                        let len = path.len();
                        path.push_str(&format!("[{i}]"));
                        self.check(item, x, path, out);
                        path.truncate(len);
                    }
                    return;
                }
                false
            }
            Ty::Map(item) => {
                if let Some(map) = v.as_object() {
                    for (k, x) in map {
                        let len = path.len();
                        push_key(path, k);
                        self.check(item, x, path, out);
                        path.truncate(len);
                    }
                    return;
                }
                false
            }
            Ty::Obj(o) => {
                if let Some(map) = v.as_object() {
                    self.check_obj(o, map, path, out);
                    return;
                }
                false
            }
        };
        if !ok {
            out.push(Violation {
                path: display(path),
                message: format!("expected {}, found {}", describe(ty), kind_of(v)),
            });
        }
    }

    fn check_obj(
        &self,
        o: &ObjTy,
        map: &Map<String, Value>,
        path: &mut String,
        out: &mut Vec<Violation>,
    ) {
        for (k, x) in map {
            let len = path.len();
            push_key(path, k);
            match o.props.get(k).or(o.extra.as_ref()) {
                Some(t) => self.check(t, x, path, out),
                None => out.push(Violation {
                    path: display(path),
                    message: format!("unknown field {k:?}"),
                }),
            }
            path.truncate(len);
        }
        for r in &o.required {
            if map.get(r).is_none_or(Value::is_null) {
                let len = path.len();
                push_key(path, r);
                out.push(Violation {
                    path: display(path),
                    message: format!("missing required field {r:?}"),
                });
                path.truncate(len);
            }
        }
    }
}

fn push_key(path: &mut String, k: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(k);
}

fn display(path: &str) -> String {
    if path.is_empty() {
        "(root)".into()
    } else {
        path.to_string()
    }
}

fn describe(ty: &Ty) -> &'static str {
    match ty {
        Ty::Str => "a string",
        Ty::Int => "an integer",
        Ty::Num => "a number",
        Ty::Bool => "a boolean",
        Ty::IntOrStr => "an integer or a string",
        Ty::NumOrStr => "a quantity (number or string)",
        Ty::List(_) => "a list",
        Ty::Map(_) | Ty::Obj(_) => "an object",
        Ty::Any | Ty::Ref(_) => "a value",
    }
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(n) if n.is_f64() => "a decimal number",
        Value::Number(_) => "an integer",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

/// Converts a CRD's OpenAPI v3 schema into the compact form.
fn from_openapi(s: &Value) -> Ty {
    let flag = |k: &str| s.get(k).and_then(Value::as_bool).unwrap_or(false);
    if flag("x-kubernetes-int-or-string") {
        return Ty::IntOrStr;
    }
    let preserve = flag("x-kubernetes-preserve-unknown-fields");
    if flag("x-kubernetes-embedded-resource") {
        return Ty::Any;
    }
    match s.get("type").and_then(Value::as_str) {
        Some("string") => Ty::Str,
        Some("integer") => Ty::Int,
        Some("number") => Ty::Num,
        Some("boolean") => Ty::Bool,
        Some("array") => Ty::List(Box::new(
            s.get("items").map(from_openapi).unwrap_or(Ty::Any),
        )),
        Some("object") => {
            let props = s.get("properties").and_then(Value::as_object);
            let extra = match s.get("additionalProperties") {
                Some(Value::Bool(true)) => Some(Ty::Any),
                Some(v @ Value::Object(_)) => Some(from_openapi(v)),
                _ => None,
            };
            match (props, extra, preserve) {
                (None, Some(e), _) => Ty::Map(Box::new(e)),
                (None, None, true) => Ty::Any,
                (props, extra, preserve) => Ty::Obj(Arc::new(ObjTy {
                    props: props
                        .into_iter()
                        .flatten()
                        .map(|(k, v)| (k.clone(), from_openapi(v)))
                        .collect(),
                    required: s
                        .get("required")
                        .and_then(Value::as_array)
                        .map(|r| {
                            r.iter()
                                .filter_map(Value::as_str)
                                .map(String::from)
                                .collect()
                        })
                        .unwrap_or_default(),
                    extra: extra.or(preserve.then_some(Ty::Any)),
                })),
            }
        }
        _ => Ty::Any,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn obj(yaml: &str) -> K8sObject {
        crate::objects::parse_stream(yaml, "t.yaml")
            .unwrap()
            .remove(0)
    }

    #[test]
    fn embedded_schema_loads_and_validates_a_deployment() {
        let set = SchemaSet::builtin().unwrap();
        let ok = obj(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  selector: {matchLabels: {app: a}}\n  template:\n    metadata: {labels: {app: a}}\n    spec:\n      containers:\n      - name: a\n        image: nginx:1.27\n        ports: [{containerPort: 80}]\n        resources: {limits: {cpu: 100m, memory: 1}}\n",
        );
        assert_eq!(set.validate(&ok).unwrap(), vec![]);
    }

    #[test]
    fn unknown_missing_and_mistyped_fields_are_reported_with_paths() {
        let set = SchemaSet::builtin().unwrap();
        let bad = obj(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: a}\nspec:\n  replicas: two\n  selector: {matchLabels: {app: a}}\n  template:\n    spec:\n      containers:\n      - name: a\n        imagePullPolicy: Always\n        imagePulPolicy: Always\n      - image: x\n",
        );
        let v = set.validate(&bad).unwrap();
        let paths: Vec<_> = v.iter().map(|v| v.path.as_str()).collect();
        assert!(paths.contains(&"spec.replicas"), "{v:?}");
        assert!(
            paths.contains(&"spec.template.spec.containers[0].imagePulPolicy"),
            "{v:?}"
        );
        assert!(
            paths.contains(&"spec.template.spec.containers[1].name"),
            "{v:?}"
        );
        assert_eq!(v.len(), 3, "{v:?}");
    }

    #[test]
    fn unknown_kinds_have_no_schema() {
        let set = SchemaSet::builtin().unwrap();
        assert!(
            set.validate(&obj(
                "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: a}\n"
            ))
            .is_none()
        );
    }

    #[test]
    fn crds_from_the_input_are_used() {
        let mut set = SchemaSet::builtin().unwrap();
        let crd = obj(
            "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  scope: Cluster\n  names: {kind: Widget, plural: widgets}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            required: [size]\n            properties:\n              size: {type: integer}\n              port: {x-kubernetes-int-or-string: true}\n              free: {type: object, x-kubernetes-preserve-unknown-fields: true}\n",
        );
        set.add_crd(&crd.value).unwrap();
        assert!(set.is_cluster_scoped("Widget"));
        let good = obj(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: a}\nspec: {size: 1, port: http, free: {anything: [1]}}\n",
        );
        assert_eq!(set.validate(&good).unwrap(), vec![]);
        let bad = obj(
            "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: a, labelz: {}}\nspec: {colour: red}\n",
        );
        let v = set.validate(&bad).unwrap();
        let paths: Vec<_> = v.iter().map(|v| v.path.as_str()).collect();
        assert_eq!(
            paths,
            vec!["metadata.labelz", "spec.colour", "spec.size"],
            "{v:?}"
        );
    }
}
