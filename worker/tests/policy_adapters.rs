//! The temporary CLI adapters: policies read from a git ref, apps rendered with kubectl.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use capstan_worker::policy::source::{AppSource, GitRefFs, KubectlKustomizeSource, git};
use capstan_worker::policy::{PolicyEngine, PolicySources};

fn have(tool: &str) -> bool {
    Command::new(tool).arg("version").output().is_ok()
}

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

const APP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: tmp-cfg, namespace: kube-system}\n";
const RULE: &str = "package main\nimport rego.v1\ndeny contains msg if {\n  startswith(input.metadata.name, \"tmp-\")\n  msg := \"no temporary objects\"\n}\n";

#[test]
fn policies_come_from_the_base_ref_not_the_working_tree() {
    if !have("git") {
        println!("skipped: git not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        ".capstan.yaml",
        "policy:\n  bundles: [builtin, org]\n",
    );
    write(root, "org/no-tmp.rego", RULE);
    for args in [
        &["init", "-q", "-b", "main"][..],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "add",
            "-A",
        ][..],
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.com",
            "commit",
            "-qm",
            "policies",
        ][..],
    ] {
        git(root, args).unwrap();
    }
    // The change under review deletes the rule.
    write(root, "org/no-tmp.rego", "package main\n");
    let apps = vec![capstan_worker::policy::AppInput {
        name: "a".into(),
        objects: capstan_worker::objects::parse_stream(APP, "a.yaml").unwrap(),
        ..Default::default()
    }];
    let base = PolicySources::read(&GitRefFs::new(root, "main").unwrap()).unwrap();
    assert_eq!(base.files[0].text, RULE);
    let r = PolicyEngine::new(&base).unwrap().check(&apps).unwrap();
    assert_eq!(r.deny_count(), 1);
    let head = PolicySources::read(&capstan_worker::repo_fs::DirFs::new(root).unwrap()).unwrap();
    assert_eq!(
        PolicyEngine::new(&head)
            .unwrap()
            .check(&apps)
            .unwrap()
            .deny_count(),
        0
    );
    assert!(GitRefFs::new(root, "no-such-branch").is_err());
}

#[test]
fn kustomize_roots_become_apps_named_after_their_applications() {
    if !have("kubectl") {
        println!("skipped: kubectl not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    write(
        root,
        "argocd/kustomization.yaml",
        "resources: [shop.yaml]\n",
    );
    write(
        root,
        "argocd/shop.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: shop, namespace: argocd}\nspec:\n  project: apps\n  source: {repoURL: https://example.com/r.git, path: applications/shop/overlays/prod}\n  destination: {server: https://kubernetes.default.svc, namespace: shop}\n  syncPolicy: {syncOptions: [CreateNamespace=true]}\n",
    );
    write(
        root,
        "applications/shop/base/kustomization.yaml",
        "resources: [cm.yaml]\n",
    );
    write(
        root,
        "applications/shop/base/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n",
    );
    write(
        root,
        "applications/shop/overlays/prod/kustomization.yaml",
        "resources: [../../base]\npatches:\n- path: cm.yaml\n",
    );
    write(
        root,
        "applications/shop/overlays/prod/cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: c}\n",
    );
    write(
        root,
        "applications/shop/overlays/dev/kustomization.yaml",
        "resources: [../../base]\n",
    );
    let apps = KubectlKustomizeSource::new(root).apps().unwrap();
    let names: Vec<_> = apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "applications/shop/overlays/dev (not deployed by any Application)",
            "argocd",
            "shop (applications/shop/overlays/prod)",
        ]
    );
    let shop = &apps[2];
    assert_eq!(shop.destination_namespace.as_deref(), Some("shop"));
    assert!(shop.creates_namespace);
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
    // A broken kustomization is an error naming the folder, not a skipped app.
    write(
        root,
        "applications/shop/overlays/dev/kustomization.yaml",
        "resources: [../../missing]\n",
    );
    let err = KubectlKustomizeSource::new(root).apps().unwrap_err();
    assert!(
        err.to_string().contains("applications/shop/overlays/dev"),
        "{err}"
    );
}
