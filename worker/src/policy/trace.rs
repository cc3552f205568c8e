//! Tracing a field of a rendered object back to the file and line that set it.
//!
//! Works on the app's input files as text: kustomization files say which files are patches and how
//! deep in the overlay chain each sits; documents are matched to the object by kind and name (a
//! name prefix or suffix added by an overlay still matches; a patch's `target` counts too); the
//! field path is then walked through the YAML by indentation. A patch that sets the field wins
//! over the resource it patches, and a patch in an overlay wins over one in the base it includes.
//! When no file sets the field (a finding about something missing), the deepest existing parent
//! is reported.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::findings::SourceLocation;
use crate::objects::K8sObject;

/// One input file of an app (repository path and text).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SourceFile {
    pub path: String,
    pub text: String,
}

#[derive(Debug)]
struct Line {
    no: usize,
    /// Column of the `-` on item lines, else of the key.
    indent: usize,
    dash: bool,
    key: Option<String>,
    key_indent: usize,
    rest: String,
}

#[derive(Debug)]
struct Doc {
    path: String,
    first_line: usize,
    lines: Vec<Line>,
    kind: Option<String>,
    name: Option<String>,
    /// `Some(level)` for patches: 0 is the app's own kustomization, 1 a base it includes, …
    patch_level: Option<usize>,
    resource_level: usize,
    target: Option<(Option<String>, Option<String>)>,
    json6902: bool,
}

/// The app's input files, indexed for lookups.
#[derive(Debug, Default)]
pub struct Tracer {
    docs: Vec<Doc>,
    /// Documents by their `kind`, and documents a kustomization patch `target` selects.
    by_kind: BTreeMap<String, Vec<usize>>,
    targeted: Vec<usize>,
}

/// (sets the whole path, is a patch or resource, -overlay level, depth matched, exact name).
type Score = (bool, bool, i64, usize, bool);

#[derive(Clone, Debug)]
enum Seg {
    Key(String),
    Index(usize, Option<(String, String)>),
}

fn is_kustomization(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    matches!(
        name,
        "kustomization.yaml" | "kustomization.yml" | "Kustomization"
    )
}

fn dir_of(path: &str) -> &str {
    path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
}

fn join(dir: &str, rel: &str) -> String {
    crate::repo_fs::RepoPath::new(dir)
        .and_then(|d| d.join(rel))
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|_| rel.to_string())
}

struct PatchRef {
    path: String,
    target: Option<(Option<String>, Option<String>)>,
    json6902: bool,
}

impl Tracer {
    pub fn new(files: &[SourceFile]) -> Self {
        // Kustomizations: which directories they include and which files are patches.
        let mut includes: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut patches: BTreeMap<String, Vec<PatchRef>> = BTreeMap::new();
        for f in files.iter().filter(|f| is_kustomization(&f.path)) {
            let Ok(k) = crate::yaml::parse_single(&f.text, &f.path) else {
                continue;
            };
            let dir = dir_of(&f.path).to_string();
            let mut inc = Vec::new();
            for key in ["resources", "bases", "components"] {
                for r in k.get(key).and_then(Value::as_array).into_iter().flatten() {
                    if let Some(r) = r.as_str() {
                        inc.push(join(&dir, r));
                    }
                }
            }
            let mut ps = Vec::new();
            for p in k
                .get("patches")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(path) = p.get("path").and_then(Value::as_str) {
                    let target = p.get("target").map(|t| {
                        (
                            t.get("kind").and_then(Value::as_str).map(String::from),
                            t.get("name").and_then(Value::as_str).map(String::from),
                        )
                    });
                    ps.push(PatchRef {
                        path: join(&dir, path),
                        target,
                        json6902: false,
                    });
                }
            }
            for p in k
                .get("patchesStrategicMerge")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(path) = p.as_str() {
                    ps.push(PatchRef {
                        path: join(&dir, path),
                        target: None,
                        json6902: false,
                    });
                }
            }
            for p in k
                .get("patchesJson6902")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                if let Some(path) = p.get("path").and_then(Value::as_str) {
                    let t = p.get("target");
                    ps.push(PatchRef {
                        path: join(&dir, path),
                        target: Some((
                            t.and_then(|t| t.get("kind"))
                                .and_then(Value::as_str)
                                .map(String::from),
                            t.and_then(|t| t.get("name"))
                                .and_then(Value::as_str)
                                .map(String::from),
                        )),
                        json6902: true,
                    });
                }
            }
            includes.insert(dir.clone(), inc);
            patches.insert(dir, ps);
        }
        // Levels: kustomizations nobody includes are level 0.
        let included: BTreeSet<&String> = includes.values().flatten().collect();
        let mut level: BTreeMap<String, usize> = BTreeMap::new();
        let mut frontier: Vec<String> = includes
            .keys()
            .filter(|d| !included.contains(d))
            .cloned()
            .collect();
        let mut depth = 0;
        while !frontier.is_empty() && depth < 64 {
            let mut next = Vec::new();
            for d in frontier {
                if level.contains_key(&d) {
                    continue;
                }
                level.insert(d.clone(), depth);
                next.extend(includes.get(&d).into_iter().flatten().cloned());
            }
            frontier = next;
            depth += 1;
        }
        let level_of_file = |path: &str| -> usize {
            // The nearest kustomization directory above the file.
            let mut d = dir_of(path);
            loop {
                if let Some(l) = level.get(d) {
                    return *l;
                }
                if d.is_empty() {
                    return usize::MAX / 2;
                }
                d = dir_of(d);
            }
        };
        let mut patch_info: BTreeMap<String, (usize, &PatchRef)> = BTreeMap::new();
        for (dir, ps) in &patches {
            let l = level.get(dir).copied().unwrap_or(usize::MAX / 2);
            for p in ps {
                patch_info.insert(p.path.clone(), (l, p));
            }
        }
        let mut docs = Vec::new();
        for f in files.iter().filter(|f| !is_kustomization(&f.path)) {
            let patch = patch_info.get(&f.path);
            for (first_line, text) in split_docs(&f.text) {
                let lines = scan(&text, first_line);
                let (kind, name) = identity(&lines, &text, &f.path);
                let top_list = lines.first().is_some_and(|l| l.dash && l.indent == 0);
                docs.push(Doc {
                    path: f.path.clone(),
                    first_line,
                    lines,
                    kind,
                    name,
                    patch_level: patch.map(|(l, _)| *l),
                    resource_level: level_of_file(&f.path),
                    target: patch.and_then(|(_, p)| p.target.clone()),
                    json6902: patch.is_some_and(|(_, p)| p.json6902) || top_list,
                });
            }
        }
        let mut by_kind: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        let mut targeted = Vec::new();
        for (i, d) in docs.iter().enumerate() {
            match (&d.target, &d.kind) {
                (Some(_), _) => targeted.push(i),
                (None, Some(k)) => by_kind.entry(k.clone()).or_default().push(i),
                (None, None) => {}
            }
        }
        Tracer {
            docs,
            by_kind,
            targeted,
        }
    }

    /// Where `field` (dotted, with `[i]` indices) of `obj` was set; with no field, where the object
    /// is defined.
    pub fn locate(&self, obj: &K8sObject, field: Option<&str>) -> Option<SourceLocation> {
        let segs = field
            .map(|f| annotate(parse_path(f), &obj.value))
            .unwrap_or_default();
        let mut best: Option<(Score, SourceLocation)> = None;
        let candidates = self
            .by_kind
            .get(&obj.id.kind)
            .into_iter()
            .flatten()
            .chain(&self.targeted)
            .map(|&i| &self.docs[i]);
        for doc in candidates {
            let Some(exact) = self.matches(doc, obj) else {
                continue;
            };
            let (line, depth) = if doc.json6902 {
                match json6902_line(doc, &segs) {
                    Some(l) => (l, segs.len()),
                    None => continue,
                }
            } else {
                walk(&doc.lines, 0, doc.lines.len(), &segs, 0).unwrap_or((doc.first_line + 1, 0))
            };
            let full = depth == segs.len();
            // Patches only count where they actually touch the field.
            if doc.patch_level.is_some() && depth == 0 {
                continue;
            }
            let level = doc.patch_level.unwrap_or(doc.resource_level) as i64;
            let score = if full {
                (true, doc.patch_level.is_some(), -level, depth, exact)
            } else {
                (false, doc.patch_level.is_none(), -level, depth, exact)
            };
            let loc = SourceLocation {
                file: doc.path.clone(),
                line,
            };
            let better = match &best {
                None => true,
                Some((s, _)) => {
                    if full || s.0 {
                        score > *s
                    } else {
                        (score.3, score.1, score.2, score.4) > (s.3, s.1, s.2, s.4)
                    }
                }
            };
            if better {
                best = Some((score, loc));
            }
        }
        best.map(|(_, l)| l)
    }

    /// `Some(exact_name)` when the document is about this object.
    fn matches(&self, doc: &Doc, obj: &K8sObject) -> Option<bool> {
        let name_ok = |n: &str| obj.id.name == n || obj.id.name.contains(n);
        if let Some((kind, name)) = &doc.target {
            if kind.as_ref().is_some_and(|k| *k != obj.id.kind) {
                return None;
            }
            if let Some(n) = name {
                return name_ok(n).then(|| obj.id.name == *n);
            }
            return Some(false);
        }
        let kind = doc.kind.as_ref()?;
        let name = doc.name.as_ref()?;
        (*kind == obj.id.kind && name_ok(name)).then(|| obj.id.name == *name)
    }
}

/// The document's `kind` and `metadata.name`, read from its top-level lines (a flow-style
/// `metadata: {…}` is parsed).
fn identity(lines: &[Line], text: &str, path: &str) -> (Option<String>, Option<String>) {
    let mut kind = None;
    let mut name = None;
    for (i, l) in lines.iter().enumerate() {
        if l.dash || l.key_indent != 0 {
            continue;
        }
        match l.key.as_deref() {
            Some("kind") => kind = Some(unquote(&l.rest).to_string()),
            Some("metadata") if l.rest.starts_with('{') => {
                name = crate::yaml::parse_single(text, path).ok().and_then(|v| {
                    v.pointer("/metadata/name")
                        .and_then(Value::as_str)
                        .map(String::from)
                });
            }
            Some("metadata") => {
                let child = lines.get(i + 1).map(|c| c.key_indent).filter(|c| *c > 0);
                name = lines[i + 1..]
                    .iter()
                    .take_while(|c| c.key_indent > 0 || c.dash && c.indent > 0)
                    .find(|c| Some(c.key_indent) == child && c.key.as_deref() == Some("name"))
                    .map(|c| unquote(&c.rest).to_string());
            }
            _ => {}
        }
    }
    (kind, name)
}

/// Splits a YAML stream at `---` lines, keeping each document's first line number (0-based).
fn split_docs(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut cur = String::new();
    for (i, line) in text.lines().enumerate() {
        if line == "---" || line.starts_with("--- ") {
            out.push((start, std::mem::take(&mut cur)));
            start = i + 1;
            continue;
        }
        cur.push_str(line);
        cur.push('\n');
    }
    out.push((start, cur));
    out.retain(|(_, t)| {
        t.lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
    });
    out
}

fn scan(text: &str, first_line: usize) -> Vec<Line> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let content = raw.trim_start();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        let indent = raw.len() - content.len();
        let (dash, body, key_indent) = if let Some(b) = content.strip_prefix("- ") {
            let b2 = b.trim_start();
            (true, b2, indent + 2 + (b.len() - b2.len()))
        } else if content == "-" {
            (true, "", indent + 2)
        } else {
            (false, content, indent)
        };
        let (key, rest) = match split_key(body) {
            Some((k, r)) => (Some(k), r),
            None => (None, body.to_string()),
        };
        out.push(Line {
            no: first_line + i + 1,
            indent,
            dash,
            key,
            key_indent,
            rest,
        });
    }
    out
}

/// `key: rest` → (key, rest); quoted keys are unquoted. Flow collections and scalars give None.
fn split_key(body: &str) -> Option<(String, String)> {
    if body.starts_with('{') || body.starts_with('[') {
        return None;
    }
    let (k, rest) = if let Some(q) = body.strip_prefix('"') {
        let end = q.find('"')?;
        (q[..end].to_string(), q[end + 1..].strip_prefix(':')?)
    } else if let Some(q) = body.strip_prefix('\'') {
        let end = q.find('\'')?;
        (q[..end].to_string(), q[end + 1..].strip_prefix(':')?)
    } else {
        let i = body
            .find(": ")
            .or_else(|| body.strip_suffix(':').map(|s| s.len()))?;
        (body[..i].to_string(), &body[i + 1..])
    };
    Some((k, rest.trim().to_string()))
}

fn parse_path(field: &str) -> Vec<Seg> {
    let mut out = Vec::new();
    for part in field.split('.') {
        let mut p = part;
        if let Some(i) = p.find('[') {
            if i > 0 {
                out.push(Seg::Key(p[..i].to_string()));
            }
            p = &p[i..];
            while let Some(rest) = p.strip_prefix('[') {
                let Some(end) = rest.find(']') else { break };
                if let Ok(n) = rest[..end].parse() {
                    out.push(Seg::Index(n, None));
                }
                p = &rest[end + 1..];
            }
        } else if !p.is_empty() {
            out.push(Seg::Key(p.to_string()));
        }
    }
    out
}

/// Merge keys kustomize and Kubernetes use to identify list items.
const ITEM_KEYS: &[&str] = &["name", "mountPath", "containerPort", "port", "key", "ip"];

/// Gives each list index the identity of the item it points at, so a patch that lists items in a
/// different order still matches.
fn annotate(segs: Vec<Seg>, value: &Value) -> Vec<Seg> {
    let mut cur = Some(value);
    segs.into_iter()
        .map(|s| match s {
            Seg::Key(k) => {
                cur = cur.and_then(|v| v.get(&k));
                Seg::Key(k)
            }
            Seg::Index(i, _) => {
                let item = cur.and_then(|v| v.get(i));
                cur = item;
                let ident = item.and_then(|it| {
                    ITEM_KEYS.iter().find_map(|k| {
                        it.get(*k).and_then(|v| match v {
                            Value::String(s) => Some((k.to_string(), s.clone())),
                            Value::Number(n) => Some((k.to_string(), n.to_string())),
                            _ => None,
                        })
                    })
                });
                Seg::Index(i, ident)
            }
        })
        .collect()
}

fn unquote(s: &str) -> &str {
    s.trim().trim_matches(|c| c == '"' || c == '\'')
}

/// Walks `segs` through lines[start..end]; returns the line reached and how many segments matched.
fn walk(
    lines: &[Line],
    start: usize,
    end: usize,
    segs: &[Seg],
    depth: usize,
) -> Option<(usize, usize)> {
    let first = lines.get(start).filter(|_| start < end)?;
    let Some(seg) = segs.first() else {
        return Some((first.no, depth));
    };
    match seg {
        Seg::Key(k) => {
            let child_indent = first.key_indent;
            let idx = (start..end).find(|&i| {
                let l = &lines[i];
                l.key_indent == child_indent && l.key.as_deref() == Some(k.as_str())
            })?;
            let l = &lines[idx];
            let block_end = (idx + 1..end)
                .find(|&j| {
                    let m = &lines[j];
                    // A list may sit at its key's own indentation (`containers:` / `- name:`).
                    if m.dash {
                        m.indent < l.key_indent
                    } else {
                        m.key_indent <= l.key_indent
                    }
                })
                .unwrap_or(end);
            if segs.len() > 1
                && idx + 1 < block_end
                && let Some(r) = walk(lines, idx + 1, block_end, &segs[1..], depth + 1)
            {
                return Some(r);
            }
            // A flow value on the same line (`{…}`, `[…]`) holds the rest of the path.
            if segs.len() > 1 && (l.rest.starts_with('{') || l.rest.starts_with('[')) {
                return Some((l.no, segs.len() + depth));
            }
            Some((l.no, depth + 1))
        }
        Seg::Index(i, ident) => {
            let dash_indent = (start..end)
                .filter(|&j| lines[j].dash)
                .map(|j| lines[j].indent)
                .min()?;
            let items: Vec<usize> = (start..end)
                .filter(|&j| lines[j].dash && lines[j].indent == dash_indent)
                .collect();
            let bounds = |n: usize| {
                let s = items[n];
                let e = items.get(n + 1).copied().unwrap_or(end);
                (s, e)
            };
            let chosen = match ident {
                Some((k, v)) => (0..items.len()).find(|&n| {
                    let (s, e) = bounds(n);
                    let key_indent = lines[s].key_indent;
                    (s..e).any(|j| {
                        lines[j].key_indent == key_indent
                            && lines[j].key.as_deref() == Some(k.as_str())
                            && unquote(&lines[j].rest) == v
                    })
                }),
                None => (*i < items.len()).then_some(*i),
            }?;
            let (s, e) = bounds(chosen);
            if segs.len() > 1
                && let Some(r) = walk(lines, s, e, &segs[1..], depth + 1)
            {
                return Some(r);
            }
            Some((lines[s].no, depth + 1))
        }
    }
}

/// In a JSON 6902 patch, the `path:` line of the operation on this field.
fn json6902_line(doc: &Doc, segs: &[Seg]) -> Option<usize> {
    let pointer: String = segs
        .iter()
        .map(|s| match s {
            Seg::Key(k) => format!("/{}", k.replace('~', "~0").replace('/', "~1")),
            Seg::Index(i, _) => format!("/{i}"),
        })
        .collect();
    doc.lines
        .iter()
        .find(|l| l.key.as_deref() == Some("path") && unquote(&l.rest) == pointer)
        .map(|l| l.no)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn f(path: &str, text: &str) -> SourceFile {
        SourceFile {
            path: path.into(),
            text: text.into(),
        }
    }

    const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: side\n        image: side:1\n      - name: web\n        image: web:1\n        securityContext:\n          privileged: false\n";

    fn rendered(privileged: bool) -> K8sObject {
        K8sObject::from_value(serde_json::json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "staging-web"},
            "spec": {"template": {"spec": {"containers": [
                {"name": "side", "image": "side:1"},
                {"name": "web", "image": "web:1", "securityContext": {"privileged": privileged}}
            ]}}}
        }))
        .unwrap()
    }

    #[test]
    fn base_resource_lines() {
        let t = Tracer::new(&[
            f("base/kustomization.yaml", "resources: [deploy.yaml]\n"),
            f("base/deploy.yaml", DEPLOY),
        ]);
        let o = rendered(false);
        let loc = t
            .locate(&o, Some("spec.template.spec.containers[1].image"))
            .unwrap();
        assert_eq!(loc.to_string(), "base/deploy.yaml:12");
        let loc = t
            .locate(
                &o,
                Some("spec.template.spec.containers[1].securityContext.privileged"),
            )
            .unwrap();
        assert_eq!(loc.line, 14);
        // Missing field: the deepest parent that exists.
        let loc = t
            .locate(
                &o,
                Some("spec.template.spec.containers[0].securityContext.runAsNonRoot"),
            )
            .unwrap();
        assert_eq!(loc.line, 9);
        let loc = t.locate(&o, None).unwrap();
        assert_eq!(loc.line, 1);
    }

    #[test]
    fn overlay_patch_wins_over_base() {
        let t = Tracer::new(&[
            f("base/kustomization.yaml", "resources: [deploy.yaml]\n"),
            f("base/deploy.yaml", DEPLOY),
            f(
                "overlays/staging/kustomization.yaml",
                "namePrefix: staging-\nresources: [../../base]\npatches:\n- path: privileged.yaml\n",
            ),
            f(
                "overlays/staging/privileged.yaml",
                "# make it privileged\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        securityContext:\n          privileged: true\n",
            ),
        ]);
        let o = rendered(true);
        let loc = t
            .locate(
                &o,
                Some("spec.template.spec.containers[1].securityContext.privileged"),
            )
            .unwrap();
        assert_eq!(loc.to_string(), "overlays/staging/privileged.yaml:12");
        // The patch does not touch the image: the base still answers.
        let loc = t
            .locate(&o, Some("spec.template.spec.containers[1].image"))
            .unwrap();
        assert_eq!(loc.to_string(), "base/deploy.yaml:12");
    }

    #[test]
    fn json6902_patches_point_at_their_operation() {
        let t = Tracer::new(&[
            f("base/kustomization.yaml", "resources: [deploy.yaml]\n"),
            f("base/deploy.yaml", DEPLOY),
            f(
                "ov/kustomization.yaml",
                "resources: [../base]\npatches:\n- path: p.yaml\n  target: {kind: Deployment, name: web}\n",
            ),
            f(
                "ov/p.yaml",
                "- op: replace\n  path: /spec/template/spec/containers/1/image\n  value: web:2\n",
            ),
        ]);
        let loc = t
            .locate(
                &rendered(false),
                Some("spec.template.spec.containers[1].image"),
            )
            .unwrap();
        assert_eq!(loc.to_string(), "ov/p.yaml:2");
    }
}
