//! Shared helpers for the end-to-end tests under `tests/tests/`.

use std::path::{Path, PathBuf};

/// The repository root (the folder holding the workspace `Cargo.toml`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from(".."))
}

/// Discovery settings for this repository's own GitOps tree at `root`: the URLs its
/// Applications use for this repository (`.capstan.yaml` when it says, else the workspace's
/// `repository` in Cargo.toml), the default branch and the folders discovery skips.
pub fn gitops_discovery_config(root: &Path) -> capstan_worker::apps::DiscoveryConfig {
    use capstan_worker::repo_fs::DirFs;
    use capstan_worker::settings::RepoSettings;
    let fs = DirFs::new(root).expect("the tree's root folder");
    let settings = RepoSettings::from_tree(&fs)
        .expect("the tree's .capstan.yaml")
        .0;
    let mut urls = settings.repo_urls();
    let cargo = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap_or_default();
    for line in cargo.lines() {
        if let Some(rest) = line.trim().strip_prefix("repository") {
            urls.push(
                rest.trim_start_matches([' ', '='])
                    .trim_matches('"')
                    .to_string(),
            );
        }
    }
    capstan_worker::apps::DiscoveryConfig {
        repo_urls: urls,
        default_branch: "main".into(),
        exclude: settings.discovery_exclude(),
        ..capstan_worker::apps::DiscoveryConfig::default()
    }
}

/// The `capstan` binary of this build, built on demand when the test runner did not build it.
pub fn capstan_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps")
        .to_path_buf();
    let bin = dir.join("capstan");
    if !bin.exists() {
        build_capstan(&bin, &[]);
    }
    assert!(bin.exists(), "no capstan binary at {}", bin.display());
    bin
}

/// The `capstan` binary of this build with failpoints compiled in (the fault-injection tests arm
/// them with `CAPSTAN_FAILPOINTS`). A workspace build has them, as this crate asks for the
/// feature; a binary built for one package alone is rebuilt here with the feature.
pub fn capstan_failpoint_binary() -> PathBuf {
    let bin = capstan_binary();
    let has_failpoints = |bin: &Path| {
        std::process::Command::new(bin)
            .arg("version")
            .output()
            .is_ok_and(|o| String::from_utf8_lossy(&o.stderr).contains("failpoints compiled in"))
    };
    if !has_failpoints(&bin) {
        build_capstan(&bin, &["--features", "failpoints"]);
        assert!(has_failpoints(&bin), "{} has no failpoints", bin.display());
    }
    bin
}

/// Builds the `capstan` binary at `bin` (target/<profile>/capstan) with `extra` cargo flags. A
/// benchmark built with --release looks in target/release: the same profile is built.
fn build_capstan(bin: &Path, extra: &[&str]) {
    let mut args = vec!["build", "-q", "-p", "capstan-server", "--bin", "capstan"];
    args.extend(extra);
    if bin
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|p| p == "release")
    {
        args.push("--release");
    }
    let status = std::process::Command::new(env!("CARGO"))
        .args(&args)
        .current_dir(repo_root())
        .status()
        .expect("running cargo build");
    assert!(status.success(), "building the capstan binary failed");
}

/// `../shared/fixtures` beside the repository, when it exists (CI always has it).
///
/// Tests that need it print one line and return early when it is absent, as the fixtures README
/// asks; they never carry copies of it.
pub fn shared_fixtures() -> Option<PathBuf> {
    let dir = repo_root().join("../shared/fixtures");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!("skipped: ../shared/fixtures is not present beside this checkout");
        None
    }
}

/// Whether `kubectl` (the kustomize oracle) is on `PATH`; prints the skip line when it is not.
pub fn kubectl_present() -> bool {
    let found = capstan_worker::render::exec::which("kubectl").is_some();
    if !found {
        println!("skipped: kubectl is not on PATH");
    }
    found
}

pub mod backend;
pub mod chart_repo;
pub mod commands_harness;
pub mod dashboard;
pub mod fake_argocd;
pub mod fake_forge;
pub mod fake_gitea;
pub mod fake_github;
pub mod fake_gitlab;
pub mod fake_kube;
pub mod fake_kube_lists;
pub mod flaky;
pub mod pg;
pub mod pr_harness;
pub mod pr_worker;
pub mod promote_world;
pub mod replicas;
pub mod served;
pub mod tcp_proxy;
pub mod webdriver;
pub mod webhook;

/// `tests/fixtures/` of this repository: fixtures written by the project itself.
pub fn own_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}
