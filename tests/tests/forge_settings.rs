//! `--forge`: GitHub stays the default and unchanged; a forge this build cannot answer (GitLab)
//! refuses at startup, saying what is missing, before it opens a database or a port.
#![allow(clippy::unwrap_used)]

use capstan_server::config::{Config, ConfigArgs};

#[tokio::test]
async fn gitlab_refuses_to_start_until_its_client_exists() {
    for (kind, url, name) in [("gitlab", "https://gitlab.example", "GitLab")] {
        let dir = tempfile::tempdir().unwrap();
        let args = ConfigArgs {
            forge: Some(kind.into()),
            forge_url: Some(url.into()),
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
        let Err(err) = capstan_server::serve::App::build(cfg).await else {
            panic!("--forge {kind} started");
        };
        let err = format!("{err:#}");
        assert!(err.contains(&format!("--forge {kind}")), "{err}");
        assert!(
            err.contains(&format!("{name} support is not complete")),
            "{err}"
        );
        assert!(!err.contains("forge-token-canary"), "{err}");
        // Refused before anything was created on disk.
        assert!(!dir.path().join("data").exists(), "{err}");
    }
}
