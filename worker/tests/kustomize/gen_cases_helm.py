#!/usr/bin/env python3
"""Writes the `helm-*` conformance cases: kustomizations with `helmCharts` (and the legacy
`helmChartInflationGenerator`) over charts written here, each field of kustomize's
HelmChartInflationGenerator combined with other kustomize features. Expected outputs come from
the real kustomize: run `regen.sh helm-...` afterwards (it passes --enable-helm)."""

import os
import shutil

CASES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")

CHART = {
    "Chart.yaml": "apiVersion: v2\nname: web\nversion: 0.1.0\nappVersion: \"1.25\"\n",
    "values.yaml": """replicaCount: 1
image:
  repository: nginx
  tag: "1.25"
  pullPolicy: IfNotPresent
env:
- name: MODE
  value: default
- name: LEVEL
  value: "1"
service:
  type: ClusterIP
  port: 80
configMapName: web-settings
labels:
  tier: frontend
  owner: team-a
monitoring: false
""",
    "templates/_helpers.tpl": """{{- define "web.fullname" -}}
{{ .Release.Name }}-web
{{- end -}}
{{- define "web.labels" -}}
app.kubernetes.io/name: web
app.kubernetes.io/instance: {{ .Release.Name }}
{{- range $k, $v := .Values.labels }}
{{ $k }}: {{ $v | quote }}
{{- end }}
{{- end -}}
""",
    "templates/deployment.yaml": """apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "web.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "web.labels" . | nindent 4 }}
spec:
  replicas: {{ .Values.replicaCount }}
  selector:
    matchLabels:
      app.kubernetes.io/name: web
      app.kubernetes.io/instance: {{ .Release.Name }}
  template:
    metadata:
      labels:
        app.kubernetes.io/name: web
        app.kubernetes.io/instance: {{ .Release.Name }}
    spec:
      containers:
      - name: web
        image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
        imagePullPolicy: {{ .Values.image.pullPolicy }}
        ports:
        - containerPort: {{ .Values.service.port }}
        env:
        {{- range .Values.env }}
        - name: {{ .name }}
          value: {{ .value | quote }}
        {{- end }}
        envFrom:
        - configMapRef:
            name: {{ .Values.configMapName }}
""",
    "templates/service.yaml": """apiVersion: v1
kind: Service
metadata:
  name: {{ include "web.fullname" . }}
  namespace: {{ .Release.Namespace }}
  labels:
    {{- include "web.labels" . | nindent 4 }}
spec:
  type: {{ .Values.service.type }}
  selector:
    app.kubernetes.io/name: web
    app.kubernetes.io/instance: {{ .Release.Name }}
  ports:
  - port: {{ .Values.service.port }}
    targetPort: {{ .Values.service.port }}
""",
    "templates/capabilities.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ include "web.fullname" . }}-caps
data:
  kubeVersion: {{ .Capabilities.KubeVersion.Version | quote }}
  kubeMinor: {{ .Capabilities.KubeVersion.Minor | quote }}
  hasMonitoring: {{ .Capabilities.APIVersions.Has "monitoring.coreos.com/v1" | quote }}
  chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- if or .Values.monitoring (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1/ServiceMonitor") }}
---
apiVersion: monitoring.coreos.com/v1
kind: ServiceMonitor
metadata:
  name: {{ include "web.fullname" . }}
spec:
  selector:
    matchLabels:
      app.kubernetes.io/instance: {{ .Release.Name }}
  endpoints:
  - port: http
{{- end }}
""",
    "templates/hook-job.yaml": """apiVersion: batch/v1
kind: Job
metadata:
  name: {{ include "web.fullname" . }}-migrate
  annotations:
    helm.sh/hook: pre-install,pre-upgrade
    helm.sh/hook-weight: "-5"
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: "{{ .Values.image.repository }}:{{ .Values.image.tag }}"
        args: [migrate]
""",
    "templates/tests/test-connection.yaml": """apiVersion: v1
kind: Pod
metadata:
  name: {{ include "web.fullname" . }}-test
  annotations:
    helm.sh/hook: test
spec:
  restartPolicy: Never
  containers:
  - name: wget
    image: busybox:1.36
    args: [wget, "{{ include "web.fullname" . }}:{{ .Values.service.port }}"]
""",
    "templates/NOTES.txt": "Thanks for installing {{ .Release.Name }}.\n",
    "crds/widgets.yaml": """apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names:
    kind: Widget
    plural: widgets
  scope: Namespaced
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        x-kubernetes-preserve-unknown-fields: true
""",
}

SMALL = {
    "Chart.yaml": "apiVersion: v2\nname: {name}\nversion: {version}\n",
    "values.yaml": "greeting: hello\ncount: 2\n",
    "templates/cm.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}-{{ .Chart.Name }}
  namespace: {{ .Release.Namespace }}
data:
  greeting: {{ .Values.greeting | quote }}
  count: {{ .Values.count | quote }}
  version: {{ .Chart.Version | quote }}
""",
}

DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: plain
spec:
  selector:
    matchLabels: {app: plain}
  template:
    metadata:
      labels: {app: plain}
    spec:
      containers:
      - name: plain
        image: busybox:1.36
"""


def write(root, files, **fmt):
    for rel, text in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text.replace("{name}", fmt.get("name", "")).replace("{version}", fmt.get("version", "")) if fmt else text)


def case(name, kustomization, charts=(("charts/web", CHART, {}),), extra=None):
    root = os.path.join(CASES, name)
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    for where, files, fmt in charts:
        write(os.path.join(root, where), files, **fmt)
    write(root, {"kustomization.yaml": kustomization})
    if extra:
        write(root, extra)


def small(where, name, version="0.2.0"):
    return (where, SMALL, {"name": name, "version": version})


case("helm-basic", """helmCharts:
- name: web
  releaseName: shop
  namespace: store
""")

case("helm-values-inline-override", """helmCharts:
- name: web
  releaseName: shop
  valuesInline:
    replicaCount: 3
    image:
      tag: "1.27"
    env:
    - name: MODE
      value: inline
    labels:
      owner: null
      extra: "yes"
    monitoring: true
""")

case("helm-values-merge", """helmCharts:
- name: web
  releaseName: shop
  valuesMerge: merge
  valuesInline:
    replicaCount: 5
    image:
      tag: "2.0"
      registry: example.com
    labels:
      added: inline
""")

case("helm-values-replace", """helmCharts:
- name: web
  releaseName: shop
  valuesMerge: replace
  valuesInline:
    replicaCount: 2
    labels:
      only: inline
""")

case("helm-values-files", """helmCharts:
- name: web
  releaseName: shop
  valuesFile: values/base.yaml
  additionalValuesFiles:
  - values/prod.yaml
  - values/region.yaml
""", extra={
    "values/base.yaml": "replicaCount: 2\nimage:\n  repository: example.com/web\n  tag: base\n  pullPolicy: Always\nservice:\n  type: ClusterIP\n  port: 8080\nconfigMapName: base-settings\nenv: []\nlabels: {}\n",
    "values/prod.yaml": "replicaCount: 6\nimage:\n  tag: prod\nlabels:\n  env: prod\n",
    "values/region.yaml": "labels:\n  region: eu-west\n",
})

case("helm-values-file-and-inline", """helmCharts:
- name: web
  releaseName: shop
  valuesFile: my-values.yaml
  additionalValuesFiles: [later.yaml]
  valuesInline:
    image:
      tag: inline
""", extra={
    "my-values.yaml": "replicaCount: 4\nimage:\n  repository: example.com/web\n  tag: file\n  pullPolicy: Always\nservice:\n  type: NodePort\n  port: 81\nconfigMapName: from-file\nenv:\n- name: FROM\n  value: file\nlabels:\n  src: file\n",
    "later.yaml": "replicaCount: 9\n",
})

case("helm-crds-hooks-tests", """helmCharts:
- name: web
  releaseName: shop
  namespace: store
  includeCRDs: true
""")

case("helm-skip-tests", """helmCharts:
- name: web
  releaseName: shop
  includeCRDs: true
  skipTests: true
""")

case("helm-skip-hooks", """helmCharts:
- name: web
  releaseName: shop
  skipHooks: true
""")

case("helm-capabilities", """helmCharts:
- name: web
  releaseName: shop
  kubeVersion: "1.29.4"
  apiVersions:
  - monitoring.coreos.com/v1
  - monitoring.coreos.com/v1/ServiceMonitor
""")

case("helm-name-template", """helmCharts:
- name: web
  nameTemplate: templated
  namespace: tmpl
""")

case("helm-with-kustomize-features", """namespace: prod
namePrefix: eu-
nameSuffix: -v1
commonLabels:
  team: checkout
commonAnnotations:
  owner: sre
images:
- name: nginx
  newTag: "1.27.1"
configMapGenerator:
- name: web-settings
  literals:
  - LOG=debug
resources:
- deploy.yaml
helmCharts:
- name: web
  releaseName: shop
  namespace: team-ns
patches:
- target:
    kind: Deployment
    name: shop-web
  patch: |-
    - op: replace
      path: /spec/replicas
      value: 7
- patch: |-
    apiVersion: v1
    kind: Service
    metadata:
      name: shop-web
      namespace: team-ns
    spec:
      type: LoadBalancer
replicas:
- name: plain
  count: 2
""", extra={"deploy.yaml": DEPLOY})

case("helm-in-base-with-overlay", """resources:
- base
namePrefix: staging-
labels:
- pairs:
    env: staging
  includeSelectors: false
patches:
- target:
    kind: ConfigMap
    name: rel-tool
  patch: |-
    - op: add
      path: /data/overlay
      value: "true"
""", charts=(small("base/charts/tool", "tool"),), extra={
    "base/kustomization.yaml": """helmCharts:
- name: tool
  releaseName: rel
  namespace: base-ns
  valuesInline:
    greeting: from-base
secretGenerator:
- name: creds
  literals: [password=hunter2]
""",
})

case("helm-two-entries", """resources:
- deploy.yaml
helmCharts:
- name: tool
  releaseName: one
- name: tool
  releaseName: two
  valuesInline:
    count: 3
- name: web
  releaseName: shop
  skipHooks: true
  skipTests: true
""", charts=(("charts/web", CHART, {}), small("charts/tool", "tool")), extra={"deploy.yaml": DEPLOY})

case("helm-globals-chart-home", """helmGlobals:
  chartHome: vendor/helm
  configHome: /tmp/ignored-helm-config
helmCharts:
- name: tool
  releaseName: vendored
  version: 0.9.0
""", charts=(small("vendor/helm/tool", "tool", "0.9.0"),))

case("helm-versioned-layout", """helmCharts:
- name: tool
  repo: https://charts.example.invalid/stable
  version: 1.2.3
  releaseName: pinned
  valuesInline:
    greeting: versioned
""", charts=(small("charts/tool-1.2.3/tool", "tool", "1.2.3"), small("charts/tool", "tool", "0.0.1")))

case("helm-legacy-generator", """helmChartInflationGenerator:
- chartName: tool
  chartHome: old-charts
  releaseName: legacy
  releaseNamespace: not-passed
  valuesLocal:
    greeting: legacy
  valuesMerge: override
""", charts=(small("old-charts/tool", "tool"),))

case("helm-legacy-and-new", """helmGlobals:
  chartHome: charts
helmCharts:
- name: tool
  releaseName: new
helmChartInflationGenerator:
- chartName: tool
  chartHome: ignored-because-globals-exist
  releaseName: old
  values: old-values.yaml
""", charts=(small("charts/tool", "tool"),), extra={"old-values.yaml": "greeting: old-file\ncount: 8\n"})

case("helm-generator-then-chart", """configMapGenerator:
- name: settings
  literals: [A=1]
helmCharts:
- name: tool
  releaseName: gen
generators:
- |-
  apiVersion: builtin
  kind: ConfigMapGenerator
  metadata:
    name: late
  literals: [B=2]
""", charts=(small("charts/tool", "tool"),))

# Refusals kustomize makes too.
case("helm-error-duplicate-id", """resources:
- cm.yaml
helmCharts:
- name: tool
  releaseName: dup
""", charts=(small("charts/tool", "tool"),), extra={
    "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: dup-tool\n  namespace: default\ndata: {}\n"})

case("helm-error-no-chart", """helmCharts:
- name: absent
  releaseName: x
""", charts=())

case("helm-error-values-merge", """helmCharts:
- name: tool
  releaseName: x
  valuesMerge: deep
""", charts=(small("charts/tool", "tool"),))

case("helm-error-values-outside", """helmCharts:
- name: tool
  releaseName: x
  valuesFile: ../outside-values.yaml
""", charts=(small("charts/tool", "tool"),))

case("helm-error-missing-values-file", """helmCharts:
- name: tool
  releaseName: x
  additionalValuesFiles: [nope.yaml]
""", charts=(small("charts/tool", "tool"),))

case("helm-error-unknown-field", """helmCharts:
- name: tool
  releaseName: x
  valueFiles: [a.yaml]
""", charts=(small("charts/tool", "tool"),))
