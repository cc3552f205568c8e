//! Helpers for the dashboard tests: report builders, an in-memory promotion store, a real HTTP
//! server on an ephemeral port (with peer addresses, which `proxy-header` needs) and a small
//! fixture GitOps repository.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Mutex;

use async_trait::async_trait;
use axum::Router;
use capstan_worker::diff::{AppDiff, ObjectChange, ObjectChangeKind};
use capstan_worker::objects::ObjectId;
use capstan_worker::report::{AppSection, ReportFinding, RunReport, Severity};
use capstan_worker::store::{
    PromotionFilter, PromotionId, PromotionRecord, PromotionStatus, PromotionStore, StoreError,
};
use tokio_util::sync::CancellationToken;

/// A changed Deployment whose diff has `lines` lines unique to `app`.
pub fn change(app: &str, lines: usize) -> ObjectChange {
    let mut diff = format!("@@ -1,{lines} +1,{lines} @@\n");
    for i in 0..lines {
        diff.push_str(&format!("-  old-{app}-line-{i}: <value {i}>\n"));
        diff.push_str(&format!("+  new-{app}-line-{i}: <value {}>\n", i + 1));
    }
    ObjectChange {
        id: ObjectId {
            group: "apps".into(),
            kind: "Deployment".into(),
            namespace: Some(app.into()),
            name: format!("{app}-web"),
        },
        change: ObjectChangeKind::Changed,
        diff,
        secret_keys: Vec::new(),
    }
}

/// One app with one changed object of `lines` diff lines and a warn finding.
pub fn app(name: &str, env: &str, lines: usize) -> AppSection {
    AppSection {
        name: name.into(),
        environment: Some(env.into()),
        diff: AppDiff {
            app: name.into(),
            reasons: vec![format!(
                "inputs changed: applications/{name}/base/deployment.yaml"
            )],
            changes: vec![change(name, lines)],
            problems: Vec::new(),
            notes: Vec::new(),
        },
        findings: vec![ReportFinding {
            rule_id: "resources-limits".into(),
            severity: Severity::Warn,
            object: format!("apps/Deployment {name}/{name}-web"),
            file: Some(format!("applications/{name}/base/deployment.yaml")),
            line: Some(17),
            message: "container web has no memory limit".into(),
        }],
        preexisting: Vec::new(),
        argocd: None,
        render_error: None,
        live_diff: None,
    }
}

pub fn report(repo: &str, pr: u64, run_url: &str, apps: Vec<AppSection>) -> RunReport {
    RunReport {
        repo: repo.into(),
        pr,
        head_sha: "c0ffee".repeat(7)[..40].to_string(),
        run_url: run_url.into(),
        held_by: None,
        limits: Vec::new(),
        apps,
    }
}

/// Promotions kept in memory (the SQL store is written elsewhere); filters like the trait says.
#[derive(Default)]
pub struct MemoryPromotions {
    pub records: Mutex<Vec<PromotionRecord>>,
}

impl MemoryPromotions {
    pub fn add(&self, r: PromotionRecord) {
        if let Ok(mut v) = self.records.lock() {
            v.push(r);
        }
    }
}

#[async_trait]
impl PromotionStore for MemoryPromotions {
    async fn list_promotions(
        &self,
        f: &PromotionFilter,
    ) -> Result<Vec<PromotionRecord>, StoreError> {
        let v = self.records.lock().map(|v| v.clone()).unwrap_or_default();
        let limit = if f.limit == 0 { 100 } else { f.limit };
        let mut out: Vec<PromotionRecord> = v
            .into_iter()
            .filter(|r| f.repo.as_ref().is_none_or(|x| *x == r.repo))
            .filter(|r| f.app.as_ref().is_none_or(|x| *x == r.app))
            .filter(|r| f.target_env.as_ref().is_none_or(|x| *x == r.target_env))
            .filter(|r| f.status.is_none_or(|s| s == r.status))
            .collect();
        out.sort_by_key(|r| std::cmp::Reverse(r.id));
        out.truncate(limit);
        Ok(out)
    }

    async fn promotion(&self, id: PromotionId) -> Result<Option<PromotionRecord>, StoreError> {
        Ok(self
            .records
            .lock()
            .ok()
            .and_then(|v| v.iter().find(|r| r.id == id).cloned()))
    }
}

pub fn promotion(id: i64, app: &str, target: &str, status: PromotionStatus) -> PromotionRecord {
    PromotionRecord {
        id,
        promotion_key: format!("key-{id}"),
        repo: "acme/gitops".into(),
        app: app.into(),
        source_env: "staging".into(),
        target_env: target.into(),
        trigger: "merge".into(),
        actor: "capstan".into(),
        source_pr: Some(40 + id as u64),
        source_sha: "d".repeat(40),
        mode: "pull-request".into(),
        summary: format!("images: {app} 6.7.{id} → 6.7.{}", id + 1),
        status,
        detail: None,
        result_pr: Some(90 + id as u64),
        result_sha: None,
        created_at: 1_764_000_000_000 + id * 60_000,
        updated_at: 1_764_000_000_000 + id * 60_000,
    }
}

/// A server on 127.0.0.1:0 serving `app` with peer addresses; stops when the token is cancelled.
pub async fn serve(app: Router) -> (SocketAddr, CancellationToken) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap_or_else(|e| panic!("bind: {e}"));
    let addr = listener
        .local_addr()
        .unwrap_or_else(|e| panic!("local_addr: {e}"));
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move { s.cancelled().await })
        .await;
    });
    (addr, stop)
}

/// An HTTP client for tests (installs the TLS provider reqwest needs).
pub fn http() -> reqwest::Client {
    capstan_worker::forge::github::install_crypto_provider();
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap_or_else(|e| panic!("reqwest: {e}"))
}

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    if let Some(d) = p.parent() {
        std::fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
    }
    std::fs::write(&p, text).unwrap_or_else(|e| panic!("write {}: {e}", p.display()));
}

fn git(root: &Path, args: &[&str]) {
    let out = std::process::Command::new("git")
        .args(args)
        .current_dir(root)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", "t@example.com")
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", "t@example.com")
        .output()
        .unwrap_or_else(|e| panic!("git {args:?}: {e}"));
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn application(name: &str, path: &str) -> String {
    [
        "apiVersion: argoproj.io/v1alpha1",
        "kind: Application",
        "metadata:",
        &format!("  name: {name}"),
        "  namespace: argocd",
        "spec:",
        "  project: default",
        "  source:",
        "    repoURL: https://github.com/acme/gitops.git",
        "    targetRevision: main",
        &format!("    path: {path}"),
        "  destination:",
        "    server: https://kubernetes.default.svc",
        &format!("    namespace: {name}"),
        "",
    ]
    .join("\n")
}

/// A GitOps repository committed on `main`: environments staging and production, an
/// ApplicationSet-free pair of Applications for `shop` (one per overlay) and a cluster-wide
/// `ingress` app. Image tags differ per overlay.
pub fn gitops_repo(root: &Path) {
    write(
        root,
        ".capstan.yaml",
        &[
            "version: 1",
            "repoURL: https://github.com/acme/gitops.git",
            "defaultBranch: main",
            "environments:",
            "  - name: staging",
            "    overlay: overlays/staging",
            "    description: first stop",
            "  - name: production",
            "    overlay: overlays/production",
            "",
        ]
        .join("\n"),
    );
    for (env, tag) in [("staging", "2.1.0"), ("production", "2.0.3")] {
        write(
            root,
            &format!("argocd/shop-{env}.yaml"),
            &application(&format!("shop-{env}"), &format!("apps/shop/overlays/{env}")),
        );
        write(
            root,
            &format!("apps/shop/overlays/{env}/kustomization.yaml"),
            &format!(
                "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../base\n\
                 images:\n  - name: ghcr.io/acme/shop\n    newTag: {tag}\n"
            ),
        );
    }
    write(
        root,
        "apps/shop/base/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - deployment.yaml\n",
    );
    write(
        root,
        "apps/shop/base/deployment.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: shop\nspec:\n  template:\n    spec:\n      containers:\n        - name: shop\n          image: ghcr.io/acme/shop:1.0.0\n",
    );
    write(
        root,
        "argocd/ingress.yaml",
        &application("ingress", "infra/ingress"),
    );
    write(
        root,
        "infra/ingress/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n",
    );
    git(root, &["init", "-q", "-b", "main"]);
    git(
        root,
        &[
            "remote",
            "add",
            "origin",
            "https://github.com/acme/gitops.git",
        ],
    );
    git(root, &["add", "-A"]);
    git(root, &["commit", "-qm", "init"]);
}
