//! Strategic merge patches as kustomize v5 applies them: maps merge, `null` deletes a field,
//! lists whose schema declares a patch merge key merge element by element (the patch's elements
//! first, then the ones only the original has), other lists are replaced,
//! `$patch: delete|replace|merge` directives on maps and list elements. Kinds without a schema
//! (custom resources) get their lists replaced.

use serde_json::{Map, Value};

use super::merge_keys::{FieldInfo, TypeRef};

/// Why a patch could not be applied natively.
pub struct Unsupported(pub String);

/// Applies `patch` to `dst`. Returns `Ok(false)` when the patch deletes the whole object.
pub fn apply(dst: &mut Value, patch: &Value) -> Result<bool, Unsupported> {
    if directive(patch) == Some("delete") {
        return Ok(false);
    }
    let av = dst.get("apiVersion").and_then(Value::as_str).unwrap_or("");
    let kind = dst.get("kind").and_then(Value::as_str).unwrap_or("");
    let ty = TypeRef::for_gvk(av, kind);
    merge_value(dst, patch, ty)?;
    drop_nulls(dst);
    Ok(true)
}

/// kustomize's merge walks the whole patched object and leaves out every field whose value is
/// null, also outside the patched parts (`resources: null` in a container disappears).
fn drop_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, x| !x.is_null());
            m.values_mut().for_each(drop_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(drop_nulls),
        _ => {}
    }
}

fn directive(v: &Value) -> Option<&str> {
    v.get("$patch").and_then(Value::as_str)
}

/// A patch value with its directives removed, as it lands when there is nothing to merge with.
fn clean(v: &Value) -> Value {
    match v {
        Value::Object(m) => {
            let mut o = Map::new();
            for (k, x) in m {
                if k.starts_with('$') || x.is_null() {
                    continue;
                }
                o.insert(k.clone(), clean(x));
            }
            Value::Object(o)
        }
        Value::Array(a) => Value::Array(
            a.iter()
                .filter(|x| !matches!(directive(x), Some("delete") | Some("replace")))
                .map(clean)
                .collect(),
        ),
        other => other.clone(),
    }
}

fn merge_value(dst: &mut Value, patch: &Value, ty: TypeRef) -> Result<(), Unsupported> {
    let Value::Object(pm) = patch else {
        *dst = clean(patch);
        return Ok(());
    };
    match directive(patch) {
        Some("replace") => {
            *dst = clean(patch);
            return Ok(());
        }
        Some("delete") => {
            *dst = Value::Null;
            return Ok(());
        }
        _ => {}
    }
    let Value::Object(dm) = dst else {
        *dst = clean(patch);
        return Ok(());
    };
    for (k, pv) in pm {
        if k == "$patch" {
            continue;
        }
        if k.starts_with('$') {
            // $retainKeys, $setElementOrder/..., $deleteFromPrimitiveList/...: not implemented;
            // refusing beats silently ignoring them.
            return Err(Unsupported(format!("strategic merge directive {k}")));
        }
        if pv.is_null() {
            dm.remove(k);
            continue;
        }
        let info = ty.field(k);
        match dm.get_mut(k) {
            Some(dv) if !dv.is_null() => {
                if let (Value::Array(da), Value::Array(pa)) = (&mut *dv, pv) {
                    merge_list(da, pa, &info)?;
                    continue;
                }
                merge_value(dv, pv, info.ty)?;
                if dv.is_null() {
                    dm.remove(k);
                }
            }
            _ => {
                if directive(pv) == Some("delete") {
                    continue;
                }
                dm.insert(k.clone(), clean(pv));
            }
        }
    }
    Ok(())
}

fn merge_list(da: &mut Vec<Value>, pa: &[Value], info: &FieldInfo) -> Result<(), Unsupported> {
    if pa.iter().any(|x| directive(x) == Some("replace")) {
        *da = pa
            .iter()
            .filter(|x| directive(x) != Some("replace"))
            .map(clean)
            .collect();
        return Ok(());
    }
    let merge = info.strategy.split(',').any(|s| s == "merge");
    if !merge {
        *da = pa.iter().map(clean).collect();
        return Ok(());
    }
    let scalar = |v: &Value| !v.is_object() && !v.is_array();
    if info.merge_key.is_empty() && da.iter().chain(pa.iter()).all(scalar) {
        // A set of scalars (finalizers): the patch's values, then the others the original had.
        let mut out: Vec<Value> = Vec::new();
        for v in pa.iter().chain(da.iter()) {
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        *da = out;
        return Ok(());
    }
    if info.merge_key.is_empty() || !da.iter().chain(pa.iter()).all(Value::is_object) {
        return Err(Unsupported("strategic merge of a mixed list".into()));
    }
    if pa.iter().any(|p| p.get(info.merge_key).is_none()) {
        return Err(Unsupported(format!(
            "strategic merge patch list element without its merge key {}",
            info.merge_key
        )));
    }
    merge_assoc(da, pa, info.merge_key, info.ty)
}

fn merge_assoc(
    da: &mut Vec<Value>,
    pa: &[Value],
    key: &str,
    ty: TypeRef,
) -> Result<(), Unsupported> {
    // Result order (as kustomize prints it): the patch's elements in patch order, merged with
    // their counterparts, then the elements only the original has, in their original order.
    let mut out = Vec::with_capacity(da.len() + pa.len());
    let mut used = vec![false; da.len()];
    for pe in pa {
        let pk = pe.get(key);
        let pos = da.iter().position(|d| pk.is_some() && d.get(key) == pk);
        if let Some(i) = pos {
            used[i] = true;
        }
        match (directive(pe), pos) {
            (Some("delete"), _) => {}
            (_, Some(i)) => {
                let mut merged = da[i].clone();
                merge_value(&mut merged, pe, ty)?;
                out.push(merged);
            }
            (_, None) => out.push(clean(pe)),
        }
    }
    for (i, d) in da.drain(..).enumerate() {
        if !used[i] {
            out.push(d);
        }
    }
    *da = out;
    Ok(())
}
