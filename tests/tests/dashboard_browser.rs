//! The dashboard in a real headless Chromium (system `chromium` + `chromium-driver`, installed by
//! `.ci/run`): every page opens without console errors, overview → run → app section works by
//! clicking, the promotions filter works through its form, the page is keyboard reachable, and a
//! screenshot of each page is saved under `<target>/dashboard-screenshots/`.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::routing::get;
use capstan_server::app::{self, AppState};
use capstan_server::dashboard::cluster::ClusterView;
use capstan_server::dashboard::registry::{ProbeSettings, Registry};
use capstan_server::dashboard::{Dashboard, DashboardConfig, kube_client_for};
use capstan_tests::backend::Backend;
use capstan_tests::dashboard::{MemoryPromotions, app, gitops_repo, promotion, report, serve};
use capstan_tests::fake_kube_lists::FakeKube;
use capstan_tests::webdriver::Browser;
use capstan_worker::queue::{DeliveryOutcome, NewDelivery};
use capstan_worker::store::runs::SqlRunStore;
use capstan_worker::store::{NewRun, PromotionStatus, RunOutcome, RunStatus, RunStore};
use serde_json::json;

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

fn screenshot_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| capstan_tests::repo_root().join("target"));
    target.join("dashboard-screenshots")
}

async fn seeded_dashboard(b: &Backend, repo: &std::path::Path) -> Dashboard {
    let runs = Arc::new(SqlRunStore::new(b.queue.db()));
    let mut big = 0;
    for (pr, status) in [
        (12, RunStatus::Success),
        (13, RunStatus::Failure),
        (14, RunStatus::Superseded),
        (15, RunStatus::Success),
    ] {
        let at = runs
            .create_run(&NewRun {
                repo: "acme/gitops".into(),
                pr,
                head_sha: format!("{pr:0>40}"),
                trigger: "pull_request.synchronize".into(),
                job_id: None,
            })
            .await
            .unwrap();
        let id = at.run;
        let url = format!("http://localhost/runs/{id}");
        let apps = if pr == 15 {
            big = id;
            vec![
                app("checkout", "staging", 40),
                app("search", "production", 25),
                app("billing", "staging", 30),
            ]
        } else {
            vec![app("web", "staging", 3)]
        };
        runs.finish_run(
            at,
            &RunOutcome {
                status,
                error: None,
                report: (status != RunStatus::Superseded)
                    .then(|| report("acme/gitops", pr, &url, apps)),
                comment_ids: vec![],
            },
        )
        .await
        .unwrap();
    }
    assert!(big > 0);
    for (i, outcome) in [DeliveryOutcome::Accepted, DeliveryOutcome::Ignored]
        .into_iter()
        .enumerate()
    {
        b.queue
            .record_delivery(
                &NewDelivery {
                    delivery_id: format!("72d3162e-cc78-11e3-81ab-4c9367dc095{i}"),
                    event: "pull_request".into(),
                    action: Some("synchronize".into()),
                    repo: Some("acme/gitops".into()),
                    outcome,
                    detail: None,
                },
                &[],
            )
            .await
            .unwrap();
    }
    let promotions = Arc::new(MemoryPromotions::default());
    promotions.add(promotion(
        1,
        "shop",
        "production",
        PromotionStatus::Committed,
    ));
    promotions.add(promotion(2, "shop", "production", PromotionStatus::Opened));
    promotions.add(promotion(
        3,
        "billing",
        "production",
        PromotionStatus::Failed,
    ));

    // A fake cluster and health targets for the registry and cluster pages.
    let targets = Router::new().route("/ok", get(|| async { "ok" })).route(
        "/down",
        get(|| async { (axum::http::StatusCode::BAD_GATEWAY, "no") }),
    );
    let (t, _) = serve(targets).await;
    let t = format!("http://{t}");
    let k = FakeKube::new();
    k.set("/api/v1/services", "ServiceList", vec![json!({"apiVersion":"v1","kind":"Service",
        "metadata":{"name":"shop","namespace":"shop","resourceVersion":"1","annotations":{
            "capstan.io/dashboard":"true","capstan.io/name":"Shop","capstan.io/description":"Storefront",
            "capstan.io/group":"workloads","capstan.io/url":format!("{t}/ok")}}})]);
    k.set(
        "/apis/networking.k8s.io/v1/ingresses",
        "IngressList",
        vec![],
    );
    k.set("/api/v1/namespaces/capstan/configmaps", "ConfigMapList", vec![json!({"apiVersion":"v1","kind":"ConfigMap",
        "metadata":{"name":"dashboard-registry","namespace":"capstan","resourceVersion":"1","labels":{"capstan.dev/registry":"true"}},
        "data":{"services.yaml":format!("services:\n  - name: ArgoCD\n    url: {t}/ok\n    category: platform\n  - name: Prometheus\n    url: {t}/down\n    category: platform\n")}})]);
    k.set("/api/v1/nodes", "NodeList", vec![json!({"apiVersion":"v1","kind":"Node","metadata":{"name":"k3s-1","resourceVersion":"1"},
        "status":{"conditions":[{"type":"Ready","status":"True"}],"capacity":{"cpu":"4","memory":"16Gi"}}})]);
    k.set("/api/v1/pods", "PodList", vec![]);
    let (kaddr, _) = serve(k.router()).await;
    let client = kube_client_for(&format!("http://{kaddr}")).unwrap();
    let cfg = DashboardConfig::parse(
        &format!("customizations:\n  theme:\n    title: Homelab platform\n    primaryColor: \"#2f6fdf\"\n  links:\n    - name: ArgoCD\n      url: {t}/ok\n    - name: Grafana\n      url: {t}/ok\n\
                  serviceDiscovery:\n  namespaces: [shop]\n  probeHosts: [\"127.0.0.1\"]\n"),
        "test",
    )
    .unwrap();
    // The targets are on loopback, which probes refuse unless the policy names the address.
    let probe = ProbeSettings {
        policy: capstan_server::dashboard::probe::ProbePolicy {
            exempt: vec![t.trim_start_matches("http://").parse().unwrap()],
            ..Default::default()
        },
        ..ProbeSettings::default()
    };
    let reg = Arc::new(Registry::new(Some(client.clone()), &cfg, probe));
    assert!(reg.ready(Duration::from_secs(20)).await);
    reg.refresh_health().await;

    Dashboard::new(runs, b.queue.clone())
        .with_config(cfg)
        .with_promotions(promotions)
        .with_repo(repo.to_path_buf())
        .with_registry(reg)
        .with_cluster(Arc::new(ClusterView::new(client)))
}

/// The browser tests' world: Chromium present, a store and a GitOps checkout, a seeded dashboard.
async fn browser_world() -> (Backend, Dashboard, tempfile::TempDir) {
    assert!(
        std::path::Path::new(CHROMEDRIVER).exists(),
        "{CHROMEDRIVER} is missing: install the Debian packages chromium and chromium-driver (.ci/run does)"
    );
    let backend = Backend::sqlite().await;
    let repo = tempfile::tempdir().unwrap();
    gitops_repo(repo.path());
    let d = seeded_dashboard(&backend, repo.path()).await;
    (backend, d, repo)
}

async fn assert_clean(b: &Browser, page: &str) {
    let errors = b.page_errors().await;
    assert!(errors.is_empty(), "{page}: console errors {errors:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_work_in_headless_chromium() {
    let (backend, d, _repo) = browser_world().await;
    let st = AppState::new(backend.queue.clone(), vec!["s".into()]).with_dashboard(Arc::new(d));
    let (addr, stop) = serve(app::router(Arc::new(st), true)).await;
    let base = format!("http://{addr}");
    let shots = screenshot_dir();
    let b = Browser::start(CHROMEDRIVER, CHROMIUM).await;

    // Overview, then the keyboard: the first Tab reaches the skip link.
    b.goto(&format!("{base}/")).await;
    assert!(b.title().await.contains("Overview"));
    assert_clean(&b, "/").await;
    b.screenshot(&shots.join("overview.png")).await;
    b.press("\u{E004}").await;
    let focused = b.script("return document.activeElement.textContent;").await;
    assert_eq!(focused, "Skip to content");
    let converted = b
        .script("var t=document.querySelector('time[datetime]');return t && t.title.endsWith('UTC') && !t.textContent.endsWith('UTC');")
        .await;
    assert_eq!(converted, true, "times are shown in the viewer's zone");

    // Overview → the newest run (PR 15) → an app section.
    let link = b
        .find_by("xpath", "//a[starts-with(@href,'/runs/')][1]")
        .await;
    b.click(&link).await;
    let run_url = b.wait_for_url("/runs/").await;
    assert!(run_url.contains("/runs/"), "{run_url}");
    assert_clean(&b, "run").await;
    b.screenshot(&shots.join("run.png")).await;
    let app_link = b.find("a[href='#app-search']").await;
    b.click(&app_link).await;
    assert!(b.url().await.ends_with("#app-search"));
    let target = b
        .script("var t=document.querySelector(':target');return t ? t.id : null;")
        .await;
    assert_eq!(target, "app-search");
    let shown = b
        .script("return document.getElementById('app-search').innerText.includes('new-search-line-24');")
        .await;
    assert_eq!(shown, true, "the section shows the full diff");
    b.screenshot(&shots.join("run-app-section.png")).await;

    // Environments.
    b.goto(&format!("{base}/apps")).await;
    assert_clean(&b, "/apps").await;
    let text = b.script("return document.body.innerText;").await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("ghcr.io/acme/shop:2.1.0") && text.contains("promotion pending"),
        "{text}"
    );
    b.screenshot(&shots.join("apps.png")).await;

    // Promotions: filter through the form.
    b.goto(&format!("{base}/promotions")).await;
    assert_clean(&b, "/promotions").await;
    b.screenshot(&shots.join("promotions.png")).await;
    let app_field = b.find("#f-app").await;
    b.type_into(&app_field, "shop").await;
    let opened = b
        .find_by("xpath", "//select[@id='f-status']/option[text()='opened']")
        .await;
    b.click(&opened).await;
    let submit = b.find("form.filters button[type=submit]").await;
    b.click(&submit).await;
    let url = b.wait_for_url("status=").await;
    assert!(
        url.contains("app=shop") && url.contains("status=opened"),
        "{url}"
    );
    let rows = b
        .script("return document.querySelectorAll('main tbody tr').length;")
        .await;
    assert_eq!(rows, 1);
    assert_clean(&b, "/promotions filtered").await;
    b.screenshot(&shots.join("promotions-filtered.png")).await;

    // Registry and cluster.
    b.goto(&format!("{base}/services")).await;
    assert_clean(&b, "/services").await;
    let links = b
        .script("return Array.from(document.querySelectorAll('ul.links a')).map(a=>a.textContent);")
        .await;
    let links: Vec<&str> = links
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        links.contains(&"Shop") && !links.contains(&"Prometheus"),
        "{links:?}"
    );
    b.screenshot(&shots.join("services.png")).await;
    b.goto(&format!("{base}/cluster")).await;
    assert_clean(&b, "/cluster").await;
    b.screenshot(&shots.join("cluster.png")).await;

    // A phone-sized window: the page itself does not scroll sideways (wide tables scroll in
    // their own box).
    b.goto(&format!("{base}/runs/4")).await;
    b.resize(390, 844).await;
    let overflow = b
        .script("return document.documentElement.scrollWidth <= window.innerWidth;")
        .await;
    assert_eq!(overflow, true, "no sideways page scroll on a narrow screen");
    b.screenshot_at(&shots.join("run-narrow.png"), 390).await;
    b.quit().await;
    for f in [
        "overview",
        "run",
        "run-narrow",
        "run-app-section",
        "apps",
        "promotions",
        "promotions-filtered",
        "services",
        "cluster",
    ] {
        let p = shots.join(format!("{f}.png"));
        let bytes = std::fs::read(&p).unwrap();
        assert!(bytes.starts_with(b"\x89PNG"), "{} is a PNG", p.display());
    }
    println!("screenshots in {}", shots.display());
    stop.cancel();
    backend.cleanup().await;
}

// ------------------------------------------------------------------------------------------
// Behind a prefix-stripping proxy, as Traefik serves https://<domain>/dashboard/

const PREFIX: &str = "/dashboard";

/// What the proxy saw that it had no route for: a link, form or redirect that left the prefix.
type Escaped = Arc<std::sync::Mutex<Vec<String>>>;

/// Traefik's stripPrefix on loopback: `/dashboard` and `/dashboard/…` go to `upstream` without
/// the prefix and with `X-Forwarded-Prefix: /dashboard`; answers come back untouched (no
/// redirect is followed); anything else is a 404 and recorded.
fn strip_prefix_proxy(upstream: String, escaped: Escaped) -> Router {
    let client = capstan_tests::dashboard::http();
    Router::new().fallback(move |req: axum::extract::Request| {
        let (client, upstream, escaped) = (client.clone(), upstream.clone(), escaped.clone());
        async move {
            let path_q = req
                .uri()
                .path_and_query()
                .map(|p| p.as_str().to_string())
                .unwrap_or_else(|| "/".into());
            let stripped = match path_q.strip_prefix(PREFIX) {
                Some(rest) if rest.is_empty() || rest.starts_with('?') => format!("/{rest}"),
                Some(rest) if rest.starts_with('/') => rest.to_string(),
                // Chromium asks for /favicon.ico by itself on pages without an icon link (the
                // JSON view): not a link the dashboard wrote.
                _ if path_q == "/favicon.ico" => {
                    return axum::http::Response::builder()
                        .status(404)
                        .body(axum::body::Body::empty())
                        .unwrap();
                }
                _ => {
                    escaped.lock().unwrap().push(path_q.clone());
                    return axum::http::Response::builder()
                        .status(404)
                        .body(axum::body::Body::from("no route (outside /dashboard)"))
                        .unwrap();
                }
            };
            let (parts, body) = req.into_parts();
            let body = axum::body::to_bytes(body, 1 << 20).await.unwrap();
            let mut out = client.request(parts.method, format!("{upstream}{stripped}"));
            for (k, v) in &parts.headers {
                if k != axum::http::header::HOST {
                    out = out.header(k, v);
                }
            }
            let resp = out
                .header("X-Forwarded-Prefix", PREFIX)
                .body(body)
                .send()
                .await
                .unwrap();
            let mut back = axum::http::Response::builder().status(resp.status());
            for (k, v) in resp.headers() {
                if k != axum::http::header::TRANSFER_ENCODING
                    && k != axum::http::header::CONTENT_LENGTH
                {
                    back = back.header(k, v);
                }
            }
            back.body(axum::body::Body::from(resp.bytes().await.unwrap()))
                .unwrap()
        }
    })
}

/// Every root-relative link, form target and image on the page.
async fn local_urls(b: &Browser) -> Vec<String> {
    let v = b
        .script(
            "return Array.from(document.querySelectorAll('[href],[src],[action],[formaction]'))\
             .flatMap(e=>['href','src','action','formaction'].map(a=>e.getAttribute(a)))\
             .filter(u=>u && u.startsWith('/'));",
        )
        .await;
    v.as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_string())
        .collect()
}

async fn assert_under_prefix(b: &Browser, page: &str) {
    assert_clean(b, page).await;
    let url = b.url().await;
    assert!(
        url.contains(&format!("{PREFIX}/")) || url.ends_with(PREFIX),
        "{page}: at {url}"
    );
    for u in local_urls(b).await {
        assert!(
            u.starts_with(&format!("{PREFIX}/")),
            "{page}: {u} leaves {PREFIX}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_works_behind_a_prefix_stripping_proxy() {
    let (backend, d, _repo) = browser_world().await;
    // As in the cluster: a token, entered once at the sign-in form.
    let d = d.with_auth(capstan_server::dashboard::Auth::token(vec![
        "prefix-test-token".into(),
    ]));
    let st = AppState::new(backend.queue.clone(), vec!["s".into()]).with_dashboard(Arc::new(d));
    let (addr, stop) = serve(app::router(Arc::new(st), true)).await;
    let escaped: Escaped = Arc::default();
    let (proxy, stop_proxy) = serve(strip_prefix_proxy(
        format!("http://{addr}"),
        escaped.clone(),
    ))
    .await;
    let base = format!("http://{proxy}{PREFIX}");
    let shots = screenshot_dir();
    let b = Browser::start(CHROMEDRIVER, CHROMIUM).await;

    // Not signed in: the refusal page links to the sign-in form under the prefix.
    b.goto(&format!("{base}/")).await;
    let sign_in = b
        .find_by("xpath", "//a[text()='Sign in with a token']")
        .await;
    b.click(&sign_in).await;
    let login = b.wait_for_url("/login").await;
    assert_eq!(login, format!("{base}/login"));
    let token = b.find("#token").await;
    b.type_into(&token, "prefix-test-token").await;
    let submit = b.find("button[type=submit]").await;
    b.click(&submit).await;
    for _ in 0..200 {
        if !b.url().await.ends_with("/login") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The redirect after sign-in lands on the overview under the prefix, and the cookie works
    // there.
    assert_eq!(b.url().await, format!("{base}/"));
    assert!(b.title().await.contains("Overview"));
    assert_under_prefix(&b, "overview").await;
    b.screenshot(&shots.join("prefix-overview.png")).await;

    // Every navigation entry, by clicking.
    for (label, path) in [
        ("Environments", "/apps"),
        ("Promotions", "/promotions"),
        ("Fidelity", "/fidelity"),
        ("Services", "/services"),
        ("Cluster", "/cluster"),
        ("Overview", "/"),
    ] {
        let link = b
            .find_by("xpath", &format!("//nav//a[text()='{label}']"))
            .await;
        b.click(&link).await;
        let url = b.wait_for_url(&format!("{PREFIX}{path}")).await;
        assert!(url.ends_with(&format!("{PREFIX}{path}")), "{label}: {url}");
        assert_under_prefix(&b, label).await;
    }

    // Overview → a run → an app section; then all runs.
    let run = b
        .find_by(
            "xpath",
            &format!("//a[starts-with(@href,'{PREFIX}/runs/')][1]"),
        )
        .await;
    b.click(&run).await;
    let run_url = b.wait_for_url(&format!("{PREFIX}/runs/")).await;
    assert!(run_url.contains(&format!("{PREFIX}/runs/")), "{run_url}");
    assert_under_prefix(&b, "run").await;
    b.screenshot(&shots.join("prefix-run.png")).await;

    // The promotions filter form submits under the prefix.
    b.goto(&format!("{base}/promotions")).await;
    let app_field = b.find("#f-app").await;
    b.type_into(&app_field, "shop").await;
    let submit = b.find("form.filters button[type=submit]").await;
    b.click(&submit).await;
    let url = b.wait_for_url("app=shop").await;
    assert!(url.starts_with(&format!("{base}/promotions?")), "{url}");
    assert_under_prefix(&b, "promotions filtered").await;

    // The JSON link, with the session cookie scoped to the prefix.
    let json_link = b.find_by("xpath", "//nav//a[text()='JSON']").await;
    b.click(&json_link).await;
    let url = b.wait_for_url("/api/overview").await;
    assert_eq!(url, format!("{base}/api/overview"));
    let body = b.script("return document.body.innerText;").await;
    let parsed: serde_json::Value = serde_json::from_str(body.as_str().unwrap()).unwrap();
    assert!(parsed.get("error").is_none(), "{parsed}");

    b.quit().await;
    let escaped = escaped.lock().unwrap().clone();
    assert!(escaped.is_empty(), "requests outside {PREFIX}: {escaped:?}");
    stop_proxy.cancel();
    stop.cancel();
    backend.cleanup().await;
}
