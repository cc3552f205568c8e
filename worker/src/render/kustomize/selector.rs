//! Patch and replacement targets: group, version, kind, name and namespace (each an anchored
//! regular expression, as kustomize compiles them), label and annotation selectors.

use regex::Regex;
use serde_json::Value;

use super::KustomizeError;
use super::resource::Res;

pub struct Selector {
    group: Option<Regex>,
    version: Option<Regex>,
    kind: Option<Regex>,
    name: Option<Regex>,
    namespace: Option<Regex>,
    labels: Option<String>,
    annotations: Option<String>,
}

fn anchored(s: &str, file: &str) -> Result<Regex, KustomizeError> {
    Regex::new(&format!("^(?:{s})$"))
        .map_err(|e| KustomizeError::invalid(file, format!("bad target pattern {s:?}: {e}")))
}

impl Selector {
    pub fn parse(v: &Value, file: &str) -> Result<Selector, KustomizeError> {
        let s = |k: &str| {
            v.get(k)
                .and_then(Value::as_str)
                .filter(|x| !x.is_empty())
                .map(str::to_string)
        };
        Ok(Selector {
            group: s("group").map(|g| anchored(&g, file)).transpose()?,
            version: s("version").map(|v| anchored(&v, file)).transpose()?,
            kind: s("kind").map(|k| anchored(&k, file)).transpose()?,
            name: s("name").map(|n| anchored(&n, file)).transpose()?,
            namespace: s("namespace").map(|n| anchored(&n, file)).transpose()?,
            labels: s("labelSelector"),
            annotations: s("annotationSelector"),
        })
    }

    pub fn matches(&self, r: &Res, file: &str) -> Result<bool, KustomizeError> {
        if let Some(g) = &self.group
            && !g.is_match(r.group())
        {
            return Ok(false);
        }
        if let Some(ver) = &self.version
            && !ver.is_match(r.version())
        {
            return Ok(false);
        }
        if let Some(k) = &self.kind
            && !k.is_match(r.kind())
        {
            return Ok(false);
        }
        let orig = r.prev.first();
        if let Some(n) = &self.name {
            let orig_name = orig.map(|p| p.1.as_str()).unwrap_or(r.name());
            if !n.is_match(orig_name) && !n.is_match(r.name()) {
                return Ok(false);
            }
        }
        if let Some(ns) = &self.namespace {
            let eff = |s: &str| {
                if s.is_empty() {
                    "default".to_string()
                } else {
                    s.to_string()
                }
            };
            let orig_ns = eff(orig.map(|p| p.2.as_str()).unwrap_or(r.namespace()));
            if !ns.is_match(&orig_ns) && !ns.is_match(&eff(r.namespace())) {
                return Ok(false);
            }
        }
        if let Some(sel) = &self.labels
            && !label_selector_matches(sel, r.v.pointer("/metadata/labels"), file)?
        {
            return Ok(false);
        }
        if let Some(sel) = &self.annotations
            && !label_selector_matches(sel, r.v.pointer("/metadata/annotations"), file)?
        {
            return Ok(false);
        }
        Ok(true)
    }
}

/// Kubernetes label selector syntax: `a=b`, `a==b`, `a!=b`, `a`, `!a`, `a in (x,y)`,
/// `a notin (x)`, comma-separated.
pub fn label_selector_matches(
    sel: &str,
    labels: Option<&Value>,
    file: &str,
) -> Result<bool, KustomizeError> {
    let get = |k: &str| labels.and_then(|l| l.get(k)).and_then(Value::as_str);
    for req in split_top(sel) {
        let req = req.trim();
        if req.is_empty() {
            continue;
        }
        let ok = if let Some((k, vals)) = split_set(req, " notin ") {
            get(k).is_none_or(|v| !vals.contains(&v.to_string()))
        } else if let Some((k, vals)) = split_set(req, " in ") {
            get(k).is_some_and(|v| vals.contains(&v.to_string()))
        } else if let Some((k, v)) = req.split_once("!=") {
            get(k.trim()) != Some(v.trim())
        } else if let Some((k, v)) = req.split_once("==").or_else(|| req.split_once('=')) {
            get(k.trim()) == Some(v.trim())
        } else if let Some(k) = req.strip_prefix('!') {
            get(k.trim()).is_none()
        } else if req
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c))
        {
            get(req).is_some()
        } else {
            return Err(KustomizeError::invalid(
                file,
                format!("unable to parse selector {sel:?}"),
            ));
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn split_top(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut depth = 0;
    let mut start = 0;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

fn split_set<'a>(req: &'a str, op: &str) -> Option<(&'a str, Vec<String>)> {
    let (k, rest) = req.split_once(op)?;
    let rest = rest.trim().strip_prefix('(')?.strip_suffix(')')?;
    Some((
        k.trim(),
        rest.split(',').map(|x| x.trim().to_string()).collect(),
    ))
}
