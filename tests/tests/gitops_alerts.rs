//! Alerting that reaches a person, checked offline:
//!
//! - every PrometheusRule in `applications/system/monitoring` and its `management/` (rendered with `kubectl kustomize`)
//!   parses as PromQL of the right type, has a parsable `for`, and a severity Alertmanager routes;
//! - every metric a rule names is exported by Capstan's own registry (rendered here from
//!   `capstan_worker::runner::metrics::Metrics`, not a copy of its names) or by an exporter this
//!   tree deploys, and every label a selector matches on is one that exporter sets;
//! - Alertmanager's route sends critical and warning alerts to a webhook receiver whose URL is
//!   read from a mounted Secret, never from Git;
//! - ArgoCD notifications trigger on sync failure and on degraded health, for every application,
//!   to a webhook whose URL comes from `argocd-notifications-secret`.
//!
//! Each check also runs on a broken variant to show it catches the problem.
#![allow(clippy::unwrap_used)]

mod gitops_alerts {
    pub(crate) mod promql;
}

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::Command;

use capstan_tests::repo_root;
use capstan_worker::queue::JobState;
use capstan_worker::runner::metrics::Metrics;
use capstan_worker::yaml::parse_documents;
use gitops_alerts::promql::{Type, parse};
use serde_json::{Value, json};

/// Every cluster's monitoring, and the management cluster's (ArgoCD, Capstan).
const RULES_DIRS: [&str; 2] = [
    "applications/system/monitoring",
    "applications/system/monitoring/management",
];

fn monitoring_objects() -> Vec<Value> {
    RULES_DIRS
        .iter()
        .flat_map(|d| kustomize(&repo_root().join(d)))
        .collect()
}
const KPS: &str = "infrastructure/operators/kube-prometheus-stack/operator.yaml";
const ARGOCD: &str = "argocd/installation/helmchart.yaml";
/// Severities Alertmanager sends to a person (the `person` receiver's routes).
const PAGED: [&str; 2] = ["critical", "warning"];

fn kustomize(dir: &Path) -> Vec<Value> {
    let out = Command::new("kubectl")
        .arg("kustomize")
        .arg(dir)
        .output()
        .expect("kubectl must be on PATH");
    assert!(
        out.status.success(),
        "kubectl kustomize {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    parse_documents(
        &String::from_utf8_lossy(&out.stdout),
        &dir.display().to_string(),
    )
    .unwrap()
}

fn read_first(path: &str) -> Value {
    let full = repo_root().join(path);
    let text = std::fs::read_to_string(&full).unwrap();
    parse_documents(&text, path).unwrap().remove(0)
}

fn kps_values() -> Value {
    read_first(KPS)["values"].clone()
}

fn argocd_values() -> Value {
    let doc = read_first(ARGOCD);
    let text = doc["spec"]["valuesContent"].as_str().unwrap();
    parse_documents(text, ARGOCD).unwrap().remove(0)
}

// ------------------------------------------------------------------------------------------
// What exists to be alerted on

/// Series names Capstan's `/metrics` serves, from its real registry: every family is touched
/// once so it renders, then names are read from the `# TYPE` lines the way Prometheus would
/// (a counter `x` is scraped as `x_total`, a histogram as `x_bucket`/`x_sum`/`x_count`).
fn capstan_series() -> BTreeMap<String, BTreeSet<String>> {
    let m = Metrics::new();
    m.delivery("pull_request", "accepted");
    m.job_finished("pr_check", "succeeded", 0.1);
    m.lease_expired("pr_check");
    let text = m.render(Some(&[("pr_check".into(), JobState::Queued, 1)]));
    let mut types = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut it = rest.split_whitespace();
            let (Some(name), Some(kind)) = (it.next(), it.next()) else {
                panic!("malformed TYPE line {line:?}");
            };
            types.insert(name.to_string(), kind.to_string());
        }
    }
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let name_end = line.find(['{', ' ']).unwrap_or(line.len());
        let name = &line[..name_end];
        let labels = out.entry(name.to_string()).or_default();
        if let Some(body) = line[name_end..].strip_prefix('{') {
            for pair in body.split('}').next().unwrap_or("").split(',') {
                if let Some((k, _)) = pair.split_once('=') {
                    labels.insert(k.to_string());
                }
            }
        }
    }
    for (name, kind) in types {
        let names = match kind.as_str() {
            "counter" => vec![format!("{name}_total")],
            "histogram" => ["_bucket", "_sum", "_count"]
                .iter()
                .map(|s| format!("{name}{s}"))
                .collect(),
            _ => vec![name],
        };
        for n in names {
            out.entry(n).or_default();
        }
    }
    // Every series also carries the labels the ServiceMonitor's target adds.
    for labels in out.values_mut() {
        labels.extend(["job", "instance", "namespace", "pod", "service"].map(String::from));
    }
    out
}

/// Metrics of the exporters the tree deploys, with the labels they set, from each exporter's
/// source at the version the pinned chart runs. `deployed` says where the tree turns it on.
struct Exporter {
    name: &'static str,
    source: &'static str,
    metrics: &'static [(&'static str, &'static [&'static str])],
}

const TARGET_LABELS: [&str; 5] = ["job", "instance", "namespace", "pod", "service"];

const EXPORTERS: [Exporter; 5] = [
    Exporter {
        name: "prometheus",
        source: "Prometheus' own per-target series (scrape/scrape.go)",
        metrics: &[("up", &[])],
    },
    Exporter {
        name: "argocd-application-controller",
        source: "argo-cd controller/metrics/metrics.go (chart 9.4.17)",
        metrics: &[
            (
                "argocd_app_info",
                &[
                    "name",
                    "project",
                    "repo",
                    "dest_server",
                    "dest_namespace",
                    "sync_status",
                    "health_status",
                    "operation",
                    "autosync_enabled",
                ],
            ),
            (
                "argocd_app_sync_total",
                &["name", "project", "dest_server", "phase"],
            ),
        ],
    },
    Exporter {
        name: "cert-manager",
        source: "cert-manager pkg/metrics/certificates.go (v1.19.1)",
        metrics: &[
            (
                "certmanager_certificate_expiration_timestamp_seconds",
                &["name", "issuer_name", "issuer_kind", "issuer_group"],
            ),
            (
                "certmanager_certificate_ready_status",
                &[
                    "name",
                    "condition",
                    "issuer_name",
                    "issuer_kind",
                    "issuer_group",
                ],
            ),
        ],
    },
    Exporter {
        name: "kube-state-metrics",
        source: "kube-state-metrics internal/store/node.go (chart 6.4.1)",
        metrics: &[(
            "kube_node_status_condition",
            &["node", "condition", "status"],
        )],
    },
    Exporter {
        name: "node-exporter",
        source: "node_exporter collector/filesystem_common.go (chart 4.49.1)",
        metrics: &[
            (
                "node_filesystem_avail_bytes",
                &["device", "mountpoint", "fstype"],
            ),
            (
                "node_filesystem_size_bytes",
                &["device", "mountpoint", "fstype"],
            ),
        ],
    },
];

/// Whether the tree really deploys (and scrapes) each exporter; problems as sentences.
fn check_exporters_deployed(kps: &Value, argocd: &Value, monitoring: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let off = |v: &Value| v.as_bool() == Some(false);
    if off(&kps["kubeStateMetrics"]["enabled"]) {
        problems.push("kube-state-metrics is disabled in kube-prometheus-stack's values".into());
    }
    if off(&kps["nodeExporter"]["enabled"]) {
        problems.push("node-exporter is disabled in kube-prometheus-stack's values".into());
    }
    if argocd["controller"]["metrics"]["enabled"].as_bool() != Some(true) {
        problems.push("ArgoCD's application controller metrics are not enabled".into());
    }
    let monitored: BTreeSet<&str> = monitoring
        .iter()
        .filter(|o| o["kind"] == "ServiceMonitor")
        .flat_map(|o| {
            o["spec"]["namespaceSelector"]["matchNames"]
                .as_array()
                .into_iter()
                .flatten()
        })
        .filter_map(Value::as_str)
        .collect();
    for ns in ["argocd", "cert-manager", "capstan"] {
        if !monitored.contains(ns) {
            problems.push(format!("no ServiceMonitor scrapes namespace {ns}"));
        }
    }
    problems
}

fn known_series() -> BTreeMap<String, BTreeSet<String>> {
    let mut known = capstan_series();
    for e in &EXPORTERS {
        for (metric, labels) in e.metrics {
            let set = known.entry((*metric).to_string()).or_default();
            set.extend(labels.iter().map(|l| (*l).to_string()));
            set.extend(TARGET_LABELS.map(String::from));
        }
    }
    known
}

// ------------------------------------------------------------------------------------------
// The rules

struct Rule {
    group: String,
    alert: String,
    expr: String,
    for_: Option<String>,
    severity: Option<String>,
}

fn rules(objects: &[Value]) -> Vec<Rule> {
    let mut out = Vec::new();
    for o in objects.iter().filter(|o| o["kind"] == "PrometheusRule") {
        for g in o["spec"]["groups"].as_array().into_iter().flatten() {
            for r in g["rules"].as_array().into_iter().flatten() {
                out.push(Rule {
                    group: g["name"].as_str().unwrap_or("").to_string(),
                    alert: r["alert"]
                        .as_str()
                        .or(r["record"].as_str())
                        .unwrap_or("")
                        .to_string(),
                    expr: match &r["expr"] {
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    },
                    for_: r["for"].as_str().map(String::from),
                    severity: r["labels"]["severity"].as_str().map(String::from),
                });
            }
        }
    }
    out
}

fn is_prom_duration(s: &str) -> bool {
    parse(&format!("x[{s}]")).is_ok()
}

fn check_rules(rules: &[Rule], known: &BTreeMap<String, BTreeSet<String>>) -> Vec<String> {
    let mut problems = Vec::new();
    for r in rules {
        let at = format!("{}/{}", r.group, r.alert);
        match parse(&r.expr) {
            Err(e) => problems.push(format!("{at}: expression does not parse: {e}")),
            Ok(p) => {
                if p.ty != Type::Vector {
                    problems.push(format!(
                        "{at}: expression is a {:?}, an alert needs a vector",
                        p.ty
                    ));
                }
                for m in &p.metrics {
                    if !known.contains_key(m) {
                        problems.push(format!(
                            "{at}: metric {m} is exported by nothing this tree deploys"
                        ));
                    }
                }
                for (m, l) in &p.labels {
                    if let Some(labels) = known.get(m)
                        && !labels.contains(l)
                    {
                        problems.push(format!("{at}: {m} has no label {l}"));
                    }
                }
            }
        }
        if let Some(f) = &r.for_
            && !is_prom_duration(f)
        {
            problems.push(format!("{at}: `for: {f}` is not a duration"));
        }
        match &r.severity {
            Some(s) if PAGED.contains(&s.as_str()) => {}
            other => problems.push(format!("{at}: severity {other:?} reaches no person")),
        }
    }
    problems
}

#[test]
fn every_rule_parses_and_names_only_exported_metrics() {
    let objects = monitoring_objects();
    let rules = rules(&objects);
    let alerts: BTreeSet<&str> = rules.iter().map(|r| r.alert.as_str()).collect();
    // The alerts the platform promises (bootstrap/docs/alerting.md lists them).
    for expected in [
        "ArgoCDAppDegraded",
        "ArgoCDAppOutOfSync",
        "ArgoCDSyncFailed",
        "CertificateExpiresSoon",
        "NodeNotReady",
        "NodeDiskPressure",
        "CapstanDown",
        "CapstanQueueBacklog",
    ] {
        assert!(
            alerts.contains(expected),
            "no alert {expected} in {alerts:?}"
        );
    }
    let problems = check_rules(&rules, &known_series());
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn capstan_rules_use_the_registrys_names() {
    let series = capstan_series();
    // The names the rules rely on, as the real registry renders them.
    for name in ["capstan_queue_jobs", "capstan_jobs_total"] {
        assert!(
            series.contains_key(name),
            "{name} not in {:?}",
            series.keys()
        );
    }
    assert!(series["capstan_queue_jobs"].contains("state"));
    assert!(series["capstan_jobs_total"].contains("outcome"));
    // A name the registry does not render (counters are scraped with _total) is refused.
    let bad = vec![Rule {
        group: "capstan".into(),
        alert: "Typo".into(),
        expr: "rate(capstan_jobs[5m]) > 0".into(),
        for_: None,
        severity: Some("warning".into()),
    }];
    let problems = check_rules(&bad, &known_series());
    assert!(
        problems.iter().any(|p| p.contains("capstan_jobs ")),
        "{problems:?}"
    );
}

#[test]
fn the_checks_catch_broken_rules() {
    let known = known_series();
    let rule = |expr: &str, for_: Option<&str>, severity: Option<&str>| Rule {
        group: "g".into(),
        alert: "A".into(),
        expr: expr.into(),
        for_: for_.map(String::from),
        severity: severity.map(String::from),
    };
    let cases = [
        (
            rule("up{job=\"x\"} == ", None, Some("critical")),
            "does not parse",
        ),
        (
            rule("rate(up{job=\"x\"}) > 0", None, Some("critical")),
            "argument 1",
        ),
        (rule("up{job=~\"(\"}", None, Some("critical")), "bad regex"),
        (rule("sum(up[5m])", None, Some("critical")), "over a Matrix"),
        (rule("time() > 5", None, Some("critical")), "needs `bool`"),
        (
            rule("frobnicate(up)", None, Some("critical")),
            "unknown function",
        ),
        (
            rule("kube_node_status_condtion == 1", None, Some("critical")),
            "exported by nothing",
        ),
        (
            rule(
                "kube_node_status_condition{nodename=\"a\"} == 1",
                None,
                Some("critical"),
            ),
            "no label nodename",
        ),
        (
            rule("up == 0", Some("5 minutes"), Some("critical")),
            "not a duration",
        ),
        (
            rule("up == 0", Some("5m"), Some("info")),
            "reaches no person",
        ),
        (rule("up == 0", Some("5m"), None), "reaches no person"),
        (rule("vector(1)", None, Some("critical")), ""),
        (rule("time()", None, Some("critical")), "needs a vector"),
    ];
    for (r, want) in cases {
        let problems = check_rules(std::slice::from_ref(&r), &known);
        if want.is_empty() {
            assert!(problems.is_empty(), "{}: {problems:?}", r.expr);
        } else {
            assert!(
                problems.iter().any(|p| p.contains(want)),
                "{}: wanted {want:?}, got {problems:?}",
                r.expr
            );
        }
    }
    // And real PromQL the parser must accept.
    for ok in [
        "sum by (kind) (rate(capstan_jobs_total{outcome=~\"failed|dead\"}[15m])) / sum without (outcome) (rate(capstan_jobs_total[15m] offset 1h)) > 0.5",
        "absent(up{job=\"capstan\"} == 1)",
        "max_over_time(up[1h:5m]) < bool 1",
        "histogram_quantile(0.99, sum by (le) (rate(capstan_job_duration_seconds_bucket[5m])))",
        "up * on (instance) group_left (node) kube_node_status_condition unless up == 2 ^ 3 ^ 2",
        "topk(3, -up) or {__name__=\"up\"}",
        "(certmanager_certificate_expiration_timestamp_seconds - time()) < 14 * 24 * 3600",
    ] {
        assert!(parse(ok).is_ok(), "{ok}: {:?}", parse(ok).err());
    }
}

#[test]
fn the_exporters_the_rules_use_are_deployed_and_scraped() {
    let monitoring = monitoring_objects();
    let problems = check_exporters_deployed(&kps_values(), &argocd_values(), &monitoring);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    for e in &EXPORTERS {
        assert!(!e.source.is_empty() && !e.metrics.is_empty(), "{}", e.name);
    }
    // Turning one off is noticed.
    let mut kps = kps_values();
    kps["nodeExporter"] = json!({"enabled": false});
    let mut argocd = argocd_values();
    argocd["controller"]["metrics"]["enabled"] = json!(false);
    let without: Vec<Value> = monitoring
        .into_iter()
        .filter(|o| o["metadata"]["name"] != "cert-manager")
        .collect();
    let problems = check_exporters_deployed(&kps, &argocd, &without);
    assert_eq!(problems.len(), 3, "{problems:?}");
}

// ------------------------------------------------------------------------------------------
// Where alerts go

/// Alertmanager's config in kube-prometheus-stack's values: every paged severity reaches a
/// receiver with a webhook whose URL is a file from a Secret the Alertmanager pod mounts.
fn check_alertmanager(kps: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let am = &kps["alertmanager"];
    let config = &am["config"];
    let mounted: BTreeSet<&str> = am["alertmanagerSpec"]["secrets"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect();
    let mut person = BTreeSet::new();
    for r in config["receivers"].as_array().into_iter().flatten() {
        let name = r["name"].as_str().unwrap_or("");
        for (key, list) in r.as_object().into_iter().flatten() {
            if !key.ends_with("_configs") {
                continue;
            }
            for c in list.as_array().into_iter().flatten() {
                if c.get("url").is_some() || c.get("api_url").is_some() {
                    problems.push(format!(
                        "receiver {name}: a literal URL in Git (use url_file from a Secret)"
                    ));
                }
                match c["url_file"].as_str() {
                    Some(file) => {
                        let secret = file
                            .strip_prefix("/etc/alertmanager/secrets/")
                            .and_then(|rest| rest.split('/').next())
                            .unwrap_or("");
                        if mounted.contains(secret) {
                            person.insert(name.to_string());
                        } else {
                            problems.push(format!("receiver {name}: {file} is not in a Secret alertmanagerSpec.secrets mounts"));
                        }
                    }
                    None => problems.push(format!("receiver {name}: {key} without url_file")),
                }
            }
        }
    }
    if person.is_empty() {
        problems.push("no receiver reaches a person".into());
    }
    // Walk the route the way Alertmanager does for each paged severity (first match wins,
    // matchers of the `label = "value"` / `label =~ "a|b"` forms this tree uses).
    let route = &config["route"];
    for severity in PAGED {
        let mut receiver = route["receiver"].as_str().unwrap_or("").to_string();
        for r in route["routes"].as_array().into_iter().flatten() {
            let all = r["matchers"].as_array().into_iter().flatten().all(|m| {
                matcher_matches(
                    m.as_str().unwrap_or(""),
                    &[("severity", severity), ("alertname", "Any")],
                )
            });
            if all {
                receiver = r["receiver"].as_str().unwrap_or("").to_string();
                break;
            }
        }
        if !person.contains(&receiver) {
            problems.push(format!(
                "severity {severity} is routed to {receiver:?}, which reaches no person"
            ));
        }
    }
    problems
}

fn matcher_matches(m: &str, labels: &[(&str, &str)]) -> bool {
    let (name, op, value) = if let Some((n, v)) = m.split_once("=~") {
        (n, "=~", v)
    } else if let Some((n, v)) = m.split_once("!=") {
        (n, "!=", v)
    } else if let Some((n, v)) = m.split_once('=') {
        (n, "=", v)
    } else {
        return false;
    };
    let value = value.trim().trim_matches('"');
    let actual = labels
        .iter()
        .find(|(k, _)| *k == name.trim())
        .map_or("", |(_, v)| *v);
    match op {
        "=" => actual == value,
        "!=" => actual != value,
        _ => regex::Regex::new(&format!("^(?:{value})$")).is_ok_and(|r| r.is_match(actual)),
    }
}

/// ArgoCD notifications: the two triggers exist, send templates that exist, are subscribed for
/// every application, and go to a webhook whose URL is a `$key` of the notifications Secret.
fn check_notifications(argocd: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    let n = &argocd["notifications"];
    if n["enabled"].as_bool() != Some(true) {
        problems.push("notifications are not enabled".into());
    }
    if n["secret"]["create"].as_bool() != Some(false) {
        problems
            .push("the chart would create argocd-notifications-secret from values in Git".into());
    }
    let mut services = BTreeSet::new();
    for (key, text) in n["notifiers"].as_object().into_iter().flatten() {
        let Some(service) = key.strip_prefix("service.webhook.") else {
            continue;
        };
        let conf = parse_documents(text.as_str().unwrap_or(""), key)
            .unwrap()
            .remove(0);
        match conf["url"].as_str() {
            Some(u) if u.starts_with('$') && !u.contains("://") => {
                services.insert(service.to_string());
            }
            other => problems.push(format!(
                "{key}: url {other:?} is not a reference to the Secret"
            )),
        }
    }
    let templates: BTreeSet<String> = n["templates"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, _)| k.strip_prefix("template.").map(String::from))
        .collect();
    for trigger in ["on-sync-failed", "on-health-degraded"] {
        let key = format!("trigger.{trigger}");
        let Some(text) = n["triggers"][&key].as_str() else {
            problems.push(format!("no {key}"));
            continue;
        };
        let conds = parse_documents(text, &key).unwrap().remove(0);
        for c in conds.as_array().into_iter().flatten() {
            for t in c["send"].as_array().into_iter().flatten() {
                let t = t.as_str().unwrap_or("");
                if !templates.contains(t) {
                    problems.push(format!("{key} sends template {t}, which does not exist"));
                }
            }
        }
        let subscribed = n["subscriptions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| {
                let has_trigger = s["triggers"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|t| t == trigger);
                let to_service = s["recipients"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                    .any(|r| services.contains(r.split(':').next().unwrap_or("")));
                // A selector would limit it to some applications; every one must be covered.
                has_trigger && to_service && s.get("selector").is_none()
            });
        if !subscribed {
            problems.push(format!(
                "{trigger} is not subscribed to a webhook for every application"
            ));
        }
    }
    problems
}

#[test]
fn alertmanager_pages_a_person_through_a_secret() {
    let kps = kps_values();
    let problems = check_alertmanager(&kps);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let mut literal = kps.clone();
    literal["alertmanager"]["config"]["receivers"][1]["webhook_configs"][0] =
        json!({"url": "https://hooks.example.com/T0/B0/secret"});
    let problems = check_alertmanager(&literal);
    assert!(
        problems.iter().any(|p| p.contains("literal URL")),
        "{problems:?}"
    );

    let mut unmounted = kps.clone();
    unmounted["alertmanager"]["alertmanagerSpec"]["secrets"] = json!([]);
    let problems = check_alertmanager(&unmounted);
    assert!(
        problems.iter().any(|p| p.contains("not in a Secret")),
        "{problems:?}"
    );

    let mut dropped = kps;
    dropped["alertmanager"]["config"]["route"]["routes"]
        .as_array_mut()
        .unwrap()
        .insert(
            0,
            json!({"receiver": "null", "matchers": ["severity = \"warning\""]}),
        );
    let problems = check_alertmanager(&dropped);
    assert!(
        problems.iter().any(|p| p.contains("severity warning")),
        "{problems:?}"
    );
}

#[test]
fn argocd_notifications_reach_the_same_webhook() {
    let argocd = argocd_values();
    let problems = check_notifications(&argocd);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let mut literal = argocd.clone();
    literal["notifications"]["notifiers"]["service.webhook.alerts"] =
        json!("url: https://hooks.example.com/x\n");
    let problems = check_notifications(&literal);
    assert!(
        problems.iter().any(|p| p.contains("not a reference")),
        "{problems:?}"
    );

    let mut unsubscribed = argocd.clone();
    unsubscribed["notifications"]["subscriptions"][0]["triggers"] = json!(["on-sync-failed"]);
    let problems = check_notifications(&unsubscribed);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("on-health-degraded is not subscribed")),
        "{problems:?}"
    );

    let mut missing = argocd;
    missing["notifications"]["templates"]
        .as_object_mut()
        .unwrap()
        .remove("template.app-sync-failed");
    let problems = check_notifications(&missing);
    assert!(
        problems.iter().any(|p| p.contains("does not exist")),
        "{problems:?}"
    );
}
