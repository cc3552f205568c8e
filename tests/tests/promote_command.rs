//! `/capstan promote <env> [app] [sha]` through the `Promoter` the command handler calls, and
//! the audit trail it leaves (server/tests/promotions_cli.rs reads such a trail from the CLI).
#![allow(clippy::unwrap_used)]

use capstan_tests::promote_world::{PRODUCTION, REPO, STAGING, World, command_request, real};
use capstan_worker::services::{PromoteRequest, Promoter};
use capstan_worker::store::{PromotionFilter, PromotionStatus, PromotionStore};

fn request(env: &str, head: Option<&str>, sha: Option<&str>) -> PromoteRequest {
    command_request(1, env, head, sha)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_is_refused_on_a_moved_head_allowed_otherwise_and_every_attempt_is_audited() {
    // Our own rule requires podinfo-staging to be Synced and Healthy: it is.
    let w = World::with_healthy_podinfo(&[
        (".capstan.yaml", &real(".capstan.yaml")),
        (STAGING, &real(STAGING)),
        (PRODUCTION, &real(PRODUCTION)),
    ])
    .await;
    let staging = String::from_utf8(real(STAGING)).unwrap();
    let v1 = staging.replace("newTag: 6.7.1", "newTag: 6.8.0");
    let h1 = w
        .commit(
            "bump",
            Some("main"),
            "bump",
            &[(STAGING, Some(v1.as_bytes()))],
        )
        .to_string();
    assert_eq!(
        w.fake
            .open_pull(REPO, "bump", "main", "Bump podinfo", "alice"),
        1
    );
    let v2 = staging.replace("newTag: 6.7.1", "newTag: 6.8.1");
    let h2 = w
        .commit(
            "bump",
            None,
            "bump again",
            &[(STAGING, Some(v2.as_bytes()))],
        )
        .to_string();
    w.fake.refresh_head(REPO, 1);
    w.fake.set_files(REPO, 1, &[STAGING]);

    // Typed while the head was h1; the branch has moved to h2 since.
    let reply = w
        .engine
        .promote(&request("production", Some(&h1), None))
        .await
        .unwrap();
    assert!(
        reply.contains("refused") && reply.contains("the head moved"),
        "{reply}"
    );
    // A sha that is not the head is refused too.
    let reply = w
        .engine
        .promote(&request("production", Some(&h2), Some(&h1)))
        .await
        .unwrap();
    assert!(
        reply.contains("refused") && reply.contains("is not this pull request's head"),
        "{reply}"
    );
    // No rule promotes into staging.
    let reply = w
        .engine
        .promote(&request("staging", Some(&h2), None))
        .await
        .unwrap();
    assert!(
        reply.contains("no promotion rule targets `staging`"),
        "{reply}"
    );
    assert!(
        w.fake.pulls(REPO).len() == 1,
        "nothing was opened by a refused command"
    );

    // The head the command saw: promoted.
    let reply = w
        .engine
        .promote(&request("production", Some(&h2), None))
        .await
        .unwrap();
    assert!(
        reply.contains("podinfo → production: opened (#2)"),
        "{reply}"
    );
    assert!(reply.contains("newTag 6.7.0 → 6.8.1"), "{reply}");
    let (pull, body, _) = w.fake.pull(REPO, 2).unwrap();
    assert_eq!(pull.head_ref, "capstan/promote/podinfo/production");
    assert!(body.contains("Triggered by `bob` (command)"), "{body}");
    let production =
        String::from_utf8(w.file("capstan/promote/podinfo/production", PRODUCTION)).unwrap();
    assert_eq!(
        production,
        String::from_utf8(real(PRODUCTION))
            .unwrap()
            .replace("newTag: 6.7.0", "newTag: 6.8.1")
    );
    // Repeating it with the matching sha finds the commit it already made.
    let reply = w
        .engine
        .promote(&request("production", None, Some(&h2)))
        .await
        .unwrap();
    assert!(
        reply.contains("opened (#2)") && reply.contains("already on the promotion branch"),
        "{reply}"
    );
    assert_eq!(
        w.promotion_commits("capstan/promote/podinfo/production")
            .len(),
        1
    );

    // A reader's `/capstan promote`, refused by the command handler's permission check before
    // the engine ran, is recorded too.
    let mut reader = request("production", Some(&h2), None);
    reader.actor = "eve".into();
    w.engine
        .record_refusal(&reader, "`promote` needs write permission; you have read")
        .await;

    let records = w
        .store
        .list_promotions(&PromotionFilter::default())
        .await
        .unwrap();
    let seen: Vec<(PromotionStatus, &str, &str)> = records
        .iter()
        .rev()
        .map(|r| (r.status, r.actor.as_str(), r.target_env.as_str()))
        .collect();
    assert_eq!(
        seen,
        vec![
            (PromotionStatus::Refused, "bob", "production"),
            (PromotionStatus::Refused, "bob", "production"),
            (PromotionStatus::Refused, "bob", "staging"),
            (PromotionStatus::Opened, "bob", "production"),
            (PromotionStatus::Opened, "bob", "production"),
            (PromotionStatus::Refused, "eve", "production"),
        ]
    );
    assert!(
        records[0]
            .detail
            .as_deref()
            .is_some_and(|d| d.contains("needs write permission")),
        "{:?}",
        records[0]
    );
    assert!(
        records
            .iter()
            .all(|r| r.trigger == "command" && r.source_pr == Some(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promote_is_refused_while_the_source_app_is_degraded() {
    let w = World::with_argocd(
        &[
            (".capstan.yaml", &real(".capstan.yaml")),
            (STAGING, &real(STAGING)),
            (PRODUCTION, &real(PRODUCTION)),
        ],
        vec![capstan_tests::promote_world::podinfo_app(
            "staging", "Synced", "Degraded",
        )],
    )
    .await;
    let staging = String::from_utf8(real(STAGING)).unwrap();
    let v1 = staging.replace("newTag: 6.7.1", "newTag: 6.8.0");
    let h1 = w
        .commit(
            "bump",
            Some("main"),
            "bump",
            &[(STAGING, Some(v1.as_bytes()))],
        )
        .to_string();
    w.fake
        .open_pull(REPO, "bump", "main", "Bump podinfo", "alice");
    w.fake.set_files(REPO, 1, &[STAGING]);
    let reply = w
        .engine
        .promote(&request("production", Some(&h1), None))
        .await
        .unwrap();
    assert!(
        reply.contains("refused")
            && reply.contains("podinfo-staging is Synced and Degraded, not Synced and Healthy"),
        "{reply}"
    );
    assert_eq!(w.fake.pulls(REPO).len(), 1, "no promotion pull request");
    let records = w
        .store
        .list_promotions(&PromotionFilter::default())
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, PromotionStatus::Refused);
    assert!(
        w.backend
            .queue
            .jobs_by_dedupe_key(&format!(
                "default_branch_push:{REPO}@{h1}:healthy:{}:1",
                records[0].promotion_key
            ))
            .await
            .unwrap()
            .is_empty(),
        "a command is answered, not re-checked later"
    );
}
