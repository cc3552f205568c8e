//! Strategic merge patches as kustomize v5 applies them (kyaml's merge walker): maps merge,
//! `null` deletes a field, lists of maps merge by their associative key, other lists are
//! replaced, `$patch: delete|replace|merge` directives on maps and list elements.

use serde_json::{Map, Value};

/// kyaml recognises list elements by the first of these keys present in the elements.
const ASSOCIATIVE_KEYS: [&str; 7] = [
    "mountPath",
    "devicePath",
    "ip",
    "type",
    "topologyKey",
    "name",
    "containerPort",
];

/// Applies `patch` to `dst`. Returns `false` when the patch deletes the whole object.
pub fn apply(dst: &mut Value, patch: &Value) -> bool {
    if directive(patch) == Some("delete") {
        return false;
    }
    merge_value(dst, patch);
    true
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
                if k.starts_with('$') || k.starts_with("$setElementOrder") {
                    continue;
                }
                if x.is_null() {
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

fn merge_value(dst: &mut Value, patch: &Value) {
    match patch {
        Value::Object(pm) => {
            match directive(patch) {
                Some("replace") => {
                    *dst = clean(patch);
                    return;
                }
                Some("delete") => {
                    *dst = Value::Null;
                    return;
                }
                _ => {}
            }
            let Value::Object(dm) = dst else {
                *dst = clean(patch);
                return;
            };
            for (k, pv) in pm {
                if k.starts_with('$') {
                    continue;
                }
                if pv.is_null() {
                    dm.remove(k);
                    continue;
                }
                match dm.get_mut(k) {
                    Some(dv) if !dv.is_null() => {
                        merge_value(dv, pv);
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
        }
        Value::Array(pa) => {
            let Value::Array(da) = dst else {
                *dst = clean(patch);
                return;
            };
            if pa.iter().any(|x| directive(x) == Some("replace")) {
                *dst = clean(patch);
                return;
            }
            match assoc_key(da, pa) {
                Some(key) => merge_assoc(da, pa, key),
                None => *dst = clean(patch),
            }
        }
        other => *dst = other.clone(),
    }
}

fn first_key(list: &[Value]) -> Option<&'static str> {
    let first = list.iter().find(|x| x.is_object())?;
    ASSOCIATIVE_KEYS
        .into_iter()
        .find(|k| first.get(*k).is_some())
}

fn assoc_key(da: &[Value], pa: &[Value]) -> Option<&'static str> {
    if !da.iter().chain(pa.iter()).all(Value::is_object) {
        return None;
    }
    let kd = first_key(da);
    let kp = first_key(pa);
    match (kd, kp) {
        (Some(a), Some(b)) if a == b => Some(a),
        (Some(a), None) if pa.is_empty() => Some(a),
        (None, Some(b)) if da.is_empty() => Some(b),
        _ => None,
    }
}

fn key_of<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key)
}

fn merge_assoc(da: &mut Vec<Value>, pa: &[Value], key: &str) {
    // Result order (as kustomize prints it): the patch's elements in patch order, merged with
    // their counterparts, then the elements only the original has, in their original order.
    let mut out = Vec::with_capacity(da.len() + pa.len());
    let mut used = vec![false; da.len()];
    for pe in pa {
        let pk = key_of(pe, key);
        let pos = da
            .iter()
            .position(|d| pk.is_some() && key_of(d, key) == pk);
        if let Some(i) = pos {
            used[i] = true;
        }
        match (directive(pe), pos) {
            (Some("delete"), _) => {}
            (_, Some(i)) => {
                let mut merged = da[i].clone();
                merge_value(&mut merged, pe);
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
}
