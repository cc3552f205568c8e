//! Why `.capstan.yaml` cannot be used, said so that the author can fix it without reading code:
//! the key path (`promotion.rules[0].copy`), the line and column, and for an unknown key or value
//! the nearest allowed one.

use std::fmt;

/// `.capstan.yaml` (or the shipped policy defaults) could not be used.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct SettingsError {
    /// The file the text came from (a constant: keeps the error small enough to return by value).
    pub file: &'static str,
    /// Key path inside the file (`commands.permissions.hold`, `environments[0]`); empty for the
    /// whole document.
    pub path: String,
    /// 1-based line and column, when the parser knows them.
    pub line: Option<usize>,
    pub column: Option<usize>,
    /// What is wrong, phrased to follow the path (`is not a known key`, `must be a list`).
    pub message: String,
    /// The allowed key or value closest to an unknown one.
    pub suggestion: Option<String>,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.file)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        f.write_str(": ")?;
        if !self.path.is_empty() {
            write!(f, "{} ", self.path)?;
        }
        f.write_str(&self.message)?;
        if let Some(s) = &self.suggestion {
            write!(f, "; did you mean `{s}`?")?;
        }
        Ok(())
    }
}

impl SettingsError {
    pub fn new(file: &'static str, path: &str, message: impl Into<String>) -> Self {
        SettingsError {
            file,
            path: path.to_string(),
            line: None,
            column: None,
            message: message.into(),
            suggestion: None,
        }
    }

    pub(super) fn from_yaml(file: &'static str, e: crate::yaml::YamlError) -> Self {
        SettingsError {
            line: e.line,
            ..SettingsError::new(file, "", e.message)
        }
    }

    /// Turns serde's wording into one that follows the key path, and adds the suggestion.
    pub(super) fn from_serde(
        file: &'static str,
        e: serde_path_to_error::Error<yaml_serde::Error>,
    ) -> Self {
        let mut path = e.path().to_string();
        if path == "." {
            path.clear();
        }
        let inner = e.inner();
        let (line, column) = inner
            .location()
            .map(|l| (Some(l.line()), Some(l.column())))
            .unwrap_or((None, None));
        let mut raw = inner.to_string();
        if line.is_some()
            && let Some(at) = raw.rfind(" at line ")
        {
            raw.truncate(at);
        }
        // The YAML deserializer puts its own path in front (`render: unknown field ...`); the
        // path above says the same in full.
        if let Some(at) = KNOWN.iter().filter_map(|k| raw.find(k)).min() {
            raw.drain(..at);
        }
        let (message, suggestion, extra_key) = explain(&raw);
        // serde_path_to_error usually ends the path at the unknown key already.
        if let Some(k) = extra_key
            && !path.ends_with(&k)
        {
            path = if path.is_empty() {
                k
            } else {
                format!("{path}.{k}")
            };
        }
        SettingsError {
            file,
            path,
            line,
            column,
            message,
            suggestion,
        }
    }
}

/// How serde's messages start; anything before them is a path prefix.
const KNOWN: [&str; 5] = [
    "unknown field ",
    "unknown variant ",
    "missing field ",
    "invalid type: ",
    "invalid value: ",
];

/// The names between backticks in a serde message, in order.
fn quoted(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// The allowed name closest to `given`, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(given: &str, allowed: impl IntoIterator<Item = &'a str>) -> Option<String> {
    let given_l = given.to_ascii_lowercase();
    allowed
        .into_iter()
        .map(|a| (strsim::levenshtein(&given_l, &a.to_ascii_lowercase()), a))
        .filter(|(d, a)| *d <= 3 && *d < a.len().max(given.len()) / 2 + 1)
        .min_by_key(|(d, _)| *d)
        .map(|(_, a)| a.to_string())
}

/// `; did you mean `x`?` for the nearest of `allowed`, or nothing: the suffix every
/// unknown-name error ends with.
pub fn did_you_mean_hint<'a>(given: &str, allowed: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(given, allowed)
        .map(|n| format!("; did you mean `{n}`?"))
        .unwrap_or_default()
}

/// (message, suggestion, the unknown key to append to the path).
fn explain(raw: &str) -> (String, Option<String>, Option<String>) {
    if let Some(rest) = raw.strip_prefix("unknown field ") {
        let names = quoted(rest);
        if let Some((given, allowed)) = names.split_first() {
            let suggestion = did_you_mean(given, allowed.iter().copied());
            let list = if allowed.is_empty() {
                "no keys are allowed here".to_string()
            } else {
                format!("allowed: {}", allowed.join(", "))
            };
            return (
                format!("is not a known key ({list})"),
                suggestion,
                Some((*given).to_string()),
            );
        }
    }
    if let Some(rest) = raw.strip_prefix("unknown variant ") {
        let names = quoted(rest);
        if let Some((given, allowed)) = names.split_first() {
            return (
                format!("is `{given}`; allowed: {}", allowed.join(", ")),
                did_you_mean(given, allowed.iter().copied()),
                None,
            );
        }
    }
    if let Some(rest) = raw.strip_prefix("missing field ")
        && let Some(field) = quoted(rest).first()
    {
        return (format!("needs a {field}"), None, None);
    }
    if let Some(rest) = raw.strip_prefix("invalid type: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        let expected = expected
            .replace("a sequence", "a list")
            .replace("a map", "a mapping");
        return (format!("must be {expected} (found {found})"), None, None);
    }
    if let Some(rest) = raw.strip_prefix("invalid value: ")
        && let Some((found, expected)) = rest.split_once(", expected ")
    {
        return (format!("must be {expected} (found {found})"), None, None);
    }
    (raw.to_string(), None, None)
}
