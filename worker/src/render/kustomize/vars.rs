//! `vars` (deprecated, still common): values taken from resources after all renaming, substituted
//! for `$(NAME)` in kustomize's default var-reference fields (container command, args, env values
//! and mount paths, annotations, Ingress hosts and TLS secret names). Kubernetes expansion rules:
//! `$$` escapes, unknown names stay as written, a field that is exactly `$(NAME)` takes the
//! value's type.

use serde_json::Value;

use super::KustomizeError;
use super::config::{TransformerConfig, paths_for};
use super::resource::Res;

pub struct Var {
    pub name: String,
    pub kind: String,
    pub obj_name: String,
    pub api_version: Option<String>,
    pub namespace: Option<String>,
    pub field_path: String,
    pub file: String,
}

/// Reads the `vars` of one kustomization into `out`, refusing a name seen before.
pub fn collect(v: Option<&Value>, file: &str, out: &mut Vec<Var>) -> Result<(), KustomizeError> {
    let Some(list) = v else { return Ok(()) };
    let Value::Array(items) = list else {
        return Err(KustomizeError::invalid(file, "vars: expected a list"));
    };
    for item in items {
        let s = |p: &str| json_field(item, p).and_then(Value::as_str).map(str::to_string);
        let name = s("/name").ok_or_else(|| KustomizeError::invalid(file, "var without a name"))?;
        if out.iter().any(|x| x.name == name) {
            return Err(KustomizeError::invalid(
                file,
                format!("var '{name}' already encountered"),
            ));
        }
        let api_version =
            s("/objref/apiVersion").or_else(|| match (s("/objref/group"), s("/objref/version")) {
                (Some(g), Some(v)) if !g.is_empty() => Some(format!("{g}/{v}")),
                (_, Some(v)) => Some(v),
                _ => None,
            });
        out.push(Var {
            name,
            kind: s("/objref/kind").unwrap_or_default(),
            obj_name: s("/objref/name").unwrap_or_default(),
            api_version,
            namespace: s("/objref/namespace").filter(|n| !n.is_empty()),
            field_path: s("/fieldref/fieldpath")
                .filter(|f| !f.is_empty())
                .unwrap_or_else(|| "metadata.name".into()),
            file: file.to_string(),
        });
    }
    Ok(())
}

/// The value at a `/`-separated path of field names as Go's JSON decoding (which kustomize reads
/// its kustomization with) finds it: an exact name first, else one equal ignoring case
/// (`fieldref: {fieldPath: ...}` and `fieldpath` both work).
fn json_field<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for name in path.split('/').filter(|n| !n.is_empty()) {
        let m = cur.as_object()?;
        cur = m.get(name).or_else(|| {
            m.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v)
        })?;
    }
    Some(cur)
}

fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    let mut cur = v;
    for part in path.split('.') {
        let (key, rest) = match part.find('[') {
            Some(i) => (&part[..i], &part[i..]),
            None => (part, ""),
        };
        if !key.is_empty() {
            cur = cur.get(key)?;
        }
        let mut rest = rest;
        while let Some(inner_end) = rest.find(']') {
            let inner = &rest[1..inner_end];
            cur = match inner.split_once('=') {
                Some((k, val)) => cur
                    .as_array()?
                    .iter()
                    .find(|e| e.get(k).and_then(Value::as_str) == Some(val))?,
                None => cur.get(inner.parse::<usize>().ok()?)?,
            };
            rest = &rest[inner_end + 1..];
        }
    }
    Some(cur)
}

pub fn resolve(
    vars: &[Var],
    ra: &mut [Res],
    cfg: &TransformerConfig,
) -> Result<(), KustomizeError> {
    if vars.is_empty() {
        return Ok(());
    }
    let mut values: Vec<(String, Value)> = Vec::new();
    for var in vars {
        let matches: Vec<&Res> =
            ra.iter()
                .filter(|r| {
                    r.kind() == var.kind
                        && r.had_name(&var.obj_name)
                        && var
                            .api_version
                            .as_deref()
                            .is_none_or(|av| av == r.api_version())
                        && var.namespace.as_deref().is_none_or(|ns| {
                            ns == r.namespace() || r.prev.iter().any(|p| p.2 == ns)
                        })
                })
                .collect();
        let r = match matches.as_slice() {
            [r] => *r,
            [] => {
                return Err(KustomizeError::invalid(
                    &var.file,
                    format!(
                        "var '{}' cannot be mapped to a field in the set of known resources",
                        var.name
                    ),
                ));
            }
            _ => {
                return Err(KustomizeError::invalid(
                    &var.file,
                    format!("var '{}' matches more than one resource", var.name),
                ));
            }
        };
        let v = lookup(&r.v, &var.field_path).ok_or_else(|| {
            KustomizeError::invalid(
                &var.file,
                format!(
                    "var '{}': field path {} not found in {}",
                    var.name,
                    var.field_path,
                    r.name()
                ),
            )
        })?;
        if v.is_object() || v.is_array() {
            return Err(KustomizeError::unsupported(
                "var whose value is a map or list",
                &var.file,
            ));
        }
        values.push((var.name.clone(), v.clone()));
    }
    for r in ra.iter_mut() {
        let kind = r.kind().to_string();
        let mut paths: Vec<String> = vec!["metadata/annotations/*".into()];
        let pod = match kind.as_str() {
            "Pod" => Some("spec"),
            "Deployment" | "ReplicaSet" | "DaemonSet" | "StatefulSet" | "Job" => {
                Some("spec/template/spec")
            }
            "CronJob" => Some("spec/jobTemplate/spec/template/spec"),
            _ => None,
        };
        if let Some(base) = pod {
            for c in ["containers", "initContainers"] {
                for f in ["command", "args", "env/value", "volumeMounts/mountPath"] {
                    paths.push(format!("{base}/{c}/{f}"));
                }
            }
            if kind != "Pod" {
                let tmpl = base.trim_end_matches("/spec");
                paths.push(format!("{tmpl}/metadata/annotations/*"));
            }
        }
        if kind == "Ingress" {
            paths.extend(
                ["spec/rules/host", "spec/tls/hosts", "spec/tls/secretName"].map(String::from),
            );
        }
        // Fields added by `configurations:` (a map there means all of its values).
        for (p, _) in paths_for(&cfg.var_reference, r) {
            let p = p.replace("[]", "");
            // A restated default must not substitute twice (`$$` escapes would unescape).
            if !paths.contains(&p) && !paths.contains(&format!("{p}/*")) {
                paths.push(p);
            }
        }
        for p in paths {
            let segs: Vec<&str> = p.split('/').collect();
            substitute(&mut r.v, &segs, &values);
        }
    }
    Ok(())
}

fn substitute(v: &mut Value, segs: &[&str], values: &[(String, Value)]) {
    match v {
        Value::Array(a) => {
            for x in a {
                substitute(x, segs, values);
            }
        }
        Value::Object(m) => match segs.split_first() {
            Some((&"*", rest)) => {
                for x in m.values_mut() {
                    substitute(x, rest, values);
                }
            }
            Some((first, rest)) => {
                if let Some(x) = m.get_mut(*first) {
                    substitute(x, rest, values);
                }
            }
            None => {
                for x in m.values_mut() {
                    substitute(x, &[], values);
                }
            }
        },
        Value::String(s) if segs.is_empty() => {
            if let Some(name) = s.strip_prefix("$(").and_then(|x| x.strip_suffix(')'))
                && !name.contains(')')
                && let Some((_, val)) = values.iter().find(|(n, _)| n == name)
            {
                *v = val.clone();
                return;
            }
            *s = expand(s, values);
        }
        _ => {}
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => match n.as_f64() {
            Some(f) if !n.is_i64() && !n.is_u64() => super::emit::go_json_float(f),
            _ => n.to_string(),
        },
        Value::Bool(b) => b.to_string(),
        _ => String::new(),
    }
}

/// Kubernetes' `$(VAR)` expansion.
fn expand(input: &str, values: &[(String, Value)]) -> String {
    let b = input.as_bytes();
    let mut out = String::with_capacity(input.len());
    let mut checkpoint = 0;
    let mut cursor = 0;
    while cursor < b.len() {
        if b[cursor] == b'$' && cursor + 1 < b.len() {
            out.push_str(&input[checkpoint..cursor]);
            let rest = &input[cursor + 1..];
            let advance = match rest.as_bytes()[0] {
                b'$' => {
                    out.push('$');
                    1
                }
                b'(' => match rest.find(')') {
                    Some(close) => {
                        let name = &rest[1..close];
                        match values.iter().find(|(n, _)| n == name) {
                            Some((_, val)) => out.push_str(&text(val)),
                            None => {
                                out.push_str("$(");
                                out.push_str(name);
                                out.push(')');
                            }
                        }
                        close + 1
                    }
                    None => {
                        out.push_str("$(");
                        1
                    }
                },
                _ => {
                    let ch = rest.chars().next().unwrap_or(' ');
                    out.push('$');
                    out.push(ch);
                    ch.len_utf8()
                }
            };
            cursor += advance + 1;
            checkpoint = cursor;
            continue;
        }
        cursor += 1;
    }
    out.push_str(&input[checkpoint.min(input.len())..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expansion_follows_kubernetes_rules() {
        let vals = vec![("A".to_string(), Value::String("x".into()))];
        assert_eq!(expand("$(A)-$(B)-$$(A)-$", &vals), "x-$(B)-$(A)-$");
        assert_eq!(expand("a$(A", &vals), "a$(A");
    }
}
