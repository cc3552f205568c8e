//! `patches`, `patchesStrategicMerge` and `patchesJson6902`: loading patch text (file or inline)
//! and choosing the resources it applies to.

use serde_json::Value;

use super::KustomizeError;
use super::loader::{Kust, Loader};
use super::resource::{Res, is_cluster_scoped, obj_mut};
use super::selector::Selector;
use super::yaml_load::NullSpelling;
use super::{patch_json6902, patch_smp, yaml_load};

/// Inline patch text or a file next to the kustomization.
fn load_text(
    ld: &mut Loader,
    k: &Kust,
    path: Option<&str>,
    inline: Option<&str>,
) -> Result<(String, String), KustomizeError> {
    match (path, inline) {
        (Some(p), None) => {
            let rp = ld.join_file(&k.dir, p, &k.file)?;
            let text = ld.read(&rp)?;
            Ok((text, rp.to_string()))
        }
        (None, Some(t)) => Ok((t.to_string(), k.file_str())),
        (Some(_), Some(_)) => Err(KustomizeError::invalid(
            &k.file,
            "patch and path can't be set at the same time",
        )),
        (None, None) => Err(KustomizeError::invalid(
            &k.file,
            "must specify one of patch and path",
        )),
    }
}

fn is_json_patch(docs: &[Value]) -> bool {
    docs.len() == 1 && docs[0].is_array()
}

pub fn run_patches(ld: &mut Loader, k: &Kust, ra: &mut Vec<Res>) -> Result<(), KustomizeError> {
    let Some(list) = k.field("patches") else {
        return Ok(());
    };
    let Value::Array(items) = list else {
        return Err(KustomizeError::invalid(&k.file, "patches: expected a list"));
    };
    for item in items {
        let path = item.get("path").and_then(Value::as_str);
        let inline = item.get("patch").and_then(Value::as_str);
        let (text, src) = load_text(ld, k, path, inline)?;
        let opt = |n: &str| {
            item.pointer(&format!("/options/{n}"))
                .and_then(Value::as_bool)
                .unwrap_or(false)
        };
        let allow = Allow {
            name: opt("allowNameChange"),
            kind: opt("allowKindChange"),
        };
        let (mut docs, spellings) = parse_patch(&text, &src)?;
        if is_json_patch(&docs) {
            // kustomize reads JSON patches with go-yaml v2 (YAML 1.1 booleans).
            docs = vec![yaml_load::parse_kustomization(&text, &src)?];
        }
        let target = match item.get("target") {
            Some(t) if !t.is_null() => Some(Selector::parse(t, &src)?),
            _ => None,
        };
        if is_json_patch(&docs) {
            let Some(sel) = target else {
                return Err(KustomizeError::invalid(
                    &src,
                    "must specify a target for JSON patch",
                ));
            };
            for r in ra.iter_mut() {
                if sel.matches(r, &src)? {
                    apply_json(r, &docs[0], &src)?;
                }
            }
            continue;
        }
        for (doc, spelling) in docs.iter().zip(&spellings) {
            match &target {
                Some(sel) => {
                    let mut keep = Vec::with_capacity(ra.len());
                    for mut r in std::mem::take(ra) {
                        if sel.matches(&r, &src)? {
                            let mut p = doc.clone();
                            let m = obj_mut(&mut p);
                            let meta = obj_mut(m.entry("metadata").or_insert(Value::Null));
                            if !allow.name || !meta.contains_key("name") {
                                meta.insert("name".into(), Value::String(r.name().to_string()));
                            }
                            if r.namespace().is_empty() {
                                meta.remove("namespace");
                            } else {
                                meta.insert(
                                    "namespace".into(),
                                    Value::String(r.namespace().to_string()),
                                );
                            }
                            if !allow.kind || !m.contains_key("kind") {
                                m.insert("kind".into(), Value::String(r.kind().to_string()));
                                m.insert(
                                    "apiVersion".into(),
                                    Value::String(r.api_version().to_string()),
                                );
                            }
                            if !apply_smp(&mut r, (&p, spelling), &src, allow)? {
                                continue;
                            }
                        }
                        keep.push(r);
                    }
                    *ra = keep;
                }
                None => smp_by_id(ra, (doc, spelling), &src)?,
            }
        }
    }
    Ok(())
}

/// The documents of a patch, each with the spelling of its nulls.
fn parse_patch(text: &str, src: &str) -> Result<(Vec<Value>, Vec<NullSpelling>), KustomizeError> {
    let docs = yaml_load::parse_patch_documents(text, src)?;
    if docs.is_empty() {
        return Err(KustomizeError::invalid(src, "patch is empty"));
    }
    Ok(docs.into_iter().unzip())
}

fn apply_json(r: &mut Res, ops: &Value, src: &str) -> Result<(), KustomizeError> {
    let before = (
        r.kind().to_string(),
        r.name().to_string(),
        r.namespace().to_string(),
    );
    // kustomize applies the patch to the object's JSON: annotations left empty (block style)
    // come back as the text `null`, as does any annotation the patch sets to null.
    for p in &r.nulls.empty_annotations {
        if let Some(v) = r.v.pointer_mut(p)
            && v.as_str() == Some("")
        {
            *v = Value::String("null".into());
        }
    }
    // kustomize's objects always carry its own bookkeeping annotations while a patch applies, so
    // an `add` under /metadata/annotations finds the map even when the object has none.
    let mut lent_annotations = false;
    if let Some(Value::Object(meta)) = r.v.get_mut("metadata")
        && !meta.contains_key("annotations")
    {
        meta.insert("annotations".into(), Value::Object(Default::default()));
        lent_annotations = true;
    }
    let patched = patch_json6902::apply(&mut r.v, ops);
    if lent_annotations
        && let Some(Value::Object(meta)) = r.v.get_mut("metadata")
        && meta
            .get("annotations")
            .is_some_and(|a| a.as_object().is_some_and(|m| m.is_empty()))
    {
        meta.remove("annotations");
    }
    patched.map_err(|e| KustomizeError::invalid(src, e))?;
    if let Some(Value::Object(ann)) = r.v.pointer_mut("/metadata/annotations") {
        for v in ann.values_mut() {
            if v.is_null() {
                *v = Value::String("null".into());
            }
        }
    }
    // kustomize applies JSON patches to a JSON copy and rebuilds the object: no shared nodes.
    r.aliases.clear();
    r.json_patched = true;
    // Rebuilt from JSON, where every null is spelled out.
    r.nulls = NullSpelling::default();
    let after = (
        r.kind().to_string(),
        r.name().to_string(),
        r.namespace().to_string(),
    );
    if before != after && r.prev.last() != Some(&before) {
        r.prev.push(before);
    }
    Ok(())
}

/// Returns false when the patch deleted the resource. Name, namespace and kind survive the
/// patch, as in kustomize.
fn apply_smp(
    r: &mut Res,
    (patch, spelling): (&Value, &NullSpelling),
    src: &str,
    allow: Allow,
) -> Result<bool, KustomizeError> {
    if !patch.is_object() {
        return Err(KustomizeError::invalid(
            src,
            "a strategic merge patch must be a mapping",
        ));
    }
    let (name, ns, kind) = (
        r.name().to_string(),
        r.namespace().to_string(),
        r.kind().to_string(),
    );
    let snapshot = r.alias_snapshot();
    let merged = patch_smp::apply(&mut r.v, &r.nulls, patch, spelling).map_err(|e| match e {
        patch_smp::Failure::Unsupported(feature) => KustomizeError::unsupported(feature, src),
        patch_smp::Failure::Invalid(message) => KustomizeError::invalid(src, message),
    })?;
    let keep = merged.is_some();
    // Empty values the merge did not reach (in lists it replaced or copied) stay empty for the
    // next merge.
    r.nulls = merged.unwrap_or_default();
    r.propagate_aliases(&snapshot);
    if !keep || r.v.as_object().is_some_and(|o| o.is_empty()) {
        return Ok(false);
    }
    let new_id = (r.kind().to_string(), r.name().to_string(), ns.clone());
    if (allow.name || allow.kind) && new_id != (kind.clone(), name.clone(), ns.clone()) {
        let before = (kind.clone(), name.clone(), ns.clone());
        if r.prev.last() != Some(&before) {
            r.prev.push(before);
        }
    }
    if !allow.kind {
        obj_mut(&mut r.v).insert("kind".into(), Value::String(kind));
    }
    let meta = r.meta_mut();
    if !allow.name {
        meta.insert("name".into(), Value::String(name));
    }
    if ns.is_empty() {
        meta.remove("namespace");
    } else {
        meta.insert("namespace".into(), Value::String(ns));
    }
    Ok(true)
}

/// `patches[].options`: whether a patch may rename the object or change its kind.
#[derive(Clone, Copy, Default)]
struct Allow {
    name: bool,
    kind: bool,
}

/// A strategic merge patch without target applies to the one resource with its id.
fn smp_by_id(
    ra: &mut Vec<Res>,
    (doc, spelling): (&Value, &NullSpelling),
    src: &str,
) -> Result<(), KustomizeError> {
    let kind = doc.get("kind").and_then(Value::as_str).unwrap_or("");
    let av = doc.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let name = doc
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let ns = doc
        .pointer("/metadata/namespace")
        .and_then(Value::as_str)
        .unwrap_or("");
    let eff = |s: &str| {
        if s.is_empty() {
            "default".to_string()
        } else {
            s.to_string()
        }
    };
    // A cluster-scoped object has no namespace to match: kustomize ignores the one a patch for
    // it names (the object keeps having none).
    let ns_ok = |r: &Res, other: &str| {
        is_cluster_scoped(r.group(), r.version(), r.kind()) || eff(other) == eff(ns)
    };
    let matches: Vec<usize> = ra
        .iter()
        .enumerate()
        .filter(|(_, r)| {
            r.kind() == kind
                && r.api_version() == av
                && ((r.name() == name && ns_ok(r, r.namespace()))
                    || r.prev.iter().any(|p| p.1 == name && ns_ok(r, &p.2)))
        })
        .map(|(i, _)| i)
        .collect();
    match matches.as_slice() {
        [i] => {
            if !apply_smp(&mut ra[*i], (doc, spelling), src, Allow::default())? {
                ra.remove(*i);
            }
            Ok(())
        }
        [] => Err(KustomizeError::invalid(
            src,
            format!(
                "no resource matches strategic merge patch \"{kind}.{}/{name}.{}\"",
                super::resource::split_api_version(av).1,
                if ns.is_empty() { "[noNs]" } else { ns }
            ),
        )),
        _ => Err(KustomizeError::invalid(
            src,
            format!("multiple resources match strategic merge patch {kind} {name}"),
        )),
    }
}

pub fn run_strategic_merge_legacy(
    ld: &mut Loader,
    k: &Kust,
    ra: &mut Vec<Res>,
) -> Result<(), KustomizeError> {
    for entry in k.str_list("patchesStrategicMerge")? {
        // An entry is a file path unless it parses as an inline patch document.
        let looks_inline = entry.contains('\n') || entry.contains(": ");
        let (text, src) = if looks_inline {
            (entry.clone(), k.file_str())
        } else {
            load_text(ld, k, Some(&entry), None)?
        };
        let (docs, spellings) = parse_patch(&text, &src)?;
        for (doc, spelling) in docs.iter().zip(&spellings) {
            if doc.is_array() {
                return Err(KustomizeError::invalid(
                    &src,
                    "patchesStrategicMerge entry is a JSON patch",
                ));
            }
            smp_by_id(ra, (doc, spelling), &src)?;
        }
    }
    Ok(())
}

pub fn run_json6902_legacy(
    ld: &mut Loader,
    k: &Kust,
    ra: &mut [Res],
) -> Result<(), KustomizeError> {
    let Some(list) = k.field("patchesJson6902") else {
        return Ok(());
    };
    let Value::Array(items) = list else {
        return Err(KustomizeError::invalid(
            &k.file,
            "patchesJson6902: expected a list",
        ));
    };
    for item in items {
        let path = item.get("path").and_then(Value::as_str);
        let inline = item.get("patch").and_then(Value::as_str);
        let (text, src) = load_text(ld, k, path, inline)?;
        let (mut docs, _) = parse_patch(&text, &src)?;
        if is_json_patch(&docs) {
            docs = vec![yaml_load::parse_kustomization(&text, &src)?];
        }
        let Some(t) = item.get("target") else {
            return Err(KustomizeError::invalid(
                &src,
                "must specify a target for JSON patch",
            ));
        };
        let sel = Selector::parse(t, &src)?;
        if !is_json_patch(&docs) {
            return Err(KustomizeError::invalid(
                &src,
                "patchesJson6902 entry is not a list of operations",
            ));
        }
        for r in ra.iter_mut() {
            if sel.matches(r, &src)? {
                apply_json(r, &docs[0], &src)?;
            }
        }
    }
    Ok(())
}
