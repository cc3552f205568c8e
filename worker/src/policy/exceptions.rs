//! Exceptions: findings a team has decided to accept, each with a reason, each reported.
//!
//! Two sources: the object's own annotations (`capstan.io/ignore: rule-a,rule-b` plus the required
//! `capstan.io/ignore-reason`) and `policy.exceptions` in `.capstan.yaml`. An ignore annotation
//! without a reason suppresses nothing and is itself a `deny` finding; a configured exception that
//! matches nothing is a `warn`, so stale entries surface.

use std::collections::HashMap;

use super::config::ConfigException;
use super::findings::{Finding, Severity, Suppressed};
use crate::objects::{K8sObject, ObjectId};

pub const IGNORE_ANNOTATION: &str = "capstan.io/ignore";
pub const REASON_ANNOTATION: &str = "capstan.io/ignore-reason";
pub const RULE_MISSING_REASON: &str = "exception-without-reason";
pub const RULE_UNUSED: &str = "unused-exception";

/// Annotation exceptions of one object: the rule ids and the reason.
struct AnnotationException {
    rules: Vec<String>,
    reason: String,
}

/// Splits findings into kept and suppressed, and adds findings about the exceptions themselves.
pub fn apply(
    findings: Vec<Finding>,
    objects: &[(&str, &K8sObject)],
    configured: &[ConfigException],
) -> (Vec<Finding>, Vec<Suppressed>) {
    let mut by_object: HashMap<(&str, &ObjectId), AnnotationException> = HashMap::new();
    let mut extra = Vec::new();
    for (app, obj) in objects {
        let ann = obj.value.pointer("/metadata/annotations");
        let Some(rules) = ann
            .and_then(|a| a.get(IGNORE_ANNOTATION))
            .and_then(|v| v.as_str())
        else {
            continue;
        };
        let reason = ann
            .and_then(|a| a.get(REASON_ANNOTATION))
            .and_then(|v| v.as_str())
            .map(str::trim)
            .unwrap_or("");
        if reason.is_empty() {
            extra.push(
                Finding::new(
                    RULE_MISSING_REASON,
                    Severity::Deny,
                    app,
                    format!(
                        "{IGNORE_ANNOTATION}: {rules} has no {REASON_ANNOTATION}; nothing is ignored until a reason is given"
                    ),
                )
                .on(&obj.id)
                .at_field(format!("metadata.annotations.{IGNORE_ANNOTATION}")),
            );
            continue;
        }
        by_object.insert(
            (app, &obj.id),
            AnnotationException {
                rules: rules
                    .split(',')
                    .map(|r| r.trim().to_string())
                    .filter(|r| !r.is_empty())
                    .collect(),
                reason: reason.to_string(),
            },
        );
    }
    let mut used = vec![false; configured.len()];
    let mut kept = Vec::new();
    let mut suppressed = Vec::new();
    for f in findings {
        let annotated = f.object.as_ref().and_then(|id| {
            by_object
                .get(&(f.app.as_str(), id))
                .filter(|e| e.rules.contains(&f.rule))
        });
        if let Some(e) = annotated {
            suppressed.push(Suppressed {
                reason: e.reason.clone(),
                source: format!("annotation {IGNORE_ANNOTATION}"),
                finding: f,
            });
            continue;
        }
        if let Some(i) = configured.iter().position(|e| matches(e, &f)) {
            used[i] = true;
            suppressed.push(Suppressed {
                reason: configured[i].reason.clone(),
                source: ".capstan.yaml policy.exceptions".into(),
                finding: f,
            });
            continue;
        }
        kept.push(f);
    }
    for (e, used) in configured.iter().zip(used) {
        if !used {
            kept.push(Finding::new(
                RULE_UNUSED,
                Severity::Warn,
                "",
                format!(
                    "the .capstan.yaml exception for rule {:?}{} matches no finding; remove it",
                    e.rule,
                    describe(e)
                ),
            ));
        }
    }
    kept.extend(extra);
    (kept, suppressed)
}

fn matches(e: &ConfigException, f: &Finding) -> bool {
    if e.rule != f.rule {
        return false;
    }
    if e.app.as_ref().is_some_and(|a| *a != f.app) {
        return false;
    }
    let id = f.object.as_ref();
    if !e.objects.is_empty() {
        let Some(id) = id else { return false };
        let label = match &id.namespace {
            Some(ns) => format!("{ns}/{}/{}", id.kind, id.name),
            None => format!("{}/{}", id.kind, id.name),
        };
        if !e.objects.iter().any(|p| glob(p, &label)) {
            return false;
        }
    }
    e.kind
        .as_ref()
        .is_none_or(|k| id.is_some_and(|i| i.kind == *k))
        && e.name
            .as_ref()
            .is_none_or(|n| id.is_some_and(|i| i.name == *n))
        && e.namespace
            .as_ref()
            .is_none_or(|n| id.is_some_and(|i| i.namespace.as_deref() == Some(n)))
}

/// `*` matches any run of characters (including `/`); everything else literally.
fn glob(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let mut rest = text;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            let Some(r) = rest.strip_prefix(part) else {
                return false;
            };
            rest = r;
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            let Some(at) = rest.find(part) else {
                return false;
            };
            rest = &rest[at + part.len()..];
        }
    }
    true
}

fn describe(e: &ConfigException) -> String {
    let parts: Vec<String> = [
        e.app.as_ref().map(|a| format!("app {a}")),
        e.kind.as_ref().map(|k| format!("kind {k}")),
        e.namespace.as_ref().map(|n| format!("namespace {n}")),
        e.name.as_ref().map(|n| format!("name {n}")),
        (!e.objects.is_empty()).then(|| format!("objects {}", e.objects.join(", "))),
    ]
    .into_iter()
    .flatten()
    .collect();
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn obj(ann: &str) -> K8sObject {
        crate::objects::parse_stream(
            &format!(
                "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\n  annotations: {ann}\n"
            ),
            "t.yaml",
        )
        .unwrap()
        .remove(0)
    }

    fn finding(o: &K8sObject, rule: &str) -> Finding {
        Finding::new(rule, Severity::Deny, "shop", "m").on(&o.id)
    }

    #[test]
    fn annotation_with_reason_suppresses_and_reports() {
        let o =
            obj("{capstan.io/ignore: 'a, b', capstan.io/ignore-reason: load balancer by design}");
        let (kept, sup) = apply(
            vec![finding(&o, "a"), finding(&o, "c")],
            &[("shop", &o)],
            &[],
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].rule, "c");
        assert_eq!(sup.len(), 1);
        assert_eq!(sup[0].reason, "load balancer by design");
    }

    #[test]
    fn annotation_without_reason_suppresses_nothing_and_denies() {
        let o = obj("{capstan.io/ignore: a}");
        let (kept, sup) = apply(vec![finding(&o, "a")], &[("shop", &o)], &[]);
        assert!(sup.is_empty());
        let rules: Vec<_> = kept.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, vec!["a", RULE_MISSING_REASON]);
    }

    #[test]
    fn configured_exceptions_match_and_unused_ones_warn() {
        let o = obj("{}");
        let cfg = vec![
            ConfigException {
                rule: "a".into(),
                app: Some("shop".into()),
                kind: Some("Service".into()),
                namespace: None,
                name: Some("web".into()),
                objects: vec![],
                reason: "r".into(),
            },
            ConfigException {
                rule: "a".into(),
                app: None,
                kind: None,
                namespace: None,
                name: Some("other".into()),
                objects: vec![],
                reason: "r".into(),
            },
        ];
        let (kept, sup) = apply(vec![finding(&o, "a")], &[("shop", &o)], &cfg);
        assert_eq!(sup.len(), 1);
        assert_eq!(sup[0].source, ".capstan.yaml policy.exceptions");
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].rule, RULE_UNUSED);
        assert!(
            kept[0].message.contains("name other"),
            "{}",
            kept[0].message
        );
    }

    #[test]
    fn object_patterns_glob_over_namespace_kind_and_name() {
        assert!(glob(
            "node-exporter/DaemonSet/*",
            "node-exporter/DaemonSet/exporter"
        ));
        assert!(!glob(
            "node-exporter/DaemonSet/*",
            "other/DaemonSet/exporter"
        ));
        assert!(glob("*/Deployment/web", "shop/Deployment/web"));
        assert!(glob("ClusterRole/argocd-*", "ClusterRole/argocd-server"));
        assert!(!glob("ClusterRole/argocd-*", "ClusterRole/admin"));
        let o = obj("{}");
        let cfg = vec![ConfigException {
            rule: "a".into(),
            app: None,
            kind: None,
            namespace: None,
            name: None,
            objects: vec!["Service/w*".into()],
            reason: "r".into(),
        }];
        let (kept, sup) = apply(vec![finding(&o, "a")], &[("shop", &o)], &cfg.clone());
        assert_eq!((kept.len(), sup.len()), (0, 1));
        let mut other = cfg;
        other[0].objects = vec!["Service/x*".into()];
        let (kept, sup) = apply(vec![finding(&o, "a")], &[("shop", &o)], &other);
        assert_eq!(sup.len(), 0);
        assert_eq!(kept[0].rule, "a");
        assert_eq!(kept[1].rule, RULE_UNUSED);
    }
}
