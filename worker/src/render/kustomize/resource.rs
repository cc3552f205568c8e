//! A resource during a build: its value plus what kustomize remembers about it (previous names
//! for name references, generator options).

use serde_json::{Map, Value};

use super::yaml_load::NullSpelling;

/// How a generated ConfigMap/Secret combines with one of the same id from an earlier layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Behavior {
    Create,
    Merge,
    Replace,
}

#[derive(Clone, Debug)]
pub struct Res {
    pub v: Value,
    /// File (or, for generated objects, kustomization) the resource came from.
    pub origin: String,
    /// For generated objects: the generator (`ConfigMapGenerator`, `SecretGenerator`).
    pub generated_by: Option<&'static str>,
    /// Earlier (kind, name, namespace) ids, oldest first; name references match any of them.
    pub prev: Vec<(String, String, String)>,
    /// Set for generated objects that still need the content-hash suffix.
    pub needs_hash: bool,
    pub behavior: Option<Behavior>,
    /// Groups of JSON pointers whose values are one shared YAML node in kustomize (entries a
    /// label or annotation transformer created in one pass): an in-place update of one (a later
    /// label, a strategic merge patch) shows up in all of them. A JSON patch rebuilds the object
    /// and dissolves the groups.
    pub aliases: Vec<Vec<String>>,
    /// A JSON patch rebuilt the object (kustomize then records the patch as its origin).
    pub json_patched: bool,
    /// Which null fields the source left empty rather than spelled out: kustomize's strategic
    /// merge drops the former and keeps the latter. Empty after a JSON patch (kustomize rebuilds
    /// the object from JSON, where every null is spelled out) and after a strategic merge (the
    /// empty ones it reaches are gone, and it never reaches the rest).
    pub nulls: NullSpelling,
}

impl Res {
    pub fn new(v: Value, origin: String) -> Self {
        Res {
            v,
            origin,
            generated_by: None,
            prev: Vec::new(),
            needs_hash: false,
            behavior: None,
            aliases: Vec::new(),
            json_patched: false,
            nulls: NullSpelling::default(),
        }
    }

    /// Overwrites the value at `ptr` and at every place that shares its node.
    pub fn set_shared(&mut self, ptr: &str, val: Value) {
        let group: Vec<String> = self
            .aliases
            .iter()
            .find(|g| g.iter().any(|p| p == ptr))
            .cloned()
            .unwrap_or_else(|| vec![ptr.to_string()]);
        for p in group {
            if let Some(slot) = self.v.pointer_mut(&p) {
                *slot = val.clone();
            }
        }
    }

    /// After an in-place edit (strategic merge), spreads changed shared values to their group.
    pub fn propagate_aliases(&mut self, before: &[Vec<Option<Value>>]) {
        let groups = self.aliases.clone();
        for (g, old) in groups.iter().zip(before) {
            let changed = g.iter().zip(old).find_map(|(p, o)| {
                let now = self.v.pointer(p)?;
                (Some(now) != o.as_ref() && !now.is_object() && !now.is_array())
                    .then(|| now.clone())
            });
            if let Some(v) = changed {
                for p in g {
                    if let Some(slot) = self.v.pointer_mut(p) {
                        *slot = v.clone();
                    }
                }
            }
        }
    }

    /// Current values of every aliased place, for [`Res::propagate_aliases`].
    pub fn alias_snapshot(&self) -> Vec<Vec<Option<Value>>> {
        self.aliases
            .iter()
            .map(|g| g.iter().map(|p| self.v.pointer(p).cloned()).collect())
            .collect()
    }

    pub fn kind(&self) -> &str {
        self.v.get("kind").and_then(Value::as_str).unwrap_or("")
    }
    pub fn api_version(&self) -> &str {
        self.v
            .get("apiVersion")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    pub fn group(&self) -> &str {
        split_api_version(self.api_version()).0
    }
    pub fn version(&self) -> &str {
        split_api_version(self.api_version()).1
    }
    pub fn name(&self) -> &str {
        self.v
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or("")
    }
    pub fn namespace(&self) -> &str {
        self.v
            .pointer("/metadata/namespace")
            .and_then(Value::as_str)
            .unwrap_or("")
    }

    pub fn meta_mut(&mut self) -> &mut Map<String, Value> {
        let obj = obj_mut(&mut self.v);
        let m = obj
            .entry("metadata")
            .or_insert_with(|| Value::Object(Map::new()));
        obj_mut(m)
    }

    pub fn set_name(&mut self, name: &str) {
        self.remember();
        self.meta_mut()
            .insert("name".into(), Value::String(name.to_string()));
    }

    pub fn set_namespace(&mut self, ns: &str) {
        self.remember();
        self.meta_mut()
            .insert("namespace".into(), Value::String(ns.to_string()));
    }

    pub fn remember(&mut self) {
        let cur = (
            self.kind().to_string(),
            self.name().to_string(),
            self.namespace().to_string(),
        );
        if self.prev.last() != Some(&cur) {
            self.prev.push(cur);
        }
    }

    /// True if `name` is the current or any previous name.
    pub fn had_name(&self, name: &str) -> bool {
        self.name() == name || self.prev.iter().any(|p| p.1 == name)
    }

    pub fn id(&self) -> ResId {
        ResId {
            group: self.group().to_string(),
            version: self.version().to_string(),
            kind: self.kind().to_string(),
            name: self.name().to_string(),
            namespace: self.namespace().to_string(),
        }
    }
}

/// Makes `v` an object (replacing anything else) and returns its map.
pub fn obj_mut(v: &mut Value) -> &mut Map<String, Value> {
    if !v.is_object() {
        *v = Value::Object(Map::new());
    }
    match v {
        Value::Object(m) => m,
        _ => unreachable!("just made an object"),
    }
}

pub fn split_api_version(av: &str) -> (&str, &str) {
    match av.rsplit_once('/') {
        Some((g, v)) => (g, v),
        None => ("", av),
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResId {
    pub group: String,
    pub version: String,
    pub kind: String,
    pub name: String,
    pub namespace: String,
}

impl ResId {
    /// The namespace kustomize compares ids with: empty means `default` for namespaced kinds.
    pub fn same_as(&self, o: &ResId) -> bool {
        self.group == o.group
            && self.version == o.version
            && self.kind == o.kind
            && self.name == o.name
            && eff_ns(&self.group, &self.version, &self.kind, &self.namespace)
                == eff_ns(&o.group, &o.version, &o.kind, &o.namespace)
    }
}

impl std::fmt::Display for ResId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let g = if self.group.is_empty() {
            "[noGrp]"
        } else {
            &self.group
        };
        let ns = if self.namespace.is_empty() {
            "[noNs]"
        } else {
            &self.namespace
        };
        write!(
            f,
            "{}.{}.{}/{}.{}",
            self.kind, self.version, g, self.name, ns
        )
    }
}

pub fn eff_ns<'a>(group: &str, version: &str, kind: &str, ns: &'a str) -> &'a str {
    if is_cluster_scoped(group, version, kind) {
        ""
    } else if ns.is_empty() {
        "default"
    } else {
        ns
    }
}

/// Whether kustomize treats the type as cluster-scoped (never given a namespace). kustomize decides
/// by apiVersion and kind from its built-in Kubernetes schema (kyaml v0.18's precomputed table):
/// the same kind under another version or group, kinds newer than that schema
/// (ValidatingAdmissionPolicy, flowcontrol v1, ...), custom resources (whatever their CRD's
/// `scope`) and unknown kinds all count as namespaced.
pub fn is_cluster_scoped(group: &str, version: &str, kind: &str) -> bool {
    let beta_or_v1 = matches!(version, "v1" | "v1beta1");
    match (group, kind) {
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        )
        | ("apiextensions.k8s.io", "CustomResourceDefinition")
        | ("apiregistration.k8s.io", "APIService")
        | ("certificates.k8s.io", "CertificateSigningRequest")
        | ("networking.k8s.io", "IngressClass")
        | ("node.k8s.io", "RuntimeClass")
        | ("rbac.authorization.k8s.io", "ClusterRole" | "ClusterRoleBinding")
        | ("scheduling.k8s.io", "PriorityClass")
        | ("storage.k8s.io", "CSIDriver" | "CSINode" | "StorageClass" | "VolumeAttachment") => {
            beta_or_v1
        }
        ("flowcontrol.apiserver.k8s.io", "FlowSchema" | "PriorityLevelConfiguration")
        | ("policy", "PodSecurityPolicy") => version == "v1beta1",
        (
            "",
            "ComponentStatus" | "Namespace" | "Node" | "NodeProxyOptions" | "PersistentVolume",
        ) => version == "v1",
        _ => false,
    }
}
