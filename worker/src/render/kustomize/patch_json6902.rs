//! RFC 6902 JSON patches (add, remove, replace, move, copy, test) with RFC 6901 pointers.

use serde_json::Value;

pub fn apply(doc: &mut Value, ops: &Value) -> Result<(), String> {
    let Value::Array(ops) = ops else {
        return Err("a JSON patch must be a list of operations".into());
    };
    for op in ops {
        let name = op
            .get("op")
            .and_then(Value::as_str)
            .ok_or("operation without 'op'")?;
        let path = op
            .get("path")
            .and_then(Value::as_str)
            .ok_or("operation without 'path'")?;
        match name {
            "add" => add(doc, path, value(op)?)?,
            "remove" => {
                remove(doc, path)?;
            }
            "replace" => replace(doc, path, value(op)?)?,
            "move" => {
                let from = op
                    .get("from")
                    .and_then(Value::as_str)
                    .ok_or("move without 'from'")?;
                let v = remove(doc, from)?;
                add(doc, path, v)?;
            }
            "copy" => {
                let from = op
                    .get("from")
                    .and_then(Value::as_str)
                    .ok_or("copy without 'from'")?;
                let v = doc.pointer(from).cloned().ok_or_else(|| missing(from))?;
                add(doc, path, v)?;
            }
            "test" => {
                let v = doc.pointer(path).ok_or_else(|| missing(path))?;
                if !json_eq(v, &value(op)?) {
                    return Err(format!("testing value {path} failed: test failed"));
                }
            }
            other => return Err(format!("unexpected kind: {other}")),
        }
    }
    Ok(())
}

fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn value(op: &Value) -> Result<Value, String> {
    op.get("value")
        .cloned()
        .ok_or_else(|| "operation without 'value'".to_string())
}

fn missing(path: &str) -> String {
    format!("error in remove for path: '{path}': Unable to remove nonexistent key")
}

fn unescape(s: &str) -> String {
    s.replace("~1", "/").replace("~0", "~")
}

fn split(path: &str) -> Result<(&str, String), String> {
    let i = path
        .rfind('/')
        .ok_or_else(|| format!("invalid path {path:?}"))?;
    Ok((&path[..i], unescape(&path[i + 1..])))
}

fn add(doc: &mut Value, path: &str, v: Value) -> Result<(), String> {
    if path.is_empty() {
        *doc = v;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    let p = doc.pointer_mut(parent).ok_or_else(|| {
        format!("add operation does not apply: doc is missing path: \"{path}\": missing value")
    })?;
    match p {
        Value::Object(m) => {
            m.insert(last, v);
        }
        Value::Array(a) => {
            if last == "-" {
                a.push(v);
            } else {
                let i: usize = last
                    .parse()
                    .map_err(|_| format!("invalid index {last:?}"))?;
                if i > a.len() {
                    return Err(format!("Unable to access invalid index: {i}"));
                }
                a.insert(i, v);
            }
        }
        _ => {
            return Err(format!(
                "add operation does not apply: doc is missing path: \"{path}\""
            ));
        }
    }
    Ok(())
}

/// kustomize's JSON patch library (evanphx/json-patch v5) adds a missing key to an existing map on
/// `replace`; a missing list index or a missing parent stays an error.
fn replace(doc: &mut Value, path: &str, v: Value) -> Result<(), String> {
    if let Some(target) = doc.pointer_mut(path) {
        *target = v;
        return Ok(());
    }
    let (parent, last) = split(path)?;
    match doc.pointer_mut(parent) {
        Some(Value::Object(m)) => {
            m.insert(last, v);
            Ok(())
        }
        Some(_) => Err(format!(
            "replace operation does not apply: doc is missing key: {path}: missing value"
        )),
        None => Err(format!(
            "replace operation does not apply: doc is missing path: {path}: missing value"
        )),
    }
}

fn remove(doc: &mut Value, path: &str) -> Result<Value, String> {
    let (parent, last) = split(path)?;
    let p = doc.pointer_mut(parent).ok_or_else(|| missing(path))?;
    match p {
        Value::Object(m) => m.shift_remove(&last).ok_or_else(|| missing(path)),
        Value::Array(a) => {
            let i: usize = last.parse().map_err(|_| missing(path))?;
            if i >= a.len() {
                return Err(missing(path));
            }
            Ok(a.remove(i))
        }
        _ => Err(missing(path)),
    }
}
