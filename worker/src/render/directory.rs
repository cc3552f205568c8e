//! The `directory` backend: plain manifests and Jsonnet programs, read as ArgoCD's directory
//! source reads them (`reposerver/repository/repository.go`, `findManifests`):
//!
//! - files named `*.yaml`, `*.yml`, `*.json` and `*.jsonnet` (any file with
//!   `disableExtensionFilter`), hidden ones included; with `recurse` every sub-folder too;
//! - `exclude` then `include`, each one glob matched against the path relative to the source
//!   folder (never against the bare file name), with gobwas/glob semantics and no separator:
//!   `*` crosses `/`, `{a,b}` picks alternatives ([`Glob`]);
//! - a file containing `+argocd:skip-file-rendering` is left out;
//! - a YAML file that does not parse, or whose documents are not objects with a `kind`, is
//!   ignored when it does not look like a manifest at all (no `apiVersion:`, `kind:` and `metadata:` in it), an error otherwise;
//! - `*.jsonnet` files are evaluated ([`super::jsonnet`]);
//! - any object with an `items` array is a list and stands for its items; a list whose `items` is
//!   `null` (and that has no `spec` or `status`) stands for nothing.
//!
//! One deliberate difference: an include/exclude pattern that does not compile is an error here,
//! where ArgoCD logs a warning and treats it as matching nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use serde_json::Value;

use super::inputs::tree_files;
use super::jsonnet::{self, JsonnetLimits};
use super::jsonnet_proc;
use super::source::DirectoryOptions;
use super::{Backend, RenderError, RenderSource, SourceKind};
use crate::repo_fs::{EntryKind, RepoFs, RepoPath};
use crate::yaml;

/// ArgoCD leaves out any file containing this marker.
pub const SKIP_MARKER: &str = "+argocd:skip-file-rendering";

pub struct DirectoryBackend {
    pub jsonnet: JsonnetLimits,
    /// See [`super::RenderConfig::jsonnet_evaluator`].
    pub evaluator: Option<PathBuf>,
}

/// A Jsonnet program ArgoCD evaluates (libraries, `*.libsonnet`, are only imported).
pub fn is_jsonnet(f: &RepoPath) -> bool {
    f.file_name().ends_with(".jsonnet")
}

fn is_manifest_name(name: &str) -> bool {
    [".yaml", ".yml", ".json", ".jsonnet"]
        .iter()
        .any(|ext| name.ends_with(ext))
}

/// The manifest files of a directory source, in path order, before the skip marker is applied.
pub fn manifest_files(
    fs: &dyn RepoFs,
    dir: &RepoPath,
    opts: &DirectoryOptions,
) -> Result<Vec<RepoPath>, RenderError> {
    let candidates: Vec<RepoPath> = if opts.recurse {
        tree_files(fs, dir)?
    } else {
        fs.list_dir(dir)
            .map_err(|source| RenderError::Input {
                file: dir.to_string(),
                source,
            })?
            .into_iter()
            .filter(|(_, k)| *k == EntryKind::File)
            .filter_map(|(n, _)| dir.join(&n).ok())
            .collect()
    };
    let compile = |pattern: &Option<String>| {
        pattern
            .as_deref()
            .map(|p| {
                Glob::new(p).map_err(|message| RenderError::Invalid {
                    file: dir.to_string(),
                    message: format!("directory include/exclude pattern {p:?}: {message}"),
                })
            })
            .transpose()
    };
    let include = compile(&opts.include)?;
    let exclude = compile(&opts.exclude)?;
    let mut out = Vec::new();
    for f in candidates {
        if !opts.disable_extension_filter && !is_manifest_name(f.file_name()) {
            continue;
        }
        let rel = if dir.is_root() {
            f.as_str()
        } else {
            &f.as_str()[dir.as_str().len() + 1..]
        };
        if exclude.as_ref().is_some_and(|g| g.is_match(rel)) {
            continue;
        }
        if include.as_ref().is_some_and(|g| !g.is_match(rel)) {
            continue;
        }
        out.push(f);
    }
    Ok(out)
}

/// The files a directory source reads: its manifests and everything its Jsonnet programs import.
pub fn inputs(
    fs: &dyn RepoFs,
    dir: &RepoPath,
    opts: &DirectoryOptions,
    limits: &JsonnetLimits,
) -> Result<BTreeSet<RepoPath>, RenderError> {
    let files = manifest_files(fs, dir, opts)?;
    let programs: Vec<RepoPath> = files.iter().filter(|f| is_jsonnet(f)).cloned().collect();
    let mut out: BTreeSet<RepoPath> = files.into_iter().collect();
    if !programs.is_empty() {
        out.extend(jsonnet::closure(fs, dir, &programs, &opts.jsonnet, limits)?);
    }
    Ok(out)
}

impl Backend for DirectoryBackend {
    fn name(&self) -> &'static str {
        "directory"
    }

    fn render(
        &self,
        fs: &dyn RepoFs,
        source: &RenderSource,
        inputs: &BTreeSet<RepoPath>,
    ) -> Result<String, RenderError> {
        let default = DirectoryOptions::default();
        let opts = match &source.kind {
            SourceKind::Directory(o) => o,
            _ => &default,
        };
        let read = |f: &RepoPath| {
            fs.read(f).map_err(|source| RenderError::Input {
                file: f.to_string(),
                source,
            })
        };
        // Jsonnet programs read only the app's inputs, from memory.
        let mut held: Option<BTreeMap<String, Arc<[u8]>>> = None;
        let mut objects = Vec::new();
        for f in manifest_files(fs, &source.path, opts)? {
            let bytes = read(&f)?;
            let text = String::from_utf8_lossy(&bytes);
            if text.contains(SKIP_MARKER) {
                continue;
            }
            if is_jsonnet(&f) {
                let Some(evaluator) = &self.evaluator else {
                    return Err(RenderError::Unavailable {
                        backend: "jsonnet".into(),
                        reason: "no evaluator configured (the capstan binary evaluates Jsonnet)"
                            .into(),
                    });
                };
                let files = match &mut held {
                    Some(h) => h,
                    None => {
                        let mut h = BTreeMap::new();
                        for i in inputs {
                            h.insert(i.as_str().to_string(), read(i)?);
                        }
                        held.insert(h)
                    }
                };
                let json = jsonnet_proc::evaluate(
                    evaluator,
                    files,
                    &f,
                    &source.path,
                    &opts.jsonnet,
                    &self.jsonnet,
                )?;
                objects.extend(jsonnet::manifests(&json, &f)?);
            } else {
                objects.extend(plain_file(&f, &text)?);
            }
        }
        let mut out = String::new();
        for obj in objects {
            for item in unwrap_list(obj)? {
                let text = yaml_serde::to_string(&item).map_err(|e| RenderError::Invalid {
                    file: source.path.to_string(),
                    message: e.to_string(),
                })?;
                if !out.is_empty() {
                    out.push_str("---\n");
                }
                out.push_str(&text);
            }
        }
        Ok(out)
    }
}

/// The objects of one YAML or JSON file, as ArgoCD decodes them.
fn plain_file(f: &RepoPath, text: &str) -> Result<Vec<Value>, RenderError> {
    let has_kind = |doc: &Value| {
        doc.get("kind")
            .and_then(Value::as_str)
            .is_some_and(|k| !k.is_empty())
    };
    let looks_like_manifest = ["apiVersion:", "kind:", "metadata:"]
        .iter()
        .all(|k| text.contains(k));
    // ArgoCD decodes a `.json` file as JSON. A YAML reading of the same text is not always the
    // same value: YAML 1.1 takes a raw U+0085 (NEL) inside a string for a line break and folds
    // it to a space. Strict JSON first, then the YAML reading it has always had.
    let strict_json = f
        .file_name()
        .ends_with(".json")
        .then(|| serde_json::from_str::<Value>(text).ok())
        .flatten();
    let parsed = match strict_json {
        Some(Value::Null) => Ok(Vec::new()),
        Some(value) => Ok(vec![value]),
        None => yaml::parse_documents(text, f.as_str()),
    };
    let docs = match parsed {
        Ok(docs) => docs,
        // Not YAML at all, and nothing like a manifest: ArgoCD ignores it.
        Err(_) if !looks_like_manifest && !f.file_name().ends_with(".json") => {
            return Ok(Vec::new());
        }
        Err(e) => return Err(e.into()),
    };
    if f.file_name().ends_with(".json") {
        // One object per JSON file, and it must be a Kubernetes object.
        return match docs.as_slice() {
            [] => Ok(Vec::new()),
            [doc] if has_kind(doc) => Ok(docs),
            [_] => Err(RenderError::Invalid {
                file: f.to_string(),
                message: "not a Kubernetes object (no kind)".into(),
            }),
            _ => Err(RenderError::Invalid {
                file: f.to_string(),
                message: "found multiple objects; a JSON file holds one".into(),
            }),
        };
    }
    let mut out = Vec::new();
    for (i, doc) in docs.into_iter().enumerate() {
        if has_kind(&doc) {
            out.push(doc);
            continue;
        }
        if out.is_empty() && !looks_like_manifest {
            // An unrelated YAML file (values, settings) next to the manifests.
            return Ok(Vec::new());
        }
        return Err(RenderError::Invalid {
            file: f.to_string(),
            message: format!("document {} is not a Kubernetes object (no kind)", i + 1),
        });
    }
    Ok(out)
}

/// An object with an `items` array stands for its items (Kubernetes' `IsList`); a list with
/// `items: null` and no `spec` or `status` stands for nothing.
fn unwrap_list(obj: Value) -> Result<Vec<Value>, RenderError> {
    match obj.get("items") {
        Some(Value::Array(items)) => {
            let mut out = Vec::with_capacity(items.len());
            for item in items {
                if !item.is_object() {
                    return Err(RenderError::Invalid {
                        file: obj
                            .get("kind")
                            .and_then(Value::as_str)
                            .unwrap_or("list")
                            .to_string(),
                        message: "a list item is not an object".into(),
                    });
                }
                out.push(item.clone());
            }
            Ok(out)
        }
        Some(Value::Null) if obj.get("spec").is_none() && obj.get("status").is_none() => {
            Ok(Vec::new())
        }
        _ => Ok(vec![obj]),
    }
}

/// A glob as ArgoCD matches include/exclude (gobwas/glob compiled without separators): `*` and
/// `**` match any run of characters, `/` included; `?` any one character; `[abc]`, `[a-z]`,
/// `[!abc]` a class; `{a,b}` alternatives (nesting allowed); `\` escapes.
#[derive(Clone, Debug)]
pub struct Glob {
    alternatives: Vec<Vec<Atom>>,
}

#[derive(Clone, Debug, PartialEq)]
enum Atom {
    Char(char),
    Any,
    One,
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
}

#[derive(Clone, Debug)]
enum Part {
    Atom(Atom),
    Choice(Vec<Vec<Part>>),
}

/// Expanding `{a,b}{c,d}...` multiplies; past this many a pattern is refused.
const MAX_ALTERNATIVES: usize = 1024;

impl Glob {
    pub fn new(pattern: &str) -> Result<Glob, String> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut at = 0;
        let parts = parse_seq(&chars, &mut at, false)?;
        if at != chars.len() {
            return Err(format!("unexpected {:?}", chars[at]));
        }
        let alternatives = expand(&parts)?;
        Ok(Glob { alternatives })
    }

    pub fn is_match(&self, text: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        self.alternatives.iter().any(|a| match_flat(a, &text))
    }
}

fn parse_seq(chars: &[char], at: &mut usize, in_choice: bool) -> Result<Vec<Part>, String> {
    let mut out = Vec::new();
    while let Some(&c) = chars.get(*at) {
        match c {
            ',' | '}' if in_choice => return Ok(out),
            '*' => {
                *at += 1;
                while chars.get(*at) == Some(&'*') {
                    *at += 1;
                }
                out.push(Part::Atom(Atom::Any));
            }
            '?' => {
                *at += 1;
                out.push(Part::Atom(Atom::One));
            }
            '\\' => {
                let escaped = chars.get(*at + 1).ok_or("pattern ends with \\")?;
                out.push(Part::Atom(Atom::Char(*escaped)));
                *at += 2;
            }
            '[' => {
                *at += 1;
                let negated = chars.get(*at) == Some(&'!');
                if negated {
                    *at += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    let c = *chars.get(*at).ok_or("unclosed [")?;
                    if c == ']' {
                        *at += 1;
                        break;
                    }
                    if chars.get(*at + 1) == Some(&'-')
                        && let Some(&hi) = chars.get(*at + 2).filter(|h| **h != ']')
                    {
                        if hi < c {
                            return Err(format!("range {c}-{hi} is backwards"));
                        }
                        ranges.push((c, hi));
                        *at += 3;
                    } else {
                        ranges.push((c, c));
                        *at += 1;
                    }
                }
                if ranges.is_empty() {
                    return Err("empty []".into());
                }
                out.push(Part::Atom(Atom::Class { negated, ranges }));
            }
            '{' => {
                *at += 1;
                let mut options = Vec::new();
                loop {
                    options.push(parse_seq(chars, at, true)?);
                    match chars.get(*at) {
                        Some(',') => *at += 1,
                        Some('}') => {
                            *at += 1;
                            break;
                        }
                        _ => return Err("unclosed {".into()),
                    }
                }
                out.push(Part::Choice(options));
            }
            c => {
                *at += 1;
                out.push(Part::Atom(Atom::Char(c)));
            }
        }
    }
    if in_choice {
        return Err("unclosed {".into());
    }
    Ok(out)
}

fn expand(parts: &[Part]) -> Result<Vec<Vec<Atom>>, String> {
    let mut acc: Vec<Vec<Atom>> = vec![Vec::new()];
    for part in parts {
        match part {
            Part::Atom(a) => acc.iter_mut().for_each(|s| s.push(a.clone())),
            Part::Choice(options) => {
                let mut tails = Vec::new();
                for o in options {
                    tails.extend(expand(o)?);
                }
                if acc.len().saturating_mul(tails.len()) > MAX_ALTERNATIVES {
                    return Err(format!("more than {MAX_ALTERNATIVES} alternatives"));
                }
                acc = acc
                    .iter()
                    .flat_map(|head| {
                        tails.iter().map(move |t| {
                            let mut s = head.clone();
                            s.extend(t.iter().cloned());
                            s
                        })
                    })
                    .collect();
            }
        }
    }
    Ok(acc)
}

/// Wildcard matching with one backtrack point per `*`: linear-ish, never exponential.
fn match_flat(pattern: &[Atom], text: &[char]) -> bool {
    let one = |a: &Atom, c: char| match a {
        Atom::Char(x) => *x == c,
        Atom::One => true,
        Atom::Class { negated, ranges } => {
            ranges.iter().any(|(lo, hi)| (*lo..=*hi).contains(&c)) != *negated
        }
        Atom::Any => false,
    };
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        if p < pattern.len() && pattern[p] == Atom::Any {
            star = Some((p, t));
            p += 1;
        } else if p < pattern.len() && one(&pattern[p], text[t]) {
            p += 1;
            t += 1;
        } else if let Some((sp, st)) = star {
            p = sp + 1;
            t = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    pattern[p..].iter().all(|a| *a == Atom::Any)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_json_file_is_read_as_json_even_where_yaml_would_fold_a_character() {
        let f = RepoPath::new("app/cm.json").unwrap();
        let text = "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"c\"}, \"data\": {\"k\": \"a\u{85}b\"}}";
        let docs = plain_file(&f, text).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0]["data"]["k"], "a\u{85}b", "the NEL was folded");
    }

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).unwrap().is_match(text)
    }

    #[test]
    fn globs_match_like_gobwas_without_separators() {
        assert!(m("*.yaml", "a.yaml"));
        assert!(m("*.yaml", "sub/deep/a.yaml"), "* crosses /");
        assert!(m("sub/*.yaml", "sub/x/a.yaml"));
        assert!(
            !m("a.yaml", "sub/a.yaml"),
            "the relative path, not the file name"
        );
        assert!(!m("**/a.yaml", "a.yaml"), "**/ needs a /");
        assert!(m("**/a.yaml", "x/a.yaml"));
        assert!(m("{a,b/c}.yaml", "b/c.yaml"));
        assert!(m("{a,{b,c}x}.yaml", "cx.yaml"));
        assert!(m("?.json", "x.json"));
        assert!(!m("?.json", "xy.json"));
        assert!(m("[a-c].yml", "b.yml"));
        assert!(!m("[!a-c].yml", "b.yml"));
        assert!(m("[!a-c].yml", "d.yml"));
        assert!(m("\\*.yaml", "*.yaml"));
        assert!(!m("\\*.yaml", "x.yaml"));
        assert!(m("*a*a*a*a*a*a*a*a*b", &"a".repeat(60).replace("aa", "ab")));
        for bad in ["[a", "{a,b", "a\\", "[z-a]"] {
            assert!(Glob::new(bad).is_err(), "{bad}");
        }
    }
}
