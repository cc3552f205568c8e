//! The dashboard's pages and JSON API over a real store (SQLite and PostgreSQL): runs, the full
//! report behind a split PR comment, deliveries and queue depth, promotions, environments from a
//! real git repository, and the "no Kubernetes" states.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use capstan_server::app::{self, AppState};
use capstan_server::dashboard::Dashboard;
use capstan_server::dashboard::layout::esc;
use capstan_tests::backend::Backend;
use capstan_tests::both_backends;
use capstan_tests::dashboard::{
    MemoryPromotions, app as app_section, gitops_repo, promotion, report,
};
use capstan_tests::webhook::{SECRET, send};
use capstan_worker::forge::ForgeKind;
use capstan_worker::queue::{DeliveryOutcome, Finish, NewDelivery, NewJob};
use capstan_worker::report::render_comment;
use capstan_worker::store::runs::SqlRunStore;
use capstan_worker::store::{NewRun, PromotionStatus, RunOutcome, RunStatus, RunStore};

both_backends!(
    split_comment_links_lead_to_the_full_diff_of_each_app,
    overview_shows_runs_deliveries_and_queue_depth,
    promotions_are_filtered_by_the_query_string,
    pages_and_api_answers_are_scrubbed,
    a_run_page_lists_its_attempts_and_the_base_it_compared,
);

fn router(d: Dashboard, b: &Backend) -> Router {
    let st = AppState::new(b.queue.clone(), vec![SECRET.into()]).with_dashboard(Arc::new(d));
    app::router(Arc::new(st), true)
}

async fn get(r: &Router, path: &str) -> (StatusCode, String) {
    let (status, v) = send(r, Request::get(path).body(Body::empty()).unwrap()).await;
    let text = match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    };
    (status, text)
}

async fn get_json(r: &Router, path: &str) -> (StatusCode, serde_json::Value) {
    send(r, Request::get(path).body(Body::empty()).unwrap()).await
}

fn new_run(pr: u64) -> NewRun {
    NewRun {
        repo: "acme/gitops".into(),
        pr,
        head_sha: "c0ffee".repeat(7)[..40].to_string(),
        trigger: "pull_request.synchronize".into(),
        job_id: None,
    }
}

/// The section of the page with id `app-<name>`, up to its end.
fn section<'a>(html: &'a str, name: &str) -> &'a str {
    let start = html
        .find(&format!("id=\"app-{}\"", esc(name)))
        .unwrap_or_else(|| panic!("no section for {name}"));
    let rest = &html[start..];
    &rest[..rest.find("</section>").unwrap()]
}

async fn split_comment_links_lead_to_the_full_diff_of_each_app(b: &Backend) {
    let runs = Arc::new(SqlRunStore::new(b.queue.db()));
    let at = runs.create_run(&new_run(7)).await.unwrap();
    let id = at.run;
    let base = "https://capstan.example.com";
    let run_url = format!("{base}/runs/{id}");
    // Four apps of ~40 kB of diff each: far beyond one 65,536-character comment.
    let names = ["billing", "checkout", "search", "web-frontend"];
    let mut rep = report(
        "acme/gitops",
        7,
        &run_url,
        names
            .iter()
            .map(|n| app_section(n, "staging", 450))
            .collect(),
    );
    // One app drifted in the cluster: its live diff is shown beside the git diff.
    rep.apps[2].live_diff = Some(rep.apps[2].diff.clone());
    runs.finish_run(
        at,
        &RunOutcome {
            status: RunStatus::Success,
            error: None,
            report: Some(rep.clone()),
            comment_ids: vec![1, 2, 3],
        },
    )
    .await
    .unwrap();

    let comment = render_comment(&rep);
    assert!(comment.parts.len() > 1, "the report must have been split");
    let r = router(Dashboard::new(runs.clone(), b.queue.clone()), b);
    let mut linked = std::collections::BTreeSet::new();
    for part in &comment.parts {
        let mut rest = part.body.as_str();
        while let Some(i) = rest.find(&format!("{run_url}#app-")) {
            let link = &rest[i..];
            let end = link
                .find(|c: char| c == ')' || c == '"' || c.is_whitespace())
                .unwrap_or(link.len());
            let link = &link[..end];
            rest = &rest[i + end..];
            let (page, fragment) = link.split_once('#').unwrap();
            let path = page.strip_prefix(base).unwrap();
            let (status, html) = get(&r, path).await;
            assert_eq!(status, StatusCode::OK, "{path}");
            let name = fragment.strip_prefix("app-").unwrap();
            let app = rep.apps.iter().find(|a| a.name == name).unwrap();
            let sec = section(&html, name);
            for line in app.diff.changes[0].diff.lines() {
                assert!(
                    sec.contains(&esc(line)),
                    "{name}: line {line:?} missing from the page"
                );
            }
            assert!(sec.contains("container web has no memory limit"));
            assert_eq!(
                sec.contains("Against the live cluster (1)"),
                app.live_diff.is_some(),
                "{name}: the live diff is shown exactly when there is one"
            );
            linked.insert(name.to_string());
        }
    }
    let want: std::collections::BTreeSet<String> = names.iter().map(|s| s.to_string()).collect();
    assert_eq!(linked, want, "every app is linked from the comment parts");

    let (status, json) = get_json(&r, &format!("/api/runs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["report"]["apps"].as_array().unwrap().len(), 4);
    let (status, _) = get(&r, "/runs/999999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = get(&r, "/runs/not-a-number").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

async fn overview_shows_runs_deliveries_and_queue_depth(b: &Backend) {
    let runs = Arc::new(SqlRunStore::new(b.queue.db()));
    for pr in [1, 2] {
        let id = runs.create_run(&new_run(pr)).await.unwrap();
        if pr == 1 {
            runs.finish_run(
                id,
                &RunOutcome {
                    status: RunStatus::Failure,
                    error: None,
                    report: Some(report("acme/gitops", 1, "http://x/runs/1", vec![])),
                    comment_ids: vec![],
                },
            )
            .await
            .unwrap();
        }
    }
    let delivery = |id: &str, outcome| NewDelivery {
        delivery_id: id.into(),
        event: "pull_request".into(),
        action: Some("opened".into()),
        repo: Some("acme/gitops".into()),
        outcome,
        detail: None,
    };
    let job = |key: &str| NewJob {
        kind: "pr_check".into(),
        dedupe_key: key.into(),
        supersede_key: None,
        order_key: None,
        payload: serde_json::json!({}),
        max_attempts: 1,
        run_after: None,
    };
    b.queue
        .record_delivery(
            &delivery("d-1", DeliveryOutcome::Accepted),
            &[job("k1"), job("k2")],
        )
        .await
        .unwrap();
    b.queue
        .record_delivery(&delivery("d-2", DeliveryOutcome::Ignored), &[])
        .await
        .unwrap();
    let kinds = vec!["pr_check".to_string()];
    let c = b
        .queue
        .claim("w", &kinds, std::time::Duration::from_secs(60))
        .await
        .unwrap()
        .unwrap();
    b.queue
        .finish(
            c.job.id,
            "w",
            c.job.attempts,
            &Finish::Failed {
                error: "boom".into(),
            },
        )
        .await
        .unwrap();

    let r = router(Dashboard::new(runs, b.queue.clone()), b);
    let (status, json) = get_json(&r, "/api/overview").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(json["runs"].as_array().unwrap().len(), 2);
    let d1 = json["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["delivery_id"] == "d-1")
        .unwrap();
    assert_eq!(
        (
            d1["jobs"].as_i64(),
            d1["jobs_failed"].as_i64(),
            d1["jobs_live"].as_i64()
        ),
        (Some(2), Some(1), Some(1))
    );
    let queued: i64 = json["queue"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|q| q["state"] == "queued")
        .map(|q| q["jobs"].as_i64().unwrap())
        .sum();
    assert_eq!(queued, 1);

    let (status, html) = get(&r, "/").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("href=\"/runs/"), "runs link to their page");
    assert!(html.contains("failure"), "status words, not only colours");
    assert!(html.contains("d-2") && html.contains("ignored"));
    // Without Kubernetes the registry and cluster pages say so and still answer.
    let (status, html) = get(&r, "/cluster").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No Kubernetes access"));
    assert!(html.contains("ArgoCD not configured"));
    let (status, html) = get(&r, "/services").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No Kubernetes access"));
    let (status, html) = get(&r, "/promotions").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("not recorded by this build"));
    let (status, html) = get(&r, "/apps").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("No GitOps repository configured"));
}

async fn promotions_are_filtered_by_the_query_string(b: &Backend) {
    let store = Arc::new(MemoryPromotions::default());
    store.add(promotion(
        1,
        "shop",
        "production",
        PromotionStatus::Committed,
    ));
    store.add(promotion(2, "shop", "production", PromotionStatus::Opened));
    store.add(promotion(
        3,
        "billing",
        "production",
        PromotionStatus::Failed,
    ));
    let d = Dashboard::new(Arc::new(SqlRunStore::new(b.queue.db())), b.queue.clone())
        .with_promotions(store);
    let r = router(d, b);
    let (_, all) = get_json(&r, "/api/promotions").await;
    assert_eq!(all["promotions"].as_array().unwrap().len(), 3);
    let (_, shop) = get_json(&r, "/api/promotions?app=shop&status=opened").await;
    let ids: Vec<i64> = shop["promotions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, vec![2]);
    let (status, html) = get(&r, "/promotions?app=billing&status=").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("images: billing") && !html.contains("images: shop"));
    let (status, json) = get_json(&r, "/api/promotions?status=exploded").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(json["error"].as_str().unwrap().contains("exploded"));
}

/// Issue 13, finding 11: whatever a store or a live source hands the dashboard (here a promotion
/// whose detail quotes a git error with credentials), pages and API answers leave scrubbed.
async fn pages_and_api_answers_are_scrubbed(b: &Backend) {
    let store = Arc::new(MemoryPromotions::default());
    let mut p = promotion(1, "shop", "production", PromotionStatus::Failed);
    p.detail = Some(
        "push failed: https://x-access-token:ghs_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789@github.com/acme/gitops"
            .into(),
    );
    p.summary = "images: shop; Authorization: Bearer s3cr3t-bearer-value".into();
    store.add(p);
    let d = Dashboard::new(Arc::new(SqlRunStore::new(b.queue.db())), b.queue.clone())
        .with_promotions(store);
    let r = router(d, b);
    let (_, html) = get(&r, "/promotions").await;
    let (_, json) = get_json(&r, "/api/promotions").await;
    let json = json.to_string();
    for text in [&html, &json] {
        assert!(text.contains("images: shop"), "{text}");
        assert!(!text.contains("AbCdEfGhIjKl"), "{text}");
        assert!(!text.contains("s3cr3t-bearer-value"), "{text}");
        assert!(text.contains("REDACTED"), "{text}");
    }
}

/// Issue 19, item 4: a head checked twice is one run; its page lists both attempts (the first
/// one's error escaped), shows the base branch tip and the merge base the latest attempt
/// compared, and links the check run and comment the latest attempt left; the list and the JSON
/// API show one row per head with its attempt count and bases.
async fn a_run_page_lists_its_attempts_and_the_base_it_compared(b: &Backend) {
    let runs = Arc::new(SqlRunStore::new(b.queue.db()));
    let (tip, fork) = (
        "1234567".repeat(6)[..40].to_string(),
        "fedcba9".repeat(6)[..40].to_string(),
    );
    let first = runs.create_run(&new_run(7)).await.unwrap();
    runs.set_check_run(first, 900).await.unwrap();
    runs.finish_run(
        first,
        &RunOutcome {
            status: RunStatus::Error,
            error: Some("GitHub answered 500 <script>alert(1)</script>".into()),
            report: None,
            comment_ids: vec![],
        },
    )
    .await
    .unwrap();
    let mut again = new_run(7);
    again.trigger = "command.diff".into();
    again.job_id = Some(42);
    let second = runs.create_run(&again).await.unwrap();
    assert_eq!(second.run, first.run);
    runs.record_base(second, &tip, &fork).await.unwrap();
    runs.finish_run(
        second,
        &RunOutcome {
            status: RunStatus::Success,
            error: None,
            report: Some(report("acme/gitops", 7, "http://x/runs/1", vec![])),
            comment_ids: vec![31],
        },
    )
    .await
    .unwrap();
    let id = first.run;

    let d =
        Dashboard::new(runs.clone(), b.queue.clone()).with_forge_web("https://github.com".into());
    let r = router(d, b);
    let (status, html) = get(&r, &format!("/runs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&tip) && html.contains(&fork), "{html}");
    let attempts = &html[html.find("<h2>Attempts</h2>").expect("an attempts table")..];
    assert!(
        attempts.contains("#1") && attempts.contains("#2"),
        "{attempts}"
    );
    assert!(attempts.contains("pull_request.synchronize") && attempts.contains("command.diff"));
    assert!(
        attempts.contains(">42<"),
        "the job of each attempt: {attempts}"
    );
    assert!(
        attempts.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{attempts}"
    );
    assert!(!html.contains("<script>alert(1)"), "escaped");
    assert!(
        html.contains("href=\"https://github.com/acme/gitops/runs/900\""),
        "{html}"
    );
    assert!(
        html.contains("href=\"https://github.com/acme/gitops/pull/7#issuecomment-31\""),
        "{html}"
    );
    // The same run on the other forges links their own page shapes.
    for (kind, web, check, comment) in [
        (
            ForgeKind::Gitea,
            "https://gitea.example",
            "https://gitea.example/acme/gitops/commit/",
            "https://gitea.example/acme/gitops/pulls/7#issuecomment-31",
        ),
        (
            ForgeKind::GitLab,
            "https://gitlab.example/",
            "https://gitlab.example/acme/gitops/-/commit/",
            "https://gitlab.example/acme/gitops/-/merge_requests/7#note_31",
        ),
    ] {
        let d = Dashboard::new(runs.clone(), b.queue.clone()).with_forge(kind, web.into());
        let (_, page) = get(&router(d, b), &format!("/runs/{id}")).await;
        assert!(page.contains(&format!("href=\"{comment}\"")), "{page}");
        assert!(page.contains(&format!("href=\"{check}")), "{page}");
        assert!(!page.contains("github.com/acme"), "{page}");
    }

    let (status, html) = get(&r, "/runs").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        html.matches("href=\"/runs/").count(),
        1,
        "one row per head: {html}"
    );
    assert!(html.contains("Attempts") && html.contains("Merge base"));
    assert!(
        html.contains(&tip[..7]) && html.contains(&fork[..7]),
        "{html}"
    );

    let (_, list) = get_json(&r, "/api/runs").await;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let row = &list[0];
    assert_eq!(row["attempts"], 2, "{list}");
    assert_eq!(row["base_sha"], tip.as_str());
    assert_eq!(row["merge_base"], fork.as_str());
    let (_, one) = get_json(&r, &format!("/api/runs/{id}")).await;
    let statuses: Vec<&str> = one["attempt_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["error", "success"]);

    // Without a forge to link to, the ids are still there; a new run has nothing fetched yet.
    let other = runs
        .create_run(&NewRun {
            head_sha: "d".repeat(40),
            ..new_run(7)
        })
        .await
        .unwrap();
    let r = router(Dashboard::new(runs.clone(), b.queue.clone()), b);
    let (_, html) = get(&r, &format!("/runs/{id}")).await;
    assert!(html.contains("check run 900") && html.contains("comment 31"));
    assert!(!html.contains("https://github.com/acme"));
    let (_, html) = get(&r, &format!("/runs/{}", other.run)).await;
    assert!(html.contains("not fetched"), "{html}");
}

#[tokio::test]
async fn environments_come_from_the_default_branch_of_the_repository() {
    let b = Backend::sqlite().await;
    let repo = tempfile::tempdir().unwrap();
    gitops_repo(repo.path());
    // An uncommitted edit is not the default branch: the page must not show it.
    std::fs::write(
        repo.path()
            .join("apps/shop/overlays/production/kustomization.yaml"),
        "images:\n  - name: ghcr.io/acme/shop\n    newTag: 9.9.9-uncommitted\n",
    )
    .unwrap();
    let store = Arc::new(MemoryPromotions::default());
    store.add(promotion(5, "shop", "production", PromotionStatus::Opened));
    let d = Dashboard::new(Arc::new(SqlRunStore::new(b.queue.db())), b.queue.clone())
        .with_repo(repo.path().to_path_buf())
        .with_promotions(store);
    let r = router(d, &b);
    let (status, json) = get_json(&r, "/api/apps").await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let m = &json["matrix"];
    assert_eq!(m["branch"], "main");
    let envs: Vec<&str> = m["environments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["name"].as_str().unwrap())
        .collect();
    assert_eq!(envs, ["staging", "production"]);
    let shop = m["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "shop")
        .unwrap();
    assert_eq!(
        shop["cells"]["staging"]["versions"][0],
        "ghcr.io/acme/shop:2.1.0"
    );
    assert_eq!(
        shop["cells"]["production"]["versions"][0],
        "ghcr.io/acme/shop:2.0.3"
    );
    assert_eq!(
        shop["cells"]["production"]["application"],
        "shop-production"
    );
    assert!(
        m["rows"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r["name"] == "ingress" && r["cells"][""].is_object())
    );
    assert_eq!(json["argocd"]["state"], "not_configured");
    let (status, html) = get(&r, "/apps").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("promotion pending"));
    assert!(!html.contains("9.9.9-uncommitted"));
    b.cleanup().await;
}

fn argo_apps(url: &str, token: &str) -> Arc<dyn capstan_server::dashboard::argocd::ArgoApps> {
    let mut cfg = capstan_worker::argocd::ArgoConfig::new(url.parse().unwrap(), token);
    cfg.timeout = std::time::Duration::from_secs(2);
    let client = capstan_worker::argocd::ArgoClient::new(&cfg).unwrap();
    Arc::new(capstan_server::dashboard::argocd::ArgoCdApps::new(
        client,
        std::time::Duration::from_secs(60),
    ))
}

#[tokio::test]
async fn argocd_sync_and_health_show_on_the_environments_and_cluster_pages() {
    use capstan_tests::fake_argocd::{FakeApp, FakeArgoCd};
    let b = Backend::sqlite().await;
    let repo = tempfile::tempdir().unwrap();
    gitops_repo(repo.path());
    let argo = FakeArgoCd::start("argo-token").await;
    let url = "https://github.com/acme/gitops.git";
    argo.add_app(
        FakeApp::new("shop-staging", url, "apps/shop/overlays/staging")
            .with_status("OutOfSync", "Degraded"),
    );
    argo.add_app(FakeApp::new(
        "shop-production",
        url,
        "apps/shop/overlays/production",
    ));
    let d = Dashboard::new(Arc::new(SqlRunStore::new(b.queue.db())), b.queue.clone())
        .with_repo(repo.path().to_path_buf())
        .with_argocd(argo_apps(&argo.url(), "argo-token"));
    let r = router(d, &b);

    let (status, json) = get_json(&r, "/api/cluster").await;
    assert_eq!(status, StatusCode::OK, "{json}");
    assert_eq!(json["argocd"]["state"], "apps");
    let (status, html) = get(&r, "/cluster").await;
    assert_eq!(status, StatusCode::OK);
    let attention = &html[html.find("ArgoCD applications needing attention").unwrap()..];
    assert!(attention.contains("shop-staging"), "{attention}");
    assert!(attention.contains("OutOfSync") && attention.contains("Degraded"));
    assert!(!attention.contains("shop-production"), "{attention}");

    let (status, json) = get_json(&r, "/api/apps").await;
    assert_eq!(status, StatusCode::OK, "{json}");
    let apps = json["argocd"]["apps"].as_array().unwrap();
    let states: Vec<(&str, &str, &str)> = apps
        .iter()
        .map(|a| {
            (
                a["name"].as_str().unwrap(),
                a["sync"].as_str().unwrap(),
                a["health"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("shop-production", "Synced", "Healthy"),
            ("shop-staging", "OutOfSync", "Degraded"),
        ]
    );
    let (status, html) = get(&r, "/apps").await;
    assert_eq!(status, StatusCode::OK);
    for s in ["OutOfSync", "Degraded", "Synced", "Healthy"] {
        assert!(html.contains(s), "{s} missing on /apps");
    }
    assert!(!html.contains("ArgoCD not configured"));
    // Four page views, one list request: the adapter caches.
    assert_eq!(argo.calls_to("GET", "/api/v1/applications").len(), 1);
    b.cleanup().await;
}

#[tokio::test]
async fn an_unreachable_or_refusing_argocd_is_named_and_the_pages_still_render() {
    let b = Backend::sqlite().await;
    let repo = tempfile::tempdir().unwrap();
    gitops_repo(repo.path());
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let argo = capstan_tests::fake_argocd::FakeArgoCd::start("argo-token").await;
    for (url, expect) in [
        (format!("http://127.0.0.1:{port}"), "unreachable"),
        (argo.url(), "rejected the token (401"),
    ] {
        let d = Dashboard::new(Arc::new(SqlRunStore::new(b.queue.db())), b.queue.clone())
            .with_repo(repo.path().to_path_buf())
            .with_argocd(argo_apps(&url, "wrong-token"));
        let r = router(d, &b);
        for page in ["/cluster", "/apps"] {
            let (status, html) = get(&r, page).await;
            assert_eq!(status, StatusCode::OK, "{page}");
            assert!(html.contains("ArgoCD unavailable"), "{page}: {html}");
            assert!(html.contains(expect), "{page}: {html}");
        }
        let (_, json) = get_json(&r, "/api/apps").await;
        assert_eq!(json["argocd"]["state"], "unavailable");
        assert_eq!(json["matrix"]["branch"], "main", "the rest still renders");
    }
    b.cleanup().await;
}

/// Pages and their JSON are compressed for clients that ask (browsers do), and only for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_gzipped_for_clients_that_accept_it() {
    use http_body_util::BodyExt as _;
    use tower::ServiceExt as _;
    let b = Backend::sqlite().await;
    let runs = Arc::new(SqlRunStore::new(b.queue.db()));
    let r = router(Dashboard::new(runs, b.queue.clone()), &b);
    for path in ["/", "/api/overview"] {
        let req = |gzip: bool| {
            let mut req = Request::get(path);
            if gzip {
                req = req.header("accept-encoding", "gzip");
            }
            req.body(Body::empty()).unwrap()
        };
        let zipped = r.clone().oneshot(req(true)).await.unwrap();
        assert_eq!(zipped.status(), StatusCode::OK);
        assert_eq!(zipped.headers()["content-encoding"], "gzip", "{path}");
        let bytes = zipped.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            bytes.get(..2),
            Some(&[0x1f, 0x8b][..]),
            "{path}: gzip magic"
        );

        let plain = r.clone().oneshot(req(false)).await.unwrap();
        assert!(plain.headers().get("content-encoding").is_none(), "{path}");
        let bytes = plain.into_body().collect().await.unwrap().to_bytes();
        assert!(
            bytes.starts_with(b"<!DOCTYPE html>") || bytes.starts_with(b"{"),
            "{path}"
        );
    }
    b.cleanup().await;
}
