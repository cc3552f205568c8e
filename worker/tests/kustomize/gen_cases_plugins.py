#!/usr/bin/env python3
"""Writes the input trees of the conformance cases for `configurations:` and the builtin plugins
of `transformers:` / `generators:` (expected files come from regen.sh, i.e. from kustomize).
Usage: regen.sh $(gen_cases_plugins.py)  (rewrites the inputs of the cases below, prints their
names)."""
import gen_cases as base

# Only the cases below: the main generator's own cases stay untouched.
base.CASES.clear()
case = base.case
res = base.res


# Flow style keeps this apart from gen_cases.DEPLOY (a different, smaller Deployment).
DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata: {name: web, labels: {app: web}}
spec:
  replicas: 1
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: "nginx:1.25", envFrom: [{configMapRef: {name: settings}}]}
"""

SERVICE = """apiVersion: v1
kind: Service
metadata: {name: web}
spec: {selector: {app: web}, ports: [{port: 80}]}
"""

# A custom resource that refers to a ConfigMap, a Secret and a Service by name, runs an image,
# has a size and a selector and a URL built from a var.
APP = """apiVersion: example.com/v1
kind: MyApp
metadata:
  name: shop
spec:
  configMapName: settings
  secrets:
  - creds
  backend:
    serviceName: web
  image: shop/api:1.0
  size: 1
  url: http://$(WEB_SERVICE):80/
  targetNamespace: none
"""

APP_BARE = """apiVersion: example.com/v1
kind: MyApp
metadata:
  name: bare
spec:
  image: nginx:1.0
"""

GEN = """configMapGenerator:
- name: settings
  literals:
  - MODE=prod
secretGenerator:
- name: creds
  literals:
  - token=abc
"""


NAMEREF = """nameReference:
- kind: ConfigMap
  version: v1
  fieldSpecs:
  - kind: MyApp
    path: spec/configMapName
- kind: Secret
  version: v1
  fieldSpecs:
  - kind: MyApp
    path: spec/secrets
- kind: Service
  version: v1
  fieldSpecs:
  - kind: MyApp
    group: example.com
    path: spec/backend/serviceName
"""

# --- configurations ---------------------------------------------------------------------------

case("config-nameref-crd-generated", {
    "kustomization.yaml": res("app.yaml", "deploy.yaml", "svc.yaml") + GEN
    + "namePrefix: p-\nconfigurations:\n- nameref.yaml\n",
    "app.yaml": APP, "deploy.yaml": DEPLOY, "svc.yaml": SERVICE, "nameref.yaml": NAMEREF})

case("config-nameref-from-base", {
    "kustomization.yaml": "resources:\n- base\nnamePrefix: prod-\nnamespace: shop\n",
    "base/kustomization.yaml": res("app.yaml", "svc.yaml") + GEN + "configurations:\n- conf/nameref.yaml\n",
    "base/app.yaml": APP, "base/svc.yaml": SERVICE, "base/conf/nameref.yaml": NAMEREF})

case("config-commonlabels-crd-create", {
    "kustomization.yaml": res("app.yaml", "bare.yaml", "deploy.yaml")
    + "commonLabels:\n  team: shop\nconfigurations:\n- labels.yaml\n",
    "app.yaml": APP + "  selector:\n    matchLabels:\n      app: shop\n",
    "bare.yaml": APP_BARE, "deploy.yaml": DEPLOY,
    "labels.yaml": """commonLabels:
- kind: MyApp
  path: spec/selector/matchLabels
  create: true
- kind: MyApp
  path: spec/template/metadata/labels
""",
})

case("config-labels-templates-annotations", {
    "kustomization.yaml": res("app.yaml", "deploy.yaml")
    + """labels:
- pairs:
    tier: front
  includeTemplates: true
- pairs:
    plain: "yes"
commonAnnotations:
  owner: ops
configurations:
- cfg.yaml
""",
    "app.yaml": APP + "  podTemplate:\n    metadata:\n      labels:\n        x: y\n",
    "deploy.yaml": DEPLOY,
    "cfg.yaml": """templateLabels:
- kind: MyApp
  path: spec/podTemplate/metadata/labels
  create: true
labels:
- kind: MyApp
  path: spec/extraLabels
  create: true
commonAnnotations:
- kind: MyApp
  path: spec/podTemplate/metadata/annotations
  create: true
""",
})

case("config-images-crd", {
    "kustomization.yaml": res("app.yaml", "bare.yaml", "deploy.yaml")
    + """images:
- name: shop/api
  newName: registry.local/shop/api
  newTag: "2.0"
- name: nginx
  digest: sha256:0123456789abcdef
configurations:
- images.yaml
""",
    "app.yaml": APP, "bare.yaml": APP_BARE, "deploy.yaml": DEPLOY,
    "images.yaml": "images:\n- kind: MyApp\n  path: spec/image\n- kind: MyApp\n  path: spec/missing/image\n  create: true\n",
})

case("config-varreference-crd", {
    "kustomization.yaml": res("app.yaml", "svc.yaml")
    + """namePrefix: x-
vars:
- name: WEB_SERVICE
  objref:
    kind: Service
    name: web
    apiVersion: v1
configurations:
- vars.yaml
""",
    "app.yaml": APP + "  notes:\n    a: $(WEB_SERVICE)\n", "svc.yaml": SERVICE,
    "vars.yaml": "varReference:\n- kind: MyApp\n  path: spec/url\n- kind: MyApp\n  path: spec/notes\n",
})

case("config-namespace-prefix-replicas", {
    "kustomization.yaml": res("app.yaml", "deploy.yaml")
    + """namespace: shop
namePrefix: a-
nameSuffix: -z
replicas:
- name: shop
  count: 3
- name: web
  count: 2
configurations:
- cfg.yaml
""",
    "app.yaml": APP + "  scaling:\n    ref: shop-scaler\n", "deploy.yaml": DEPLOY,
    "cfg.yaml": """namespace:
- kind: MyApp
  path: spec/targetNamespace
- kind: MyApp
  path: spec/watch/namespace
  create: true
namePrefix:
- kind: MyApp
  path: spec/scaling/ref
nameSuffix:
- kind: MyApp
  path: spec/scaling/ref
replicas:
- kind: MyApp
  path: spec/size
""",
})

case("config-two-files-merge", {
    "kustomization.yaml": res("app.yaml") + GEN + "configurations:\n- a.yaml\n- b.yaml\n",
    "app.yaml": APP,
    "a.yaml": "nameReference:\n- kind: ConfigMap\n  fieldSpecs:\n  - kind: MyApp\n    path: spec/configMapName\n",
    "b.yaml": "nameReference:\n- kind: ConfigMap\n  fieldSpecs:\n  - kind: MyApp\n    path: spec/configMapName\n- kind: Secret\n  fieldSpecs:\n  - kind: MyApp\n    path: spec/secrets\n",
})

case("config-unknown-key-error", {
    "kustomization.yaml": res("app.yaml") + "configurations:\n- bad.yaml\n",
    "app.yaml": APP, "bad.yaml": "nameReferences:\n- kind: ConfigMap\n",
})

case("config-file-outside-root-error", {
    "kustomization.yaml": "resources:\n- app\n",
    "app/kustomization.yaml": res("app.yaml") + "configurations:\n- ../nameref.yaml\n",
    "app/app.yaml": APP, "nameref.yaml": NAMEREF})

# --- transformers -----------------------------------------------------------------------------

LABEL_T = """apiVersion: builtin
kind: LabelTransformer
metadata:
  name: labels
labels:
  team: shop
fieldSpecs:
- path: metadata/labels
  create: true
- kind: MyApp
  path: spec/selector/matchLabels
  create: true
- kind: Deployment
  path: spec/template/metadata/labels
  create: false
"""

case("plugin-label-custom-fieldspecs", {
    "kustomization.yaml": res("app.yaml", "deploy.yaml") + "transformers:\n- label.yaml\n",
    "app.yaml": APP, "deploy.yaml": DEPLOY, "label.yaml": LABEL_T})

case("plugin-inline-and-file-order", {
    # The file entry is listed first, but kustomize runs inline entries before path entries:
    # the patch (file) runs last and wins.
    "kustomization.yaml": res("deploy.yaml") + """transformers:
- patch.yaml
- |-
  apiVersion: builtin
  kind: LabelTransformer
  metadata:
    name: inline-labels
  labels:
    stage: from-inline
  fieldSpecs:
  - path: metadata/labels
    create: true
""",
    "deploy.yaml": DEPLOY,
    "patch.yaml": """apiVersion: builtin
kind: PatchTransformer
metadata:
  name: stage-patch
patch: |-
  - op: add
    path: /metadata/labels/stage
    value: from-file
target:
  kind: Deployment
""",
})

case("plugin-after-own-fields", {
    "kustomization.yaml": res("deploy.yaml", "svc.yaml")
    + "namePrefix: own-\ncommonLabels:\n  a: b\ntransformers:\n- prefix.yaml\n",
    "deploy.yaml": DEPLOY, "svc.yaml": SERVICE,
    "prefix.yaml": """apiVersion: builtin
kind: PrefixSuffixTransformer
metadata:
  name: ps
prefix: plugin-
suffix: -v1
fieldSpecs:
- path: metadata/name
""",
})

case("plugin-prefix-kind-only", {
    "kustomization.yaml": res("deploy.yaml", "svc.yaml", "app.yaml") + "transformers:\n- prefix.yaml\n",
    "deploy.yaml": DEPLOY, "svc.yaml": SERVICE, "app.yaml": APP,
    "prefix.yaml": """apiVersion: builtin
kind: PrefixTransformer
metadata:
  name: p
prefix: dep-
fieldSpecs:
- kind: Deployment
  path: metadata/name
- kind: MyApp
  path: spec/backend/serviceName
""",
})

case("plugin-patch-targets", {
    "kustomization.yaml": res("deploy.yaml", "svc.yaml", "app.yaml") + "transformers:\n- patches.yaml\n",
    "deploy.yaml": DEPLOY, "svc.yaml": SERVICE, "app.yaml": APP,
    "smp.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: NodePort\n",
    "json.yaml": "- op: replace\n  path: /spec/size\n  value: 5\n",
    "patches.yaml": """apiVersion: builtin
kind: PatchTransformer
metadata:
  name: by-label
patch: |-
  apiVersion: apps/v1
  kind: Deployment
  metadata:
    name: any
  spec:
    replicas: 4
target:
  kind: Deployment
  labelSelector: app=web
---
apiVersion: builtin
kind: PatchStrategicMergeTransformer
metadata:
  name: smp
paths:
- smp.yaml
---
apiVersion: builtin
kind: PatchJson6902Transformer
metadata:
  name: json
target:
  group: example.com
  version: v1
  kind: MyApp
  name: shop
path: json.yaml
""",
})

case("plugin-namespace-images-replicas", {
    "kustomization.yaml": res("deploy.yaml", "app.yaml", "ns.yaml") + "transformers:\n- t.yaml\n",
    "deploy.yaml": DEPLOY, "app.yaml": APP,
    "ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: old\n",
    "t.yaml": """apiVersion: builtin
kind: NamespaceTransformer
metadata:
  name: ns
  namespace: shop
fieldSpecs:
- path: metadata/name
  kind: Namespace
  create: true
- path: spec/targetNamespace
  kind: MyApp
---
apiVersion: builtin
kind: ImageTagTransformer
metadata:
  name: img
imageTag:
  name: shop/api
  newTag: "3.1"
fieldSpecs:
- path: spec/image
  kind: MyApp
---
apiVersion: builtin
kind: ImageTagTransformer
metadata:
  name: img2
imageTag:
  name: nginx
  newName: mirror/nginx
---
apiVersion: builtin
kind: ReplicaCountTransformer
metadata:
  name: rc
replica:
  name: shop
  count: 7
fieldSpecs:
- path: spec/size
  kind: MyApp
  create: true
""",
})

case("plugin-annotations-replacement", {
    "kustomization.yaml": res("deploy.yaml", "svc.yaml")
    + """transformers:
- |-
  apiVersion: builtin
  kind: AnnotationsTransformer
  metadata:
    name: notes
  annotations:
    note: hello
  fieldSpecs:
  - path: metadata/annotations
    create: true
    kind: Service
- |-
  apiVersion: builtin
  kind: ReplacementTransformer
  metadata:
    name: rep
  replacements:
  - source:
      kind: Service
      name: web
      fieldPath: metadata.name
    targets:
    - select:
        kind: Deployment
      fieldPaths:
      - spec.template.metadata.annotations.svc
      options:
        create: true
""",
    "deploy.yaml": DEPLOY, "svc.yaml": SERVICE,
})

case("plugin-transformers-directory", {
    "kustomization.yaml": res("deploy.yaml") + "transformers:\n- tdir\n",
    "deploy.yaml": DEPLOY,
    "tdir/kustomization.yaml": "resources:\n- label.yaml\ncommonAnnotations:\n  ignored: here\n",
    "tdir/label.yaml": """apiVersion: builtin
kind: LabelTransformer
metadata:
  name: from-dir
labels:
  dir: "true"
fieldSpecs:
- path: metadata/labels
  create: true
""",
})

case("plugin-in-base-then-overlay", {
    "kustomization.yaml": "resources:\n- base\nnamePrefix: o-\ncommonLabels:\n  layer: overlay\n",
    "base/kustomization.yaml": res("deploy.yaml") + "transformers:\n- label.yaml\n",
    "base/deploy.yaml": DEPLOY,
    "base/label.yaml": LABEL_T,
})

case("plugin-hash-transformer", {
    "kustomization.yaml": res("deploy.yaml") + GEN + """transformers:
- |-
  apiVersion: builtin
  kind: HashTransformer
  metadata:
    name: hash
""",
    "deploy.yaml": DEPLOY,
})

case("plugin-sort-order-error", {
    "kustomization.yaml": res("deploy.yaml") + """transformers:
- |-
  apiVersion: builtin
  kind: SortOrderTransformer
  metadata:
    name: sort
  sortOptions:
    order: fifo
""",
    "deploy.yaml": DEPLOY,
})

case("plugin-file-outside-root-error", {
    "kustomization.yaml": "resources:\n- app\n",
    "app/kustomization.yaml": res("deploy.yaml") + "transformers:\n- ../label.yaml\n",
    "app/deploy.yaml": DEPLOY, "label.yaml": LABEL_T})

# --- generators -------------------------------------------------------------------------------

case("plugin-generators", {
    "kustomization.yaml": res("deploy.yaml") + """generatorOptions:
  labels:
    global: not-applied-to-plugins
generators:
- gen.yaml
- |-
  apiVersion: builtin
  kind: SecretGenerator
  metadata:
    name: inline-secret
    namespace: shop
  type: kubernetes.io/tls
  literals:
  - tls.crt=CERT
  - tls.key=KEY
""",
    "deploy.yaml": DEPLOY,
    "app.env": "A=1\nB=two\n",
    "gen.yaml": """apiVersion: builtin
kind: ConfigMapGenerator
metadata:
  name: settings
envs:
- app.env
literals:
- MODE=prod
options:
  labels:
    generated: "yes"
  annotations:
    note: x
---
apiVersion: builtin
kind: ConfigMapGenerator
metadata:
  name: fixed
literals:
- K=V
options:
  disableNameSuffixHash: true
""",
})

case("plugin-generator-behavior-merge", {
    "kustomization.yaml": "resources:\n- base\ngenerators:\n- gen.yaml\n",
    "base/kustomization.yaml": res("deploy.yaml") + "configMapGenerator:\n- name: settings\n  literals:\n  - MODE=dev\n  - KEEP=1\n",
    "base/deploy.yaml": DEPLOY,
    "gen.yaml": """apiVersion: builtin
kind: ConfigMapGenerator
metadata:
  name: settings
behavior: merge
literals:
- MODE=prod
""",
})


if __name__ == "__main__":
    names = list(base.CASES)
    base.write()
    print(" ".join(names))
