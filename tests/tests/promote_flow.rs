//! Merge-to-deploy end to end: a real bare repository served by the fake GitHub, the GitHub
//! forge, the promotion engine pushing over `file://`, and the audit store.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use capstan_tests::fake_github::MergeMethod;
use capstan_tests::promote_world::{PRODUCTION, REPO, STAGING, World, podinfo_app, real};
use capstan_worker::forge::{
    Access, ChangedFile, CheckRun, Checks, Comments, CommitStatus, Forge, ForgeError, Identity,
    Inventory, IssueComment, NewPullRequest, OpenPullRequest, Permission, Permissions, PullRequest,
    PullSummary, PullUpdate, Pulls, Reaction,
};
use capstan_worker::store::{PromotionFilter, PromotionStatus, PromotionStore};

const BRANCH: &str = "capstan/promote/podinfo/production";

fn replace_once(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let s = String::from_utf8(bytes.to_vec()).unwrap();
    assert_eq!(s.matches(from).count(), 1, "{from:?} once in {s}");
    s.replacen(from, to, 1).into_bytes()
}

fn sample_files() -> Vec<(&'static str, Vec<u8>)> {
    vec![
        (".capstan.yaml", real(".capstan.yaml")),
        (STAGING, real(STAGING)),
        (PRODUCTION, real(PRODUCTION)),
    ]
}

/// This repository's own `.capstan.yaml` and podinfo overlays, with podinfo-staging Synced and
/// Healthy in ArgoCD as its `requireHealthy` condition asks.
async fn sample_world() -> World {
    let files = sample_files();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    World::with_healthy_podinfo(&refs).await
}

/// A person's pull request that bumps the staging image tag, merged with `method`.
fn merge_bump(w: &World, tag: &str, method: MergeMethod) -> (u64, String, String) {
    let staging = w.file("main", STAGING);
    let current = String::from_utf8(staging.clone()).unwrap();
    let old = current
        .lines()
        .find_map(|l| l.trim().strip_prefix("newTag: "))
        .unwrap()
        .to_string();
    let bumped = replace_once(
        &staging,
        &format!("newTag: {old}"),
        &format!("newTag: {tag}"),
    );
    w.commit(
        &format!("bump-{tag}"),
        Some("main"),
        "bump podinfo",
        &[(STAGING, Some(&bumped))],
    );
    let pr = w.fake.open_pull(
        REPO,
        &format!("bump-{tag}"),
        "main",
        "Bump podinfo",
        "alice",
    );
    let (before, after) = w.fake.merge_pull(REPO, pr, method).unwrap();
    (pr, before, after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_staging_bump_opens_one_promotion_pr_with_exactly_that_tag() {
    let w = sample_world().await;
    let production_before = w.file("main", PRODUCTION);
    let (pr, before, after) = merge_bump(&w, "6.9.2", MergeMethod::Merge);

    // The push arrives three times and the pull_request.closed event once.
    for _ in 0..3 {
        w.engine
            .on_push(&w.push_event(&before, &after))
            .await
            .unwrap();
    }
    let outcomes = w.engine.on_merged(&w.merged_event(pr)).await.unwrap();
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].status, PromotionStatus::Opened);

    let promos: Vec<_> = w
        .fake
        .pulls(REPO)
        .into_iter()
        .filter(|p| p.head_ref == BRANCH)
        .collect();
    assert_eq!(promos.len(), 1, "exactly one promotion pull request");
    let promo = &promos[0];
    assert_eq!(
        (promo.state.as_str(), promo.base_ref.as_str()),
        ("open", "main")
    );
    let (_, body, _) = w.fake.pull(REPO, promo.number).unwrap();
    assert!(body.contains(&format!("Source: #{pr}")), "{body}");
    assert!(body.contains("newTag 6.7.0 → 6.9.2"), "{body}");

    // Exactly one commit on the branch, on top of the merge, changing exactly the tag.
    let commits = w.promotion_commits(BRANCH);
    assert_eq!(commits.len(), 1);
    let git = w.git();
    let c = git.find_commit(commits[0].0).unwrap();
    assert_eq!(
        c.parent_ids().map(|p| p.to_string()).collect::<Vec<_>>(),
        vec![after.clone()]
    );
    assert!(
        commits[0]
            .1
            .contains(&format!("Capstan-Source: {REPO}@{after} (#{pr})")),
        "{}",
        commits[0].1
    );
    assert_eq!(
        w.file(BRANCH, PRODUCTION),
        replace_once(&production_before, "newTag: 6.7.0", "newTag: 6.9.2")
    );
    assert_eq!(w.file(BRANCH, STAGING), w.file("main", STAGING));

    // One audit record, updated in place by every replay.
    let records = w
        .store
        .list_promotions(&PromotionFilter::default())
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "{records:#?}");
    let r = &records[0];
    assert_eq!(
        (r.status, r.result_pr, r.source_pr),
        (PromotionStatus::Opened, Some(promo.number), Some(pr))
    );
    assert_eq!(
        (
            r.source_env.as_str(),
            r.target_env.as_str(),
            r.trigger.as_str()
        ),
        ("staging", "production", "merge")
    );
    assert_eq!(
        r.summary,
        "images ghcr.io/stefanprodan/podinfo: newTag 6.7.0 → 6.9.2"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_after_its_push_is_finished_by_the_rerun_without_a_second_commit() {
    let w = sample_world().await;
    let (_, before, after) = merge_bump(&w, "6.9.3", MergeMethod::Squash);
    let push = w.push_event(&before, &after);

    // First run: the push lands, then the process "dies" before the pull request exists.
    let dying = (*w.engine).clone().with_forge(Arc::new(FailAfterPush {
        inner: w.engine.forge().cloned().unwrap(),
        origin: w.origin.clone(),
    }));
    let err = dying.on_push(&push).await;
    assert!(err.is_err(), "the first run must die after pushing");
    assert_eq!(w.promotion_commits(BRANCH).len(), 1, "the push happened");
    assert!(
        w.fake.pulls(REPO).iter().all(|p| p.head_ref != BRANCH),
        "no PR yet"
    );
    let pending = w
        .store
        .list_promotions(&PromotionFilter::default())
        .await
        .unwrap();
    assert_eq!(pending[0].status, PromotionStatus::Pending);

    // The job runs again from scratch.
    let outcomes = w.engine.on_push(&push).await.unwrap();
    assert_eq!(outcomes[0].status, PromotionStatus::Opened);
    let detail = outcomes[0].detail.clone().unwrap_or_default();
    assert!(
        detail.starts_with("already on the promotion branch"),
        "{detail}"
    );
    assert_eq!(w.promotion_commits(BRANCH).len(), 1, "still one commit");
    assert_eq!(
        w.fake
            .pulls(REPO)
            .iter()
            .filter(|p| p.head_ref == BRANCH)
            .count(),
        1
    );
    let records = w
        .store
        .list_promotions(&PromotionFilter::default())
        .await
        .unwrap();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, PromotionStatus::Opened);
}

/// A forge that refuses to open pull requests once the promotion branch has moved: the process
/// "dies" between its push and the pull request. Every other call goes to the real one.
struct FailAfterPush {
    inner: Arc<dyn Forge>,
    origin: std::path::PathBuf,
}

#[async_trait::async_trait]
impl Inventory for FailAfterPush {
    async fn repositories(&self) -> Result<Vec<String>, ForgeError> {
        self.inner.repositories().await
    }
    async fn open_pull_requests(&self, repo: &str) -> Result<Vec<OpenPullRequest>, ForgeError> {
        self.inner.open_pull_requests(repo).await
    }
}

#[async_trait::async_trait]
impl Pulls for FailAfterPush {
    async fn pull_request(&self, repo: &str, number: u64) -> Result<PullRequest, ForgeError> {
        self.inner.pull_request(repo, number).await
    }
    async fn pull_summary(&self, repo: &str, number: u64) -> Result<PullSummary, ForgeError> {
        self.inner.pull_summary(repo, number).await
    }
    async fn changed_files(&self, repo: &str, number: u64) -> Result<Vec<ChangedFile>, ForgeError> {
        self.inner.changed_files(repo, number).await
    }
    async fn commit_pull_requests(
        &self,
        repo: &str,
        sha: &str,
    ) -> Result<Vec<PullSummary>, ForgeError> {
        self.inner.commit_pull_requests(repo, sha).await
    }
    async fn pull_requests_by_head(
        &self,
        repo: &str,
        branch: &str,
    ) -> Result<Vec<PullSummary>, ForgeError> {
        self.inner.pull_requests_by_head(repo, branch).await
    }
    async fn update_pull_request(
        &self,
        repo: &str,
        number: u64,
        update: &PullUpdate,
    ) -> Result<PullSummary, ForgeError> {
        self.inner.update_pull_request(repo, number, update).await
    }
    async fn create_pull_request(
        &self,
        repo: &str,
        _pr: &NewPullRequest,
    ) -> Result<PullSummary, ForgeError> {
        let now = git2::Repository::open_bare(&self.origin)
            .unwrap()
            .refname_to_id(&format!("refs/heads/{BRANCH}"))
            .ok();
        assert!(
            now.is_some(),
            "the branch was pushed before the PR is opened"
        );
        Err(ForgeError::Other {
            repo: repo.into(),
            message: "killed".into(),
        })
    }
}

#[async_trait::async_trait]
impl Comments for FailAfterPush {
    async fn comments(&self, repo: &str, number: u64) -> Result<Vec<IssueComment>, ForgeError> {
        self.inner.comments(repo, number).await
    }
    async fn create_comment(
        &self,
        repo: &str,
        number: u64,
        body: &str,
    ) -> Result<IssueComment, ForgeError> {
        self.inner.create_comment(repo, number, body).await
    }
    async fn update_comment(
        &self,
        repo: &str,
        number: u64,
        id: u64,
        body: &str,
    ) -> Result<IssueComment, ForgeError> {
        self.inner.update_comment(repo, number, id, body).await
    }
    async fn delete_comment(&self, repo: &str, number: u64, id: u64) -> Result<(), ForgeError> {
        self.inner.delete_comment(repo, number, id).await
    }
    async fn add_reaction(
        &self,
        repo: &str,
        number: u64,
        id: u64,
        reaction: Reaction,
    ) -> Result<(), ForgeError> {
        self.inner.add_reaction(repo, number, id, reaction).await
    }
    fn comment_limit(&self) -> usize {
        self.inner.comment_limit()
    }
}

#[async_trait::async_trait]
impl Checks for FailAfterPush {
    async fn create_check_run(&self, repo: &str, run: &CheckRun) -> Result<u64, ForgeError> {
        self.inner.create_check_run(repo, run).await
    }
    async fn update_check_run(
        &self,
        repo: &str,
        id: u64,
        run: &CheckRun,
    ) -> Result<(), ForgeError> {
        self.inner.update_check_run(repo, id, run).await
    }
    async fn find_check_run(
        &self,
        repo: &str,
        head_sha: &str,
        name: &str,
    ) -> Result<Option<u64>, ForgeError> {
        self.inner.find_check_run(repo, head_sha, name).await
    }
    async fn create_commit_status(
        &self,
        repo: &str,
        sha: &str,
        status: &CommitStatus,
    ) -> Result<(), ForgeError> {
        self.inner.create_commit_status(repo, sha, status).await
    }
}

#[async_trait::async_trait]
impl Permissions for FailAfterPush {
    async fn collaborator_permission(
        &self,
        repo: &str,
        user: &str,
    ) -> Result<Permission, ForgeError> {
        self.inner.collaborator_permission(repo, user).await
    }
}

#[async_trait::async_trait]
impl Access for FailAfterPush {
    async fn identity(&self) -> Result<Identity, ForgeError> {
        self.inner.identity().await
    }
    async fn git_token(&self, repo: &str) -> Result<Option<String>, ForgeError> {
        self.inner.git_token(repo).await
    }
}

fn overlay(env: &str, images: &[(&str, &str)]) -> Vec<u8> {
    let mut s = format!(
        "# {env}: only Capstan changes the tags below once promoted.\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: podinfo-{env}\nresources:\n  - ../../base\nimages:\n"
    );
    for (name, tag) in images {
        s.push_str(&format!(
            "  - name: {name}\n    newTag: {tag}   # keep this comment\n"
        ));
    }
    s.into_bytes()
}

fn overlay_path(env: &str) -> String {
    format!("applications/workloads/podinfo/overlays/{env}/kustomization.yaml")
}

fn rule(name: &str, from: &str, to: &str) -> String {
    format!(
        "    - name: {name}\n      app: podinfo\n      from:\n        environment: {from}\n        path: applications/workloads/podinfo/overlays/{from}\n      to:\n        environment: {to}\n        path: applications/workloads/podinfo/overlays/{to}\n      copy: [images]\n"
    )
}

const PODINFO: &str = "ghcr.io/stefanprodan/podinfo";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_merged_promotion_pr_triggers_the_next_stage() {
    let settings = format!(
        "environments: [{{name: dev}}, {{name: staging}}, {{name: production}}]\npromotion:\n  mode: pull-request\n  rules:\n{}{}",
        rule("dev-to-staging", "dev", "staging"),
        rule("staging-to-production", "staging", "production")
    );
    let envs = ["dev", "staging", "production"];
    let files: Vec<(String, Vec<u8>)> = envs
        .iter()
        .map(|e| (overlay_path(e), overlay(e, &[(PODINFO, "6.7.0")])))
        .chain([(".capstan.yaml".to_string(), settings.into_bytes())])
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(p, b)| (p.as_str(), b.as_slice()))
        .collect();
    let w = World::new(&refs).await;

    // A person bumps dev.
    let dev = overlay_path("dev");
    let bumped = replace_once(&w.file("main", &dev), "newTag: 6.7.0", "newTag: 7.0.0");
    w.commit("bump", Some("main"), "bump dev", &[(&dev, Some(&bumped))]);
    let pr1 = w.fake.open_pull(REPO, "bump", "main", "Bump dev", "alice");
    let (b1, a1) = w.fake.merge_pull(REPO, pr1, MergeMethod::Merge).unwrap();
    let out = w.engine.on_push(&w.push_event(&b1, &a1)).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].target_env.as_str(), out[0].status),
        ("staging", PromotionStatus::Opened)
    );
    let pr2 = out[0].result_pr.unwrap();
    assert_eq!(
        w.fake.pull(REPO, pr2).unwrap().0.head_ref,
        "capstan/promote/podinfo/staging"
    );
    assert!(
        w.fake.pulls(REPO).iter().all(|p| p.head_ref != BRANCH),
        "production waits for staging"
    );

    // Merging the staging promotion promotes on to production.
    let (b2, a2) = w.fake.merge_pull(REPO, pr2, MergeMethod::Merge).unwrap();
    let out = w.engine.on_push(&w.push_event(&b2, &a2)).await.unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(
        (out[0].target_env.as_str(), out[0].status),
        ("production", PromotionStatus::Opened)
    );
    let pr3 = out[0].result_pr.unwrap();
    let (pull3, body3, _) = w.fake.pull(REPO, pr3).unwrap();
    assert_eq!(pull3.head_ref, BRANCH);
    assert!(body3.contains(&format!("Source: #{pr2}")), "{body3}");
    assert_eq!(
        w.file(BRANCH, &overlay_path("production")),
        replace_once(
            &overlay("production", &[(PODINFO, "6.7.0")]),
            "newTag: 6.7.0",
            "newTag: 7.0.0"
        )
    );

    // The last stage promotes nowhere.
    let (b3, a3) = w.fake.merge_pull(REPO, pr3, MergeMethod::Squash).unwrap();
    assert!(
        w.engine
            .on_push(&w.push_event(&b3, &a3))
            .await
            .unwrap()
            .is_empty()
    );
    for env in envs {
        let text = String::from_utf8(w.file("main", &overlay_path(env))).unwrap();
        assert!(
            text.contains("newTag: 7.0.0   # keep this comment"),
            "{env}: {text}"
        );
    }
    assert_eq!(
        w.fake.pulls(REPO).len(),
        3,
        "no other pull request was opened"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_direct_promotions_racing_on_one_overlay_both_land_without_force() {
    let settings = format!(
        "environments: [{{name: staging}}, {{name: production}}]\npromotion:\n  mode: direct\n  rules:\n{}",
        rule("images", "staging", "production")
    );
    let images = [(PODINFO, "6.7.0"), ("docker.io/library/redis", "7.2.0")];
    let (staging, production) = (overlay_path("staging"), overlay_path("production"));
    let w = World::new(&[
        (".capstan.yaml", settings.as_bytes()),
        (&staging, &overlay("staging", &images)),
        (&production, &overlay("production", &images)),
    ])
    .await;
    let start = w.tip("main").unwrap().to_string();
    // Two changes land on main back to back: one bumps podinfo, the next redis.
    let s1_text = replace_once(&w.file("main", &staging), "newTag: 6.7.0", "newTag: 6.8.0");
    let s1 = w
        .commit("main", None, "bump podinfo", &[(&staging, Some(&s1_text))])
        .to_string();
    let s2_text = replace_once(&s1_text, "newTag: 7.2.0", "newTag: 7.4.0");
    let s2 = w
        .commit("main", None, "bump redis", &[(&staging, Some(&s2_text))])
        .to_string();

    // Both promotions compute on the same tip and meet before pushing.
    let barrier = Arc::new(tokio::sync::Barrier::new(2));
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let engine = (*w.engine).clone().with_before_push(Arc::new(move || {
        let n = calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let barrier = barrier.clone();
        Box::pin(async move {
            if n < 2 {
                barrier.wait().await;
            }
        })
    }));
    let (push1, push2) = (w.push_event(&start, &s1), w.push_event(&s1, &s2));
    let (first, second) = tokio::join!(engine.on_push(&push1), engine.on_push(&push2));
    let outcomes: Vec<_> = first.unwrap().into_iter().chain(second.unwrap()).collect();
    assert_eq!(outcomes.len(), 2);
    assert!(
        outcomes
            .iter()
            .all(|o| o.status == PromotionStatus::Committed),
        "{outcomes:#?}"
    );
    let retried: Vec<_> = outcomes
        .iter()
        .filter(|o| o.detail.as_deref() == Some("landed after 1 retry"))
        .collect();
    assert_eq!(
        retried.len(),
        1,
        "exactly one needed a retry: {outcomes:#?}"
    );

    let want = replace_once(
        &replace_once(
            &overlay("production", &images),
            "newTag: 6.7.0",
            "newTag: 6.8.0",
        ),
        "newTag: 7.2.0",
        "newTag: 7.4.0",
    );
    assert_eq!(w.file("main", &production), want);
    // Linear history on top of s2: nothing was overwritten.
    let git = w.git();
    let tip = git.find_commit(w.tip("main").unwrap()).unwrap();
    let middle = tip.parent(0).unwrap();
    assert_eq!(tip.parent_count(), 1);
    assert_eq!(middle.parent_id(0).unwrap().to_string(), s2);
    assert_eq!(w.promotion_commits("main").len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_without_the_image_is_a_conflict_reported_on_the_source_pr() {
    let settings = format!(
        "environments: [{{name: staging}}, {{name: production}}]\npromotion:\n  mode: direct\n  rules:\n{}",
        rule("images", "staging", "production")
    );
    let (staging, production) = (overlay_path("staging"), overlay_path("production"));
    let w = World::new(&[
        (".capstan.yaml", settings.as_bytes()),
        (
            &staging,
            &overlay(
                "staging",
                &[(PODINFO, "6.7.0"), ("docker.io/library/redis", "7.2.0")],
            ),
        ),
        (&production, &overlay("production", &[(PODINFO, "6.7.0")])),
    ])
    .await;
    let text = replace_once(&w.file("main", &staging), "newTag: 7.2.0", "newTag: 7.4.0");
    w.commit(
        "redis",
        Some("main"),
        "bump redis",
        &[(&staging, Some(&text))],
    );
    let pr = w
        .fake
        .open_pull(REPO, "redis", "main", "Bump redis", "alice");
    let (before, after) = w.fake.merge_pull(REPO, pr, MergeMethod::Rebase).unwrap();
    let production_before = w.file("main", &production);
    let out = w
        .engine
        .on_push(&w.push_event(&before, &after))
        .await
        .unwrap();
    assert_eq!(out[0].status, PromotionStatus::Conflict);
    assert_eq!(
        w.file("main", &production),
        production_before,
        "nothing was committed"
    );
    let comments = w.fake.comments(REPO, pr);
    assert_eq!(comments.len(), 1, "one note on the source pull request");
    assert!(
        comments[0].body.contains("did not land"),
        "{}",
        comments[0].body
    );
    assert!(
        comments[0]
            .body
            .contains("has no images entry for docker.io/library/redis"),
        "{}",
        comments[0].body
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_with_nothing_to_change_opens_no_pull_request() {
    let w = sample_world().await;
    // Production is already at the tag staging moves to.
    let prod = replace_once(
        &w.file("main", PRODUCTION),
        "newTag: 6.7.0",
        "newTag: 6.9.9",
    );
    w.commit(
        "main",
        None,
        "production hotfix",
        &[(PRODUCTION, Some(&prod))],
    );
    let (_, before, after) = merge_bump(&w, "6.9.9", MergeMethod::Merge);
    let out = w
        .engine
        .on_push(&w.push_event(&before, &after))
        .await
        .unwrap();
    assert_eq!(out[0].status, PromotionStatus::NoChange);
    assert!(
        out[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("no pull request opened")
    );
    assert!(w.fake.pulls(REPO).iter().all(|p| p.head_ref != BRANCH));
    assert!(w.tip(BRANCH).is_none(), "no branch pushed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_waits_for_its_soak_time_and_schedules_its_rerun() {
    let soaking = rule("images", "staging", "production") + "      conditions: {soak: 36500d}\n";
    let settings = format!(
        "environments: [{{name: staging}}, {{name: production}}]\npromotion:\n  mode: direct\n  rules:\n{soaking}"
    );
    let (staging, production) = (overlay_path("staging"), overlay_path("production"));
    let w = World::new(&[
        (".capstan.yaml", settings.as_bytes()),
        (&staging, &overlay("staging", &[(PODINFO, "6.7.0")])),
        (&production, &overlay("production", &[(PODINFO, "6.7.0")])),
    ])
    .await;
    let start = w.tip("main").unwrap().to_string();
    let text = replace_once(&w.file("main", &staging), "newTag: 6.7.0", "newTag: 6.8.0");
    let after = w
        .commit("main", None, "bump", &[(&staging, Some(&text))])
        .to_string();
    let out = w
        .engine
        .on_push(&w.push_event(&start, &after))
        .await
        .unwrap();
    assert_eq!(out[0].status, PromotionStatus::Pending);
    assert!(
        out[0]
            .detail
            .as_deref()
            .unwrap_or("")
            .contains("waiting for the soak time"),
        "{out:?}"
    );
    assert!(
        w.promotion_commits("main").is_empty(),
        "nothing promoted yet"
    );
    let key = format!("default_branch_push:{REPO}@{after}:soak:{}", out[0].key);
    let jobs = w.backend.queue.jobs_by_dedupe_key(&key).await.unwrap();
    assert_eq!(jobs.len(), 1, "the re-run is queued");
    assert!(jobs[0].run_after > capstan_worker::queue::now_ms() + 86_400_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promotion_pr_left_without_a_diff_is_closed_with_a_note() {
    let w = sample_world().await;
    let (pr, before, after) = merge_bump(&w, "6.9.4", MergeMethod::Merge);
    let out = w
        .engine
        .on_push(&w.push_event(&before, &after))
        .await
        .unwrap();
    let promo = out[0].result_pr.unwrap();
    // Someone promotes by hand on main, so the promotion pull request has nothing left to do.
    let by_hand = w.file(BRANCH, PRODUCTION);
    w.commit(
        "main",
        None,
        "production by hand",
        &[(PRODUCTION, Some(&by_hand))],
    );
    // Promoting again by command finds the values everywhere.
    let reply = capstan_worker::services::Promoter::promote(
        &*w.engine,
        &capstan_tests::promote_world::command_request(
            pr,
            "production",
            Some(&w.fake.pull(REPO, pr).unwrap().0.head_sha),
            None,
        ),
    )
    .await
    .unwrap();
    assert!(
        reply.contains(&format!("pull request #{promo} closed")),
        "{reply}"
    );
    let (pull, _, _) = w.fake.pull(REPO, promo).unwrap();
    assert_eq!(pull.state, "closed");
    assert!(!pull.merged);
    let notes = w.fake.comments(REPO, promo);
    assert_eq!(notes.len(), 1);
    assert!(
        notes[0].body.contains("nothing left to change"),
        "{}",
        notes[0].body
    );
}

fn detail(o: &capstan_worker::promote::Outcome) -> &str {
    o.detail.as_deref().unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_healthy_holds_a_promotion_until_the_source_app_is_synced_and_healthy() {
    let files = sample_files();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    let mut w =
        World::with_argocd(&refs, vec![podinfo_app("staging", "OutOfSync", "Degraded")]).await;
    w.engine = Arc::new((*w.engine).clone().with_health_checks(2));
    let (pr, before, after) = merge_bump(&w, "6.9.7", MergeMethod::Merge);

    let out = w
        .engine
        .on_push(&w.push_event(&before, &after))
        .await
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].status, PromotionStatus::Pending);
    let why = detail(&out[0]);
    assert!(
        why.contains("podinfo-staging is OutOfSync and Degraded, not Synced and Healthy"),
        "{why}"
    );
    assert!(why.contains("check 1 of 2"), "{why}");
    assert!(w.fake.pulls(REPO).iter().all(|p| p.head_ref != BRANCH));
    assert!(w.tip(BRANCH).is_none(), "nothing promoted");
    let argo = w.argocd.as_ref().unwrap();
    assert_eq!(
        argo.calls_to("GET", "/api/v1/applications/podinfo-staging")
            .len(),
        1
    );
    let base = format!("default_branch_push:{REPO}@{after}:healthy:{}", out[0].key);
    let first = w
        .backend
        .queue
        .jobs_by_dedupe_key(&format!("{base}:1"))
        .await
        .unwrap();
    assert_eq!(first.len(), 1, "a re-check is queued");
    assert!(first[0].run_after > capstan_worker::queue::now_ms());

    // The re-check (the same push again) still finds it degraded: the second and last one.
    let out = w
        .engine
        .on_push(&w.push_event(&before, &after))
        .await
        .unwrap();
    assert_eq!(out[0].status, PromotionStatus::Pending);
    assert!(detail(&out[0]).contains("check 2 of 2"), "{out:?}");
    // Bounded: after the last re-check the promotion is refused, with no further job.
    let out = w
        .engine
        .on_push(&w.push_event(&before, &after))
        .await
        .unwrap();
    assert_eq!(out[0].status, PromotionStatus::Refused);
    assert!(
        detail(&out[0]).contains("gave up after 2 checks"),
        "{out:?}"
    );
    assert!(
        w.backend
            .queue
            .jobs_by_dedupe_key(&format!("{base}:3"))
            .await
            .unwrap()
            .is_empty()
    );

    // Healthy now: the next delivery promotes, into the same audit record.
    argo.add_app(podinfo_app("staging", "Synced", "Healthy"));
    let out = w.engine.on_merged(&w.merged_event(pr)).await.unwrap();
    assert_eq!(out[0].status, PromotionStatus::Opened, "{out:?}");
    assert!(w.tip(BRANCH).is_some());
    let records = w
        .store
        .list_promotions(&PromotionFilter::default())
        .await
        .unwrap();
    assert_eq!(records.len(), 1, "{records:#?}");
    assert_eq!(records[0].status, PromotionStatus::Opened);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_healthy_without_argocd_refuses_instead_of_guessing() {
    let files = sample_files();
    let refs: Vec<(&str, &[u8])> = files.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    let w = World::new(&refs).await;
    let (_, before, after) = merge_bump(&w, "6.9.8", MergeMethod::Merge);
    let out = w
        .engine
        .on_push(&w.push_event(&before, &after))
        .await
        .unwrap();
    assert_eq!(out[0].status, PromotionStatus::Refused);
    assert!(
        detail(&out[0]).contains("requireHealthy needs ArgoCD configured"),
        "{out:?}"
    );
    assert!(w.tip(BRANCH).is_none(), "nothing promoted");
    let records = w
        .store
        .list_promotions(&PromotionFilter::default())
        .await
        .unwrap();
    assert_eq!(records[0].status, PromotionStatus::Refused);
    assert!(
        records[0]
            .detail
            .as_deref()
            .unwrap()
            .contains("requireHealthy needs ArgoCD configured")
    );
}
