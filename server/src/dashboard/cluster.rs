//! `/cluster`: nodes (Ready, versions, CPU and memory, with usage from metrics.k8s.io when the
//! metrics API is installed), pods that are not Running and Ready, and ArgoCD apps that are out of
//! sync or not healthy. Listed on demand and cached briefly, so a page costs at most one round of
//! API calls every few seconds however often it is opened.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::ListParams;
use kube::{Api, Client, ResourceExt as _};
use maud::{Markup, html};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::argocd::{self, ArgoView};
use super::layout::{self, Tone, badge};
use super::overview::status_tone;
use super::{Dashboard, PageError};

#[derive(Debug, Default, Deserialize)]
pub struct Params {}

#[derive(Clone, Debug, Serialize)]
pub struct NodeInfo {
    pub name: String,
    pub ready: bool,
    pub roles: Vec<String>,
    pub kubelet: Option<String>,
    pub os: Option<String>,
    pub cpu: Option<String>,
    pub memory: Option<String>,
    /// From metrics.k8s.io.
    pub cpu_usage: Option<String>,
    pub memory_usage: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct PodProblem {
    pub namespace: String,
    pub name: String,
    pub phase: String,
    pub reason: Option<String>,
    pub ready: String,
    pub restarts: i32,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClusterState {
    pub nodes: Vec<NodeInfo>,
    /// `false` when metrics.k8s.io is not installed.
    pub metrics: bool,
    pub pods: Vec<PodProblem>,
    pub error: Option<String>,
}

pub struct ClusterView {
    client: Client,
    ttl: Duration,
    cache: Mutex<Option<(Instant, ClusterState)>>,
}

impl ClusterView {
    pub fn new(client: Client) -> Self {
        ClusterView {
            client,
            ttl: Duration::from_secs(10),
            cache: Mutex::new(None),
        }
    }

    pub async fn state(&self) -> ClusterState {
        if let Ok(c) = self.cache.lock()
            && let Some((at, s)) = c.as_ref()
            && at.elapsed() < self.ttl
        {
            return s.clone();
        }
        let s = self.read().await;
        if let Ok(mut c) = self.cache.lock() {
            *c = Some((Instant::now(), s.clone()));
        }
        s
    }

    async fn read(&self) -> ClusterState {
        let nodes = Api::<Node>::all(self.client.clone())
            .list(&ListParams::default())
            .await;
        let pods = Api::<Pod>::all(self.client.clone())
            .list(&ListParams::default())
            .await;
        let usage = self.node_usage().await;
        let mut errors = Vec::new();
        let mut out_nodes: Vec<NodeInfo> = match nodes {
            Ok(list) => list.items.iter().map(node_info).collect(),
            Err(e) => {
                errors.push(("nodes", ReadFailure::of(e)));
                Vec::new()
            }
        };
        if let Some(u) = &usage {
            for n in &mut out_nodes {
                if let Some((cpu, mem)) = u.get(&n.name) {
                    n.cpu_usage = Some(cpu.clone());
                    n.memory_usage = Some(mem.clone());
                }
            }
        }
        let pods = match pods {
            Ok(list) => list.items.iter().filter_map(pod_problem).collect(),
            Err(e) => {
                errors.push(("pods", ReadFailure::of(e)));
                Vec::new()
            }
        };
        ClusterState {
            nodes: out_nodes,
            metrics: usage.is_some(),
            pods,
            error: (!errors.is_empty()).then(|| explain(&errors)),
        }
    }

    /// CPU and memory per node from metrics.k8s.io; `None` when the API is absent or failing.
    async fn node_usage(&self) -> Option<BTreeMap<String, (String, String)>> {
        let req = axum::http::Request::get("/apis/metrics.k8s.io/v1beta1/nodes")
            .body(Vec::new())
            .ok()?;
        let v: Value = self.client.request(req).await.ok()?;
        let mut out = BTreeMap::new();
        for item in v.get("items")?.as_array()? {
            let name = item.pointer("/metadata/name")?.as_str()?.to_string();
            let s = |p: &str| {
                item.pointer(p)
                    .and_then(Value::as_str)
                    .unwrap_or("?")
                    .to_string()
            };
            out.insert(name, (s("/usage/cpu"), s("/usage/memory")));
        }
        Some(out)
    }
}

fn node_info(n: &Node) -> NodeInfo {
    let status = n.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .and_then(|c| c.iter().find(|c| c.type_ == "Ready"))
        .is_some_and(|c| c.status == "True");
    let info = status.and_then(|s| s.node_info.as_ref());
    let cap = status.and_then(|s| s.capacity.as_ref());
    let roles = n
        .labels()
        .keys()
        .filter_map(|k| k.strip_prefix("node-role.kubernetes.io/"))
        .map(str::to_string)
        .collect();
    NodeInfo {
        name: n.name_any(),
        ready,
        roles,
        kubelet: info.map(|i| i.kubelet_version.clone()),
        os: info.map(|i| i.os_image.clone()),
        cpu: cap.and_then(|c| c.get("cpu")).map(|q| q.0.clone()),
        memory: cap.and_then(|c| c.get("memory")).map(|q| q.0.clone()),
        cpu_usage: None,
        memory_usage: None,
    }
}

/// A pod worth a look: not finished and either not Running or not all containers ready.
fn pod_problem(p: &Pod) -> Option<PodProblem> {
    let status = p.status.as_ref()?;
    let phase = status.phase.clone().unwrap_or_else(|| "Unknown".into());
    if phase == "Succeeded" {
        return None;
    }
    let cs = status.container_statuses.clone().unwrap_or_default();
    let ready_n = cs.iter().filter(|c| c.ready).count();
    let all_ready = !cs.is_empty() && ready_n == cs.len();
    if phase == "Running" && all_ready {
        return None;
    }
    let waiting = cs
        .iter()
        .find_map(|c| c.state.as_ref()?.waiting.as_ref()?.reason.clone());
    Some(PodProblem {
        namespace: p.namespace().unwrap_or_default(),
        name: p.name_any(),
        phase,
        reason: waiting.or_else(|| status.reason.clone()),
        ready: format!("{ready_n}/{}", cs.len()),
        restarts: cs.iter().map(|c| c.restart_count).sum(),
    })
}

/// Why listing a resource failed, by what the operator has to do about it.
#[derive(Clone, Debug, PartialEq)]
enum ReadFailure {
    Forbidden,
    Unauthorized,
    Unreachable(String),
    Other { code: u16, message: String },
}

impl ReadFailure {
    fn of(e: kube::Error) -> Self {
        match e {
            kube::Error::Api(s) if s.code == 403 => ReadFailure::Forbidden,
            kube::Error::Api(s) if s.code == 401 => ReadFailure::Unauthorized,
            kube::Error::Api(s) => ReadFailure::Other {
                code: s.code,
                message: s.message.clone(),
            },
            other => ReadFailure::Unreachable(other.to_string()),
        }
    }
}

/// One sentence per kind of failure, each saying what to do; resources failing the same way
/// are named together ("nodes and pods").
fn explain(failures: &[(&str, ReadFailure)]) -> String {
    let mut groups: Vec<(&ReadFailure, Vec<&str>)> = Vec::new();
    for (what, f) in failures {
        match groups
            .iter_mut()
            .find(|(g, _)| std::mem::discriminant(*g) == std::mem::discriminant(f))
        {
            Some((_, names)) => names.push(what),
            None => groups.push((f, vec![what])),
        }
    }
    let sentences: Vec<String> = groups
        .into_iter()
        .map(|(f, names)| {
            let what = names.join(" and ");
            match f {
                ReadFailure::Forbidden => format!(
                    "Capstan may not list {what} (403 Forbidden): grant its service account get, list \
                     and watch on {what} cluster-wide, as the ClusterRole capstan-discovery in \
                     applications/system/capstan/rbac.yaml does."
                ),
                ReadFailure::Unauthorized => format!(
                    "The Kubernetes API refused Capstan's credentials when listing {what} (401 \
                     Unauthorized): renew the token of the kubeconfig Capstan uses, or check the \
                     service account token mounted in its pod."
                ),
                ReadFailure::Unreachable(detail) => format!(
                    "The Kubernetes API did not answer when listing {what} ({}): check that the \
                     API server named in the kubeconfig is reachable from Capstan.",
                    first_line(detail)
                ),
                ReadFailure::Other { code, message } => format!(
                    "Listing {what} failed with HTTP {code}: {}.",
                    first_line(message).trim_end_matches('.')
                ),
            }
        })
        .collect();
    sentences.join(" ")
}

/// The first line of an error, at most 200 characters: the page states the cause, not a dump.
fn first_line(s: &str) -> String {
    s.lines()
        .next()
        .unwrap_or_default()
        .chars()
        .take(200)
        .collect()
}

#[derive(Debug, Serialize)]
pub struct ClusterPage {
    pub kubernetes_unavailable: Option<String>,
    pub cluster: Option<ClusterState>,
    pub argocd: ArgoView,
}

pub async fn build(d: &Dashboard, _: &Params) -> Result<ClusterPage, PageError> {
    let argocd = argocd::view(d.argocd.as_deref()).await;
    let (kubernetes_unavailable, cluster) = match &d.cluster {
        Ok(v) => (None, Some(v.state().await)),
        Err(why) => (Some(why.clone()), None),
    };
    Ok(ClusterPage {
        kubernetes_unavailable,
        cluster,
        argocd,
    })
}

pub fn render(d: &Dashboard, p: &ClusterPage, user: Option<&str>) -> Markup {
    let body = html! {
        h1 { "Cluster" }
        @if let Some(why) = &p.kubernetes_unavailable {
            (layout::notice(&format!(
                "No Kubernetes access: {why}. Nodes and pods are shown when capstan runs in the cluster or finds a kubeconfig."
            )))
        }
        @if let Some(c) = &p.cluster {
            (cluster_html(c))
        }
        h2 { "ArgoCD applications needing attention" }
        @match &p.argocd {
            ArgoView::Apps { apps } => {
                @let rows: Vec<Markup> = apps
                    .iter()
                    .filter(|a| a.needs_attention())
                    .map(|a| html! {
                        td { (a.name) }
                        td { (badge(&a.sync, status_tone(&a.sync))) }
                        td { (badge(&a.health, status_tone(&a.health))) }
                        td { (a.message.as_deref().unwrap_or("")) }
                    })
                    .collect();
                (layout::table(
                    &["Application", "Sync", "Health", "Message"],
                    &rows,
                    "Every application is synced and healthy.",
                ))
            }
            other => {
                @if let Some(t) = other.status_text() { (layout::notice(&t)) }
            }
        }
    };
    layout::page(&d.config, "Cluster", "/cluster", user, body)
}

fn cluster_html(c: &ClusterState) -> Markup {
    let o = |s: &Option<String>| s.clone().unwrap_or_else(|| "—".into());
    let nodes: Vec<Markup> = c
        .nodes
        .iter()
        .map(|n| {
            html! {
                td { (n.name) }
                td {
                    @if n.ready { (badge("Ready", Tone::Good)) }
                    @else { (badge("NotReady", Tone::Bad)) }
                }
                td { (n.roles.join(", ")) }
                td { (o(&n.kubelet)) }
                td { (o(&n.os)) }
                td { (o(&n.cpu_usage)) " / " (o(&n.cpu)) }
                td { (o(&n.memory_usage)) " / " (o(&n.memory)) }
            }
        })
        .collect();
    let pods: Vec<Markup> = c
        .pods
        .iter()
        .map(|x| {
            html! {
                td { (x.namespace) }
                td { (x.name) }
                td { (badge(&x.phase, status_tone(&x.phase))) }
                td { (x.reason.as_deref().unwrap_or("—")) }
                td { (x.ready) }
                td { (x.restarts) }
            }
        })
        .collect();
    let ready = c.nodes.iter().filter(|n| n.ready).count();
    html! {
        @if let Some(e) = &c.error {
            (layout::notice(e))
        }
        h2 { "Nodes (" (ready) " of " (c.nodes.len()) " ready)" }
        @if !c.metrics {
            p.muted { "metrics.k8s.io is not available: usage is not shown." }
        }
        (layout::table(
            &["Node", "Status", "Roles", "Kubelet", "OS", "CPU used / capacity", "Memory used / capacity"],
            &nodes,
            "No nodes listed.",
        ))
        h2 { "Pods not running and ready (" (c.pods.len()) ")" }
        (layout::table(
            &["Namespace", "Pod", "Phase", "Reason", "Ready", "Restarts"],
            &pods,
            "Every pod is running and ready.",
        ))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn api(code: u16, message: &str) -> kube::Error {
        let status: kube::core::Status = serde_json::from_value(serde_json::json!({
            "status": "Failure", "code": code, "message": message, "reason": "x"
        }))
        .unwrap();
        kube::Error::Api(Box::new(status))
    }

    /// A page error is one sentence per cause with the fix, not the client's error dump.
    #[test]
    fn cluster_errors_say_what_to_do() {
        let both = explain(&[
            (
                "nodes",
                ReadFailure::of(api(403, "nodes is forbidden: User \"x\" cannot list")),
            ),
            ("pods", ReadFailure::of(api(403, "pods is forbidden"))),
        ]);
        assert!(
            both.starts_with("Capstan may not list nodes and pods (403 Forbidden)"),
            "{both}"
        );
        assert!(both.contains("rbac.yaml"), "{both}");
        assert_eq!(both.matches(". ").count() + 1, 1, "one sentence: {both}");

        let expired = explain(&[("nodes", ReadFailure::of(api(401, "Unauthorized")))]);
        assert!(expired.contains("renew the token"), "{expired}");

        let down = explain(&[(
            "pods",
            ReadFailure::of(kube::Error::Service(Box::new(std::io::Error::other(
                "connection refused\nmore detail",
            )))),
        )]);
        assert!(down.contains("did not answer when listing pods"), "{down}");
        assert!(
            down.contains("connection refused") && !down.contains("more detail"),
            "{down}"
        );

        let mixed = explain(&[
            ("nodes", ReadFailure::of(api(403, "no"))),
            ("pods", ReadFailure::of(api(500, "etcd timeout."))),
        ]);
        assert!(mixed.contains("may not list nodes (403"), "{mixed}");
        assert!(
            mixed.ends_with("Listing pods failed with HTTP 500: etcd timeout."),
            "{mixed}"
        );
    }
}
