//! The repository's GitOps tree, read the way ArgoCD would: start at the root Application
//! (`argocd/bootstrap-apps/root.yaml`), render every Git source with `kubectl kustomize`, expand
//! ApplicationSets (git directory / git files / list generators), and check the whole graph:
//!
//! - every Application points at a path that exists (and builds), every generator matches;
//! - every Application's project exists, is not `default`, and allows its source repository,
//!   its destination and every object it renders (namespaces, cluster-scoped kinds);
//! - sync waves put whatever installs a CRD group before whatever uses it, and each operator's
//!   wave is above its dependencies';
//! - every image is pinned, every container has requests and limits and runs restricted, every
//!   Deployment has probes, every Ingress has TLS, no plaintext Secrets, and every namespace
//!   something is deployed to has a NetworkPolicy (and is created by some Application);
//! - no apiVersion is deprecated or removed by Kubernetes 1.34 (pluto's table, shared fixture);
//! - `.capstan.yaml`'s promotion rules join real overlays that list the same images.
//!
//! Each check also runs on a small bad tree written by the test, to show it catches the problem.
//! `gitops_tree/tree.rs` reads the tree, `gitops_tree/checks.rs` holds the checks.
#![allow(clippy::unwrap_used)]

mod gitops_tree {
    pub(crate) mod chart_security;
    pub(crate) mod checks;
    pub(crate) mod secrets;
    pub(crate) mod settings;
    pub(crate) mod tree;
}

use std::collections::BTreeSet;
use std::path::PathBuf;

use capstan_tests::repo_root;
use serde_json::{Value, json};

use gitops_tree::chart_security::{SITES, check_chart_pods, check_chart_versions};
use gitops_tree::checks::*;
use gitops_tree::secrets::{
    ESO_APP, ESO_DIR, check_alert_receivers, check_repository_credentials, check_stores,
};
use gitops_tree::settings::{
    Settings, check_argocd_urls, check_capstan_metrics_port, check_grafana_root_url,
    check_repo_server_token, check_resource_exclusions, check_service_monitors,
};
use gitops_tree::tree::{ROOT_APP, Tree, kustomize, path_params, read_yaml, render_template};

// ------------------------------------------------------------------------------------------
// The real tree

/// The tree ships with these tests, so a missing root is a failure, never a skip.
fn real_root() -> PathBuf {
    let root = repo_root();
    assert!(
        root.join(ROOT_APP).is_file(),
        "{} is missing from {}",
        ROOT_APP,
        root.display()
    );
    root
}

fn real_tree() -> Tree {
    Tree::load(&real_root())
}

fn assert_clean(what: &str, problems: Vec<String>) {
    assert!(
        problems.is_empty(),
        "{what}: {} problem(s):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}

#[test]
fn app_of_apps_references_only_paths_that_exist() {
    let tree = real_tree();
    assert_clean("paths", check_paths(&tree));
    // The walk really covered the tree: every area and every generated app is there.
    let names: BTreeSet<&str> = tree.all_apps().map(|(_, a)| a.name.as_str()).collect();
    for expected in [
        "root",
        "bootstrap",
        "argocd",
        "argocd-configs",
        "ingress-in-cluster",
        "ingress-staging",
        "ingress-management-in-cluster",
        "security-in-cluster",
        "storage-in-cluster",
        "rbac-in-cluster",
        "operators",
        "monitoring-in-cluster",
        "monitoring-management",
        "capstan",
        "dashboard",
        "cert-manager-in-cluster",
        "sealed-secrets-in-cluster",
        "kube-prometheus-stack-in-cluster",
        "kube-prometheus-stack-staging",
        "podinfo-staging",
        "podinfo-production",
    ] {
        assert!(
            names.contains(expected),
            "{expected} missing from {names:?}"
        );
    }
    assert!(tree.rendered.len() >= 10, "{:?}", tree.rendered.keys());
}

#[test]
fn every_application_runs_in_an_existing_project_that_allows_it() {
    let tree = real_tree();
    assert!(tree.projects.len() >= 2, "{:?}", tree.projects.keys());
    assert_clean("projects", check_projects(&tree));
}

#[test]
fn sync_waves_put_crds_and_operators_before_their_users() {
    let tree = real_tree();
    assert_clean("sync waves", check_sync_waves(&tree));
}

#[test]
fn every_container_is_pinned_sized_and_restricted() {
    let (objects, problems) = all_rendered(&real_root());
    assert_clean("kustomize", problems);
    let containers = objects
        .iter()
        .filter(|(_, o)| pod_spec(o).is_some())
        .count();
    assert!(
        containers >= 3,
        "expected the tree's workloads, found {containers}"
    );
    assert_clean("workloads", check_workloads(&objects));
    assert_clean("exposure", check_exposure(&objects));
}

#[test]
fn every_chart_pod_passes_its_namespace_pod_security_level() {
    let root = real_root();
    assert_clean("chart versions", check_chart_versions(&root, SITES));
    let (judged, problems) = check_chart_pods(&root, SITES);
    assert_clean("chart pod security", problems);
    // Every site but the two disabled Grafana extras (init-chown-data, the helm test pod).
    let sites: usize = SITES.iter().map(|c| c.sites.len()).sum();
    assert_eq!(judged, sites - 2, "pods judged");
}

#[test]
fn every_namespace_deployed_to_has_a_network_policy_and_an_owner() {
    let tree = real_tree();
    assert_clean("namespaces", check_namespaces(&tree));
}

// ------------------------------------------------------------------------------------------
// Bad trees: each check catches what it is for.

struct Fixture {
    dir: tempfile::TempDir,
}

impl Fixture {
    /// A minimal valid tree: root -> bootstrap-apps (one app in project `platform`) -> apps/web.
    fn new() -> Fixture {
        let f = Fixture {
            dir: tempfile::tempdir().unwrap(),
        };
        f.write(
            ROOT_APP,
            &application("root", "platform", "argocd/bootstrap-apps", "argocd", 0),
        );
        f.app_of_apps(&["web.yaml"]);
        f.write(
            "argocd/bootstrap-apps/argocd.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: argocd\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: deny\n  namespace: argocd\nspec:\n  podSelector: {}\n",
        );
        f.write(
            "argocd/bootstrap-apps/web.yaml",
            &application("web", "platform", "apps/web", "web", 0),
        );
        f.write(
            "argocd/configs/kustomization.yaml",
            "resources:\n  - platform.yaml\n",
        );
        f.write(
            "argocd/configs/platform.yaml",
            "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata:\n  name: platform\n  namespace: argocd\nspec:\n  sourceRepos: [https://git.example/repo.git]\n  destinations:\n    - {server: https://kubernetes.default.svc, namespace: argocd}\n    - {server: https://kubernetes.default.svc, namespace: web}\n  clusterResourceWhitelist:\n    - {group: '', kind: Namespace}\n",
        );
        f.write(
            "apps/web/kustomization.yaml",
            "namespace: web\nresources:\n  - ns.yaml\n  - deploy.yaml\n",
        );
        f.write(
            "apps/web/ns.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: web\n---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: deny\nspec:\n  podSelector: {}\n",
        );
        f.write("apps/web/deploy.yaml", &deployment("nginx:1.27.3", true));
        f
    }

    fn write(&self, rel: &str, text: &str) {
        let path = self.dir.path().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    /// The app-of-apps lists these files (plus the argocd namespace it always carries).
    fn app_of_apps(&self, files: &[&str]) {
        let mut k = String::from("resources:\n  - argocd.yaml\n");
        for file in files {
            k.push_str(&format!("  - {file}\n"));
        }
        self.write("argocd/bootstrap-apps/kustomization.yaml", &k);
    }

    fn tree(&self) -> Tree {
        Tree::load(self.dir.path())
    }
}

fn application(name: &str, project: &str, path: &str, ns: &str, wave: i64) -> String {
    format!(
        "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: {name}\n  namespace: argocd\n  annotations:\n    argocd.argoproj.io/sync-wave: \"{wave}\"\nspec:\n  project: {project}\n  source:\n    repoURL: https://git.example/repo.git\n    targetRevision: main\n    path: {path}\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: {ns}\n"
    )
}

fn deployment(image: &str, hardened: bool) -> String {
    let container_extra = if hardened {
        "        resources:\n          requests: {cpu: 10m, memory: 16Mi}\n          limits: {cpu: 100m, memory: 64Mi}\n        securityContext:\n          runAsNonRoot: true\n          allowPrivilegeEscalation: false\n          capabilities: {drop: [ALL]}\n          seccompProfile: {type: RuntimeDefault}\n        readinessProbe: {httpGet: {path: /, port: 80}}\n        livenessProbe: {httpGet: {path: /, port: 80}}\n"
    } else {
        ""
    };
    format!(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    matchLabels: {{app: web}}\n  template:\n    metadata:\n      labels: {{app: web}}\n    spec:\n      containers:\n      - name: web\n        image: {image}\n{container_extra}"
    )
}

fn assert_reports(problems: &[String], needle: &str) {
    assert!(
        problems.iter().any(|p| p.contains(needle)),
        "expected a problem containing {needle:?}, got:\n  {}",
        problems.join("\n  ")
    );
}

#[test]
fn the_good_fixture_passes_every_check() {
    let f = Fixture::new();
    let tree = f.tree();
    assert_clean("paths", check_paths(&tree));
    assert_clean("projects", check_projects(&tree));
    assert_clean("waves", check_sync_waves(&tree));
    assert_clean("namespaces", check_namespaces(&tree));
    let (objects, problems) = all_rendered(f.dir.path());
    assert_clean("kustomize", problems);
    assert_clean("workloads", check_workloads(&objects));
}

#[test]
fn a_missing_path_is_reported() {
    let f = Fixture::new();
    f.write(
        "argocd/bootstrap-apps/web.yaml",
        &application("web", "platform", "apps/nowhere", "web", 0),
    );
    assert_reports(
        &check_paths(&f.tree()),
        "Application web points at apps/nowhere, which does not exist",
    );
}

#[test]
fn a_generator_that_matches_nothing_is_reported() {
    let f = Fixture::new();
    f.app_of_apps(&["web.yaml", "set.yaml"]);
    f.write(
        "argocd/bootstrap-apps/set.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: set\nspec:\n  goTemplate: true\n  generators:\n    - git:\n        repoURL: https://git.example/repo.git\n        directories:\n          - path: apps/*/overlays/*\n  template:\n    metadata:\n      name: '{{index .path.segments 1}}-{{.path.basename}}'\n    spec:\n      project: platform\n      source: {repoURL: https://git.example/repo.git, path: '{{.path.path}}'}\n      destination: {server: https://kubernetes.default.svc, namespace: web}\n",
    );
    assert_reports(
        &check_paths(&f.tree()),
        "directory generator apps/*/overlays/* matches nothing",
    );
}

#[test]
fn the_default_project_is_refused() {
    let f = Fixture::new();
    f.write(
        "argocd/bootstrap-apps/web.yaml",
        &application("web", "default", "apps/web", "web", 0),
    );
    assert_reports(
        &check_projects(&f.tree()),
        "Application web uses project \"default\"",
    );
}

#[test]
fn an_unknown_project_is_refused() {
    let f = Fixture::new();
    f.write(
        "argocd/bootstrap-apps/web.yaml",
        &application("web", "team-x", "apps/web", "web", 0),
    );
    assert_reports(
        &check_projects(&f.tree()),
        "uses project team-x, which argocd/configs does not define",
    );
}

#[test]
fn a_destination_or_object_the_project_does_not_allow_is_refused() {
    let f = Fixture::new();
    f.write(
        "argocd/bootstrap-apps/web.yaml",
        &application("web", "platform", "apps/web", "kube-system", 0),
    );
    f.write(
        "apps/web/kustomization.yaml",
        "resources:\n  - ns.yaml\n  - deploy.yaml\n  - role.yaml\n",
    );
    f.write(
        "apps/web/role.yaml",
        "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: web\nrules: []\n",
    );
    let problems = check_projects(&f.tree());
    assert_reports(
        &problems,
        "does not allow destination https://kubernetes.default.svc namespace kube-system",
    );
    assert_reports(&problems, "does not allow cluster-scoped ClusterRole web");
}

#[test]
fn a_source_repository_the_project_does_not_allow_is_refused() {
    let f = Fixture::new();
    f.write(
        "argocd/configs/platform.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata:\n  name: platform\nspec:\n  sourceRepos: [https://git.example/other.git]\n  destinations:\n    - {server: '*', namespace: '*'}\n  clusterResourceWhitelist:\n    - {group: '*', kind: '*'}\n",
    );
    assert_reports(
        &check_projects(&f.tree()),
        "project platform does not allow source repository https://git.example/repo.git",
    );
}

#[test]
fn a_crd_user_in_the_same_wave_as_its_operator_is_reported() {
    let f = Fixture::new();
    f.app_of_apps(&["web.yaml", "crds.yaml"]);
    f.write(
        "argocd/bootstrap-apps/crds.yaml",
        &application("crds", "platform", "apps/crds", "argocd", 0),
    );
    f.write("apps/crds/kustomization.yaml", "resources:\n  - crd.yaml\n");
    f.write(
        "apps/crds/crd.yaml",
        "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions: []\n",
    );
    f.write(
        "apps/web/kustomization.yaml",
        "namespace: web\nresources:\n  - ns.yaml\n  - deploy.yaml\n  - widget.yaml\n",
    );
    f.write(
        "apps/web/widget.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
    );
    let problems = check_sync_waves(&f.tree());
    assert_reports(
        &problems,
        "web (sync wave 0) uses API group example.com from crds (sync wave 0)",
    );
    // One wave later, the same tree is fine.
    f.write(
        "argocd/bootstrap-apps/web.yaml",
        &application("web", "platform", "apps/web", "web", 1),
    );
    assert_clean("waves", check_sync_waves(&f.tree()));
    // And a group nothing installs is reported too.
    f.write(
        "apps/web/widget.yaml",
        "apiVersion: other.example.org/v1\nkind: Gadget\nmetadata:\n  name: g\n",
    );
    assert_reports(
        &check_sync_waves(&f.tree()),
        "web uses API group other.example.org, but no Application installs its CRDs",
    );
}

#[test]
fn operator_dependencies_must_come_in_earlier_waves() {
    let f = Fixture::new();
    f.app_of_apps(&["web.yaml", "operators.yaml"]);
    f.write(
        "argocd/bootstrap-apps/operators.yaml",
        "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata:\n  name: operators\nspec:\n  goTemplate: true\n  generators:\n    - git:\n        repoURL: https://git.example/repo.git\n        files:\n          - path: ops/*/operator.yaml\n  strategy:\n    type: RollingSync\n    rollingSync:\n      steps:\n        - matchExpressions: [{key: wave, operator: In, values: ['1']}]\n        - matchExpressions: [{key: wave, operator: In, values: ['2']}]\n  template:\n    metadata:\n      name: '{{.name}}'\n      labels: {wave: '{{.syncWave}}'}\n    spec:\n      project: platform\n      source: {repoURL: '{{.chart.repository}}', chart: '{{.chart.name}}', targetRevision: '{{.chart.version}}'}\n      destination: {server: https://kubernetes.default.svc, namespace: '{{.namespace}}'}\n",
    );
    f.write(
        "ops/a/operator.yaml",
        "name: a\nnamespace: argocd\nchart: {repository: https://git.example/repo.git, name: a, version: 1.0.0}\ndependencies: []\nsyncWave: 1\n",
    );
    f.write(
        "ops/b/operator.yaml",
        "name: b\nnamespace: argocd\nchart: {repository: https://git.example/repo.git, name: b, version: 1.0.0}\ndependencies: [a, ghost]\nsyncWave: 1\n",
    );
    let problems = check_sync_waves(&f.tree());
    assert_reports(
        &problems,
        "operator b (syncWave 1) depends on a (syncWave 1): it must have a higher wave",
    );
    assert_reports(
        &problems,
        "operator b depends on ghost, which is not an operator here",
    );
    f.write(
        "ops/c/operator.yaml",
        "name: c\nnamespace: argocd\nchart: {repository: https://git.example/repo.git, name: c, version: 1.0.0}\ndependencies: [b]\nsyncWave: 3\n",
    );
    assert_reports(
        &check_sync_waves(&f.tree()),
        "Application c: labels {\"wave\":\"3\"} are selected by no RollingSync step",
    );
}

#[test]
fn unpinned_images_are_reported() {
    for (image, expected) in [
        ("nginx", "image nginx has no tag"),
        (
            "nginx:latest",
            "image nginx:latest uses the mutable tag latest",
        ),
        (
            "registry.local:5000/nginx",
            "image registry.local:5000/nginx has no tag",
        ),
    ] {
        let f = Fixture::new();
        f.write("apps/web/deploy.yaml", &deployment(image, true));
        let (objects, problems) = all_rendered(f.dir.path());
        assert_clean("kustomize", problems);
        assert_reports(&check_workloads(&objects), expected);
    }
    assert!(image_pinned("registry.local:5000/nginx:1.2").is_ok());
    assert!(image_pinned("nginx@sha256:0123").is_ok());
}

#[test]
fn containers_without_limits_or_restrictions_are_reported() {
    let f = Fixture::new();
    f.write("apps/web/deploy.yaml", &deployment("nginx:1.27.3", false));
    let (objects, _) = all_rendered(f.dir.path());
    let problems = check_workloads(&objects);
    for needle in [
        "container web: no resources.requests.cpu",
        "container web: no resources.limits.memory",
        "container web: runAsNonRoot is not true",
        "container web: allowPrivilegeEscalation is not false",
        "container web: capabilities do not drop ALL",
        "container web: seccompProfile is not RuntimeDefault",
        "container web: no readinessProbe",
        "container web: no livenessProbe",
    ] {
        assert_reports(&problems, needle);
    }
}

#[test]
fn host_access_secrets_open_services_and_ingress_without_tls_are_reported() {
    let f = Fixture::new();
    f.write(
        "apps/web/kustomization.yaml",
        "namespace: web\nresources:\n  - ns.yaml\n  - deploy.yaml\n  - extra.yaml\n",
    );
    f.write(
        "apps/web/extra.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: creds\nstringData: {password: hunter2}\n---\napiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: NodePort\n  ports: [{port: 80}]\n---\napiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata:\n  name: web\nspec:\n  rules:\n    - host: web.example.com\n",
    );
    let hostile = deployment("nginx:1.27.3", true).replace(
        "      containers:\n",
        "      hostNetwork: true\n      volumes:\n      - name: root\n        hostPath: {path: /}\n      containers:\n",
    );
    f.write("apps/web/deploy.yaml", &hostile);
    let (objects, _) = all_rendered(f.dir.path());
    let exposure = check_exposure(&objects);
    assert_reports(&exposure, "Secret web/creds: plaintext Secret");
    assert_reports(&exposure, "Service web/web: Service type NodePort");
    assert_reports(&exposure, "host \"web.example.com\" is not covered by TLS");
    let workloads = check_workloads(&objects);
    assert_reports(&workloads, "hostNetwork is set");
    assert_reports(&workloads, "is a hostPath");
}

#[test]
fn a_namespace_without_network_policy_or_owner_is_reported() {
    let f = Fixture::new();
    f.write(
        "apps/web/ns.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n",
    );
    let problems = check_namespaces(&f.tree());
    assert_reports(
        &problems,
        "namespace web (used by web) has no NetworkPolicy",
    );
    assert_reports(
        &problems,
        "namespace web (used by web) is not created by any Application",
    );
}

#[test]
fn the_template_subset_is_evaluated_and_unknown_expressions_refused() {
    let params = json!({"path": path_params("applications/workloads/podinfo/overlays/staging"), "values": {"a": 1}});
    let t =
        json!({"n": "{{index .path.segments 2}}-{{.path.basename}}", "v": "{{ toYaml .values }}"});
    let out = render_template(&t, &params).unwrap();
    assert_eq!(out["n"], "podinfo-staging");
    assert_eq!(out["v"], "{\"a\":1}");
    assert!(render_template(&json!("{{ .nope }}"), &params).is_err());
    assert!(render_template(&json!("{{ upper .path.path }}"), &params).is_err());
}

#[test]
fn capstan_yaml_promotes_between_real_overlays() {
    assert_clean(".capstan.yaml", check_capstan_yaml(&real_root()));
}

#[test]
fn capstan_yaml_with_a_missing_overlay_or_bad_permission_is_reported() {
    let f = Fixture::new();
    f.write(
        ".capstan.yaml",
        "environments: [{name: staging}, {name: production}]\npromotion:\n  rules:\n    - name: web\n      from: {environment: production, path: apps/web}\n      to: {environment: staging, path: apps/gone}\n      copy: [images]\ncommands:\n  permissions: {promote: owner}\n",
    );
    let problems = check_capstan_yaml(f.dir.path());
    assert_reports(
        &problems,
        "rule web: to.path apps/gone has no kustomization.yaml",
    );
    assert_reports(&problems, "rule web: promotes backwards");
    assert_reports(
        &problems,
        "commands.permissions.promote: \"owner\" is not one of",
    );
}

fn pluto_table() -> Option<Value> {
    let dir = capstan_tests::shared_fixtures()?;
    let docs = read_yaml(&dir.join("deprecations/pluto-versions.yaml")).unwrap();
    docs.into_iter().next()
}

#[test]
fn no_api_version_is_deprecated_or_removed_in_kubernetes_1_34() {
    let Some(table) = pluto_table() else { return };
    let (objects, problems) = all_rendered(&real_root());
    assert_clean("kustomize", problems);
    assert_clean("apiVersions", check_api_versions(&objects, &table, (1, 34)));
}

#[test]
fn a_removed_api_version_is_reported() {
    let Some(table) = pluto_table() else { return };
    let f = Fixture::new();
    f.write(
        "apps/web/deploy.yaml",
        &deployment("nginx:1.27.3", true).replace("apps/v1", "extensions/v1beta1"),
    );
    let (objects, _) = all_rendered(f.dir.path());
    assert_reports(
        &check_api_versions(&objects, &table, (1, 34)),
        "Deployment web/web uses extensions/v1beta1, removed in v1.16 (use apps/v1)",
    );
    // Judged against an older cluster, a newer removal does not count yet.
    assert!(
        check_api_versions(&objects, &table, (1, 15))
            .iter()
            .all(|p| !p.contains("removed"))
    );
}

// ------------------------------------------------------------------------------------------
// Chart Pod Security on small trees

const RESTRICTED_NS: &str = "apiVersion: v1
kind: Namespace
metadata:
  name: sealed-secrets
  labels:
    pod-security.kubernetes.io/enforce: restricted
    pod-security.kubernetes.io/warn: restricted
";

fn chart_tree(version: &str, values: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let write = |path: &str, text: &str| {
        let p = dir.path().join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    };
    write(
        "infrastructure/base/security/namespaces.yaml",
        RESTRICTED_NS,
    );
    write(
        "bootstrap/configs/namespaces/argocd.yaml",
        &RESTRICTED_NS.replace("sealed-secrets", "argocd"),
    );
    write(
        "infrastructure/operators/sealed-secrets/operator.yaml",
        &format!(
            "name: sealed-secrets\nnamespace: sealed-secrets\nchart:\n  version: {version}\nvalues:\n{values}"
        ),
    );
    dir
}

fn sealed_secrets_only() -> Vec<gitops_tree::chart_security::Chart> {
    SITES
        .iter()
        .filter(|c| c.app == "sealed-secrets")
        .copied()
        .collect()
}

#[test]
fn the_sealed_secrets_chart_defaults_are_refused_by_restricted() {
    // Chart 2.17.3's own defaults, which the tree shipped before: no seccompProfile, no
    // allowPrivilegeEscalation.
    let tree = chart_tree(
        "2.17.3",
        "  podSecurityContext:\n    enabled: true\n    fsGroup: 65534\n  containerSecurityContext:\n    enabled: true\n    readOnlyRootFilesystem: true\n    runAsNonRoot: true\n    runAsUser: 1001\n    capabilities:\n      drop: [ALL]\n",
    );
    let (judged, problems) = check_chart_pods(tree.path(), &sealed_secrets_only());
    assert_eq!(judged, 1);
    assert_reports(&problems, "pss-seccomp");
    assert_reports(&problems, "pss-privilege-escalation");
    assert_eq!(problems.len(), 2, "{problems:?}");
}

#[test]
fn a_disabled_security_context_is_judged_as_absent() {
    let tree = chart_tree(
        "2.17.3",
        "  podSecurityContext:\n    enabled: false\n    runAsNonRoot: true\n    seccompProfile: {type: RuntimeDefault}\n  containerSecurityContext:\n    enabled: true\n    allowPrivilegeEscalation: false\n    capabilities:\n      drop: [ALL]\n",
    );
    let (_, problems) = check_chart_pods(tree.path(), &sealed_secrets_only());
    assert_reports(&problems, "pss-run-as-non-root");
    assert_reports(&problems, "pss-seccomp");
}

#[test]
fn a_chart_bump_without_rereading_its_templates_is_reported() {
    let tree = chart_tree("2.18.0", "  {}\n");
    assert_reports(
        &check_chart_versions(tree.path(), &sealed_secrets_only()),
        "2.18.0 is pinned",
    );
}

// ------------------------------------------------------------------------------------------
// Settings that must do what their comments say

fn settings() -> Settings {
    Settings::load(&real_root()).unwrap()
}

#[test]
fn the_repo_server_gets_no_api_token() {
    let s = settings();
    assert_clean("repo-server token", check_repo_server_token(&s.argocd));
    // Only the ServiceAccount switched off (what the tree did): the pod still mounts the token.
    let mut only_sa = s.argocd.clone();
    only_sa["repoServer"]
        .as_object_mut()
        .unwrap()
        .remove("automountServiceAccountToken");
    let problems = check_repo_server_token(&only_sa);
    assert_reports(&problems, "repoServer.automountServiceAccountToken");
    assert_eq!(problems.len(), 1, "{problems:?}");
}

#[test]
fn argocd_keeps_the_charts_default_resource_exclusions() {
    let s = settings();
    assert_clean("exclusions", check_resource_exclusions(&s.argocd_cm));
    let mut none = s.argocd_cm.clone();
    none.as_object_mut().unwrap().remove("resource.exclusions");
    assert_reports(&check_resource_exclusions(&none), "no resource.exclusions");
    let mut no_lease = s.argocd_cm.clone();
    let text = no_lease["resource.exclusions"]
        .as_str()
        .unwrap()
        .replace("[Lease]", "[]");
    no_lease["resource.exclusions"] = json!(text);
    let problems = check_resource_exclusions(&no_lease);
    assert_reports(&problems, "Lease");
    assert_eq!(problems.len(), 1, "{problems:?}");
}

#[test]
fn argocd_urls_agree_with_global_domain_and_the_route() {
    let s = settings();
    assert_clean(
        "argocd urls",
        check_argocd_urls(&s.argocd, &s.argocd_cm, &s.ingress),
    );
    // The tree before: the apex path URL in argocd-cm, and the chart's notifications default.
    let mut cm = s.argocd_cm.clone();
    cm["url"] = json!("https://example.com/argocd");
    let mut values = s.argocd.clone();
    values["notifications"]
        .as_object_mut()
        .unwrap()
        .remove("argocdUrl");
    let problems = check_argocd_urls(&values, &cm, &s.ingress);
    assert_reports(&problems, "argocd-cm url");
    assert_reports(&problems, "notifications.argocdUrl");
    // A domain no route serves.
    let mut elsewhere = s.argocd.clone();
    elsewhere["global"]["domain"] = json!("argo.nowhere.test");
    assert_reports(
        &check_argocd_urls(&elsewhere, &s.argocd_cm, &s.ingress),
        "is not routed by the argocd Ingress",
    );
}

#[test]
fn grafana_root_url_is_the_public_url_of_its_route() {
    let s = settings();
    assert_clean("grafana", check_grafana_root_url(&s.kps, &s.ingress));
    let mut before = s.kps.clone();
    before["grafana"]["grafana.ini"]["server"] = json!({
        "root_url": "%(protocol)s://%(domain)s/grafana/", "serve_from_sub_path": true
    });
    assert_reports(
        &check_grafana_root_url(&before, &s.ingress),
        "not an https URL",
    );
    let mut wrong_path = s.kps.clone();
    let host = wrong_path["grafana"]["grafana.ini"]["server"]["domain"].clone();
    wrong_path["grafana"]["grafana.ini"]["server"]["root_url"] =
        json!(format!("https://{}/monitoring/", host.as_str().unwrap()));
    assert_reports(&check_grafana_root_url(&wrong_path, &s.ingress), "routes");
}

#[test]
fn service_monitors_scrape_argocd_traefik_cert_manager_and_capstan() {
    let s = settings();
    assert_clean("service monitors", check_service_monitors(&s));
    assert_clean(
        "capstan metrics",
        check_capstan_metrics_port(&s.capstan, &s.monitoring),
    );

    // Capstan's ServiceMonitor on the http port, as the tree had it: /metrics lives on 9090.
    let mut on_http = s.monitoring.clone();
    for o in on_http
        .iter_mut()
        .filter(|o| o["kind"] == "ServiceMonitor" && o["metadata"]["name"] == "capstan")
    {
        o["spec"]["endpoints"][0]["port"] = json!("http");
    }
    assert_reports(
        &check_capstan_metrics_port(&s.capstan, &on_http),
        "served on 9090",
    );

    // Traefik's metrics Service switched off: its ServiceMonitor has nothing to scrape.
    let mut no_service = settings();
    no_service.traefik["metrics"]["prometheus"]
        .as_object_mut()
        .unwrap()
        .remove("service");
    let problems = check_service_monitors(&no_service);
    assert_reports(
        &problems,
        "ServiceMonitor traefik selects no metrics Service",
    );
    assert_reports(&problems, "no ServiceMonitor scrapes traefik");

    // A port the selected Services do not have.
    let mut bad_port = settings();
    for o in bad_port
        .monitoring
        .iter_mut()
        .filter(|o| o["metadata"]["name"] == "cert-manager")
    {
        o["spec"]["endpoints"][0]["port"] = json!("metrics");
    }
    assert_reports(
        &check_service_monitors(&bad_port),
        "cert-manager controller does not have",
    );
}

// ------------------------------------------------------------------------------------------
// The External Secrets option (opt-in: argocd/bootstrap-apps/secret-store.yaml)

fn root_repo_url(root: &std::path::Path) -> String {
    read_yaml(&root.join(ROOT_APP)).unwrap()[0]["spec"]["source"]["repoURL"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn the_external_secrets_option_fills_what_its_consumers_read() {
    let root = real_root();
    let objects = kustomize(&root.join(ESO_DIR)).unwrap();
    let settings = Settings::load(&root).unwrap();
    let backup = std::fs::read_to_string(root.join("bootstrap/scripts/backup")).unwrap();
    let repo = root_repo_url(&root);
    assert_clean("stores", check_stores(&objects));
    assert_clean(
        "alert receivers",
        check_alert_receivers(&objects, &settings.kps, &settings.argocd),
    );
    assert_clean(
        "repository credentials",
        check_repository_credentials(&objects, &repo, &backup),
    );
    let app = &read_yaml(&root.join(ESO_APP)).unwrap()[0];
    assert_eq!(app["spec"]["source"]["path"], ESO_DIR);
    assert_eq!(app["spec"]["source"]["repoURL"], repo.as_str());

    // Broken variants: each is reported.
    let edit = |f: &dyn Fn(&mut Vec<Value>)| {
        let mut o = objects.clone();
        f(&mut o);
        o
    };
    let find = |o: &mut Vec<Value>, n: &str| -> usize {
        o.iter().position(|x| x["metadata"]["name"] == n).unwrap()
    };
    let no_store = edit(&|o| o.retain(|x| x["kind"] != "ClusterSecretStore"));
    assert_reports(&check_stores(&no_store), "not a ClusterSecretStore here");
    let wrong_key = edit(&|o| {
        let i = find(o, "alertmanager-receiver");
        o[i]["spec"]["data"][0]["secretKey"] = json!("webhook");
    });
    assert_reports(
        &check_alert_receivers(&wrong_key, &settings.kps, &settings.argocd),
        "no ExternalSecret writes key url of monitoring/alertmanager-receiver",
    );
    let split = edit(&|o| {
        let i = find(o, "argocd-notifications-secret");
        o[i]["spec"]["data"][0]["remoteRef"]["property"] = json!("other");
    });
    assert_reports(
        &check_alert_receivers(&split, &settings.kps, &settings.argocd),
        "different store values",
    );
    let elsewhere = edit(&|o| {
        let i = find(o, "repository-capstan");
        o[i]["spec"]["target"]["template"]["data"]["url"] =
            json!("https://github.com/else/where.git");
    });
    assert_reports(
        &check_repository_credentials(&elsewhere, &repo, &backup),
        "does not cover the tree's repository",
    );
    let literal = edit(&|o| {
        let i = find(o, "repository-capstan");
        o[i]["spec"]["target"]["template"]["data"]["password"] = json!("hunter2");
    });
    assert_reports(
        &check_repository_credentials(&literal, &repo, &backup),
        "password is a literal in Git",
    );
    let unfetched = edit(&|o| {
        let i = find(o, "repository-capstan");
        o[i]["spec"]["data"].as_array_mut().unwrap().pop();
    });
    assert_reports(
        &check_repository_credentials(&unfetched, &repo, &backup),
        "password uses password, which spec.data does not fetch",
    );
    assert_reports(
        &check_repository_credentials(&objects, &repo, "kubectl get secrets"),
        "does not export repository Secrets",
    );
}

/// A copy of the real tree to change in a test.
fn tree_copy() -> tempfile::TempDir {
    let root = real_root();
    let dir = tempfile::tempdir().unwrap();
    for part in [
        "argocd",
        "infrastructure",
        "applications",
        "bootstrap",
        ".capstan.yaml",
    ] {
        let status = std::process::Command::new("cp")
            .arg("-r")
            .arg(root.join(part))
            .arg(dir.path())
            .status()
            .unwrap();
        assert!(status.success(), "copying {part}");
    }
    dir
}

#[test]
fn the_external_secrets_option_passes_the_tree_checks_when_enabled() {
    let dir = tree_copy();
    let k = dir.path().join("argocd/bootstrap-apps/kustomization.yaml");
    let text = std::fs::read_to_string(&k).unwrap();
    assert!(
        !text.lines().any(|l| l.trim() == "- secret-store.yaml"),
        "the option is opt-in"
    );
    std::fs::write(&k, format!("{text}  - secret-store.yaml\n")).unwrap();
    let tree = Tree::load(dir.path());
    assert!(
        tree.all_apps().any(|(_, a)| a.name == "secret-store"),
        "the enabled option is part of the tree"
    );
    // Application names are ArgoCD's keys: the option must not collide with the operator's app.
    let mut seen = BTreeSet::new();
    for (_, a) in tree.all_apps() {
        assert!(seen.insert(a.name.clone()), "Application {} twice", a.name);
    }
    assert_clean("paths", check_paths(&tree));
    assert_clean("projects", check_projects(&tree));
    assert_clean("waves", check_sync_waves(&tree));
    assert_clean("namespaces", check_namespaces(&tree));
}

// ------------------------------------------------------------------------------------------
// Several clusters (argocd/clusters): what each managed cluster gets

/// The declared clusters: (name, server, labels).
fn declared_clusters(root: &std::path::Path) -> Vec<(String, String, Value)> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(root.join("argocd/clusters")).unwrap() {
        let file = e.unwrap().path().join("cluster.yaml");
        if file.is_file() {
            let doc = read_yaml(&file).unwrap().remove(0);
            out.push((
                doc["name"].as_str().unwrap().to_string(),
                doc["server"].as_str().unwrap().to_string(),
                doc["labels"].clone(),
            ));
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

fn operator_names(root: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(root.join("infrastructure/operators"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("operator.yaml").is_file())
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

/// The apps named `name` in the tree.
fn apps_named<'a>(tree: &'a Tree, name: &str) -> Vec<&'a gitops_tree::tree::App> {
    tree.all_apps()
        .map(|(_, a)| a)
        .filter(|a| a.name == name)
        .collect()
}

const IN_CLUSTER: &str = "https://kubernetes.default.svc";

#[test]
fn every_managed_cluster_gets_each_per_cluster_app_once_with_its_own_overlay() {
    let root = real_root();
    let tree = Tree::load(&root);
    assert_clean("paths", check_paths(&tree));
    let clusters = declared_clusters(&root);
    let managed: Vec<_> = clusters
        .iter()
        .filter(|c| c.2["capstan.dev/managed"] == "true")
        .collect();
    assert!(
        managed.iter().any(|c| c.1 != IN_CLUSTER),
        "a cluster besides ArgoCD's own is managed: {clusters:?}"
    );
    let operators = operator_names(&root);
    assert!(operators.len() >= 3, "{operators:?}");
    for (cluster, server, labels) in &managed {
        let overlay = labels["ingressOverlay"].as_str().unwrap();
        let mut want: Vec<(String, Option<String>)> = [
            ("security", "infrastructure/base/security".to_string()),
            ("storage", "infrastructure/base/storage".to_string()),
            ("rbac", "infrastructure/base/rbac".to_string()),
            (
                "ingress",
                format!("infrastructure/overlays/{overlay}/ingress"),
            ),
            ("monitoring", "applications/system/monitoring".to_string()),
        ]
        .into_iter()
        .map(|(area, path)| (format!("{area}-{cluster}"), Some(path)))
        .collect();
        want.extend(operators.iter().map(|op| (format!("{op}-{cluster}"), None)));
        for (name, path) in want {
            let found = apps_named(&tree, &name);
            assert_eq!(found.len(), 1, "{name} once, for cluster {cluster}");
            let app = found[0];
            assert_eq!(app.dest_server(), server.as_str(), "{name}");
            assert_eq!(
                app.labels["capstan.dev/cluster"],
                cluster.as_str(),
                "{name}"
            );
            let source = app.sources()[0];
            match path {
                Some(p) => assert_eq!(source["path"], p.as_str(), "{name}"),
                None => assert!(source.get("chart").is_some(), "{name}: {source}"),
            }
        }
    }
    // What runs on the management cluster only is there once, and nowhere else.
    for name in [
        "bootstrap",
        "argocd-configs",
        "argocd",
        "operators",
        "monitoring-management",
        "capstan",
        "dashboard",
    ] {
        let found = apps_named(&tree, name);
        assert_eq!(found.len(), 1, "{name}");
        assert_eq!(found[0].dest_server(), IN_CLUSTER, "{name}");
    }
    let management: Vec<_> = tree
        .all_apps()
        .map(|(_, a)| a)
        .filter(|a| a.name.starts_with("ingress-management-"))
        .collect();
    assert_eq!(
        management.len(),
        1,
        "routes to ArgoCD and the dashboard once"
    );
    assert_eq!(management[0].dest_server(), IN_CLUSTER);
    // An infrastructure overlay is always the one the target cluster's label names: the
    // production overlay reaches no cluster that did not choose it.
    for (_, app) in tree.all_apps() {
        for s in app.sources() {
            let Some(rest) = s["path"]
                .as_str()
                .and_then(|p| p.strip_prefix("infrastructure/overlays/"))
            else {
                continue;
            };
            let overlay = rest.split('/').next().unwrap();
            let (_, _, labels) = clusters
                .iter()
                .find(|c| c.1 == app.dest_server())
                .unwrap_or_else(|| panic!("{}: undeclared cluster", app.name));
            assert_eq!(labels["ingressOverlay"], overlay, "{}", app.name);
        }
    }
}

#[test]
fn an_unmanaged_cluster_gets_nothing() {
    let dir = tree_copy();
    let file = dir.path().join("argocd/clusters/staging/cluster.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let server = read_yaml(&file).unwrap()[0]["server"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(text.contains("capstan.dev/managed: \"true\""), "{text}");
    let before = Tree::load(dir.path());
    assert!(before.all_apps().any(|(_, a)| a.dest_server() == server));
    std::fs::write(
        &file,
        text.replace(
            "capstan.dev/managed: \"true\"",
            "capstan.dev/managed: \"false\"",
        ),
    )
    .unwrap();
    let after = Tree::load(dir.path());
    assert_clean("paths", check_paths(&after));
    let targeting: Vec<&str> = after
        .all_apps()
        .filter(|(_, a)| a.dest_server() == server)
        .map(|(_, a)| a.name.as_str())
        .collect();
    assert!(targeting.is_empty(), "{targeting:?}");
    // The other cluster keeps all it had.
    let count = |t: &Tree| {
        t.all_apps()
            .filter(|(_, a)| a.dest_server() == IN_CLUSTER)
            .count()
    };
    assert_eq!(count(&after), count(&before));
}

#[test]
fn an_overlay_label_naming_a_missing_overlay_is_reported() {
    let dir = tree_copy();
    let file = dir.path().join("argocd/clusters/staging/cluster.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("ingressOverlay: staging", "ingressOverlay: qa"),
    )
    .unwrap();
    assert_reports(
        &check_paths(&Tree::load(dir.path())),
        "Application ingress-staging points at infrastructure/overlays/qa/ingress, which does not exist",
    );
}

#[test]
fn a_crd_user_on_a_cluster_without_its_operator_is_reported() {
    // Operators only on ArgoCD's cluster, everything else still per cluster: the staging
    // cluster's monitoring and ingress would use CRDs nothing installs there.
    let dir = tree_copy();
    let file = dir
        .path()
        .join("infrastructure/operators/applicationset.yaml");
    let text = std::fs::read_to_string(&file).unwrap();
    let local = text.replace(
        "server: '{{.server}}'",
        "server: https://kubernetes.default.svc",
    );
    assert_ne!(local, text);
    std::fs::write(&file, local).unwrap();
    let problems = check_sync_waves(&Tree::load(dir.path()));
    assert_reports(
        &problems,
        "monitoring-staging uses API group monitoring.coreos.com on https://k3s-staging.example.com:6443, but no Application installs its CRDs on that cluster",
    );
    assert_reports(
        &problems,
        "ingress-staging uses API group cert-manager.io on https://k3s-staging.example.com:6443",
    );
}
