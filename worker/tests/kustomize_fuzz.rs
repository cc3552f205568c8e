//! Property test: arbitrary kustomization and resource text never makes the native kustomize
//! engine panic (it may refuse with an error).
#![allow(clippy::unwrap_used)]

use capstan_worker::render::kustomize::build;
use capstan_worker::repo_fs::{MemFs, RepoPath};
use proptest::prelude::*;

const FIELDS: &[&str] = &[
    "resources:\n- r.yaml\n",
    "resources:\n- base\n",
    "namespace: x\n",
    "namePrefix: p-\n",
    "nameSuffix: -s\n",
    "commonLabels:\n  a: b\n",
    "labels:\n- pairs:\n    a: b\n  includeSelectors: true\n",
    "commonAnnotations:\n  a: \"1\"\n",
    "images:\n- name: nginx\n  newTag: v2\n",
    "replicas:\n- name: web\n  count: 2\n",
    "configMapGenerator:\n- name: c\n  literals: [a=1]\n",
    "secretGenerator:\n- name: s\n  literals: [a=1]\n",
    "patches:\n- patch: |-\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata:\n      name: web\n    spec:\n      replicas: 5\n",
    "patches:\n- target:\n    kind: Deployment\n  patch: |-\n    - op: replace\n      path: /spec/replicas\n      value: 4\n",
    "components:\n- comp\n",
    "sortOptions:\n  order: fifo\n",
];

const RESOURCE: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx\n";

fn tree(kust: &str, res: &str) -> MemFs {
    MemFs::new()
        .with("kustomization.yaml", kust)
        .with("r.yaml", res)
        // kustomize's load restrictor refuses files above a kustomization's own folder, so the
        // base holds its own copy of the resource.
        .with("base/kustomization.yaml", "resources:\n- r.yaml\n")
        .with("base/r.yaml", res)
        .with(
            "comp/kustomization.yaml",
            "kind: Component\ncommonLabels:\n  c: d\n",
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn combinations_of_fields_never_panic(picks in proptest::collection::vec(0..FIELDS.len(), 0..6)) {
        let kust: String = picks.iter().map(|i| FIELDS[*i]).collect();
        let _ = build(&tree(&kust, RESOURCE), &RepoPath::root());
    }

    #[test]
    fn mutated_text_never_panics(
        picks in proptest::collection::vec(0..FIELDS.len(), 1..4),
        cut in 0usize..400,
        noise in "[ -~\n]{0,40}",
    ) {
        let kust: String = picks.iter().map(|i| FIELDS[*i]).collect();
        let at = cut.min(kust.len());
        let at = (0..=at).rev().find(|i| kust.is_char_boundary(*i)).unwrap();
        let mutated = format!("{}{}{}", &kust[..at], noise, &kust[at..]);
        let _ = build(&tree(&mutated, RESOURCE), &RepoPath::root());
        let rat = cut.min(RESOURCE.len());
        let bad_res = format!("{}{}{}", &RESOURCE[..rat], noise, &RESOURCE[rat..]);
        let _ = build(&tree(&kust, &bad_res), &RepoPath::root());
    }
}

#[test]
fn remote_and_escaping_references_are_refused() {
    for entry in [
        "https://github.com/org/repo//base?ref=v1",
        "../../outside",
        "/etc/passwd",
    ] {
        let fs = MemFs::new().with("app/kustomization.yaml", format!("resources:\n- {entry}\n"));
        let err = build(&fs, &RepoPath::new("app").unwrap()).unwrap_err();
        assert!(
            err.to_string().contains("app/kustomization.yaml") || err.to_string().contains(entry),
            "{err}"
        );
    }
}

#[test]
fn helm_charts_without_a_helm_are_not_checked_naming_the_file() {
    let fs = MemFs::new().with("k/kustomization.yaml", "helmCharts:\n- name: x\n");
    let err = build(&fs, &RepoPath::new("k").unwrap()).unwrap_err();
    assert!(
        matches!(&err, capstan_worker::render::kustomize::KustomizeError::Unavailable { tool, .. } if tool == "helm"),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .starts_with("not rendered: helm unavailable (k/kustomization.yaml: "),
        "{err}"
    );
}

#[test]
fn inputs_list_every_file_read() {
    let fs = tree(
        "resources:\n- base\nconfigMapGenerator:\n- name: c\n  files: [f.txt]\n",
        RESOURCE,
    )
    .with("f.txt", "x");
    let out = build(&fs, &RepoPath::root()).unwrap();
    let got: Vec<&str> = out.inputs.iter().map(|p| p.as_str()).collect();
    assert_eq!(
        got,
        vec![
            "base/kustomization.yaml",
            "base/r.yaml",
            "f.txt",
            "kustomization.yaml"
        ]
    );
}

#[test]
fn self_including_and_exponential_trees_are_refused() {
    let fs = MemFs::new().with("kustomization.yaml", "resources:\n- .\n");
    let err = build(&fs, &RepoPath::root()).unwrap_err();
    assert!(err.to_string().contains("kustomization.yaml"), "{err}");

    // Each level includes the next one twice: 2^30 visits unless bounded.
    let mut fs = MemFs::new();
    for i in 0..30 {
        fs.insert(
            &format!("l{i}/kustomization.yaml"),
            format!("resources:\n- ../l{}\n- ../l{}\n", i + 1, i + 1),
        )
        .unwrap();
    }
    fs.insert("l30/kustomization.yaml", "resources: []\n")
        .unwrap();
    let err = build(&fs, &RepoPath::new("l0").unwrap()).unwrap_err();
    assert!(
        err.to_string().contains("kustomizations in one build"),
        "{err}"
    );
}

#[test]
fn unimplemented_patch_directives_are_unsupported() {
    let fs = MemFs::new()
        .with("kustomization.yaml", "resources:\n- c.yaml\npatches:\n- path: p.yaml\n")
        .with("c.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  finalizers: [a, b]\n")
        .with("p.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  $deleteFromPrimitiveList/finalizers: [a]\n");
    let err = build(&fs, &RepoPath::root()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "unsupported kustomize feature: strategic merge directive $deleteFromPrimitiveList/finalizers at p.yaml"
    );
}
