//! Promotion attacks on the engine itself (issue 13, findings 2 and 3): merges into a branch
//! other than the default one, `/capstan promote` on a pull request into another branch, and a
//! promotion request that names no head anybody reviewed. Each asserts the refusal, that nothing
//! was pushed or opened, and that a legitimate promotion still goes through afterwards.
#![allow(clippy::unwrap_used)]

use capstan_tests::backend::Backend;
use capstan_tests::fake_github::MergeMethod;
use capstan_tests::promote_world::{PRODUCTION, REPO, STAGING, World, command_request, real};
use capstan_worker::services::{PromoteRequest, Promoter};
use capstan_worker::store::{PromotionFilter, PromotionStatus, PromotionStore};

const BRANCH: &str = "capstan/promote/podinfo/production";

capstan_tests::both_backends_owned!(
    a_merge_into_another_branch_promotes_nothing,
    promote_on_a_pull_request_into_another_branch_is_refused,
    promote_needs_a_head_someone_reviewed,
);

async fn world(backend: Backend) -> World {
    World::with_healthy_podinfo_on(
        &[
            (".capstan.yaml", &real(".capstan.yaml")),
            (STAGING, &real(STAGING)),
            (PRODUCTION, &real(PRODUCTION)),
        ],
        backend,
    )
    .await
}

/// A branch `head` from `from` that bumps the staging tag to `tag`, opened against `base`.
fn bump_pull(w: &World, head: &str, from: &str, base: &str, tag: &str) -> (u64, String) {
    let staging = String::from_utf8(w.file(from, STAGING)).unwrap();
    let bumped = staging.replace("newTag: 6.7.1", &format!("newTag: {tag}"));
    assert_ne!(bumped, staging);
    let sha = w
        .commit(
            head,
            Some(from),
            "bump",
            &[(STAGING, Some(bumped.as_bytes()))],
        )
        .to_string();
    let pr = w.fake.open_pull(REPO, head, base, "Bump podinfo", "alice");
    w.fake.set_files(REPO, pr, &[STAGING]);
    (pr, sha)
}

fn request(pr: u64, head: Option<&str>, sha: Option<&str>) -> PromoteRequest {
    command_request(pr, "production", head, sha)
}

fn promotion_prs(w: &World) -> usize {
    w.fake
        .pulls(REPO)
        .iter()
        .filter(|p| p.head_ref == BRANCH)
        .count()
}

/// Finding 3: a merge into `release` (whose `.capstan.yaml` its author may control) promotes
/// nothing, while the same change merged into `main` still does.
async fn a_merge_into_another_branch_promotes_nothing(backend: Backend) {
    let w = world(backend).await;
    w.commit(
        "release",
        Some("main"),
        "release branch",
        &[("RELEASE", Some(b"1"))],
    );
    let (pr, _) = bump_pull(&w, "bump-release", "release", "release", "6.9.0");
    w.fake.merge_pull(REPO, pr, MergeMethod::Merge).unwrap();
    let merged = w.merged_event(pr);
    assert_eq!(merged.base_ref, "release");
    let out = w.engine.on_merged(&merged).await.unwrap();
    assert!(out.is_empty(), "{out:?}");
    // A job that does not know the default branch is left to the push to it.
    let mut unknown = merged.clone();
    unknown.default_branch = None;
    assert!(w.engine.on_merged(&unknown).await.unwrap().is_empty());
    assert_eq!(promotion_prs(&w), 0, "nothing was opened");
    assert!(w.tip(BRANCH).is_none(), "nothing was pushed");

    // Nothing accepted is lost: the same bump merged into main promotes.
    let (pr, _) = bump_pull(&w, "bump-main", "main", "main", "6.9.0");
    w.fake.merge_pull(REPO, pr, MergeMethod::Merge).unwrap();
    let out = w.engine.on_merged(&w.merged_event(pr)).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status, PromotionStatus::Opened);
    assert_eq!(promotion_prs(&w), 1);
    w.finish().await;
}

/// Finding 3: `/capstan promote` on a pull request into another branch is refused and audited;
/// the same command on a pull request into the default branch runs.
async fn promote_on_a_pull_request_into_another_branch_is_refused(backend: Backend) {
    let w = world(backend).await;
    w.commit(
        "release",
        Some("main"),
        "release branch",
        &[("RELEASE", Some(b"1"))],
    );
    let (pr, head) = bump_pull(&w, "bump-release", "release", "release", "6.8.0");
    let reply = w
        .engine
        .promote(&request(pr, Some(&head), None))
        .await
        .unwrap();
    assert!(
        reply.contains("refused") && reply.contains("not the default branch `main`"),
        "{reply}"
    );
    // Without the default branch known, nothing promotes either.
    let mut unknown = request(pr, None, Some(&head));
    unknown.default_branch = None;
    let reply = w.engine.promote(&unknown).await.unwrap();
    assert!(reply.contains("default branch is not known"), "{reply}");
    assert_eq!(promotion_prs(&w), 0);

    let (pr, head) = bump_pull(&w, "bump-main", "main", "main", "6.8.0");
    let reply = w
        .engine
        .promote(&request(pr, Some(&head), None))
        .await
        .unwrap();
    assert!(reply.contains("podinfo → production: opened"), "{reply}");
    let records = w
        .store
        .list_promotions(&PromotionFilter::default())
        .await
        .unwrap();
    let statuses: Vec<PromotionStatus> = records.iter().rev().map(|r| r.status).collect();
    assert_eq!(
        statuses,
        [
            PromotionStatus::Refused,
            PromotionStatus::Refused,
            PromotionStatus::Opened
        ]
    );
    w.finish().await;
}

/// Finding 2: a request that names neither a sha nor a head the command handler vouched for is
/// refused (before the fix the engine promoted whatever the head was when it ran); a pinned sha
/// that is no longer the head is refused; the pinned current head promotes.
async fn promote_needs_a_head_someone_reviewed(backend: Backend) {
    let w = world(backend).await;
    let (pr, h1) = bump_pull(&w, "bump", "main", "main", "6.8.0");
    let reply = w.engine.promote(&request(pr, None, None)).await.unwrap();
    assert!(
        reply.contains("refused") && reply.contains("no head was established"),
        "{reply}"
    );
    // The branch moves after the commenter pinned h1.
    let staging = String::from_utf8(w.file("bump", STAGING)).unwrap();
    let h2 = w
        .commit(
            "bump",
            None,
            "bump again",
            &[(STAGING, Some(staging.replace("6.8.0", "6.8.1").as_bytes()))],
        )
        .to_string();
    w.fake.refresh_head(REPO, pr);
    let reply = w
        .engine
        .promote(&request(pr, None, Some(&h1)))
        .await
        .unwrap();
    assert!(reply.contains("is not this pull request's head"), "{reply}");
    assert_eq!(promotion_prs(&w), 0);

    let reply = w
        .engine
        .promote(&request(pr, None, Some(&h2)))
        .await
        .unwrap();
    assert!(reply.contains("newTag 6.7.0 → 6.8.1"), "{reply}");
    assert_eq!(promotion_prs(&w), 1);
    w.finish().await;
}
