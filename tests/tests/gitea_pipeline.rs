//! The PR, commands and promotion journeys against the fake Gitea: `capstan serve --forge gitea
//! --forge-url <fake>` building its own Gitea client from the settings, signed Gitea webhooks
//! over HTTP at `/webhooks/gitea`, a real git repository fetched and pushed through `file://`.
//! The assertions are the GitHub journeys', in Gitea's terms: the check is a commit status, the
//! report one sticky comment edited on each push, a deny fails the check, nothing is posted for a
//! superseded head; commands are authorized by Gitea's permission levels and answered with one
//! reply and a reaction; a merge opens exactly one promotion pull request.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use capstan_server::config::{Config, ConfigArgs};
use capstan_tests::fake_gitea::{FakeGitea, GiteaComment, GiteaPull};
use capstan_tests::pr_harness::{
    fanout_tree, serve_on_ephemeral_port, settings_configmap, wait_healthy,
};
use capstan_tests::webhook::sign;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

const REPO: &str = "acme/gitops";
const TOKEN: &str = "gitea-test-token-0123456789";
const SECRET: &str = "gitea-pipeline-secret";
const LOGIN: &str = "capstan";
const WAIT: Duration = Duration::from_secs(120);

struct World {
    dir: tempfile::TempDir,
    origin: RepoBuilder,
    fake: FakeGitea,
    base_url: String,
    http: reqwest::Client,
    stop: CancellationToken,
    service: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    delivery: std::sync::atomic::AtomicU64,
}

impl World {
    async fn start() -> World {
        Self::start_with(&fanout_tree(2)).await
    }

    async fn start_with(files: &[(String, String)]) -> World {
        capstan_worker::forge::github::install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let origin = RepoBuilder::init(dir.path().join("origin/acme/gitops")).unwrap();
        let changes: Vec<Change<'_>> = files
            .iter()
            .map(|(p, t)| Change::Write(p, t.as_bytes()))
            .collect();
        origin.commit("initial tree", &changes).unwrap();
        let fake = FakeGitea::start(TOKEN, LOGIN).await;
        fake.add_repo(REPO);
        fake.set_permission(REPO, "alice", "write");

        let args = ConfigArgs {
            listen: Some("127.0.0.1:0".into()),
            data_dir: Some(dir.path().join("data").display().to_string()),
            git_url_template: Some(format!(
                "file://{}/origin/{{owner}}/{{repo}}",
                dir.path().display()
            )),
            poll_interval_ms: Some("50".into()),
            public_url: Some("https://capstan.example".into()),
            forge: Some("gitea".into()),
            forge_url: Some(fake.base_url()),
            log: Some(std::env::var("CAPSTAN_TEST_LOG").unwrap_or_else(|_| "warn".into())),
            ..ConfigArgs::default()
        };
        let env = |k: &str| match k {
            "CAPSTAN_WEBHOOK_SECRET" => Some(SECRET.to_string()),
            "CAPSTAN_FORGE_TOKEN" => Some(TOKEN.to_string()),
            _ => None,
        };
        let cfg = Config::load_with(&args, &env).unwrap();
        if std::env::var("CAPSTAN_TEST_LOG").is_ok() {
            capstan_server::serve::init_tracing(&cfg);
        }
        let stop = CancellationToken::new();
        // No client handed in: the service builds its Gitea client from the settings, as in
        // production.
        let parts = capstan_server::serve::Parts {
            jsonnet_evaluator: Some(capstan_tests::capstan_binary()),
            shutdown: Some(stop.clone()),
            ..Default::default()
        };
        let (port, service) = serve_on_ephemeral_port(cfg, parts).await;
        let base_url = format!("http://127.0.0.1:{port}");
        let http = reqwest::Client::new();
        wait_healthy(&http, &base_url).await;
        World {
            dir,
            origin,
            fake,
            base_url,
            http,
            stop,
            service: Some(service),
            delivery: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn tip(&self, branch: &str) -> String {
        let repo = git2::Repository::open(self.dir.path().join("origin/acme/gitops")).unwrap();
        repo.refname_to_id(&format!("refs/heads/{branch}"))
            .unwrap()
            .to_string()
    }

    /// Commits `changes` on `branch` (from `main`), leaving `main` where it was.
    fn push(&self, branch: &str, changes: &[Change<'_>]) -> String {
        let repo = git2::Repository::open(self.dir.path().join("origin/acme/gitops")).unwrap();
        let main = repo.refname_to_id("refs/heads/main").unwrap();
        let parent = repo
            .refname_to_id(&format!("refs/heads/{branch}"))
            .unwrap_or(main);
        self.origin.set_ref("refs/heads/main", parent).unwrap();
        let head = self.origin.commit("change", changes).unwrap();
        self.origin
            .set_ref(&format!("refs/heads/{branch}"), head)
            .unwrap();
        self.origin.set_ref("refs/heads/main", main).unwrap();
        head.to_string()
    }

    fn push_level(&self, branch: &str, level: &str) -> String {
        let cm = settings_configmap(level);
        self.push(
            branch,
            &[Change::Write("shared/base/settings.yaml", cm.as_bytes())],
        )
    }

    fn open_pull(&self, number: u64, branch: &str) -> String {
        let head = self.tip(branch);
        self.fake.add_pull(
            REPO,
            GiteaPull {
                number,
                state: "open".into(),
                title: format!("PR {number}"),
                author: "alice".into(),
                head_ref: branch.into(),
                head_sha: head.clone(),
                base_ref: "main".into(),
                base_sha: self.tip("main"),
                ..GiteaPull::default()
            },
        );
        head
    }

    /// POSTs a signed Gitea webhook as Gitea sends it.
    async fn webhook(&self, event: &str, body: &Value) {
        let n = self
            .delivery
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let bytes = serde_json::to_vec(body).unwrap();
        let sig = sign(SECRET.as_bytes(), &bytes)
            .trim_start_matches("sha256=")
            .to_string();
        let resp = self
            .http
            .post(format!("{}/webhooks/gitea", self.base_url))
            .header("content-type", "application/json")
            .header("x-gitea-event", event)
            .header(
                "x-gitea-delivery",
                format!("d-{n}-{}", uuid::Uuid::new_v4()),
            )
            .header("x-gitea-signature", sig)
            .body(bytes)
            .send()
            .await
            .unwrap();
        assert!(
            resp.status().is_success(),
            "webhook refused: {}",
            resp.status()
        );
    }

    async fn pull_request_event(&self, action: &str, number: u64, branch: &str, head: &str) {
        let login = json!({"id": 7, "login": "alice", "username": "alice"});
        let body = json!({
            "action": action,
            "number": number,
            "pull_request": {
                "id": number + 10_000, "number": number, "state": "open", "user": login,
                "head": {"label": branch, "ref": branch, "sha": head},
                "base": {"label": "main", "ref": "main", "sha": self.tip("main")},
                "merged": false, "merge_commit_sha": null,
            },
            "repository": {"id": 3, "full_name": REPO, "default_branch": "main"},
            "sender": login,
        });
        self.webhook("pull_request", &body).await;
    }

    fn report_comments(&self, number: u64) -> Vec<GiteaComment> {
        self.fake
            .comments(REPO, number)
            .into_iter()
            .filter(|c| c.body.starts_with("<!-- capstan:report"))
            .collect()
    }

    /// The statuses of `sha`, oldest first.
    fn statuses_for(&self, sha: &str) -> Vec<Value> {
        self.fake
            .statuses(REPO)
            .into_iter()
            .filter(|(s, _)| s == sha)
            .map(|(_, v)| v)
            .collect()
    }

    /// The final (not pending) status of `sha`, once there is one.
    async fn final_status(&self, sha: &str) -> Value {
        let start = Instant::now();
        loop {
            if let Some(s) = self
                .statuses_for(sha)
                .into_iter()
                .rfind(|s| s["state"] != "pending")
            {
                return s;
            }
            assert!(start.elapsed() < WAIT, "no final status for {sha}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn wait_idle(&self) {
        let url = format!("sqlite://{}/data/capstan.db", self.dir.path().display());
        let q = capstan_worker::queue::open(&url).await.unwrap();
        let start = Instant::now();
        loop {
            let busy = q.depth().await.unwrap().iter().any(|(_, state, n)| {
                matches!(
                    state,
                    capstan_worker::queue::JobState::Queued
                        | capstan_worker::queue::JobState::Running
                ) && *n > 0
            });
            if !busy {
                return;
            }
            assert!(start.elapsed() < WAIT, "queue never drained");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(mut self) {
        self.stop.cancel();
        if let Some(s) = self.service.take() {
            s.await.unwrap().unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitea_pr_journey_status_sticky_comment_supersede_and_deny() {
    let w = World::start().await;

    // 1. Opened: a pending status, one comment with the per-app diff, then success.
    let head1 = w.push_level("feature", "debug");
    w.open_pull(1, "feature");
    w.pull_request_event("opened", 1, "feature", &head1).await;
    let status = w.final_status(&head1).await;
    assert_eq!(status["state"], "success", "{status:#}");
    assert_eq!(status["context"], "capstan");
    assert!(
        status["target_url"]
            .as_str()
            .unwrap()
            .starts_with("https://capstan.example/runs/"),
        "{status:#}"
    );
    let states: Vec<Value> = w
        .statuses_for(&head1)
        .iter()
        .map(|s| s["state"].clone())
        .collect();
    assert_eq!(states.first(), Some(&json!("pending")), "{states:?}");
    let comments = w.report_comments(1);
    assert_eq!(comments.len(), 1);
    let first = comments[0].clone();
    assert_eq!(first.login, LOGIN);
    assert!(first.body.contains("app-000") && first.body.contains("app-001"));

    // 2. A new push (Gitea's `synchronized`): the same comment is edited.
    let head2 = w.push_level("feature", "warn");
    w.open_pull(1, "feature");
    w.pull_request_event("synchronized", 1, "feature", &head2)
        .await;
    assert_eq!(w.final_status(&head2).await["state"], "success");
    let comments = w.report_comments(1);
    assert_eq!(comments.len(), 1, "never a second sticky comment");
    assert_eq!(comments[0].id, first.id);
    assert!(
        comments[0].body.contains("LOG_LEVEL: warn"),
        "{}",
        comments[0].body
    );
    let edits = w
        .fake
        .calls()
        .into_iter()
        .filter(|c| {
            c.method == "PATCH"
                && c.path == format!("/repos/acme/gitops/issues/comments/{}", first.id)
        })
        .count();
    assert_eq!(edits, 1);

    // 3. Two pushes in a row: nothing is posted for the older head.
    let head3 = w.push_level("feature", "error");
    let head4 = w.push_level("feature", "trace");
    w.open_pull(1, "feature");
    w.pull_request_event("synchronized", 1, "feature", &head3)
        .await;
    w.pull_request_event("synchronized", 1, "feature", &head4)
        .await;
    assert_eq!(w.final_status(&head4).await["state"], "success");
    w.wait_idle().await;
    assert!(
        w.statuses_for(&head3)
            .iter()
            .all(|s| s["state"] != "success" && s["state"] != "failure"),
        "a verdict was posted for the old head: {:?}",
        w.statuses_for(&head3)
    );
    let comments = w.report_comments(1);
    assert_eq!(comments.len(), 1);
    assert!(comments[0].body.contains("LOG_LEVEL: trace"));
    assert!(!comments[0].body.contains(&head3[..7]));

    // 4. A deny: the status fails.
    let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  selector:\n    app: web\n  ports:\n    - port: 80\n";
    let kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: app-000\nresources:\n  - ../../shared/base\n  - service.yaml\n";
    let head5 = w.push(
        "feature",
        &[
            Change::Write("apps/app-000/service.yaml", service.as_bytes()),
            Change::Write("apps/app-000/kustomization.yaml", kustomization.as_bytes()),
        ],
    );
    w.open_pull(1, "feature");
    w.pull_request_event("synchronized", 1, "feature", &head5)
        .await;
    let denied = w.final_status(&head5).await;
    assert_eq!(denied["state"], "failure", "{denied:#}");
    let comments = w.report_comments(1);
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].body.contains("service-exposure"),
        "{}",
        comments[0].body
    );
    // Every call carried the token and none was refused.
    assert!(
        w.fake.calls().iter().all(|c| c.status < 400),
        "{:#?}",
        w.fake
            .calls()
            .iter()
            .filter(|c| c.status >= 400)
            .collect::<Vec<_>>()
    );
    w.stop().await;
}

impl World {
    /// A person's comment on PR `number`, stored on the fake and delivered as Gitea sends it.
    async fn comment_event(&self, number: u64, login: &str, text: &str) -> u64 {
        let id = self.fake.add_comment(REPO, number, login, text);
        let who = json!({"id": 9, "login": login, "username": login});
        let body = json!({
            "action": "created",
            "issue": {"id": 77, "number": number, "user": {"login": "alice"},
                      "pull_request": {"merged": false, "merged_at": null}},
            "comment": {"id": id, "body": text, "user": who,
                        "created_at": "2026-12-01T11:00:00Z", "updated_at": "2026-12-01T11:00:00Z"},
            "repository": {"id": 3, "full_name": REPO, "default_branch": "main"},
            "sender": who,
            "is_pull": true,
        });
        self.webhook("issue_comment", &body).await;
        id
    }

    /// Capstan's reply to comment `id`, once it is there.
    async fn reply_to(&self, number: u64, id: u64) -> String {
        let marker = format!("<!-- capstan:command-reply {id}@2026-12-01T11:00:00Z -->");
        let start = Instant::now();
        loop {
            if let Some(c) = self
                .fake
                .comments(REPO, number)
                .into_iter()
                .find(|c| c.body.starts_with(&marker))
            {
                assert_eq!(c.login, LOGIN);
                return c.body;
            }
            assert!(start.elapsed() < WAIT, "no reply to comment {id}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether the reply's line for `command` says `outcome`.
fn has_line(reply: &str, command: &str, outcome: &str) -> bool {
    reply
        .lines()
        .any(|l| l.contains(command) && l.contains(outcome))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitea_commands_journey_permissions_replies_reactions_and_hold() {
    let w = World::start().await;
    // Gitea's levels: write cannot hold (Capstan's default needs maintain), admin can.
    w.fake.set_permission(REPO, "bob", "write");
    w.fake.set_permission(REPO, "carol", "admin");
    let head = w.push_level("feature", "debug");
    w.open_pull(1, "feature");
    w.pull_request_event("opened", 1, "feature", &head).await;
    assert_eq!(w.final_status(&head).await["state"], "success");
    w.wait_idle().await;

    let by_writer = w
        .comment_event(1, "bob", "/capstan hold\n/capstan validate\n")
        .await;
    let reply = w.reply_to(1, by_writer).await;
    assert!(
        has_line(
            &reply,
            "/capstan hold",
            "refused: &#96;hold&#96; needs maintain permission on this repository; you have write"
        ),
        "{reply}"
    );
    assert!(has_line(&reply, "/capstan validate", "done:"), "{reply}");

    let by_admin = w.comment_event(1, "carol", "/capstan hold\n").await;
    let reply = w.reply_to(1, by_admin).await;
    assert!(
        has_line(&reply, "/capstan hold", "done: placed a hold"),
        "{reply}"
    );
    w.wait_idle().await;
    // The hold fails the head's check until it is lifted.
    let held = w.final_status(&head).await;
    assert_eq!(held["state"], "failure", "{:#?}", w.statuses_for(&head));

    // A stranger (read on a public repository) is refused; Capstan's own comments run nothing.
    let by_reader = w.comment_event(1, "mallory", "/capstan unhold\n").await;
    let reply = w.reply_to(1, by_reader).await;
    assert!(has_line(&reply, "/capstan unhold", "refused:"), "{reply}");
    let reactions = w.fake.reactions(REPO);
    for id in [by_writer, by_admin, by_reader] {
        assert!(
            reactions.iter().any(|(c, r)| *c == id && r == "eyes"),
            "{reactions:?}"
        );
    }
    w.wait_idle().await;
    let replies = w
        .fake
        .comments(REPO, 1)
        .into_iter()
        .filter(|c| c.body.starts_with("<!-- capstan:command-reply"))
        .count();
    assert_eq!(
        replies, 3,
        "one reply per command comment, none to Capstan's own"
    );
    w.stop().await;
}

const STAGING: &str = "apps/podinfo/overlays/staging/kustomization.yaml";
const PRODUCTION: &str = "apps/podinfo/overlays/production/kustomization.yaml";

fn overlay(env: &str, tag: &str) -> String {
    format!(
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: podinfo-{env}\n\
         images:\n  - name: ghcr.io/stefanprodan/podinfo\n    newTag: {tag}\n"
    )
}

/// A tree with one promotion rule: podinfo's image from staging to production, by pull request.
fn promotion_tree() -> Vec<(String, String)> {
    let settings = "version: 1
repoURL: https://gitea.example/acme/gitops
defaultBranch: main
environments:
  - name: staging
    overlay: overlays/staging
  - name: production
    overlay: overlays/production
promotion:
  mode: pull-request
  trigger: merge
  rules:
    - name: podinfo-images
      app: podinfo
      from:
        environment: staging
        path: apps/podinfo/overlays/staging
      to:
        environment: production
        path: apps/podinfo/overlays/production
      copy:
        - images
";
    vec![
        (".capstan.yaml".into(), settings.into()),
        (STAGING.into(), overlay("staging", "6.7.0")),
        (PRODUCTION.into(), overlay("production", "6.7.0")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gitea_promotion_journey_one_pull_request_with_exactly_that_tag() {
    let w = World::start_with(&promotion_tree()).await;
    // Capstan pushes its promotion branch there, and git pushes only to a bare repository; the
    // tests build commits without a working tree, so the origin can say it is one.
    git2::Repository::open(w.dir.path().join("origin/acme/gitops"))
        .unwrap()
        .config()
        .unwrap()
        .set_bool("core.bare", true)
        .unwrap();
    let before = w.tip("main");
    // A person's pull request bumped staging and was merged: main moves to the merge.
    let after = w
        .origin
        .commit(
            "Merge pull request 'bump podinfo' (#2)",
            &[Change::Write(
                STAGING,
                overlay("staging", "6.9.2").as_bytes(),
            )],
        )
        .unwrap()
        .to_string();
    w.fake.add_pull(
        REPO,
        GiteaPull {
            number: 2,
            state: "closed".into(),
            merged: true,
            title: "Bump podinfo".into(),
            author: "alice".into(),
            head_ref: "bump".into(),
            head_sha: after.clone(),
            base_ref: "main".into(),
            base_sha: before.clone(),
            merge_commit_sha: Some(after.clone()),
            ..GiteaPull::default()
        },
    );
    let alice = json!({"id": 7, "login": "alice", "username": "alice"});
    let repository = json!({"id": 3, "full_name": REPO, "default_branch": "main"});
    // The push and the merge both arrive (Gitea sends both), the push twice.
    for _ in 0..2 {
        w.webhook(
            "push",
            &json!({"ref": "refs/heads/main", "before": before, "after": after,
                    "commits": [], "repository": repository, "pusher": alice, "sender": alice}),
        )
        .await;
    }
    w.webhook(
        "pull_request",
        &json!({
            "action": "closed", "number": 2,
            "pull_request": {"id": 10_002, "number": 2, "state": "closed", "user": alice,
                "head": {"ref": "bump", "sha": after}, "base": {"ref": "main", "sha": before},
                "merged": true, "merge_commit_sha": after, "merged_by": alice},
            "repository": repository, "sender": alice,
        }),
    )
    .await;
    w.wait_idle().await;

    let promos: Vec<GiteaPull> = w
        .fake
        .pulls(REPO)
        .into_iter()
        .filter(|p| p.head_ref.starts_with("capstan/promote/"))
        .collect();
    assert_eq!(
        promos.len(),
        1,
        "exactly one promotion pull request: {promos:#?}"
    );
    let promo = &promos[0];
    assert_eq!(
        (promo.state.as_str(), promo.base_ref.as_str()),
        ("open", "main")
    );
    assert_eq!(promo.author, LOGIN);
    assert!(promo.body.contains("Source: #2"), "{}", promo.body);
    assert!(
        promo.body.contains("newTag 6.7.0 → 6.9.2"),
        "{}",
        promo.body
    );
    // The branch changes exactly the production tag, on top of the merge.
    let git = git2::Repository::open(w.dir.path().join("origin/acme/gitops")).unwrap();
    let tip = git
        .find_reference(&format!("refs/heads/{}", promo.head_ref))
        .unwrap()
        .peel_to_commit()
        .unwrap();
    assert_eq!(tip.parent_id(0).unwrap().to_string(), after);
    let file = |path: &str| {
        let entry = tip
            .tree()
            .unwrap()
            .get_path(std::path::Path::new(path))
            .unwrap();
        String::from_utf8(git.find_blob(entry.id()).unwrap().content().to_vec()).unwrap()
    };
    assert_eq!(file(PRODUCTION), overlay("production", "6.9.2"));
    assert_eq!(file(STAGING), overlay("staging", "6.9.2"));
    w.stop().await;
}

/// Gitea's comment listing has no paging: a pull request with more comments than a page holds
/// is read in one answer, each comment once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_conversation_is_read_once_without_paging() {
    use capstan_worker::forge::Comments;
    use capstan_worker::forge::gitea::{GiteaConfig, GiteaForge};
    let fake = FakeGitea::start(TOKEN, LOGIN).await;
    fake.add_repo(REPO);
    let ids: Vec<u64> = (0..120)
        .map(|i| fake.add_comment(REPO, 3, "alice", &format!("comment {i}")))
        .collect();
    let client = GiteaForge::new(GiteaConfig::new(
        fake.base_url().parse().unwrap(),
        TOKEN.into(),
    ))
    .unwrap();
    let got: Vec<u64> = client
        .comments(REPO, 3)
        .await
        .unwrap()
        .iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(got, ids);
    let reads = fake
        .calls()
        .into_iter()
        .filter(|c| c.path.ends_with("/issues/3/comments"))
        .count();
    assert_eq!(reads, 1);
}
