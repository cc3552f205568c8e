//! Walking kustomize field specs (`spec/template/metadata/labels`): lists along the way are
//! entered element by element, missing maps are created only when the spec says so.

use serde_json::{Map, Value};

/// Calls `f` on the value at `path` (segments separated by `/`, `[]` suffixes ignored).
pub fn visit(v: &mut Value, path: &str, create: bool, f: &mut dyn FnMut(&mut Value)) {
    let segs: Vec<&str> = path.split('/').map(|s| s.trim_end_matches("[]")).collect();
    walk(v, &segs, create, f);
}

fn walk(v: &mut Value, segs: &[&str], create: bool, f: &mut dyn FnMut(&mut Value)) {
    if let Value::Array(items) = v {
        for it in items {
            walk(it, segs, create, f);
        }
        return;
    }
    let Some((first, rest)) = segs.split_first() else {
        f(v);
        return;
    };
    let Value::Object(m) = v else { return };
    if !m.contains_key(*first) || m.get(*first).is_some_and(Value::is_null) {
        if !create {
            return;
        }
        m.insert(first.to_string(), Value::Object(Map::new()));
    }
    if let Some(next) = m.get_mut(*first) {
        walk(next, rest, create, f);
    }
}

/// JSON pointers of the values at `path` (creating missing maps when `create`), in document
/// order.
pub fn pointers(v: &mut Value, path: &str, create: bool) -> Vec<String> {
    let segs: Vec<&str> = path.split('/').map(|s| s.trim_end_matches("[]")).collect();
    let mut out = Vec::new();
    walk_ptr(v, &segs, create, String::new(), &mut out);
    out
}

pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn walk_ptr(v: &mut Value, segs: &[&str], create: bool, at: String, out: &mut Vec<String>) {
    if let Value::Array(items) = v {
        for (i, it) in items.iter_mut().enumerate() {
            walk_ptr(it, segs, create, format!("{at}/{i}"), out);
        }
        return;
    }
    let Some((first, rest)) = segs.split_first() else {
        out.push(at);
        return;
    };
    let Value::Object(m) = v else { return };
    if !m.contains_key(*first) || m.get(*first).is_some_and(Value::is_null) {
        if !create {
            return;
        }
        m.insert(first.to_string(), Value::Object(Map::new()));
    }
    if let Some(next) = m.get_mut(*first) {
        walk_ptr(next, rest, create, format!("{at}/{}", escape(first)), out);
    }
}
