//! Walking kustomize field specs (`spec/template/metadata/labels`): lists along the way are
//! entered element by element, missing maps are created only when the spec says so, and a
//! missing list (a `name[]` segment) is never created: kustomize has no element to create in.

use serde_json::{Map, Value};

/// A path segment and whether the spec marks it as a list (`name[]`).
type Seg<'a> = (&'a str, bool);

fn segments(path: &str) -> Vec<Seg<'_>> {
    path.split('/')
        .map(|s| match s.strip_suffix("[]") {
            Some(name) => (name, true),
            None => (s, false),
        })
        .collect()
}

/// Calls `f` on the value at `path` (segments separated by `/`).
pub fn visit(v: &mut Value, path: &str, create: bool, f: &mut dyn FnMut(&mut Value)) {
    walk(v, &segments(path), create, f);
}

fn walk(v: &mut Value, segs: &[Seg<'_>], create: bool, f: &mut dyn FnMut(&mut Value)) {
    if let Value::Array(items) = v {
        for it in items {
            walk(it, segs, create, f);
        }
        return;
    }
    let Some((&(first, list), rest)) = segs.split_first() else {
        f(v);
        return;
    };
    let Value::Object(m) = v else { return };
    if !m.contains_key(first) || m.get(first).is_some_and(Value::is_null) {
        if !create || list {
            return;
        }
        m.insert(first.to_string(), Value::Object(Map::new()));
    }
    if let Some(next) = m.get_mut(first) {
        walk(next, rest, create, f);
    }
}

/// JSON pointers of the values at `path` (creating missing maps when `create`), in document
/// order.
pub fn pointers(v: &mut Value, path: &str, create: bool) -> Vec<String> {
    let mut out = Vec::new();
    walk_ptr(v, &segments(path), create, String::new(), &mut out);
    out
}

pub fn escape(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

fn walk_ptr(v: &mut Value, segs: &[Seg<'_>], create: bool, at: String, out: &mut Vec<String>) {
    if let Value::Array(items) = v {
        for (i, it) in items.iter_mut().enumerate() {
            walk_ptr(it, segs, create, format!("{at}/{i}"), out);
        }
        return;
    }
    let Some((&(first, list), rest)) = segs.split_first() else {
        out.push(at);
        return;
    };
    let Value::Object(m) = v else { return };
    if !m.contains_key(first) || m.get(first).is_some_and(Value::is_null) {
        if !create || list {
            return;
        }
        m.insert(first.to_string(), Value::Object(Map::new()));
    }
    if let Some(next) = m.get_mut(first) {
        walk_ptr(next, rest, create, format!("{at}/{}", escape(first)), out);
    }
}
