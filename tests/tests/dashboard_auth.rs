//! Dashboard access control over real TCP (peer addresses matter for `proxy-header`): `token`
//! refuses a missing or wrong token, `proxy-header` trusts the headers only from a configured
//! proxy address (adversarial cases are in adversarial_dashboard.rs), `none` cannot be configured on a non-loopback address, and the webhook
//! endpoint stays open (signature-checked only).
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use capstan_server::app::{self, AppState};
use capstan_server::config::{Config, ConfigArgs, DashboardAuth};
use capstan_server::dashboard::{Auth, Dashboard};
use capstan_tests::backend::Backend;
use capstan_tests::dashboard::{http, serve};
use capstan_tests::webhook::{SECRET, sign};
use capstan_worker::store::runs::SqlRunStore;

async fn server(b: &Backend, auth: Auth) -> (String, tokio_util::sync::CancellationToken) {
    let d =
        Dashboard::new(Arc::new(SqlRunStore::new(b.queue.db())), b.queue.clone()).with_auth(auth);
    let st = AppState::new(b.queue.clone(), vec![SECRET.into()]).with_dashboard(Arc::new(d));
    let (addr, stop) = serve(app::router(Arc::new(st), true)).await;
    (format!("http://{addr}"), stop)
}

#[tokio::test]
async fn token_mode_refuses_missing_and_wrong_tokens() {
    let b = Backend::sqlite().await;
    // More wrong tokens than the login throttle allows: this test is about the 401s (the
    // throttle has its own cases in adversarial_dashboard.rs).
    let mut auth = Auth::token(vec!["old-token".into(), "s3cret".into()]);
    auth.throttle = capstan_server::dashboard::auth::Throttle::new(
        100,
        100,
        std::time::Duration::from_secs(60),
    );
    let (base, stop) = server(&b, auth).await;
    let c = http();
    for path in [
        "/",
        "/runs/1",
        "/apps",
        "/api/overview",
        "/promotions",
        "/services",
        "/cluster",
    ] {
        let r = c.get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(r.status(), 401, "{path} without a token");
        let r = c
            .get(format!("{base}{path}"))
            .bearer_auth("s3cret-but-wrong")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong token");
        let r = c
            .get(format!("{base}{path}"))
            .header("cookie", "capstan_dashboard=nope")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 401, "{path} with a wrong cookie");
    }
    let r = c
        .get(format!("{base}/api/overview"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let r = c
        .get(format!("{base}/"))
        .bearer_auth("old-token")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "rotated tokens keep working");

    // /login: a wrong token sets nothing; the right one sets the cookie that then admits.
    let r = c
        .post(format!("{base}/login"))
        .form(&[("token", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    assert!(r.headers().get("set-cookie").is_none());
    let r = c
        .post(format!("{base}/login"))
        .form(&[("token", "s3cret")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"));
    let pair = cookie.split(';').next().unwrap();
    let r = c
        .get(format!("{base}/"))
        .header("cookie", pair)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Health, metrics and webhooks are not behind the dashboard's auth.
    assert_eq!(
        c.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        c.get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    let body = br#"{"zen":"Keep it logically awesome.","hook_id":1}"#;
    let r = c
        .post(format!("{base}/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "ping")
        .header("x-github-delivery", "auth-test-1")
        .header("x-hub-signature-256", sign(SECRET.as_bytes(), body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert!(
        r.status().is_success(),
        "signed webhook accepted: {}",
        r.status()
    );
    let r = c
        .post(format!("{base}/webhooks/github"))
        .header("content-type", "application/json")
        .header("x-github-event", "ping")
        .header("x-github-delivery", "auth-test-2")
        .header("x-hub-signature-256", sign(b"wrong", body))
        .body(body.to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401, "the webhook is still signature-protected");
    stop.cancel();
    b.cleanup().await;
}

#[tokio::test]
async fn proxy_header_is_trusted_only_from_the_proxy() {
    let b = Backend::sqlite().await;
    let c = http();
    // The test client connects from 127.0.0.1, which is not the proxy here.
    let (base, stop) = server(
        &b,
        Auth::proxy_header(vec!["10.0.0.1".parse().unwrap()], None),
    )
    .await;
    let r = c
        .get(format!("{base}/"))
        .header("x-forwarded-user", "mallory")
        .header("x-forwarded-email", "mallory@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    stop.cancel();

    let (base, stop) = server(
        &b,
        Auth::proxy_header(vec!["127.0.0.1".parse().unwrap()], None),
    )
    .await;
    let r = c.get(format!("{base}/")).send().await.unwrap();
    assert_eq!(r.status(), 403, "the proxy must name the user");
    let r = c
        .get(format!("{base}/"))
        .header("x-forwarded-email", "alice@example.com")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert!(
        r.text()
            .await
            .unwrap()
            .contains("Signed in as alice@example.com")
    );
    stop.cancel();
    b.cleanup().await;
}

fn load(pairs: &[(&str, &str)], args: ConfigArgs) -> Result<Config, String> {
    let map: std::collections::BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Config::load_with(&args, &move |k| map.get(k).cloned()).map_err(|e| e.to_string())
}

#[test]
fn none_refuses_a_non_loopback_bind_and_defaults_are_safe() {
    let args = |listen: &str, auth: Option<&str>| ConfigArgs {
        listen: Some(listen.into()),
        dashboard_auth: auth.map(str::to_string),
        ..ConfigArgs::default()
    };
    for listen in ["0.0.0.0:8080", "192.168.1.5:8080", "[::]:8080"] {
        let err = load(&[], args(listen, Some("none"))).unwrap_err();
        assert!(
            err.contains("--dashboard-auth (flag)") && err.contains("private diffs"),
            "{err}"
        );
        let err = load(&[("CAPSTAN_DASHBOARD_AUTH", "none")], args(listen, None)).unwrap_err();
        assert!(
            err.contains("CAPSTAN_DASHBOARD_AUTH (environment)"),
            "{err}"
        );
    }
    for listen in ["127.0.0.1:8080", "[::1]:8080"] {
        assert_eq!(
            load(&[], args(listen, Some("none")))
                .unwrap()
                .dashboard_auth,
            DashboardAuth::None
        );
        assert_eq!(
            load(&[], args(listen, None)).unwrap().dashboard_auth,
            DashboardAuth::None
        );
    }
    // Unset on a public bind: token, generated unless given.
    let c = load(&[], args("0.0.0.0:8080", None)).unwrap();
    assert!(matches!(
        c.dashboard_auth,
        DashboardAuth::Token(capstan_server::config::SecretSource::File { generate: true, .. })
    ));
    let c = load(
        &[("CAPSTAN_DASHBOARD_TOKEN", "a,b")],
        args("0.0.0.0:8080", None),
    )
    .unwrap();
    assert_eq!(
        c.dashboard_auth,
        DashboardAuth::Token(capstan_server::config::SecretSource::Env(vec![
            "a".into(),
            "b".into()
        ]))
    );
    let err = load(&[], args("0.0.0.0:8080", Some("proxy-header"))).unwrap_err();
    assert!(err.contains("--dashboard-trusted-proxies"), "{err}");
    for bad in ["10.0.0.0/33", "10.0.0.0/8, 192.168.0.7"] {
        let err = load(
            &[("CAPSTAN_DASHBOARD_TRUSTED_PROXIES", bad)],
            args("0.0.0.0:8080", Some("proxy-header")),
        )
        .unwrap_err();
        assert!(err.contains("CAPSTAN_DASHBOARD_TRUSTED_PROXIES"), "{err}");
    }
    let c = load(
        &[("CAPSTAN_DASHBOARD_TRUSTED_PROXIES", "10.0.0.3, 192.168.0.7")],
        args("0.0.0.0:8080", Some("proxy-header")),
    )
    .unwrap();
    assert!(matches!(
        c.dashboard_auth,
        DashboardAuth::ProxyHeader { secret: None }
    ));
    assert_eq!(c.dashboard_trusted_proxies.len(), 2);
    let err = load(&[], args("0.0.0.0:8080", Some("open"))).unwrap_err();
    assert!(
        err.contains("expected none, token or proxy-header"),
        "{err}"
    );
}
