//! Jsonnet programs of directory apps, evaluated with jrsonnet the way ArgoCD evaluates them with
//! go-jsonnet (in a child process, see [`super::jsonnet_proc`]): every `*.jsonnet` file of the directory (never `*.libsonnet`) is one
//! program; `directory.jsonnet.extVars` and `tlas` are strings or code; the library search path is
//! the app folder followed by `directory.jsonnet.libs` (relative to the repository root), searched
//! after the importing file's own folder and from the last entry to the first, as go-jsonnet's
//! `FileImporter` does.
//!
//! Inputs are known before anything is evaluated: Jsonnet imports are string literals (the
//! language has no computed imports), so [`imports`] finds them with a lexer and [`closure`]
//! follows them through the sandboxed [`RepoFs`]. The evaluator then only sees those files, handed
//! to it and held in memory: an import the scan did not resolve cannot reach the disk. Absolute imports and
//! imports climbing above the repository root are refused, not looked up.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jrsonnet_evaluator::manifest::JsonFormat;
use jrsonnet_evaluator::tla::TlaArg;
use jrsonnet_evaluator::trace::{CompactFormat, PathResolver, TraceFormat};
use jrsonnet_evaluator::{AsPathLike, IStr, ImportResolver, State, apply_tla, bail};
use jrsonnet_gcmodule::Acyclic;
use jrsonnet_ir::{SourceFifo, SourceFile, SourcePath};
use serde_json::Value;

use super::RenderError;
use super::source::JsonnetOptions;
use crate::limits;
use crate::repo_fs::{EntryKind, FsError, RepoFs, RepoPath};

/// Bounds on one Jsonnet evaluation: a pull request's program must not hang or exhaust a worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JsonnetLimits {
    /// Nested calls and object fields being evaluated at once (go-jsonnet's `--max-stack`, 500).
    pub max_stack: usize,
    /// Wall time of one program. Its child process is killed when it passes (and it gets as
    /// many seconds of CPU time, rounded up, which stops it even without the parent).
    pub deadline: Duration,
    /// Address space of the child process evaluating one program (`RLIMIT_AS`): the program,
    /// its inputs and the evaluator itself.
    pub max_memory_bytes: usize,
    /// Largest JSON output of one program.
    pub max_output_bytes: usize,
    /// Files one app may import, transitively.
    pub max_files: usize,
}

impl Default for JsonnetLimits {
    fn default() -> Self {
        JsonnetLimits {
            max_stack: 500,
            deadline: Duration::from_secs(30),
            max_memory_bytes: 1024 * 1024 * 1024,
            max_output_bytes: 32 * 1024 * 1024,
            max_files: 5_000,
        }
    }
}

/// What an import statement reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportKind {
    /// `import`: a Jsonnet file, whose own imports count too.
    Code,
    /// `importstr` / `importbin`: raw contents.
    Raw,
}

/// The import statements of a Jsonnet program, in order. Comments and strings are skipped; an
/// import whose path is not a plain string literal is left to the evaluator, which rejects it.
pub fn imports(text: &str) -> Result<Vec<(ImportKind, String)>, String> {
    let mut lx = Lexer {
        s: text.as_bytes(),
        i: 0,
        text,
    };
    let mut out = Vec::new();
    let mut pending: Option<ImportKind> = None;
    while let Some(tok) = lx.next()? {
        match (pending.take(), tok) {
            (Some(kind), Token::Str(path)) => out.push((kind, path)),
            (_, Token::Ident(id)) => {
                pending = match id {
                    "import" => Some(ImportKind::Code),
                    "importstr" | "importbin" => Some(ImportKind::Raw),
                    _ => None,
                }
            }
            _ => {}
        }
    }
    Ok(out)
}

enum Token<'a> {
    Ident(&'a str),
    Str(String),
    Other,
}

struct Lexer<'a> {
    s: &'a [u8],
    i: usize,
    text: &'a str,
}

impl<'a> Lexer<'a> {
    fn peek(&self, at: usize) -> Option<u8> {
        self.s.get(self.i + at).copied()
    }

    fn next(&mut self) -> Result<Option<Token<'a>>, String> {
        loop {
            let Some(c) = self.peek(0) else {
                return Ok(None);
            };
            match c {
                b' ' | b'\t' | b'\r' | b'\n' => self.i += 1,
                b'#' => self.skip_line(),
                b'/' if self.peek(1) == Some(b'/') => self.skip_line(),
                b'/' if self.peek(1) == Some(b'*') => {
                    let rest = &self.text[self.i + 2..];
                    match rest.find("*/") {
                        Some(end) => self.i += 2 + end + 2,
                        None => return Err("unterminated comment".into()),
                    }
                }
                b'"' | b'\'' => {
                    self.i += 1;
                    return self.quoted(c).map(|s| Some(Token::Str(s)));
                }
                b'@' if matches!(self.peek(1), Some(b'"' | b'\'')) => {
                    self.i += 2;
                    return self
                        .verbatim(self.s[self.i - 1])
                        .map(|s| Some(Token::Str(s)));
                }
                b'|' if self.text[self.i..].starts_with("|||") => {
                    self.text_block()?;
                    return Ok(Some(Token::Other));
                }
                c if c == b'_' || c.is_ascii_alphabetic() => {
                    let start = self.i;
                    while self
                        .peek(0)
                        .is_some_and(|c| c == b'_' || c.is_ascii_alphanumeric())
                    {
                        self.i += 1;
                    }
                    return Ok(Some(Token::Ident(&self.text[start..self.i])));
                }
                _ => {
                    // Advance by one whole character so slicing stays on UTF-8 boundaries.
                    let len = self.text[self.i..].chars().next().map_or(1, char::len_utf8);
                    self.i += len;
                    return Ok(Some(Token::Other));
                }
            }
        }
    }

    fn skip_line(&mut self) {
        while let Some(c) = self.peek(0) {
            self.i += 1;
            if c == b'\n' {
                break;
            }
        }
    }

    /// A `'…'` or `"…"` string after its opening quote, with Jsonnet's escapes decoded.
    fn quoted(&mut self, quote: u8) -> Result<String, String> {
        let mut out = String::new();
        let mut chars = self.text[self.i..].char_indices();
        while let Some((at, c)) = chars.next() {
            match c {
                c if c as u32 == u32::from(quote) => {
                    self.i += at + 1;
                    return Ok(out);
                }
                '\\' => {
                    let Some((_, e)) = chars.next() else { break };
                    match e {
                        'n' => out.push('\n'),
                        't' => out.push('\t'),
                        'r' => out.push('\r'),
                        'b' => out.push('\u{8}'),
                        'f' => out.push('\u{c}'),
                        'u' => {
                            let hex: String = chars.by_ref().take(4).map(|(_, h)| h).collect();
                            let code = u32::from_str_radix(&hex, 16)
                                .map_err(|_| format!("bad \\u escape {hex:?}"))?;
                            out.push(char::from_u32(code).unwrap_or('\u{fffd}'));
                        }
                        other => out.push(other),
                    }
                }
                c => out.push(c),
            }
        }
        Err("unterminated string".into())
    }

    /// A `@'…'` string after its opening quote: no escapes, a doubled quote is one quote.
    fn verbatim(&mut self, quote: u8) -> Result<String, String> {
        let mut out = String::new();
        let q = char::from(quote);
        let mut chars = self.text[self.i..].char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            if c == q {
                if chars.peek().is_some_and(|(_, n)| *n == q) {
                    chars.next();
                    out.push(q);
                    continue;
                }
                self.i += at + 1;
                return Ok(out);
            }
            out.push(c);
        }
        Err("unterminated verbatim string".into())
    }

    /// Skips a `|||` text block: its lines share the first line's indentation and it ends at
    /// the first line that does not, which must be `|||`.
    fn text_block(&mut self) -> Result<(), String> {
        let rest = &self.text[self.i + 3..];
        let Some(nl) = rest.find('\n') else {
            return Err("unterminated text block".into());
        };
        let body = &rest[nl + 1..];
        let indent: &str = {
            let first = body.lines().next().unwrap_or("");
            &first[..first.len() - first.trim_start_matches([' ', '\t']).len()]
        };
        let mut offset = 0;
        for line in body.split_inclusive('\n') {
            let content = line.trim_end_matches(['\n', '\r']);
            if !indent.is_empty() && (content.is_empty() || line.starts_with(indent)) {
                offset += line.len();
                continue;
            }
            let trimmed = content.trim_start_matches([' ', '\t']);
            if trimmed.starts_with("|||") {
                let lead = content.len() - trimmed.len();
                self.i += 3 + nl + 1 + offset + lead + 3;
                return Ok(());
            }
            return Err("text block without a closing |||".into());
        }
        Err("unterminated text block".into())
    }
}

/// Where `import path` from a file in `from_dir` (none for ext/TLA code) is found: the
/// importing file's folder, then the library path from its last entry to its first. Absolute
/// paths and paths climbing above the repository root are refused.
fn resolve(
    from_dir: Option<&RepoPath>,
    path: &str,
    jpath: &[RepoPath],
    exists: &dyn Fn(&RepoPath) -> Result<bool, FsError>,
) -> Result<Option<RepoPath>, FsError> {
    if path.is_empty() {
        return Err(FsError::NotFound("empty import path".into()));
    }
    if path.starts_with('/') || Path::new(path).is_absolute() {
        return Err(FsError::Escape(path.to_string()));
    }
    for dir in from_dir.into_iter().chain(jpath.iter().rev()) {
        let candidate = dir.join(path)?;
        if exists(&candidate)? {
            return Ok(Some(candidate));
        }
    }
    Ok(None)
}

/// The library path: the app folder, then `libs` resolved from the repository root.
pub fn library_path(app: &RepoPath, opts: &JsonnetOptions) -> Result<Vec<RepoPath>, RenderError> {
    let mut out = vec![app.clone()];
    for lib in &opts.libs {
        let p = RepoPath::new(lib).map_err(|source| RenderError::Input {
            file: format!("{app}: directory.jsonnet.libs {lib:?}"),
            source,
        })?;
        out.push(p);
    }
    Ok(out)
}

/// Every file the programs `entries` read, themselves included, following imports.
pub fn closure(
    fs: &dyn RepoFs,
    app: &RepoPath,
    entries: &[RepoPath],
    opts: &JsonnetOptions,
    limits: &JsonnetLimits,
) -> Result<BTreeSet<RepoPath>, RenderError> {
    let jpath = library_path(app, opts)?;
    let exists = |p: &RepoPath| -> Result<bool, FsError> {
        match fs.kind(p)? {
            None => Ok(false),
            Some(EntryKind::File) => Ok(true),
            Some(EntryKind::Dir) => Err(FsError::Backend {
                path: p.to_string(),
                message: "imported path is a directory".into(),
            }),
        }
    };
    let mut seen: BTreeMap<RepoPath, ImportKind> = BTreeMap::new();
    let mut queue: VecDeque<(RepoPath, ImportKind)> = entries
        .iter()
        .map(|e| (e.clone(), ImportKind::Code))
        .collect();
    // Ext vars and TLAs given as code may import too: only from the library path.
    let follow = |from: Option<&RepoPath>,
                  label: &str,
                  text: &str,
                  queue: &mut VecDeque<(RepoPath, ImportKind)>|
     -> Result<(), RenderError> {
        let list = imports(text).map_err(|message| RenderError::Invalid {
            file: label.to_string(),
            message: format!("reading its imports: {message}"),
        })?;
        for (kind, path) in list {
            let found =
                resolve(from, &path, &jpath, &exists).map_err(|source| RenderError::Input {
                    file: format!("{label}: import {path:?}"),
                    source,
                })?;
            match found {
                Some(p) => queue.push_back((p, kind)),
                None => {
                    return Err(RenderError::Invalid {
                        file: label.to_string(),
                        message: format!(
                            "import {path:?}: no such file next to it or in the library path"
                        ),
                    });
                }
            }
        }
        Ok(())
    };
    for var in opts.ext_vars.iter().chain(&opts.tlas).filter(|v| v.code) {
        let label = format!("{app}: jsonnet code for {:?}", var.name);
        follow(None, &label, &var.value, &mut queue)?;
    }
    while let Some((file, kind)) = queue.pop_front() {
        match seen.get(&file) {
            Some(ImportKind::Code) => continue,
            Some(ImportKind::Raw) if kind == ImportKind::Raw => continue,
            _ => {}
        }
        seen.insert(file.clone(), kind);
        if seen.len() > limits.max_files {
            return Err(RenderError::Limit {
                file: app.to_string(),
                line: limits::not_checked(
                    "jsonnet_max_files",
                    limits.max_files,
                    "the app's Jsonnet programs import more files",
                ),
            });
        }
        if kind == ImportKind::Raw {
            // Read now so that a refused file (symlink out, too large) fails here, loudly.
            fs.read(&file).map_err(|source| RenderError::Input {
                file: file.to_string(),
                source,
            })?;
            continue;
        }
        let text = fs
            .read_to_string(&file)
            .map_err(|source| RenderError::Input {
                file: file.to_string(),
                source,
            })?;
        follow(Some(&file.parent()), file.as_str(), &text, &mut queue)?;
    }
    Ok(seen.into_keys().collect())
}

/// The files a program may read, held in memory, with the same lookup as [`closure`].
#[derive(Acyclic)]
struct Resolver {
    files: BTreeMap<String, Arc<[u8]>>,
    jpath: Vec<String>,
}

impl ImportResolver for Resolver {
    fn resolve_from(
        &self,
        from: &SourcePath,
        path: &dyn AsPathLike,
    ) -> jrsonnet_evaluator::Result<SourcePath> {
        let path = path.as_path();
        let path: &Path = path.as_ref();
        let Some(text) = path.to_str() else {
            bail!("import path {} is not UTF-8", path.display());
        };
        let from_dir = from
            .downcast_ref::<SourceFile>()
            .and_then(|f| f.path().to_str())
            .and_then(|p| RepoPath::new(p).ok())
            .map(|p| p.parent());
        let jpath: Vec<RepoPath> = self
            .jpath
            .iter()
            .filter_map(|p| RepoPath::new(p).ok())
            .collect();
        let exists = |p: &RepoPath| Ok(self.files.contains_key(p.as_str()));
        match resolve(from_dir.as_ref(), text, &jpath, &exists) {
            Ok(Some(p)) => Ok(SourcePath::new(SourceFile::new(PathBuf::from(p.as_str())))),
            Ok(None) => bail!("import {text:?}: no such file next to it or in the library path"),
            Err(e) => bail!("import {text:?} refused: {e}"),
        }
    }

    fn load_file_contents(&self, resolved: &SourcePath) -> jrsonnet_evaluator::Result<Vec<u8>> {
        if let Some(code) = resolved.downcast_ref::<SourceFifo>() {
            // Ext vars and TLAs given as code arrive this way.
            return Ok(code.1.to_vec());
        }
        let found = resolved
            .downcast_ref::<SourceFile>()
            .and_then(|f| f.path().to_str())
            .and_then(|p| self.files.get(p));
        match found {
            Some(bytes) => Ok(bytes.to_vec()),
            None => bail!("{resolved} is not among the app's inputs"),
        }
    }
}

/// Lines of an evaluation error kept in the report.
const MAX_TRACE_LINES: usize = 20;

/// Why [`run`] gave no output.
pub(super) enum Failure {
    /// The program's own error, with its trace.
    Eval(String),
    /// The output's size in bytes, over [`JsonnetLimits::max_output_bytes`].
    TooLarge(usize),
}

/// One evaluation on the current thread (the evaluator's state is thread-local), with no bound
/// on its time or memory: only [`super::jsonnet_proc`]'s child process calls it, under limits
/// the operating system enforces.
pub(super) fn run(
    files: BTreeMap<String, Arc<[u8]>>,
    jpath: Vec<String>,
    entry: &str,
    opts: &JsonnetOptions,
    limits: &JsonnetLimits,
) -> Result<String, Failure> {
    let trace = CompactFormat {
        resolver: PathResolver::Absolute,
        max_trace: 20,
        padding: 2,
    };
    // The message and the innermost frames: a runaway recursion has hundreds of them.
    let describe = |e: &jrsonnet_evaluator::Error| {
        let full = trace.format(e).unwrap_or_else(|_| e.error().to_string());
        let lines: Vec<&str> = full.trim_end().lines().collect();
        if lines.len() <= MAX_TRACE_LINES {
            return lines.join("\n");
        }
        let mut out = lines[..MAX_TRACE_LINES].join("\n");
        out.push_str(&format!(
            "\n  ... {} more frames",
            lines.len() - MAX_TRACE_LINES
        ));
        out
    };
    let context = jrsonnet_stdlib::ContextInitializer::new(PathResolver::Absolute);
    for var in &opts.ext_vars {
        if var.code {
            context
                .add_ext_code(&var.name, &var.value)
                .map_err(|e| Failure::Eval(describe(&e)))?;
        } else {
            context.add_ext_str(var.name.as_str().into(), var.value.as_str().into());
        }
    }
    let mut builder = State::builder();
    builder.import_resolver(Resolver { files, jpath });
    builder.context_initializer(context);
    let state = builder.build();
    let _entered = state.enter();
    let _depth = jrsonnet_evaluator::stack::limit_stack_depth(limits.max_stack);
    // `apply_tla` takes this map; an interned `IStr` hashes by its pointer, which never changes.
    #[allow(clippy::mutable_key_type)]
    let tlas: HashMap<IStr, TlaArg> = opts
        .tlas
        .iter()
        .map(|t| {
            let arg = if t.code {
                TlaArg::InlineCode(t.value.clone())
            } else {
                TlaArg::String(t.value.as_str().into())
            };
            (IStr::from(t.name.as_str()), arg)
        })
        .collect();
    let source = SourcePath::new(SourceFile::new(PathBuf::from(entry)));
    let value = state
        .import_resolved(source)
        .and_then(|v| apply_tla(&tlas, v))
        .map_err(|e| Failure::Eval(describe(&e)))?;
    let json = value
        .manifest(JsonFormat::minify())
        .map_err(|e| Failure::Eval(describe(&e)))?;
    if json.len() > limits.max_output_bytes {
        return Err(Failure::TooLarge(json.len()));
    }
    Ok(json)
}

/// The objects a program's output stands for, as ArgoCD reads it: an array is one object per
/// element (`null` elements are left out), an object is one object, `null` is none; anything
/// else — nested arrays, scalars, an object without `kind` — is an error.
pub fn manifests(json: &str, file: &RepoPath) -> Result<Vec<Value>, RenderError> {
    let invalid = |message: String| RenderError::Invalid {
        file: file.to_string(),
        message,
    };
    let value: Value =
        serde_json::from_str(json).map_err(|e| invalid(format!("output is not JSON: {e}")))?;
    let items = match value {
        Value::Null => Vec::new(),
        Value::Array(items) => items,
        obj @ Value::Object(_) => vec![obj],
        other => {
            return Err(invalid(format!(
                "output must be an object or an array of objects, not {}",
                kind_of(&other)
            )));
        }
    };
    let mut out = Vec::new();
    for (i, item) in items.into_iter().enumerate() {
        match &item {
            Value::Null => continue,
            Value::Object(m)
                if m.get("kind")
                    .and_then(Value::as_str)
                    .is_some_and(|k| !k.is_empty()) => {}
            Value::Object(_) => {
                return Err(invalid(format!("output object {i} has no kind")));
            }
            other => {
                return Err(invalid(format!(
                    "output element {i} is {}, not an object",
                    kind_of(other)
                )));
            }
        }
        out.push(item);
    }
    Ok(out)
}

fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn paths(text: &str) -> Vec<(ImportKind, String)> {
        imports(text).unwrap()
    }

    #[test]
    fn imports_are_found_outside_comments_and_strings() {
        let text = r#"
// import 'commented.libsonnet'
# import 'hashed.libsonnet'
/* import 'block.libsonnet' */
local a = import 'a.libsonnet';
local b = import "b\u0041.libsonnet";
local c = importstr @'c''s.txt';
local t = |||
  import 'in-text-block.libsonnet'
|||;
local d = importbin 'd.bin';
{ s: "import 'in-string.libsonnet'", myimport: 1, e: (import 'e.json') }
"#;
        assert_eq!(
            paths(text),
            vec![
                (ImportKind::Code, "a.libsonnet".to_string()),
                (ImportKind::Code, "bA.libsonnet".to_string()),
                (ImportKind::Raw, "c's.txt".to_string()),
                (ImportKind::Raw, "d.bin".to_string()),
                (ImportKind::Code, "e.json".to_string()),
            ]
        );
    }

    #[test]
    fn lookup_order_is_own_folder_then_library_path_last_first() {
        let have = [
            "app/x.libsonnet",
            "lib1/x.libsonnet",
            "lib2/x.libsonnet",
            "lib1/y.libsonnet",
        ];
        let exists = |p: &RepoPath| Ok(have.contains(&p.as_str()));
        let jpath: Vec<RepoPath> = ["app", "lib1", "lib2"]
            .iter()
            .map(|p| RepoPath::new(p).unwrap())
            .collect();
        let app = RepoPath::new("app").unwrap();
        let found = |from: Option<&RepoPath>, p: &str| {
            resolve(from, p, &jpath, &exists)
                .unwrap()
                .map(|p| p.to_string())
        };
        assert_eq!(found(Some(&app), "x.libsonnet").unwrap(), "app/x.libsonnet");
        assert_eq!(found(None, "x.libsonnet").unwrap(), "lib2/x.libsonnet");
        assert_eq!(
            found(Some(&app), "y.libsonnet").unwrap(),
            "lib1/y.libsonnet"
        );
        assert_eq!(found(Some(&app), "z.libsonnet"), None);
        assert!(matches!(
            resolve(Some(&app), "/etc/passwd", &jpath, &exists),
            Err(FsError::Escape(_))
        ));
        assert!(matches!(
            resolve(Some(&app), "../../../etc/passwd", &jpath, &exists),
            Err(FsError::Escape(_))
        ));
    }

    #[test]
    fn output_shapes_follow_argocd() {
        let f = RepoPath::new("a/main.jsonnet").unwrap();
        let cm = r#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"}}"#;
        assert_eq!(manifests(cm, &f).unwrap().len(), 1);
        assert_eq!(
            manifests(&format!("[{cm},null,{cm}]"), &f).unwrap().len(),
            2
        );
        assert_eq!(manifests("null", &f).unwrap().len(), 0);
        assert_eq!(manifests("[]", &f).unwrap().len(), 0);
        for bad in [&format!("[[{cm}]]"), "\"text\"", "3", "{}", "{\"a\":{}}"] {
            assert!(manifests(bad, &f).is_err(), "{bad}");
        }
    }
}
