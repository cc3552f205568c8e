//! `configurations:`, `transformers:` and `generators:` outside what the conformance cases can
//! show: the refusals (kustomize itself would run or reject these differently depending on
//! plugin flags, so the engine must say "unsupported" and let the binary decide) and the input
//! set. The supported behaviour is covered by the `config-*` and `plugin-*` conformance cases.
#![allow(clippy::unwrap_used)]

use capstan_worker::render::kustomize::{KustomizeError, build};
use capstan_worker::repo_fs::{MemFs, RepoPath};

const DEPLOY: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        image: nginx\n";

fn unsupported(kust: &str, extra: &[(&str, &str)]) -> String {
    let mut fs = MemFs::new()
        .with("kustomization.yaml", kust)
        .with("d.yaml", DEPLOY);
    for (p, t) in extra {
        fs = fs.with(p, t);
    }
    match build(&fs, &RepoPath::root()) {
        Err(KustomizeError::Unsupported { feature, .. }) => feature,
        other => panic!("expected an unsupported-feature refusal, got {other:?}"),
    }
}

#[test]
fn exec_and_container_plugins_are_refused_naming_the_kind() {
    let feature = unsupported(
        "resources:\n- d.yaml\ntransformers:\n- t.yaml\n",
        &[(
            "t.yaml",
            "apiVersion: someteam.example.com/v1\nkind: SedTransformer\nmetadata:\n  name: sed\n  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: ./sed.sh\n",
        )],
    );
    assert_eq!(
        feature,
        "transformer plugin kind SedTransformer (apiVersion someteam.example.com/v1): only builtin plugins are supported"
    );
    let feature = unsupported(
        "resources:\n- d.yaml\ngenerators:\n- |-\n  apiVersion: example.com/v1\n  kind: ChartInflator\n  metadata:\n    name: c\n",
        &[],
    );
    assert!(
        feature.starts_with("generator plugin kind ChartInflator"),
        "{feature}"
    );
}

#[test]
fn builtin_kinds_without_an_implementation_are_refused() {
    let feature = unsupported(
        "resources:\n- d.yaml\ntransformers:\n- |-\n  apiVersion: builtin\n  kind: ValueAddTransformer\n  metadata:\n    name: v\n  value: x\n",
        &[],
    );
    assert_eq!(feature, "transformer plugin kind ValueAddTransformer");
    let feature = unsupported(
        "resources:\n- d.yaml\ngenerators:\n- |-\n  apiVersion: builtin\n  kind: HelmChartInflationGenerator\n  metadata:\n    name: h\n",
        &[],
    );
    assert_eq!(feature, "generator plugin kind HelmChartInflationGenerator");
}

#[test]
fn builtin_settings_the_engine_does_not_implement_are_refused() {
    let feature = unsupported(
        "resources:\n- d.yaml\ntransformers:\n- |-\n  apiVersion: builtin\n  kind: NamespaceTransformer\n  metadata:\n    name: n\n    namespace: x\n  unsetOnly: true\n",
        &[],
    );
    assert_eq!(feature, "NamespaceTransformer unsetOnly");
    let feature = unsupported(
        "resources:\n- d.yaml\nconfigurations:\n- c.yaml\n",
        &[(
            "c.yaml",
            "nameReference:\n- kind: Secret\n  fieldSpecs:\n  - kind: Widget\n    path: spec/items[name=a]/secret\n",
        )],
    );
    assert!(feature.starts_with("field spec path"), "{feature}");
}

#[test]
fn configuration_and_plugin_files_are_inputs() {
    let fs = MemFs::new()
        .with(
            "kustomization.yaml",
            "resources:\n- d.yaml\nconfigurations:\n- c.yaml\ntransformers:\n- t.yaml\ngenerators:\n- g.yaml\n",
        )
        .with("d.yaml", DEPLOY)
        .with("c.yaml", "images:\n- kind: Widget\n  path: spec/image\n")
        .with(
            "t.yaml",
            "apiVersion: builtin\nkind: LabelTransformer\nmetadata:\n  name: l\nlabels:\n  a: b\nfieldSpecs:\n- path: metadata/labels\n  create: true\n",
        )
        .with(
            "g.yaml",
            "apiVersion: builtin\nkind: ConfigMapGenerator\nmetadata:\n  name: g\nfiles:\n- f.txt\n",
        )
        .with("f.txt", "hello\n");
    let out = build(&fs, &RepoPath::root()).unwrap();
    let inputs: Vec<String> = out.inputs.iter().map(|p| p.to_string()).collect();
    for f in ["c.yaml", "t.yaml", "g.yaml", "f.txt"] {
        assert!(inputs.iter().any(|i| i == f), "{f} missing from {inputs:?}");
    }
    assert!(out.yaml.contains("  labels:\n    a: b\n"), "{}", out.yaml);
}

/// kustomize's strategic merge keeps a null written out (`creationTimestamp: null`, which
/// controller-gen writes into every CRD) but drops a field left empty (`labels:`), whichever way
/// the patch comes; a JSON patch before it spells every null out. Expected bytes from
/// `kubectl kustomize` (v5.5.0).
#[test]
fn strategic_merge_keeps_spelled_out_nulls_and_drops_empty_fields() {
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  creationTimestamp: null\n  labels:\n  name: cfg\ndata:\n  a: \"1\"\n";
    let patch = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  b: \"2\"\n";
    let merged = "apiVersion: v1\ndata:\n  a: \"1\"\n  b: \"2\"\nkind: ConfigMap\nmetadata:\n  creationTimestamp: null\n  name: cfg\n";
    let render = |kust: &str, extra: &[(&str, &str)]| {
        let mut fs = MemFs::new().with("kustomization.yaml", kust);
        for (p, t) in extra {
            fs = fs.with(p, t);
        }
        build(&fs, &RepoPath::root()).map(|o| o.yaml)
    };
    let got = render(
        "resources:\n- cm.yaml\npatchesStrategicMerge:\n- p.yaml\n",
        &[("cm.yaml", cm), ("p.yaml", patch)],
    );
    assert_eq!(got.unwrap(), merged);
    let got = render(
        "resources:\n- cm.yaml\ntransformers:\n- |-\n  apiVersion: builtin\n  kind: PatchTransformer\n  metadata:\n    name: p\n  patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: cfg\n    data:\n      b: \"2\"\n",
        &[("cm.yaml", cm)],
    );
    assert_eq!(got.unwrap(), merged);
    // After a JSON patch the empty `labels:` is a spelled-out null as well.
    let got = render(
        "resources:\n- cm.yaml\npatches:\n- target:\n    kind: ConfigMap\n  patch: |-\n    - op: add\n      path: /metadata/annotations\n      value: null\n- path: p.yaml\n",
        &[("cm.yaml", cm), ("p.yaml", patch)],
    );
    assert_eq!(
        got.unwrap(),
        "apiVersion: v1\ndata:\n  a: \"1\"\n  b: \"2\"\nkind: ConfigMap\nmetadata:\n  creationTimestamp: null\n  labels: null\n  name: cfg\n"
    );
}

/// A null behind a key written with escapes: the loader cannot see how it was spelled, so a
/// strategic merge over it is refused rather than guessed.
#[test]
fn strategic_merge_over_a_null_of_unknown_spelling_is_refused() {
    let cm =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  \"a\\u0062\":\n  x: y\n";
    let patch = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  b: \"2\"\n";
    let feature = unsupported(
        "resources:\n- cm.yaml\npatches:\n- path: p.yaml\n",
        &[("cm.yaml", cm), ("p.yaml", patch)],
    );
    assert_eq!(
        feature,
        "strategic merge patch on an object with a null whose spelling is unknown"
    );
}
