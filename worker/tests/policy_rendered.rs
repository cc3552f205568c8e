//! The policy engine fed by the render layer: policies read from a base commit, apps and their
//! input files taken from what the render layer produced.
#![allow(clippy::unwrap_used)]

use capstan_worker::apps::{DiscoveryConfig, Snapshot};
use capstan_worker::git::GitRepo;
use capstan_worker::git::fixture::{Change, RepoBuilder};
use capstan_worker::policy::source::render_apps;
use capstan_worker::policy::{AppInput, PolicyEngine, PolicySources};
use capstan_worker::render::{RenderConfig, Renderer};
use capstan_worker::repo_fs::MemFs;

const APP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tmp-cfg, namespace: kube-system}\n";
const RULE: &str = "package main\nimport rego.v1\ndeny contains msg if {\n  startswith(input.metadata.name, \"tmp-\")\n  msg := \"no temporary objects\"\n}\n";

#[test]
fn policies_come_from_the_base_commit_not_the_tree_under_review() {
    let dir = tempfile::tempdir().unwrap();
    let builder = RepoBuilder::init(dir.path()).unwrap();
    builder
        .commit(
            "policies",
            &[
                Change::Write(".capstan.yaml", b"policy:\n  bundles: [builtin, org]\n"),
                Change::Write("org/no-tmp.rego", RULE.as_bytes()),
            ],
        )
        .unwrap();
    let repo = GitRepo::open(dir.path()).unwrap();
    let base_fs = repo.tree_fs(repo.resolve("main").unwrap()).unwrap();
    // The change under review deletes the rule.
    let head_fs = MemFs::new()
        .with(".capstan.yaml", "policy:\n  bundles: [builtin, org]\n")
        .with("org/no-tmp.rego", "package main\n");
    let apps = vec![AppInput {
        name: "a".into(),
        objects: capstan_worker::objects::parse_stream(APP, "a.yaml").unwrap(),
        ..Default::default()
    }];
    let base = PolicySources::read(&base_fs).unwrap();
    assert_eq!(base.files[0].text, RULE);
    let r = PolicyEngine::new(&base).unwrap().check(&apps).unwrap();
    assert_eq!(r.deny_count(), 1);
    let head = PolicySources::read(&head_fs).unwrap();
    let r = PolicyEngine::new(&head).unwrap().check(&apps).unwrap();
    assert_eq!(r.deny_count(), 0);
    assert!(repo.resolve("no-such-branch").is_err());
}

fn shop_tree(overlay_resources: &str) -> MemFs {
    MemFs::new()
        .with("argocd/kustomization.yaml", "resources: [shop.yaml]\n")
        .with(
            "argocd/shop.yaml",
            "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: shop, namespace: argocd}\nspec:\n  project: apps\n  source: {repoURL: https://example.com/r.git, path: applications/shop/overlays/prod, targetRevision: main}\n  destination: {server: https://kubernetes.default.svc, namespace: shop}\n  syncPolicy: {syncOptions: [CreateNamespace=true]}\n",
        )
        .with("applications/shop/base/kustomization.yaml", "resources: [cm.yaml]\n")
        .with(
            "applications/shop/base/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n",
        )
        .with(
            "applications/shop/overlays/prod/kustomization.yaml",
            format!("resources: [{overlay_resources}]\npatches:\n- path: cm.yaml\n"),
        )
        .with(
            "applications/shop/overlays/prod/cm.yaml",
            "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: c}\n",
        )
}

fn config() -> DiscoveryConfig {
    DiscoveryConfig {
        repo_urls: vec!["https://example.com/r.git".into()],
        default_branch: "main".into(),
        ..Default::default()
    }
}

#[test]
fn rendered_apps_carry_objects_destination_and_input_files() {
    let fs = shop_tree("../../base");
    let renderer = Renderer::new(RenderConfig::default());
    let snap = Snapshot::build(&fs, &config(), &renderer);
    let rendered = render_apps(&fs, &snap.render_all(&renderer));
    assert!(rendered.failed.is_empty(), "{:?}", rendered.failed);
    let shop = rendered.apps.iter().find(|a| a.name == "shop").unwrap();
    assert_eq!(shop.destination_namespace.as_deref(), Some("shop"));
    assert!(shop.creates_namespace);
    assert_eq!(shop.objects.len(), 1);
    assert_eq!(shop.objects[0].value["data"]["a"], "c");
    let files: Vec<_> = shop.files.iter().map(|f| f.path.as_str()).collect();
    assert!(
        files.contains(&"applications/shop/overlays/prod/cm.yaml"),
        "{files:?}"
    );
    assert!(
        files.contains(&"applications/shop/base/cm.yaml"),
        "{files:?}"
    );
    assert!(
        shop.files.iter().all(|f| !f.text.is_empty()),
        "input files are read for tracing"
    );
}

#[test]
fn a_broken_render_is_reported_by_app_not_skipped() {
    let fs = shop_tree("../../missing");
    let renderer = Renderer::new(RenderConfig::default());
    let snap = Snapshot::build(&fs, &config(), &renderer);
    let rendered = render_apps(&fs, &snap.render_all(&renderer));
    assert!(rendered.apps.iter().all(|a| a.name != "shop"));
    let (app, message) = rendered.failed.iter().find(|(a, _)| a == "shop").unwrap();
    assert_eq!(app, "shop");
    assert!(message.contains("missing"), "{message}");
}
