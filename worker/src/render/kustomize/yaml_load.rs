//! Loading YAML the way kustomize sees it.
//!
//! kustomize decodes every resource with go-yaml v3 into generic Go values and re-encodes them
//! through JSON, so what survives is the *value* (not the style): plain scalars are resolved with
//! go-yaml v3's rules (`0777` is octal, `1_000` is 1000, `yes` stays a string, an unquoted date is
//! a timestamp). The event parser is yaml_serde's (same alias bound, depth limit and error
//! positions as `crate::yaml`); plain scalars are told apart from quoted ones by looking at the
//! source byte before the borrowed slice.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, HashMap};
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Number, Value};

use super::KustomizeError;

/// Parses every non-empty document of `text`.
pub fn parse_documents(text: &str, file: &str) -> Result<Vec<Value>, KustomizeError> {
    Ok(parse_documents_with(text, file, false, Marks::None)?
        .into_iter()
        .map(|(v, _)| v)
        .collect())
}

/// Which null fields of a resource were left empty (`key:`) rather than spelled out (`null`,
/// `~`). Both parse to null, but kustomize's strategic merge keeps a spelled-out null and drops a
/// field left empty (kyaml keeps the scalar's text), so a resource remembers the difference.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NullSpelling {
    /// JSON pointers of fields left empty.
    pub empty: BTreeSet<String>,
    /// JSON pointers of null fields whose spelling the loader could not read from the source
    /// (a key written with escapes, an alias of a node it did not see defined).
    pub unknown: BTreeSet<String>,
    /// JSON pointers of annotations left empty in block style: printed as `""`, but a JSON patch
    /// (which rebuilds the object from JSON) turns them into the text `null`.
    pub empty_annotations: BTreeSet<String>,
}

impl NullSpelling {
    /// The part about the subtree at `prefix` (a JSON pointer), relative to it.
    pub fn below(&self, prefix: &str) -> NullSpelling {
        let rebase = |set: &BTreeSet<String>| {
            set.iter()
                .filter_map(|p| p.strip_prefix(prefix))
                .filter(|p| p.starts_with('/'))
                .map(str::to_string)
                .collect()
        };
        NullSpelling {
            empty: rebase(&self.empty),
            unknown: rebase(&self.unknown),
            empty_annotations: rebase(&self.empty_annotations),
        }
    }
}

/// Like [`parse_documents`], for resources: each document with the spelling of its nulls.
pub fn parse_resource_documents(
    text: &str,
    file: &str,
) -> Result<Vec<(Value, NullSpelling)>, KustomizeError> {
    parse_documents_with(text, file, false, Marks::Resource)
}

/// Like [`parse_resource_documents`], for strategic merge patches: there a null annotation value
/// (`null`, `~`, nothing) deletes the annotation instead of being kept as text.
pub fn parse_patch_documents(
    text: &str,
    file: &str,
) -> Result<Vec<(Value, NullSpelling)>, KustomizeError> {
    parse_documents_with(text, file, false, Marks::Patch)
}

/// Whether (and for what) a document's nulls are marked with their spelling.
#[derive(Clone, Copy, PartialEq)]
enum Marks {
    None,
    Resource,
    Patch,
}

/// A kustomization file: like [`parse_single`] but with go-yaml v2's YAML 1.1 booleans
/// (`yes`, `on`, `y`, ...), as kustomize reads its own configuration.
pub fn parse_kustomization(text: &str, file: &str) -> Result<Value, KustomizeError> {
    let mut docs = parse_documents_with(text, file, true, Marks::None)?;
    match docs.len() {
        0 => Ok(Value::Null),
        1 => Ok(docs.remove(0).0),
        n => Err(KustomizeError::Invalid {
            file: file.to_string(),
            message: format!("expected one YAML document, found {n}"),
        }),
    }
}

fn parse_documents_with(
    text: &str,
    file: &str,
    v2: bool,
    marks: Marks,
) -> Result<Vec<(Value, NullSpelling)>, KustomizeError> {
    // Resources and patches are read by go-yaml v3, kustomization files by v2.
    let mut text = if v2 {
        std::borrow::Cow::Borrowed(text)
    } else {
        super::fold_quirk::adjust(text)
    };
    // go-yaml (v2 and v3) reads `\'` in a double-quoted scalar as `'`; libyaml refuses it as an
    // unknown escape. Each refusal names the position of one such escape inside a double-quoted
    // scalar, so exactly that backslash is dropped and the text read again.
    loop {
        match parse_adjusted(&text, file, v2, marks) {
            Err(Parsed::QuoteEscape { line, column }) => {
                match without_quote_escape(&text, line, column) {
                    Some(fixed) => text = std::borrow::Cow::Owned(fixed),
                    None => {
                        return Err(KustomizeError::Invalid {
                            file: file.to_string(),
                            message: format!("line {line}: found unknown escape character"),
                        });
                    }
                }
            }
            Err(Parsed::Failed(e)) => return Err(e),
            Ok(docs) => return Ok(docs),
        }
    }
}

enum Parsed {
    /// libyaml refused an escape at this 1-based line and column.
    QuoteEscape {
        line: usize,
        column: usize,
    },
    Failed(KustomizeError),
}

/// `text` with the backslash of the `\'` escape at `line`/`column` (1-based, in characters)
/// removed; `None` when no such escape stands there.
fn without_quote_escape(text: &str, line: usize, column: usize) -> Option<String> {
    let start: usize = text
        .split_inclusive('\n')
        .take(line.checked_sub(1)?)
        .map(str::len)
        .sum();
    let rest = text.get(start..)?;
    let (at, _) = rest.char_indices().nth(column.checked_sub(1)?)?;
    rest[at..].starts_with("\\'").then(|| {
        let mut fixed = String::with_capacity(text.len());
        fixed.push_str(&text[..start + at]);
        fixed.push_str(&text[start + at + 1..]);
        fixed
    })
}

fn parse_adjusted(
    text: &str,
    file: &str,
    v2: bool,
    marks: Marks,
) -> Result<Vec<(Value, NullSpelling)>, Parsed> {
    let mut out = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(text) {
        // Anchors are per document.
        let ctx = NullCtx::default();
        let seed = Seed {
            src: text,
            at: At::Root,
            v2,
            nulls: (marks != Marks::None).then_some(&ctx),
            patch: marks == Marks::Patch,
            after_key: None,
        };
        let mut value = seed.deserialize(doc).map_err(|e| match e.location() {
            Some(l) if e.to_string().contains("found unknown escape character") => {
                Parsed::QuoteEscape {
                    line: l.line(),
                    column: l.column(),
                }
            }
            loc => Parsed::Failed(KustomizeError::Invalid {
                file: file.to_string(),
                message: match loc {
                    Some(l) => format!("line {}: {e}", l.line()),
                    None => e.to_string(),
                },
            }),
        })?;
        if value.is_null() {
            continue;
        }
        let mut spelling = NullSpelling::default();
        if marks != Marks::None {
            take_null_marks(&mut value, &mut String::new(), &mut spelling);
        }
        out.push((value, spelling));
    }
    Ok(out)
}

/// Stand-ins for null values while a document is read (NUL-prefixed, so never real text):
/// [`take_null_marks`] turns them back into nulls and records where they were.
const EMPTY_NULL: &str = "\u{0}empty-null";
const UNKNOWN_NULL: &str = "\u{0}unknown-null";
/// A value left empty that kustomize prints as `""` but its strategic merge still drops: inside
/// a flow collection (`{a: }`; go-yaml cannot emit an empty plain scalar there and quotes it)
/// and a resource's annotation (kustomize writes annotations back as strings of their text).
const EMPTY_TEXT: &str = "\u{0}empty-text";
/// [`EMPTY_TEXT`] for an annotation left empty in block style.
const EMPTY_ANNOTATION: &str = "\u{0}empty-annotation";

fn take_null_marks(v: &mut Value, ptr: &mut String, out: &mut NullSpelling) {
    if let Value::String(s) = v
        && (s == EMPTY_TEXT || s == EMPTY_ANNOTATION)
    {
        if s == EMPTY_ANNOTATION {
            out.empty_annotations.insert(ptr.clone());
        }
        out.empty.insert(ptr.clone());
        *v = Value::String(String::new());
        return;
    }
    let set = match v {
        Value::String(s) if s == EMPTY_NULL => Some(&mut out.empty),
        Value::String(s) if s == UNKNOWN_NULL => Some(&mut out.unknown),
        Value::Object(m) => {
            for (k, x) in m.iter_mut() {
                let len = ptr.len();
                ptr.push('/');
                ptr.push_str(&k.replace('~', "~0").replace('/', "~1"));
                take_null_marks(x, ptr, out);
                ptr.truncate(len);
            }
            None
        }
        Value::Array(a) => {
            for (i, x) in a.iter_mut().enumerate() {
                let len = ptr.len();
                ptr.push('/');
                ptr.push_str(&i.to_string());
                take_null_marks(x, ptr, out);
                ptr.truncate(len);
            }
            None
        }
        _ => None,
    };
    if let Some(set) = set {
        set.insert(ptr.clone());
        *v = Value::Null;
    }
}

/// How a null scalar was written.
#[derive(Clone, Copy, PartialEq, Debug)]
enum NullText {
    /// `null`, `Null`, `NULL`, `~`.
    Written,
    /// Nothing at all (`key:`).
    Empty,
    /// Nothing at all, inside a flow mapping (`{key: }`, `{key}`).
    FlowEmpty,
    Unknown,
}

/// What one document's reader remembers to tell written nulls from empty ones.
#[derive(Default)]
struct NullCtx {
    /// Source offset just past the mapping key read last, when it was read from the source.
    key_end: Cell<Option<usize>>,
    /// Anchors defined on null values, by name.
    anchors: RefCell<HashMap<String, NullText>>,
}

/// The spelling of the null value of the mapping entry whose key ends at `end` in `src`: the
/// text after the key's `:` (past comments, line breaks, anchors and tags).
fn null_text(src: &str, end: usize, ctx: &NullCtx) -> NullText {
    let b = src.as_bytes();
    let skip_blank = |mut i: usize| {
        loop {
            match b.get(i) {
                Some(b' ' | b'\t' | b'\r' | b'\n') => i += 1,
                Some(b'#') => {
                    while b.get(i).is_some_and(|&c| c != b'\n') {
                        i += 1;
                    }
                }
                _ => return i,
            }
        }
    };
    let token_end = |mut i: usize| {
        while b.get(i).is_some_and(|c| {
            !matches!(
                c,
                b' ' | b'\t' | b'\r' | b'\n' | b',' | b'[' | b']' | b'{' | b'}'
            )
        }) {
            i += 1;
        }
        i
    };
    let mut i = skip_blank(end);
    match b.get(i) {
        Some(b':') => i += 1,
        // A flow mapping entry without a value: `{key}`, `{key, other: 1}`.
        Some(b',' | b'}') => return NullText::FlowEmpty,
        _ => return NullText::Unknown,
    }
    let mut anchor = None;
    loop {
        i = skip_blank(i);
        match b.get(i) {
            Some(b'&') => {
                let e = token_end(i);
                anchor = src.get(i + 1..e).map(str::to_string);
                i = e;
            }
            Some(b'!') => i = token_end(i),
            _ => break,
        }
    }
    let e = token_end(i);
    let token = src.get(i..e).unwrap_or("");
    let text = if let Some(name) = token.strip_prefix('*') {
        ctx.anchors
            .borrow()
            .get(name)
            .copied()
            .unwrap_or(NullText::Unknown)
    } else if matches!(token, "null" | "Null" | "NULL" | "~") {
        // Unless it is the next entry's key (`key:\nnull: 1`).
        let after = skip_blank(e);
        let is_key = b.get(after) == Some(&b':')
            && b.get(after + 1)
                .is_none_or(|c| matches!(c, b' ' | b'\t' | b'\r' | b'\n'));
        if is_key {
            NullText::Empty
        } else {
            NullText::Written
        }
    } else if token.is_empty() && matches!(b.get(e), Some(b',' | b'}' | b']')) {
        NullText::FlowEmpty
    } else {
        // The next key, the next sequence entry, the end of the document.
        NullText::Empty
    };
    if let Some(name) = anchor {
        ctx.anchors.borrow_mut().insert(name, text);
    }
    text
}

/// Parses a stream that must hold at most one document.
#[cfg(test)]
pub fn parse_single(text: &str, file: &str) -> Result<Value, KustomizeError> {
    let mut docs = parse_documents(text, file)?;
    match docs.len() {
        0 => Ok(Value::Null),
        1 => Ok(docs.remove(0)),
        n => Err(KustomizeError::Invalid {
            file: file.to_string(),
            message: format!("expected one YAML document, found {n}"),
        }),
    }
}

/// Stands for a quoted `"<<"` key while a mapping is read (never a real key: NUL-prefixed).
const QUOTED_MERGE_KEY: &str = "\u{0}quoted-merge-key";

#[derive(Clone, Copy)]
struct Seed<'s> {
    src: &'s str,
    /// Where the value sits, for the few places kustomize keeps scalars as written.
    at: At,
    /// Kustomization files are read by sigs.k8s.io/yaml, i.e. go-yaml v2 (YAML 1.1 booleans).
    v2: bool,
    /// Set when the spelling of nulls is recorded (resources, patches).
    nulls: Option<&'s NullCtx>,
    /// A strategic merge patch (its annotations may be null).
    patch: bool,
    /// For a mapping value: the source offset just past its key, when known.
    after_key: Option<usize>,
}

impl Seed<'_> {
    /// Whether a scalar borrowed from the source is plain (not quoted); `None` when it is not a
    /// slice of the source.
    fn is_plain(&self, v: &str) -> Option<bool> {
        let base = self.src.as_ptr() as usize;
        let p = v.as_ptr() as usize;
        if p < base || p > base + self.src.len() {
            return None;
        }
        let before = &self.src[..p - base];
        Some(!matches!(
            before.as_bytes().last(),
            Some(b'"') | Some(b'\'')
        ))
    }

    /// A null value; in a mapping entry of a resource, marked with how it was written.
    fn null(self) -> Value {
        let Some(ctx) = self.nulls else {
            return Value::Null;
        };
        if matches!(self.at, At::Root | At::Key | At::SeqItem) {
            return Value::Null;
        }
        match self.after_key.map(|end| null_text(self.src, end, ctx)) {
            Some(NullText::Written) => Value::Null,
            Some(NullText::Empty) => Value::String(EMPTY_NULL.to_string()),
            Some(NullText::FlowEmpty) => Value::String(EMPTY_TEXT.to_string()),
            _ => Value::String(UNKNOWN_NULL.to_string()),
        }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum At {
    Root,
    Metadata,
    /// The top-level metadata.annotations mapping.
    AnnotationMap,
    /// Its values: kustomize keeps them as the text written.
    Annotations,
    /// A mapping key.
    Key,
    /// A sequence element.
    SeqItem,
    Other,
}

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Value;
    fn deserialize<D: de::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        if self.at == At::Annotations {
            return d.deserialize_str(AnnotationValue(self));
        }
        d.deserialize_any(self)
    }
}

fn float_value<E: de::Error>(f: f64) -> Result<Value, E> {
    Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| E::custom("json: unsupported value: non-finite float"))
}

impl<'de> Visitor<'de> for Seed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any YAML value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        float_value(v as f64)
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        float_value(v as f64)
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        float_value(v)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Ok(self.null())
    }
    fn visit_none<E: de::Error>(self) -> Result<Value, E> {
        Ok(self.null())
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Value, E> {
        let base = self.src.as_ptr() as usize;
        let p = v.as_ptr() as usize;
        if p < base || p > base + self.src.len() {
            return Ok(Value::String(v.to_string()));
        }
        let off = p - base;
        let before = &self.src[..off];
        let quoted = matches!(before.as_bytes().last(), Some(b'"') | Some(b'\''));
        if self.at == At::Key
            && let Some(ctx) = self.nulls
        {
            ctx.key_end.set(Some(off + v.len() + usize::from(quoted)));
        }
        let tagged_str = before.trim_end().ends_with("!!str");
        if quoted && self.at == At::Key && v == "<<" {
            return Ok(Value::String(QUOTED_MERGE_KEY.to_string()));
        }
        if quoted || tagged_str {
            return Ok(Value::String(v.to_string()));
        }
        if self.v2 && matches!(v, "y" | "Y" | "yes" | "Yes" | "YES" | "on" | "On" | "ON") {
            return Ok(Value::Bool(true));
        }
        if self.v2 && matches!(v, "n" | "N" | "no" | "No" | "NO" | "off" | "Off" | "OFF") {
            return Ok(Value::Bool(false));
        }
        // Inside a flow collection (`[...]`, `{...}`) kustomize keeps timestamps with a time
        // part as written; the scalar's neighbours in the source tell the two contexts apart.
        let prev = before.trim_end_matches([' ', '\t']).chars().last();
        let after = &self.src[off + v.len()..];
        let next = after.trim_start_matches([' ', '\t']).chars().next();
        let flow = matches!(prev, Some('[' | '{' | ',')) || matches!(next, Some(',' | ']' | '}'));
        resolve_plain_v3(v, !flow)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut out = Vec::new();
        let child = Seed {
            at: At::SeqItem,
            after_key: None,
            ..self
        };
        while let Some(v) = seq.next_element_seed(child)? {
            out.push(v);
        }
        Ok(Value::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        let mut merges: Vec<Map<String, Value>> = Vec::new();
        let key_seed = Seed {
            at: At::Key,
            after_key: None,
            ..self
        };
        loop {
            if let Some(ctx) = self.nulls {
                ctx.key_end.set(None);
            }
            let Some(k) = map.next_key_seed(key_seed)? else {
                break;
            };
            let after_key = self.nulls.and_then(|ctx| ctx.key_end.get());
            // kustomize round-trips through JSON, which only has string keys.
            let key = match k {
                Value::String(s) => s,
                other => {
                    return Err(de::Error::custom(format!(
                        "json: unsupported type: mapping key {other} is not a string"
                    )));
                }
            };
            let at = match (self.at, key.as_str()) {
                (At::Root, "metadata") => At::Metadata,
                (At::Metadata, "annotations") => At::AnnotationMap,
                (At::AnnotationMap, _) => At::Annotations,
                _ => At::Other,
            };
            let v = map.next_value_seed(Seed {
                at,
                after_key,
                ..self
            })?;
            if key == QUOTED_MERGE_KEY {
                // kustomize drops a quoted `"<<"` entry altogether.
                continue;
            }
            if key == "<<" {
                // A merge key: go-yaml merges mappings in (explicit keys win, earlier merged
                // maps win over later ones) and drops anything else.
                match v {
                    Value::Object(m) => merges.push(m),
                    Value::Array(items) => {
                        merges.extend(items.into_iter().filter_map(|i| match i {
                            Value::Object(m) => Some(m),
                            _ => None,
                        }))
                    }
                    _ => {}
                }
                continue;
            }
            if out.contains_key(&key) {
                return Err(de::Error::custom(format!("duplicate key {key:?}")));
            }
            out.insert(key, v);
        }
        for m in merges {
            for (k, v) in m {
                out.entry(k).or_insert(v);
            }
        }
        Ok(Value::Object(out))
    }
    fn visit_enum<A: de::EnumAccess<'de>>(self, data: A) -> Result<Value, A::Error> {
        // A custom tag (`!Foo value`): go-yaml keeps the value and drops the tag.
        use de::VariantAccess;
        let (_tag, variant): (String, _) = data.variant()?;
        variant.newtype_variant_seed(Seed {
            at: At::Other,
            ..self
        })
    }
}

/// A value of the top-level `metadata.annotations`: scalars are kept as the text written.
struct AnnotationValue<'s>(Seed<'s>);

impl<'de> Visitor<'de> for AnnotationValue<'_> {
    type Value = Value;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an annotation value")
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Value, E> {
        Err(E::custom("annotation value is null; spell it out"))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Value, E> {
        Err(E::custom("numeric annotation value"))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Value, E> {
        Err(E::custom("numeric annotation value"))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Value, E> {
        Err(E::custom("numeric annotation value"))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Value, E> {
        let seed = self.0;
        if seed.nulls.is_some() && seed.is_plain(v) == Some(true) {
            if seed.patch && matches!(v, "" | "null" | "Null" | "NULL" | "~") {
                return Ok(Value::Null);
            }
            if !seed.patch && v.is_empty() {
                let flow = seed.after_key.is_some_and(|end| {
                    null_text(seed.src, end, &NullCtx::default()) == NullText::FlowEmpty
                });
                return Ok(Value::String(
                    if flow { EMPTY_TEXT } else { EMPTY_ANNOTATION }.to_string(),
                ));
            }
        }
        Ok(Value::String(v.to_string()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Value, A::Error> {
        Seed {
            at: At::Other,
            ..self.0
        }
        .visit_seq(seq)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Value, A::Error> {
        Seed {
            at: At::Other,
            ..self.0
        }
        .visit_map(map)
    }
}

/// go-yaml v3's resolution of a plain scalar that yaml_serde left as a string.
/// The value go-yaml v3 gives an untagged plain scalar with this text (block context).
pub fn resolve_plain(s: &str) -> Result<Value, KustomizeError> {
    resolve_plain_v3::<de::value::Error>(s, true)
        .map_err(|e| KustomizeError::invalid("<replacement value>", e))
}

fn resolve_plain_v3<E: de::Error>(s: &str, convert_timestamps: bool) -> Result<Value, E> {
    match s {
        "" | "~" | "null" | "Null" | "NULL" => return Ok(Value::Null),
        "true" | "True" | "TRUE" => return Ok(Value::Bool(true)),
        "false" | "False" | "FALSE" => return Ok(Value::Bool(false)),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" | "-.inf" | "-.Inf" | "-.INF"
        | ".nan" | ".NaN" | ".NAN" => {
            return Err(E::custom("json: unsupported value: non-finite float"));
        }
        _ => {}
    }
    let first = s.as_bytes()[0];
    if first.is_ascii_digit() || first == b'-' || first == b'+' || first == b'.' {
        if let Some(ts) = timestamp_v3(s) {
            // A timestamp-looking value becomes RFC 3339 text (go-yaml decodes it to a time);
            // in flow context only a bare date does, the other forms stay as written.
            let date_only = !s.contains(':');
            return Ok(Value::String(if convert_timestamps || date_only {
                ts
            } else {
                s.to_string()
            }));
        }
        let plain: String = s.chars().filter(|&c| c != '_').collect();
        if let Some(v) = go_parse_int(&plain) {
            return Ok(v);
        }
        // Out-of-range floats (1e400) fail Go's ParseFloat and stay strings.
        if is_yaml_float(&plain)
            && let Ok(f) = plain.parse::<f64>()
            && f.is_finite()
        {
            return float_value(f);
        }
    }
    Ok(Value::String(s.to_string()))
}

/// Go's `strconv.ParseInt/ParseUint(s, 0, 64)`: sign, `0x`/`0o`/`0b` prefixes, leading-zero
/// octal.
pub(crate) fn go_parse_int(s: &str) -> Option<Value> {
    let (neg, body) = match s.as_bytes().first()? {
        b'-' => (true, &s[1..]),
        b'+' => (false, &s[1..]),
        _ => (false, s),
    };
    if body.is_empty() {
        return None;
    }
    let lower = body.to_ascii_lowercase();
    let (radix, digits) = if let Some(r) = lower.strip_prefix("0x") {
        (16, r)
    } else if let Some(r) = lower.strip_prefix("0o") {
        (8, r)
    } else if let Some(r) = lower.strip_prefix("0b") {
        (2, r)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, &lower[1..])
    } else {
        (10, lower.as_str())
    };
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let mag = u64::from_str_radix(digits, radix).ok()?;
    if neg {
        if mag <= i64::MAX as u64 {
            Some(Value::Number((-(mag as i64)).into()))
        } else if mag == i64::MAX as u64 + 1 {
            Some(Value::Number(i64::MIN.into()))
        } else {
            None
        }
    } else {
        Some(Value::Number(mag.into()))
    }
}

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
pub(crate) fn is_yaml_float(s: &str) -> bool {
    let b = s.as_bytes();
    let mut i = 0;
    if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
        i += 1;
    }
    let digits = |i: &mut usize| {
        let start = *i;
        while *i < b.len() && b[*i].is_ascii_digit() {
            *i += 1;
        }
        *i - start
    };
    if i < b.len() && b[i] == b'.' {
        i += 1;
        if digits(&mut i) == 0 {
            return false;
        }
    } else {
        if digits(&mut i) == 0 {
            return false;
        }
        if i < b.len() && b[i] == b'.' {
            i += 1;
            digits(&mut i);
        }
    }
    if i < b.len() && (b[i] == b'e' || b[i] == b'E') {
        i += 1;
        if i < b.len() && (b[i] == b'-' || b[i] == b'+') {
            i += 1;
        }
        if digits(&mut i) == 0 {
            return false;
        }
    }
    i == b.len()
}

/// Recognises the timestamp forms go-yaml resolves (`2006-1-2`, `2006-1-2T15:4:5.999Z07:00`,
/// `2006-1-2 15:4:5`) and returns Go's JSON encoding of the time (RFC 3339, nanoseconds trimmed).
pub(crate) fn timestamp_v3(s: &str) -> Option<String> {
    let b = s.as_bytes();
    if b.len() < 8 || !b[..4].iter().all(u8::is_ascii_digit) || b[4] != b'-' {
        return None;
    }
    let mut p = Parser { b, i: 5 };
    let year = &s[..4];
    let month = p.num(1, 2)?;
    p.lit(b'-')?;
    let day = p.num(1, 2)?;
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let date = format!("{year}-{month:02}-{day:02}");
    if p.i == b.len() {
        return Some(format!("{date}T00:00:00Z"));
    }
    let sep = b[p.i];
    if sep != b'T' && sep != b't' && sep != b' ' {
        return None;
    }
    p.i += 1;
    let h = p.num(1, 2)?;
    p.lit(b':')?;
    let m = p.num(1, 2)?;
    p.lit(b':')?;
    let sec = p.num(1, 2)?;
    if h > 23 || m > 59 || sec > 59 {
        return None;
    }
    let mut frac = String::new();
    if p.i < b.len() && b[p.i] == b'.' {
        p.i += 1;
        let start = p.i;
        while p.i < b.len() && b[p.i].is_ascii_digit() {
            p.i += 1;
        }
        if p.i == start || p.i - start > 9 {
            return None;
        }
        let digits = s[start..p.i].trim_end_matches('0');
        if !digits.is_empty() {
            frac = format!(".{digits}");
        }
    }
    let zone = if p.i == b.len() {
        if sep == b' ' {
            "Z".to_string()
        } else {
            return None;
        }
    } else if b[p.i] == b'Z' && p.i + 1 == b.len() {
        if sep == b' ' {
            return None;
        }
        "Z".to_string()
    } else if (b[p.i] == b'+' || b[p.i] == b'-') && sep != b' ' {
        let sign = b[p.i] as char;
        p.i += 1;
        let zh = p.num(2, 2)?;
        p.lit(b':')?;
        let zm = p.num(2, 2)?;
        if p.i != b.len() {
            return None;
        }
        if zh == 0 && zm == 0 {
            "Z".to_string()
        } else {
            format!("{sign}{zh:02}:{zm:02}")
        }
    } else {
        return None;
    };
    Some(format!("{date}T{h:02}:{m:02}:{sec:02}{frac}{zone}"))
}

struct Parser<'a> {
    b: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn num(&mut self, min: usize, max: usize) -> Option<u32> {
        let start = self.i;
        while self.i < self.b.len() && self.b[self.i].is_ascii_digit() && self.i - start < max {
            self.i += 1;
        }
        if self.i - start < min {
            return None;
        }
        std::str::from_utf8(&self.b[start..self.i])
            .ok()?
            .parse()
            .ok()
    }
    fn lit(&mut self, c: u8) -> Option<()> {
        if self.i < self.b.len() && self.b[self.i] == c {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn plain_scalars_resolve_like_go_yaml_v3() {
        let v = parse_single(
            "a: 0777\nb: \"0777\"\nc: yes\nd: 1_000\ne: 2024-01-02\nf: 09\ng: '1'\nh: !!str 5\n",
            "x",
        )
        .unwrap();
        assert_eq!(v["a"], 511);
        assert_eq!(v["b"], "0777");
        assert_eq!(v["c"], "yes");
        assert_eq!(v["d"], 1000);
        assert_eq!(v["e"], "2024-01-02T00:00:00Z");
        assert_eq!(v["f"], 9.0);
        assert_eq!(v["g"], "1");
        assert_eq!(v["h"], "5");
        let v = parse_single("a: \"null\"\nb: 'true'\nc: \"~\"\n", "x").unwrap();
        assert_eq!(v["a"], "null");
        assert_eq!(v["b"], "true");
        assert_eq!(v["c"], "~");
    }

    #[test]
    fn duplicate_keys_are_refused() {
        let e = parse_single("a: 1\na: 2\n", "f.yaml").unwrap_err();
        assert!(e.to_string().contains("duplicate"), "{e}");
    }
}
