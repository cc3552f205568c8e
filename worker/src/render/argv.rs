//! Checks on every value taken from a repository before it reaches an exec'd tool's argv.
//!
//! Tools parse their argv with flag parsers (cobra/pflag for helm, kustomize and kubectl;
//! parse-options for git): a positional that starts with `-` becomes a flag, so an Application
//! named `--post-renderer=/bin/sh` would choose helm's behaviour. Three layers keep argv ours:
//! values are checked here against the grammar the tool itself accepts (a release name is a
//! DNS-1123 name, a namespace a label, a `--set` key a helm path); flags carry their value in the
//! same element (`--namespace=web`), so a value never stands alone; and positionals come after
//! `--`, where no parser looks for flags.

/// An argv value from the repository that the tool would misread or that is not valid for it.
#[derive(Debug, thiserror::Error)]
#[error("{what} {value:?} is refused: {reason}")]
pub struct ArgError {
    /// What the value is (`helm release name`, `value file`, ...).
    pub what: &'static str,
    /// The value, cut to a length that cannot flood a report.
    pub value: String,
    pub reason: &'static str,
}

fn refuse(what: &'static str, value: &str, reason: &'static str) -> ArgError {
    ArgError {
        what,
        value: value.chars().take(80).collect(),
        reason,
    }
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Helm's own rule for release names: lowercase DNS-1123 labels joined by dots, at most 53
/// characters (the limit leaves room for the suffixes charts append to build object names).
pub fn release_name(name: &str) -> Result<&str, ArgError> {
    const WHAT: &str = "helm release name";
    if name.len() > 53 {
        return Err(refuse(WHAT, name, "longer than 53 characters"));
    }
    if !name.split('.').all(is_label) {
        return Err(refuse(
            WHAT,
            name,
            "not a DNS-1123 name (lowercase letters, digits, '-' and '.', starting and ending \
             with a letter or digit)",
        ));
    }
    Ok(name)
}

/// A Kubernetes namespace: one DNS-1123 label.
pub fn namespace(ns: &str) -> Result<&str, ArgError> {
    if is_label(ns) {
        Ok(ns)
    } else {
        Err(refuse(
            "namespace",
            ns,
            "not a DNS-1123 label (at most 63 lowercase letters, digits and '-')",
        ))
    }
}

/// A value file as the Application names it: relative, no flag look-alike, no control
/// characters. Where it resolves (inside the repository) is checked by `RepoPath`.
pub fn value_file(vf: &str) -> Result<&str, ArgError> {
    const WHAT: &str = "value file";
    if vf.starts_with('-') {
        return Err(refuse(WHAT, vf, "starts with '-'"));
    }
    if vf.starts_with('/') {
        return Err(refuse(WHAT, vf, "absolute paths are not repository files"));
    }
    if vf.is_empty() || vf.chars().any(char::is_control) {
        return Err(refuse(WHAT, vf, "empty or contains control characters"));
    }
    Ok(vf)
}

/// A `--set` key: a helm value path (`a.b[0].c`, `a\.b` for a literal dot). Anything else,
/// including `=` or `,` that would start another assignment, is refused.
pub fn set_key(key: &str) -> Result<&str, ArgError> {
    const WHAT: &str = "helm parameter name";
    if key.is_empty() || key.len() > 256 {
        return Err(refuse(WHAT, key, "empty or longer than 256 characters"));
    }
    if key.starts_with('-') {
        return Err(refuse(WHAT, key, "starts with '-'"));
    }
    if !key
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '[' | ']' | '\\' | '/'))
    {
        return Err(refuse(
            WHAT,
            key,
            "only letters, digits, '_', '-', '.', '/', '\\\\' and [index] are allowed",
        ));
    }
    Ok(key)
}

/// A `--set` value in helm's grammar. In `--set k=v`, an unescaped `,` ends the assignment and
/// starts another (`v,other.key=x` would set a second key the Application never named), so
/// commas are escaped the way ArgoCD does it, except in a `{a,b}` list, which helm reads as a
/// list on purpose. `=` inside a value is literal to helm and left alone. Newlines are refused:
/// helm would keep them, but no single-line parameter needs one and they forge log lines.
pub fn set_value(value: &str) -> Result<String, ArgError> {
    if value.chars().any(|c| c.is_control()) {
        return Err(refuse(
            "helm parameter value",
            value,
            "contains a newline or control character",
        ));
    }
    if value.starts_with('{') && value.ends_with('}') {
        return Ok(value.to_string());
    }
    let mut out = String::with_capacity(value.len());
    let mut escaped = false;
    for c in value.chars() {
        if c == ',' && !escaped {
            out.push('\\');
        }
        escaped = c == '\\' && !escaped;
        out.push(c);
    }
    Ok(out)
}

/// A Kubernetes version as ArgoCD hands it to helm: the numeric part of what the user wrote,
/// without a leading `v` or a distribution suffix (`v1.29.3+k3s1` and `1.29.3-eks-1` become
/// `1.29.3`), at least major and minor.
pub fn kube_version(v: &str) -> Result<String, ArgError> {
    const WHAT: &str = "helm kubeVersion";
    let bare = v.strip_prefix('v').unwrap_or(v);
    let end = bare
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(bare.len());
    let (numeric, rest) = bare.split_at(end);
    let parts: Vec<&str> = numeric.split('.').collect();
    let well_formed = (2..=3).contains(&parts.len())
        && parts.iter().all(|p| !p.is_empty() && p.len() <= 9)
        && (rest.is_empty() || rest.starts_with(['-', '+']));
    if !well_formed || rest.chars().any(char::is_control) {
        return Err(refuse(
            WHAT,
            v,
            "not a Kubernetes version (MAJOR.MINOR[.PATCH], optionally with a v prefix and a \
             -/+ suffix)",
        ));
    }
    Ok(numeric.to_string())
}

/// An `--api-versions` entry: `[group/]version[/Kind]`.
pub fn api_version(v: &str) -> Result<&str, ArgError> {
    const WHAT: &str = "helm apiVersions entry";
    let parts: Vec<&str> = v.split('/').collect();
    let ok = (1..=3).contains(&parts.len())
        && v.len() <= 253
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('-')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        });
    if ok {
        Ok(v)
    } else {
        Err(refuse(
            WHAT,
            v,
            "not [group/]version[/Kind] (letters, digits, '.', '-')",
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn release_names_follow_helm() {
        for ok in ["web", "chart-app", "a.b-c", "x1", &"a".repeat(53)] {
            assert!(release_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "--set-file=x=/proc/1/environ",
            "--post-renderer=/bin/sh",
            "-x",
            "Web",
            "a_b",
            "a..b",
            "a-",
            "a b",
            "a\nb",
            &"a".repeat(54),
        ] {
            assert!(release_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn namespaces_are_labels() {
        assert!(namespace("web-prod").is_ok());
        for bad in ["--kubeconfig=/x", "a.b", "", "A", &"a".repeat(64)] {
            assert!(namespace(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn value_files_are_relative_names() {
        for ok in ["values.yaml", "../shared/v.yaml", "env/prod.yaml"] {
            assert!(value_file(ok).is_ok(), "{ok}");
        }
        for bad in [
            "--post-renderer=/bin/sh",
            "-f",
            "/etc/passwd",
            "/proc/self/environ",
            "",
            "a\nb",
        ] {
            assert!(value_file(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn set_keys_are_helm_paths() {
        for ok in [
            "replicas",
            "image.tag",
            "a[0].b",
            r"annotations.x\.y/z",
            "a-b_c",
        ] {
            assert!(set_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "--set-file", "a=b", "a,b", "a b", "a\nb", "$(X)"] {
            assert!(set_key(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn kube_versions_are_normalised_as_argocd_does() {
        assert_eq!(kube_version("v1.29.3+k3s1").unwrap(), "1.29.3");
        assert_eq!(kube_version("1.30").unwrap(), "1.30");
        assert_eq!(kube_version("v1.31.2-eks-1234").unwrap(), "1.31.2");
        for bad in [
            "",
            "1",
            "latest",
            "--kube-version=1",
            "1.2.3.4",
            "v1..2",
            "1.29\n",
        ] {
            assert!(kube_version(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn api_versions_are_group_version_kind() {
        for ok in ["v1", "apps/v1", "monitoring.coreos.com/v1/ServiceMonitor"] {
            assert!(api_version(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-x", "a/b/c/d", "apps//v1", "apps/v1 --set=x", "a/--b"] {
            assert!(api_version(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn set_values_cannot_add_assignments() {
        assert_eq!(set_value("3").unwrap(), "3");
        assert_eq!(set_value("-1").unwrap(), "-1");
        assert_eq!(set_value("a=b").unwrap(), "a=b");
        assert_eq!(set_value("x,global.evil=1").unwrap(), r"x\,global.evil=1");
        assert_eq!(set_value(r"already\,escaped").unwrap(), r"already\,escaped");
        assert_eq!(set_value(r"a\\,b").unwrap(), r"a\\\,b");
        assert_eq!(set_value("{a,b}").unwrap(), "{a,b}");
        assert!(set_value("a\nb").is_err());
        assert!(set_value("a\rb").is_err());
    }
}
