//! Slash-commands end to end: signed `issue_comment` webhooks into the server's router, the job
//! runner with the server's handler registry, the GitHub forge against the fake GitHub, and a
//! real git repository (built here) as the remote whose default branch holds `.capstan.yaml`.
//! ArgoCD sync and the promotion engine are small recording fakes of their traits
//! (`capstan_tests::commands_harness`).
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_tests::commands_harness::*;
use capstan_tests::webhook::SECRET;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::jobs;
use capstan_worker::queue::{Finish, JobState};
use capstan_worker::store::runs::SqlRunStore;
use serde_json::json;
use tokio_util::sync::CancellationToken;

both_backends!(
    permission_levels_decide_what_runs,
    a_failed_permission_lookup_refuses,
    bots_and_capstan_itself_are_ignored,
    an_edited_comment_is_evaluated_once,
    homoglyphs_and_paths_are_refused,
    diff_reruns_a_finished_check,
    hold_and_unhold_store_and_recheck,
    an_unreachable_forge_retries_and_replies_once,
    a_broken_settings_file_refuses_every_command,
);

async fn permission_levels_decide_what_runs(b: &Backend) {
    let h = Harness::start(b, Handlers::Server).await;
    // (author, comment, [(command line, start of its outcome)]). Defaults from the default
    // branch: diff/validate/help read, sync/promote write, hold/unhold maintain. The PR's own
    // `.capstan.yaml` lowers promote and hold to read, which must change nothing.
    let cases: [(&str, &str, Expected); 5] = [
        (
            "reader",
            "Looks good.\n/capstan diff\n/capstan promote staging\n",
            &[
                ("/capstan diff", "done: a new check of"),
                (
                    "/capstan promote staging",
                    "refused: &#96;promote&#96; needs write permission on this repository; you have read",
                ),
            ],
        ),
        (
            "triager",
            "/capstan validate\n/capstan sync web\n",
            &[
                ("/capstan validate", "done:"),
                (
                    "/capstan sync web",
                    "refused: &#96;sync&#96; needs write permission on this repository; you have triage",
                ),
            ],
        ),
        (
            "writer",
            "/capstan sync web\n/capstan hold\n/capstan promote staging\n",
            &[
                ("/capstan sync web", "done: ArgoCD sync of `web`"),
                ("/capstan promote staging", "done: promotion to `staging`"),
                (
                    "/capstan hold",
                    "refused: &#96;hold&#96; needs maintain permission on this repository; you have write",
                ),
            ],
        ),
        (
            "maintainer",
            "/capstan hold\n",
            &[("/capstan hold", "done: placed a hold")],
        ),
        (
            "admin",
            "/capstan promote production web\n/capstan help\n",
            &[
                (
                    "/capstan promote production web",
                    "done: promotion to `production`",
                ),
                ("/capstan help", "done: the commands are listed below"),
            ],
        ),
    ];
    for (author, body, expected) in cases {
        let c = h.comment(author, body).await;
        assert!(h.reacted(c), "{author}: no 👀");
        let reply = h.reply(c);
        for (line, outcome) in expected {
            assert!(has_line(&reply, line, outcome), "{author}: {reply}");
        }
        if author == "admin" {
            assert!(
                reply.contains("- `/capstan hold`: needs maintain permission"),
                "{reply}"
            );
        }
    }
    // What ran, and only that.
    let checks = h.checks_of_head().await;
    assert_eq!(checks[0].payload["trigger"], "command.diff");
    assert_eq!(checks[0].payload["head_sha"], h.head());
    assert_eq!(*h.sync.calls.lock().unwrap(), vec!["web".to_string()]);
    let hold = h.services.runs.hold(REPO, PR).await.unwrap().unwrap();
    assert_eq!(hold.held_by, "maintainer");
    let calls = h.promoter.calls.lock().unwrap().clone();
    assert_eq!(
        calls.len(),
        2,
        "the writer and the admin promoted: {calls:?}"
    );
    assert_eq!(
        (calls[0].actor.as_str(), calls[0].environment.as_str()),
        ("writer", "staging")
    );
    assert_eq!(calls[1].environment, "production");
    assert_eq!(calls[1].app.as_deref(), Some("web"));
    assert_eq!(calls[1].head_at_command.as_deref(), Some(h.head()));
    assert_eq!(calls[1].actor, "admin");
    // The reader's refused promotion still reaches the audit trail.
    let refusals = h.promoter.refusals.lock().unwrap().clone();
    assert_eq!(refusals.len(), 1, "{refusals:?}");
    assert_eq!(
        (refusals[0].0.as_str(), refusals[0].1.as_str()),
        ("reader", "staging")
    );
    assert!(
        refusals[0].2.contains("needs write permission"),
        "{refusals:?}"
    );

    // Someone without access to the repository runs nothing, not even `diff`.
    let before = h.checks_of_head().await.len();
    let c = h.comment("stranger", "/capstan diff\n").await;
    let reply = h.reply(c);
    assert!(
        has_line(
            &reply,
            "/capstan diff",
            "refused: &#96;diff&#96; needs read permission on this repository; you have none"
        ),
        "{reply}"
    );
    assert_eq!(h.checks_of_head().await.len(), before);
    h.stop().await;
}

async fn a_failed_permission_lookup_refuses(b: &Backend) {
    let h = Harness::start(b, Handlers::Server).await;
    h.fake.set_permission(REPO, "erin", "admin");
    h.fake.set_permission(REPO, "frank", "admin");
    h.fake.fail_route(
        "GET",
        "/repos/acme/gitops/collaborators/erin/permission",
        500,
    );
    h.fake.fail_route(
        "GET",
        "/repos/acme/gitops/collaborators/frank/permission",
        404,
    );
    for user in ["erin", "frank"] {
        let c = h.comment(user, "/capstan diff\n/capstan hold\n").await;
        let reply = h.reply(c);
        assert!(h.reacted(c));
        for cmd in ["diff", "hold"] {
            assert!(
                has_line(
                    &reply,
                    &format!("/capstan {cmd}"),
                    "refused: could not check your permission"
                ),
                "{user}: {reply}"
            );
        }
    }
    assert!(h.checks_of_head().await.is_empty());
    assert!(h.services.runs.hold(REPO, PR).await.unwrap().is_none());
    h.stop().await;
}

async fn bots_and_capstan_itself_are_ignored(b: &Backend) {
    let h = Harness::start(b, Handlers::Server).await;
    let bot = h
        .fake
        .add_comment(REPO, PR, "renovate[bot]", true, "/capstan hold\n");
    h.deliver(
        "created",
        bot,
        "renovate[bot]",
        "Bot",
        "/capstan hold\n",
        "v1",
        None,
    )
    .await;
    // The intake lets Capstan's token user through (it is not configured as a bot login); the
    // handler recognises its own identity.
    let own = h
        .fake
        .add_comment(REPO, PR, SELF_LOGIN, false, "/capstan diff\n");
    let delivery = h
        .deliver(
            "created",
            own,
            SELF_LOGIN,
            "User",
            "/capstan diff\n",
            "v1",
            None,
        )
        .await;
    let jobs = h.settle(&delivery).await;
    assert_eq!(jobs.len(), 1, "the intake queued Capstan's comment");
    assert_eq!(jobs[0].state, JobState::Succeeded);
    // A bot's command that reached the queue anyway (an older intake, a replay) is ignored too.
    let slipped = jobs::Command {
        repo: REPO.into(),
        number: PR,
        comment_id: bot,
        comment_version: "v2".into(),
        author: "dependabot[bot]".into(),
        author_association: None,
        lines: vec!["/capstan hold".into()],
        installation_id: None,
        written_at: None,
        default_branch: Some("main".into()),
    }
    .into_job();
    let id = h.services.queue.enqueue(&slipped).await.unwrap().unwrap();
    assert_eq!(h.finished(id).await.state, JobState::Succeeded);
    assert!(h.fake.reactions(REPO).is_empty());
    assert!(h.replies(bot).is_empty() && h.replies(own).is_empty());
    assert!(
        h.fake
            .calls_to("POST", "/repos/acme/gitops/issues/7/comments")
            .is_empty()
    );
    assert!(h.checks_of_head().await.is_empty());
    assert!(h.services.runs.hold(REPO, PR).await.unwrap().is_none());
    h.stop().await;
}

/// `reader` edits comment `c` to `/capstan diff` (version 10:05).
async fn edit(h: &Harness, c: u64, delivery: Option<&str>) -> String {
    h.deliver(
        "edited",
        c,
        "reader",
        "User",
        "/capstan diff\n",
        "2026-11-26T10:05:00Z",
        delivery,
    )
    .await
}

async fn an_edited_comment_is_evaluated_once(b: &Backend) {
    let h = Harness::start(b, Handlers::Server).await;
    let body = "/capstan help\n";
    let c = h.fake.add_comment(REPO, PR, "reader", false, body);
    h.deliver(
        "created",
        c,
        "reader",
        "User",
        body,
        "2026-11-26T10:00:00Z",
        None,
    )
    .await;
    assert_eq!(h.replies(c).len(), 1);

    let first = edit(&h, c, None).await;
    let replies = h.replies(c);
    assert_eq!(replies.len(), 2, "{replies:?}");
    assert!(
        replies[1].body.starts_with(&format!(
            "<!-- capstan:command-reply {c}@2026-11-26T10:05:00Z -->"
        )),
        "{}",
        replies[1].body
    );
    assert!(has_line(&replies[1].body, "/capstan diff", "done:"));

    // GitHub's "Redeliver" (same delivery id) and a duplicate event (new delivery id) of the
    // same edit: neither is answered again.
    edit(&h, c, Some(&first)).await;
    let dup = edit(&h, c, None).await;
    let dup_jobs = h.settle(&dup).await;
    assert_eq!(dup_jobs.len(), 1, "the duplicate event was queued");
    assert_eq!(dup_jobs[0].state, JobState::Succeeded);
    assert_eq!(h.replies(c).len(), 2);
    let diffs = h
        .checks_of_head()
        .await
        .into_iter()
        .filter(|j| j.payload["trigger"] == "command.diff")
        .count();
    assert_eq!(diffs, 1, "the edit's diff ran once");
    h.stop().await;
}

async fn homoglyphs_and_paths_are_refused(b: &Backend) {
    let h = Harness::start(b, Handlers::CommandsOnly).await;
    // Cyrillic "р" (U+0440) in place of the Latin "p".
    let body = "/capstan promote \u{0440}roduction\n/capstan sync ../web\n/capstan promote production ../../etc/passwd\n/capstan promote staging w\u{0435}b\n";
    let c = h.comment("admin", body).await;
    let reply = h.reply(c);
    let refusals: Vec<&str> = reply.lines().filter(|l| l.contains("→ refused:")).collect();
    assert_eq!(refusals.len(), 4, "{reply}");
    assert!(
        refusals[0].contains("contains non-ASCII characters"),
        "{reply}"
    );
    assert!(refusals[1].contains("looks like a path"), "{reply}");
    assert!(refusals[2].contains("looks like a path"), "{reply}");
    assert!(
        refusals[3].contains("contains non-ASCII characters"),
        "{reply}"
    );
    assert!(h.promoter.calls.lock().unwrap().is_empty());
    assert!(h.sync.calls.lock().unwrap().is_empty());
    // An unknown (ASCII) environment is refused with the allowed names.
    let c = h.comment("admin", "/capstan promote prod\n").await;
    let reply = h.reply(c);
    assert!(
        reply.contains("unknown environment") && reply.contains("production, staging"),
        "{reply}"
    );
    // Quoted, fenced or indented commands are text, not commands.
    let body = "~~~\n/capstan hold\n~~~\n    /capstan hold\n> /capstan hold\n<!--\n/capstan hold\n-->\n/capstan help\n";
    let c = h.comment("admin", body).await;
    let reply = h.reply(c);
    assert!(
        reply.contains("Capstan read 1 command from admin"),
        "{reply}"
    );
    assert!(has_line(&reply, "/capstan help", "done:"), "{reply}");
    assert!(h.services.runs.hold(REPO, PR).await.unwrap().is_none());
    h.stop().await;
}

async fn a_broken_settings_file_refuses_every_command(b: &Backend) {
    let h = Harness::start(b, Handlers::CommandsOnly).await;
    // The default branch moves on to settings that do not validate.
    let remote = RepoBuilder::init(h.up.dir.path().join("acme").join("gitops")).unwrap();
    remote
        .commit(
            "break the settings",
            &[Change::Write(
                ".capstan.yaml",
                b"commands:\n  permissions:\n    hold: boss\n",
            )],
        )
        .unwrap();
    let c = h.comment("admin", "/capstan diff\n/capstan hold\n").await;
    assert!(h.reacted(c));
    let reply = h.reply(c);
    assert!(
        reply.contains("Capstan did not run any command from this comment")
            && reply.contains("commands.permissions.hold"),
        "{reply}"
    );
    assert!(h.checks_of_head().await.is_empty());
    assert!(h.services.runs.hold(REPO, PR).await.unwrap().is_none());
    h.stop().await;
}

async fn diff_reruns_a_finished_check(b: &Backend) {
    let h = Harness::start(b, Handlers::CommandsOnly).await;
    let q = &h.services.queue;
    // The check from the PR's push ran and finished.
    let claimed = h.pipeline_claims("pull_request.opened").await;
    assert!(
        q.finish(
            claimed.id,
            "test-pipeline",
            claimed.attempts,
            &Finish::Succeeded
        )
        .await
        .unwrap()
    );

    let c = h.comment("reader", "/capstan diff\n").await;
    let reply = h.reply(c);
    let short = &h.head()[..7];
    assert!(
        has_line(
            &reply,
            "/capstan diff",
            &format!("done: a new check of `{short}` is queued")
        ),
        "{reply}"
    );
    let checks = h.checks_of_head().await;
    assert_eq!(checks.len(), 2, "{checks:?}");
    assert_eq!(checks[1].state, JobState::Queued);
    assert_eq!(checks[1].payload["trigger"], "command.diff");

    // While that run is queued, another request reports it instead of stacking a second run.
    let c = h.comment("reader", "/capstan validate\n").await;
    let reply = h.reply(c);
    assert!(
        has_line(
            &reply,
            "/capstan validate",
            &format!("done: a check of `{short}` is already queued")
        ),
        "{reply}"
    );
    assert_eq!(h.checks_of_head().await.len(), 2);
    h.stop().await;
}

async fn hold_and_unhold_store_and_recheck(b: &Backend) {
    let h = Harness::start(b, Handlers::CommandsOnly).await;
    let q = &h.services.queue;
    // A check of the head is running when the hold arrives: it may already have read "no hold".
    let running = h.pipeline_claims("pull_request.synchronize").await;

    let hold = h.comment("maintainer", "/capstan hold\n").await;
    assert!(has_line(
        &h.reply(hold),
        "/capstan hold",
        "done: placed a hold"
    ));
    assert_eq!(
        h.services
            .runs
            .hold(REPO, PR)
            .await
            .unwrap()
            .unwrap()
            .held_by,
        "maintainer"
    );
    let rechecks = h.rechecks(hold).await;
    assert_eq!(rechecks.len(), 1);
    assert_eq!(rechecks[0].payload["trigger"], "command.hold");
    assert_eq!(rechecks[0].state, JobState::Queued);
    assert!(
        q.job(running.id).await.unwrap().unwrap().cancel_requested,
        "the running check that predates the hold is asked to stop"
    );

    // A second hold changes nothing and names the first holder.
    let again = h.comment("admin", "/capstan hold\n").await;
    assert!(has_line(
        &h.reply(again),
        "/capstan hold",
        "done: this pull request is already on hold (placed by maintainer)"
    ));
    assert!(h.rechecks(again).await.is_empty());

    let unhold = h.comment("maintainer", "/capstan unhold\n").await;
    assert!(has_line(
        &h.reply(unhold),
        "/capstan unhold",
        "done: lifted the hold"
    ));
    assert!(h.services.runs.hold(REPO, PR).await.unwrap().is_none());
    let rechecks = h.rechecks(unhold).await;
    assert_eq!(rechecks.len(), 1);
    assert_eq!(rechecks[0].payload["trigger"], "command.unhold");
    assert_eq!(rechecks[0].payload["head_sha"], h.head());

    let none = h.comment("maintainer", "/capstan unhold\n").await;
    assert!(has_line(
        &h.reply(none),
        "/capstan unhold",
        "done: there was no hold on this pull request"
    ));
    assert!(h.rechecks(none).await.is_empty());
    h.stop().await;
}

async fn an_unreachable_forge_retries_and_replies_once(b: &Backend) {
    let h = Harness::start(b, Handlers::CommandsOnly).await;
    let comments = "/repos/acme/gitops/issues/7/comments";
    h.fake.fail_route("POST", comments, 500);
    let c = h
        .fake
        .add_comment(REPO, PR, "reader", false, "/capstan help\n");
    let payload = jobs::Command {
        repo: REPO.into(),
        number: PR,
        comment_id: c,
        comment_version: "v1".into(),
        author: "reader".into(),
        author_association: None,
        lines: vec!["/capstan help".into()],
        installation_id: None,
        written_at: None,
        default_branch: Some("main".into()),
    };
    let id = h
        .services
        .queue
        .enqueue(&payload.into_job())
        .await
        .unwrap()
        .unwrap();
    // The first attempt fails to post and is queued again with the error.
    let mut retried = false;
    for _ in 0..1500 {
        let job = h.services.queue.job(id).await.unwrap().unwrap();
        if job.attempts >= 1 && job.last_error.is_some() {
            assert!(!job.state.is_final(), "{job:?}");
            assert!(
                job.last_error
                    .as_deref()
                    .unwrap()
                    .contains("posting the reply"),
                "{job:?}"
            );
            retried = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(retried, "the failed post was retried");
    h.fake.clear_failures();
    assert_eq!(h.finished(id).await.state, JobState::Succeeded);
    assert_eq!(h.replies(c).len(), 1);
    // The reaction is idempotent: one 👀 however often the job ran.
    assert_eq!(
        h.fake
            .reactions(REPO)
            .iter()
            .filter(|(id, _)| *id == c)
            .count(),
        1
    );
    h.stop().await;
}

/// The whole service as `capstan serve` runs it: a signed webhook over HTTP to the listening
/// server, the command answered on the fake GitHub, the hold in the service's own store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_a_command_end_to_end() {
    use capstan_server::config::{Config, ConfigArgs};
    use capstan_worker::store::RunStore;

    let up = upstream();
    let fake = fake_github(&up).await;
    let data = tempfile::tempdir().unwrap();
    let args = ConfigArgs {
        listen: Some("127.0.0.1:0".into()),
        data_dir: Some(data.path().display().to_string()),
        poll_interval_ms: Some("20".into()),
        git_url_template: Some(format!(
            "file://{}/{{owner}}/{{repo}}",
            up.dir.path().display()
        )),
        github_api_url: Some(fake.api_url()),
        ..ConfigArgs::default()
    };
    let env = |k: &str| match k {
        "CAPSTAN_WEBHOOK_SECRET" => Some(SECRET.to_string()),
        "CAPSTAN_GITHUB_TOKEN" => Some(PAT.to_string()),
        _ => None,
    };
    let cfg = Config::load_with(&args, &env).unwrap();
    let db_url = cfg.database_url.clone();
    let stop = CancellationToken::new();
    // No forge passed: the service builds its GitHub client from the settings, like production.
    let parts = capstan_server::serve::Parts {
        shutdown: Some(stop.clone()),
        ..Default::default()
    };
    let (port, service) = capstan_tests::pr_harness::serve_on_ephemeral_port(cfg, parts).await;

    let body_text = "/capstan hold\n/capstan promote \u{0440}roduction\n";
    let comment = fake.add_comment(REPO, PR, "maintainer", false, body_text);
    let payload = serde_json::to_vec(&json!({
        "action": "created",
        "issue": {"number": PR, "pull_request": {"url": "https://api.github.com/repos/acme/gitops/pulls/7"}},
        "comment": {"id": comment, "body": body_text, "user": {"login": "maintainer", "type": "User"},
                    "updated_at": "2026-11-26T11:00:00Z"},
        "repository": {"full_name": REPO, "default_branch": "main"},
    }))
    .unwrap();
    let signature = capstan_tests::webhook::sign(SECRET.as_bytes(), &payload);
    let url = format!("http://127.0.0.1:{port}/webhooks/github");
    let client = capstan_tests::dashboard::http();
    let mut status = None;
    for _ in 0..500 {
        match client
            .post(&url)
            .header("content-type", "application/json")
            .header("user-agent", "GitHub-Hookshot/test")
            .header("x-github-event", "issue_comment")
            .header("x-github-delivery", "serve-e2e-1")
            .header("x-hub-signature-256", signature.as_str())
            .body(payload.clone())
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(resp) => {
                status = Some(resp.status().as_u16());
                break;
            }
            // Not listening yet.
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    assert_eq!(status, Some(202));

    let marker = format!("<!-- capstan:command-reply {comment}@2026-11-26T11:00:00Z -->");
    let mut reply = None;
    for _ in 0..1000 {
        if let Some(c) = fake
            .comments(REPO, PR)
            .into_iter()
            .find(|c| c.body.starts_with(&marker))
        {
            reply = Some(c.body);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reply = reply.expect("Capstan replied");
    assert!(
        has_line(&reply, "/capstan hold", "done: placed a hold"),
        "{reply}"
    );
    assert!(
        reply
            .lines()
            .any(|l| l.contains("→ refused:") && l.contains("non-ASCII")),
        "{reply}"
    );
    assert!(
        fake.reactions(REPO)
            .iter()
            .any(|(id, c)| *id == comment && c == "eyes")
    );
    stop.cancel();
    service.await.unwrap().unwrap();

    let q = capstan_worker::queue::open(&db_url).await.unwrap();
    let hold = SqlRunStore::new(q.db())
        .hold(REPO, PR)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(hold.held_by, "maintainer");
}
