//! End-to-end behaviour of the policy engine over rendered apps.
#![allow(clippy::unwrap_used)]

use capstan_worker::objects::parse_stream;
use capstan_worker::policy::findings::{Report, Severity};
use capstan_worker::policy::trace::SourceFile;
use capstan_worker::policy::{AppInput, PolicyEngine, PolicySources};

pub const GOOD: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny, namespace: shop}
spec: {podSelector: {}, policyTypes: [Ingress]}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext: {runAsNonRoot: true, seccompProfile: {type: RuntimeDefault}}
      containers:
      - name: web
        image: ghcr.io/example/web:1.4.2
        securityContext:
          allowPrivilegeEscalation: false
          capabilities: {drop: [ALL]}
        resources:
          requests: {cpu: 50m, memory: 64Mi}
          limits: {cpu: 500m, memory: 128Mi}
        readinessProbe: {httpGet: {path: /ready, port: 8080}}
        livenessProbe: {httpGet: {path: /live, port: 8080}}
"#;

pub fn app(name: &str, yaml: &str) -> AppInput {
    AppInput {
        name: name.into(),
        objects: parse_stream(yaml, "rendered.yaml").unwrap(),
        ..Default::default()
    }
}

fn engine() -> PolicyEngine {
    PolicyEngine::new(&PolicySources::default()).unwrap()
}

/// The shipped engine with `.capstan.yaml` letting annotations waive `rules`.
fn waiving(rules: &[&str]) -> PolicyEngine {
    let mut sources = PolicySources::default();
    sources.settings.waivable = Some(rules.iter().map(|r| r.to_string()).collect());
    PolicyEngine::new(&sources).unwrap()
}

fn rules(r: &Report, sev: Severity) -> Vec<String> {
    r.findings
        .iter()
        .filter(|f| f.severity == sev)
        .map(|f| f.rule.clone())
        .collect()
}

#[test]
fn a_well_formed_app_passes_every_layer() {
    let r = engine().check(&[app("shop", GOOD)]).unwrap();
    assert_eq!(
        r.findings,
        vec![],
        "{}",
        capstan_worker::policy::format::text(&r)
    );
    assert_eq!(r.objects_checked, 3);
}

#[test]
fn the_shipped_bundle_reports_a_bad_deployment() {
    let bad = GOOD.replace("ghcr.io/example/web:1.4.2", "nginx").replace(
        "allowPrivilegeEscalation: false",
        "allowPrivilegeEscalation: true",
    );
    let r = engine().check(&[app("shop", &bad)]).unwrap();
    let deny = rules(&r, Severity::Deny);
    assert_eq!(
        deny,
        vec!["image-tag", "pss-privilege-escalation"],
        "{}",
        capstan_worker::policy::format::text(&r)
    );
    assert!(!r.passed());
}

fn with_files(mut a: AppInput, files: &[(&str, &str)]) -> AppInput {
    a.files = files
        .iter()
        .map(|(p, t)| SourceFile {
            path: p.to_string(),
            text: t.to_string(),
        })
        .collect();
    a
}

fn finding<'a>(r: &'a Report, rule: &str) -> &'a capstan_worker::policy::findings::Finding {
    r.findings
        .iter()
        .find(|f| f.rule == rule)
        .unwrap_or_else(|| {
            panic!(
                "no {rule} finding in\n{}",
                capstan_worker::policy::format::text(r)
            )
        })
}

const NS: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\n";

#[test]
fn schema_unknown_fields_deny_and_point_at_the_line() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: shop\ndata:\n  a: b\nbinaryDate: {}\n";
    let a = with_files(
        app("shop", &format!("{NS}{cm}")),
        &[
            ("shop/kustomization.yaml", "resources: [cm.yaml]\n"),
            ("shop/cm.yaml", cm),
        ],
    );
    let r = engine().check(&[a]).unwrap();
    let f = finding(&r, "schema");
    assert_eq!(f.severity, Severity::Deny);
    assert_eq!(f.field.as_deref(), Some("binaryDate"));
    assert_eq!(f.location.as_ref().unwrap().to_string(), "shop/cm.yaml:8");
    let good = engine()
        .check(&[app(
            "shop",
            &format!("{NS}{}", cm.replace("binaryDate", "binaryData")),
        )])
        .unwrap();
    assert!(
        good.findings.is_empty(),
        "{}",
        capstan_worker::policy::format::text(&good)
    );
}

#[test]
fn unknown_kinds_warn_once_and_crds_in_the_input_are_used() {
    let widget = "apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w, namespace: shop}\nspec: {size: 1}\n";
    let r = engine()
        .check(&[app(
            "shop",
            &format!("{NS}{widget}---\n{}", widget.replace("name: w", "name: w2")),
        )])
        .unwrap();
    assert_eq!(rules(&r, Severity::Warn), vec!["unknown-kind"]);
    let crd = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata: {name: widgets.example.com}\nspec:\n  group: example.com\n  scope: Namespaced\n  names: {kind: Widget, plural: widgets}\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema:\n        type: object\n        properties:\n          spec:\n            type: object\n            properties:\n              size: {type: string}\n";
    let r = engine()
        .check(&[app("shop", &format!("{NS}{crd}---\n{widget}"))])
        .unwrap();
    let f = finding(&r, "schema");
    assert_eq!(f.field.as_deref(), Some("spec.size"));
    assert!(f.message.contains("expected a string"), "{}", f.message);
    let ok = engine()
        .check(&[app(
            "shop",
            &format!("{NS}{crd}---\n{}", widget.replace("size: 1", "size: '1'")),
        )])
        .unwrap();
    assert!(
        ok.findings.is_empty(),
        "{}",
        capstan_worker::policy::format::text(&ok)
    );
}

#[test]
fn shipped_crd_schemas_validate_argocd_applications() {
    let good = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: shop, namespace: argocd}\nspec:\n  project: apps\n  source: {repoURL: https://example.com/repo.git, path: shop, targetRevision: main}\n  destination: {server: https://kubernetes.default.svc, namespace: shop}\n  syncPolicy: {automated: {prune: true, selfHeal: true}, syncOptions: [CreateNamespace=true]}\n";
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata: {name: argocd}\n---\n";
    let r = engine()
        .check(&[app("apps", &format!("{ns}{good}"))])
        .unwrap();
    assert!(
        r.findings.is_empty(),
        "{}",
        capstan_worker::policy::format::text(&r)
    );
    let bad = good.replace("selfHeal", "selfHealing");
    let r = engine()
        .check(&[app("apps", &format!("{ns}{bad}"))])
        .unwrap();
    assert_eq!(
        finding(&r, "schema").field.as_deref(),
        Some("spec.syncPolicy.automated.selfHealing")
    );
}

#[test]
fn removed_apis_deny_and_deprecated_ones_warn_for_the_target_version() {
    let pdb = "apiVersion: policy/v1beta1\nkind: PodDisruptionBudget\nmetadata: {name: p, namespace: shop}\nspec: {minAvailable: 1}\n";
    let r = engine()
        .check(&[app("shop", &format!("{NS}{pdb}"))])
        .unwrap();
    assert_eq!(finding(&r, "removed-api").severity, Severity::Deny);
    let ok = engine()
        .check(&[app(
            "shop",
            &format!("{NS}{}", pdb.replace("v1beta1", "v1")),
        )])
        .unwrap();
    assert!(
        ok.findings.is_empty(),
        "{}",
        capstan_worker::policy::format::text(&ok)
    );
    // The same object against an older cluster is only deprecated.
    let old = PolicyEngine::new(&PolicySources {
        settings: capstan_worker::settings::RepoSettings::parse(
            "policy: {targetVersion: '1.22'}\n",
        )
        .unwrap()
        .policy,
        files: vec![],
    })
    .unwrap();
    let r = old.check(&[app("shop", &format!("{NS}{pdb}"))]).unwrap();
    assert_eq!(finding(&r, "deprecated-api").severity, Severity::Warn);
}

const INGRESS: &str = "apiVersion: networking.k8s.io/v1\nkind: Ingress\nmetadata: {name: NAME, namespace: shop}\nspec:\n  tls: [{hosts: [shop.example.com], secretName: t}]\n  rules:\n  - host: shop.example.com\n    http:\n      paths:\n      - {path: PATH, pathType: Prefix, backend: {service: {name: web, port: {number: 80}}}}\n";

#[test]
fn cross_app_duplicates_and_ingress_conflicts() {
    let one = INGRESS.replace("NAME", "a").replace("PATH", "/");
    let two = INGRESS.replace("NAME", "b").replace("PATH", "/");
    let r = engine()
        .check(&[
            app("ns", NS.trim_end_matches("---\n")),
            app("one", &one),
            app("two", &format!("{two}---\n{one}")),
        ])
        .unwrap();
    let dup = finding(&r, "duplicate-object");
    assert_eq!(dup.app, "two");
    assert!(dup.message.contains("app one"), "{}", dup.message);
    let conflict = finding(&r, "ingress-conflict");
    assert!(
        conflict.message.contains("shop.example.com"),
        "{}",
        conflict.message
    );
    // Different paths, and the same object on another cluster, are fine.
    let other_path = INGRESS.replace("NAME", "b").replace("PATH", "/api");
    let mut elsewhere = app("two", &format!("{other_path}---\n{one}"));
    elsewhere.cluster = Some("https://other.example.com".into());
    let r = engine()
        .check(&[
            app("ns", NS.trim_end_matches("---\n")),
            app("one", &one),
            elsewhere,
        ])
        .unwrap();
    assert!(
        r.findings.is_empty(),
        "{}",
        capstan_worker::policy::format::text(&r)
    );
}

#[test]
fn namespaces_must_be_created_by_some_app() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: shop}\n";
    let r = engine().check(&[app("shop", cm)]).unwrap();
    assert_eq!(
        finding(&r, "namespace-not-created").severity,
        Severity::Deny
    );
    let mut created = app("shop", cm);
    created.destination_namespace = Some("shop".into());
    created.creates_namespace = true;
    assert!(engine().check(&[created]).unwrap().findings.is_empty());
    let argo = "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata: {name: shop, namespace: kube-system}\nspec:\n  project: apps\n  source: {repoURL: https://example.com/r.git, path: shop}\n  destination: {server: https://kubernetes.default.svc, namespace: shop}\n  syncPolicy: {syncOptions: [CreateNamespace=true]}\n";
    let r = engine()
        .check(&[app("root", argo), app("shop", cm)])
        .unwrap();
    assert!(
        r.findings.is_empty(),
        "{}",
        capstan_worker::policy::format::text(&r)
    );
}

const APPSET: &str = "apiVersion: argoproj.io/v1alpha1\nkind: ApplicationSet\nmetadata: {name: previews, namespace: kube-system}\nspec:\n  generators:\n  - pullRequest: {github: {owner: o, repo: r}}\n  template:\n    metadata: {name: 'pr-{{number}}'}\n    spec:\n      project: PROJECT\n      source: {repoURL: https://example.com/r.git, path: app, targetRevision: '{{head_sha}}'}\n      destination: {server: https://kubernetes.default.svc, namespace: DEST}\n";

#[test]
fn pull_request_applications_stay_out_of_argocd_and_the_default_project() {
    let bad = APPSET
        .replace("PROJECT", "default")
        .replace("DEST", "argocd");
    let r = engine().check(&[app("apps", &bad)]).unwrap();
    let deny = rules(&r, Severity::Deny);
    assert_eq!(
        deny,
        vec!["pr-app-default-project", "pr-app-in-argocd-namespace"]
    );
    let good = APPSET
        .replace("PROJECT", "previews")
        .replace("DEST", "'pr-{{number}}'");
    let r = engine().check(&[app("apps", &good)]).unwrap();
    assert!(
        r.findings.is_empty(),
        "{}",
        capstan_worker::policy::format::text(&r)
    );
}

#[test]
fn app_projects_without_wildcards() {
    let proj = "apiVersion: argoproj.io/v1alpha1\nkind: AppProject\nmetadata: {name: apps, namespace: kube-system}\nspec:\n  sourceRepos: [https://example.com/r.git]\n  sourceNamespaces: [SRC]\n  destinations: [{server: https://kubernetes.default.svc, namespace: DEST}]\n";
    let r = engine()
        .check(&[app("p", &proj.replace("SRC", "'*'").replace("DEST", "'*'"))])
        .unwrap();
    let fields: Vec<_> = r
        .findings
        .iter()
        .filter(|f| f.rule == "appproject-wildcard")
        .map(|f| f.field.clone().unwrap())
        .collect();
    assert_eq!(
        fields,
        vec!["spec.destinations[0].namespace", "spec.sourceNamespaces[0]"]
    );
    let r = engine()
        .check(&[app(
            "p",
            &proj.replace("SRC", "team-a").replace("DEST", "team-a-*"),
        )])
        .unwrap();
    assert!(
        r.findings.is_empty(),
        "{}",
        capstan_worker::policy::format::text(&r)
    );
}

#[test]
fn exceptions_are_applied_and_reported() {
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: lb\n  namespace: shop\n  annotations:\n    capstan.io/ignore: service-exposure\n    capstan.io/ignore-reason: the public entry point\nspec: {type: LoadBalancer, ports: [{port: 443}]}\n";
    let r = waiving(&["service-exposure"])
        .check(&[app("shop", &format!("{NS}{svc}"))])
        .unwrap();
    assert!(
        r.findings.is_empty(),
        "{}",
        capstan_worker::policy::format::text(&r)
    );
    assert_eq!(r.suppressed.len(), 1);
    assert_eq!(r.suppressed[0].finding.rule, "service-exposure");
    assert!(capstan_worker::policy::format::text(&r).contains("the public entry point"));
    let no_reason = svc.replace("    capstan.io/ignore-reason: the public entry point\n", "");
    let r = waiving(&["service-exposure"])
        .check(&[app("shop", &format!("{NS}{no_reason}"))])
        .unwrap();
    assert_eq!(
        rules(&r, Severity::Deny),
        vec!["exception-without-reason", "service-exposure"]
    );
    // Without `policy.waivable` listing the rule, the annotation waives nothing and says why.
    let r = engine()
        .check(&[app("shop", &format!("{NS}{svc}"))])
        .unwrap();
    assert_eq!(rules(&r, Severity::Deny), vec!["service-exposure"]);
    assert_eq!(rules(&r, Severity::Warn), vec!["waiver-not-waivable"]);
    assert!(r.suppressed.is_empty());
}

#[test]
fn findings_point_at_the_overlay_patch_that_set_the_field() {
    let base = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: ghcr.io/example/web:1.0.0\n";
    let patch = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: ghcr.io/example/web:latest\n";
    let rendered = "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: staging-web, namespace: shop}\nspec:\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: web\n        image: ghcr.io/example/web:latest\n";
    let a = with_files(
        app("shop", &format!("{NS}{rendered}")),
        &[
            (
                "apps/shop/base/kustomization.yaml",
                "resources: [deployment.yaml]\n",
            ),
            ("apps/shop/base/deployment.yaml", base),
            (
                "apps/shop/overlays/staging/kustomization.yaml",
                "namespace: shop\nnamePrefix: staging-\nresources: [../../base]\npatches:\n  - path: image.yaml\n",
            ),
            ("apps/shop/overlays/staging/image.yaml", patch),
        ],
    );
    let r = engine().check(&[a]).unwrap();
    let f = finding(&r, "image-tag");
    assert_eq!(
        f.location.as_ref().unwrap().to_string(),
        "apps/shop/overlays/staging/image.yaml:10"
    );
    // A missing field points at its deepest parent in the resource that defines the object, not
    // at a patch that happens to reach the same parent.
    let f = finding(&r, "deployment-readiness-probe");
    assert_eq!(
        f.location.as_ref().unwrap().to_string(),
        "apps/shop/base/deployment.yaml:9"
    );
}

#[test]
fn reports_render_as_text_json_sarif_and_markdown() {
    use capstan_worker::policy::format;
    let svc = "apiVersion: v1\nkind: Service\nmetadata:\n  name: lb\n  namespace: shop\n  annotations: {capstan.io/ignore: service-exposure, capstan.io/ignore-reason: public}\nspec: {type: LoadBalancer, ports: [{port: 443}]}\n";
    let bad = GOOD.replace("ghcr.io/example/web:1.4.2", "nginx");
    let a = with_files(
        app("shop", &format!("{bad}---\n{svc}")),
        &[("shop/all.yaml", &format!("{bad}---\n{svc}"))],
    );
    let r = waiving(&["service-exposure"]).check(&[a]).unwrap();
    assert_eq!(r.deny_count(), 1);

    let text = format::text(&r);
    assert!(text.contains("app shop: 1 deny, 0 warn"), "{text}");
    assert!(
        text.contains("at shop/all.yaml:22 (spec.template.spec.containers[0].image)"),
        "{text}"
    );

    let json: serde_json::Value = serde_json::from_str(&format::json(&r)).unwrap();
    assert_eq!(json["findings"][0]["rule"], "image-tag");
    assert_eq!(json["findings"][0]["severity"], "deny");
    assert_eq!(json["suppressed"][0]["reason"], "public");

    let sarif: serde_json::Value = serde_json::from_str(&format::sarif(&r)).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["level"], "error");
    assert_eq!(
        results[0]["locations"][0]["physicalLocation"]["region"]["startLine"],
        22
    );
    assert_eq!(results[1]["suppressions"][0]["justification"], "public");

    let md = format::markdown(&r);
    assert!(md.starts_with("**Policy check failed**"), "{md}");
    assert!(md.contains("[image-tag](https://"), "{md}");
    assert!(md.contains("Exceptions applied (1)"), "{md}");
}
