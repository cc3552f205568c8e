//! The application registry and cluster page against a fake Kubernetes API server (real list and
//! watch paths, requests recorded): annotated Services and Ingresses are discovered, unannotated
//! ones are not, ConfigMap entries are merged, and a link whose health check fails is hidden and
//! shown as down.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::http::StatusCode;
use axum::routing::get;
use capstan_server::app::{self, AppState};
use capstan_server::dashboard::cluster::ClusterView;
use capstan_server::dashboard::probe::ProbePolicy;
use capstan_server::dashboard::registry::{Health, ProbeSettings, Registry};
use capstan_server::dashboard::{Dashboard, DashboardConfig, kube_client_for};
use capstan_tests::backend::Backend;
use capstan_tests::dashboard::{http, serve};
use capstan_tests::fake_kube_lists::FakeKube;
use capstan_worker::store::runs::SqlRunStore;
use serde_json::{Value, json};

fn service(ns: &str, name: &str, annotations: Value) -> Value {
    json!({"apiVersion":"v1","kind":"Service",
        "metadata":{"name":name,"namespace":ns,"resourceVersion":"1","annotations":annotations},
        "spec":{"ports":[{"port":80}]}})
}

/// Health targets: `/ok` answers 200, `/broken` 503.
async fn targets() -> String {
    let app = Router::new().route("/ok", get(|| async { "ok" })).route(
        "/broken",
        get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down") }),
    );
    // Dropping the token does not stop the server: it lives for the test process.
    let (addr, _) = serve(app).await;
    format!("http://{addr}")
}

/// Probes may reach exactly the target server (it is on loopback, which the default refuses).
fn probe_settings(t: &str, timeout: Duration, ttl: Duration) -> ProbeSettings {
    ProbeSettings {
        timeout,
        ttl,
        policy: ProbePolicy {
            exempt: vec![t.trim_start_matches("http://").parse().unwrap()],
            ..ProbePolicy::default()
        },
    }
}

fn fake_cluster(t: &str) -> Arc<FakeKube> {
    let k = FakeKube::new();
    k.set(
        "/api/v1/services",
        "ServiceList",
        vec![
            service(
                "shop",
                "web",
                json!({"capstan.io/dashboard":"true","capstan.io/name":"Shop web","capstan.io/group":"workloads",
                       "capstan.io/description":"The storefront","capstan.io/url":format!("{t}/ok")}),
            ),
            service(
                "shop",
                "flaky",
                json!({"capstan.io/dashboard":"true","capstan.io/name":"Flaky admin","capstan.io/url":format!("{t}/broken")}),
            ),
            service("shop", "internal-db", json!({"prometheus.io/scrape":"true"})),
            service(
                "elsewhere",
                "outside",
                json!({"capstan.io/dashboard":"true","capstan.io/name":"Outside scope","capstan.io/url":format!("{t}/ok")}),
            ),
        ],
    );
    let host = t.trim_start_matches("http://");
    k.set(
        "/apis/networking.k8s.io/v1/ingresses",
        "IngressList",
        vec![
            json!({"apiVersion":"networking.k8s.io/v1","kind":"Ingress",
                "metadata":{"name":"grafana","namespace":"monitoring","resourceVersion":"1",
                    "annotations":{"capstan.dev/dashboard":"true","capstan.dev/name":"Grafana","capstan.dev/health":"/ok"}},
                "spec":{"rules":[{"host":host,"http":{"paths":[{"path":"/grafana","pathType":"Prefix",
                    "backend":{"service":{"name":"grafana","port":{"number":80}}}}]}}]}}),
            json!({"apiVersion":"networking.k8s.io/v1","kind":"Ingress",
                "metadata":{"name":"plain","namespace":"monitoring","resourceVersion":"1"},
                "spec":{"rules":[{"host":"plain.example.com"}]}}),
        ],
    );
    k.set(
        "/api/v1/namespaces/capstan/configmaps",
        "ConfigMapList",
        vec![
            json!({"apiVersion":"v1","kind":"ConfigMap",
                "metadata":{"name":"dashboard-registry","namespace":"capstan","resourceVersion":"1",
                    "labels":{"capstan.dev/registry":"true"}},
                "data":{"services.yaml":format!(
                    "services:\n  - name: ArgoCD\n    description: GitOps controller\n    url: {t}/ok\n    category: platform\n  - name: Prometheus\n    url: {t}/broken\n    category: platform\n")}}),
            json!({"apiVersion":"v1","kind":"ConfigMap",
                "metadata":{"name":"unrelated","namespace":"capstan","resourceVersion":"1"},
                "data":{"services.yaml":format!("services:\n  - name: Not a registry\n    url: {t}/ok\n")}}),
        ],
    );
    k.set(
        "/api/v1/nodes",
        "NodeList",
        vec![json!({"apiVersion":"v1","kind":"Node",
            "metadata":{"name":"k3s-1","resourceVersion":"1","labels":{"node-role.kubernetes.io/control-plane":"true"}},
            "status":{"conditions":[{"type":"Ready","status":"True"}],
                "capacity":{"cpu":"4","memory":"16Gi"},
                "nodeInfo":{"kubeletVersion":"v1.34.1+k3s1","osImage":"Debian GNU/Linux 12","architecture":"amd64",
                    "bootID":"","containerRuntimeVersion":"","kernelVersion":"","kubeProxyVersion":"","machineID":"",
                    "operatingSystem":"linux","systemUUID":""}}})],
    );
    k.set(
        "/api/v1/pods",
        "PodList",
        vec![
            json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-1","namespace":"shop","resourceVersion":"1"},
                "status":{"phase":"Running","containerStatuses":[{"name":"web","ready":true,"restartCount":0,"image":"x","imageID":""}]}}),
            json!({"apiVersion":"v1","kind":"Pod","metadata":{"name":"web-2","namespace":"shop","resourceVersion":"1"},
                "status":{"phase":"Pending","containerStatuses":[{"name":"web","ready":false,"restartCount":3,"image":"x","imageID":"",
                    "state":{"waiting":{"reason":"CrashLoopBackOff"}}}]}}),
        ],
    );
    k.set(
        "/apis/metrics.k8s.io/v1beta1/nodes",
        "NodeMetricsList",
        vec![json!({"metadata":{"name":"k3s-1"},"usage":{"cpu":"250m","memory":"3Gi"}})],
    );
    k
}

fn config(t: &str) -> DashboardConfig {
    DashboardConfig::parse(
        &format!(
            "namespace: capstan\ncustomizations:\n  links:\n    - name: Docs\n      url: {t}/ok\n    - name: Old wiki\n      url: {t}/broken\n\
             serviceDiscovery:\n  enabled: true\n  namespaces: [shop, monitoring]\n  probeHosts: [\"127.0.0.1\"]\n"
        ),
        "test",
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registry_discovers_annotated_objects_merges_configmaps_and_hides_failing_links() {
    let t = targets().await;
    let k = fake_cluster(&t);
    let (kaddr, _kstop) = serve(k.router()).await;
    let client = kube_client_for(&format!("http://{kaddr}")).unwrap();
    let cfg = config(&t);
    let reg = Arc::new(Registry::new(
        Some(client.clone()),
        &cfg,
        probe_settings(&t, Duration::from_secs(5), Duration::from_secs(600)),
    ));
    assert!(reg.ready(Duration::from_secs(20)).await, "watchers listed");
    // Before any probe passed nothing is linked.
    assert!(
        reg.view()
            .entries
            .iter()
            .all(|e| e.health == Health::Unchecked)
    );
    reg.refresh_health().await;
    let view = reg.view();
    let by_name = |n: &str| view.entries.iter().find(|e| e.entry.name == n);
    let names: Vec<&str> = view.entries.iter().map(|e| e.entry.name.as_str()).collect();
    for want in [
        "Shop web",
        "Flaky admin",
        "Grafana",
        "ArgoCD",
        "Prometheus",
        "Docs",
        "Old wiki",
    ] {
        assert!(names.contains(&want), "{want} missing from {names:?}");
    }
    for unwanted in ["internal-db", "plain", "Outside scope", "Not a registry"] {
        assert!(
            !names.contains(&unwanted),
            "{unwanted} must not be listed: {names:?}"
        );
    }
    let web = by_name("Shop web").unwrap();
    assert_eq!(web.entry.group, "workloads");
    assert_eq!(web.entry.source, "service");
    assert!(matches!(web.health, Health::Up { status: 200 }));
    let grafana = by_name("Grafana").unwrap();
    assert_eq!(grafana.entry.url, format!("{t}/grafana"));
    assert_eq!(grafana.entry.health_url, format!("{t}/ok"));
    assert!(matches!(grafana.health, Health::Up { .. }));
    assert_eq!(by_name("ArgoCD").unwrap().entry.source, "configmap");
    assert_eq!(by_name("ArgoCD").unwrap().entry.group, "platform");
    for down in ["Flaky admin", "Prometheus", "Old wiki"] {
        assert!(
            matches!(&by_name(down).unwrap().health, Health::Down { reason } if reason.contains("503")),
            "{down}"
        );
    }

    // The requests: list then watch on the real collection paths; ConfigMaps by label.
    let seen = k.seen();
    for path in [
        "/api/v1/services",
        "/apis/networking.k8s.io/v1/ingresses",
        "/api/v1/namespaces/capstan/configmaps",
    ] {
        assert!(
            seen.iter()
                .any(|s| s.path == path && !s.query.contains_key("watch")),
            "list {path}"
        );
        assert!(
            seen.iter().any(|s| s.path == path
                && s.query
                    .get("watch")
                    .is_some_and(|w| w == "true" || w == "1")),
            "watch {path}"
        );
    }
    assert!(
        seen.iter()
            .filter(|s| s.path.ends_with("/configmaps"))
            .all(|s| s.query.get("labelSelector").map(String::as_str)
                == Some("capstan.dev/registry=true"))
    );
    assert!(
        seen.iter().all(|s| s.method == "GET"),
        "the dashboard only reads"
    );

    // The page: healthy entries are links, failing ones are listed as down without a link.
    let b = Backend::sqlite().await;
    let d = Dashboard::new(Arc::new(SqlRunStore::new(b.queue.db())), b.queue.clone())
        .with_config(cfg)
        .with_registry(reg)
        .with_cluster(Arc::new(ClusterView::new(client)));
    let st = AppState::new(b.queue.clone(), vec!["s".into()]).with_dashboard(Arc::new(d));
    let (addr, stop) = serve(app::router(Arc::new(st), true)).await;
    let c = http();
    let html = c
        .get(format!("http://{addr}/services"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        html.contains(&format!("<a href=\"{t}/ok\"><strong>Shop web</strong></a>")),
        "{html}"
    );
    assert!(
        !html.contains(&format!("href=\"{t}/broken\"")),
        "a failing link is hidden"
    );
    assert!(html.contains("Flaky admin") && html.contains("down: HTTP 503"));

    let cluster: Value = c
        .get(format!("http://{addr}/api/cluster"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let node = &cluster["cluster"]["nodes"][0];
    assert_eq!(node["ready"], true);
    assert_eq!(node["kubelet"], "v1.34.1+k3s1");
    assert_eq!(node["cpu_usage"], "250m");
    let pods = cluster["cluster"]["pods"].as_array().unwrap();
    assert_eq!(pods.len(), 1);
    assert_eq!(pods[0]["name"], "web-2");
    assert_eq!(pods[0]["reason"], "CrashLoopBackOff");
    let html = c
        .get(format!("http://{addr}/cluster"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(html.contains("1 of 1 ready") && html.contains("CrashLoopBackOff"));
    assert!(html.contains("ArgoCD not configured"));
    stop.cancel();
    b.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_api_server_is_reported_and_static_links_still_work() {
    let t = targets().await;
    // A port nobody listens on.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", dead.local_addr().unwrap());
    drop(dead);
    let client = kube_client_for(&url).unwrap();
    let defaults = ProbeSettings::default();
    let reg = Registry::new(
        Some(client),
        &config(&t),
        probe_settings(&t, defaults.timeout, defaults.ttl),
    );
    assert!(!reg.ready(Duration::from_millis(1500)).await);
    reg.refresh_health().await;
    let view = reg.view();
    assert!(
        view.kubernetes_error.is_some(),
        "the watcher errors are surfaced"
    );
    assert!(
        view.entries
            .iter()
            .any(|e| e.entry.name == "Docs" && matches!(e.health, Health::Up { .. }))
    );
}
