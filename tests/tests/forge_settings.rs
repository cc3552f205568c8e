//! `--forge`: GitHub stays the default and unchanged; `capstan serve --forge gitlab --forge-url
//! …` builds its GitLab client from the settings and starts, serving GitLab's webhook route only.
#![allow(clippy::unwrap_used)]

use capstan_server::config::{Config, ConfigArgs};
use capstan_tests::pr_harness::{serve_on_ephemeral_port, wait_healthy};
use tokio_util::sync::CancellationToken;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitlab_starts_with_its_address_and_token() {
    capstan_worker::forge::github::install_crypto_provider();
    let dir = tempfile::tempdir().unwrap();
    let args = ConfigArgs {
        forge: Some("gitlab".into()),
        // Self-managed under a path prefix; nothing answers there, and starting needs nothing.
        forge_url: Some("https://gitlab.example/gitlab".into()),
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(dir.path().join("data").display().to_string()),
        ..ConfigArgs::default()
    };
    let env = |k: &str| match k {
        "CAPSTAN_FORGE_TOKEN" => Some("forge-token-canary".to_string()),
        "CAPSTAN_WEBHOOK_SECRET" => Some("s".to_string()),
        _ => None,
    };
    let cfg = Config::load_with(&args, &env).unwrap();
    let stop = CancellationToken::new();
    let parts = capstan_server::serve::Parts {
        shutdown: Some(stop.clone()),
        ..Default::default()
    };
    let (port, service) = serve_on_ephemeral_port(cfg, parts).await;
    let base = format!("http://127.0.0.1:{port}");
    let http = reqwest::Client::new();
    wait_healthy(&http, &base).await;
    // GitLab's route is there (an unauthenticated delivery is refused, not unknown), GitHub's
    // is not.
    let post = |path: &str| http.post(format!("{base}{path}")).body("{}").send();
    let gitlab = post("/webhooks/gitlab").await.unwrap().status();
    assert!(gitlab == 400 || gitlab == 401, "{gitlab}");
    assert_eq!(post("/webhooks/github").await.unwrap().status(), 404);
    stop.cancel();
    service.await.unwrap().unwrap();
}
