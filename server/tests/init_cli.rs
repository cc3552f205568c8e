//! `capstan init` on repositories of the common layouts, as someone adopting Capstan would run
//! it: kustomize overlays per environment, one folder per cluster behind an app-of-apps, Helm
//! values per environment, and an ApplicationSet git generator. Each proposal must parse with
//! the service's own settings parser, name the environments and rules the layout implies, and,
//! once committed, let `capstan check` pass.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::{Command, Output};

use capstan_worker::settings::RepoSettings;

const URL: &str = "https://github.com/acme/deploy.git";

fn write(root: &Path, path: &str, text: &str) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

fn git(root: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=t", "-c", "user.email=t@example.com"])
        .args(args)
        .current_dir(root)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {out:?}");
}

fn commit_all(root: &Path, message: &str) {
    git(root, &["add", "-A"]);
    git(root, &["commit", "-q", "-m", message]);
}

/// `capstan ARGS --repo ROOT` with the tests' helm first on `PATH`.
fn capstan(root: &Path, args: &[&str]) -> Output {
    let helm = capstan_worker::render::helm::test_binary().expect("a helm for the tests");
    let mut path = vec![helm.parent().unwrap().to_path_buf()];
    path.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    Command::new(env!("CARGO_BIN_EXE_capstan"))
        .args(args)
        .arg("--repo")
        .arg(root)
        .env("PATH", std::env::join_paths(path).unwrap())
        .env_remove("CAPSTAN_REPO_URLS")
        .output()
        .unwrap()
}

/// A Deployment and the NetworkPolicy its namespace needs, hardened as the shipped policies ask.
fn workload(name: &str) -> String {
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {name}\nspec:\n  replicas: 2\n  \
         selector:\n    matchLabels:\n      app: {name}\n  template:\n    metadata:\n      labels:\n        \
         app: {name}\n    spec:\n      automountServiceAccountToken: false\n      securityContext:\n        \
         runAsNonRoot: true\n        runAsUser: 10001\n        seccompProfile:\n          type: RuntimeDefault\n      \
         containers:\n        - name: {name}\n          image: example.com/{name}:1.0.0\n          \
         resources:\n            requests: {{cpu: 10m, memory: 32Mi}}\n            limits: {{cpu: 100m, memory: 64Mi}}\n          \
         readinessProbe:\n            httpGet: {{path: /, port: 8080}}\n          \
         livenessProbe:\n            httpGet: {{path: /, port: 8080}}\n          \
         securityContext:\n            allowPrivilegeEscalation: false\n            readOnlyRootFilesystem: true\n            \
         capabilities:\n              drop: [ALL]\n---\n\
         apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: {name}-default-deny\nspec:\n  \
         podSelector: {{}}\n  policyTypes: [Ingress, Egress]\n"
    )
}

fn application(name: &str, path: &str, namespace: &str, helm: Option<&str>) -> String {
    let helm = helm
        .map(|v| format!("    helm:\n      valueFiles: [{v}]\n"))
        .unwrap_or_default();
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\n\
         spec:\n  project: default\n  source:\n    repoURL: {URL}\n    targetRevision: HEAD\n    path: {path}\n{helm}  \
         destination:\n    server: https://kubernetes.default.svc\n    namespace: {namespace}\n  \
         syncPolicy:\n    syncOptions: [CreateNamespace=true]\n"
    )
}

/// `apps/<app>/base`: the workload every environment of the app builds on.
fn base(root: &Path, app: &str) {
    write(
        root,
        &format!("apps/{app}/base/workload.yaml"),
        &workload(app),
    );
    write(
        root,
        &format!("apps/{app}/base/kustomization.yaml"),
        "resources:\n- workload.yaml\n",
    );
}

/// Kustomize overlays per environment, one Application each.
fn overlays(root: &Path) {
    for app in ["web", "api"] {
        base(root, app);
        for env in ["staging", "production"] {
            write(
                root,
                &format!("apps/{app}/overlays/{env}/kustomization.yaml"),
                &format!(
                    "namespace: {app}-{env}\nresources:\n- ../../base\nimages:\n- name: example.com/{app}\n  newTag: 1.0.0\n"
                ),
            );
            write(
                root,
                &format!("argocd/{app}-{env}.yaml"),
                &application(
                    &format!("{app}-{env}"),
                    &format!("apps/{app}/overlays/{env}"),
                    &format!("{app}-{env}"),
                    None,
                ),
            );
        }
    }
}

/// One folder per cluster, deployed by an app-of-apps whose children live in `argocd/apps`.
fn cluster_folders(root: &Path) {
    write(
        root,
        "argocd/root.yaml",
        &application("root", "argocd/apps", "argocd", None),
    );
    for cluster in ["staging", "prod"] {
        for app in ["web", "api"] {
            write(
                root,
                &format!("clusters/{cluster}/{app}/workload.yaml"),
                &workload(app),
            );
            write(
                root,
                &format!("clusters/{cluster}/{app}/kustomization.yaml"),
                &format!(
                    "namespace: {app}\nresources:\n- workload.yaml\nimages:\n- name: example.com/{app}\n  newTag: 1.0.0\n"
                ),
            );
            write(
                root,
                &format!("argocd/apps/{app}-{cluster}.yaml"),
                // Each cluster is its own destination.
                &application(
                    &format!("{app}-{cluster}"),
                    &format!("clusters/{cluster}/{app}"),
                    app,
                    None,
                )
                .replace(
                    "https://kubernetes.default.svc",
                    &format!("https://{cluster}.example.com:6443"),
                ),
            );
        }
    }
}

/// A chart in the repository with one values file per environment.
fn helm_values(root: &Path) {
    write(
        root,
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 0.1.0\n",
    );
    write(root, "charts/web/values.yaml", "replicas: 1\n");
    write(root, "charts/web/templates/workload.yaml", &workload("web"));
    for env in ["staging", "prod"] {
        write(
            root,
            &format!("charts/web/values-{env}.yaml"),
            "replicas: 2\n",
        );
        write(
            root,
            &format!("argocd/web-{env}.yaml"),
            &application(
                &format!("web-{env}"),
                "charts/web",
                &format!("web-{env}"),
                Some(&format!("values-{env}.yaml")),
            ),
        );
    }
}

/// An ApplicationSet whose git generator makes one app per `apps/<app>/envs/<env>` folder.
fn appset_git(root: &Path) {
    write(
        root,
        "argocd/apps.yaml",
        &format!(
            "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: apps\n  namespace: argocd\n\
             spec:\n  goTemplate: true\n  generators:\n  - git:\n      repoURL: {URL}\n      revision: HEAD\n      \
             directories:\n      - path: apps/*/envs/*\n  template:\n    metadata:\n      \
             name: '{{{{index .path.segments 1}}}}-{{{{.path.basename}}}}'\n    spec:\n      project: default\n      \
             source:\n        repoURL: {URL}\n        targetRevision: HEAD\n        path: '{{{{.path.path}}}}'\n      \
             destination:\n        server: https://kubernetes.default.svc\n        \
             namespace: '{{{{index .path.segments 1}}}}-{{{{.path.basename}}}}'\n      \
             syncPolicy:\n        syncOptions: [CreateNamespace=true]\n"
        ),
    );
    for app in ["web", "api"] {
        base(root, app);
        for env in ["dev", "prod"] {
            write(
                root,
                &format!("apps/{app}/envs/{env}/kustomization.yaml"),
                &format!(
                    "namespace: {app}-{env}\nresources:\n- ../../base\nimages:\n- name: example.com/{app}\n  newTag: 1.0.0\n"
                ),
            );
        }
    }
}

struct Expect {
    envs: &'static [&'static str],
    overlays: &'static [Option<&'static str>],
    /// (app, from path, to path) of each proposed rule.
    rules: &'static [(&'static str, &'static str, &'static str)],
    apps: usize,
}

fn adopt(layout: fn(&Path), want: Expect) {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q", "-b", "main"]);
    layout(root);
    commit_all(root, "the existing deployment");

    let out = capstan(root, &["init"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(
        stderr.contains(&format!("found {} Application(s)", want.apps)),
        "{stderr}"
    );
    for next in ["capstan apps", "capstan check", "capstan diff --base main"] {
        assert!(stderr.contains(next), "missing {next}: {stderr}");
    }
    let text = std::fs::read_to_string(root.join(".capstan.yaml")).unwrap();
    let settings = RepoSettings::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(settings.environment_names(), want.envs, "{text}");
    let doc = capstan_worker::yaml::parse_single(&text, ".capstan.yaml").unwrap();
    for (i, overlay) in want.overlays.iter().enumerate() {
        assert_eq!(
            doc["environments"][i]["overlay"].as_str(),
            *overlay,
            "{text}"
        );
    }
    let rules: Vec<(String, String, String)> = doc["promotion"]["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["app"].as_str().unwrap().to_string(),
                r["from"]["path"].as_str().unwrap().to_string(),
                r["to"]["path"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let wanted: Vec<(String, String, String)> = want
        .rules
        .iter()
        .map(|(a, f, t)| (a.to_string(), f.to_string(), t.to_string()))
        .collect();
    assert_eq!(rules, wanted, "{text}");
    // The rules are the ones the promotion engine accepts.
    capstan_worker::promote::rules::Rules::from_settings(&settings).unwrap();

    // Once merged, the repository checks clean with its new settings.
    commit_all(root, "adopt capstan");
    let check = capstan(root, &["check"]);
    assert_eq!(
        check.status.code(),
        Some(0),
        "{}\n{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let apps = capstan(root, &["apps"]);
    let table = String::from_utf8_lossy(&apps.stdout);
    assert!(!table.contains("not checked"), "{table}");

    // A second run leaves the reviewed file alone unless told; --stdout writes nothing.
    std::fs::write(root.join(".capstan.yaml"), "version: 1\n").unwrap();
    let again = capstan(root, &["init"]);
    assert_eq!(again.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
    let printed = capstan(root, &["init", "--stdout"]);
    assert_eq!(printed.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&printed.stdout), text);
    assert_eq!(
        std::fs::read_to_string(root.join(".capstan.yaml")).unwrap(),
        "version: 1\n"
    );
}

#[test]
fn kustomize_overlays_per_environment() {
    adopt(
        overlays,
        Expect {
            envs: &["staging", "production"],
            overlays: &[Some("overlays/staging"), Some("overlays/production")],
            rules: &[(
                "*",
                "apps/{app}/overlays/staging",
                "apps/{app}/overlays/production",
            )],
            apps: 4,
        },
    );
}

#[test]
fn one_folder_per_cluster_behind_an_app_of_apps() {
    adopt(
        cluster_folders,
        Expect {
            envs: &["staging", "prod"],
            overlays: &[None, None],
            rules: &[("*", "clusters/staging/{app}", "clusters/prod/{app}")],
            apps: 5,
        },
    );
}

#[test]
fn helm_values_per_environment() {
    adopt(
        helm_values,
        Expect {
            envs: &["staging", "prod"],
            overlays: &[None, None],
            rules: &[],
            apps: 2,
        },
    );
}

#[test]
fn an_applicationset_git_generator() {
    adopt(
        appset_git,
        Expect {
            envs: &["dev", "prod"],
            overlays: &[Some("envs/dev"), Some("envs/prod")],
            rules: &[("*", "apps/{app}/envs/dev", "apps/{app}/envs/prod")],
            apps: 4,
        },
    );
}

/// Nothing to find: the file still parses, and the output says where to start.
#[test]
fn a_repository_without_applications() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q", "-b", "main"]);
    write(root, "README.md", "nothing deployed yet\n");
    commit_all(root, "empty");
    let out = capstan(root, &["init"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("capstan render DIR"), "{stderr}");
    let text = std::fs::read_to_string(root.join(".capstan.yaml")).unwrap();
    let settings = RepoSettings::parse(&text).unwrap();
    assert!(settings.environment_names().is_empty());
}

/// A `master` repository that deploys without Application manifests in it: the kustomization
/// folders that nothing includes give the environments (region suffixes allowed, `non-prod` is
/// not production), a stage with several environments gets no guessed rule, and the default
/// branch is the one the repository has.
#[test]
fn kustomization_folders_without_applications_on_master() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    git(root, &["init", "-q", "-b", "master"]);
    write(root, "base/workload.yaml", &workload("web"));
    write(
        root,
        "base/kustomization.yaml",
        "resources:\n- workload.yaml\n",
    );
    write(
        root,
        "variants/non-prod/kustomization.yaml",
        "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n",
    );
    for env in ["dev", "staging", "prod-eu", "prod-us"] {
        write(
            root,
            &format!("envs/{env}/kustomization.yaml"),
            &format!(
                "namespace: web-{env}\nresources:\n- ../../base\ncomponents:\n- ../../variants/non-prod\n\
                 images:\n- name: example.com/web\n  newTag: 1.0.0\n"
            ),
        );
    }
    commit_all(root, "environments as folders");
    let out = capstan(root, &["init"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("capstan diff --base master"), "{stderr}");
    assert!(
        stderr.contains("prod-eu, prod-us: several environments"),
        "{stderr}"
    );
    let text = std::fs::read_to_string(root.join(".capstan.yaml")).unwrap();
    let settings = RepoSettings::parse(&text).unwrap();
    assert_eq!(settings.default_branch.as_deref(), Some("master"));
    assert_eq!(
        settings.environment_names(),
        ["dev", "staging", "prod-eu", "prod-us"],
        "{text}"
    );
    let doc = capstan_worker::yaml::parse_single(&text, ".capstan.yaml").unwrap();
    let rules = doc["promotion"]["rules"].as_array().unwrap();
    assert_eq!(rules.len(), 1, "{text}");
    assert_eq!(rules[0]["from"]["path"], "envs/dev");
    assert_eq!(rules[0]["to"]["path"], "envs/staging");
    capstan_worker::promote::rules::Rules::from_settings(&settings).unwrap();
}
