//! Format-preserving YAML edits: change one scalar, add or drop one key of a block mapping,
//! and leave every other byte of the file as it was (comments, key order, quoting, CRLF line
//! endings, a missing final newline).
//!
//! The parser (yaml_serde, with the same limits as `crate::yaml`) hands mapping keys over as
//! slices of the source, so their byte offsets are known; the value after a key is then lexed by
//! hand and spliced. Every edit is verified by parsing the result: the document must equal the
//! original with exactly the one value changed, or the edit is refused — an unusual layout (a
//! multi-line plain scalar, an anchor, a flow mapping) becomes an error, never a corrupted file.

use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// A YAML edit that could not be made safely; names the file and the path.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{file}: {path}: {message}")]
pub struct EditError {
    pub file: String,
    pub path: String,
    pub message: String,
}

/// One step of a YAML path: `image.tag`, `images[name=nginx].newTag`, `spec.containers[0].image`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
    /// The sequence item that is a mapping whose `key` holds the string `value`.
    Match {
        key: String,
        value: String,
    },
}

/// A parsed YAML path with its text, for messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct YamlPath {
    pub text: String,
    pub segs: Vec<Seg>,
}

impl fmt::Display for YamlPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl YamlPath {
    /// Parses `a.b[0].c[name=x]`. Keys hold no `.`, `[` or `]`; a `[key=value]` value may hold
    /// dots (`images[name=ghcr.io/x/y].newTag`).
    pub fn parse(text: &str) -> Result<YamlPath, String> {
        let bad = |m: &str| format!("YAML path {text:?}: {m}");
        let mut segs = Vec::new();
        let mut rest = text;
        let mut expect_key = true;
        while !rest.is_empty() || expect_key {
            if expect_key {
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                let key = &rest[..end];
                if key.is_empty() || key.contains(']') {
                    return Err(bad("expected a key"));
                }
                segs.push(Seg::Key(key.to_string()));
                rest = &rest[end..];
                expect_key = false;
            } else if let Some(r) = rest.strip_prefix('.') {
                rest = r;
                expect_key = true;
            } else if let Some(r) = rest.strip_prefix('[') {
                let end = r.find(']').ok_or_else(|| bad("`[` without `]`"))?;
                let inner = &r[..end];
                segs.push(match inner.split_once('=') {
                    Some((k, v)) if !k.is_empty() && !v.is_empty() => Seg::Match {
                        key: k.to_string(),
                        value: v.to_string(),
                    },
                    _ => Seg::Index(inner.parse().map_err(|_| {
                        bad(&format!("`[{inner}]` is neither an index nor key=value"))
                    })?),
                });
                rest = &r[end + 1..];
            } else {
                return Err(bad("expected `.` or `[`"));
            }
        }
        if !matches!(segs.last(), Some(Seg::Key(_))) {
            return Err(bad("must end with a key"));
        }
        Ok(YamlPath {
            text: text.to_string(),
            segs,
        })
    }
}

/// The parsed document with the source offsets of its mapping keys.
#[derive(Clone, Debug)]
enum Node {
    Map(Vec<Entry>),
    Seq(Vec<Node>),
    Scalar(Value),
}

#[derive(Clone, Debug)]
struct Entry {
    key: String,
    /// Byte offset of the key in the source, when the parser lent it (plain or simple quoted).
    at: Option<usize>,
    value: Node,
}

#[derive(Clone, Copy)]
struct Seed<'s> {
    src: &'s str,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Node;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Node, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Bool(v)))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
        Ok(Node::Scalar(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
        Ok(Node::Scalar(v.into()))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
        Ok(Node::Scalar(
            serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number),
        ))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Null))
    }
    fn visit_none<E: de::Error>(self) -> Result<Node, E> {
        Ok(Node::Scalar(Value::Null))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
        Ok(Node::Scalar(Value::String(v.to_string())))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
        let mut out = Vec::new();
        while let Some(v) = seq.next_element_seed(self)? {
            out.push(v);
        }
        Ok(Node::Seq(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let mut out = Vec::new();
        while let Some((key, at)) = map.next_key_seed(KeySeed { src: self.src })? {
            let value = map.next_value_seed(self)?;
            out.push(Entry { key, at, value });
        }
        Ok(Node::Map(out))
    }
}

#[derive(Clone, Copy)]
struct KeySeed<'s> {
    src: &'s str,
}

impl<'de> DeserializeSeed<'de> for KeySeed<'_> {
    type Value = (String, Option<usize>);
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl<'de> Visitor<'de> for KeySeed<'_> {
    type Value = (String, Option<usize>);
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        let base = self.src.as_ptr() as usize;
        let p = v.as_ptr() as usize;
        let at = (p >= base && p + v.len() <= base + self.src.len()).then(|| p - base);
        Ok((v.to_string(), at))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok((v.to_string(), None))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok((v.to_string(), None))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok((v.to_string(), None))
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
        Ok((v.to_string(), None))
    }
}

/// A YAML file being edited.
pub struct YamlDoc<'a> {
    file: &'a str,
    text: &'a str,
    root: Node,
}

/// How the old scalar was written; the new one is written the same way when it can be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Style {
    Plain,
    Single,
    Double,
}

impl<'a> YamlDoc<'a> {
    /// Parses `text` (one document; the same limits as `crate::yaml`).
    pub fn parse(file: &'a str, text: &'a str) -> Result<YamlDoc<'a>, EditError> {
        let err = |message: String| EditError {
            file: file.to_string(),
            path: "(document)".into(),
            message,
        };
        // The safe parser first: alias bombs, depth and duplicate keys are refused there.
        crate::yaml::parse_single(text, file).map_err(|e| err(e.to_string()))?;
        let mut docs = yaml_serde::Deserializer::from_str(text);
        let root = match docs.next() {
            Some(doc) => Seed { src: text }
                .deserialize(doc)
                .map_err(|e| err(e.to_string()))?,
            None => Node::Scalar(Value::Null),
        };
        Ok(YamlDoc { file, text, root })
    }

    fn err(&self, path: &YamlPath, message: impl Into<String>) -> EditError {
        EditError {
            file: self.file.to_string(),
            path: path.text.clone(),
            message: message.into(),
        }
    }

    /// The value at `path`, `None` when absent.
    pub fn get(&self, path: &YamlPath) -> Option<Value> {
        let (parent, key) = self.parent(path)?;
        let Node::Map(entries) = parent else {
            return None;
        };
        entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| to_json(&e.value))
    }

    /// The mapping holding the path's last key, and that key.
    fn parent<'p>(&self, path: &'p YamlPath) -> Option<(&Node, &'p str)> {
        let (last, init) = path.segs.split_last()?;
        let Seg::Key(key) = last else { return None };
        let mut node = &self.root;
        for seg in init {
            node = match (seg, node) {
                (Seg::Key(k), Node::Map(entries)) => &entries.iter().find(|e| &e.key == k)?.value,
                (Seg::Index(i), Node::Seq(items)) => items.get(*i)?,
                (Seg::Match { key, value }, Node::Seq(items)) => items.iter().find(|it| {
                    matches!(it, Node::Map(es) if es.iter().any(|e| &e.key == key
                        && matches!(&e.value, Node::Scalar(Value::String(s)) if s == value)))
                })?,
                _ => return None,
            };
        }
        Some((node, key.as_str()))
    }

    /// The text with the scalar at `path` set to `new` (added when the key is absent from an
    /// existing mapping, removed when `new` is `None`). Unchanged text when it already holds it.
    pub fn set(&self, path: &YamlPath, new: Option<&Value>) -> Result<String, EditError> {
        if self.get(path).as_ref() == new {
            return Ok(self.text.to_string());
        }
        let (parent, key) = self
            .parent(path)
            .ok_or_else(|| self.err(path, "no such mapping in the file"))?;
        let Node::Map(entries) = parent else {
            return Err(self.err(path, "the parent is not a mapping"));
        };
        let out = match (entries.iter().find(|e| e.key == key), new) {
            (Some(entry), Some(v)) => self.replace(path, entry, v)?,
            (Some(entry), None) => self.remove_line(path, entry)?,
            (None, Some(v)) => self.insert(path, entries, key, v)?,
            (None, None) => return Ok(self.text.to_string()),
        };
        self.verify(path, new, &out)?;
        Ok(out)
    }

    fn key_at(&self, path: &YamlPath, entry: &Entry) -> Result<usize, EditError> {
        entry.at.ok_or_else(|| {
            self.err(
                path,
                format!(
                    "key {:?} is written in a form Capstan cannot edit",
                    entry.key
                ),
            )
        })
    }

    /// Where the value after a key starts and ends, and how it is quoted.
    fn value_span(
        &self,
        path: &YamlPath,
        entry: &Entry,
    ) -> Result<(usize, usize, Style), EditError> {
        let b = self.text.as_bytes();
        let mut i = self.key_at(path, entry)? + entry.key.len();
        if matches!(b.get(i), Some(b'"' | b'\'')) {
            i += 1;
        }
        while matches!(b.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        if b.get(i) != Some(&b':') {
            return Err(self.err(path, "expected `:` after the key"));
        }
        i += 1;
        while matches!(b.get(i), Some(b' ' | b'\t')) {
            i += 1;
        }
        let unsupported =
            |what: &str| self.err(path, format!("the value is {what}; edit it by hand"));
        match b.get(i) {
            None | Some(b'\r' | b'\n' | b'#') => Err(unsupported("not on the key's line")),
            Some(b'|' | b'>') => Err(unsupported("a block scalar")),
            Some(b'&' | b'*' | b'!') => Err(unsupported("an anchor, alias or tag")),
            Some(b'[' | b'{') => Err(unsupported("a flow collection")),
            Some(b'"') => {
                let mut j = i + 1;
                while j < b.len() {
                    match b[j] {
                        b'\\' => j += 2,
                        b'"' => return Ok((i, j + 1, Style::Double)),
                        _ => j += 1,
                    }
                }
                Err(unsupported("an unterminated string"))
            }
            Some(b'\'') => {
                let mut j = i + 1;
                while j < b.len() {
                    if b[j] == b'\'' {
                        if b.get(j + 1) == Some(&b'\'') {
                            j += 2;
                            continue;
                        }
                        return Ok((i, j + 1, Style::Single));
                    }
                    j += 1;
                }
                Err(unsupported("an unterminated string"))
            }
            Some(_) => {
                let mut j = i;
                while j < b.len() && !matches!(b[j], b'\r' | b'\n') {
                    if b[j] == b'#' && matches!(b[j - 1], b' ' | b'\t') {
                        break;
                    }
                    j += 1;
                }
                while j > i && matches!(b[j - 1], b' ' | b'\t') {
                    j -= 1;
                }
                Ok((i, j, Style::Plain))
            }
        }
    }

    fn replace(&self, path: &YamlPath, entry: &Entry, v: &Value) -> Result<String, EditError> {
        if !matches!(entry.value, Node::Scalar(_)) {
            return Err(self.err(path, "the value is a mapping or a list, not a scalar"));
        }
        let (start, end, style) = self.value_span(path, entry)?;
        let written = render(v, style).ok_or_else(|| self.err(path, "only scalars can be set"))?;
        Ok(format!(
            "{}{}{}",
            &self.text[..start],
            written,
            &self.text[end..]
        ))
    }

    fn line_bounds(&self, at: usize) -> (usize, usize) {
        let start = self.text[..at].rfind('\n').map_or(0, |i| i + 1);
        let end = self.text[at..]
            .find('\n')
            .map_or(self.text.len(), |i| at + i + 1);
        (start, end)
    }

    fn remove_line(&self, path: &YamlPath, entry: &Entry) -> Result<String, EditError> {
        let at = self.key_at(path, entry)?;
        let (start, end) = self.line_bounds(at);
        let before = self.text[start..at].trim_end_matches(['"', '\'']);
        if !before.trim().is_empty() {
            return Err(self.err(
                path,
                "the key shares its line with another; edit it by hand",
            ));
        }
        Ok(format!("{}{}", &self.text[..start], &self.text[end..]))
    }

    fn insert(
        &self,
        path: &YamlPath,
        entries: &[Entry],
        key: &str,
        v: &Value,
    ) -> Result<String, EditError> {
        let anchor = entries
            .iter()
            .rev()
            .find(|e| matches!(e.value, Node::Scalar(_)) && e.at.is_some())
            .ok_or_else(|| self.err(path, "no neighbouring key to place the new one beside"))?;
        let at = self.key_at(path, anchor)?;
        let (line_start, _) = self.line_bounds(at);
        let mut col_start = at;
        if col_start > line_start && matches!(self.text.as_bytes()[col_start - 1], b'"' | b'\'') {
            col_start -= 1;
        }
        let indent = " ".repeat(self.text[line_start..col_start].chars().count());
        let (_, end, _) = self.value_span(path, anchor)?;
        // After the anchor's value (and any comment) but before its line ending.
        let line_end = self.text[end..]
            .find(['\r', '\n'])
            .map_or(self.text.len(), |i| end + i);
        let eol = if self.text.contains("\r\n") {
            "\r\n"
        } else {
            "\n"
        };
        let written =
            render(v, Style::Plain).ok_or_else(|| self.err(path, "only scalars can be set"))?;
        let key_text = render(&Value::String(key.to_string()), Style::Plain).unwrap_or_default();
        Ok(format!(
            "{}{eol}{indent}{key_text}: {written}{}",
            &self.text[..line_end],
            &self.text[line_end..]
        ))
    }

    /// The edited text must parse to the original document with only `path` changed.
    fn verify(&self, path: &YamlPath, new: Option<&Value>, out: &str) -> Result<(), EditError> {
        let bad = |m: String| self.err(path, format!("the edit did not come out clean ({m})"));
        let edited = YamlDoc::parse(self.file, out).map_err(|e| bad(e.message))?;
        if edited.get(path).as_ref() != new {
            return Err(bad("the value did not take".into()));
        }
        let mut want = to_json(&self.root);
        let mut got = to_json(&edited.root);
        blank(&mut want, &self.root, &path.segs);
        blank(&mut got, &edited.root, &path.segs);
        if want != got {
            return Err(bad("other values changed".into()));
        }
        Ok(())
    }
}

/// Removes the path's last key from `v` (which mirrors `node`), so two documents can be compared
/// apart from it.
fn blank(v: &mut Value, node: &Node, segs: &[Seg]) {
    match (segs.split_first(), v, node) {
        (Some((Seg::Key(k), [])), Value::Object(m), _) => {
            m.shift_remove(k);
        }
        (Some((Seg::Key(k), rest)), Value::Object(m), Node::Map(es)) => {
            if let (Some(child), Some(e)) = (m.get_mut(k), es.iter().find(|e| &e.key == k)) {
                blank(child, &e.value, rest);
            }
        }
        (Some((Seg::Index(i), rest)), Value::Array(a), Node::Seq(items)) => {
            if let (Some(child), Some(n)) = (a.get_mut(*i), items.get(*i)) {
                blank(child, n, rest);
            }
        }
        (Some((Seg::Match { key, value }, rest)), Value::Array(a), Node::Seq(items)) => {
            for (child, n) in a.iter_mut().zip(items) {
                if child[key.as_str()].as_str() == Some(value.as_str()) {
                    blank(child, n, rest);
                }
            }
        }
        _ => {}
    }
}

fn to_json(n: &Node) -> Value {
    match n {
        Node::Scalar(v) => v.clone(),
        Node::Seq(items) => Value::Array(items.iter().map(to_json).collect()),
        Node::Map(es) => Value::Object(
            es.iter()
                .map(|e| (e.key.clone(), to_json(&e.value)))
                .collect(),
        ),
    }
}

/// A scalar written in `style`; a string whose plain form would read back as something else
/// (`1.10`, `true`, `null`, `a: b`) is double-quoted instead, so its type survives.
fn render(v: &Value, style: Style) -> Option<String> {
    let s = match v {
        Value::String(s) => s,
        Value::Number(n) => return Some(n.to_string()),
        Value::Bool(b) => return Some(b.to_string()),
        Value::Null => return Some("null".into()),
        _ => return None,
    };
    Some(match style {
        Style::Single if !s.contains(['\n', '\r']) => format!("'{}'", s.replace('\'', "''")),
        Style::Plain if plain_reads_back(s) => s.clone(),
        _ => serde_json::to_string(s).ok()?,
    })
}

fn plain_reads_back(s: &str) -> bool {
    if s.is_empty() || s.contains(['\n', '\r', '#']) || s != s.trim() {
        return false;
    }
    matches!(
        crate::yaml::parse_single(&format!("k: {s}\n"), "(value)"),
        Ok(Value::Object(m)) if m.len() == 1 && m.get("k") == Some(&Value::String(s.to_string()))
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use serde_json::json;

    fn set(text: &str, path: &str, v: Option<Value>) -> Result<String, EditError> {
        let doc = YamlDoc::parse("f.yaml", text).unwrap();
        doc.set(&YamlPath::parse(path).unwrap(), v.as_ref())
    }

    #[test]
    fn paths_parse_and_bad_ones_are_refused() {
        let p = YamlPath::parse("images[name=ghcr.io/x/y].newTag").unwrap();
        assert_eq!(
            p.segs,
            vec![
                Seg::Key("images".into()),
                Seg::Match {
                    key: "name".into(),
                    value: "ghcr.io/x/y".into()
                },
                Seg::Key("newTag".into())
            ]
        );
        assert_eq!(YamlPath::parse("a[0].b").unwrap().segs[1], Seg::Index(0));
        for bad in ["", "a[0]", "a[x", "a[]b.c", ".a", "a[zz].b"] {
            assert!(YamlPath::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn one_value_changes_and_nothing_else() {
        let text = "# top\r\nimage:\r\n  repo: x # keep\r\n  tag: \"1.10\"   # quoted\r\n  pull: 'Always'\r\nn: 3";
        let out = set(text, "image.tag", Some(json!("1.11"))).unwrap();
        assert_eq!(out, text.replace("\"1.10\"", "\"1.11\""));
        let out = set(text, "image.pull", Some(json!("it's"))).unwrap();
        assert_eq!(out, text.replace("'Always'", "'it''s'"));
        let out = set(text, "image.repo", Some(json!("1.10"))).unwrap();
        assert_eq!(out, text.replace("repo: x #", "repo: \"1.10\" #"));
        let out = set(text, "n", Some(json!(4))).unwrap();
        assert_eq!(out, text.replace("n: 3", "n: 4"));
    }

    #[test]
    fn keys_are_added_and_removed_beside_their_neighbours() {
        let text = "images:\n  - name: a\n    newTag: \"1\"\n  - name: b\n    newTag: 2.0.0\n";
        let out = set(text, "images[name=b].digest", Some(json!("sha256:ab"))).unwrap();
        assert_eq!(
            out,
            text.replace("2.0.0\n", "2.0.0\n    digest: sha256:ab\n")
        );
        let back = set(&out, "images[name=b].digest", None).unwrap();
        assert_eq!(back, text);
        let crlf = "a:\r\n  b: 1";
        assert_eq!(
            set(crlf, "a.c", Some(json!("x"))).unwrap(),
            "a:\r\n  b: 1\r\n  c: x"
        );
    }

    #[test]
    fn unsupported_layouts_are_refused_not_mangled() {
        for (text, path) in [
            ("a: |\n  x\n", "a"),
            ("a: &x 1\nb: *x\n", "a"),
            ("a: {b: 1}\n", "a.b"),
            ("a:\n  b\n", "a"),
            ("a: [1]\n", "a"),
        ] {
            assert!(set(text, path, Some(json!("z"))).is_err(), "{text}");
        }
        assert!(set("a: 1\n", "x.y", Some(json!(1))).is_err());
    }
}
