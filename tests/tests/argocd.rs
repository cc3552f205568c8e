//! The ArgoCD check against the fake ArgoCD: live diff, multi-source revisions, the opt-in
//! dry-run sync polled to completion, and every way ArgoCD can fail to answer — each reported
//! per app without failing the check.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use capstan_tests::fake_argocd::{FakeApp, FakeArgoCd, SyncOutcome};
use capstan_worker::argocd::{ArgoCdCheck, ArgoClient, ArgoConfig, DryRunOptions};
use capstan_worker::diff::ObjectChangeKind;
use capstan_worker::objects::K8sObject;
use capstan_worker::report::{self, AppSection, ArgoStatus, RunReport, Severity};
use capstan_worker::services::{AppSync, ClusterCheck, ClusterCheckRequest, ClusterFindings};
use serde_json::{Value, json};

const TOKEN: &str = "argocd-test-token";
const REPO: &str = "acme/gitops";
const REPO_URL: &str = "https://github.com/acme/gitops.git";
const HEAD: &str = "1111111111111111111111111111111111111111";

fn deployment(image: &str, live: bool) -> Value {
    let mut d = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "shop", "labels": {"app": "web"}},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": image}]}}}
    });
    if live {
        // What the API server and the controller add; none of it is in git.
        d["metadata"]["uid"] = json!("6f1c");
        d["metadata"]["resourceVersion"] = json!("4711");
        d["metadata"]["generation"] = json!(3);
        d["spec"]["progressDeadlineSeconds"] = json!(600);
        d["spec"]["template"]["spec"]["containers"][0]["imagePullPolicy"] = json!("IfNotPresent");
        d["status"] = json!({"readyReplicas": 2, "replicas": 2});
    }
    d
}

fn config_map(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": name, "namespace": "shop"}, "data": data})
}

fn shop_app() -> FakeApp {
    FakeApp::new("shop", REPO_URL, "apps/shop")
        .with_status("OutOfSync", "Healthy")
        .with_live(vec![
            deployment("web:1", true),
            config_map("legacy", json!({"mode": "old"})),
        ])
        .with_manifests(
            "",
            vec![
                deployment("web:1", false),
                config_map("legacy", json!({"mode": "old"})),
            ],
        )
        .with_manifests(
            HEAD,
            vec![
                deployment("web:2", false),
                config_map("settings", json!({"mode": "new"})),
            ],
        )
}

fn check(url: &str, token: &str, dry_run_apps: &[&str]) -> ArgoCdCheck {
    let mut cfg = ArgoConfig::new(url.parse().unwrap(), token);
    cfg.timeout = Duration::from_secs(2);
    let client = ArgoClient::new(&cfg).unwrap();
    let globs: Vec<String> = dry_run_apps.iter().map(|s| s.to_string()).collect();
    let opts = DryRunOptions {
        poll_interval: Duration::from_millis(10),
        timeout: Duration::from_secs(10),
        prune: true,
    };
    ArgoCdCheck::new(client, &globs, opts).unwrap()
}

async fn run(c: &ArgoCdCheck, app: &str) -> ClusterFindings {
    run_with(c, app, &[]).await
}

/// With Capstan's own render of the head.
async fn run_with(c: &ArgoCdCheck, app: &str, head_objects: &[K8sObject]) -> ClusterFindings {
    c.check_app(&ClusterCheckRequest {
        repo: REPO,
        pr: 7,
        app,
        environment: Some("staging"),
        head_sha: HEAD,
        head_objects,
        changed: &[],
    })
    .await
}

fn unreachable_reason(f: &ClusterFindings) -> String {
    match &f.argocd {
        Some(ArgoStatus::Unreachable(r)) => r.clone(),
        other => panic!("expected Unreachable, got {other:?}"),
    }
}

#[tokio::test]
async fn live_diff_shows_what_changes_in_the_cluster_and_renders_in_the_report() {
    let argo = FakeArgoCd::start(TOKEN).await;
    argo.add_app(shop_app());
    let c = check(&argo.url(), TOKEN, &[]);
    let f = run(&c, "shop").await;

    let manifests = argo.calls_to("GET", "/api/v1/applications/shop/manifests");
    assert_eq!(manifests.len(), 1);
    assert_eq!(
        manifests[0].query_values("revision"),
        vec![HEAD.to_string()]
    );
    assert_eq!(
        argo.calls_to("GET", "/api/v1/applications/shop/managed-resources")
            .len(),
        1
    );
    assert!(
        argo.calls_to("POST", "/api/v1/applications/shop/sync")
            .is_empty(),
        "dry run is opt-in"
    );

    let diff = f.live_diff.clone().expect("live diff");
    let summary: Vec<(String, ObjectChangeKind)> = diff
        .changes
        .iter()
        .map(|c| (c.id.to_string(), c.change.clone()))
        .collect();
    assert_eq!(
        summary,
        vec![
            (
                "ConfigMap shop/legacy".to_string(),
                ObjectChangeKind::Removed
            ),
            (
                "ConfigMap shop/settings".to_string(),
                ObjectChangeKind::Added
            ),
            (
                "apps/Deployment shop/web".to_string(),
                ObjectChangeKind::Changed
            ),
        ]
    );
    let web = &diff.changes[2].diff;
    assert!(
        web.lines()
            .any(|l| l.starts_with('-') && l.contains("image: web:1")),
        "{web}"
    );
    assert!(
        web.lines()
            .any(|l| l.starts_with('+') && l.contains("image: web:2")),
        "{web}"
    );
    for noise in [
        "imagePullPolicy",
        "progressDeadlineSeconds",
        "readyReplicas",
        "resourceVersion",
    ] {
        assert!(!web.contains(noise), "{noise} shown: {web}");
    }
    let Some(ArgoStatus::Reported {
        sync,
        health,
        dry_run,
    }) = f.argocd.clone()
    else {
        panic!("{:?}", f.argocd)
    };
    assert_eq!(sync.as_deref(), Some("OutOfSync"));
    assert_eq!(health.as_deref(), Some("Healthy"));
    assert_eq!(dry_run, None);

    // The pipeline puts these into the run report; the comment shows them.
    let report = RunReport {
        repo: REPO.into(),
        pr: 7,
        head_sha: HEAD.into(),
        run_url: "http://capstan.test/runs/1".into(),
        held_by: None,
        limits: Vec::new(),
        apps: vec![AppSection {
            name: "shop".into(),
            environment: Some("staging".into()),
            // Git itself changed nothing here: the cluster drifted, and only the live diff says so.
            diff: capstan_worker::diff::AppDiff {
                app: "shop".into(),
                reasons: vec![],
                changes: vec![],
                problems: vec![],
                notes: vec![],
            },
            findings: f.findings.clone(),
            preexisting: Vec::new(),
            argocd: f.argocd.clone(),
            render_error: None,
            live_diff: Some(diff),
        }],
    };
    let body: String = report::render_comment(&report)
        .parts
        .iter()
        .map(|p| p.body.clone())
        .collect();
    assert!(body.contains("image: web:2"), "{body}");
    let live = body
        .find("**Against the live cluster** (ArgoCD")
        .expect("a live-cluster heading");
    assert!(
        body[live..].contains("image: web:2"),
        "the live diff is under its own heading: {body}"
    );
    assert!(
        body.contains("OutOfSync") && body.contains("Healthy"),
        "{body}"
    );
}

#[tokio::test]
async fn multi_source_apps_ask_for_the_head_of_each_source_from_this_repo() {
    let argo = FakeArgoCd::start(TOKEN).await;
    argo.add_app(
        shop_app().with_sources(vec![
            json!({"repoURL": "https://charts.example.com", "chart": "web", "targetRevision": "1.0.0"}),
            json!({"repoURL": "git@github.com:acme/gitops.git", "path": "apps/shop", "targetRevision": "main"}),
        ]),
    );
    let c = check(&argo.url(), TOKEN, &["shop"]);
    let f = run(&c, "shop").await;
    let call = &argo.calls_to("GET", "/api/v1/applications/shop/manifests")[0];
    assert_eq!(call.query_values("revisions"), vec![HEAD.to_string()]);
    assert_eq!(call.query_values("sourcePositions"), vec!["2".to_string()]);
    assert!(call.query_values("revision").is_empty());
    assert!(f.live_diff.is_some(), "{:?}", f.notes);
    let sync = &argo.calls_to("POST", "/api/v1/applications/shop/sync")[0];
    let body = sync.body.clone().unwrap();
    assert_eq!(body["revisions"], json!([HEAD]));
    assert_eq!(body["sourcePositions"], json!(["2"]));
    assert!(body.get("revision").is_none(), "{body}");
}

#[tokio::test]
async fn apps_from_other_repositories_are_not_diffed_at_our_head() {
    let argo = FakeArgoCd::start(TOKEN).await;
    argo.add_app(FakeApp::new(
        "ext",
        "https://github.com/other/place.git",
        "x",
    ));
    let f = run(&check(&argo.url(), TOKEN, &["*"]), "ext").await;
    assert!(f.live_diff.is_none());
    assert!(
        f.notes
            .iter()
            .any(|n| n.contains("no source of app ext is acme/gitops")),
        "{:?}",
        f.notes
    );
    assert!(
        argo.calls_to("GET", "/api/v1/applications/ext/manifests")
            .is_empty()
    );
    assert!(
        argo.calls_to("POST", "/api/v1/applications/ext/sync")
            .is_empty()
    );
    assert!(matches!(f.argocd, Some(ArgoStatus::Reported { .. })));
}

#[tokio::test]
async fn dry_run_sync_is_polled_to_completion_and_failures_become_findings() {
    let argo = FakeArgoCd::start(TOKEN).await;
    argo.add_app(shop_app().with_sync_outcome(SyncOutcome {
        phase: "Failed".into(),
        message: Some("one or more objects failed to apply (dry run)".into()),
        resources: vec![
            json!({"group": "apps", "version": "v1", "kind": "Deployment", "namespace": "shop", "name": "web",
                   "status": "Synced", "message": "deployment.apps/web configured (dry run)", "syncPhase": "Sync"}),
            json!({"group": "", "version": "v1", "kind": "ConfigMap", "namespace": "shop", "name": "settings",
                   "status": "SyncFailed", "message": "ConfigMap \"settings\" is invalid: data: Invalid value", "syncPhase": "Sync"}),
            json!({"group": "", "version": "v1", "kind": "ConfigMap", "namespace": "shop", "name": "legacy",
                   "status": "Pruned", "message": "pruned (dry run)", "syncPhase": "Sync"}),
        ],
        running_polls: 2,
    }));
    // A finished earlier sync must not be taken for the dry run's result.
    argo.set_previous_operation("shop", "Succeeded");
    let f = run(&check(&argo.url(), TOKEN, &["sh*"]), "shop").await;

    let posts = argo.calls_to("POST", "/api/v1/applications/shop/sync");
    assert_eq!(posts.len(), 1);
    let body = posts[0].body.clone().unwrap();
    assert_eq!(body["dryRun"], json!(true));
    assert_eq!(body["revision"], json!(HEAD));
    assert_eq!(body["prune"], json!(true));
    assert_eq!(body["name"], json!("shop"));
    // One read before the sync, then polls until the operation is final: Running, Running, Failed.
    assert_eq!(argo.calls_to("GET", "/api/v1/applications/shop").len(), 4);

    let Some(ArgoStatus::Reported { dry_run, .. }) = &f.argocd else {
        panic!("{:?}", f.argocd)
    };
    assert_eq!(
        dry_run.as_deref(),
        Some(
            "Failed: 1 Synced, 1 SyncFailed, 1 Pruned — one or more objects failed to apply (dry run)"
        )
    );
    assert_eq!(f.findings.len(), 1);
    let finding = &f.findings[0];
    assert_eq!(finding.rule_id, "argocd/dry-run");
    assert_eq!(finding.severity, Severity::Deny);
    assert_eq!(finding.object, "ConfigMap shop/settings");
    assert!(
        finding.message.contains("data: Invalid value"),
        "{}",
        finding.message
    );
}

#[tokio::test]
async fn a_dry_run_that_never_finishes_is_reported_not_awaited_forever() {
    let argo = FakeArgoCd::start(TOKEN).await;
    argo.add_app(shop_app().with_sync_outcome(SyncOutcome {
        running_polls: u32::MAX,
        ..Default::default()
    }));
    let mut cfg = ArgoConfig::new(argo.url().parse().unwrap(), TOKEN);
    cfg.timeout = Duration::from_secs(2);
    let opts = DryRunOptions {
        poll_interval: Duration::from_millis(10),
        timeout: Duration::from_millis(200),
        prune: false,
    };
    let c = ArgoCdCheck::new(ArgoClient::new(&cfg).unwrap(), &["shop".into()], opts).unwrap();
    let f = run(&c, "shop").await;
    let Some(ArgoStatus::Reported { dry_run, .. }) = &f.argocd else {
        panic!("{:?}", f.argocd)
    };
    let text = dry_run.clone().unwrap();
    assert!(
        text.starts_with("not run: dry-run sync of shop did not finish"),
        "{text}"
    );
    assert!(text.contains("last phase: Running"), "{text}");
    assert!(f.live_diff.is_some());
}

#[tokio::test]
async fn unknown_or_hidden_apps_are_missing_or_forbidden() {
    let argo = FakeArgoCd::start(TOKEN).await;
    argo.add_app(shop_app().forbidden());
    let c = check(&argo.url(), TOKEN, &["*"]);
    for app in ["shop", "no-such-app"] {
        let reason = unreachable_reason(&run(&c, app).await);
        assert!(reason.contains("missing or forbidden"), "{reason}");
        assert!(reason.contains(&format!("application {app}")), "{reason}");
    }
    assert!(argo.calls().iter().all(|c| c.status == 403));
    assert!(
        argo.calls().iter().all(|c| c.method == "GET"),
        "nothing after the 403"
    );
}

#[tokio::test]
async fn a_wrong_or_missing_token_is_reported_as_401() {
    let argo = FakeArgoCd::start(TOKEN).await;
    argo.add_app(shop_app());
    for token in ["wrong-token", ""] {
        let reason = unreachable_reason(&run(&check(&argo.url(), token, &[]), "shop").await);
        assert!(reason.contains("rejected the token (401"), "{reason}");
    }
}

#[tokio::test]
async fn an_unreachable_argocd_is_reported_per_app_and_the_check_completes() {
    // Bind then drop: a port on which nothing listens.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = check(&format!("http://127.0.0.1:{port}"), TOKEN, &["*"]);
    for app in ["shop", "billing"] {
        let f = run(&c, app).await;
        let reason = unreachable_reason(&f);
        assert!(reason.contains("unreachable"), "{reason}");
        assert!(f.live_diff.is_none() && f.findings.is_empty());
    }
}

#[tokio::test]
async fn a_revision_argocd_cannot_resolve_is_a_note_and_the_status_still_shows() {
    let argo = FakeArgoCd::start(TOKEN).await;
    argo.add_app(FakeApp::new("shop", REPO_URL, "apps/shop").with_status("Synced", "Degraded"));
    let f = run(&check(&argo.url(), TOKEN, &[]), "shop").await;
    assert!(f.live_diff.is_none());
    assert!(
        f.notes.iter().any(|n| n.contains("ArgoCD live diff failed")
            && n.contains("500")
            && n.contains("unable to resolve")),
        "{:?}",
        f.notes
    );
    let Some(ArgoStatus::Reported { health, .. }) = &f.argocd else {
        panic!("{:?}", f.argocd)
    };
    assert_eq!(health.as_deref(), Some("Degraded"));

    // With Capstan's own render of the head, the live diff still shows, and says what it used.
    let mut live_app = shop_app();
    live_app.manifests.remove(HEAD);
    argo.add_app(live_app);
    let own = vec![K8sObject::from_value(deployment("web:3", false)).unwrap()];
    let f = run_with(&check(&argo.url(), TOKEN, &[]), "shop", &own).await;
    let d = f.live_diff.expect("live diff from Capstan's render");
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("Capstan's own render is compared")),
        "{:?}",
        d.notes
    );
    let web = d.changes.iter().find(|c| c.id.name == "web").unwrap();
    assert!(
        web.diff
            .lines()
            .any(|l| l.starts_with('+') && l.contains("image: web:3")),
        "{}",
        web.diff
    );
}

#[tokio::test]
async fn sync_app_starts_a_real_sync_and_reports_why_it_cannot() {
    let argo = FakeArgoCd::start(TOKEN).await;
    argo.add_app(shop_app());
    let mut multi = shop_app().with_sources(vec![
        json!({"repoURL": REPO_URL, "path": "a"}),
        json!({"repoURL": REPO_URL, "path": "b"}),
    ]);
    multi.name = "multi".into();
    argo.add_app(multi);
    let c = check(&argo.url(), TOKEN, &[]);

    let ok = c.sync_app("shop", Some(HEAD)).await.unwrap();
    assert!(ok.contains("ArgoCD sync of shop started at"), "{ok}");
    let body = argo.calls_to("POST", "/api/v1/applications/shop/sync")[0]
        .body
        .clone()
        .unwrap();
    assert_eq!(body["revision"], json!(HEAD));
    assert!(body.get("dryRun").is_none(), "a real sync: {body}");

    // The first sync is still running: ArgoCD refuses a second one.
    let busy = c.sync_app("shop", None).await.unwrap_err().to_string();
    assert!(
        busy.contains("another operation is already in progress"),
        "{busy}"
    );

    let missing = c.sync_app("nope", None).await.unwrap_err().to_string();
    assert!(missing.contains("missing or forbidden"), "{missing}");

    let multi = c
        .sync_app("multi", Some(HEAD))
        .await
        .unwrap_err()
        .to_string();
    assert!(multi.contains("has 2 sources"), "{multi}");
    assert!(
        argo.calls_to("POST", "/api/v1/applications/multi/sync")
            .is_empty()
    );
    assert!(c.sync_app("multi", None).await.is_ok());

    let bad = check(&argo.url(), "wrong", &[]);
    let denied = bad.sync_app("shop", None).await.unwrap_err().to_string();
    assert!(denied.contains("401"), "{denied}");
}

#[tokio::test]
async fn list_applications_returns_every_visible_app_with_its_status() {
    let argo = FakeArgoCd::start(TOKEN).await;
    let c = check(&argo.url(), TOKEN, &[]);
    // ArgoCD sends `items: null` when no app is visible.
    assert!(c.client().list_applications().await.unwrap().is_empty());
    argo.add_app(shop_app().with_status("OutOfSync", "Degraded"));
    argo.add_app(FakeApp::new("billing", REPO_URL, "apps/billing"));
    argo.add_app(FakeApp::new("secret-app", REPO_URL, "apps/secret").forbidden());
    let apps = c.client().list_applications().await.unwrap();
    let got: Vec<(String, Option<String>, Option<String>)> = apps
        .iter()
        .map(|a| {
            (
                a.metadata.name.clone(),
                a.status.sync.as_ref().and_then(|s| s.status.clone()),
                a.status.health.as_ref().and_then(|h| h.status.clone()),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            (
                "billing".into(),
                Some("Synced".into()),
                Some("Healthy".into())
            ),
            (
                "shop".into(),
                Some("OutOfSync".into()),
                Some("Degraded".into())
            ),
        ]
    );
    let calls = argo.calls_to("GET", "/api/v1/applications");
    assert_eq!(calls.len(), 2);
    assert!(calls.iter().all(|c| c.status == 200 && c.query.is_empty()));
    for token in ["wrong-token", ""] {
        let e = check(&argo.url(), token, &[])
            .client()
            .list_applications()
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(401), "{e}");
    }
    assert_eq!(argo.calls_to("GET", "/api/v1/applications").len(), 4);
}

#[tokio::test]
async fn app_status_reads_sync_and_health_and_says_why_it_cannot() {
    let argo = FakeArgoCd::start(TOKEN).await;
    argo.add_app(shop_app().with_status("Synced", "Degraded"));
    let c = check(&argo.url(), TOKEN, &[]);
    let s = c.app_status("shop").await.unwrap();
    assert_eq!(s.sync.as_deref(), Some("Synced"));
    assert_eq!(s.health.as_deref(), Some("Degraded"));
    assert!(!s.synced_and_healthy());
    let e = c.app_status("no-such-app").await.unwrap_err().to_string();
    assert!(e.contains("missing or forbidden"), "{e}");
}
