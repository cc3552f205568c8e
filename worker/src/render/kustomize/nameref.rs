//! Name references: after prefixes, suffixes and hashes renamed objects, every field that
//! refers to one of them by an earlier name is updated (kustomize's nameReference config, for
//! the built-in kinds).

use serde_json::Value;

use super::KustomizeError;
use super::config::TransformerConfig;
use super::resource::{Res, eff_ns, is_cluster_scoped};

const POD_REFS: &[(&str, &str)] = &[
    ("ConfigMap", "volumes/configMap/name"),
    ("ConfigMap", "volumes/projected/sources/configMap/name"),
    ("ConfigMap", "containers/env/valueFrom/configMapKeyRef/name"),
    (
        "ConfigMap",
        "initContainers/env/valueFrom/configMapKeyRef/name",
    ),
    (
        "ConfigMap",
        "ephemeralContainers/env/valueFrom/configMapKeyRef/name",
    ),
    ("ConfigMap", "containers/envFrom/configMapRef/name"),
    ("ConfigMap", "initContainers/envFrom/configMapRef/name"),
    ("ConfigMap", "ephemeralContainers/envFrom/configMapRef/name"),
    ("Secret", "volumes/secret/secretName"),
    ("Secret", "volumes/projected/sources/secret/name"),
    ("Secret", "volumes/csi/nodePublishSecretRef/name"),
    ("Secret", "containers/env/valueFrom/secretKeyRef/name"),
    ("Secret", "initContainers/env/valueFrom/secretKeyRef/name"),
    (
        "Secret",
        "ephemeralContainers/env/valueFrom/secretKeyRef/name",
    ),
    ("Secret", "containers/envFrom/secretRef/name"),
    ("Secret", "initContainers/envFrom/secretRef/name"),
    ("Secret", "ephemeralContainers/envFrom/secretRef/name"),
    ("Secret", "imagePullSecrets/name"),
    ("ServiceAccount", "serviceAccountName"),
    ("ServiceAccount", "serviceAccount"),
    (
        "PersistentVolumeClaim",
        "volumes/persistentVolumeClaim/claimName",
    ),
    ("PriorityClass", "priorityClassName"),
    ("Secret", "volumes/cephfs/secretRef/name"),
    ("Secret", "volumes/cinder/secretRef/name"),
    ("Secret", "volumes/flexVolume/secretRef/name"),
    ("Secret", "volumes/rbd/secretRef/name"),
    ("Secret", "volumes/scaleIO/secretRef/name"),
    ("Secret", "volumes/storageos/secretRef/name"),
    ("Secret", "volumes/azureFile/secretName"),
    ("Secret", "volumes/iscsi/secretRef/name"),
];

const OTHER_REFS: &[(&str, &str, &str)] = &[
    (
        "Ingress",
        "Service",
        "spec/rules/http/paths/backend/service/name",
    ),
    ("Ingress", "Service", "spec/defaultBackend/service/name"),
    (
        "Ingress",
        "Service",
        "spec/rules/http/paths/backend/serviceName",
    ),
    ("Ingress", "Service", "spec/backend/serviceName"),
    // kustomize v5.5 knows the validating policy binding (any version), not the mutating one.
    (
        "ValidatingAdmissionPolicyBinding",
        "ValidatingAdmissionPolicy",
        "spec/policyName",
    ),
    ("Ingress", "Secret", "spec/tls/secretName"),
    ("StatefulSet", "Service", "spec/serviceName"),
    ("APIService", "Service", "spec/service/name"),
    (
        "ValidatingWebhookConfiguration",
        "Service",
        "webhooks/clientConfig/service/name",
    ),
    (
        "MutatingWebhookConfiguration",
        "Service",
        "webhooks/clientConfig/service/name",
    ),
    ("ServiceAccount", "Secret", "imagePullSecrets/name"),
    (
        "PersistentVolumeClaim",
        "StorageClass",
        "spec/storageClassName",
    ),
    (
        "PersistentVolumeClaim",
        "PersistentVolume",
        "spec/volumeName",
    ),
    ("PersistentVolume", "StorageClass", "spec/storageClassName"),
    (
        "StatefulSet",
        "StorageClass",
        "spec/volumeClaimTemplates/spec/storageClassName",
    ),
];

fn pod_spec_path(kind: &str) -> Option<&'static str> {
    match kind {
        "Pod" => Some("spec"),
        "Deployment"
        | "ReplicaSet"
        | "DaemonSet"
        | "StatefulSet"
        | "Job"
        | "ReplicationController" => Some("spec/template/spec"),
        "CronJob" => Some("spec/jobTemplate/spec/template/spec"),
        _ => None,
    }
}

/// Candidates' current name for `value`, if exactly one object answers to it.
///
/// Only objects with a recorded earlier id can answer: an object no transformer has touched
/// (no prefix, suffix, hash or namespace transformer) is no candidate, even under the very name
/// referred to, so a renamed object of that former name wins over it (as in kustomize).
///
/// The kind is matched against the earlier ids too: an object a patch turned from a Role into a
/// ClusterRole is no ClusterRole to a reference (kustomize selects candidates by a previous id of
/// the referenced kind). A `roleRef` also wants the candidate's current kind to be the one it
/// names (`roleref`).
fn resolve(ra: &[Res], kind: &str, value: &str, ns: Option<&str>, roleref: bool) -> Option<String> {
    let mut found: Option<&str> = None;
    for c in ra {
        if !c.prev.iter().any(|p| p.1 == value)
            || !c.prev.iter().any(|p| p.0 == kind)
            || (roleref && c.kind() != kind)
        {
            continue;
        }
        if let Some(ns) = ns
            && !is_cluster_scoped(c.group(), c.version(), kind)
            && eff_ns(c.group(), c.version(), kind, c.namespace()) != ns
        {
            continue;
        }
        match found {
            None => found = Some(c.name()),
            Some(f) if f == c.name() => {}
            Some(_) => return None,
        }
    }
    found.map(str::to_string)
}

/// A reference that carries its own namespace (RoleBinding subjects, webhook services): the one
/// object of `kind` that has ever had this name (in this namespace, when one is given) gives its
/// current name and namespace.
///
/// `reachable` holds the namespaces a namespaced referrer can see (its own and those its
/// subjects name); `None` for a cluster-scoped referrer, which sees every namespace.
fn resolve_moved(
    ra: &[Res],
    kind: &str,
    name: &str,
    ns: Option<&str>,
    reachable: Option<&[&str]>,
) -> Option<(String, String)> {
    fn eff(s: &str) -> &str {
        if s.is_empty() { "default" } else { s }
    }
    let mut found: Option<&Res> = None;
    for c in ra.iter().filter(|c| c.kind() == kind) {
        if let Some(seen) = reachable
            && !seen.contains(&eff(c.namespace()))
        {
            continue;
        }
        // kustomize only considers objects with a previous id (renamed, re-namespaced or given
        // a hash suffix) and matches their previous names: an untouched ServiceAccount never
        // gets its namespace written into a subject that leaves it out.
        let ids = c.prev.iter().map(|p| (p.1.as_str(), p.2.as_str()));
        let mut hit = false;
        for (n, cns) in ids {
            if n == name && ns.is_none_or(|want| eff(want) == eff(cns)) {
                hit = true;
            }
        }
        if !hit {
            continue;
        }
        match found {
            None => found = Some(c),
            Some(f) if f.name() == c.name() && f.namespace() == c.namespace() => {}
            Some(_) => return None,
        }
    }
    found.map(|c| (c.name().to_string(), c.namespace().to_string()))
}

fn collect(v: &Value, segs: &[&str], path: String, out: &mut Vec<String>) {
    match v {
        Value::Array(a) => {
            for (i, x) in a.iter().enumerate() {
                collect(x, segs, format!("{path}/{i}"), out);
            }
        }
        Value::Object(m) => {
            if let Some((first, rest)) = segs.split_first()
                && let Some(next) = m.get(*first)
            {
                collect(
                    next,
                    rest,
                    format!("{path}/{}", first.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::String(_) if segs.is_empty() => out.push(path),
        _ => {}
    }
}

pub fn fix(ra: &mut [Res], _file: &str, cfg: &TransformerConfig) -> Result<(), KustomizeError> {
    // (resource index, JSON pointer, referenced kind, namespace to match)
    let mut edits: Vec<(usize, String, String)> = Vec::new();
    // (resource index, pointer of the map, namespace to set)
    let mut inserts: Vec<(usize, String, String)> = Vec::new();
    for (i, r) in ra.iter().enumerate() {
        let ns = eff_ns(r.group(), r.version(), r.kind(), r.namespace()).to_string();
        let mut refs: Vec<(&str, String)> = Vec::new();
        if let Some(base) = pod_spec_path(r.kind()) {
            for (kind, p) in POD_REFS {
                refs.push((kind, format!("{base}/{p}")));
            }
        }
        for (referrer, kind, p) in OTHER_REFS {
            if *referrer == r.kind() {
                refs.push((kind, p.to_string()));
            }
        }
        if r.kind() == "HorizontalPodAutoscaler"
            && let Some(k) =
                r.v.pointer("/spec/scaleTargetRef/kind")
                    .and_then(Value::as_str)
        {
            refs.push((leak_kind(k), "spec/scaleTargetRef/name".into()));
        }
        // Extra references from `configurations:`; those the defaults already cover (often
        // restated in kubebuilder's kustomizeconfig.yaml) must not run twice. A cluster-scoped
        // referrer among them (a CRD's conversion webhook) finds its object in any namespace,
        // as in kustomize.
        for (kind, p) in cfg.name_refs_of(r) {
            let p = p.replace("[]", "");
            if !refs.iter().any(|(k, q)| *k == kind && *q == p)
                && !handled_below(r.kind(), kind, &p)
            {
                refs.push((kind, p));
            }
        }
        for (kind, p) in refs {
            // kustomize lets every candidate through for a cluster-scoped referrer (an
            // APIService's service, a CRD's conversion webhook), from the tables or not.
            let want_ns = if is_cluster_scoped(r.group(), r.version(), r.kind()) {
                None
            } else {
                Some(ns.as_str())
            };
            let segs: Vec<&str> = p.split('/').collect();
            let mut ptrs = Vec::new();
            collect(&r.v, &segs, String::new(), &mut ptrs);
            for ptr in ptrs {
                if let Some(val) = r.v.pointer(&ptr).and_then(Value::as_str)
                    && let Some(new) = resolve(ra, kind, val, want_ns, false)
                    && new != val
                {
                    edits.push((i, ptr, new));
                }
            }
        }
        if matches!(r.kind(), "RoleBinding" | "ClusterRoleBinding") {
            if let Some(rr) = r.v.get("roleRef") {
                let kind = rr.get("kind").and_then(Value::as_str).unwrap_or("");
                if let Some(name) = rr.get("name").and_then(Value::as_str)
                    && matches!(kind, "Role" | "ClusterRole")
                {
                    let want = if kind == "Role" {
                        Some(ns.as_str())
                    } else {
                        None
                    };
                    if let Some(new) = resolve(ra, kind, name, want, true)
                        && new != name
                    {
                        edits.push((i, "/roleRef/name".into(), new));
                    }
                }
            }
            if let Some(Value::Array(subjects)) = r.v.get("subjects") {
                // kustomize offers a namespaced binding only the objects of its own namespace
                // and of the namespaces its ServiceAccount subjects name: a ClusterRoleBinding
                // turned into a RoleBinding by a patch no longer finds a ServiceAccount that
                // moved to another namespace.
                let reachable: Option<Vec<&str>> =
                    (!is_cluster_scoped(r.group(), r.version(), r.kind())).then(|| {
                        let named = subjects.iter().filter_map(|s| {
                            (s.get("kind").and_then(Value::as_str) == Some("ServiceAccount"))
                                .then(|| s.get("namespace").and_then(Value::as_str))
                                .flatten()
                        });
                        std::iter::once(ns.as_str()).chain(named).collect()
                    });
                for (j, s) in subjects.iter().enumerate() {
                    if s.get("kind").and_then(Value::as_str) != Some("ServiceAccount") {
                        continue;
                    }
                    let Some(name) = s.get("name").and_then(Value::as_str) else {
                        continue;
                    };
                    let sns = s.get("namespace").and_then(Value::as_str);
                    if let Some((new_name, new_ns)) =
                        resolve_moved(ra, "ServiceAccount", name, sns, reachable.as_deref())
                    {
                        if new_name != name {
                            edits.push((i, format!("/subjects/{j}/name"), new_name));
                        }
                        if !new_ns.is_empty() && Some(new_ns.as_str()) != sns {
                            inserts.push((i, format!("/subjects/{j}"), new_ns));
                        }
                    }
                }
            }
        }
        if matches!(
            r.kind(),
            "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration"
        ) && let Some(Value::Array(hooks)) = r.v.get("webhooks")
        {
            for (j, h) in hooks.iter().enumerate() {
                let Some(svc) = h.pointer("/clientConfig/service") else {
                    continue;
                };
                let Some(name) = svc.get("name").and_then(Value::as_str) else {
                    continue;
                };
                let sns = svc.get("namespace").and_then(Value::as_str);
                if let Some((new_name, new_ns)) = resolve_moved(ra, "Service", name, sns, None) {
                    let base = format!("/webhooks/{j}/clientConfig/service");
                    if new_name != name {
                        edits.push((i, format!("{base}/name"), new_name));
                    }
                    if !new_ns.is_empty() && Some(new_ns.as_str()) != sns {
                        inserts.push((i, base, new_ns));
                    }
                }
            }
        }
    }
    for (i, ptr, ns) in inserts {
        if let Some(Value::Object(m)) = ra[i].v.pointer_mut(&ptr) {
            m.insert("namespace".into(), Value::String(ns));
        }
    }
    for (i, ptr, new) in edits {
        if let Some(v) = ra[i].v.pointer_mut(&ptr) {
            *v = Value::String(new);
        }
    }
    Ok(())
}

/// References the special cases of `fix` resolve (with their own namespace handling).
fn handled_below(referrer: &str, kind: &str, path: &str) -> bool {
    match referrer {
        "RoleBinding" | "ClusterRoleBinding" => {
            path.starts_with("roleRef/") || path.starts_with("subjects")
        }
        "ValidatingWebhookConfiguration" | "MutatingWebhookConfiguration" => {
            kind == "Service" && path == "webhooks/clientConfig/service/name"
        }
        "HorizontalPodAutoscaler" => {
            path == "spec/scaleTargetRef/name" && !leak_kind(kind).is_empty()
        }
        _ => false,
    }
}

fn leak_kind(k: &str) -> &'static str {
    match k {
        "Deployment" => "Deployment",
        "StatefulSet" => "StatefulSet",
        "ReplicaSet" => "ReplicaSet",
        "ReplicationController" => "ReplicationController",
        _ => "",
    }
}
