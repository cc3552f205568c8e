//! Issue 13's adversarial suite, dashboard surface (findings 8, 9 and 12): health probes aimed by
//! cluster users at the node, the metadata service or elsewhere; forged, replayed and guessed
//! credentials; identity headers from whoever is not the proxy; `/metrics` through the Ingress.
//! Auth cases run over real TCP (peer addresses matter) on both backends; probe cases run against
//! the fake Kubernetes list/watch API with counting target servers.
#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use capstan_server::app::{self, AppState};
use capstan_server::config::{Config, ConfigArgs};
use capstan_server::dashboard::auth::{Auth, COOKIE, Throttle, session_value};
use capstan_server::dashboard::probe::ProbePolicy;
use capstan_server::dashboard::registry::{EntryView, Health, ProbeSettings, Registry};
use capstan_server::dashboard::{Dashboard, DashboardConfig, kube_client_for};
use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_tests::dashboard::{http, serve};
use capstan_tests::fake_kube_lists::FakeKube;
use capstan_worker::store::runs::SqlRunStore;
use serde_json::{Value, json};

both_backends!(
    a_token_in_the_query_string_is_not_a_credential,
    the_raw_token_in_a_cookie_is_refused,
    forged_session_cookies_are_refused,
    an_expired_session_is_refused,
    login_is_throttled_per_client_with_retry_after,
    bearer_guessing_is_throttled_globally_but_sessions_still_work,
    the_session_cookie_is_secure_over_https_only_when_a_trusted_proxy_says_so,
    identity_headers_from_a_non_proxy_peer_are_refused,
    a_proxy_secret_is_required_when_configured,
    duplicated_or_hostile_identity_headers_are_refused,
    metrics_on_their_own_listener_are_not_on_the_main_one,
);

// ---------------------------------------------------------------------------------------------
// Dashboard auth

async fn server(b: &Backend, auth: Auth) -> (String, tokio_util::sync::CancellationToken) {
    let d =
        Dashboard::new(Arc::new(SqlRunStore::new(b.queue.db())), b.queue.clone()).with_auth(auth);
    let st = AppState::new(b.queue.clone(), vec!["s".into()]).with_dashboard(Arc::new(d));
    let (addr, stop) = serve(app::router(Arc::new(st), true)).await;
    (format!("http://{addr}"), stop)
}

/// A dashboard behind `proxy-header` with these exact proxy addresses and secret.
async fn proxied(
    b: &Backend,
    proxies: &[&str],
    secret: Option<&str>,
) -> (String, tokio_util::sync::CancellationToken) {
    let proxies = proxies.iter().map(|p| p.parse().unwrap()).collect();
    server(b, Auth::proxy_header(proxies, secret.map(str::to_string))).await
}

const TOKEN: &str = "dashboard-token-0123456789";

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

async fn status(req: reqwest::RequestBuilder) -> u16 {
    req.send().await.unwrap().status().as_u16()
}

/// The status of GET `path` with the cookie `pair` (`name=value`).
async fn with_cookie(base: &str, path: &str, pair: &str) -> u16 {
    status(http().get(format!("{base}{path}")).header("cookie", pair)).await
}

/// Signs in with `token` and returns the `name=value` cookie pair and the whole header.
async fn login(base: &str, token: &str) -> (reqwest::StatusCode, Option<String>) {
    let r = http()
        .post(format!("{base}/login"))
        .form(&[("token", token)])
        .send()
        .await
        .unwrap();
    let cookie = r
        .headers()
        .get(header::SET_COOKIE)
        .map(|v| v.to_str().unwrap().to_string());
    (r.status(), cookie)
}

async fn a_token_in_the_query_string_is_not_a_credential(b: &Backend) {
    let (base, stop) = server(b, Auth::token(vec![TOKEN.into()])).await;
    let c = http();
    for q in ["token", "access_token", "auth", "bearer"] {
        assert_eq!(
            status(c.get(format!("{base}/api/overview?{q}={TOKEN}"))).await,
            401,
            "?{q}= must not admit (query strings end up in logs and Referer)"
        );
    }
    // The header still works: the refusal is about where the token is, not the token.
    assert_eq!(
        status(c.get(format!("{base}/api/overview")).bearer_auth(TOKEN)).await,
        200
    );
    stop.cancel();
}

async fn the_raw_token_in_a_cookie_is_refused(b: &Backend) {
    let (base, stop) = server(b, Auth::token(vec![TOKEN.into()])).await;
    assert_eq!(
        with_cookie(&base, "/", &format!("{COOKIE}={TOKEN}")).await,
        401,
        "the cookie holds a session, never the token"
    );
    let (st, cookie) = login(&base, TOKEN).await;
    assert_eq!(st, 303);
    let cookie = cookie.unwrap();
    assert!(
        !cookie.contains(TOKEN),
        "the session cookie carries no token: {cookie}"
    );
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Max-Age=")
    );
    let pair = cookie.split(';').next().unwrap().to_string();
    assert_eq!(with_cookie(&base, "/", &pair).await, 200);
    stop.cancel();
}

async fn forged_session_cookies_are_refused(b: &Backend) {
    let (base, stop) = server(b, Auth::token(vec![TOKEN.into()])).await;
    let (_, cookie) = login(&base, TOKEN).await;
    let value = cookie
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .split_once('=')
        .unwrap()
        .1
        .to_string();
    let parts: Vec<&str> = value.split('.').collect();
    assert_eq!(parts.len(), 4, "{value}");
    let exp: u64 = parts[1].parse().unwrap();
    let forged = [
        // A later expiry under the old signature.
        format!("v1.{}.{}.{}", exp + 3600, parts[2], parts[3]),
        // Another nonce.
        format!("v1.{exp}.{}.{}", "00".repeat(16), parts[3]),
        // A signature of the right shape but by another key.
        session_value("guessed-token", exp, parts[2]),
        // Truncated, extended, empty, other version.
        format!("v1.{exp}.{}.{}", parts[2], &parts[3][..10]),
        format!("{value}.extra"),
        String::new(),
        value.replacen("v1", "v2", 1),
    ];
    for f in forged {
        assert_eq!(
            with_cookie(&base, "/api/runs", &format!("{COOKIE}={f}")).await,
            401,
            "forged {f:?}"
        );
    }
    // The real one still works, and rotation (another token) ends it.
    let pair = format!("{COOKIE}={value}");
    assert_eq!(with_cookie(&base, "/api/runs", &pair).await, 200);
    stop.cancel();
    let (base, stop) = server(b, Auth::token(vec!["rotated-token".into()])).await;
    assert_eq!(with_cookie(&base, "/api/runs", &pair).await, 401);
    stop.cancel();
}

async fn an_expired_session_is_refused(b: &Backend) {
    let (base, stop) = server(b, Auth::token(vec![TOKEN.into()])).await;
    let expired = session_value(TOKEN, now_secs() - 1, "aabbccdd");
    assert_eq!(
        with_cookie(&base, "/", &format!("{COOKIE}={expired}")).await,
        401
    );
    // Signed with the right token but valid far beyond any session this server issues.
    let far = session_value(TOKEN, now_secs() + 365 * 24 * 3600, "aabbccdd");
    assert_eq!(
        with_cookie(&base, "/", &format!("{COOKIE}={far}")).await,
        401
    );
    let fresh = session_value(TOKEN, now_secs() + 600, "aabbccdd");
    assert_eq!(
        with_cookie(&base, "/", &format!("{COOKIE}={fresh}")).await,
        200,
        "control: a current session is admitted"
    );
    stop.cancel();
}

async fn login_is_throttled_per_client_with_retry_after(b: &Backend) {
    let (base, stop) = server(b, Auth::token(vec![TOKEN.into()])).await;
    for i in 0..5 {
        let (st, cookie) = login(&base, &format!("guess-{i}")).await;
        assert_eq!(st, 401, "attempt {i}");
        assert!(cookie.is_none());
    }
    let r = http()
        .post(format!("{base}/login"))
        .form(&[("token", "guess-6")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let retry: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "Retry-After {retry}");
    // Locked out means locked out: even the right token is not checked now.
    let (st, cookie) = login(&base, TOKEN).await;
    assert_eq!(st, 429);
    assert!(cookie.is_none());
    stop.cancel();
}

async fn bearer_guessing_is_throttled_globally_but_sessions_still_work(b: &Backend) {
    // The proxy (this test's own address) forwards for several clients.
    let mut auth = Auth::token(vec![TOKEN.into()]).behind(vec!["127.0.0.1".parse().unwrap()]);
    auth.throttle = Throttle::new(2, 4, Duration::from_secs(60));
    let (base, stop) = server(b, auth).await;
    let c = http();
    let fresh = session_value(TOKEN, now_secs() + 600, "11223344");
    let from = |ip: &str| {
        c.get(format!("{base}/api/overview"))
            .header("x-forwarded-for", format!("203.0.113.9, {ip}"))
    };
    // Client A: 2 failures, then 429 for A only.
    assert_eq!(status(from("198.51.100.1").bearer_auth("a1")).await, 401);
    assert_eq!(status(from("198.51.100.1").bearer_auth("a2")).await, 401);
    assert_eq!(status(from("198.51.100.1").bearer_auth(TOKEN)).await, 429);
    assert_eq!(
        status(from("198.51.100.2").bearer_auth(TOKEN)).await,
        200,
        "B is not A"
    );
    // Clients B and C fail twice more: 4 in total, the global limit.
    assert_eq!(status(from("198.51.100.2").bearer_auth("b1")).await, 401);
    assert_eq!(status(from("198.51.100.3").bearer_auth("c1")).await, 401);
    assert_eq!(
        status(from("198.51.100.4").bearer_auth(TOKEN)).await,
        429,
        "global limit"
    );
    // A signed-in session is not a guess: it keeps working through the lockout.
    assert_eq!(
        status(from("198.51.100.1").header("cookie", format!("{COOKIE}={fresh}"))).await,
        200
    );
    stop.cancel();
}

async fn the_session_cookie_is_secure_over_https_only_when_a_trusted_proxy_says_so(b: &Backend) {
    let proto_login = |base: String| async move {
        http()
            .post(format!("{base}/login"))
            .header("x-forwarded-proto", "https")
            .form(&[("token", TOKEN)])
            .send()
            .await
            .unwrap()
            .headers()[header::SET_COOKIE]
            .to_str()
            .unwrap()
            .to_string()
    };
    // Not from a trusted proxy: the header is anyone's to send, so it changes nothing.
    let (base, stop) = server(b, Auth::token(vec![TOKEN.into()])).await;
    let cookie = proto_login(base.clone()).await;
    assert!(!cookie.contains("Secure"), "{cookie}");
    let (_, plain) = login(&base, TOKEN).await;
    assert!(!plain.unwrap().contains("Secure"));
    stop.cancel();
    // From the trusted proxy: Secure.
    let auth = Auth::token(vec![TOKEN.into()]).behind(vec!["127.0.0.1".parse().unwrap()]);
    let (base, stop) = server(b, auth).await;
    assert!(proto_login(base).await.contains("; Secure"));
    stop.cancel();
    // public_url is https: always Secure.
    let (base, stop) = server(b, Auth::token(vec![TOKEN.into()]).https(true)).await;
    let (_, cookie) = login(&base, TOKEN).await;
    assert!(cookie.unwrap().contains("; Secure"));
    stop.cancel();
}

async fn identity_headers_from_a_non_proxy_peer_are_refused(b: &Backend) {
    let c = http();
    // The test client connects from 127.0.0.1; the proxy is elsewhere.
    let (base, stop) = proxied(b, &["10.0.0.7"], None).await;
    for h in [
        "x-forwarded-user",
        "x-forwarded-email",
        "x-auth-request-user",
        "x-auth-request-email",
    ] {
        assert_eq!(
            status(c.get(format!("{base}/")).header(h, "admin")).await,
            403,
            "{h}"
        );
    }
    // Not even with the proxy's address claimed in forwarding headers.
    assert_eq!(
        status(
            c.get(format!("{base}/api/runs"))
                .header("x-forwarded-user", "admin")
                .header("x-forwarded-for", "10.0.0.7")
                .header("x-real-ip", "10.0.0.7")
        )
        .await,
        403
    );
    stop.cancel();
}

async fn a_proxy_secret_is_required_when_configured(b: &Backend) {
    let c = http();
    let secret = "proxy-shared-secret-42";
    let (base, stop) = proxied(b, &["127.0.0.1"], Some(secret)).await;
    let page = |s: Option<&str>| {
        let mut r = c
            .get(format!("{base}/"))
            .header("x-auth-request-user", "alice");
        if let Some(s) = s {
            r = r.header("x-capstan-proxy-secret", s);
        }
        r
    };
    assert_eq!(status(page(None)).await, 403, "right peer, no secret");
    assert_eq!(
        status(page(Some("proxy-shared-secret-4"))).await,
        403,
        "a prefix"
    );
    assert_eq!(
        status(page(Some("proxy-shared-secret-421"))).await,
        403,
        "longer"
    );
    assert_eq!(status(page(Some(""))).await, 403);
    let r = page(Some(secret)).send().await.unwrap();
    assert_eq!(r.status(), 200, "right peer and secret");
    assert!(r.text().await.unwrap().contains("Signed in as alice"));
    stop.cancel();

    // Secret only (the proxy's pod address changes): any peer with the secret, no peer without.
    let (base, stop) = proxied(b, &[], Some(secret)).await;
    assert_eq!(
        status(c.get(format!("{base}/")).header("x-forwarded-user", "bob")).await,
        403
    );
    assert_eq!(
        status(
            c.get(format!("{base}/"))
                .header("x-forwarded-user", "bob")
                .header("x-capstan-proxy-secret", secret)
        )
        .await,
        200
    );
    stop.cancel();

    // A peer that is not the proxy is refused even with the secret, when addresses are listed.
    let (base, stop) = proxied(b, &["10.0.0.7"], Some(secret)).await;
    assert_eq!(
        status(
            c.get(format!("{base}/"))
                .header("x-forwarded-user", "bob")
                .header("x-capstan-proxy-secret", secret)
        )
        .await,
        403
    );
    stop.cancel();
}

async fn duplicated_or_hostile_identity_headers_are_refused(b: &Backend) {
    let c = http();
    let (base, stop) = proxied(b, &["127.0.0.1"], None).await;
    // A proxy that appends rather than replaces would pass the client's copy along.
    assert_eq!(
        status(
            c.get(format!("{base}/"))
                .header("x-forwarded-user", "alice")
                .header("x-forwarded-user", "admin")
        )
        .await,
        403
    );
    assert_eq!(
        status(
            c.get(format!("{base}/"))
                .header("x-forwarded-user", "a".repeat(300))
        )
        .await,
        403
    );
    assert_eq!(
        status(c.get(format!("{base}/")).header("x-forwarded-user", "   ")).await,
        403
    );
    // The name is escaped on the page.
    let r = c
        .get(format!("{base}/"))
        .header("x-forwarded-user", "<script>alert(1)</script>")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let html = r.text().await.unwrap();
    assert!(!html.contains("<script>alert(1)"), "escaped");
    stop.cancel();
}

async fn metrics_on_their_own_listener_are_not_on_the_main_one(b: &Backend) {
    let st = AppState::new(b.queue.clone(), vec!["s".into()]).without_metrics_route();
    let st = Arc::new(st);
    let (main, stop) = serve(app::router(st.clone(), true)).await;
    let (metrics, stop2) = serve(app::metrics_router(st)).await;
    let c = http();
    assert_eq!(status(c.get(format!("http://{main}/metrics"))).await, 404);
    assert_eq!(
        status(c.get(format!("http://{metrics}/metrics"))).await,
        200
    );
    stop.cancel();
    stop2.cancel();
}

/// The config: ranges of proxies, a proxy-header without proxies or secret, and plain-http
/// ArgoCD without the explicit flag are refused at start.
#[test]
fn risky_settings_are_refused_at_start() {
    let load = |pairs: &[(&str, &str)], args: ConfigArgs| {
        let map: std::collections::BTreeMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::load_with(&args, &move |k| map.get(k).cloned()).map_err(|e| e.to_string())
    };
    let proxy = || ConfigArgs {
        listen: Some("0.0.0.0:8080".into()),
        dashboard_auth: Some("proxy-header".into()),
        ..ConfigArgs::default()
    };
    let e = load(
        &[("CAPSTAN_DASHBOARD_TRUSTED_PROXIES", "10.42.0.0/16")],
        proxy(),
    )
    .unwrap_err();
    assert!(
        e.contains("is a range") && e.contains("CAPSTAN_DASHBOARD_PROXY_SECRET"),
        "{e}"
    );
    let e = load(&[], proxy()).unwrap_err();
    assert!(e.contains("CAPSTAN_DASHBOARD_PROXY_SECRET"), "{e}");
    let c = load(
        &[("CAPSTAN_DASHBOARD_PROXY_SECRET", "canary-proxy-secret")],
        proxy(),
    )
    .unwrap();
    assert!(
        !format!("{c:?}").contains("canary-proxy-secret"),
        "Debug redacts the secret"
    );
    let c = load(
        &[(
            "CAPSTAN_DASHBOARD_TRUSTED_PROXIES",
            "10.42.0.9, 10.42.0.10/32",
        )],
        proxy(),
    )
    .unwrap();
    assert_eq!(c.dashboard_trusted_proxies.len(), 2);

    let argo = |allow: Option<&str>| ConfigArgs {
        argocd_url: Some("http://argocd.example.com".into()),
        argocd_allow_http: allow.map(str::to_string),
        ..ConfigArgs::default()
    };
    let e = load(&[("CAPSTAN_ARGOCD_TOKEN", "t")], argo(None)).unwrap_err();
    assert!(
        e.contains("clear text") && e.contains("--argocd-allow-http"),
        "{e}"
    );
    let c = load(&[("CAPSTAN_ARGOCD_TOKEN", "t")], argo(Some("true"))).unwrap();
    assert_eq!(c.argocd.unwrap().client.url.scheme(), "http");
    // A loopback URL never crosses the network (port-forward, sidecar): accepted as is.
    for url in [
        "http://127.0.0.1:8080",
        "http://localhost:8080",
        "http://[::1]:8080",
    ] {
        let args = ConfigArgs {
            argocd_url: Some(url.into()),
            ..ConfigArgs::default()
        };
        load(&[("CAPSTAN_ARGOCD_TOKEN", "t")], args).unwrap();
    }
    let e = load(
        &[("CAPSTAN_ARGOCD_TOKEN", "t")],
        ConfigArgs {
            argocd_url: Some("http://127.0.0.1.evil.example".into()),
            ..ConfigArgs::default()
        },
    )
    .unwrap_err();
    assert!(e.contains("clear text"), "{e}");
}

/// The shipped manifests: `/metrics` listens on its own port, and no Ingress routes to it.
#[test]
fn the_shipped_ingresses_do_not_route_metrics() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let read = |rel: &str| std::fs::read_to_string(root.join(rel)).unwrap();
    let deploy = read("applications/system/capstan/deployment.yaml");
    let value_of = |name: &str| {
        let at = deploy
            .find(&format!("name: {name}\n"))
            .unwrap_or_else(|| panic!("{name} not set"));
        deploy[at..]
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .trim_start_matches("value:")
            .trim()
            .to_string()
    };
    let listen = value_of("CAPSTAN_LISTEN");
    let metrics = value_of("CAPSTAN_METRICS_LISTEN");
    let port = |a: &str| a.rsplit(':').next().unwrap().to_string();
    assert_ne!(port(&listen), port(&metrics), "metrics share the main port");
    let mut ingresses = vec![root.join("applications/system/capstan/ingress.yaml")];
    // Routes every cluster gets, and those of the management cluster (ArgoCD, the dashboard).
    for dir in [
        "infrastructure/base/ingress/routes",
        "infrastructure/base/ingress-management",
    ] {
        for e in std::fs::read_dir(root.join(dir)).unwrap() {
            let p = e.unwrap().path();
            if p.file_name().is_some_and(|n| n != "kustomization.yaml") {
                ingresses.push(p);
            }
        }
    }
    let mut capstan_backends = 0;
    for path in ingresses {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in
            capstan_worker::yaml::parse_documents(&text, &path.display().to_string()).unwrap()
        {
            if doc["kind"] != "Ingress" {
                continue;
            }
            let rules = doc["spec"]["rules"].as_array().cloned().unwrap_or_default();
            for path_rule in rules
                .iter()
                .flat_map(|r| r["http"]["paths"].as_array().cloned().unwrap_or_default())
            {
                let svc = &path_rule["backend"]["service"];
                if svc["name"] != "capstan" {
                    continue;
                }
                capstan_backends += 1;
                let p = &svc["port"];
                assert!(
                    p["name"] == "http"
                        || p["number"].as_u64().map(|n| n.to_string()) == Some(port(&listen)),
                    "{}: routes Capstan port {p}",
                    path.display()
                );
                assert_ne!(p["name"], "metrics");
                assert!(
                    !path_rule["path"]
                        .as_str()
                        .unwrap_or("")
                        .starts_with("/metrics")
                );
            }
        }
    }
    assert!(
        capstan_backends >= 2,
        "the webhook and dashboard routes were found"
    );
}

// ---------------------------------------------------------------------------------------------
// Health probes (finding 8)

/// A server that counts every request it gets: the proof that a probe never reached it.
async fn counter() -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(move || {
        let h = h.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            "ami-id: canary-metadata"
        }
    });
    let (addr, _) = serve(app).await;
    (addr, hits)
}

/// An allowed server answering every request with a redirect to `to`, counting its own hits.
async fn redirector(to: String) -> (SocketAddr, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let h = hits.clone();
    let app = Router::new().fallback(move || {
        let h = h.clone();
        let to = to.clone();
        async move {
            h.fetch_add(1, Ordering::SeqCst);
            (StatusCode::FOUND, [(header::LOCATION, to)]).into_response()
        }
    });
    let (addr, _) = serve(app).await;
    (addr, hits)
}

fn service(ns: &str, name: &str, ann: Value) -> Value {
    let mut ann = ann;
    ann["capstan.io/dashboard"] = json!("true");
    ann["capstan.io/name"] = json!(name);
    json!({"apiVersion":"v1","kind":"Service",
        "metadata":{"name":name,"namespace":ns,"resourceVersion":"1","annotations":ann},
        "spec":{"ports":[{"port":80}]}})
}

/// A `shop` Service whose `url` annotation is `url`.
fn url_service(name: &str, url: String) -> Value {
    service("shop", name, json!({ "capstan.io/url": url }))
}

/// A registry over a fake cluster holding `services`, with `extra` dashboard settings.
async fn registry(services: Vec<Value>, discovery: &str, policy: ProbePolicy) -> Arc<Registry> {
    let k = FakeKube::new();
    k.set("/api/v1/services", "ServiceList", services);
    k.set(
        "/apis/networking.k8s.io/v1/ingresses",
        "IngressList",
        vec![],
    );
    k.set(
        "/api/v1/namespaces/capstan/configmaps",
        "ConfigMapList",
        vec![],
    );
    let (kaddr, _) = serve(k.router()).await;
    let client = kube_client_for(&format!("http://{kaddr}")).unwrap();
    let cfg = DashboardConfig::parse(
        &format!("namespace: capstan\nserviceDiscovery:\n  enabled: true\n{discovery}"),
        "test",
    )
    .unwrap();
    let reg = Arc::new(Registry::new(
        Some(client),
        &cfg,
        ProbeSettings {
            timeout: Duration::from_secs(2),
            ttl: Duration::from_secs(600),
            policy,
        },
    ));
    assert!(reg.ready(Duration::from_secs(20)).await, "watchers listed");
    reg.refresh_health().await;
    reg
}

fn entry(reg: &Registry, name: &str) -> EntryView {
    let view = reg.view();
    view.entries
        .iter()
        .find(|e| e.entry.name == name)
        .cloned()
        .unwrap_or_else(|| panic!("{name} not listed: {:?}", view.entries))
}

fn refused(e: &EntryView, why: &str) {
    match &e.health {
        Health::Down { reason } => assert!(
            reason.contains("not probed") && reason.contains(why),
            "{}: {reason}",
            e.entry.name
        ),
        other => panic!("{}: {other:?}", e.entry.name),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_loopback_annotation_is_never_probed() {
    let (c, hits) = counter().await;
    let reg = registry(
        vec![
            url_service("loop-url", format!("http://{c}/")),
            service(
                "shop",
                "loop-health",
                json!({"capstan.io/health": format!("http://{c}/admin")}),
            ),
            url_service("loop-other", format!("http://127.9.9.9:{}/", c.port())),
        ],
        // Even when the host is allowed by name, the address rule holds.
        "  namespaces: [shop]\n  probeHosts: [\"127.0.0.1\", \"127.9.9.9\"]\n",
        ProbePolicy::default(),
    )
    .await;
    for name in ["loop-url", "loop-health", "loop-other"] {
        refused(&entry(&reg, name), "loopback");
    }
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the loopback server was reached"
    );
}

/// Each `(name, url, why)`: a `shop` Service annotated with `url`, whose host is allowed by name
/// (`probeHosts`), so only the address rules stand between it and a probe: refused for `why`.
async fn assert_refused_by_address(cases: &[(&str, String, &str)]) {
    let hosts: Vec<String> = cases
        .iter()
        .map(|(_, u, _)| format!("{:?}", url::Url::parse(u).unwrap().host_str().unwrap()))
        .collect();
    let reg = registry(
        cases
            .iter()
            .map(|(name, u, _)| url_service(name, u.clone()))
            .collect(),
        &format!(
            "  namespaces: [shop]\n  probeHosts: [{}]\n",
            hosts.join(", ")
        ),
        ProbePolicy::default(),
    )
    .await;
    for (name, _, why) in cases {
        refused(&entry(&reg, name), why);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metadata_and_link_local_annotations_are_never_probed() {
    assert_refused_by_address(&[
        (
            "aws",
            "http://169.254.169.254/latest/meta-data/iam/security-credentials/".into(),
            "cloud metadata",
        ),
        (
            "gcp",
            "http://metadata.google.internal/computeMetadata/v1/".into(),
            "metadata host",
        ),
        (
            "aws6",
            "http://[fd00:ec2::254]/latest/meta-data/".into(),
            "cloud metadata",
        ),
        (
            "mapped",
            "http://[::ffff:169.254.169.254]/".into(),
            "cloud metadata",
        ),
        ("linklocal", "http://169.254.10.1/".into(), "link-local"),
        ("linklocal6", "http://[fe80::1]/".into(), "link-local"),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ipv6_loopback_and_private_annotations_are_never_probed() {
    assert_refused_by_address(&[
        ("v6", "http://[::1]:8080/".into(), "loopback"),
        ("lan", "http://192.168.1.1/".into(), "private"),
        ("pods", "http://10.42.0.5:8080/".into(), "private"),
        ("cgnat", "http://100.64.1.1/".into(), "private"),
        ("ula", "http://[fd12:3456::1]/".into(), "private"),
        ("zero", "http://0.0.0.0:8080/".into(), "unspecified"),
    ])
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostname_resolving_to_loopback_is_never_probed() {
    let (c, hits) = counter().await;
    assert_refused_by_address(&[(
        "by-name",
        format!("http://localhost:{}/", c.port()),
        "loopback",
    )])
    .await;
    assert_eq!(hits.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_cannot_aim_its_probe_at_another_host() {
    let reg = registry(
        vec![url_service(
            "elsewhere",
            "http://internal-admin.corp.example/".into(),
        )],
        "  namespaces: [shop]\n",
        ProbePolicy::default(),
    )
    .await;
    refused(
        &entry(&reg, "elsewhere"),
        "not this object's own Service name",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_from_an_allowed_server_is_not_followed() {
    let (c, hits) = counter().await;
    let (r, r_hits) = redirector(format!("http://{c}/latest/meta-data/")).await;
    let reg = registry(
        vec![url_service("hop", format!("http://{r}/"))],
        "  namespaces: [shop]\n  probeHosts: [\"127.0.0.1\"]\n",
        // Exactly the redirecting server is allowed, not its loopback neighbour.
        ProbePolicy {
            exempt: vec![r],
            ..ProbePolicy::default()
        },
    )
    .await;
    assert_eq!(
        r_hits.load(Ordering::SeqCst),
        1,
        "the allowed server was probed"
    );
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the redirect target was reached"
    );
    assert!(matches!(
        entry(&reg, "hop").health,
        Health::Up { status: 302 }
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn namespaces_outside_the_allowlist_are_neither_listed_nor_probed() {
    let (c, hits) = counter().await;
    let exempt = ProbePolicy {
        exempt: vec![c],
        ..ProbePolicy::default()
    };
    let url = json!({"capstan.io/url": format!("http://{c}/")});
    let services = vec![
        service("kube-system", "sneaky", url.clone()),
        service("shop", "allowed", url.clone()),
    ];
    let reg = registry(
        services.clone(),
        "  namespaces: [shop]\n  probeHosts: [\"127.0.0.1\"]\n",
        exempt.clone(),
    )
    .await;
    let names: Vec<String> = reg
        .view()
        .entries
        .iter()
        .map(|e| e.entry.name.clone())
        .collect();
    assert_eq!(names, vec!["allowed".to_string()]);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        1,
        "only the allowed namespace's probe"
    );
    assert!(matches!(
        entry(&reg, "allowed").health,
        Health::Up { status: 200 }
    ));

    // No namespaces configured: none is read, and the page says why.
    let reg = registry(
        services.clone(),
        "  probeHosts: [\"127.0.0.1\"]\n",
        exempt.clone(),
    )
    .await;
    let view = reg.view();
    assert!(view.entries.is_empty(), "{:?}", view.entries);
    assert!(
        view.scope_note
            .unwrap()
            .contains("serviceDiscovery.namespaces")
    );
    assert_eq!(hits.load(Ordering::SeqCst), 1, "nothing probed by default");

    // "*" opts into every namespace.
    let reg = registry(
        services,
        "  namespaces: [\"*\"]\n  probeHosts: [\"127.0.0.1\"]\n",
        exempt,
    )
    .await;
    assert_eq!(reg.view().entries.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_exempted_test_server_passes_the_address_rules() {
    // The control for every test above: the same loopback servers are reachable when, and only
    // when, the policy names exactly their address, so a refusal above is the policy at work.
    let (a, a_hits) = counter().await;
    let (b, b_hits) = counter().await;
    let reg = registry(
        vec![
            url_service("a", format!("http://{a}/")),
            url_service("b", format!("http://{b}/")),
        ],
        "  namespaces: [shop]\n  probeHosts: [\"127.0.0.1\"]\n",
        ProbePolicy {
            exempt: vec![a],
            ..ProbePolicy::default()
        },
    )
    .await;
    assert!(matches!(
        entry(&reg, "a").health,
        Health::Up { status: 200 }
    ));
    refused(&entry(&reg, "b"), "loopback");
    assert_eq!(a_hits.load(Ordering::SeqCst), 1);
    assert_eq!(b_hits.load(Ordering::SeqCst), 0);
}
