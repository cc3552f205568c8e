//! Settings that must do what their comments say: ArgoCD's repo-server token, its resource
//! exclusions and URLs, the ServiceMonitors' targets, Grafana's root_url. Each check reads the
//! values as the charts would (paths cited at each key in the tree) and returns every problem
//! as a sentence; the tests run them on the real tree and on broken variants.

use std::path::Path;

use capstan_worker::yaml::parse_documents;
use serde_json::{Value, json};

use super::tree::{kind, kustomize, name, read_yaml};

/// What the checks read, loaded once from a tree.
pub(crate) struct Settings {
    /// argo-cd chart values (spec.valuesContent of argocd/installation/helmchart.yaml).
    pub argocd: Value,
    /// argocd-cm's data.
    pub argocd_cm: Value,
    /// kube-prometheus-stack's values (infrastructure/operators).
    pub kps: Value,
    /// Traefik's values (the K3s HelmChartConfig).
    pub traefik: Value,
    /// cert-manager's values.
    pub cert_manager: Value,
    /// The ingress overlays the `ingress` and `ingress-management` sets deploy to the management
    /// cluster, rendered.
    pub ingress: Vec<Value>,
    /// applications/system/monitoring and applications/system/capstan, rendered.
    pub monitoring: Vec<Value>,
    pub capstan: Vec<Value>,
}

fn first(root: &Path, path: &str) -> Result<Value, String> {
    read_yaml(&root.join(path))?
        .into_iter()
        .next()
        .ok_or(format!("{path} is empty"))
}

fn values_content(root: &Path, path: &str) -> Result<Value, String> {
    let doc = first(root, path)?;
    let text = doc["spec"]["valuesContent"]
        .as_str()
        .ok_or(format!("{path}: no spec.valuesContent"))?;
    parse_documents(text, path)
        .map_err(|e| e.to_string())?
        .into_iter()
        .next()
        .ok_or(format!("{path}: empty valuesContent"))
}

impl Settings {
    pub(crate) fn load(root: &Path) -> Result<Settings, String> {
        // The overlays the `ingress` and `ingress-management` ApplicationSets deploy to the
        // cluster ArgoCD runs in: the one its declaration's `ingressOverlay` label names
        // (argocd/clusters), with the routes to ArgoCD and the dashboard beside it.
        let local = first(root, "argocd/clusters/in-cluster/cluster.yaml")?;
        let overlay = local["labels"]["ingressOverlay"]
            .as_str()
            .ok_or("argocd/clusters/in-cluster/cluster.yaml has no ingressOverlay label")?;
        let ingress_path = format!("infrastructure/overlays/{overlay}/ingress");
        let ingress_path = ingress_path.as_str();
        Ok(Settings {
            argocd: values_content(root, "argocd/installation/helmchart.yaml")?,
            argocd_cm: first(root, "argocd/configs/argocd-cm.yaml")?["data"].clone(),
            kps: first(
                root,
                "infrastructure/operators/kube-prometheus-stack/operator.yaml",
            )?["values"]
                .clone(),
            traefik: values_content(root, "infrastructure/base/ingress/traefik-config.yaml")?,
            cert_manager:
                first(root, "infrastructure/operators/cert-manager/operator.yaml")?["values"]
                    .clone(),
            ingress: [ingress_path, &format!("{ingress_path}-management")]
                .iter()
                .map(|p| kustomize(&root.join(p)))
                .collect::<Result<Vec<_>, _>>()?
                .concat(),
            monitoring: [
                "applications/system/monitoring",
                "applications/system/monitoring/management",
            ]
            .iter()
            .map(|p| kustomize(&root.join(p)))
            .collect::<Result<Vec<_>, _>>()?
            .concat(),
            capstan: kustomize(&root.join("applications/system/capstan"))?,
        })
    }
}

fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(v, |v, k| &v[*k])
}

fn ingress<'a>(objects: &'a [Value], wanted: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| kind(o) == "Ingress" && name(o) == wanted)
}

/// (host, path) of every rule of an Ingress, and its TLS hosts.
fn routes(ing: &Value) -> (Vec<(String, String)>, Vec<String>) {
    let mut rules = Vec::new();
    for r in ing["spec"]["rules"].as_array().into_iter().flatten() {
        let host = r["host"].as_str().unwrap_or_default().to_string();
        for p in r["http"]["paths"].as_array().into_iter().flatten() {
            rules.push((host.clone(), p["path"].as_str().unwrap_or("/").to_string()));
        }
    }
    let tls = ing["spec"]["tls"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|t| t["hosts"].as_array().into_iter().flatten())
        .filter_map(|h| h.as_str().map(str::to_string))
        .collect();
    (rules, tls)
}

/// Splits `https://host/path` (no port, no query).
fn split_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("https://")?;
    Some(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

/// The repo server renders whatever a repository holds, so it must get no API token. The pod's
/// own `automountServiceAccountToken` (templates/argocd-repo-server/deployment.yaml:75, chart
/// default true) decides, whatever the ServiceAccount says.
pub(crate) fn check_repo_server_token(argocd: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for (path, what) in [
        (
            &["repoServer", "automountServiceAccountToken"][..],
            "the pod",
        ),
        (
            &[
                "repoServer",
                "serviceAccount",
                "automountServiceAccountToken",
            ][..],
            "the ServiceAccount",
        ),
    ] {
        if at(argocd, path) != &json!(false) {
            problems.push(format!(
                "{}: must be false, or the repo server's token is mounted through {what} (chart default true)",
                path.join(".")
            ));
        }
    }
    problems
}

/// The exclusions the argo-cd chart 9.4.17 puts in the argocd-cm it creates (values.yaml,
/// configs.cm."resource.exclusions"): the tree's own argocd-cm replaces that one, so it must
/// keep every one of them.
pub(crate) const DEFAULT_EXCLUSIONS: &[(&str, &str)] = &[
    ("", "Endpoints"),
    ("discovery.k8s.io", "EndpointSlice"),
    ("coordination.k8s.io", "Lease"),
    ("authentication.k8s.io", "TokenReview"),
    ("authentication.k8s.io", "SelfSubjectReview"),
    ("authorization.k8s.io", "SubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectAccessReview"),
    ("authorization.k8s.io", "SelfSubjectRulesReview"),
    ("authorization.k8s.io", "LocalSubjectAccessReview"),
    ("certificates.k8s.io", "CertificateSigningRequest"),
    ("cert-manager.io", "CertificateRequest"),
    ("cilium.io", "CiliumIdentity"),
    ("cilium.io", "CiliumEndpoint"),
    ("cilium.io", "CiliumEndpointSlice"),
    ("kyverno.io", "PolicyReport"),
    ("wgpolicyk8s.io", "PolicyReport"),
    ("reports.kyverno.io", "EphemeralReport"),
    ("kyverno.io", "UpdateRequest"),
];

pub(crate) fn check_resource_exclusions(cm: &Value) -> Vec<String> {
    let Some(text) = cm["resource.exclusions"].as_str() else {
        return vec![
            "argocd-cm has no resource.exclusions: the chart's defaults are lost with configs.cm.create: false".into(),
        ];
    };
    let list = match parse_documents(text, "resource.exclusions") {
        Ok(docs) => docs.into_iter().next().unwrap_or(Value::Null),
        Err(e) => return vec![format!("argocd-cm resource.exclusions does not parse: {e}")],
    };
    let Some(entries) = list.as_array() else {
        return vec!["argocd-cm resource.exclusions is not a list".into()];
    };
    let has = |field: &Value, want: &str| {
        field
            .as_array()
            .is_some_and(|a| a.iter().any(|v| v == want || v == "*"))
    };
    DEFAULT_EXCLUSIONS
        .iter()
        .filter(|(group, kind)| {
            !entries.iter().any(|e| {
                has(&e["apiGroups"], group)
                    && has(&e["kinds"], kind)
                    && (e.get("clusters").is_none() || has(&e["clusters"], "*"))
            })
        })
        .map(|(group, kind)| {
            format!("argocd-cm resource.exclusions lost the chart default {kind} ({group:?})")
        })
        .collect()
}

/// ArgoCD is reached at https://<global.domain><server.rootpath>: argocd-cm's url and the
/// notifications' link base must say exactly that, and the Ingress must serve that host.
pub(crate) fn check_argocd_urls(argocd: &Value, cm: &Value, objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let domain = at(argocd, &["global", "domain"])
        .as_str()
        .unwrap_or_default();
    let params = at(argocd, &["configs", "params"]);
    let rootpath = params["server.rootpath"].as_str().unwrap_or("");
    let expected = format!("https://{domain}{rootpath}");
    if params["server.basehref"].as_str() != Some(rootpath) {
        problems.push(format!(
            "server.basehref {} differs from server.rootpath {rootpath:?}",
            params["server.basehref"]
        ));
    }
    if cm["url"].as_str() != Some(expected.as_str()) {
        problems.push(format!(
            "argocd-cm url {} is not {expected} (global.domain + server.rootpath)",
            cm["url"]
        ));
    }
    let notifications = at(argocd, &["notifications", "argocdUrl"]);
    if notifications.as_str() != Some(expected.as_str()) {
        problems.push(format!(
            "notifications.argocdUrl {notifications} is not {expected}: the chart's default https://<global.domain> misses the root path"
        ));
    }
    match ingress(objects, "argocd") {
        None => problems.push("no Ingress named argocd in the deployed ingress overlay".into()),
        Some(ing) => {
            let (rules, tls) = routes(ing);
            let served = rules
                .iter()
                .any(|(h, p)| h == domain && (rootpath.starts_with(p.as_str()) || p == "/"));
            if !served {
                problems.push(format!(
                    "global.domain {domain}{rootpath} is not routed by the argocd Ingress ({rules:?})"
                ));
            }
            if !tls.iter().any(|h| h == domain) {
                problems.push(format!("the argocd Ingress has no TLS for {domain}"));
            }
        }
    }
    problems
}

/// Grafana builds redirects and links from root_url: it must be the public https URL of a
/// route that reaches it, with serve_from_sub_path for the path.
pub(crate) fn check_grafana_root_url(kps: &Value, objects: &[Value]) -> Vec<String> {
    let mut problems = Vec::new();
    let server = at(kps, &["grafana", "grafana.ini", "server"]);
    let root_url = server["root_url"].as_str().unwrap_or_default();
    let Some((host, path)) = split_url(root_url) else {
        return vec![format!(
            "grafana root_url {root_url:?} is not an https URL (Grafana's own listener is plain HTTP behind Traefik)"
        )];
    };
    if server["domain"].as_str() != Some(host) {
        problems.push(format!(
            "grafana domain {} is not root_url's host {host}",
            server["domain"]
        ));
    }
    if server["serve_from_sub_path"] != json!(true) {
        problems.push("grafana root_url has a path but serve_from_sub_path is not true".into());
    }
    match ingress(objects, "grafana") {
        None => problems.push("no Ingress named grafana in the deployed ingress overlay".into()),
        Some(ing) => {
            let (rules, tls) = routes(ing);
            let sub = path.trim_end_matches('/');
            // The host must route the sub-path to Grafana, by a path rule or a catch-all.
            if !rules
                .iter()
                .any(|(h, p)| h == host && (p == "/" || p.trim_end_matches('/') == sub))
            {
                problems.push(format!(
                    "grafana root_url {root_url} is not routed by the grafana Ingress ({rules:?})"
                ));
            }
            // Every path route must be the same sub-path, or links from Grafana break there.
            for (h, p) in &rules {
                if p != "/" && p.trim_end_matches('/') != sub {
                    problems.push(format!(
                        "the grafana Ingress routes {h}{p}, but Grafana serves {sub}"
                    ));
                }
            }
            if !tls.iter().any(|h| h == host) {
                problems.push(format!("the grafana Ingress has no TLS for {host}"));
            }
        }
    }
    problems
}

/// A metrics Service a chart renders, as its template does with our values.
struct ChartService {
    what: &'static str,
    namespace: &'static str,
    labels: Value,
    port: &'static str,
    /// The values path that must be true for the chart to render it, and its default.
    enabled: (&'static str, Vec<&'static str>, bool),
}

fn chart_services() -> Vec<ChartService> {
    let argocd =
        |what: &'static str, name: &str, component: &str, key: &'static str| ChartService {
            what,
            namespace: "argocd",
            labels: json!({"app.kubernetes.io/name": name, "app.kubernetes.io/component": component,
                       "app.kubernetes.io/part-of": "argocd"}),
            port: "http-metrics",
            enabled: ("argocd", vec![key, "metrics", "enabled"], false),
        };
    vec![
        // argo-cd 9.4.17 templates/argocd-*/metrics.yaml (labels from _common.tpl:51-72).
        argocd(
            "argocd application-controller",
            "argocd-metrics",
            "application-controller",
            "controller",
        ),
        argocd("argocd server", "argocd-server-metrics", "server", "server"),
        argocd(
            "argocd repo-server",
            "argocd-repo-server-metrics",
            "repo-server",
            "repoServer",
        ),
        argocd(
            "argocd applicationset",
            "argocd-metrics",
            "applicationset-controller",
            "applicationSet",
        ),
        argocd(
            "argocd notifications",
            "argocd-metrics",
            "notifications-controller",
            "notifications",
        ),
        // cert-manager v1.19.1 templates/service.yaml:1 (rendered while prometheus.enabled).
        ChartService {
            what: "cert-manager controller",
            namespace: "cert-manager",
            labels: json!({"app.kubernetes.io/name": "cert-manager", "app.kubernetes.io/component": "controller"}),
            port: "tcp-prometheus-servicemonitor",
            enabled: ("cert-manager", vec!["prometheus", "enabled"], true),
        },
        // Traefik 37.1.0 templates/service-metrics.yaml, _service-metrics.tpl (labels).
        ChartService {
            what: "traefik",
            namespace: "kube-system",
            labels: json!({"app.kubernetes.io/name": "traefik", "app.kubernetes.io/component": "metrics"}),
            port: "metrics",
            enabled: (
                "traefik",
                vec!["metrics", "prometheus", "service", "enabled"],
                false,
            ),
        },
    ]
}

fn selects(selector: &Value, labels: &Value) -> bool {
    let matched = selector["matchLabels"]
        .as_object()
        .into_iter()
        .flatten()
        .all(|(k, v)| &labels[k] == v);
    let expressions = selector["matchExpressions"]
        .as_array()
        .into_iter()
        .flatten()
        .all(|e| {
            let value = &labels[e["key"].as_str().unwrap_or_default()];
            let values = e["values"].as_array().cloned().unwrap_or_default();
            match e["operator"].as_str() {
                Some("In") => values.contains(value),
                Some("NotIn") => !values.contains(value),
                Some("Exists") => !value.is_null(),
                Some("DoesNotExist") => value.is_null(),
                _ => false,
            }
        });
    matched && expressions
}

/// Every ServiceMonitor selects at least one metrics Service that exists with our values, and
/// names a port each selected Service has; ArgoCD, Traefik, cert-manager and Capstan are all
/// scraped. Capstan's Services come from the tree; the charts' from [`chart_services`].
pub(crate) fn check_service_monitors(s: &Settings) -> Vec<String> {
    let mut problems = Vec::new();
    let values = |chart: &str| match chart {
        "argocd" => &s.argocd,
        "cert-manager" => &s.cert_manager,
        _ => &s.traefik,
    };
    // (what, namespace, labels, port names)
    let mut services: Vec<(String, String, Value, Vec<String>)> = Vec::new();
    for c in chart_services() {
        let (chart, path, default) = c.enabled;
        if at(values(chart), &path).as_bool().unwrap_or(default) {
            services.push((
                c.what.into(),
                c.namespace.into(),
                c.labels,
                vec![c.port.into()],
            ));
        }
    }
    for o in s.capstan.iter().filter(|o| kind(o) == "Service") {
        let ports = o["spec"]["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["name"].as_str().map(str::to_string))
            .collect();
        services.push((
            format!("capstan Service {}", name(o)),
            o["metadata"]["namespace"]
                .as_str()
                .unwrap_or_default()
                .into(),
            o["metadata"]["labels"].clone(),
            ports,
        ));
    }
    let mut scraped = Vec::new();
    for sm in s.monitoring.iter().filter(|o| kind(o) == "ServiceMonitor") {
        let spec = &sm["spec"];
        let namespaces: Vec<&str> = spec["namespaceSelector"]["matchNames"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let targets: Vec<_> = services
            .iter()
            .filter(|(_, ns, labels, _)| {
                namespaces.contains(&ns.as_str()) && selects(&spec["selector"], labels)
            })
            .collect();
        if targets.is_empty() {
            problems.push(format!(
                "ServiceMonitor {} selects no metrics Service",
                name(sm)
            ));
        }
        for ep in spec["endpoints"].as_array().into_iter().flatten() {
            let port = ep["port"].as_str().unwrap_or_default();
            for (what, _, _, ports) in &targets {
                if !ports.iter().any(|p| p == port) {
                    problems.push(format!(
                        "ServiceMonitor {} scrapes port {port:?}, which {what} does not have ({ports:?})",
                        name(sm)
                    ));
                }
            }
        }
        scraped.extend(targets.iter().map(|(what, ..)| what.clone()));
    }
    for wanted in [
        "argocd application-controller",
        "argocd server",
        "argocd repo-server",
        "traefik",
        "cert-manager controller",
        "capstan Service capstan",
    ] {
        if !scraped.iter().any(|w| w == wanted) {
            problems.push(format!("no ServiceMonitor scrapes {wanted}"));
        }
    }
    problems
}

/// Capstan serves /metrics only where CAPSTAN_METRICS_LISTEN says, when it is set: the Service
/// port its ServiceMonitor scrapes must lead there.
pub(crate) fn check_capstan_metrics_port(capstan: &[Value], monitoring: &[Value]) -> Vec<String> {
    let Some(dep) = capstan
        .iter()
        .find(|o| kind(o) == "Deployment" && name(o) == "capstan")
    else {
        return vec!["no capstan Deployment".into()];
    };
    let container = &dep["spec"]["template"]["spec"]["containers"][0];
    let env = |key: &str| {
        container["env"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|e| e["name"] == key)
            .and_then(|e| e["value"].as_str())
    };
    let listen = env("CAPSTAN_METRICS_LISTEN")
        .or(env("CAPSTAN_LISTEN"))
        .unwrap_or("0.0.0.0:8080");
    let metrics_port: u64 = listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(0);
    let container_port = |port_name: &str| {
        container["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"] == port_name)
            .and_then(|p| p["containerPort"].as_u64())
    };
    let Some(svc) = capstan
        .iter()
        .find(|o| kind(o) == "Service" && name(o) == "capstan")
    else {
        return vec!["no capstan Service".into()];
    };
    let mut problems = Vec::new();
    for sm in monitoring
        .iter()
        .filter(|o| kind(o) == "ServiceMonitor" && name(o) == "capstan")
    {
        for ep in sm["spec"]["endpoints"].as_array().into_iter().flatten() {
            let port = ep["port"].as_str().unwrap_or_default();
            let target = svc["spec"]["ports"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|p| p["name"] == port)
                .map(|p| &p["targetPort"]);
            let reached = match target {
                Some(Value::String(named)) => container_port(named),
                Some(Value::Number(n)) => n.as_u64(),
                _ => None,
            };
            if reached != Some(metrics_port) {
                problems.push(format!(
                    "ServiceMonitor capstan scrapes port {port:?} (container port {reached:?}), but /metrics is served on {metrics_port} ({listen})"
                ));
            }
        }
    }
    problems
}
