//! The GitHub forge against the in-process fake GitHub: pagination, limits, both auth modes,
//! rate limits, error mapping, check runs, permissions, and missed-event recovery.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_tests::fake_github::{FakeApp, FakeGitHub, FakePull};
use capstan_worker::forge::github::{AppKey, GitHubAuth, GitHubConfig, GitHubForge};
use capstan_worker::forge::{
    Access, Annotation, AnnotationLevel, CheckConclusion, CheckOutput, CheckRun, CheckStatus,
    Checks, Comments, CommitState, CommitStatus, ForgeError, Inventory, Permission, Permissions,
    PullRequestState, Pulls, Reaction,
};
use capstan_worker::jobs::PrCheck;
use capstan_worker::queue::Finish;
use capstan_worker::recovery::recover_once;

const PAT: &str = "ghp_test_personal_token_0123456789abcdef";
const REPO: &str = "acme/gitops";
const APP_ID: u64 = 4242;
const INSTALLATION: u64 = 77;

fn sha(c: char) -> String {
    c.to_string().repeat(40)
}

fn pull(number: u64, head: char) -> FakePull {
    FakePull {
        number,
        state: "open".into(),
        title: format!("PR {number}"),
        author: "alice".into(),
        head_sha: sha(head),
        head_ref: format!("topic-{number}"),
        base_sha: sha('0'),
        base_ref: "main".into(),
        ..FakePull::default()
    }
}

fn test_key() -> AppKey {
    let path = capstan_tests::own_fixtures().join("TEST-ONLY-github-app-key.pem");
    AppKey::from_file(&path).unwrap()
}

fn fast(mut cfg: GitHubConfig) -> GitHubConfig {
    cfg.max_rate_limit_wait = Duration::from_secs(5);
    cfg.timeout = Duration::from_secs(10);
    cfg
}

async fn token_setup(prefix: &str) -> (FakeGitHub, GitHubForge) {
    let fake = FakeGitHub::start(PAT, prefix, None).await;
    fake.add_pull(REPO, pull(7, 'a'));
    let cfg = GitHubConfig::new(
        fake.api_url().parse().unwrap(),
        GitHubAuth::Token(PAT.into()),
    );
    let forge = GitHubForge::new(fast(cfg)).unwrap();
    (fake, forge)
}

/// An App-authenticated forge whose clock the test can move forward.
async fn app_setup() -> (FakeGitHub, GitHubForge, Arc<AtomicU64>) {
    let key = test_key();
    let fake = FakeGitHub::start(
        PAT,
        "",
        Some(FakeApp {
            app_id: APP_ID,
            slug: "capstan".into(),
            public_key_der: key.public_key_der(),
            installations: vec![(INSTALLATION, "acme".into())],
        }),
    )
    .await;
    fake.add_pull(REPO, pull(7, 'a'));
    let offset = Arc::new(AtomicU64::new(0));
    let clock_offset = offset.clone();
    let mut cfg = GitHubConfig::new(
        fake.api_url().parse().unwrap(),
        GitHubAuth::App {
            app_id: APP_ID,
            key: Arc::new(key),
        },
    );
    cfg.clock = Arc::new(move || {
        SystemTime::now() + Duration::from_secs(clock_offset.load(Ordering::SeqCst))
    });
    let forge = GitHubForge::new(fast(cfg)).unwrap();
    (fake, forge, offset)
}

fn token_requests(fake: &FakeGitHub) -> usize {
    fake.calls_to(
        "POST",
        &format!("/app/installations/{INSTALLATION}/access_tokens"),
    )
    .len()
}

#[tokio::test]
async fn comment_pagination_walks_every_page() {
    let (fake, forge) = token_setup("").await;
    for i in 0..250 {
        fake.add_comment(REPO, 7, "bob", false, &format!("comment {i}"));
    }
    let comments = forge.comments(REPO, 7).await.unwrap();
    assert_eq!(comments.len(), 250);
    assert_eq!(comments[0].body, "comment 0");
    assert_eq!(comments[249].body, "comment 249");
    let calls = fake.calls_to("GET", "/repos/acme/gitops/issues/7/comments");
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(calls.iter().all(|c| c.query.contains("per_page=100")));
    assert!(calls[2].query.contains("page=3"));
}

#[tokio::test]
async fn changed_files_and_open_pulls_walk_every_page() {
    let (fake, forge) = token_setup("").await;
    let names: Vec<String> = (0..230).map(|i| format!("apps/a{i}/values.yaml")).collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    fake.set_files(REPO, 7, &refs);
    for n in 100..205 {
        fake.add_pull(REPO, pull(n, 'b'));
    }
    let files = forge.changed_files(REPO, 7).await.unwrap();
    assert_eq!(
        files.iter().map(|f| f.filename.clone()).collect::<Vec<_>>(),
        names
    );
    assert_eq!(
        fake.calls_to("GET", "/repos/acme/gitops/pulls/7/files")
            .len(),
        3
    );
    let open = forge.open_pull_requests(REPO).await.unwrap();
    assert_eq!(open.len(), 106);
    assert_eq!(fake.calls_to("GET", "/repos/acme/gitops/pulls").len(), 2);
}

#[tokio::test]
async fn overlong_comment_gets_githubs_422_message() {
    let (fake, forge) = token_setup("").await;
    let err = forge
        .create_comment(REPO, 7, &"x".repeat(70_000))
        .await
        .unwrap_err();
    match &err {
        ForgeError::Validation { repo, message } => {
            assert_eq!(repo, REPO);
            assert!(message.contains("Body is too long"), "{message}");
        }
        other => panic!("expected a validation error, got {other:?}"),
    }
    assert!(fake.comments(REPO, 7).is_empty());
    // The limit itself is accepted.
    let ok = forge
        .create_comment(REPO, 7, &"y".repeat(65_536))
        .await
        .unwrap();
    assert_eq!(fake.comments(REPO, 7)[0].id, ok.id);
}

#[tokio::test]
async fn token_auth_sends_bearer_and_falls_back_to_statuses() {
    // Enterprise Server layout: the API lives under /api/v3.
    let (fake, forge) = token_setup("/api/v3").await;
    let pr = forge.pull_request(REPO, 7).await.unwrap();
    assert_eq!(pr.head_sha, sha('a'));
    assert_eq!(pr.base_sha, sha('0'));
    assert_eq!(pr.state, PullRequestState::Open);
    assert!(!pr.draft && !pr.merged);
    let me = forge.identity().await.unwrap();
    assert_eq!(me.login, "capstan-user");
    assert!(!me.can_create_check_runs);
    let calls = fake.calls();
    assert!(!calls.is_empty());
    for c in &calls {
        assert_eq!(
            c.authorization.as_deref(),
            Some(format!("Bearer {PAT}").as_str())
        );
    }
    assert_eq!(calls[0].path, "/repos/acme/gitops/pulls/7");

    let run = CheckRun {
        name: "capstan".into(),
        head_sha: sha('a'),
        status: CheckStatus::InProgress,
        conclusion: None,
        details_url: None,
        external_id: None,
        output: None,
    };
    let before = fake.calls().len();
    assert!(matches!(
        forge.create_check_run(REPO, &run).await,
        Err(ForgeError::Unsupported { .. })
    ));
    assert_eq!(
        fake.calls().len(),
        before,
        "no request for an impossible check run"
    );
    forge
        .create_commit_status(
            REPO,
            &sha('a'),
            &CommitStatus {
                state: CommitState::Failure,
                context: "capstan".into(),
                description: Some("d".repeat(300)),
                target_url: Some("https://capstan.example/runs/1".into()),
            },
        )
        .await
        .unwrap();
    let statuses = fake.statuses(REPO);
    assert_eq!(statuses.len(), 1);
    assert_eq!(statuses[0].0, sha('a'));
    assert_eq!(statuses[0].1["state"], "failure");
    assert_eq!(statuses[0].1["description"].as_str().unwrap().len(), 140);
    // A status on anything but a full commit id is refused before any request.
    let before = fake.calls().len();
    assert!(matches!(
        forge
            .create_commit_status(
                REPO,
                "main",
                &CommitStatus {
                    state: CommitState::Pending,
                    context: "capstan".into(),
                    description: None,
                    target_url: None,
                },
            )
            .await,
        Err(ForgeError::Validation { .. })
    ));
    assert_eq!(fake.calls().len(), before);
}

#[tokio::test]
async fn app_auth_reuses_one_installation_token_until_near_expiry() {
    let (fake, forge, offset) = app_setup().await;
    let me = forge.identity().await.unwrap();
    assert_eq!(me.login, "capstan[bot]");
    assert_eq!(me.app_slug.as_deref(), Some("capstan"));
    // Concurrent first calls still buy a single token.
    let (a, b, c) = tokio::join!(
        forge.pull_request(REPO, 7),
        forge.pull_request(REPO, 7),
        forge.pull_request(REPO, 7)
    );
    a.unwrap();
    b.unwrap();
    c.unwrap();
    assert_eq!(token_requests(&fake), 1);
    let pr_calls = fake.calls_to("GET", "/repos/acme/gitops/pulls/7");
    assert_eq!(pr_calls.len(), 3);
    let first = pr_calls[0].authorization.clone().unwrap();
    assert!(
        pr_calls
            .iter()
            .all(|c| c.authorization.as_ref() == Some(&first))
    );
    let token = first.strip_prefix("Bearer ").unwrap();
    assert!(
        token.len() > 40,
        "long installation tokens pass through: {token}"
    );
    // The token request itself was signed as the App (the fake verified the RS256 JWT).
    let token_call = &fake.calls_to(
        "POST",
        &format!("/app/installations/{INSTALLATION}/access_tokens"),
    )[0];
    assert_eq!(token_call.status, 201);
    assert_eq!(
        token_call
            .authorization
            .as_ref()
            .unwrap()
            .matches('.')
            .count(),
        2
    );

    // 56 minutes later the one-hour token has less than the 5-minute margin left: refreshed once.
    offset.store(56 * 60, Ordering::SeqCst);
    fake.advance_clock(Duration::from_secs(56 * 60));
    forge.pull_request(REPO, 7).await.unwrap();
    forge.pull_request(REPO, 7).await.unwrap();
    assert_eq!(token_requests(&fake), 2);
    let pr_calls = fake.calls_to("GET", "/repos/acme/gitops/pulls/7");
    let latest = pr_calls.last().unwrap().authorization.clone().unwrap();
    assert_ne!(latest, first);
    assert_eq!(pr_calls[3].authorization, pr_calls[4].authorization);

    // A revoked token is replaced once and the call still succeeds.
    fake.revoke_installation_tokens();
    forge.pull_request(REPO, 7).await.unwrap();
    assert_eq!(token_requests(&fake), 3);
    let statuses: Vec<u16> = fake
        .calls_to("GET", "/repos/acme/gitops/pulls/7")
        .iter()
        .skip(5)
        .map(|c| c.status)
        .collect();
    assert_eq!(statuses, vec![401, 200]);
}

#[tokio::test]
async fn app_comments_reactions_and_check_runs() {
    let (fake, forge, _) = app_setup().await;
    let me = forge.identity().await.unwrap();
    let c = forge
        .create_comment(REPO, 7, "<!-- capstan -->\nreport v1")
        .await
        .unwrap();
    assert_eq!(c.author, me.login);
    assert!(c.author_is_bot);
    let edited = forge
        .update_comment(REPO, 7, c.id, "<!-- capstan -->\nreport v2")
        .await
        .unwrap();
    assert_eq!(edited.id, c.id);
    assert_eq!(
        fake.comments(REPO, 7)[0].body,
        "<!-- capstan -->\nreport v2"
    );
    let human = fake.add_comment(REPO, 7, "alice", false, "/capstan diff");
    forge
        .add_reaction(REPO, 7, human, Reaction::Eyes)
        .await
        .unwrap();
    assert_eq!(fake.reactions(REPO), vec![(human, "eyes".to_string())]);
    // Someone else's comment cannot be edited: a plain 403 is Forbidden, not a rate limit.
    match forge.update_comment(REPO, 7, human, "hijacked").await {
        Err(ForgeError::Forbidden { message, .. }) => {
            assert!(message.contains("not accessible"), "{message}")
        }
        other => panic!("expected Forbidden, got {other:?}"),
    }
    assert_eq!(
        fake.calls_to(
            "PATCH",
            &format!("/repos/acme/gitops/issues/comments/{human}")
        )
        .len(),
        1
    );
    let listed = forge.comments(REPO, 7).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(!listed[1].author_is_bot);
    assert_eq!(listed[1].author, "alice");
    forge.delete_comment(REPO, 7, c.id).await.unwrap();
    assert_eq!(fake.comments(REPO, 7).len(), 1);
    assert!(matches!(
        forge.delete_comment(REPO, 7, c.id).await,
        Err(ForgeError::NotFound { .. })
    ));

    // 120 annotations go out as 50 + 50 + 20; GitHub appends them.
    let annotations: Vec<Annotation> = (0..120)
        .map(|i| Annotation {
            path: "apps/web/prod/deployment.yaml".into(),
            start_line: i + 1,
            end_line: i + 1,
            annotation_level: AnnotationLevel::Failure,
            title: "deny".into(),
            message: format!("finding {i}"),
        })
        .collect();
    let mut run = CheckRun {
        name: "capstan".into(),
        head_sha: sha('a'),
        status: CheckStatus::InProgress,
        conclusion: None,
        details_url: Some("https://capstan.example/runs/1".into()),
        external_id: Some("run-1".into()),
        output: None,
    };
    let id = forge.create_check_run(REPO, &run).await.unwrap();
    run.status = CheckStatus::Completed;
    run.conclusion = Some(CheckConclusion::Failure);
    run.output = Some(CheckOutput {
        title: "1 deny".into(),
        summary: "policy denied".into(),
        text: None,
        annotations,
    });
    forge.update_check_run(REPO, id, &run).await.unwrap();
    let patches = fake.calls_to("PATCH", &format!("/repos/acme/gitops/check-runs/{id}"));
    assert_eq!(patches.len(), 3);
    assert!(patches.iter().all(|p| p.status == 200));
    let stored = &fake.check_runs(REPO)[0];
    assert_eq!(stored["status"], "completed");
    assert_eq!(stored["conclusion"], "failure");
    assert_eq!(stored["head_sha"], sha('a'));
    let got = stored["output"]["annotations"].as_array().unwrap();
    assert_eq!(got.len(), 120);
    assert_eq!(got[119]["start_line"], 120);
    assert_eq!(got[0]["annotation_level"], "failure");
}

#[tokio::test]
async fn rate_limit_with_retry_after_is_waited_out_once() {
    let (fake, forge) = token_setup("").await;
    fake.force_next(1, 403, Some(1));
    let pr = forge.pull_request(REPO, 7).await.unwrap();
    assert_eq!(pr.number, 7);
    let calls = fake.calls_to("GET", "/repos/acme/gitops/pulls/7");
    assert_eq!(
        calls.iter().map(|c| c.status).collect::<Vec<_>>(),
        vec![403, 200]
    );
}

#[tokio::test]
async fn rate_limit_longer_than_the_bound_is_reported_not_slept() {
    let (fake, forge) = token_setup("").await;
    fake.force_next(1, 403, Some(3600));
    match forge.pull_request(REPO, 7).await {
        Err(ForgeError::RateLimited {
            repo, retry_after, ..
        }) => {
            assert_eq!(repo, REPO);
            assert_eq!(retry_after, Some(Duration::from_secs(3600)));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    assert_eq!(fake.calls().len(), 1);
    // A secondary limit without headers means "wait at least a minute": beyond the bound too.
    fake.force_next(1, 403, None);
    assert!(matches!(
        forge.pull_request(REPO, 7).await,
        Err(ForgeError::RateLimited { retry_after: Some(d), .. }) if d == Duration::from_secs(60)
    ));
    assert_eq!(fake.calls().len(), 2);
}

#[tokio::test]
async fn http_errors_map_to_forge_errors() {
    let (fake, _) = token_setup("").await;
    let wrong = GitHubForge::new(GitHubConfig::new(
        fake.api_url().parse().unwrap(),
        GitHubAuth::Token("ghp_wrong".into()),
    ))
    .unwrap();
    match wrong.pull_request(REPO, 7).await {
        Err(ForgeError::Unauthorized { repo, message }) => {
            assert_eq!(repo, REPO);
            assert!(message.contains("Bad credentials"), "{message}");
        }
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    let (_fake, forge) = token_setup("").await;
    assert!(matches!(
        forge.pull_request("acme/missing", 1).await,
        Err(ForgeError::NotFound { repo }) if repo == "acme/missing"
    ));
    assert!(matches!(
        forge.pull_request(REPO, 999).await,
        Err(ForgeError::NotFound { .. })
    ));
}

#[tokio::test]
async fn hostile_repo_and_user_names_are_refused_before_any_request() {
    let (fake, forge) = token_setup("").await;
    for repo in [
        "../etc",
        "acme/../x",
        "acme",
        "acme/gitops/extra",
        "acme/git ops",
    ] {
        assert!(
            matches!(
                forge.pull_request(repo, 1).await,
                Err(ForgeError::Validation { .. })
            ),
            "{repo}"
        );
    }
    for user in ["../admin", "a/b", "", "al ice"] {
        assert!(
            matches!(
                forge.collaborator_permission(REPO, user).await,
                Err(ForgeError::Validation { .. })
            ),
            "{user:?}"
        );
    }
    assert!(fake.calls().is_empty());
}

#[tokio::test]
async fn collaborator_permission_levels_parse() {
    let (fake, forge) = token_setup("").await;
    let levels = [
        ("ada", "admin", Permission::Admin),
        ("max", "maintain", Permission::Maintain),
        ("wes", "write", Permission::Write),
        ("tia", "triage", Permission::Triage),
        ("rea", "read", Permission::Read),
    ];
    for (user, role, _) in levels {
        fake.set_permission(REPO, user, role);
    }
    for (user, _, want) in levels {
        assert_eq!(
            forge.collaborator_permission(REPO, user).await.unwrap(),
            want,
            "{user}"
        );
    }
    assert_eq!(
        forge
            .collaborator_permission(REPO, "stranger")
            .await
            .unwrap(),
        Permission::None
    );
    assert!(Permission::Maintain > Permission::Write && Permission::Triage > Permission::Read);
}

#[test]
fn malformed_app_keys_are_refused_with_their_origin() {
    let err = AppKey::from_pem("not a key", "CAPSTAN_GITHUB_APP_KEY_FILE").unwrap_err();
    assert!(
        err.to_string().contains("CAPSTAN_GITHUB_APP_KEY_FILE"),
        "{err}"
    );
    let err = AppKey::from_pem(
        "-----BEGIN RSA PRIVATE KEY-----\nAAAA\n-----END RSA PRIVATE KEY-----\n",
        "k.pem",
    )
    .unwrap_err();
    assert!(err.to_string().contains("not a usable RSA key"), "{err}");
}

both_backends!(recovery_with_the_github_forge_enqueues_unchecked_heads);

async fn recovery_with_the_github_forge_enqueues_unchecked_heads(b: &Backend) {
    let (fake, forge, _) = app_setup().await;
    // #7 (head a) already has a finished check; #8 (head b) was never seen.
    fake.add_pull(REPO, pull(8, 'b'));
    fake.add_repo("other/repo");
    let q = &b.queue;
    let done = q
        .enqueue(
            &PrCheck {
                repo: REPO.into(),
                number: 7,
                head_sha: sha('a'),
                head_ref: None,
                base_ref: None,
                installation_id: None,
                trigger: "pull_request.opened".into(),
                sender: None,
            }
            .into_job(),
        )
        .await
        .unwrap()
        .unwrap();
    q.claim("w", &["pr_check".to_string()], Duration::from_secs(30))
        .await
        .unwrap();
    q.finish(done, "w", 1, &Finish::Succeeded).await.unwrap();

    let report = recover_once(q.as_ref(), &forge, &|r: &str| r.starts_with("acme/"))
        .await
        .unwrap();
    // The App sees only its installation's repositories.
    assert_eq!(report.repos, 1);
    assert_eq!(report.open_prs, 2);
    assert_eq!(report.enqueued, vec![(REPO.to_string(), 8, sha('b'))]);
    let jobs = q
        .jobs_by_dedupe_key(&PrCheck::dedupe_key(REPO, 8, &sha('b')))
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].payload["trigger"], "recovery");
    assert_eq!(fake.calls_to("GET", "/app/installations").len(), 1);
    assert_eq!(fake.calls_to("GET", "/installation/repositories").len(), 1);
}

/// Issue 13, finding 12: an installation token is bought for the repository of the job only
/// (`repositories` in the body, which the fake honours), so a token that leaks from one job
/// cannot reach the installation's other repositories.
#[tokio::test]
async fn app_installation_tokens_are_scoped_to_the_repository() {
    let (fake, forge, _offset) = app_setup().await;
    fake.add_pull("acme/other", pull(3, 'c'));
    forge.pull_request(REPO, 7).await.unwrap();
    let calls = fake.calls_to(
        "POST",
        &format!("/app/installations/{INSTALLATION}/access_tokens"),
    );
    assert_eq!(calls.len(), 1);
    assert_eq!(
        calls[0].body.as_ref().unwrap()["repositories"],
        serde_json::json!(["gitops"]),
        "the token request names the repository"
    );
    let scoped = fake.calls_to("GET", "/repos/acme/gitops/pulls/7")[0]
        .authorization
        .clone()
        .unwrap();

    // The fake refuses the gitops token for another repository of the same installation.
    let r = reqwest::Client::new()
        .get(format!("{}/repos/acme/other/pulls/3", fake.api_url()))
        .header("authorization", &scoped)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        404,
        "a scoped token does not see other repositories"
    );

    // A call about the other repository buys its own token, which works there.
    forge.pull_request("acme/other", 3).await.unwrap();
    let calls = fake.calls_to(
        "POST",
        &format!("/app/installations/{INSTALLATION}/access_tokens"),
    );
    assert_eq!(calls.len(), 2);
    assert_eq!(
        calls[1].body.as_ref().unwrap()["repositories"],
        serde_json::json!(["other"])
    );
    // The last call: the first was the test's own, with the gitops token.
    let other = fake
        .calls_to("GET", "/repos/acme/other/pulls/3")
        .last()
        .unwrap()
        .authorization
        .clone()
        .unwrap();
    assert_ne!(other, scoped);
    // The git credential is the scoped token too.
    let git = forge.git_token(REPO).await.unwrap().unwrap();
    assert_eq!(format!("Bearer {git}"), scoped);
}

/// The typed models the client reads (and the fake serves) accept GitHub's own example objects:
/// a pull request, an issue comment, a check run, an installation and its repositories, from the
/// webhook payload examples, which embed the same REST objects.
#[test]
fn the_models_read_githubs_example_objects() {
    use capstan_worker::forge::github::model;
    let Some(dir) = capstan_tests::shared_fixtures() else {
        return;
    };
    let payload = |event: &str, action: &str| -> serde_json::Value {
        let path = dir.join(format!("github/payloads/{event}/{action}.payload.json"));
        serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap()
    };
    let mut read = 0;
    for action in ["opened", "closed", "synchronize", "converted_to_draft"] {
        let p: model::PullRequest =
            serde_json::from_value(payload("pull_request", action)["pull_request"].clone())
                .unwrap_or_else(|e| panic!("pull_request {action}: {e}"));
        assert_eq!(p.head.sha.len(), 40);
        assert!(!p.user.login.is_empty() && !p.html_url.is_empty());
        read += 1;
    }
    let c: model::IssueComment =
        serde_json::from_value(payload("issue_comment", "created")["comment"].clone()).unwrap();
    assert!(c.body.is_some_and(|b| !b.is_empty()));
    assert!(c.user.is_some_and(|u| !u.is_bot()));
    let r: model::CheckRun =
        serde_json::from_value(payload("check_run", "created")["check_run"].clone()).unwrap();
    assert_eq!(r.status, capstan_worker::forge::CheckStatus::Queued);
    assert_eq!(r.head_sha.len(), 40);
    let installed = payload("installation", "created");
    let i: model::Installation = serde_json::from_value(installed["installation"].clone()).unwrap();
    assert!(i.account.and_then(|a| a.login).is_some());
    let repos: Vec<model::Repository> =
        serde_json::from_value(installed["repositories"].clone()).unwrap();
    assert!(repos.iter().all(|r| r.full_name.contains('/')));
    assert_eq!(read, 4);

    // A required field GitHub always sends is required: without it the object does not read,
    // instead of becoming an empty string.
    let mut no_sha = payload("pull_request", "opened")["pull_request"].clone();
    no_sha["head"].as_object_mut().unwrap().remove("sha");
    let err = serde_json::from_value::<model::PullRequest>(no_sha).unwrap_err();
    assert!(err.to_string().contains("sha"), "{err}");
}
