//! The `pr_check` pipeline end to end: `capstan serve` in-process, signed webhooks over HTTP, the
//! fake GitHub, and a real git repository fetched through `file://`. Assertions are on what the
//! fake GitHub recorded.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use capstan_tests::pr_harness::{Auth, Harness, REPO, fanout_tree};
use capstan_tests::pr_worker::{Worker, pr_check};
use capstan_worker::git::fixture::Change;
use capstan_worker::limits::Limits;
use capstan_worker::report::parse_marker;
use capstan_worker::store::RunStore;
use capstan_worker::store::runs::{RunFilter, RunRecord, RunStatus, SqlRunStore};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(120);

/// The completed check run of `sha`, once there is one.
async fn completed_check(h: &Harness, sha: &str) -> Value {
    h.completed_check(sha, WAIT).await
}

/// The run record of `head` once it has finished.
async fn finished_run(h: &Harness, pr: u64, head: &str) -> RunRecord {
    let store = run_store(h).await;
    let start = std::time::Instant::now();
    loop {
        let runs = store
            .list_runs(&RunFilter {
                repo: Some(REPO.into()),
                pr: Some(pr),
                ..RunFilter::default()
            })
            .await
            .unwrap();
        if let Some(r) = runs
            .iter()
            .find(|r| r.head_sha == head && r.status != RunStatus::Running)
        {
            return r.clone();
        }
        assert!(
            start.elapsed() < WAIT,
            "no finished run for {head}: {runs:#?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn run_store(h: &Harness) -> SqlRunStore {
    let q = capstan_worker::queue::open(&h.database_url).await.unwrap();
    SqlRunStore::new(q.db())
}

/// Each part's code fences are closed and, outside them, `<details>` tags are balanced and
/// properly nested (inside a fence, markup is inert text).
fn assert_balanced(body: &str) {
    let mut fence: Option<usize> = None;
    let mut depth: i64 = 0;
    for line in body.lines() {
        let ticks = line.len() - line.trim_start_matches('`').len();
        match fence {
            None if ticks >= 3 => fence = Some(ticks),
            None => {
                depth += line.matches("<details>").count() as i64;
                depth -= line.matches("</details>").count() as i64;
                assert!(
                    depth >= 0,
                    "</details> closes nothing: {line:?} in:\n{body}"
                );
            }
            Some(n) if ticks >= n && line.trim_start_matches('`').trim().is_empty() => fence = None,
            Some(_) => {}
        }
    }
    assert_eq!(fence, None, "a code fence is left open in:\n{body}");
    assert_eq!(depth, 0, "unbalanced <details> in:\n{body}");
}

/// The lines of `body` outside code fences: where markdown, mentions and HTML take effect.
fn outside_fences(body: &str) -> Vec<&str> {
    let mut fence: Option<usize> = None;
    let mut out = Vec::new();
    for line in body.lines() {
        let ticks = line.len() - line.trim_start_matches('`').len();
        match fence {
            None if ticks >= 3 => fence = Some(ticks),
            None => out.push(line),
            Some(n) if ticks >= n && line.trim_start_matches('`').trim().is_empty() => fence = None,
            Some(_) => {}
        }
    }
    out
}

/// Positions of the first call matching `method` and a path prefix.
fn first_call(h: &Harness, method: &str, path_prefix: &str) -> usize {
    h.fake
        .calls()
        .iter()
        .position(|c| c.method == method && c.path.starts_with(path_prefix))
        .unwrap_or_else(|| panic!("no {method} {path_prefix}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pr_lifecycle_check_run_sticky_comment_supersede_and_deny() {
    let h = Harness::start(Auth::App, &fanout_tree(2)).await;

    // 1. Opened: in_progress, one comment with the per-app diff, then success.
    let head1 = h.push_level("feature", "debug");
    let head1 = head1.to_string();
    h.open_pull(1, "feature");
    h.pull_request_event("opened", 1, "feature", &head1).await;
    let run = completed_check(&h, &head1).await;
    assert_eq!(run["conclusion"], "success", "{run:#}");
    assert_eq!(run["name"], "capstan");
    let created = first_call(&h, "POST", "/repos/acme/gitops/check-runs");
    let commented = first_call(&h, "POST", "/repos/acme/gitops/issues/1/comments");
    let completed = first_call(&h, "PATCH", "/repos/acme/gitops/check-runs/");
    assert!(created < commented && commented < completed);
    let create_body = h.fake.calls()[created].body.clone().unwrap();
    assert_eq!(create_body["status"], "in_progress");
    let comments = h.report_comments(1);
    assert_eq!(comments.len(), 1);
    let first = comments[0].clone();
    assert_eq!(first.login, "capstan[bot]");
    assert!(first.body.contains("app-000") && first.body.contains("app-001"));
    insta::assert_snapshot!("opened_comment", first.body);

    // 2. A new push: the same comment is edited.
    let head2 = h.push_level("feature", "warn");
    h.open_pull(1, "feature");
    h.pull_request_event("synchronize", 1, "feature", &head2)
        .await;
    let run2 = completed_check(&h, &head2).await;
    assert_eq!(run2["conclusion"], "success");
    let comments = h.report_comments(1);
    assert_eq!(comments.len(), 1, "never a second sticky comment");
    assert_eq!(comments[0].id, first.id);
    assert!(
        comments[0].body.contains("LOG_LEVEL: warn"),
        "{}",
        comments[0].body
    );
    assert_eq!(
        h.fake
            .calls_to(
                "PATCH",
                &format!("/repos/acme/gitops/issues/comments/{}", first.id)
            )
            .len(),
        1
    );

    // 3. Two pushes in a row: the older head is superseded and nothing is posted for it.
    let head3 = h.push_level("feature", "error");
    let head4 = h.push_level("feature", "trace");
    h.open_pull(1, "feature");
    h.pull_request_event("synchronize", 1, "feature", &head3)
        .await;
    h.pull_request_event("synchronize", 1, "feature", &head4)
        .await;
    let run4 = completed_check(&h, &head4).await;
    assert_eq!(run4["conclusion"], "success");
    h.wait_idle().await;
    assert!(
        h.check_runs_for(&head3).is_empty(),
        "a check run was posted for the old head"
    );
    assert!(h.fake.statuses(REPO).is_empty());
    let comments = h.report_comments(1);
    assert_eq!(comments.len(), 1);
    assert!(comments[0].body.contains("LOG_LEVEL: trace"));
    assert!(!comments[0].body.contains(&head3[..7]));
    let store = run_store(&h).await;
    let runs = store
        .list_runs(&RunFilter {
            repo: Some(REPO.into()),
            pr: Some(1),
            ..RunFilter::default()
        })
        .await
        .unwrap();
    for r in runs.iter().filter(|r| r.head_sha == head3) {
        assert_eq!(r.status, RunStatus::Superseded, "{r:?}");
        assert!(r.comment_ids.is_empty());
    }
    let latest = finished_run(&h, 1, &head4).await;
    assert_eq!(latest.status, RunStatus::Success);
    assert_eq!(latest.comment_ids, vec![first.id]);

    // 4. A deny: the check fails with an annotation at the file and line to change.
    let service = "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: LoadBalancer\n  selector:\n    app: web\n  ports:\n    - port: 80\n";
    let kustomization = "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: app-000\nresources:\n  - ../../shared/base\n  - service.yaml\n";
    let head5 = h
        .push(
            "feature",
            &[
                Change::Write("apps/app-000/service.yaml", service.as_bytes()),
                Change::Write("apps/app-000/kustomization.yaml", kustomization.as_bytes()),
            ],
        )
        .to_string();
    h.open_pull(1, "feature");
    h.pull_request_event("synchronize", 1, "feature", &head5)
        .await;
    let run5 = completed_check(&h, &head5).await;
    assert_eq!(run5["conclusion"], "failure", "{run5:#}");
    let annotations = run5["output"]["annotations"].as_array().unwrap();
    let exposure = annotations
        .iter()
        .find(|a| {
            a["title"]
                .as_str()
                .unwrap_or("")
                .contains("service-exposure")
        })
        .unwrap_or_else(|| panic!("no service-exposure annotation: {annotations:#?}"));
    assert_eq!(exposure["path"], "apps/app-000/service.yaml");
    assert_eq!(exposure["annotation_level"], "failure");
    // The rule points at `spec.type`: line 6 of the file, where `type: LoadBalancer` is.
    let line = exposure["start_line"].as_u64().unwrap() as usize;
    assert_eq!(service.lines().nth(line - 1), Some("  type: LoadBalancer"));
    assert_eq!(line, 6);
    assert_eq!(h.report_comments(1).len(), 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_huge_report_is_split_into_balanced_parts_and_shrinks_back() {
    let apps = 40;
    let h = Harness::start(Auth::App, &fanout_tree(apps)).await;
    // ~2,500 changed keys per app, 40 apps: a report of several MB.
    let mut big =
        String::from("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n");
    for i in 0..2500 {
        big.push_str(&format!(
            "  KEY_{i:05}: value-number-{i:05}-changed-by-this-pr\n"
        ));
    }
    let head = h
        .push(
            "big",
            &[Change::Write("shared/base/settings.yaml", big.as_bytes())],
        )
        .to_string();
    h.open_pull(2, "big");
    h.pull_request_event("opened", 2, "big", &head).await;
    let run = completed_check(&h, &head).await;
    assert_eq!(run["conclusion"], "success");

    let store = run_store(&h).await;
    let rec = finished_run(&h, 2, &head).await;
    let full = store.run(rec.id).await.unwrap().unwrap().report.unwrap();
    let size = serde_json::to_string(&full).unwrap().len();
    assert!(size > 5_000_000, "the stored report is {size} bytes");

    let parts = h.report_comments(2);
    assert!(parts.len() > 1, "a report this size needs several parts");
    let total = parts.len();
    for (i, p) in parts.iter().enumerate() {
        assert!(p.body.chars().count() <= 65_536);
        assert_eq!(parse_marker(&p.body), Some((2, i + 1)));
        assert!(
            p.body.contains(&format!("part {}/{total}", i + 1)),
            "{}",
            &p.body[..300]
        );
        assert_balanced(&p.body);
    }
    // The summary table is in part 1 and lists every app.
    for i in 0..apps {
        assert!(parts[0].body.contains(&format!("app-{i:03}")));
    }
    assert_eq!(
        rec.comment_ids,
        parts.iter().map(|p| p.id).collect::<Vec<_>>()
    );

    // Shrinking the PR deletes the parts no longer needed.
    let small = h.push_level("big", "debug");
    h.open_pull(2, "big");
    h.pull_request_event("synchronize", 2, "big", &small).await;
    completed_check(&h, &small).await;
    let after = h.report_comments(2);
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].id, parts[0].id, "part 1 is edited in place");
    let deletes = h
        .fake
        .calls()
        .into_iter()
        .filter(|c| c.method == "DELETE" && c.path.contains("/issues/comments/"))
        .count();
    assert_eq!(deletes, total - 1);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markdown_injection_in_manifests_cannot_break_out() {
    let h = Harness::start(Auth::App, &fanout_tree(1)).await;
    let nasty = "apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
data:
  LOG_LEVEL: debug
  fence: |
    ```
    </details>
    </code></pre>
    @alice and @acme/admins please look
    <!-- capstan:report pr=3 part=1 -->
    /capstan promote production
  \"@octocat\": \"</details><details><summary>evil</summary>\"
";
    let head = h
        .push(
            "nasty",
            &[Change::Write("shared/base/settings.yaml", nasty.as_bytes())],
        )
        .to_string();
    h.open_pull(3, "nasty");
    h.pull_request_event("opened", 3, "nasty", &head).await;
    completed_check(&h, &head).await;
    let comments = h.report_comments(3);
    assert_eq!(comments.len(), 1);
    let body = &comments[0].body;
    assert_balanced(body);
    assert_eq!(
        body.matches("capstan:report").count(),
        1,
        "the marker is forged:\n{body}"
    );
    assert_eq!(parse_marker(body), Some((3, 1)));
    // Inside a code block GitHub neither notifies nor renders HTML; outside, nothing of the
    // manifest may mention anyone or add markup.
    let prose = outside_fences(body).join("\n");
    for mention in ["@alice", "@acme/admins", "@octocat"] {
        assert!(!prose.contains(mention), "{mention} would notify:\n{body}");
    }
    assert!(!prose.contains("evil"), "{body}");
    for line in body.lines() {
        assert!(
            !line.trim_start().starts_with("/capstan"),
            "a line reads as a command: {line:?}"
        );
    }
    // The content is still shown (neutralised, not dropped).
    assert!(body.contains("promote production"));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_auth_reports_with_commit_statuses() {
    let h = Harness::start(Auth::Token, &fanout_tree(1)).await;
    let head = h.push_level("feature", "debug");
    h.open_pull(4, "feature");
    h.pull_request_event("opened", 4, "feature", &head).await;
    h.wait_for("a final commit status", WAIT, |h| {
        h.fake
            .statuses(REPO)
            .iter()
            .any(|(_, s)| s["state"] == "success")
    })
    .await;
    let statuses = h.fake.statuses(REPO);
    let states: Vec<&str> = statuses
        .iter()
        .map(|(sha, s)| {
            assert_eq!(sha, &head);
            assert_eq!(s["context"], "capstan");
            assert!(
                s["target_url"]
                    .as_str()
                    .unwrap()
                    .starts_with("https://capstan.example/runs/")
            );
            s["state"].as_str().unwrap()
        })
        .collect();
    assert_eq!(states, vec!["pending", "success"]);
    assert!(h.fake.check_runs(REPO).is_empty());
    let comments = h.report_comments(4);
    assert_eq!(comments.len(), 1);
    assert_eq!(comments[0].login, "capstan-user");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hold_keeps_the_check_failing_and_says_who() {
    let h = Harness::start(Auth::App, &fanout_tree(1)).await;
    let store = run_store(&h).await;
    store.set_hold(REPO, 5, "bob").await.unwrap();
    let head = h.push_level("feature", "debug");
    h.open_pull(5, "feature");
    h.pull_request_event("opened", 5, "feature", &head).await;
    let run = completed_check(&h, &head).await;
    assert_eq!(run["conclusion"], "failure");
    let summary = run["output"]["summary"].as_str().unwrap();
    assert!(summary.contains("bob"), "{summary}");
    h.stop().await;
}

/// A delivery of an older head arriving after the newest one's (a redelivery, or GitHub's own
/// reordering) supersedes the newest head's queued check by the queue's rule; the older head's
/// job then finds the pull request moved on and must see the newest head checked, not leave it
/// to the next recovery pass minutes later. Both jobs are queued before the worker starts, so
/// the newest head's check cannot have run first.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_delivery_of_an_older_head_leaves_the_newest_head_checked() {
    let h = Harness::without_service(&fanout_tree(2)).await;
    let older = h.push_level("feature", "warn");
    let newest = h.push_level("feature", "trace");
    h.open_pull(4, "feature");
    let dir = tempfile::tempdir().unwrap();
    let queue = capstan_worker::queue::open(&format!("sqlite://{}/q.db", dir.path().display()))
        .await
        .unwrap();
    for head in [&newest, &older] {
        let job = pr_check(4, head, "pull_request.synchronize", Some("alice"));
        queue.enqueue(&job.into_job()).await.unwrap().unwrap();
    }
    let w = Worker::start_on_queue(&h, vec![], Limits::default(), queue).await;
    let run = h.completed_check(&newest, Duration::from_secs(60)).await;
    assert_eq!(run["conclusion"], "success", "{run:#}");
    assert!(
        h.check_runs_for(&older).is_empty(),
        "a check run was posted for the older head"
    );
    let comments = h.report_comments(4);
    assert_eq!(comments.len(), 1);
    assert!(
        comments[0].body.contains("LOG_LEVEL: trace"),
        "{}",
        comments[0].body
    );
    w.stop().await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pr_touching_no_app_is_neutral() {
    let h = Harness::start(Auth::App, &fanout_tree(1)).await;
    let head = h
        .push("docs", &[Change::Write("README.md", b"# docs only\n")])
        .to_string();
    h.open_pull(6, "docs");
    h.pull_request_event("opened", 6, "docs", &head).await;
    let run = completed_check(&h, &head).await;
    assert_eq!(run["conclusion"], "neutral");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_github_credentials_the_run_is_stored_and_nothing_is_posted() {
    let h = Harness::start(Auth::None, &fanout_tree(2)).await;
    let head = h.push_level("feature", "debug");
    h.pull_request_event("opened", 10, "feature", &head).await;
    let run = finished_run(&h, 10, &head).await;
    assert_eq!(run.status, RunStatus::Success, "{run:?}");
    assert_eq!(run.apps, 2);
    // The base is the base branch as the mirror fetched it, and the run records it (without a
    // forge nothing else says what was compared).
    let main = h.main_tip().to_string();
    assert_eq!(run.base_sha.as_deref(), Some(main.as_str()), "{run:?}");
    assert_eq!(run.merge_base.as_deref(), Some(main.as_str()), "{run:?}");
    let store = run_store(&h).await;
    let report = store.run(run.id).await.unwrap().unwrap().report.unwrap();
    assert_eq!(
        report.run_url,
        format!("https://capstan.example/runs/{}", run.id)
    );
    let changed: Vec<usize> = report.apps.iter().map(|a| a.diff.changes.len()).collect();
    assert_eq!(changed, vec![1, 1]);
    assert!(h.fake.calls().is_empty(), "nothing may be sent to GitHub");
    h.stop().await;
}

/// `fanout_tree(1)` plus `extra` files, with `settings` appended to `.capstan.yaml`.
fn tree_with(settings: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut files = fanout_tree(1);
    for (path, text) in &mut files {
        if path == ".capstan.yaml" {
            text.push_str(settings);
        }
    }
    for (path, text) in extra {
        files.push((path.to_string(), text.to_string()));
    }
    files
}

/// `fanout_tree(1)` plus an app of a config management plugin (`plugin/`), which Capstan does not
/// run.
fn tree_with_plugin_app(settings: &str) -> Vec<(String, String)> {
    let app = capstan_tests::pr_harness::application("plugin-app").replace(
        "path: apps/plugin-app",
        "path: plugin\n    plugin:\n      name: sops",
    );
    tree_with(
        settings,
        &[
            ("argocd/apps/plugin-app.yaml", &app),
            ("plugin/secrets.enc.yaml", "k: ENC[1]\n"),
        ],
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_to_an_app_capstan_cannot_render_is_not_checked_and_neutral() {
    let h = Harness::start(Auth::App, &tree_with_plugin_app("")).await;
    let head = h
        .push(
            "plugin",
            &[Change::Write("plugin/secrets.enc.yaml", b"k: ENC[2]\n")],
        )
        .to_string();
    h.open_pull(8, "plugin");
    h.pull_request_event("opened", 8, "plugin", &head).await;
    let run = completed_check(&h, &head).await;
    assert_eq!(run["conclusion"], "neutral", "{run:#}");
    let title = run["output"]["title"].as_str().unwrap();
    assert!(title.contains("1 not checked"), "{title}");
    let summary = run["output"]["summary"].as_str().unwrap();
    assert!(
        summary.contains("| plugin-app |") && summary.contains("not checked"),
        "{summary}"
    );
    let comments = h.report_comments(8);
    let body = &comments[0].body;
    assert!(!body.contains("No apps are affected"), "{body}");
    assert!(
        body.contains("plugin-app") && body.contains("⚪ not checked"),
        "{body}"
    );
    assert!(body.contains("plugins are not run"), "{body}");
    let record = finished_run(&h, 8, &head).await;
    assert_eq!(record.status, RunStatus::Neutral, "{record:?}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn render_not_checked_failure_makes_an_unrendered_app_fail_the_check() {
    let h = Harness::start(
        Auth::App,
        &tree_with_plugin_app("render:\n  notChecked: failure\n"),
    )
    .await;
    let head = h
        .push(
            "plugin",
            &[Change::Write("plugin/secrets.enc.yaml", b"k: ENC[3]\n")],
        )
        .to_string();
    h.open_pull(9, "plugin");
    h.pull_request_event("opened", 9, "plugin", &head).await;
    let run = completed_check(&h, &head).await;
    assert_eq!(run["conclusion"], "failure", "{run:#}");
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_jsonnet_app_is_diffed_like_any_other_and_its_libraries_affect_it() {
    // The program calls a library from `lib/` (a `libs` entry, relative to the repository root)
    // with an ext var and a TLA; the pull request changes only the library.
    let app = capstan_tests::pr_harness::application("jsonnet-app").replace(
        "path: apps/jsonnet-app",
        "path: jsonnet\n    directory:\n      jsonnet:\n        libs: [lib]\n        extVars:\n        - name: app\n          value: $ARGOCD_APP_NAME\n        tlas:\n        - name: replicas\n          value: '2'\n          code: true",
    );
    let program = "function(replicas) (import 'cm.libsonnet')(std.extVar('app'), replicas)\n";
    let lib = "function(name, n) { apiVersion: 'v1', kind: 'ConfigMap',\n  metadata: { name: name + '-settings' },\n  data: { LOG_LEVEL: 'info', REPLICAS: std.toString(n) } }\n";
    let h = Harness::start(
        Auth::App,
        &tree_with(
            "",
            &[
                ("argocd/apps/jsonnet-app.yaml", &app),
                ("jsonnet/main.jsonnet", program),
                ("lib/cm.libsonnet", lib),
            ],
        ),
    )
    .await;
    let head = h
        .push(
            "jsonnet",
            &[Change::Write(
                "lib/cm.libsonnet",
                lib.replace("std.toString(n)", "std.toString(n * 10)")
                    .as_bytes(),
            )],
        )
        .to_string();
    h.open_pull(10, "jsonnet");
    h.pull_request_event("opened", 10, "jsonnet", &head).await;
    let run = completed_check(&h, &head).await;
    assert_eq!(run["conclusion"], "success", "{run:#}");
    let body = &h.report_comments(10)[0].body;
    assert!(body.contains("jsonnet-app"), "{body}");
    assert!(
        !body.contains("app-000"),
        "only the Jsonnet app is affected: {body}"
    );
    assert!(body.contains("jsonnet-app-settings"), "{body}");
    // 2 * 10, worked out by hand; the base had 2.
    assert!(body.contains("+  REPLICAS: '20'"), "{body}");
    assert!(body.contains("-  REPLICAS: '2'"), "{body}");
    assert!(!body.contains("not checked"), "{body}");
    h.stop().await;
}
