//! `replacements`: copies a field of one resource (the source) into fields of others.
//!
//! Sources and targets are chosen by exact group/version/kind/name/namespace (current or any
//! earlier id) plus label/annotation selectors; field paths are dot-separated with `[k=v]`
//! list-element selectors, numeric indices, `*` and `[literal.key]`. A scalar target keeps its
//! type and takes the source's text, as kustomize does.

use serde_json::{Map, Value};

use super::KustomizeError;
use super::loader::{Kust, Loader};
use super::resource::Res;
use super::selector::label_selector_matches;
use super::yaml_load;

pub fn run(ld: &mut Loader, k: &Kust, ra: &mut [Res]) -> Result<(), KustomizeError> {
    let Some(list) = k.field("replacements") else {
        return Ok(());
    };
    let Value::Array(items) = list else {
        return Err(KustomizeError::invalid(
            &k.file,
            "replacements: expected a list",
        ));
    };
    let file = k.file_str();
    for item in items {
        if let Some(path) = item.get("path").and_then(Value::as_str) {
            let p = ld.join_file(&k.dir, path, &k.file)?;
            let text = ld.read(&p)?;
            let src = p.to_string();
            for doc in yaml_load::parse_documents(&text, &src)? {
                match doc {
                    Value::Array(reps) => {
                        for r in &reps {
                            apply(r, ra, &src)?;
                        }
                    }
                    other => apply(&other, ra, &src)?,
                }
            }
        } else {
            apply(item, ra, &file)?;
        }
    }
    Ok(())
}

/// Exact-match resource selection, on the current id or any earlier one.
fn selects(sel: &Value, r: &Res, file: &str) -> Result<bool, KustomizeError> {
    let s = |f: &str| sel.get(f).and_then(Value::as_str).filter(|x| !x.is_empty());
    if s("group").is_some_and(|g| g != r.group()) || s("version").is_some_and(|v| v != r.version())
    {
        return Ok(false);
    }
    if let Some(kind) = s("kind")
        && kind != r.kind()
        && !r.prev.iter().any(|p| p.0 == kind)
    {
        return Ok(false);
    }
    if let Some(name) = s("name")
        && !r.had_name(name)
    {
        return Ok(false);
    }
    if let Some(ns) = s("namespace")
        && ns != r.namespace()
        && !r.prev.iter().any(|p| p.2 == ns)
    {
        return Ok(false);
    }
    if let Some(l) = s("labelSelector")
        && !label_selector_matches(l, r.v.pointer("/metadata/labels"), file)?
    {
        return Ok(false);
    }
    if let Some(a) = s("annotationSelector")
        && !label_selector_matches(a, r.v.pointer("/metadata/annotations"), file)?
    {
        return Ok(false);
    }
    Ok(true)
}

fn apply(rep: &Value, ra: &mut [Res], file: &str) -> Result<(), KustomizeError> {
    let source = rep
        .get("source")
        .ok_or_else(|| KustomizeError::invalid(file, "replacement has no source"))?;
    let mut found = Vec::new();
    for (i, r) in ra.iter().enumerate() {
        if selects(source, r, file)? {
            found.push(i);
        }
    }
    let idx = match found.as_slice() {
        [i] => *i,
        [] => {
            return Err(KustomizeError::invalid(
                file,
                format!("nothing selected by replacement source {source}"),
            ));
        }
        _ => {
            return Err(KustomizeError::invalid(
                file,
                format!("multiple matches for replacement source {source}"),
            ));
        }
    };
    let field_path = source
        .get("fieldPath")
        .and_then(Value::as_str)
        .unwrap_or("metadata.name");
    let segs = split_path(field_path);
    let mut values = Vec::new();
    get_all(&ra[idx].v, &segs, &mut values);
    let mut value = match values.as_slice() {
        [v] => (*v).clone(),
        [] => {
            return Err(KustomizeError::invalid(
                file,
                format!("fieldPath `{field_path}` is missing for replacement source {source}"),
            ));
        }
        _ => {
            return Err(KustomizeError::unsupported(
                "replacement source field path matching several fields",
                file,
            ));
        }
    };
    if let Some(opts) = source.get("options")
        && let Some(delim) = opts
            .get("delimiter")
            .and_then(Value::as_str)
            .filter(|d| !d.is_empty())
    {
        let text = scalar_text(&value).ok_or_else(|| {
            KustomizeError::invalid(file, "delimiter option can only be used with scalar nodes")
        })?;
        let parts: Vec<&str> = text.split(delim).collect();
        let index = opts.get("index").and_then(Value::as_i64).unwrap_or(0);
        let part = usize::try_from(index)
            .ok()
            .and_then(|i| parts.get(i))
            .ok_or_else(|| {
                KustomizeError::invalid(
                    file,
                    format!("options.index {index} is out of bounds for value {text}"),
                )
            })?;
        value = retype(part, &value, file)?;
    }
    let Some(Value::Array(targets)) = rep.get("targets") else {
        return Ok(());
    };
    for t in targets {
        let select = t
            .get("select")
            .cloned()
            .unwrap_or(Value::Object(Map::new()));
        let rejects: Vec<Value> = t
            .get("reject")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        let opts = t.get("options").cloned().unwrap_or(Value::Null);
        let create = opts.get("create").and_then(Value::as_bool).unwrap_or(false);
        let paths: Vec<String> = t
            .get("fieldPaths")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(Value::as_str)
                    .map(str::to_string)
                    .collect()
            })
            .unwrap_or_else(|| vec!["metadata.name".to_string()]);
        for r in ra.iter_mut() {
            if !selects(&select, r, file)? {
                continue;
            }
            let mut rejected = false;
            for rej in &rejects {
                if selects(rej, r, file)? {
                    rejected = true;
                }
            }
            if rejected {
                continue;
            }
            for p in &paths {
                let segs = split_path(p);
                let mut hit = false;
                set_all(&mut r.v, &segs, create, &mut |target| {
                    hit = true;
                    set_value(target, &value, &opts, file)
                })?;
                if !hit {
                    return Err(KustomizeError::invalid(
                        file,
                        format!("unable to find field \"{p}\" in replacement target"),
                    ));
                }
            }
        }
    }
    Ok(())
}

fn scalar_text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => super::emit::go_json_float(f),
            _ => n.to_string(),
        }),
        Value::Bool(b) => Some(b.to_string()),
        Value::Null => Some(String::new()),
        _ => None,
    }
}

/// `text` with the YAML type of `like` (kustomize keeps the target node's tag).
fn retype(text: &str, like: &Value, file: &str) -> Result<Value, KustomizeError> {
    let bad = || KustomizeError::invalid(file, format!("cannot use {text:?} where a {like} was"));
    Ok(match like {
        Value::String(_) => Value::String(text.to_string()),
        Value::Number(_) => {
            let plain: String = text.chars().filter(|c| *c != '_').collect();
            match yaml_load::go_parse_int(&plain) {
                Some(v) => v,
                None if yaml_load::is_yaml_float(&plain) => plain
                    .parse::<f64>()
                    .ok()
                    .and_then(serde_json::Number::from_f64)
                    .map(Value::Number)
                    .ok_or_else(bad)?,
                None => return Err(bad()),
            }
        }
        Value::Bool(_) => match text {
            "true" | "True" | "TRUE" => Value::Bool(true),
            "false" | "False" | "FALSE" => Value::Bool(false),
            _ => return Err(bad()),
        },
        _ => {
            return Err(KustomizeError::unsupported(
                "replacement into a null or non-scalar target",
                file,
            ));
        }
    })
}

fn set_value(
    target: &mut Value,
    value: &Value,
    opts: &Value,
    file: &str,
) -> Result<(), KustomizeError> {
    let mut value = value.clone();
    if let Some(delim) = opts
        .get("delimiter")
        .and_then(Value::as_str)
        .filter(|d| !d.is_empty())
    {
        let cur = scalar_text(target).ok_or_else(|| {
            KustomizeError::invalid(file, "delimiter option can only be used with scalar nodes")
        })?;
        let v = scalar_text(&value).ok_or_else(|| {
            KustomizeError::invalid(file, "delimiter option can only be used with scalar nodes")
        })?;
        let mut parts: Vec<String> = cur.split(delim).map(str::to_string).collect();
        let index = opts.get("index").and_then(Value::as_i64).unwrap_or(0);
        if index < 0 {
            parts.insert(0, v);
        } else if index as usize >= parts.len() {
            parts.push(v);
        } else {
            parts[index as usize] = v;
        }
        value = retype(&parts.join(delim), &value, file)?;
    }
    let target_scalar = !matches!(target, Value::Object(_) | Value::Array(_));
    let value_scalar = !matches!(value, Value::Object(_) | Value::Array(_));
    if target_scalar && !target.is_null() {
        if !value_scalar {
            return Err(KustomizeError::unsupported(
                "replacing a scalar with a map or list",
                file,
            ));
        }
        let text = scalar_text(&value).unwrap_or_default();
        *target = retype(&text, target, file)?;
    } else {
        *target = value;
    }
    Ok(())
}

/// Splits a field path the way kustomize's `SmarterPathSplitter` does: on dots, where `\.` is a
/// literal dot (`metadata.labels.example\.com/user`), a leading dot is dropped, and a bracketed
/// part spanning dots is joined again (`[k=v.w]`; `[x.y]` without `=` becomes the key `x.y`).
fn split_path(p: &str) -> Vec<String> {
    let mut parts: Vec<&str> = p.split('.').collect();
    if parts.len() > 1 && parts[0].is_empty() {
        parts.remove(0);
    }
    let mut joined: Vec<String> = Vec::new();
    for part in parts {
        match joined.last_mut() {
            Some(last) if last.ends_with('\\') => {
                last.pop();
                last.push('.');
                last.push_str(part);
            }
            _ => joined.push(part.to_string()),
        }
    }
    let mut out = Vec::new();
    let mut i = 0;
    while i < joined.len() {
        let elem = &joined[i];
        if elem.starts_with('[') && !elem.ends_with(']') {
            let mut bracketed = vec![elem.clone()];
            while i < joined.len() - 1 {
                i += 1;
                bracketed.push(joined[i].clone());
                if joined[i].ends_with(']') {
                    break;
                }
            }
            let s = bracketed.join(".");
            if s.contains('=') {
                out.push(s);
            } else {
                out.push(s.trim_matches(|c| c == '[' || c == ']').to_string());
            }
        } else {
            out.push(elem.clone());
        }
        i += 1;
    }
    out
}

enum Seg<'a> {
    Key(&'a str),
    Match(&'a str, &'a str),
    Index(usize),
    All,
}

fn seg(s: &str) -> Seg<'_> {
    if let Some(inner) = s.strip_prefix('[').and_then(|x| x.strip_suffix(']')) {
        return match inner.split_once('=') {
            Some((k, v)) => Seg::Match(k, v),
            None => Seg::Key(inner),
        };
    }
    if s == "*" {
        return Seg::All;
    }
    if let Ok(i) = s.parse::<usize>() {
        return Seg::Index(i);
    }
    Seg::Key(s)
}

fn elem_matches(e: &Value, k: &str, v: &str) -> bool {
    e.get(k).and_then(scalar_text).is_some_and(|t| t == v)
}

fn get_all<'a>(v: &'a Value, segs: &[String], out: &mut Vec<&'a Value>) {
    let Some((first, rest)) = segs.split_first() else {
        out.push(v);
        return;
    };
    match (seg(first), v) {
        (Seg::Key(k), Value::Object(m)) => {
            if let Some(x) = m.get(k) {
                get_all(x, rest, out);
            }
        }
        (Seg::Match(k, val), Value::Array(a)) => {
            for e in a.iter().filter(|e| elem_matches(e, k, val)) {
                get_all(e, rest, out);
            }
        }
        (Seg::Index(i), Value::Array(a)) => {
            if let Some(x) = a.get(i) {
                get_all(x, rest, out);
            }
        }
        (Seg::All, Value::Array(a)) => {
            for e in a {
                get_all(e, rest, out);
            }
        }
        (Seg::Index(_), Value::Object(m)) => {
            if let Some(x) = m.get(first.as_str()) {
                get_all(x, rest, out);
            }
        }
        _ => {}
    }
}

fn set_all(
    v: &mut Value,
    segs: &[String],
    create: bool,
    f: &mut dyn FnMut(&mut Value) -> Result<(), KustomizeError>,
) -> Result<(), KustomizeError> {
    let Some((first, rest)) = segs.split_first() else {
        return f(v);
    };
    match seg(first) {
        Seg::Key(k) => {
            if v.is_null() && create {
                *v = Value::Object(Map::new());
            }
            if let Value::Object(m) = v {
                if !m.contains_key(k) && create {
                    if rest.is_empty() {
                        // kustomize creates an untagged scalar and copies only the source's
                        // text into it, so the text is typed afresh (`"42"` lands as 42).
                        let mut fresh = Value::Null;
                        f(&mut fresh)?;
                        if let Value::String(s) = &fresh {
                            fresh = yaml_load::resolve_plain(s)?;
                        }
                        m.insert(k.to_string(), fresh);
                        return Ok(());
                    }
                    m.insert(k.to_string(), Value::Object(Map::new()));
                }
                if let Some(x) = m.get_mut(k) {
                    set_all(x, rest, create, f)?;
                }
            }
        }
        Seg::Match(k, val) => {
            if let Value::Array(a) = v {
                for e in a.iter_mut().filter(|e| elem_matches(e, k, val)) {
                    set_all(e, rest, create, f)?;
                }
            }
        }
        Seg::Index(i) => match v {
            Value::Array(a) => {
                if let Some(x) = a.get_mut(i) {
                    set_all(x, rest, create, f)?;
                }
            }
            Value::Object(m) => {
                if let Some(x) = m.get_mut(first.as_str()) {
                    set_all(x, rest, create, f)?;
                }
            }
            _ => {}
        },
        Seg::All => {
            if let Value::Array(a) = v {
                for e in a.iter_mut() {
                    set_all(e, rest, create, f)?;
                }
            }
        }
    }
    Ok(())
}
