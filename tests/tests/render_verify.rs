//! Render verification end to end: `capstan serve` with a renderer whose native engine output is
//! broken on purpose (the engine test hook). With `render.verify: always` the break is caught
//! before the report: the binary's output is in the comment with a note, the mismatch is stored
//! (pinned), counted on `/metrics` and listed on `/fidelity`. With `sample` the first report is
//! the engine's, the deferred verification finds the break after it, and the check runs again on
//! the binary's output.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use capstan_tests::kubectl_present;
use capstan_tests::pr_harness::{Auth, Harness, REPO, fanout_tree};
use capstan_worker::render::verify::EngineHook;
use capstan_worker::render::{RenderConfig, Renderer};
use capstan_worker::store::{FidelityStore, SqlFidelityStore};

const WAIT: Duration = Duration::from_secs(120);

/// A renderer whose engine writes `LOG_LEVEL: broken-<level>` instead of the real value.
fn broken_engine() -> Arc<Renderer> {
    Arc::new(Renderer::new(RenderConfig {
        engine_hook: Some(EngineHook(Arc::new(|_path, out| {
            Ok(out?.replace("LOG_LEVEL: ", "LOG_LEVEL: broken-"))
        }))),
        ..RenderConfig::default()
    }))
}

fn tree(render_settings: &str) -> Vec<(String, String)> {
    let mut files = fanout_tree(2);
    for (path, text) in &mut files {
        if path == ".capstan.yaml" {
            text.push_str(render_settings);
        }
    }
    files
}

async fn get(h: &Harness, path: &str) -> String {
    let r = reqwest::get(format!("{}{path}", h.base_url)).await.unwrap();
    assert!(r.status().is_success(), "{path}: {}", r.status());
    r.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_catches_a_broken_engine_before_the_report() {
    if !kubectl_present() {
        return;
    }
    let h = Harness::start_with_renderer(
        Auth::App,
        &tree("render:\n  verify: always\n"),
        broken_engine(),
    )
    .await;
    let head = h.push_level("feature", "debug");
    h.open_pull(1, "feature");
    h.pull_request_event("opened", 1, "feature", &head).await;
    h.wait_for("the check run to complete", WAIT, |h| {
        h.check_runs_for(&head)
            .iter()
            .any(|r| r["status"] == "completed")
    })
    .await;
    let body = h.report_comments(1)[0].body.clone();
    assert!(body.contains("LOG_LEVEL: debug"), "{body}");
    assert!(
        !body.contains("broken-"),
        "the engine's output leaked: {body}"
    );
    assert!(body.contains("pinned to the binary"), "{body}");

    let store = SqlFidelityStore::new(
        capstan_worker::queue::open(&h.database_url)
            .await
            .unwrap()
            .db(),
    );
    // Records are saved right after the run concludes.
    let start = std::time::Instant::now();
    let mut stored = store.list_mismatches(0).await.unwrap();
    while stored.len() < 2 {
        assert!(start.elapsed() < WAIT, "mismatches not stored: {stored:#?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
        stored = store.list_mismatches(0).await.unwrap();
    }
    let mut paths: Vec<String> = stored
        .into_iter()
        .map(|m| {
            assert_eq!(m.repo, REPO);
            assert!(
                m.first_difference.contains("+  LOG_LEVEL: info")
                    || m.first_difference.contains("+  LOG_LEVEL: debug"),
                "{}",
                m.first_difference
            );
            m.path
        })
        .collect();
    paths.sort();
    paths.dedup();
    assert_eq!(paths, vec!["apps/app-000", "apps/app-001"]);

    let page = get(&h, "/fidelity").await;
    assert!(
        page.contains("apps/app-000") && page.contains("pinned"),
        "{page}"
    );
    assert!(page.contains(REPO), "{page}");
    let metrics = get(&h, "/metrics").await;
    assert!(
        metrics.lines().any(|l| l
            .starts_with("capstan_render_verifications_total{outcome=\"differs\"}")
            && !l.ends_with(" 0")),
        "{metrics}"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sample_verifies_after_the_report_and_checks_again_on_a_mismatch() {
    if !kubectl_present() {
        return;
    }
    let h = Harness::start_with_renderer(
        Auth::App,
        &tree("render:\n  verify: sample\n  verifyShare: 1\n"),
        broken_engine(),
    )
    .await;
    let head = h.push_level("feature", "warn");
    h.open_pull(2, "feature");
    h.pull_request_event("opened", 2, "feature", &head).await;
    // The run after the deferred verification posts the binary's output with the note, and
    // completes the head's one check run again (it restarts it rather than adding a second).
    h.wait_for("the corrected report", WAIT, |h| {
        h.report_comments(2).first().is_some_and(|c| {
            c.body.contains("pinned to the binary") && c.body.contains("LOG_LEVEL: warn")
        }) && h
            .check_runs_for(&head)
            .iter()
            .all(|r| r["status"] == "completed")
    })
    .await;
    h.wait_idle().await;
    let body = h.report_comments(2)[0].body.clone();
    assert!(!body.contains("broken-"), "{body}");
    let checks = h.check_runs_for(&head);
    assert_eq!(checks.len(), 1, "{checks:#?}");
    assert_eq!(checks[0]["status"], "completed");
    h.stop().await;
}
