//! Exceptions: findings a team has decided to accept, each with a reason, each reported.
//!
//! Two sources: the object's own annotations (`capstan.io/ignore: rule-a,rule-b` plus the required
//! `capstan.io/ignore-reason`) and `policy.exceptions` in `.capstan.yaml`. An ignore annotation
//! without a reason suppresses nothing and is itself a `deny` finding; a configured exception that
//! matches nothing is a `warn`, so stale entries surface.
//!
//! A pull request must not be able to weaken its own review, so an annotation waives a finding only
//! when the rule is listed in `policy.waivable` (settings are read from the base) and, when the
//! change has a base, the same object carried the same waiver there. A waiver the change adds or
//! widens is kept out and reported instead.

use std::collections::{BTreeSet, HashMap};

use super::config::ConfigException;
use super::findings::{Finding, Severity, Suppressed};
use crate::objects::{K8sObject, ObjectId};

pub const IGNORE_ANNOTATION: &str = "capstan.io/ignore";
pub const REASON_ANNOTATION: &str = "capstan.io/ignore-reason";
pub const RULE_MISSING_REASON: &str = "exception-without-reason";
pub const RULE_UNUSED: &str = "unused-exception";
/// An annotation names a rule that `policy.waivable` does not list.
pub const RULE_NOT_WAIVABLE: &str = "waiver-not-waivable";
/// The change itself adds a waiver (annotation or `.capstan.yaml` entry): shown, not applied.
pub const RULE_WAIVER_ADDED: &str = "waiver-added-by-change";

/// Annotation exceptions of one object: the rule ids and the reason.
struct AnnotationException {
    rules: Vec<String>,
    reason: String,
}

/// The object's ignore annotation: `Some(Ok)` with a reason, `Some(Err(rules))` without one.
fn annotation(obj: &K8sObject) -> Option<Result<AnnotationException, &str>> {
    let ann = obj.value.pointer("/metadata/annotations");
    let rules = ann
        .and_then(|a| a.get(IGNORE_ANNOTATION))
        .and_then(|v| v.as_str())?;
    let reason = ann
        .and_then(|a| a.get(REASON_ANNOTATION))
        .and_then(|v| v.as_str())
        .map(str::trim)
        .unwrap_or("");
    if reason.is_empty() {
        return Some(Err(rules));
    }
    Some(Ok(AnnotationException {
        rules: rules
            .split(',')
            .map(|r| r.trim().to_string())
            .filter(|r| !r.is_empty())
            .collect(),
        reason: reason.to_string(),
    }))
}

/// Whether the object asks for any finding to be waived (used to render the base only when needed).
pub fn has_waiver(obj: &K8sObject) -> bool {
    annotation(obj).is_some()
}

/// The annotation waivers in force on the base branch, per app and object.
#[derive(Clone, Debug, Default)]
pub struct BaseWaivers {
    by_object: HashMap<(String, ObjectId), BTreeSet<String>>,
}

impl BaseWaivers {
    /// Collects the waivers (with a reason) of the base objects of each app.
    pub fn from_objects<'a>(objects: impl IntoIterator<Item = (&'a str, &'a K8sObject)>) -> Self {
        let mut by_object = HashMap::new();
        for (app, obj) in objects {
            if let Some(Ok(e)) = annotation(obj) {
                by_object.insert(
                    (app.to_string(), obj.id.clone()),
                    e.rules.into_iter().collect(),
                );
            }
        }
        BaseWaivers { by_object }
    }

    fn waives(&self, app: &str, id: &ObjectId, rule: &str) -> bool {
        self.by_object
            .get(&(app.to_string(), id.clone()))
            .is_some_and(|rules| rules.contains(rule))
    }
}

/// What decides whether an exception may apply.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scope<'a> {
    /// `policy.exceptions`, from the base.
    pub configured: &'a [ConfigException],
    /// `policy.waivable`, from the base.
    pub waivable: &'a [String],
    /// The base's annotation waivers; `None` when a tree is judged on its own (no change).
    pub base: Option<&'a BaseWaivers>,
}

/// Why an annotation was not applied to a finding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Refused {
    NotWaivable,
    AddedByChange,
}

/// Splits findings into kept and suppressed, and adds findings about the exceptions themselves.
pub fn apply(
    findings: Vec<Finding>,
    objects: &[(&str, &K8sObject)],
    scope: &Scope<'_>,
) -> (Vec<Finding>, Vec<Suppressed>) {
    let configured = scope.configured;
    let mut by_object: HashMap<(&str, &ObjectId), AnnotationException> = HashMap::new();
    let mut extra = Vec::new();
    for (app, obj) in objects {
        match annotation(obj) {
            None => {}
            Some(Err(rules)) => extra.push(
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
            ),
            Some(Ok(e)) => {
                by_object.insert((app, &obj.id), e);
            }
        }
    }
    let mut used = vec![false; configured.len()];
    let mut refused: std::collections::BTreeMap<(String, ObjectId, Refused), BTreeSet<String>> =
        std::collections::BTreeMap::new();
    let mut kept = Vec::new();
    let mut suppressed = Vec::new();
    for f in findings {
        let annotated = f.object.as_ref().and_then(|id| {
            by_object
                .get(&(f.app.as_str(), id))
                .filter(|e| e.rules.contains(&f.rule))
                .map(|e| (id, e))
        });
        if let Some((id, e)) = annotated {
            let why = if !scope.waivable.contains(&f.rule) {
                Some(Refused::NotWaivable)
            } else if scope.base.is_some_and(|b| !b.waives(&f.app, id, &f.rule)) {
                Some(Refused::AddedByChange)
            } else {
                None
            };
            match why {
                None => {
                    suppressed.push(Suppressed {
                        reason: e.reason.clone(),
                        source: format!("annotation {IGNORE_ANNOTATION}"),
                        finding: f,
                    });
                    continue;
                }
                Some(why) => {
                    refused
                        .entry((f.app.clone(), id.clone(), why))
                        .or_default()
                        .insert(f.rule.clone());
                }
            }
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
    for ((app, id, why), rules) in refused {
        let rules = rules.into_iter().collect::<Vec<_>>().join(", ");
        let (rule, message) = match why {
            Refused::NotWaivable => (
                RULE_NOT_WAIVABLE,
                format!(
                    "{IGNORE_ANNOTATION} names {rules}, which policy.waivable in .capstan.yaml on the default branch does not list: not applied"
                ),
            ),
            Refused::AddedByChange => (
                RULE_WAIVER_ADDED,
                format!(
                    "this change adds {IGNORE_ANNOTATION} for {rules}; a waiver applies only once it is on the default branch: not applied"
                ),
            ),
        };
        extra.push(
            Finding::new(rule, Severity::Warn, &app, message)
                .on(&id)
                .at_field(format!("metadata.annotations.{IGNORE_ANNOTATION}")),
        );
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

    const WAIVABLE: &[String] = &[];

    fn waivable(rules: &[&str]) -> Vec<String> {
        rules.iter().map(|r| r.to_string()).collect()
    }

    fn only(configured: &[ConfigException]) -> Scope<'_> {
        Scope {
            configured,
            waivable: WAIVABLE,
            base: None,
        }
    }

    #[test]
    fn annotation_with_reason_suppresses_and_reports() {
        let o =
            obj("{capstan.io/ignore: 'a, b', capstan.io/ignore-reason: load balancer by design}");
        let w = waivable(&["a", "c"]);
        let (kept, sup) = apply(
            vec![finding(&o, "a"), finding(&o, "c")],
            &[("shop", &o)],
            &Scope {
                waivable: &w,
                ..Scope::default()
            },
        );
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].rule, "c");
        assert_eq!(sup.len(), 1);
        assert_eq!(sup[0].reason, "load balancer by design");
    }

    #[test]
    fn annotation_without_reason_suppresses_nothing_and_denies() {
        let o = obj("{capstan.io/ignore: a}");
        let (kept, sup) = apply(vec![finding(&o, "a")], &[("shop", &o)], &only(&[]));
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
        let (kept, sup) = apply(vec![finding(&o, "a")], &[("shop", &o)], &only(&cfg));
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
        let (kept, sup) = apply(vec![finding(&o, "a")], &[("shop", &o)], &only(&cfg));
        assert_eq!((kept.len(), sup.len()), (0, 1));
        let mut other = cfg;
        other[0].objects = vec!["Service/x*".into()];
        let (kept, sup) = apply(vec![finding(&o, "a")], &[("shop", &o)], &only(&other));
        assert_eq!(sup.len(), 0);
        assert_eq!(kept[0].rule, "a");
        assert_eq!(kept[1].rule, RULE_UNUSED);
    }

    #[test]
    fn an_annotation_waives_only_rules_listed_as_waivable() {
        let o = obj("{capstan.io/ignore: 'a, b', capstan.io/ignore-reason: by design}");
        let w = waivable(&["a"]);
        let (kept, sup) = apply(
            vec![finding(&o, "a"), finding(&o, "b")],
            &[("shop", &o)],
            &Scope {
                waivable: &w,
                ..Scope::default()
            },
        );
        assert_eq!(sup.len(), 1);
        assert_eq!(sup[0].finding.rule, "a");
        let rules: Vec<_> = kept.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, vec!["b", RULE_NOT_WAIVABLE]);
        assert_eq!(kept[1].severity, Severity::Warn);
        assert!(kept[1].message.contains("names b,"), "{}", kept[1].message);
    }

    #[test]
    fn a_waiver_the_change_adds_or_widens_is_reported_not_applied() {
        let head = obj("{capstan.io/ignore: 'a, b', capstan.io/ignore-reason: by design}");
        let w = waivable(&["a", "b"]);
        // The base already waived `a` on this object; the change widens it to `b`.
        let base_obj = obj("{capstan.io/ignore: a, capstan.io/ignore-reason: old}");
        let base = BaseWaivers::from_objects([("shop", &base_obj)]);
        let scope = Scope {
            waivable: &w,
            base: Some(&base),
            ..Scope::default()
        };
        let (kept, sup) = apply(
            vec![finding(&head, "a"), finding(&head, "b")],
            &[("shop", &head)],
            &scope,
        );
        assert_eq!(sup.len(), 1);
        assert_eq!(sup[0].finding.rule, "a");
        let rules: Vec<_> = kept.iter().map(|f| f.rule.as_str()).collect();
        assert_eq!(rules, vec!["b", RULE_WAIVER_ADDED]);
        assert_eq!(
            kept[0].severity,
            Severity::Deny,
            "the finding keeps its severity"
        );

        // A base waiver without a reason waived nothing there, so it waives nothing now.
        let no_reason = obj("{capstan.io/ignore: 'a, b'}");
        let base = BaseWaivers::from_objects([("shop", &no_reason)]);
        let (kept, sup) = apply(
            vec![finding(&head, "a")],
            &[("shop", &head)],
            &Scope {
                base: Some(&base),
                ..scope
            },
        );
        assert!(sup.is_empty());
        assert_eq!(kept[1].rule, RULE_WAIVER_ADDED);

        // The same waiver on another app's object of the same id does not count.
        let base = BaseWaivers::from_objects([("other", &base_obj)]);
        let (_, sup) = apply(
            vec![finding(&head, "a")],
            &[("shop", &head)],
            &Scope {
                base: Some(&base),
                ..scope
            },
        );
        assert!(sup.is_empty());
    }
}
