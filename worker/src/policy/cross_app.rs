//! Checks that need every app at once: no single-app tool can make them.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::Value;

use super::AppInput;
use super::config::PolicySettings;
use super::findings::{Finding, Severity};
use super::schema::SchemaSet;
use crate::objects::{K8sObject, ObjectId};

pub const RULE_DUPLICATE: &str = "duplicate-object";
pub const RULE_INGRESS_CONFLICT: &str = "ingress-conflict";
pub const RULE_NAMESPACE: &str = "namespace-not-created";
pub const RULE_PR_APP_NAMESPACE: &str = "pr-app-in-argocd-namespace";
pub const RULE_PR_APP_PROJECT: &str = "pr-app-default-project";
pub const RULE_PROJECT_WILDCARD: &str = "appproject-wildcard";

/// Runs every cross-app check.
pub fn check(apps: &[AppInput], schemas: &SchemaSet, settings: &PolicySettings) -> Vec<Finding> {
    let mut out = Vec::new();
    duplicates(apps, schemas, &mut out);
    ingress_conflicts(apps, &mut out);
    namespaces(apps, schemas, settings, &mut out);
    for app in apps {
        for obj in &app.objects {
            if obj.id.group == "argoproj.io" && obj.id.kind == "ApplicationSet" {
                pull_request_apps(&app.name, obj, settings, &mut out);
            }
            if obj.id.group == "argoproj.io" && obj.id.kind == "AppProject" {
                project_wildcards(&app.name, obj, &mut out);
            }
        }
    }
    out
}

/// Apps deployed to the same cluster fight over an object both render.
fn duplicates(apps: &[AppInput], schemas: &SchemaSet, out: &mut Vec<Finding>) {
    let mut owner: HashMap<(Option<&str>, ObjectId), &str> = HashMap::new();
    for app in apps {
        for obj in &app.objects {
            let id = effective_id(app, obj, schemas);
            let key = (app.cluster.as_deref(), id);
            match owner.get(&key) {
                Some(first) if *first != app.name => out.push(
                    Finding::new(
                        RULE_DUPLICATE,
                        Severity::Deny,
                        &app.name,
                        format!(
                            "{} is also rendered by app {first}; ArgoCD would let the two apps overwrite each other",
                            key.1
                        ),
                    )
                    .on(&obj.id),
                ),
                Some(_) => {}
                None => {
                    owner.insert(key, &app.name);
                }
            }
        }
    }
}

/// The identity the object gets in the cluster: a namespaced object without a namespace lands in
/// the app's destination namespace.
fn effective_id(app: &AppInput, obj: &K8sObject, schemas: &SchemaSet) -> ObjectId {
    let mut id = obj.id.clone();
    if id.namespace.is_none() && !schemas.is_cluster_scoped(&id.kind) {
        id.namespace = app.destination_namespace.clone();
    }
    id
}

struct Route<'a> {
    app: &'a str,
    obj: &'a K8sObject,
    class: Option<String>,
}

fn ingress_conflicts(apps: &[AppInput], out: &mut Vec<Finding>) {
    let mut claimed: BTreeMap<(Option<&str>, String, String), Vec<Route<'_>>> = BTreeMap::new();
    for app in apps {
        for obj in &app.objects {
            for (host, path, class) in routes(obj) {
                claimed
                    .entry((app.cluster.as_deref(), host, path))
                    .or_default()
                    .push(Route {
                        app: &app.name,
                        obj,
                        class,
                    });
            }
        }
    }
    for ((_, host, path), routes) in claimed {
        for (i, r) in routes.iter().enumerate() {
            let earlier = routes[..i].iter().find(|o| {
                o.obj.id != r.obj.id
                    && (o.class.is_none() || r.class.is_none() || o.class == r.class)
            });
            if let Some(o) = earlier {
                out.push(
                    Finding::new(
                        RULE_INGRESS_CONFLICT,
                        Severity::Deny,
                        r.app,
                        format!(
                            "host {host} path {path} is already routed by {} (app {})",
                            o.obj.id, o.app
                        ),
                    )
                    .on(&r.obj.id),
                );
            }
        }
    }
}

/// (host, path, ingress class) pairs an object routes. Traefik `IngressRoute` matchers are read
/// for the common `Host(...) && PathPrefix(...)` forms.
fn routes(obj: &K8sObject) -> Vec<(String, String, Option<String>)> {
    let mut out = Vec::new();
    let v = &obj.value;
    if obj.id.group == "networking.k8s.io" && obj.id.kind == "Ingress" {
        let class = v
            .pointer("/spec/ingressClassName")
            .and_then(Value::as_str)
            .map(String::from);
        for rule in arr(v.pointer("/spec/rules")) {
            let host = rule.get("host").and_then(Value::as_str).unwrap_or("*");
            for p in arr(rule.pointer("/http/paths")) {
                let path = p.get("path").and_then(Value::as_str).unwrap_or("/");
                out.push((host.to_string(), norm_path(path), class.clone()));
            }
        }
    } else if obj.id.kind == "IngressRoute"
        && (obj.id.group == "traefik.io" || obj.id.group == "traefik.containo.us")
    {
        for r in arr(v.pointer("/spec/routes")) {
            let Some(m) = r.get("match").and_then(Value::as_str) else {
                continue;
            };
            let hosts = matcher_args(m, "Host");
            let mut paths = matcher_args(m, "PathPrefix");
            paths.extend(matcher_args(m, "Path"));
            if paths.is_empty() {
                paths.push("/".into());
            }
            let hosts = if hosts.is_empty() {
                vec!["*".to_string()]
            } else {
                hosts
            };
            for h in &hosts {
                for p in &paths {
                    out.push((h.clone(), norm_path(p), Some("traefik".into())));
                }
            }
        }
    }
    out
}

fn arr(v: Option<&Value>) -> impl Iterator<Item = &Value> {
    v.and_then(Value::as_array).into_iter().flatten()
}

fn norm_path(p: &str) -> String {
    let t = p.trim_end_matches('/');
    if t.is_empty() {
        "/".into()
    } else {
        t.to_string()
    }
}

/// Arguments of `Name(`a`, `b`)` calls in a Traefik matcher (exact name, not a prefix of another).
fn matcher_args(m: &str, name: &str) -> Vec<String> {
    let mut out = Vec::new();
    let pat = format!("{name}(");
    let mut rest = m;
    while let Some(i) = rest.find(&pat) {
        let before = rest[..i].chars().last();
        let after = &rest[i + pat.len()..];
        let Some(end) = after.find(')') else { break };
        if before.is_none_or(|c| !c.is_ascii_alphanumeric()) {
            for arg in after[..end].split(',') {
                let a = arg
                    .trim()
                    .trim_matches(|c| c == '`' || c == '"' || c == '\'');
                if !a.is_empty() {
                    out.push(a.to_string());
                }
            }
        }
        rest = &after[end..];
    }
    out
}

/// Namespaces objects land in must be created by some app (a `Namespace` object, an ArgoCD
/// `CreateNamespace=true` destination, a k3s HelmChart with `createNamespace`) or exist in every
/// cluster.
fn namespaces(
    apps: &[AppInput],
    schemas: &SchemaSet,
    settings: &PolicySettings,
    out: &mut Vec<Finding>,
) {
    let mut created: BTreeSet<String> = settings.cluster_namespaces.iter().cloned().collect();
    for app in apps {
        if app.creates_namespace
            && let Some(ns) = &app.destination_namespace
        {
            created.insert(ns.clone());
        }
        for obj in &app.objects {
            let v = &obj.value;
            match (obj.id.group.as_str(), obj.id.kind.as_str()) {
                ("", "Namespace") => {
                    created.insert(obj.id.name.clone());
                }
                ("argoproj.io", "Application") => {
                    let opts = arr(v.pointer("/spec/syncPolicy/syncOptions"));
                    if opts
                        .filter_map(Value::as_str)
                        .any(|o| o.replace(' ', "") == "CreateNamespace=true")
                        && let Some(ns) = v
                            .pointer("/spec/destination/namespace")
                            .and_then(Value::as_str)
                    {
                        created.insert(ns.to_string());
                    }
                }
                ("helm.cattle.io", "HelmChart") => {
                    if v.pointer("/spec/createNamespace").and_then(Value::as_bool) == Some(true)
                        && let Some(ns) = v.pointer("/spec/targetNamespace").and_then(Value::as_str)
                    {
                        created.insert(ns.to_string());
                    }
                }
                _ => {}
            }
        }
    }
    for app in apps {
        for obj in &app.objects {
            if schemas.is_cluster_scoped(&obj.id.kind) {
                continue;
            }
            let ns = obj
                .id
                .namespace
                .as_ref()
                .or(app.destination_namespace.as_ref());
            if let Some(ns) = ns
                && !created.contains(ns)
            {
                out.push(
                    Finding::new(
                        RULE_NAMESPACE,
                        Severity::Deny,
                        &app.name,
                        format!("namespace {ns} is not created by any app (no Namespace object, no CreateNamespace=true destination) and is not a cluster namespace"),
                    )
                    .on(&obj.id)
                    .at_field("metadata.namespace"),
                );
            }
        }
    }
}

/// Applications generated from pull requests run code nobody has reviewed yet: they must not
/// deploy into ArgoCD's namespace or use the unrestricted `default` project.
fn pull_request_apps(
    app: &str,
    obj: &K8sObject,
    settings: &PolicySettings,
    out: &mut Vec<Finding>,
) {
    if !has_pull_request_generator(obj.value.pointer("/spec/generators")) {
        return;
    }
    let t = obj.value.pointer("/spec/template/spec");
    let dest = t
        .and_then(|t| t.pointer("/destination/namespace"))
        .and_then(Value::as_str);
    if dest == Some(settings.argocd_namespace.as_str()) {
        out.push(
            Finding::new(
                RULE_PR_APP_NAMESPACE,
                Severity::Deny,
                app,
                format!(
                    "Applications generated from pull requests deploy into {}, ArgoCD's own namespace",
                    settings.argocd_namespace
                ),
            )
            .on(&obj.id)
            .at_field("spec.template.spec.destination.namespace"),
        );
    }
    let project = t.and_then(|t| t.get("project")).and_then(Value::as_str);
    if matches!(project, None | Some("default")) {
        out.push(
            Finding::new(
                RULE_PR_APP_PROJECT,
                Severity::Deny,
                app,
                "Applications generated from pull requests use the unrestricted `default` project; give them a project limited to preview namespaces",
            )
            .on(&obj.id)
            .at_field("spec.template.spec.project"),
        );
    }
}

fn has_pull_request_generator(v: Option<&Value>) -> bool {
    match v {
        Some(Value::Object(m)) => m
            .iter()
            .any(|(k, v)| k == "pullRequest" || has_pull_request_generator(Some(v))),
        Some(Value::Array(a)) => a.iter().any(|x| has_pull_request_generator(Some(x))),
        _ => false,
    }
}

fn project_wildcards(app: &str, obj: &K8sObject, out: &mut Vec<Finding>) {
    let v = &obj.value;
    for (i, ns) in arr(v.pointer("/spec/sourceNamespaces")).enumerate() {
        if ns.as_str() == Some("*") {
            out.push(
                Finding::new(
                    RULE_PROJECT_WILDCARD,
                    Severity::Deny,
                    app,
                    "AppProject accepts Applications from every namespace (sourceNamespaces: *)",
                )
                .on(&obj.id)
                .at_field(format!("spec.sourceNamespaces[{i}]")),
            );
        }
    }
    for (i, d) in arr(v.pointer("/spec/destinations")).enumerate() {
        for key in ["namespace", "server", "name"] {
            if d.get(key).and_then(Value::as_str) == Some("*") {
                out.push(
                    Finding::new(
                        RULE_PROJECT_WILDCARD,
                        Severity::Deny,
                        app,
                        format!("AppProject destination allows any {key} (*)"),
                    )
                    .on(&obj.id)
                    .at_field(format!("spec.destinations[{i}].{key}")),
                );
            }
        }
    }
}
