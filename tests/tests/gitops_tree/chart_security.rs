//! Pod Security of the Helm-chart apps, judged by Capstan's own PSS policy.
//!
//! No `helm` binary and no chart repository are reachable here, so the charts cannot be rendered.
//! What can be checked is what the pinned charts' templates do with our values: [`SITES`] records,
//! for each chart version, which values keys a template copies into a pod's and its containers'
//! `securityContext` (read from the chart's own templates at that version; the file and line are
//! in each entry and next to the keys in the values). [`pods_of`] builds, for each site, the pod
//! those templates would render from our values, and the shipped Rego bundle judges it at the
//! namespace's Pod Security level. A chart version bump without re-reading its templates fails
//! [`check_chart_versions`], so the table cannot go stale silently.

use std::collections::BTreeMap;
use std::path::Path;

use capstan_worker::objects::K8sObject;
use capstan_worker::policy::{AppInput, PolicyEngine, PolicySources};
use capstan_worker::yaml::parse_documents;
use serde_json::{Map, Value, json};

use super::tree::read_yaml;

/// Where the values of a chart app live.
#[derive(Clone, Copy, Debug)]
pub(crate) enum ValuesFile {
    /// `values:` of an `infrastructure/operators/<name>/operator.yaml` (namespace from the file).
    Operator(&'static str),
    /// `spec.valuesContent` of the K3s HelmChart in this file, installed into the namespace.
    HelmChart(&'static str, &'static str),
    /// `spec.valuesContent` of a HelmChartConfig overlaying a chart K3s bundles: its version is
    /// K3s' (`cluster.version` in bootstrap/configs/cluster-config.yaml).
    K3sBundled(&'static str, &'static str),
}

/// One pod a chart template renders: the values paths (`/`-separated) of its pod and container
/// security contexts.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Site {
    pub what: &'static str,
    /// The chart template lines that read these keys (documentation for the reader).
    pub template: &'static str,
    pub pod: &'static str,
    pub containers: &'static [&'static str],
    /// The template drops the key `enabled` from the map and renders nothing when it is false
    /// (sealed-secrets, kube-state-metrics).
    pub strip_enabled: bool,
    /// Values paths that must all be true for the template to render the pod, with the chart's
    /// default for each.
    pub rendered_if: &'static [(&'static str, bool)],
    /// Another namespace than the app's (a subchart's `namespaceOverride`).
    pub namespace: Option<&'static str>,
    /// The pod is built by an operator from a custom resource: only the pod-level context comes
    /// from the chart, so only what the pod level can satisfy is judged beyond the enforced level.
    pub operator_built: bool,
}

/// One chart at one version.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Chart {
    pub app: &'static str,
    pub values: ValuesFile,
    /// The version the tree pins and the templates were read at: the chart's, or K3s' for a
    /// chart K3s bundles.
    pub version: &'static str,
    pub sites: &'static [Site],
}

const fn site(
    what: &'static str,
    template: &'static str,
    pod: &'static str,
    containers: &'static [&'static str],
) -> Site {
    Site {
        what,
        template,
        pod,
        containers,
        strip_enabled: false,
        rendered_if: &[],
        namespace: None,
        operator_built: false,
    }
}

/// What each pinned chart's templates read, version by version.
pub(crate) const SITES: &[Chart] = &[
    Chart {
        app: "sealed-secrets",
        values: ValuesFile::Operator("sealed-secrets"),
        version: "2.17.3",
        sites: &[Site {
            strip_enabled: true,
            ..site(
                "controller",
                "templates/deployment.yaml:53-54, :211-212",
                "podSecurityContext",
                &["containerSecurityContext"],
            )
        }],
    },
    // Each map renders, minus `enabled`, only when `enabled` is true and it holds another key
    // (templates/_helpers.tpl:229-243); the webhook and cert controller render by default.
    Chart {
        app: "external-secrets",
        values: ValuesFile::Operator("external-secrets"),
        version: "2.9.0",
        sites: &[
            Site {
                strip_enabled: true,
                ..site(
                    "controller",
                    "templates/deployment.yaml:55-58, :64-67",
                    "podSecurityContext",
                    &["securityContext"],
                )
            },
            Site {
                strip_enabled: true,
                rendered_if: &[("webhook/create", true)],
                ..site(
                    "webhook",
                    "templates/webhook-deployment.yaml:55-58, :63-66",
                    "webhook/podSecurityContext",
                    &["webhook/securityContext"],
                )
            },
            Site {
                strip_enabled: true,
                rendered_if: &[("certController/create", true)],
                ..site(
                    "cert-controller",
                    "templates/cert-controller-deployment.yaml:54-57, :63-66",
                    "certController/podSecurityContext",
                    &["certController/securityContext"],
                )
            },
        ],
    },
    Chart {
        app: "cert-manager",
        values: ValuesFile::Operator("cert-manager"),
        version: "v1.19.1",
        sites: &[
            site(
                "controller",
                "templates/deployment.yaml:72-73, :159-160",
                "securityContext",
                &["containerSecurityContext"],
            ),
            site(
                "webhook",
                "templates/webhook-deployment.yaml:72-73, :160-161",
                "webhook/securityContext",
                &["webhook/containerSecurityContext"],
            ),
            site(
                "cainjector",
                "templates/cainjector-deployment.yaml:73-74, :124-125",
                "cainjector/securityContext",
                &["cainjector/containerSecurityContext"],
            ),
            Site {
                rendered_if: &[("startupapicheck/enabled", true)],
                ..site(
                    "startupapicheck",
                    "templates/startupapicheck-job.yaml:47-48, :62-63",
                    "startupapicheck/securityContext",
                    &["startupapicheck/containerSecurityContext"],
                )
            },
        ],
    },
    Chart {
        app: "kube-prometheus-stack",
        values: ValuesFile::Operator("kube-prometheus-stack"),
        version: "79.7.1",
        sites: &[
            site(
                "prometheus-operator",
                "templates/prometheus-operator/deployment.yaml:221-223, :172-173",
                "prometheusOperator/securityContext",
                &["prometheusOperator/containerSecurityContext"],
            ),
            Site {
                operator_built: true,
                ..site(
                    "prometheus",
                    "templates/prometheus/prometheus.yaml:252-254",
                    "prometheus/prometheusSpec/securityContext",
                    &[],
                )
            },
            Site {
                operator_built: true,
                ..site(
                    "alertmanager",
                    "templates/alertmanager/alertmanager.yaml:99-101",
                    "alertmanager/alertmanagerSpec/securityContext",
                    &[],
                )
            },
            site(
                "grafana",
                "grafana 10.2.0 templates/_pod.tpl:10-11, :1191-1192, :182-183",
                "grafana/securityContext",
                &[
                    "grafana/containerSecurityContext",
                    "grafana/sidecar/securityContext",
                ],
            ),
            Site {
                rendered_if: &[
                    ("grafana/persistence/enabled", false),
                    ("grafana/initChownData/enabled", true),
                ],
                ..site(
                    "grafana init-chown-data",
                    "grafana 10.2.0 templates/_pod.tpl:37, :46-47",
                    "grafana/securityContext",
                    &["grafana/initChownData/securityContext"],
                )
            },
            Site {
                rendered_if: &[("grafana/testFramework/enabled", true)],
                ..site(
                    "grafana test",
                    "grafana 10.2.0 templates/tests/test.yaml",
                    "grafana/testFramework/securityContext",
                    &["grafana/testFramework/containerSecurityContext"],
                )
            },
            Site {
                strip_enabled: true,
                ..site(
                    "kube-state-metrics",
                    "kube-state-metrics 6.4.1 templates/deployment.yaml:48-49, :244-246",
                    "kube-state-metrics/securityContext",
                    &["kube-state-metrics/containerSecurityContext"],
                )
            },
            Site {
                namespace: Some("node-exporter"),
                ..site(
                    "node-exporter",
                    "prometheus-node-exporter 4.49.1 templates/daemonset.yaml:34-35, :68-69",
                    "prometheus-node-exporter/securityContext",
                    &["prometheus-node-exporter/containerSecurityContext"],
                )
            },
        ],
    },
    Chart {
        app: "argo-cd",
        values: ValuesFile::HelmChart("argocd/installation/helmchart.yaml", "argocd"),
        version: "9.4.17",
        sites: &[
            site(
                "application-controller",
                "templates/argocd-application-controller/statefulset.yaml:54, :383",
                "global/securityContext",
                &["controller/containerSecurityContext"],
            ),
            site(
                "server",
                "templates/argocd-server/deployment.yaml:58, :448",
                "global/securityContext",
                &["server/containerSecurityContext"],
            ),
            site(
                "repo-server",
                "templates/argocd-repo-server/deployment.yaml:64, :410, :432",
                "global/securityContext",
                &["repoServer/containerSecurityContext"],
            ),
            site(
                "applicationset",
                "templates/argocd-applicationset/deployment.yaml:53, :283",
                "global/securityContext",
                &["applicationSet/containerSecurityContext"],
            ),
            site(
                "notifications",
                "templates/argocd-notifications/deployment.yaml:54, :155",
                "global/securityContext",
                &["notifications/containerSecurityContext"],
            ),
            site(
                "redis",
                "templates/redis/deployment.yaml:50, :120",
                "redis/securityContext",
                &["redis/containerSecurityContext"],
            ),
            site(
                "redis-secret-init",
                "templates/redis-secret-init/job.yaml:55, :51",
                "redisSecretInit/securityContext",
                &["redisSecretInit/containerSecurityContext"],
            ),
        ],
    },
    Chart {
        app: "traefik",
        values: ValuesFile::K3sBundled(
            "infrastructure/base/ingress/traefik-config.yaml",
            "kube-system",
        ),
        // K3s v1.34.1+k3s1 ships Traefik chart 37.1.1+up37.1.0, read at upstream v37.1.0.
        version: "v1.34.1+k3s1",
        sites: &[site(
            "traefik",
            "templates/_podtemplate.tpl:990-991, :150-151",
            "podSecurityContext",
            &["securityContext"],
        )],
    },
];

/// The Pod Security level a namespace is held to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Level {
    Privileged,
    Baseline,
    Restricted,
}

impl Level {
    fn parse(s: &str) -> Option<Level> {
        match s {
            "privileged" => Some(Level::Privileged),
            "baseline" => Some(Level::Baseline),
            "restricted" => Some(Level::Restricted),
            _ => None,
        }
    }

    /// The shipped `pss-*` rules that belong to this level (Kubernetes' Pod Security Standards:
    /// baseline forbids host namespaces, hostPath and privileged containers; restricted adds the
    /// rest).
    fn applies(self, rule: &str) -> bool {
        match self {
            Level::Privileged => false,
            Level::Baseline => matches!(
                rule,
                "pss-privileged" | "pss-host-namespaces" | "pss-host-path"
            ),
            Level::Restricted => rule.starts_with("pss-"),
        }
    }
}

/// The level each namespace is held to: the stricter of its `enforce` and `warn` labels, since a
/// namespace that warns at restricted means to get there. kube-system is exempt from admission
/// (bootstrap/scripts/lib/cluster-config.sh) and has no labels; what runs there by our values
/// (Traefik) is held to restricted.
pub(crate) fn namespace_levels(root: &Path) -> Result<BTreeMap<String, (Level, Level)>, String> {
    let mut out = BTreeMap::new();
    out.insert(
        "kube-system".to_string(),
        (Level::Restricted, Level::Restricted),
    );
    for file in [
        "infrastructure/base/security/namespaces.yaml",
        "bootstrap/configs/namespaces/argocd.yaml",
    ] {
        for ns in read_yaml(&root.join(file))? {
            if ns["kind"] != "Namespace" {
                continue;
            }
            let name = ns["metadata"]["name"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            let labels = &ns["metadata"]["labels"];
            let level = |mode: &str| {
                labels[format!("pod-security.kubernetes.io/{mode}")]
                    .as_str()
                    .and_then(Level::parse)
                    .ok_or_else(|| format!("{file}: namespace {name} has no valid pod-security.kubernetes.io/{mode} label"))
            };
            let enforce = level("enforce")?;
            let warn = level("warn")?;
            out.insert(name, (enforce, enforce.max(warn)));
        }
    }
    Ok(out)
}

fn at<'a>(values: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('/').try_fold(values, |v, key| v.get(key))
}

/// The values and namespace of a chart app.
pub(crate) fn values_of(root: &Path, file: ValuesFile) -> Result<(Value, String, String), String> {
    match file {
        ValuesFile::Operator(name) => {
            let path = format!("infrastructure/operators/{name}/operator.yaml");
            let doc = read_yaml(&root.join(&path))?
                .into_iter()
                .next()
                .ok_or(format!("{path} is empty"))?;
            let ns = doc["namespace"]
                .as_str()
                .ok_or(format!("{path}: no namespace"))?
                .to_string();
            let version = doc["chart"]["version"]
                .as_str()
                .ok_or(format!("{path}: no chart.version"))?
                .to_string();
            Ok((doc["values"].clone(), ns, version))
        }
        ValuesFile::HelmChart(path, ns) | ValuesFile::K3sBundled(path, ns) => {
            let doc = read_yaml(&root.join(path))?
                .into_iter()
                .next()
                .ok_or(format!("{path} is empty"))?;
            let text = doc["spec"]["valuesContent"]
                .as_str()
                .ok_or(format!("{path}: no spec.valuesContent"))?;
            let values = parse_documents(text, path)
                .map_err(|e| e.to_string())?
                .into_iter()
                .next()
                .unwrap_or(Value::Null);
            let version = if matches!(file, ValuesFile::K3sBundled(..)) {
                let config = "bootstrap/configs/cluster-config.yaml";
                let doc = read_yaml(&root.join(config))?
                    .into_iter()
                    .next()
                    .ok_or(format!("{config} is empty"))?;
                doc["cluster"]["version"]
                    .as_str()
                    .ok_or(format!("{config}: no cluster.version"))?
                    .to_string()
            } else {
                doc["spec"]["version"]
                    .as_str()
                    .ok_or(format!("{path}: no spec.version"))?
                    .to_string()
            };
            Ok((values, ns.to_string(), version))
        }
    }
}

/// A rendered pod of one site, as a Deployment the policy engine judges, or `None` when the
/// chart would not render it with these values.
pub(crate) fn pod_of(chart: &Chart, site: &Site, values: &Value, ns: &str) -> Option<Value> {
    let rendered = site.rendered_if.iter().all(|(path, default)| {
        at(values, path)
            .and_then(Value::as_bool)
            .unwrap_or(*default)
    });
    if !rendered {
        return None;
    }
    let context = |path: &str| -> Value {
        let mut v = at(values, path).cloned().unwrap_or(Value::Null);
        if site.strip_enabled
            && let Some(m) = v.as_object_mut()
            && m.remove("enabled") == Some(Value::Bool(false))
        {
            return Value::Null;
        }
        v
    };
    let mut containers: Vec<Value> = site
        .containers
        .iter()
        .enumerate()
        .map(|(i, path)| json!({"name": format!("c{i}"), "image": "example/chart:1", "securityContext": context(path)}))
        .collect();
    if containers.is_empty() {
        containers.push(json!({"name": "operator-built", "image": "example/chart:1"}));
    }
    let mut spec = Map::new();
    spec.insert("containers".into(), Value::Array(containers));
    let pod = context(site.pod);
    if !pod.is_null() {
        spec.insert("securityContext".into(), pod);
    }
    let name = format!("{}-{}", chart.app, site.what.replace(' ', "-"));
    Some(json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {
            "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}}, "spec": spec}
        }
    }))
}

/// Every chart pod that the shipped `pss-*` rules refuse at its namespace's level, as sentences,
/// and how many pods were judged.
pub(crate) fn check_chart_pods(root: &Path, charts: &[Chart]) -> (usize, Vec<String>) {
    let levels = match namespace_levels(root) {
        Ok(l) => l,
        Err(e) => return (0, vec![e]),
    };
    let mut judged = 0;
    let engine =
        PolicyEngine::new(&PolicySources::default()).expect("the shipped policy bundle loads");
    let mut problems = Vec::new();
    for chart in charts {
        let (values, app_ns, _) = match values_of(root, chart.values) {
            Ok(v) => v,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        for site in chart.sites {
            let ns = site.namespace.unwrap_or(&app_ns);
            let Some(&(enforce, intended)) = levels.get(ns) else {
                problems.push(format!(
                    "{} {}: namespace {ns} has no Pod Security labels",
                    chart.app, site.what
                ));
                continue;
            };
            let Some(pod) = pod_of(chart, site, &values, ns) else {
                continue;
            };
            judged += 1;
            let object = K8sObject::from_value(pod).expect("a well-formed Deployment");
            let report = engine
                .check(&[AppInput {
                    name: chart.app.to_string(),
                    objects: vec![object],
                    destination_namespace: Some(ns.to_string()),
                    ..AppInput::default()
                }])
                .expect("the policy engine runs");
            for f in report.findings {
                let at_level = if site.operator_built {
                    enforce.applies(&f.rule)
                        || matches!(f.rule.as_str(), "pss-run-as-non-root" | "pss-seccomp")
                } else {
                    intended.applies(&f.rule)
                };
                if at_level {
                    problems.push(format!(
                        "{} {} (namespace {ns}, {}): {} — {}",
                        chart.app, site.what, site.template, f.rule, f.message
                    ));
                }
            }
        }
    }
    (judged, problems)
}

/// Every chart app in the tree has an entry in [`SITES`] for exactly its pinned version.
pub(crate) fn check_chart_versions(root: &Path, charts: &[Chart]) -> Vec<String> {
    let mut problems = Vec::new();
    for chart in charts {
        match values_of(root, chart.values) {
            Ok((_, _, version)) if version != chart.version => problems.push(format!(
                "{}: {version} is pinned but SITES was read at {}; re-read the chart's templates",
                chart.app, chart.version
            )),
            Ok(_) => {}
            Err(e) => problems.push(e),
        }
    }
    let dir = root.join("infrastructure/operators");
    for entry in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if entry.path().join("operator.yaml").is_file()
            && !charts
                .iter()
                .any(|c| matches!(c.values, ValuesFile::Operator(n) if n == name))
        {
            problems.push(format!(
                "operator {name} has no entry in SITES: read its chart's templates and add one"
            ));
        }
    }
    problems
}
