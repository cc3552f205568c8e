//! configMapGenerator and secretGenerator, and kustomize's content-hash name suffix.

use base64::Engine as _;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

use super::KustomizeError;
use super::loader::{Kust, Loader, absorb};
use super::resource::{Behavior, Res, obj_mut};

pub fn run(ld: &mut Loader, k: &Kust, ra: &mut Vec<Res>) -> Result<(), KustomizeError> {
    let global = k.field("generatorOptions").cloned().unwrap_or(Value::Null);
    for (field, is_secret) in [("configMapGenerator", false), ("secretGenerator", true)] {
        let Some(list) = k.field(field) else { continue };
        let Value::Array(items) = list else {
            return Err(KustomizeError::invalid(
                &k.file,
                format!("{field}: expected a list"),
            ));
        };
        for item in items {
            let r = generate(ld, k, item, is_secret, &global)?;
            absorb(ra, r, &k.file_str())?;
        }
    }
    Ok(())
}

fn strs(v: Option<&Value>, file: &str, what: &str) -> Result<Vec<String>, KustomizeError> {
    match v {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(a)) => a
            .iter()
            .map(|x| {
                x.as_str().map(str::to_string).ok_or_else(|| {
                    KustomizeError::invalid(file, format!("{what}: expected strings"))
                })
            })
            .collect(),
        Some(Value::String(s)) => Ok(vec![s.clone()]),
        Some(_) => Err(KustomizeError::invalid(
            file,
            format!("{what}: expected a list"),
        )),
    }
}

fn generate(
    ld: &mut Loader,
    k: &Kust,
    item: &Value,
    is_secret: bool,
    global: &Value,
) -> Result<Res, KustomizeError> {
    let file = k.file_str();
    let name = item.get("name").and_then(Value::as_str).unwrap_or("");
    if name.is_empty() {
        return Err(KustomizeError::invalid(&file, "a generator needs a name"));
    }
    let behavior = match item.get("behavior").and_then(Value::as_str).unwrap_or("") {
        "" | "create" => Behavior::Create,
        "merge" => Behavior::Merge,
        "replace" => Behavior::Replace,
        // kustomize treats any other spelling as create.
        _ => Behavior::Create,
    };
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut binary: Vec<(String, Vec<u8>)> = Vec::new();
    let mut envs = strs(item.get("envs"), &file, "envs")?;
    envs.extend(strs(item.get("env"), &file, "env")?);
    for env in envs {
        let path = ld.join_file(&k.dir, &env, &k.file)?;
        let text = ld.read(&path)?;
        for (i, line) in text.split('\n').enumerate() {
            let mut line = line.strip_suffix('\r').unwrap_or(line);
            if i == 0 {
                line = line.strip_prefix('\u{FEFF}').unwrap_or(line);
            }
            let line = line.trim_start();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, val)) = line.split_once('=') else {
                return Err(KustomizeError::unsupported(
                    format!(
                        "env file line without '=' (value from the process environment): {line}"
                    ),
                    &path,
                ));
            };
            pairs.push((key.to_string(), val.to_string()));
        }
    }
    for lit in strs(item.get("literals"), &file, "literals")? {
        let Some((key, val)) = lit.split_once('=') else {
            return Err(KustomizeError::invalid(
                &file,
                format!("invalid literal source {lit}, expected key=value"),
            ));
        };
        pairs.push((key.to_string(), remove_quotes(val).to_string()));
    }
    for f in strs(item.get("files"), &file, "files")? {
        let (key, rel) = match f.split_once('=') {
            Some((k2, p)) => {
                if k2.is_empty() {
                    return Err(KustomizeError::invalid(
                        &file,
                        format!("key name for file path {f} missing"),
                    ));
                }
                (k2.to_string(), p.to_string())
            }
            None => (f.rsplit('/').next().unwrap_or(&f).to_string(), f.clone()),
        };
        let path = ld.join_file(&k.dir, &rel, &k.file)?;
        if ld.fs.kind(&path)? == Some(crate::repo_fs::EntryKind::Dir) {
            return Err(KustomizeError::unsupported(
                "generator files from a directory",
                &path,
            ));
        }
        let bytes = ld.fs.read(&path)?;
        ld.inputs.insert(path.clone());
        match String::from_utf8(bytes.to_vec()) {
            Ok(s) => pairs.push((key, s)),
            Err(_) => binary.push((key, bytes.to_vec())),
        }
    }
    let mut data = Map::new();
    for (key, val) in pairs {
        if data.contains_key(&key) {
            return Err(KustomizeError::invalid(
                &file,
                format!("configmap {name} illegally repeats the key `{key}`"),
            ));
        }
        let v = if is_secret {
            encode_base64(val.as_bytes())
        } else {
            val
        };
        data.insert(key, Value::String(v));
    }
    let mut bin = Map::new();
    for (key, val) in binary {
        let enc = encode_base64(&val);
        if is_secret {
            data.insert(key, Value::String(enc));
        } else {
            bin.insert(key, Value::String(enc));
        }
    }

    let opts = item.get("options").cloned().unwrap_or(Value::Null);
    let mut meta = Map::new();
    meta.insert("name".into(), json!(name));
    if let Some(ns) = item
        .get("namespace")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        meta.insert("namespace".into(), json!(ns));
    }
    for field in ["labels", "annotations"] {
        let mut m = Map::new();
        for src in [global, &opts] {
            if let Some(Value::Object(o)) = src.get(field) {
                for (a, b) in o {
                    let Value::String(text) = b else {
                        return Err(KustomizeError::invalid(
                            &file,
                            format!("generator {field}: value of {a} is not a string: {b}"),
                        ));
                    };
                    m.insert(a.clone(), Value::String(text.clone()));
                }
            }
        }
        if !m.is_empty() {
            meta.insert(field.into(), Value::Object(m));
        }
    }
    // Either level can switch an option on; neither can switch the other's off.
    let flag = |key: &str| {
        opts.get(key).and_then(Value::as_bool).unwrap_or(false)
            || global.get(key).and_then(Value::as_bool).unwrap_or(false)
    };
    let mut obj = Map::new();
    obj.insert("apiVersion".into(), json!("v1"));
    obj.insert(
        "kind".into(),
        json!(if is_secret { "Secret" } else { "ConfigMap" }),
    );
    obj.insert("metadata".into(), Value::Object(meta));
    // A generated Secret always carries `data`, even empty; a ConfigMap only when non-empty.
    if !data.is_empty() || is_secret {
        obj.insert("data".into(), Value::Object(data));
    }
    if !bin.is_empty() {
        obj.insert("binaryData".into(), Value::Object(bin));
    }
    if is_secret {
        let t = item.get("type").and_then(Value::as_str).unwrap_or("Opaque");
        obj.insert(
            "type".into(),
            json!(if t.is_empty() { "Opaque" } else { t }),
        );
    }
    if flag("immutable") {
        obj.insert("immutable".into(), json!(true));
    }
    let mut r = Res::new(Value::Object(obj), file);
    r.needs_hash = !flag("disableNameSuffixHash");
    r.generated_by = Some(if is_secret {
        "SecretGenerator"
    } else {
        "ConfigMapGenerator"
    });
    r.behavior = Some(behavior);
    Ok(r)
}

/// Base64 the way kustomize's generators store it: an encoding of 70 characters or more is cut
/// into lines of 70, each ending in a newline, so it prints as a literal block (and is hashed so).
fn encode_base64(bytes: &[u8]) -> String {
    const LINE: usize = 70;
    let enc = base64::engine::general_purpose::STANDARD.encode(bytes);
    if enc.len() < LINE {
        return enc;
    }
    let mut out = String::with_capacity(enc.len() + enc.len() / LINE + 1);
    // Base64 is ASCII, so byte chunks are whole characters.
    for chunk in enc.as_bytes().chunks(LINE) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out
}

fn remove_quotes(s: &str) -> &str {
    let b = s.as_bytes();
    if b.len() >= 2 && b[0] == b[b.len() - 1] && (b[0] == b'"' || b[0] == b'\'') {
        &s[1..s.len() - 1]
    } else {
        s
    }
}

/// Merges a generated object into an existing one (`behavior: merge|replace`).
pub fn merge_into(dst: &mut Res, src: Res, b: Behavior) {
    let src_v = src.v;
    for field in ["data", "binaryData"] {
        let new = src_v.get(field).cloned();
        let o = obj_mut(&mut dst.v);
        match b {
            Behavior::Replace => {
                o.remove(field);
                if let Some(n) = new {
                    o.insert(field.into(), n);
                }
            }
            _ => {
                if let Some(Value::Object(n)) = new {
                    let d = obj_mut(o.entry(field).or_insert_with(|| json!({})));
                    for (a, v) in n {
                        d.insert(a, v);
                    }
                }
            }
        }
    }
    for field in ["labels", "annotations"] {
        if let Some(Value::Object(n)) = src_v.pointer(&format!("/metadata/{field}")).cloned() {
            let meta = dst.meta_mut();
            let d = obj_mut(meta.entry(field).or_insert_with(|| json!({})));
            for (a, v) in n {
                d.insert(a, v);
            }
        }
    }
    if src_v.get("immutable").is_some() {
        obj_mut(&mut dst.v).insert("immutable".into(), json!(true));
    }
    if !src.needs_hash {
        dst.needs_hash = false;
    }
    if dst.generated_by.is_some() && b == Behavior::Replace {
        // A replacing generator becomes the object's origin (a merging one does not).
        dst.origin = src.origin;
    }
}

/// Appends the content hash to every generated name (done once, at the top).
pub fn add_hashes(ra: &mut [Res]) -> Result<(), KustomizeError> {
    for r in ra.iter_mut() {
        if !r.needs_hash {
            continue;
        }
        let h = hash(&r.v);
        let name = format!("{}-{}", r.name(), h);
        r.set_name(&name);
        r.needs_hash = false;
    }
    Ok(())
}

/// kustomize's name hash: sha256 of a small JSON encoding, first ten hex digits with some
/// letters swapped so the suffix never looks like a word or a number.
pub fn hash(v: &Value) -> String {
    let kind = v.get("kind").and_then(Value::as_str).unwrap_or("");
    // kustomize's hasher reads the name from a field that is never set: it is always empty.
    let name = "";
    let mut m: Vec<(&str, String)> = Vec::new();
    // An empty ConfigMap data map is encoded as an empty string by kustomize's hasher; a
    // Secret's as `{}`.
    match v.get("data") {
        Some(Value::Object(d)) if !d.is_empty() => {
            m.push(("data", go_json(&Value::Object(d.clone()))))
        }
        _ if kind == "Secret" => m.push(("data", "{}".to_string())),
        _ => m.push(("data", "\"\"".to_string())),
    }
    m.push(("kind", go_json(&json!(kind))));
    m.push(("name", go_json(&json!(name))));
    match kind {
        "ConfigMap" => {
            if let Some(b) = v
                .get("binaryData")
                .filter(|b| b.as_object().is_some_and(|o| !o.is_empty()))
            {
                m.push(("binaryData", go_json(b)));
            }
        }
        "Secret" => {
            let t = v.get("type").cloned().unwrap_or(json!(""));
            m.push(("type", go_json(&t)));
        }
        _ => {}
    }
    m.sort_by(|a, b| a.0.cmp(b.0));
    let mut enc = String::from("{");
    for (i, (k2, val)) in m.iter().enumerate() {
        if i > 0 {
            enc.push(',');
        }
        enc.push_str(&go_json(&json!(k2)));
        enc.push(':');
        enc.push_str(val);
    }
    enc.push('}');
    let digest = Sha256::digest(enc.as_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    hex[..10]
        .chars()
        .map(|c| match c {
            '0' => 'g',
            '1' => 'h',
            '3' => 'k',
            'a' => 'm',
            'e' => 't',
            c => c,
        })
        .collect()
}

/// Go's `json.Marshal` of a generic value: sorted keys, HTML-safe string escaping.
pub fn go_json(v: &Value) -> String {
    match v {
        Value::Object(o) => {
            let mut keys: Vec<&String> = o.keys().collect();
            keys.sort();
            let mut s = String::from("{");
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    s.push(',');
                }
                s.push_str(&go_str(k));
                s.push(':');
                s.push_str(&go_json(&o[k.as_str()]));
            }
            s.push('}');
            s
        }
        Value::Array(a) => {
            let parts: Vec<String> = a.iter().map(go_json).collect();
            format!("[{}]", parts.join(","))
        }
        Value::String(st) => go_str(st),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => super::emit::go_json_float(f),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

fn go_str(s: &str) -> String {
    let mut o = String::with_capacity(s.len() + 2);
    o.push('"');
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            '\x08' => o.push_str("\\b"),
            '\x0C' => o.push_str("\\f"),
            '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                o.push_str(&format!("\\u{:04x}", c as u32));
            }
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}
