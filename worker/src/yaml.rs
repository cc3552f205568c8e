//! YAML parsing for untrusted repository content.
//!
//! One entry point so every caller gets the same protections: alias expansion is bounded (the
//! billion-laughs family fails with a clear error instead of exhausting memory), nesting depth is
//! limited to 128, duplicate mapping keys are an error (Kubernetes' own decoder rejects them and
//! silently keeping one would hide a real mistake), and multi-document streams are split by the
//! parser, never by searching for `---`. Errors name the file and the line.

use serde::Deserialize;
use serde_json::{Map, Number, Value};

/// A YAML document that could not be parsed safely.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", line.map(|l| format!(":{l}")).unwrap_or_default())]
pub struct YamlError {
    /// The file the text came from (repository path or a description such as `<stdin>`).
    pub file: String,
    /// 1-based line, when the parser knows it.
    pub line: Option<usize>,
    pub message: String,
}

/// Parses every document of a YAML stream into JSON values, keeping mapping key order.
/// Empty documents (only comments, or `---` alone) are skipped.
pub fn parse_documents(text: &str, file: &str) -> Result<Vec<Value>, YamlError> {
    let mut out = Vec::new();
    for doc in yaml_serde::Deserializer::from_str(text) {
        let value = yaml_serde::Value::deserialize(doc).map_err(|e| located(text, file, &e))?;
        if value.is_null() {
            continue;
        }
        out.push(to_json(value, file)?);
    }
    Ok(out)
}

/// The parser's error with the line in front only (its message repeats it as "at line N column
/// M"), and for a duplicate key the line of the duplicate: the parser names where the mapping
/// starts, which for a whole file is line 1.
fn located(text: &str, file: &str, e: &yaml_serde::Error) -> YamlError {
    let mut message = e.to_string();
    let mut line = e.location().map(|l| l.line());
    if let Some(loc) = e.location() {
        let suffix = format!(" at line {} column {}", loc.line(), loc.column());
        if let Some(at) = message.rfind(&suffix) {
            message.truncate(at);
        }
        if let Some(key) = message
            .split_once("duplicate entry with key \"")
            .and_then(|(_, k)| k.strip_suffix('"'))
            && let Some(dup) = duplicate_line(text, loc.line(), loc.column(), key)
        {
            line = Some(dup);
        }
    }
    YamlError {
        file: file.to_string(),
        line,
        message,
    }
}

/// The line of the second `key:` of the block mapping whose first key is at `line`:`column`
/// (1-based). None when the mapping is not a plain block mapping this can follow.
fn duplicate_line(text: &str, line: usize, column: usize, key: &str) -> Option<usize> {
    let indent = column.checked_sub(1)?;
    let spellings = [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ];
    let is_key = |rest: &str| {
        spellings.iter().any(|s| {
            rest.strip_prefix(s.as_str())
                .is_some_and(|after| after.is_empty() || after.starts_with([' ', '\t']))
        })
    };
    let mut seen = 0;
    for (i, l) in text.lines().enumerate().skip(line.checked_sub(1)?) {
        let first = i + 1 == line;
        let trimmed = l.trim_start_matches(' ');
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let lead = l.len() - trimmed.len();
        if !first && lead < indent {
            return None;
        }
        // The first line may open a list item (`- a: 1`): its key starts at the column itself.
        let at_key = if first {
            l.get(indent..)?
        } else if lead == indent {
            trimmed
        } else {
            continue;
        };
        if is_key(at_key) {
            seen += 1;
            if seen == 2 {
                return Some(i + 1);
            }
        }
    }
    None
}

/// Parses a stream that must hold exactly one document (e.g. a kustomization file).
pub fn parse_single(text: &str, file: &str) -> Result<Value, YamlError> {
    let mut docs = parse_documents(text, file)?;
    match docs.len() {
        0 => Ok(Value::Null),
        1 => Ok(docs.remove(0)),
        n => Err(YamlError {
            file: file.to_string(),
            line: None,
            message: format!("expected one YAML document, found {n}"),
        }),
    }
}

fn to_json(v: yaml_serde::Value, file: &str) -> Result<Value, YamlError> {
    Ok(match v {
        yaml_serde::Value::Null => Value::Null,
        yaml_serde::Value::Bool(b) => Value::Bool(b),
        yaml_serde::Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Value::Number(i.into())
            } else if let Some(u) = n.as_u64() {
                Value::Number(u.into())
            } else {
                // NaN and infinities have no JSON form; keep their YAML spelling as text.
                n.as_f64()
                    .and_then(Number::from_f64)
                    .map(Value::Number)
                    .unwrap_or_else(|| Value::String(n.to_string()))
            }
        }
        yaml_serde::Value::String(s) => Value::String(s),
        yaml_serde::Value::Sequence(seq) => Value::Array(
            seq.into_iter()
                .map(|x| to_json(x, file))
                .collect::<Result<_, _>>()?,
        ),
        yaml_serde::Value::Mapping(map) => {
            let mut obj = Map::with_capacity(map.len());
            for (k, v) in map {
                let key = match k {
                    yaml_serde::Value::String(s) => s,
                    yaml_serde::Value::Bool(b) => b.to_string(),
                    yaml_serde::Value::Number(n) => n.to_string(),
                    yaml_serde::Value::Null => "null".to_string(),
                    _ => {
                        return Err(YamlError {
                            file: file.to_string(),
                            line: None,
                            message: "mapping keys must be scalars".into(),
                        });
                    }
                };
                if obj.contains_key(&key) {
                    return Err(YamlError {
                        file: file.to_string(),
                        line: None,
                        message: format!("duplicate key {key:?}"),
                    });
                }
                obj.insert(key, to_json(v, file)?);
            }
            Value::Object(obj)
        }
        yaml_serde::Value::Tagged(t) => to_json(t.value, file)?,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn splits_streams_and_keeps_key_order() {
        let docs = parse_documents(
            "b: 1\na: 2\n---\n# only a comment\n---\nkind: X\n",
            "f.yaml",
        )
        .unwrap();
        assert_eq!(docs.len(), 2);
        let keys: Vec<_> = docs[0].as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, vec!["b", "a"]);
    }

    #[test]
    fn duplicate_keys_are_refused_with_file_and_line() {
        let err = parse_documents("metadata:\n  name: a\n  name: b\n", "apps/x.yaml").unwrap_err();
        assert_eq!(err.file, "apps/x.yaml");
        assert!(err.to_string().contains("duplicate"), "{err}");
        assert!(err.to_string().starts_with("apps/x.yaml:"), "{err}");
    }

    /// The error points at the duplicate itself and says the line once.
    #[test]
    fn a_duplicate_key_is_reported_at_the_duplicate() {
        let cases = [
            (
                "resources:\n- cm.yaml\nnamespace: a\n# note\nnamespace: b\n",
                5,
            ),
            ("data:\n  a: \"1\"\n  b: \"2\"\n  a: \"3\"\n", 4),
            ("items:\n- name: x\n  image: y\n  name: z\n- name: w\n", 4),
            (
                "kind: A\nspec:\n  x:\n    k: 1\n  'k2': 2\n  \"k2\": 3\n",
                6,
            ),
        ];
        for (text, want) in cases {
            let err = parse_documents(text, "f.yaml").unwrap_err();
            assert_eq!(err.line, Some(want), "{text}: {err}");
            assert!(!err.message.contains("at line"), "{err}");
            assert!(
                err.to_string().starts_with(&format!("f.yaml:{want}: ")),
                "{err}"
            );
        }
    }

    #[test]
    fn billion_laughs_is_refused() {
        let mut text = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        let names = ["a", "b", "c", "d", "e", "f", "g", "h", "i"];
        for w in names.windows(2) {
            let refs = vec![format!("*{}", w[0]); 9].join(",");
            text.push_str(&format!("{}: &{} [{}]\n", w[1], w[1], refs));
        }
        let err = parse_documents(&text, "bomb.yaml").unwrap_err();
        assert!(err.message.contains("repetition limit"), "{err}");
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("{}1{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_documents(&text, "deep.yaml").is_err());
    }
}
