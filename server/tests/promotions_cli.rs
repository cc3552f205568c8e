//! `capstan promotions`: the audit trail from the command line, read from the store `serve` uses.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use capstan_worker::store::promotions::SqlPromotionStore;
use capstan_worker::store::{PromotionRecord, PromotionStatus};

fn record(
    key: &str,
    target: &str,
    status: PromotionStatus,
    result_pr: Option<u64>,
) -> PromotionRecord {
    PromotionRecord {
        id: 0,
        promotion_key: key.into(),
        repo: "acme/gitops".into(),
        app: "podinfo".into(),
        source_env: "staging".into(),
        target_env: target.into(),
        trigger: "command".into(),
        actor: "bob".into(),
        source_pr: Some(1),
        source_sha: "a".repeat(40),
        mode: "pull-request".into(),
        summary: "images: podinfo 6.7.1 → 6.8.0".into(),
        status,
        detail: None,
        result_pr,
        result_sha: None,
        created_at: 1,
        updated_at: 1,
    }
}

fn capstan(db_url: &str) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_capstan"));
    c.env_remove("DATABASE_URL")
        .env_remove("CAPSTAN_CONFIG")
        .args(["promotions", "--database-url", db_url]);
    c
}

#[tokio::test]
async fn lists_filters_and_refuses_unknown_statuses() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("capstan.db").display());
    {
        let queue = capstan_worker::queue::open(&url).await.unwrap();
        let store = SqlPromotionStore::new(queue.db());
        for rec in [
            record("k1", "staging", PromotionStatus::Refused, None),
            record("k2", "production", PromotionStatus::Refused, None),
            record("k3", "production", PromotionStatus::Opened, Some(2)),
        ] {
            store.insert(&rec).await.unwrap();
        }
    }

    let out = capstan(&url).arg("--json").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let statuses: Vec<&str> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["opened", "refused", "refused"], "newest first");
    assert_eq!(listed[0]["result_pr"], 2);

    let filtered = capstan(&url)
        .args(["--json", "--status", "refused", "--target", "staging"])
        .output()
        .unwrap();
    let filtered: serde_json::Value = serde_json::from_slice(&filtered.stdout).unwrap();
    assert_eq!(filtered.as_array().unwrap().len(), 1);
    assert_eq!(filtered[0]["promotion_key"], "k1");

    let text = capstan(&url).output().unwrap();
    assert!(text.status.success());
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("podinfo") && text.contains("production"),
        "{text}"
    );

    let bad = capstan(&url).args(["--status", "done"]).output().unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--status \"done\" is not one of"));
}

/// A read-only command never creates a database: a mistyped data dir says so and leaves nothing.
#[test]
fn reading_where_no_database_is_creates_none() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("nowhere").join("capstan.db");
    let url = format!("sqlite://{}", db.display());
    for json in [false, true] {
        let mut c = capstan(&url);
        if json {
            c.arg("--json");
        }
        let out = c.output().unwrap();
        assert_eq!(out.status.code(), Some(0));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("no database at"), "{stderr}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        if json {
            assert_eq!(stdout.trim(), "[]");
        } else {
            assert!(stdout.contains("no promotions recorded"), "{stdout}");
        }
    }
    assert!(!db.exists() && !dir.path().join("nowhere").exists());
}

/// `capstan promotions --help` teaches its own options and the store's settings, not every
/// setting of `serve`.
#[test]
fn help_lists_only_what_reading_the_store_needs() {
    let out = Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(["promotions", "--help"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for wanted in [
        "--status",
        "--target",
        "--database-url",
        "DATABASE_URL]",
        "--data-dir",
        "CAPSTAN_DATA_DIR]",
        "--config",
    ] {
        assert!(help.contains(wanted), "missing {wanted}: {help}");
    }
    for serve_only in [
        "--listen",
        "--github-app-id",
        "--argocd-url",
        "--dashboard-auth",
    ] {
        assert!(!help.contains(serve_only), "lists {serve_only}: {help}");
    }
}

/// A refused, conflicting or failed promotion shows why in the table, not only in `--json`:
/// "nothing to promote" beside `refused` reads as if nothing had happened.
#[tokio::test]
async fn the_table_says_why_a_promotion_was_refused() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("capstan.db").display());
    {
        let queue = capstan_worker::queue::open(&url).await.unwrap();
        let store = SqlPromotionStore::new(queue.db());
        let mut refused = record("k1", "production", PromotionStatus::Refused, None);
        refused.summary = "nothing to promote".into();
        refused.detail = Some("requireHealthy: podinfo-staging is Degraded".into());
        let mut conflict = record("k2", "production", PromotionStatus::Conflict, None);
        conflict.detail = Some("the image entry podinfo is gone from the target".into());
        let opened = record("k3", "production", PromotionStatus::Opened, Some(2));
        for rec in [refused, conflict, opened] {
            store.insert(&rec).await.unwrap();
        }
    }
    let out = capstan(&url).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let table = String::from_utf8_lossy(&out.stdout);
    let line = |status: &str| {
        table
            .lines()
            .find(|l| l.contains(&format!("\t{status}\t")))
            .unwrap_or_else(|| panic!("no {status} row: {table}"))
            .to_string()
    };
    let refused = line("refused");
    assert!(
        refused.contains("requireHealthy: podinfo-staging is Degraded"),
        "{refused}"
    );
    assert!(!refused.contains("nothing to promote"), "{refused}");
    let conflict = line("conflict");
    assert!(
        conflict.contains("images: podinfo 6.7.1 → 6.8.0"),
        "{conflict}"
    );
    assert!(
        conflict.contains("the image entry podinfo is gone"),
        "{conflict}"
    );
    assert!(line("opened").contains("images: podinfo 6.7.1 → 6.8.0"));
}
