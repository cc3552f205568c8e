//! Command authorization and promotion races under attack (issue 13, findings 2, 3, 5 and 6),
//! end to end: signed webhooks into the server's router, the command handler against the fake
//! GitHub, recording fakes for ArgoCD sync and the promotion engine
//! (`capstan_tests::commands_harness`). Every case asserts the refusal (or the silence) AND that
//! a legitimate command next to it still ran: a refusal never eats accepted work.
//!
//! Cases (43): edits by others (maintainer, admin, an App, no sender, GitHub's real `edited`
//! payload, a `created` event whose sender is not the author) · an author's own edit runs as the
//! author (also with a case-folded login) · bots · homoglyph and look-alike commands (Cyrillic, full-width slash,
//! zero-width space, non-breaking space) · permission API errors (500, 404, 403, timeout) and
//! the recovery after them · promotion races (head pushed after the comment, head not yet
//! delivered, force-push back to an older head, comment without a time, pinned sha, an edit
//! re-typed after the push, a head seen before the comment) · merges and pushes outside the
//! default branch · `sync` of apps from other repositories, other projects, look-alike URLs,
//! mixed sources, an unreadable app, and the app that is ours · `ok-to-test` by a fork's author,
//! a triager, for a head pushed after the comment, and by a writer.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use axum::http::StatusCode;

use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_tests::commands_harness::*;
use capstan_worker::jobs::PrCheck;
use capstan_worker::services::AppOrigin;
use capstan_worker::store::heads::OK_TO_TEST_TRIGGER;
use serde_json::{Value, json};

both_backends!(
    edits_by_anyone_but_the_author_run_nothing,
    an_authors_own_edit_runs_as_the_author,
    bots_and_look_alike_commands_run_nothing,
    permission_api_errors_refuse_and_recover,
    promote_refuses_a_head_pushed_after_the_comment,
    promote_accepts_a_pinned_sha_and_a_re_typed_edit,
    merges_and_pushes_outside_the_default_branch_are_ignored,
    sync_reaches_only_this_repositorys_apps,
    ok_to_test_is_authorized_and_pinned_to_a_seen_head,
);

const OTHER_HEAD: &str = "1111111111111111111111111111111111111111";
const NEWER_HEAD: &str = "2222222222222222222222222222222222222222";

/// An `issue_comment` event on the PR. `sender: None` leaves GitHub's `sender` out; times are
/// GitHub's strings (`None` leaves the field out).
fn comment_event(
    action: &str,
    id: u64,
    author: &str,
    sender: Option<&str>,
    body: &str,
    created: Option<&str>,
    updated: Option<&str>,
) -> Value {
    let mut v = json!({
        "action": action,
        "issue": {"number": PR, "pull_request": {"url": format!("https://api.github.com/repos/{REPO}/pulls/{PR}")}},
        "comment": {
            "id": id,
            "body": body,
            "user": {"login": author, "type": "User"},
            "author_association": "MEMBER",
        },
        "repository": {"full_name": REPO, "default_branch": "main"},
    });
    if let Some(s) = sender {
        let kind = if s.ends_with("[bot]") { "Bot" } else { "User" };
        v["sender"] = json!({"login": s, "type": kind});
    }
    for (key, t) in [("created_at", created), ("updated_at", updated)] {
        if let Some(t) = t {
            v["comment"][key] = json!(t);
        }
    }
    v
}

/// The delivery's recorded intake outcome and detail.
async fn outcome(h: &Harness, delivery: &str) -> (String, String) {
    let d = h.services.queue.delivery(delivery).await.unwrap().unwrap();
    (d.outcome, d.detail.unwrap_or_default())
}

/// Delivers `event` and asserts the intake ignored it: no job, no reaction, no reply.
async fn assert_ignored(h: &Harness, id: u64, event: &Value, why: &str) {
    let delivery = h.deliver_json("issue_comment", event, None).await;
    let (outcome, detail) = outcome(h, &delivery).await;
    assert_eq!(outcome, "ignored", "{why}: {detail}");
    assert!(
        h.services
            .queue
            .jobs_for_delivery(&delivery)
            .await
            .unwrap()
            .is_empty(),
        "{why}"
    );
    assert!(h.replies(id).is_empty(), "{why}: nothing is replied");
    assert!(!h.reacted(id), "{why}: no 👀");
}

/// Finding 5: a maintainer (or a bot) editing a reader's comment into `/capstan hold` must not
/// run it, neither with the reader's permission nor with their own under the reader's name.
async fn edits_by_anyone_but_the_author_run_nothing(b: &Backend) {
    let h = Harness::start(b, Handlers::CommandsOnly).await;
    let c = h.fake.add_comment(REPO, PR, "reader", false, "LGTM");
    let t = github_time(0);
    let cases: [(&str, Option<&str>, &str); 4] = [
        (
            "maintainer",
            Some("maintainer"),
            "a maintainer edits a reader's comment",
        ),
        (
            "bot",
            Some("renovate[bot]"),
            "an App edits a reader's comment",
        ),
        ("no sender", None, "an edit that names nobody"),
        ("admin", Some("admin"), "an admin edits a reader's comment"),
    ];
    for (_, sender, why) in cases {
        let event = comment_event(
            "edited",
            c,
            "reader",
            sender,
            "/capstan hold\n",
            Some(&t),
            Some(&t),
        );
        assert_ignored(&h, c, &event, why).await;
    }
    // A `created` event whose sender is not the comment's author (never sent by GitHub; a replay
    // or a forged relay) is not trusted either.
    let forged = comment_event(
        "created",
        c,
        "reader",
        Some("admin"),
        "/capstan hold\n",
        Some(&t),
        Some(&t),
    );
    assert_ignored(&h, c, &forged, "a created event sent by someone else").await;

    // GitHub's own `edited` payload, pointed at this PR, edited by someone other than its author.
    if let Some(dir) = capstan_tests::shared_fixtures() {
        let path = dir.join("github/payloads/issue_comment/edited.payload.json");
        let mut real: Value = serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap();
        real["repository"]["full_name"] = json!(REPO);
        real["repository"]["default_branch"] = json!("main");
        real["issue"]["number"] = json!(PR);
        real["issue"]["pull_request"] =
            json!({"url": "https://api.github.com/repos/acme/gitops/pulls/7"});
        real["comment"]["id"] = json!(c);
        real["comment"]["body"] = json!("/capstan hold\n");
        real["comment"]["user"]["login"] = json!("reader");
        real["sender"]["login"] = json!("maintainer");
        assert_ignored(
            &h,
            c,
            &real,
            "GitHub's real edited payload, edited by another",
        )
        .await;
        // The same payload edited by its author is a command, authorized as the sender.
        real["sender"]["login"] = json!("reader");
        let delivery = h.deliver_json("issue_comment", &real, None).await;
        assert_eq!(outcome(&h, &delivery).await.0, "accepted");
        let reply = h.reply(c);
        assert!(
            reply.contains("needs maintain permission on this repository; you have read"),
            "{reply}"
        );
    }
    assert!(h.services.runs.hold(REPO, PR).await.unwrap().is_none());

    // Nothing accepted is lost: the maintainer's own comment places the hold.
    let own = h.comment("maintainer", "/capstan hold\n").await;
    assert!(has_line(
        &h.reply(own),
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
    h.stop().await;
}

/// Finding 5: the author editing their own comment is authorized as themselves (the sender);
/// GitHub logins are case-insensitive, so `Reader` editing `reader`'s comment is the author.
async fn an_authors_own_edit_runs_as_the_author(b: &Backend) {
    let h = Harness::start(b, Handlers::CommandsOnly).await;
    let c = h.fake.add_comment(REPO, PR, "reader", false, "LGTM");
    let t = github_time(0);
    let event = comment_event(
        "edited",
        c,
        "reader",
        Some("Reader"),
        "/capstan hold\n/capstan help\n",
        Some(&t),
        Some(&t),
    );
    h.deliver_json("issue_comment", &event, None).await;
    let reply = h.reply(c);
    assert!(
        has_line(
            &reply,
            "/capstan hold",
            "refused: &#96;hold&#96; needs maintain permission on this repository; you have read"
        ),
        "{reply}"
    );
    assert!(has_line(&reply, "/capstan help", "done:"), "{reply}");
    assert!(h.services.runs.hold(REPO, PR).await.unwrap().is_none());

    let m = h.fake.add_comment(REPO, PR, "maintainer", false, "typo");
    let event = comment_event(
        "edited",
        m,
        "maintainer",
        Some("maintainer"),
        "/capstan hold\n",
        Some(&t),
        Some(&t),
    );
    h.deliver_json("issue_comment", &event, None).await;
    assert!(has_line(
        &h.reply(m),
        "/capstan hold",
        "done: placed a hold"
    ));
    h.stop().await;
}

/// Bots never command, and look-alike commands are text or refused, never run.
async fn bots_and_look_alike_commands_run_nothing(b: &Backend) {
    let h = Harness::start(b, Handlers::CommandsOnly).await;
    let t = github_time(0);
    // A bot account without the `[bot]` suffix is still a bot by its type.
    let id = h
        .fake
        .add_comment(REPO, PR, "ci-helper", true, "/capstan hold\n");
    let mut event = comment_event(
        "created",
        id,
        "ci-helper",
        Some("ci-helper"),
        "/capstan hold\n",
        Some(&t),
        Some(&t),
    );
    event["comment"]["user"]["type"] = json!("Bot");
    event["sender"]["type"] = json!("Bot");
    assert_ignored(&h, id, &event, "a Bot-typed account").await;

    // Look-alikes of the prefix are not commands at all: the intake queues nothing.
    for (body, why) in [
        ("/c\u{0430}pstan hold\n", "Cyrillic a in the prefix"),
        ("\u{FF0F}capstan hold\n", "full-width solidus"),
        (
            "/capstan\u{200B} hold\n",
            "zero-width space after the prefix",
        ),
        (
            "\u{200B}/capstan hold\n",
            "zero-width space before the prefix",
        ),
    ] {
        let c = h.fake.add_comment(REPO, PR, "maintainer", false, body);
        let event = comment_event(
            "created",
            c,
            "maintainer",
            Some("maintainer"),
            body,
            Some(&t),
            Some(&t),
        );
        let delivery = h.deliver_json("issue_comment", &event, None).await;
        let (outcome, detail) = outcome(&h, &delivery).await;
        if outcome == "accepted" {
            // Queued as a line starting with the prefix: then the handler must refuse it.
            let reply = h.reply(c);
            assert!(reply.contains("refused"), "{why}: {reply}");
        } else {
            assert_eq!(outcome, "ignored", "{why}: {detail}");
        }
    }
    // Look-alikes of the command word are refused with a reason.
    let body = "/capstan h\u{043E}ld\n/capstan hold\u{00A0}\n";
    let c = h.comment("maintainer", body).await;
    let reply = h.reply(c);
    assert_eq!(reply.matches("→ refused:").count(), 2, "{reply}");
    assert!(h.services.runs.hold(REPO, PR).await.unwrap().is_none());

    // Nothing accepted is lost: the plain command still works.
    let c = h.comment("maintainer", "/capstan hold\n").await;
    assert!(has_line(
        &h.reply(c),
        "/capstan hold",
        "done: placed a hold"
    ));
    h.stop().await;
}

/// The collaborator-permission API failing in every way refuses every command of the comment
/// (never allows), and the same user's next comment works once the API is back.
async fn permission_api_errors_refuse_and_recover(b: &Backend) {
    let h =
        Harness::start_with_timeout(b, Handlers::CommandsOnly, Duration::from_millis(700)).await;
    let route = |u: &str| format!("/repos/{REPO}/collaborators/{u}/permission");
    h.fake.fail_route("GET", &route("maintainer"), 500);
    h.fake.fail_route("GET", &route("admin"), 404);
    h.fake.fail_route("GET", &route("writer"), 403);
    h.fake
        .stall_route("GET", &route("triager"), Duration::from_secs(5));
    for user in ["maintainer", "admin", "writer", "triager"] {
        let c = h
            .comment(user, "/capstan hold\n/capstan promote staging\n")
            .await;
        let reply = h.reply(c);
        for line in ["/capstan hold", "/capstan promote staging"] {
            assert!(
                has_line(&reply, line, "refused: could not check your permission"),
                "{user}: {reply}"
            );
        }
    }
    assert!(h.services.runs.hold(REPO, PR).await.unwrap().is_none());
    assert!(h.promoter.calls.lock().unwrap().is_empty());
    // Every refused promotion reached the audit trail.
    assert_eq!(h.promoter.refusals.lock().unwrap().len(), 4);

    // The API recovers: nothing accepted afterwards is lost.
    h.fake.clear_failures();
    let c = h.comment("maintainer", "/capstan hold\n").await;
    assert!(has_line(
        &h.reply(c),
        "/capstan hold",
        "done: placed a hold"
    ));
    h.stop().await;
}

/// Finding 2: `/capstan promote` without a sha promotes only a head Capstan knew before the
/// comment was written.
async fn promote_refuses_a_head_pushed_after_the_comment(b: &Backend) {
    let h = Harness::start(b, Handlers::CommandsOnly).await;
    let promote = "/capstan promote staging\n";
    // 1. Written a minute before the head the PR now has was pushed (the setup's head arrived
    //    just now): the commenter reviewed something else.
    let early = github_time(-60);
    let c = h.fake.add_comment(REPO, PR, "writer", false, promote);
    h.deliver_json(
        "issue_comment",
        &comment_event(
            "created",
            c,
            "writer",
            Some("writer"),
            promote,
            Some(&early),
            Some(&early),
        ),
        None,
    )
    .await;
    let reply = h.reply(c);
    assert!(
        reply.contains("refused") && reply.contains("after this comment was written"),
        "{reply}"
    );
    assert!(
        reply.contains(h.head()),
        "the reply names the sha to pin: {reply}"
    );

    // 2. GitHub already shows a newer head whose push Capstan has not received yet.
    h.fake.set_head(REPO, PR, OTHER_HEAD);
    let c = h.comment("writer", promote).await;
    let reply = h.reply(c);
    assert!(reply.contains("has not seen"), "{reply}");

    // 3. Force-pushed back: head A, then B, then A again after the comment. A was first seen
    //    long before the comment, but the head the commenter saw was B.
    h.synchronize(OTHER_HEAD).await;
    h.synchronize(NEWER_HEAD).await;
    let between = github_time(0);
    tokio::time::sleep(Duration::from_millis(2100)).await;
    h.synchronize(OTHER_HEAD).await;
    let c = h.fake.add_comment(REPO, PR, "writer", false, promote);
    h.deliver_json(
        "issue_comment",
        &comment_event(
            "created",
            c,
            "writer",
            Some("writer"),
            promote,
            Some(&between),
            Some(&between),
        ),
        None,
    )
    .await;
    let reply = h.reply(c);
    assert!(reply.contains("after this comment was written"), "{reply}");

    // 4. A comment without any time: nobody can tell what it was written for.
    let c = h.fake.add_comment(REPO, PR, "writer", false, promote);
    h.deliver_json(
        "issue_comment",
        &comment_event("created", c, "writer", Some("writer"), promote, None, None),
        None,
    )
    .await;
    assert!(h.reply(c).contains("time is unknown"), "{}", h.reply(c));

    assert!(
        h.promoter.calls.lock().unwrap().is_empty(),
        "nothing promoted"
    );
    let refusals = h.promoter.refusals.lock().unwrap().clone();
    assert_eq!(refusals.len(), 4, "every refusal is audited: {refusals:?}");

    // Nothing accepted is lost: written after the head arrived, the same command runs, with the
    // head it was checked against.
    let c = h.comment("writer", promote).await;
    assert!(
        has_line(&h.reply(c), "/capstan promote staging", "done: promotion"),
        "{}",
        h.reply(c)
    );
    let calls = h.promoter.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].head_at_command.as_deref(), Some(OTHER_HEAD));
    assert_eq!(calls[0].default_branch.as_deref(), Some("main"));
    h.stop().await;
}

/// Finding 2: a pinned sha says what was reviewed, whenever the head arrived; an edit counts
/// from the time it was made.
async fn promote_accepts_a_pinned_sha_and_a_re_typed_edit(b: &Backend) {
    let h = Harness::start(b, Handlers::CommandsOnly).await;
    let early = github_time(-60);
    let pinned = format!("/capstan promote staging {}\n", h.head());
    let c = h.fake.add_comment(REPO, PR, "writer", false, &pinned);
    h.deliver_json(
        "issue_comment",
        &comment_event(
            "created",
            c,
            "writer",
            Some("writer"),
            &pinned,
            Some(&early),
            Some(&early),
        ),
        None,
    )
    .await;
    assert!(
        has_line(&h.reply(c), pinned.trim_end(), "done:"),
        "{}",
        h.reply(c)
    );

    // Written before the head arrived, edited (re-typed) after it: the edit's time counts.
    let plain = "/capstan promote production\n";
    let e = h.fake.add_comment(REPO, PR, "writer", false, plain);
    let now = github_time(0);
    h.deliver_json(
        "issue_comment",
        &comment_event(
            "edited",
            e,
            "writer",
            Some("writer"),
            plain,
            Some(&early),
            Some(&now),
        ),
        None,
    )
    .await;
    assert!(
        has_line(&h.reply(e), "/capstan promote production", "done:"),
        "{}",
        h.reply(e)
    );

    let calls = h.promoter.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[0].sha.as_deref(), Some(h.head()));
    assert_eq!(calls[0].head_at_command, None, "the pinned sha decides");
    assert_eq!(calls[1].head_at_command.as_deref(), Some(h.head()));
    h.stop().await;
}

/// Finding 3: a merge into another branch and a push to another branch queue nothing; a merge
/// event without the default branch is rejected; the default branch still promotes.
async fn merges_and_pushes_outside_the_default_branch_are_ignored(b: &Backend) {
    let h = Harness::start(b, Handlers::CommandsOnly).await;
    let merged = |base: &str, default: Option<&str>| {
        let mut v = json!({
            "action": "closed",
            "number": 9,
            "pull_request": {
                "number": 9, "merged": true, "merge_commit_sha": "c".repeat(40),
                "head": {"ref": "evil", "sha": "d".repeat(40)},
                "base": {"ref": base, "sha": "e".repeat(40)},
                "merged_by": {"login": "writer"},
            },
            "repository": {"full_name": REPO},
            "sender": {"login": "writer", "type": "User"},
        });
        if let Some(d) = default {
            v["repository"]["default_branch"] = json!(d);
        }
        v
    };
    let d = h
        .deliver_json("pull_request", &merged("release", Some("main")), None)
        .await;
    let (o, detail) = outcome(&h, &d).await;
    assert_eq!(o, "ignored", "{detail}");
    assert!(detail.contains("default branch is main"), "{detail}");
    assert!(
        h.services
            .queue
            .jobs_for_delivery(&d)
            .await
            .unwrap()
            .is_empty()
    );
    let (status, d) = h.post("pull_request", &merged("main", None)).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(outcome(&h, &d).await.0, "rejected");
    assert!(
        h.services
            .queue
            .jobs_for_delivery(&d)
            .await
            .unwrap()
            .is_empty()
    );

    let push = json!({
        "ref": "refs/heads/release", "before": "a".repeat(40), "after": "b".repeat(40),
        "repository": {"full_name": REPO, "default_branch": "main"},
        "pusher": {"name": "writer"},
    });
    let d = h.deliver_json("push", &push, None).await;
    assert_eq!(outcome(&h, &d).await.0, "ignored");

    // Nothing accepted is lost: the merge into main is queued (this runner has no promotion
    // handler, so it stays queued), with the default branch named.
    let (status, d) = h.post("pull_request", &merged("main", Some("main"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let jobs = h.services.queue.jobs_for_delivery(&d).await.unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].kind, "pr_merged");
    assert_eq!(jobs[0].payload["default_branch"], "main");
    h.stop().await;
}

/// Finding 6: `/capstan sync` reaches only apps ArgoCD says come from this repository, in a
/// project this repository's apps use.
async fn sync_reaches_only_this_repositorys_apps(b: &Backend) {
    let h = Harness::start(b, Handlers::CommandsOnly).await;
    let origin = |project: &str, urls: &[&str]| {
        Ok(AppOrigin {
            project: project.into(),
            repo_urls: urls.iter().map(|u| u.to_string()).collect(),
        })
    };
    let cases: [(Result<AppOrigin, String>, &str); 6] = [
        (
            origin("default", &["https://github.com/acme/payments.git"]),
            "payments.git",
        ),
        (
            origin("default", &["https://github.com/acme/gitops-evil"]),
            "gitops-evil",
        ),
        (
            origin("default", &["https://evil.example/acme/gitops.git"]),
            "evil.example",
        ),
        (
            origin(
                "default",
                &[
                    "https://github.com/acme/gitops.git",
                    "https://github.com/acme/payments",
                ],
            ),
            "acme/payments",
        ),
        (
            origin("platform", &["https://github.com/acme/gitops.git"]),
            "project",
        ),
        (
            Err("permission denied".into()),
            "could not be read from ArgoCD",
        ),
    ];
    for (o, why) in cases {
        h.sync.origins.lock().unwrap().insert("web".into(), o);
        let c = h.comment("writer", "/capstan sync web\n").await;
        let reply = h.reply(c);
        assert!(
            reply.contains("→ refused: ArgoCD sync of") && reply.contains(why),
            "{why}: {reply}"
        );
    }
    assert!(
        h.sync.calls.lock().unwrap().is_empty(),
        "nothing was synced"
    );

    // Nothing accepted is lost: the app of this repository (spelled differently) syncs.
    h.sync.origins.lock().unwrap().insert(
        "web".into(),
        origin("default", &["git@GitHub.com:acme/gitops.git"]),
    );
    let c = h.comment("writer", "/capstan sync web\n").await;
    assert!(
        has_line(&h.reply(c), "/capstan sync web", "done: ArgoCD sync of"),
        "{}",
        h.reply(c)
    );
    assert_eq!(*h.sync.calls.lock().unwrap(), vec!["web".to_string()]);
    h.stop().await;
}

/// Finding 4: `/capstan ok-to-test` needs write permission (a fork's author cannot approve their
/// own pull request), and approves only a head the commenter could have seen.
async fn ok_to_test_is_authorized_and_pinned_to_a_seen_head(b: &Backend) {
    let h = Harness::start(b, Handlers::CommandsOnly).await;
    // The fork's author (read) and a triager cannot approve.
    for user in ["reader", "triager"] {
        let c = h.comment(user, "/capstan ok-to-test\n").await;
        let reply = h.reply(c);
        assert!(
            reply.contains("needs write permission on this repository"),
            "{user}: {reply}"
        );
    }
    // Written before the head arrived: nothing is approved.
    let early = github_time(-60);
    let c = h
        .fake
        .add_comment(REPO, PR, "writer", false, "/capstan ok-to-test\n");
    h.deliver_json(
        "issue_comment",
        &comment_event(
            "created",
            c,
            "writer",
            Some("writer"),
            "/capstan ok-to-test\n",
            Some(&early),
            Some(&early),
        ),
        None,
    )
    .await;
    let reply = h.reply(c);
    assert!(reply.contains("nothing was approved"), "{reply}");
    assert!(ok_to_test_jobs(&h, c, &early).await.is_empty());

    // Nothing accepted is lost: the writer's approval now queues the approved check.
    let c = h.comment("writer", "/capstan ok-to-test\n").await;
    assert!(
        has_line(
            &h.reply(c),
            "/capstan ok-to-test",
            "done: cluster checks approved"
        ),
        "{}",
        h.reply(c)
    );
    let jobs = ok_to_test_jobs(&h, c, "v1").await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].payload["head_sha"], h.head());
    assert_eq!(jobs[0].payload["sender"], "writer");
    h.stop().await;
}

/// The approved check (`ok-to-test`) comment `c` of `version` queued for the harness's head.
async fn ok_to_test_jobs(h: &Harness, c: u64, version: &str) -> Vec<capstan_worker::queue::Job> {
    let key = format!(
        "{}/ok-to-test:{c}@{version}",
        PrCheck::dedupe_key(REPO, PR, h.head())
    );
    let jobs = h.services.queue.jobs_by_dedupe_key(&key).await.unwrap();
    assert!(
        jobs.iter()
            .all(|j| j.payload["trigger"] == OK_TO_TEST_TRIGGER)
    );
    jobs
}
