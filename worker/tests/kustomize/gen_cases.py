#!/usr/bin/env python3
"""Writes the input trees of the kustomize conformance cases (expected files come from
regen.sh, i.e. from the real kustomize). Re-running it rewrites the inputs of the cases it knows."""
import os
import shutil

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "cases")
CASES = {}


def case(name, files):
    CASES[name] = files


DEPLOY = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels:
    app: web
spec:
  replicas: 1
  selector:
    matchLabels:
      app: web
  template:
    metadata:
      labels:
        app: web
    spec:
      serviceAccountName: web-sa
      containers:
      - name: web
        image: nginx:1.25
        ports:
        - containerPort: 80
          name: http
        env:
        - name: MODE
          value: prod
        - name: FROM_CM
          valueFrom:
            configMapKeyRef:
              name: web-config
              key: mode
        envFrom:
        - secretRef:
            name: web-secret
        volumeMounts:
        - name: config
          mountPath: /etc/web
      - name: sidecar
        image: busybox
        args: ["sleep", "3600"]
      initContainers:
      - name: init
        image: busybox:1.36
      volumes:
      - name: config
        configMap:
          name: web-config
      - name: data
        persistentVolumeClaim:
          claimName: web-data
"""
SERVICE = """apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
    targetPort: http
"""
CM = """apiVersion: v1
kind: ConfigMap
metadata:
  name: web-config
data:
  mode: prod
  threshold: "10"
"""
SECRET = """apiVersion: v1
kind: Secret
metadata:
  name: web-secret
type: Opaque
stringData:
  password: hunter2
"""
SA = """apiVersion: v1
kind: ServiceAccount
metadata:
  name: web-sa
"""
PVC = """apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: web-data
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
"""
RBAC = """apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: reader
rules:
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["get", "list"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: reader-binding
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: reader
subjects:
- kind: ServiceAccount
  name: web-sa
- kind: ServiceAccount
  name: other
  namespace: elsewhere
- kind: User
  name: jane
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: cluster-reader
rules:
- apiGroups: [""]
  resources: ["nodes"]
  verbs: ["get"]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: cluster-reader-binding
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: cluster-reader
subjects:
- kind: ServiceAccount
  name: web-sa
  namespace: default
"""
INGRESS = """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
spec:
  tls:
  - hosts: [web.example.com]
    secretName: web-tls
  rules:
  - host: web.example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              name: http
"""
TLS = """apiVersion: v1
kind: Secret
metadata:
  name: web-tls
type: kubernetes.io/tls
data:
  tls.crt: Y2VydA==
  tls.key: a2V5
"""
STS = """apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
spec:
  serviceName: db
  replicas: 3
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      containers:
      - name: db
        image: postgres:16
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 10Gi
"""
CRONJOB = """apiVersion: batch/v1
kind: CronJob
metadata:
  name: backup
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
          - name: backup
            image: registry.example.com:5000/tools/backup:v2
            envFrom:
            - configMapRef:
                name: web-config
"""
NS = """apiVersion: v1
kind: Namespace
metadata:
  name: team-a
"""
CRD = """apiVersion: apiextensions.k8s.io/v1
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
"""
WIDGET = """apiVersion: example.com/v1
kind: Widget
metadata:
  name: gizmo
spec:
  size: 3
  items:
  - name: a
    value: 1
  - name: b
    value: 2
"""
HPA = """apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: web
spec:
  scaleTargetRef:
    apiVersion: apps/v1
    kind: Deployment
    name: web
  minReplicas: 1
  maxReplicas: 5
"""
PDB = """apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: web
spec:
  minAvailable: 1
  selector:
    matchLabels:
      app: web
"""
NETPOL = """apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: web
spec:
  podSelector:
    matchLabels:
      app: web
  ingress:
  - from:
    - podSelector:
        matchLabels:
          app: frontend
"""
DAEMON = """apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: agent
spec:
  selector:
    matchLabels:
      app: agent
  template:
    metadata:
      labels:
        app: agent
    spec:
      containers:
      - name: agent
        image: agent:1.0
"""
JOB = """apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: migrate
        image: migrate:3
        env:
        - name: PW
          valueFrom:
            secretKeyRef:
              name: web-secret
              key: password
"""
ALL = {"deploy.yaml": DEPLOY, "service.yaml": SERVICE, "cm.yaml": CM, "secret.yaml": SECRET,
       "sa.yaml": SA, "pvc.yaml": PVC}


def k(body):
    return body.lstrip("\n")


def res(*names):
    return "resources:\n" + "".join(f"- {n}\n" for n in names)


# ---- resources and loading
case("res-single-file", {"kustomization.yaml": res("deploy.yaml"), "deploy.yaml": DEPLOY})
case("res-many-files", dict(ALL, **{"kustomization.yaml": res(*ALL.keys())}))
case("res-multidoc", {"kustomization.yaml": res("all.yaml"), "all.yaml": "---\n".join(ALL.values())})
case("res-empty-docs", {"kustomization.yaml": res("a.yaml"), "a.yaml": "---\n# c\n---\n" + CM + "---\n---\n" + SA})
case("res-directory-base", {"kustomization.yaml": res("base"), "base/kustomization.yaml": res("deploy.yaml", "service.yaml"), "base/deploy.yaml": DEPLOY, "base/service.yaml": SERVICE})
case("res-yml-extension", {"kustomization.yml": res("cm.yaml"), "cm.yaml": CM})
case("res-Kustomization-name", {"Kustomization": res("cm.yaml"), "cm.yaml": CM})
case("res-with-apiversion-kind", {"kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n" + res("cm.yaml"), "cm.yaml": CM})
case("res-bases-legacy", {"kustomization.yaml": "bases:\n- base\n", "base/kustomization.yaml": res("cm.yaml"), "base/cm.yaml": CM})
case("res-list-kind", {"kustomization.yaml": res("list.yaml"), "list.yaml": "apiVersion: v1\nkind: List\nitems:\n- " + CM.replace("\n", "\n  ").rstrip() + "\n- " + SA.replace("\n", "\n  ").rstrip() + "\n"})
case("res-nested-three-levels", {"kustomization.yaml": res("mid"), "mid/kustomization.yaml": res("../base", "sa.yaml"), "mid/sa.yaml": SA, "base/kustomization.yaml": res("cm.yaml"), "base/cm.yaml": CM})
case("res-order-legacy", {"kustomization.yaml": res("all.yaml"), "all.yaml": "---\n".join([DEPLOY, WIDGET, CRD, NS, SERVICE, CM, SA, PVC, RBAC, HPA, PDB, NETPOL, DAEMON, JOB, CRONJOB, STS, INGRESS, TLS])})
case("res-order-fifo", {"kustomization.yaml": res("all.yaml") + "sortOptions:\n  order: fifo\n", "all.yaml": "---\n".join([DEPLOY, WIDGET, CRD, NS, SERVICE, CM, SA])})
case("res-order-legacy-custom", {"kustomization.yaml": res("all.yaml") + "sortOptions:\n  order: legacy\n  legacySortOptions:\n    orderFirst: [Service, ConfigMap]\n    orderLast: [Namespace]\n", "all.yaml": "---\n".join([DEPLOY, NS, SERVICE, CM, SA])})
case("res-same-kind-sorting", {"kustomization.yaml": res("a.yaml"), "a.yaml": "".join(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n" + (f"  namespace: {ns}\n" if ns else "") for n, ns in [("b", "z"), ("b", "a"), ("a", ""), ("c", "a"), ("item10", ""), ("item9", "")])})
case("res-groups-sorting", {"kustomization.yaml": res("a.yaml"), "a.yaml": "".join(f"---\napiVersion: {av}\nkind: {kd}\nmetadata:\n  name: x\n" for av, kd in [("x.io/v1", "Widget"), ("a.io/v2", "Widget"), ("a.io/v1", "Widget"), ("v1", "Aardvark"), ("v1", "Zebra"), ("admissionregistration.k8s.io/v1", "ValidatingWebhookConfiguration"), ("admissionregistration.k8s.io/v1", "MutatingWebhookConfiguration"), ("scheduling.k8s.io/v1", "PriorityClass"), ("v1", "LimitRange"), ("v1", "ResourceQuota"), ("storage.k8s.io/v1", "StorageClass"), ("v1", "Endpoints")])})
case("res-local-config-dropped", {"kustomization.yaml": res("a.yaml"), "a.yaml": CM + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: local\n  annotations:\n    config.kubernetes.io/local-config: \"true\"\n"})
case("res-crd-and-cr", {"kustomization.yaml": res("crd.yaml", "w.yaml"), "crd.yaml": CRD, "w.yaml": WIDGET})

# ---- YAML value fidelity
case("yaml-scalars", {"kustomization.yaml": res("a.yaml"), "a.yaml": """apiVersion: example.com/v1
kind: Foo
metadata:
  name: x
spec:
  octal: 0777
  float1: 1.0
  hex: 0x1F
  exp: 1e3
  yes: yes
  tilde: ~
  nul: null
  big: 12345678901234567890
  half: 1.5
  negzero: -0
  oct2: 0o17
  trailing: 2.50
  huge: 100000000000000000000.0
  tiny: 1e-7
  tagged: !!str 5
  empty:
  on: "on"
  onplain: on
  t: True
  under: 1_000
  plus: +12
  million: 0.1e10
  fl: 123456789.0
  fl2: 1234567.5
  date: 2024-01-01
  datetime: 2024-01-01T10:00:00Z
  nine: 09
  colon: 1:20
  list: [1, 2.0, "3"]
  emptymap: {}
  emptylist: []
  emptystr: ''
"""})
case("yaml-strings", {"kustomization.yaml": res("a.yaml"), "a.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: strings
data:
  lead: "  lead"
  colon: "a: b"
  hash: "a #b"
  hash2: "#a"
  accents: "é ü"
  bell: "x\\u0007"
  crlf: "line\\r\\nwin"
  emoji: "emoji 😀"
  spacebreak: "  \\n  lead"
  trailnl: "trail\\n "
  brackets: "[x]"
  braces: "{x}"
  star: "*x"
  amp: "&x"
  bang: "!x"
  pipe: "|x"
  gt: ">x"
  pct: "%x"
  tick: "`x"
  comma: "a,b"
  q: "?x"
  q2: "? x"
  dash: "-"
  dash2: "- x"
  dashes: "---"
  dots: "..."
  tab: "tab\\there"
  trailing: "trailing "
  y: "y"
  n: "n"
  NO: "NO"
  off: "off"
  nullstr: "null"
  tilde: "~"
  int: "12"
  float: "1.5"
  exp: "1e3"
  ts: "2024-01-01"
  base60: "1:20"
  merge: "<<"
  eq: "="
  quote: "it's"
  dq: 'say "hi"'
  backslash: "a\\\\b"
  nbsp: "a\\u00a0b"
  zero: "0"
  octal: "0777"
  long: "a very long line a very long line a very long line a very long line a very long line a very long line a very long line"
  longword: "averyveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryveryverylongword and more"
  longcolon: "x: y z x: y z x: y z x: y z x: y z x: y z x: y z x: y z x: y z x: y z x: y z x: y z x: y z"
  longtab: "x\\ty x\\ty x\\ty x\\ty x\\ty x\\ty x\\ty x\\ty x\\ty x\\ty x\\ty x\\ty x\\ty x\\ty x\\ty x\\ty x\\ty x\\ty"
  longdouble: "a  b  c  d  e  f  g  h  i  j  k  l  m  n  o  p  q  r  s  t  u  v  w  x  y  z  a  b  c  d"
  multi: "multi\\nline"
  multinl: "multi\\nline\\n"
  multinl2: "x\\n\\n"
  multisp: "multi\\nline  \\n\\n"
  leadnl: "\\nlead"
  leadsp: " lead\\nx"
  literal: |
    first
      indented
    last
  folded: >
    folded
    text
  keep: |+
    kept

  strip: |-
    stripped
  longliteral: |
    a very long line a very long line a very long line a very long line a very long line a very long line
"""})
case("yaml-keys", {"kustomization.yaml": res("a.yaml"), "a.yaml": """apiVersion: v1
kind: ConfigMap
metadata:
  name: keys
data:
  item10: a
  item9: b
  item1: c
  a_b: d
  aB: e
  Ab: f
  a-b: g
  a.b: h
  "80": i
  "8080": j
  "y": k
  "true": l
  "": m
  "key with space": n
  "x:y": o
  A: p
  _under: q
  "1a": r
  "a1": s
  "a01": t
  "a001": u
"""})
case("yaml-nested-lists", {"kustomization.yaml": res("a.yaml"), "a.yaml": """apiVersion: v1
kind: X
metadata:
  name: t
spec:
  e: [a, {b: c, d: [e, f]}, [g, h]]
  f: [[], {}]
  g:
  - - - deep
  h:
  - a: 1
    b:
    - c
    - d: e
"""})
case("yaml-flow-and-anchors", {"kustomization.yaml": res("a.yaml"), "a.yaml": """apiVersion: v1
kind: ConfigMap
metadata: {name: anchors, labels: {a: "1", b: x}}
data:
  base: &b hello
  copy: *b
  flow: "{a: 1}"
"""})
case("yaml-comments-dropped", {"kustomization.yaml": "# top\nresources: # inline\n- a.yaml # file\n", "a.yaml": "# head\napiVersion: v1 # c\nkind: ConfigMap\nmetadata:\n  # inner\n  name: c # n\ndata:\n  a: b # trailing\n"})

# ---- namespace
case("ns-basic", dict(ALL, **{"kustomization.yaml": "namespace: prod\n" + res(*ALL.keys())}))
case("ns-overrides-existing", {"kustomization.yaml": "namespace: prod\n" + res("a.yaml"), "a.yaml": CM.replace("name: web-config", "name: web-config\n  namespace: dev")})
case("ns-cluster-scoped-untouched", {"kustomization.yaml": "namespace: prod\n" + res("a.yaml"), "a.yaml": "---\n".join([NS, CRD, RBAC, "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: high\nvalue: 1000\n", "apiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: pv\nspec:\n  capacity:\n    storage: 1Gi\n"])})
case("ns-rolebinding-subjects", {"kustomization.yaml": "namespace: prod\n" + res("rbac.yaml", "sa.yaml"), "rbac.yaml": RBAC, "sa.yaml": SA})
case("ns-custom-resource", {"kustomization.yaml": "namespace: prod\n" + res("w.yaml"), "w.yaml": WIDGET})
case("ns-overlay-changes-base-ns", {"kustomization.yaml": "namespace: prod\n" + res("base"), "base/kustomization.yaml": "namespace: dev\n" + res("cm.yaml", "rbac.yaml", "sa.yaml"), "base/cm.yaml": CM, "base/rbac.yaml": RBAC, "base/sa.yaml": SA})

# ---- prefix / suffix and name references
case("prefix-basic", dict(ALL, **{"kustomization.yaml": "namePrefix: app-\n" + res(*ALL.keys())}))
case("suffix-basic", dict(ALL, **{"kustomization.yaml": "nameSuffix: -v2\n" + res(*ALL.keys())}))
case("prefix-suffix-both", dict(ALL, **{"kustomization.yaml": "namePrefix: a-\nnameSuffix: -z\n" + res(*ALL.keys())}))
case("prefix-rbac-refs", {"kustomization.yaml": "namePrefix: p-\n" + res("rbac.yaml", "sa.yaml"), "rbac.yaml": RBAC, "sa.yaml": SA})
case("prefix-ingress-refs", {"kustomization.yaml": "namePrefix: p-\n" + res("ing.yaml", "svc.yaml", "tls.yaml"), "ing.yaml": INGRESS, "svc.yaml": SERVICE, "tls.yaml": TLS})
case("prefix-skips-crd-namespace", {"kustomization.yaml": "namePrefix: p-\n" + res("a.yaml"), "a.yaml": "---\n".join([CRD, NS, WIDGET])})
case("prefix-statefulset-service", {"kustomization.yaml": "namePrefix: p-\n" + res("sts.yaml", "svc.yaml"), "sts.yaml": STS, "svc.yaml": SERVICE.replace("name: web", "name: db")})
case("prefix-hpa-target", {"kustomization.yaml": "namePrefix: p-\n" + res("deploy.yaml", "hpa.yaml"), "deploy.yaml": DEPLOY, "hpa.yaml": HPA})
case("prefix-cronjob-job-refs", {"kustomization.yaml": "namePrefix: p-\n" + res("cj.yaml", "job.yaml", "cm.yaml", "secret.yaml"), "cj.yaml": CRONJOB, "job.yaml": JOB, "cm.yaml": CM, "secret.yaml": SECRET})
case("prefix-overlay-of-overlay", {"kustomization.yaml": "namePrefix: outer-\n" + res("mid"), "mid/kustomization.yaml": "namePrefix: mid-\n" + res("../base"), "base/kustomization.yaml": "namePrefix: base-\n" + res("deploy.yaml", "cm.yaml", "sa.yaml"), "base/deploy.yaml": DEPLOY, "base/cm.yaml": CM, "base/sa.yaml": SA})
case("prefix-ref-missing-target-unchanged", {"kustomization.yaml": "namePrefix: p-\n" + res("deploy.yaml"), "deploy.yaml": DEPLOY})
case("prefix-and-namespace", dict(ALL, **{"kustomization.yaml": "namePrefix: p-\nnamespace: ns1\n" + res(*ALL.keys())}))

# ---- labels and annotations
case("labels-common", dict(ALL, **{"kustomization.yaml": "commonLabels:\n  team: core\n  tier: web\n" + res(*ALL.keys())}))
case("labels-common-workloads", {"kustomization.yaml": "commonLabels:\n  team: core\n" + res("a.yaml"), "a.yaml": "---\n".join([DEPLOY, STS, CRONJOB, JOB, DAEMON, PDB, NETPOL, SERVICE, WIDGET])})
case("labels-service-without-selector", {"kustomization.yaml": "commonLabels:\n  team: core\n" + res("a.yaml"), "a.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: ext\nspec:\n  type: ExternalName\n  externalName: example.com\n"})
case("labels-pairs-only", {"kustomization.yaml": "labels:\n- pairs:\n    team: core\n" + res("a.yaml"), "a.yaml": "---\n".join([DEPLOY, SERVICE])})
case("labels-include-selectors", {"kustomization.yaml": "labels:\n- pairs:\n    team: core\n  includeSelectors: true\n" + res("a.yaml"), "a.yaml": "---\n".join([DEPLOY, SERVICE, STS])})
case("labels-include-templates", {"kustomization.yaml": "labels:\n- pairs:\n    team: core\n  includeTemplates: true\n" + res("a.yaml"), "a.yaml": "---\n".join([DEPLOY, SERVICE, STS, CRONJOB, JOB])})
case("labels-multiple-entries", {"kustomization.yaml": "labels:\n- pairs:\n    a: one\n- pairs:\n    b: two\n  includeSelectors: true\n" + res("a.yaml"), "a.yaml": DEPLOY})
case("labels-numeric-values", {"kustomization.yaml": "commonLabels:\n  version: \"2\"\n" + res("a.yaml"), "a.yaml": CM})
case("labels-affinity", {"kustomization.yaml": "commonLabels:\n  team: core\n" + res("a.yaml"), "a.yaml": DEPLOY.replace("      serviceAccountName: web-sa\n", "      serviceAccountName: web-sa\n      affinity:\n        podAntiAffinity:\n          requiredDuringSchedulingIgnoredDuringExecution:\n          - topologyKey: kubernetes.io/hostname\n            labelSelector:\n              matchLabels:\n                app: web\n      topologySpreadConstraints:\n      - maxSkew: 1\n        topologyKey: zone\n        whenUnsatisfiable: DoNotSchedule\n        labelSelector:\n          matchLabels:\n            app: web\n")})
case("annotations-common", dict(ALL, **{"kustomization.yaml": "commonAnnotations:\n  owner: team-a\n  note: \"multi\\nline\"\n" + res(*ALL.keys())}))
case("annotations-workloads", {"kustomization.yaml": "commonAnnotations:\n  owner: team-a\n" + res("a.yaml"), "a.yaml": "---\n".join([DEPLOY, STS, CRONJOB, JOB, DAEMON])})
case("labels-and-annotations-overlay", {"kustomization.yaml": "commonLabels:\n  env: prod\ncommonAnnotations:\n  o: x\n" + res("base"), "base/kustomization.yaml": "commonLabels:\n  app: web\n" + res("deploy.yaml", "service.yaml"), "base/deploy.yaml": DEPLOY, "base/service.yaml": SERVICE})

# ---- images
case("images-newtag", {"kustomization.yaml": "images:\n- name: nginx\n  newTag: \"1.27\"\n" + res("a.yaml"), "a.yaml": DEPLOY})
case("images-newname", {"kustomization.yaml": "images:\n- name: nginx\n  newName: registry.example.com/nginx\n" + res("a.yaml"), "a.yaml": DEPLOY})
case("images-digest", {"kustomization.yaml": "images:\n- name: busybox\n  digest: sha256:24a0c4b4a4c0eb97a1aabb8e29f18e917d05abfe1b7a7c07857230879ce7d3d3\n" + res("a.yaml"), "a.yaml": DEPLOY})
case("images-all-fields", {"kustomization.yaml": "images:\n- name: nginx\n  newName: my/nginx\n  newTag: v1\n- name: busybox\n  newName: my/busybox\n" + res("a.yaml"), "a.yaml": DEPLOY})
case("images-registry-port", {"kustomization.yaml": "images:\n- name: registry.example.com:5000/tools/backup\n  newTag: v3\n" + res("a.yaml"), "a.yaml": CRONJOB})
case("images-numeric-tag", {"kustomization.yaml": "images:\n- name: nginx\n  newTag: 1.10\n" + res("a.yaml"), "a.yaml": DEPLOY})
case("images-crd-containers", {"kustomization.yaml": "images:\n- name: agent\n  newTag: \"2.0\"\n" + res("a.yaml"), "a.yaml": "apiVersion: example.com/v1\nkind: Runner\nmetadata:\n  name: r\nspec:\n  template:\n    containers:\n    - name: a\n      image: agent:1.0\n"})
case("images-overlay", {"kustomization.yaml": "images:\n- name: nginx\n  newTag: \"2\"\n" + res("base"), "base/kustomization.yaml": "images:\n- name: nginx\n  newTag: \"1\"\n" + res("deploy.yaml"), "base/deploy.yaml": DEPLOY})
case("images-all-workloads", {"kustomization.yaml": "images:\n- name: busybox\n  newTag: latest\n- name: migrate\n  newName: mig\n" + res("a.yaml"), "a.yaml": "---\n".join([DEPLOY, JOB, DAEMON])})

# ---- replicas
case("replicas-basic", {"kustomization.yaml": "replicas:\n- name: web\n  count: 3\n" + res("a.yaml"), "a.yaml": DEPLOY})
case("replicas-statefulset", {"kustomization.yaml": "replicas:\n- name: db\n  count: 5\n" + res("a.yaml"), "a.yaml": STS})
case("replicas-with-prefix", {"kustomization.yaml": "namePrefix: p-\nreplicas:\n- name: web\n  count: 2\n" + res("a.yaml"), "a.yaml": DEPLOY})
case("replicas-overlay", {"kustomization.yaml": "replicas:\n- name: web\n  count: 4\n" + res("base"), "base/kustomization.yaml": "namePrefix: b-\n" + res("deploy.yaml"), "base/deploy.yaml": DEPLOY})

# ---- generators
case("gen-cm-literals", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  literals:\n  - a=1\n  - b=two\n  - c='quoted'\n  - d=\"dq\"\n  - e=x=y\n"})
case("gen-cm-files", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  files:\n  - app.properties\n  - custom=other.txt\n", "app.properties": "a=1\nb=2\n", "other.txt": "hello"})
case("gen-cm-envs", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  envs:\n  - app.env\n", "app.env": "# comment\nA=1\n\nB=two words\n  C=lead\nD=\nE='q'\n"})
case("gen-secret-literals", {"kustomization.yaml": "secretGenerator:\n- name: creds\n  literals:\n  - user=admin\n  - password=s3cr3t\n"})
case("gen-secret-type", {"kustomization.yaml": "secretGenerator:\n- name: tls\n  type: kubernetes.io/tls\n  files:\n  - tls.crt\n  - tls.key\n", "tls.crt": "CERT\n", "tls.key": "KEY\n"})
case("gen-secret-envs", {"kustomization.yaml": "secretGenerator:\n- name: env\n  envs:\n  - s.env\n", "s.env": "TOKEN=abc\nOTHER=d\n"})
case("gen-disable-hash", {"kustomization.yaml": "generatorOptions:\n  disableNameSuffixHash: true\nconfigMapGenerator:\n- name: cfg\n  literals:\n  - a=1\n"})
case("gen-options-labels", {"kustomization.yaml": "generatorOptions:\n  labels:\n    gen: \"yes\"\n  annotations:\n    note: x\nconfigMapGenerator:\n- name: cfg\n  literals:\n  - a=1\n  options:\n    labels:\n      own: label\n"})
case("gen-per-item-disable-hash", {"kustomization.yaml": "configMapGenerator:\n- name: a\n  literals:\n  - x=1\n  options:\n    disableNameSuffixHash: true\n- name: b\n  literals:\n  - x=1\n"})
case("gen-immutable", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  literals:\n  - a=1\n  options:\n    immutable: true\n"})
case("gen-namespace", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  namespace: other\n  literals:\n  - a=1\n"})
case("gen-refs-updated", {"kustomization.yaml": "configMapGenerator:\n- name: web-config\n  literals:\n  - mode=dev\nsecretGenerator:\n- name: web-secret\n  literals:\n  - password=x\n" + res("deploy.yaml", "job.yaml", "cj.yaml"), "deploy.yaml": DEPLOY, "job.yaml": JOB, "cj.yaml": CRONJOB})
case("gen-with-prefix-and-ns", {"kustomization.yaml": "namePrefix: p-\nnamespace: prod\nconfigMapGenerator:\n- name: web-config\n  literals:\n  - mode=dev\n" + res("deploy.yaml"), "deploy.yaml": DEPLOY})
case("gen-merge-overlay", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  behavior: merge\n  literals:\n  - b=overlay\n  - c=new\n" + res("base"), "base/kustomization.yaml": "configMapGenerator:\n- name: cfg\n  literals:\n  - a=1\n  - b=base\n"})
case("gen-replace-overlay", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  behavior: replace\n  literals:\n  - only=this\n" + res("base"), "base/kustomization.yaml": "configMapGenerator:\n- name: cfg\n  literals:\n  - a=1\n"})
case("gen-merge-into-plain-cm", {"kustomization.yaml": "configMapGenerator:\n- name: web-config\n  behavior: merge\n  literals:\n  - extra=1\n" + res("cm.yaml"), "cm.yaml": CM})
case("gen-merge-with-prefixed-base", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  behavior: merge\n  literals:\n  - b=2\n" + res("base"), "base/kustomization.yaml": "namePrefix: base-\nconfigMapGenerator:\n- name: cfg\n  literals:\n  - a=1\n"})
case("gen-special-chars", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  literals:\n  - html=<a href=\"x\">&</a>\n  - unicode=é😀\n  - tab=a\tb\n  files:\n  - multi.txt\n", "multi.txt": "line one\nline two\n\nend\n"})
case("gen-binary-file", {"kustomization.yaml": "configMapGenerator:\n- name: bin\n  files:\n  - data.bin\n", "data.bin": b"\x00\x01\x02\xff\xfe"})
case("gen-multiple", {"kustomization.yaml": "configMapGenerator:\n- name: one\n  literals: [a=1]\n- name: two\n  literals: [b=2]\nsecretGenerator:\n- name: three\n  literals: [c=3]\n"})
case("gen-file-last-key-newline", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  files:\n  - z.yaml\n", "z.yaml": "a:\n  - b\n"})
case("gen-file-keep-trailing-newlines", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  files:\n  - z.txt\n  - a.txt\n", "z.txt": "x\n\n", "a.txt": "  indented\nline\n"})
case("yaml-literal-last-key", {"kustomization.yaml": res("a.yaml"), "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: l\ndata:\n  zz: |\n    last\n"})
case("gen-empty", {"kustomization.yaml": "configMapGenerator:\n- name: empty\n"})
case("gen-labels-common", {"kustomization.yaml": "commonLabels:\n  app: x\nconfigMapGenerator:\n- name: cfg\n  literals: [a=1]\n"})

# ---- patches (strategic merge)
case("smp-file", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- path: patch.yaml\n", "deploy.yaml": DEPLOY, "patch.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n"})
case("smp-inline", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- patch: |-\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata:\n      name: web\n    spec:\n      template:\n        spec:\n          containers:\n          - name: web\n            image: nginx:2\n", "deploy.yaml": DEPLOY})
case("smp-container-merge", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- path: p.yaml\n", "deploy.yaml": DEPLOY, "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        resources:\n          limits:\n            cpu: 500m\n        env:\n        - name: MODE\n          value: dev\n        - name: NEW\n          value: x\n      - name: extra\n        image: extra:1\n"})
case("smp-delete-container", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- path: p.yaml\n", "deploy.yaml": DEPLOY, "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: sidecar\n        $patch: delete\n"})
case("smp-delete-resource", {"kustomization.yaml": res("deploy.yaml", "cm.yaml") + "patches:\n- path: p.yaml\n", "deploy.yaml": DEPLOY, "cm.yaml": CM, "p.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n$patch: delete\n"})
case("smp-replace-map", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- path: p.yaml\n", "deploy.yaml": DEPLOY, "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  selector:\n    $patch: replace\n    matchLabels:\n      other: x\n"})
case("smp-null-deletes-field", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- path: p.yaml\n", "deploy.yaml": DEPLOY, "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  labels:\n    app: null\nspec:\n  replicas: null\n"})
case("smp-volumes-ports", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- path: p.yaml\n", "deploy.yaml": DEPLOY, "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        ports:\n        - containerPort: 9090\n          name: metrics\n        volumeMounts:\n        - name: extra\n          mountPath: /extra\n      volumes:\n      - name: extra\n        emptyDir: {}\n      - name: config\n        configMap:\n          name: other-config\n"})
case("smp-args-replaced", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- path: p.yaml\n", "deploy.yaml": DEPLOY, "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: sidecar\n        args: [\"sleep\", \"10\"]\n      tolerations:\n      - key: a\n        operator: Exists\n"})
case("smp-multidoc-patch", {"kustomization.yaml": res("deploy.yaml", "cm.yaml") + "patches:\n- path: p.yaml\n", "deploy.yaml": DEPLOY, "cm.yaml": CM, "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\ndata:\n  added: \"yes\"\n"})
case("smp-target-labelselector", {"kustomization.yaml": res("a.yaml") + "patches:\n- target:\n    kind: Deployment\n    labelSelector: tier=backend\n  patch: |-\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata:\n      name: any\n    spec:\n      replicas: 7\n", "a.yaml": DEPLOY.replace("app: web\nspec:", "app: web\n    tier: backend\nspec:", 1) + "---\n" + DEPLOY.replace("name: web\n", "name: other\n", 1)})
case("smp-target-regex-name", {"kustomization.yaml": res("a.yaml") + "patches:\n- target:\n    kind: ConfigMap\n    name: cfg-.*\n  patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: x\n    data:\n      patched: \"true\"\n", "a.yaml": "".join(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\ndata:\n  a: b\n" for n in ["cfg-a", "cfg-b", "other", "xcfg-c"])})
case("smp-target-annotation-selector", {"kustomization.yaml": res("a.yaml") + "patches:\n- target:\n    annotationSelector: patch-me=true\n  patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: x\n      annotations:\n        patched: done\n", "a.yaml": "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n    patch-me: \"true\"\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n"})
case("smp-legacy-field", {"kustomization.yaml": res("deploy.yaml") + "patchesStrategicMerge:\n- p.yaml\n", "deploy.yaml": DEPLOY, "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 9\n"})
case("smp-legacy-inline", {"kustomization.yaml": res("deploy.yaml") + "patchesStrategicMerge:\n- |-\n  apiVersion: apps/v1\n  kind: Deployment\n  metadata:\n    name: web\n  spec:\n    replicas: 8\n", "deploy.yaml": DEPLOY})
case("smp-overlay-prefixed-base", {"kustomization.yaml": res("base") + "patches:\n- path: p.yaml\n", "base/kustomization.yaml": "namePrefix: b-\nnamespace: dev\n" + res("deploy.yaml"), "base/deploy.yaml": DEPLOY, "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 6\n"})
case("smp-crd-list-by-name", {"kustomization.yaml": res("w.yaml") + "patches:\n- path: p.yaml\n", "w.yaml": WIDGET, "p.yaml": "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: gizmo\nspec:\n  size: 4\n  items:\n  - name: b\n    value: 20\n  - name: c\n    value: 3\n"})
case("smp-service-ports", {"kustomization.yaml": res("svc.yaml") + "patches:\n- path: p.yaml\n", "svc.yaml": SERVICE, "p.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: web\nspec:\n  type: NodePort\n  ports:\n  - name: http\n    port: 80\n    nodePort: 30080\n  - name: https\n    port: 443\n"})
case("smp-add-new-env-list", {"kustomization.yaml": res("a.yaml") + "patches:\n- path: p.yaml\n", "a.yaml": DAEMON, "p.yaml": "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  template:\n    spec:\n      containers:\n      - name: agent\n        env:\n        - name: A\n          value: \"1\"\n"})
case("smp-no-match-error", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- path: p.yaml\n", "deploy.yaml": DEPLOY, "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: missing\nspec:\n  replicas: 3\n"})
case("smp-target-no-match", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- target:\n    kind: StatefulSet\n  patch: |-\n    apiVersion: apps/v1\n    kind: StatefulSet\n    metadata:\n      name: x\n    spec:\n      replicas: 3\n", "deploy.yaml": DEPLOY})

# ---- JSON 6902
case("json6902-replace", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- target:\n    kind: Deployment\n    name: web\n  patch: |-\n    - op: replace\n      path: /spec/replicas\n      value: 5\n", "deploy.yaml": DEPLOY})
case("json6902-add-remove", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- target:\n    group: apps\n    version: v1\n    kind: Deployment\n    name: web\n  patch: |-\n    - op: add\n      path: /spec/template/spec/containers/0/args\n      value: [\"--verbose\"]\n    - op: remove\n      path: /spec/template/spec/initContainers\n    - op: add\n      path: /metadata/annotations\n      value:\n        a: b\n    - op: add\n      path: /spec/template/spec/containers/-\n      value:\n        name: last\n        image: last:1\n", "deploy.yaml": DEPLOY})
case("json6902-list-index", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- target:\n    kind: Deployment\n  patch: |-\n    - op: replace\n      path: /spec/template/spec/containers/1/image\n      value: busybox:2\n    - op: add\n      path: /spec/template/spec/containers/0/env/0\n      value:\n        name: FIRST\n        value: \"1\"\n    - op: remove\n      path: /spec/template/spec/volumes/1\n", "deploy.yaml": DEPLOY})
case("json6902-move-copy-test", {"kustomization.yaml": res("cm.yaml") + "patches:\n- target:\n    kind: ConfigMap\n  patch: |-\n    - op: test\n      path: /data/mode\n      value: prod\n    - op: copy\n      from: /data/mode\n      path: /data/mode2\n    - op: move\n      from: /data/threshold\n      path: /data/limit\n", "cm.yaml": CM})
case("json6902-test-fails", {"kustomization.yaml": res("cm.yaml") + "patches:\n- target:\n    kind: ConfigMap\n  patch: |-\n    - op: test\n      path: /data/mode\n      value: dev\n", "cm.yaml": CM})
case("json6902-escaped-path", {"kustomization.yaml": res("cm.yaml") + "patches:\n- target:\n    kind: ConfigMap\n  patch: |-\n    - op: add\n      path: /metadata/annotations\n      value: {}\n    - op: add\n      path: /metadata/annotations/example.com~1key\n      value: v\n", "cm.yaml": CM})
case("json6902-legacy-field", {"kustomization.yaml": res("deploy.yaml") + "patchesJson6902:\n- target:\n    group: apps\n    version: v1\n    kind: Deployment\n    name: web\n  path: p.yaml\n", "deploy.yaml": DEPLOY, "p.yaml": "- op: replace\n  path: /spec/replicas\n  value: 4\n"})
case("json6902-json-file", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- target:\n    kind: Deployment\n  path: p.json\n", "deploy.yaml": DEPLOY, "p.json": "[{\"op\": \"replace\", \"path\": \"/spec/replicas\", \"value\": 11}]\n"})
case("json6902-remove-missing", {"kustomization.yaml": res("cm.yaml") + "patches:\n- target:\n    kind: ConfigMap\n  patch: |-\n    - op: remove\n      path: /data/nope\n", "cm.yaml": CM})
case("json6902-multi-target", {"kustomization.yaml": res("a.yaml") + "patches:\n- target:\n    kind: ConfigMap\n  patch: |-\n    - op: add\n      path: /data/added\n      value: x\n", "a.yaml": "".join(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\ndata:\n  a: b\n" for n in ["one", "two", "three"])})
case("json6902-after-prefix", {"kustomization.yaml": "namePrefix: p-\n" + res("cm.yaml") + "patchesJson6902:\n- target:\n    version: v1\n    kind: ConfigMap\n    name: web-config\n  patch: |-\n    - op: add\n      path: /data/x\n      value: \"1\"\n", "cm.yaml": CM})

# ---- components
case("comp-basic", {"kustomization.yaml": res("cm.yaml") + "components:\n- comp\n", "cm.yaml": CM, "comp/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n" + res("sa.yaml") + "commonLabels:\n  comp: \"on\"\n", "comp/sa.yaml": SA})
case("comp-with-patch", {"kustomization.yaml": res("deploy.yaml") + "components:\n- comp\n", "deploy.yaml": DEPLOY, "comp/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\npatches:\n- path: p.yaml\n", "comp/p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        env:\n        - name: COMP\n          value: \"1\"\n"})
case("comp-generator-merge", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  literals: [a=1]\ncomponents:\n- comp\n", "comp/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nconfigMapGenerator:\n- name: cfg\n  behavior: merge\n  literals: [b=2]\n"})
case("comp-two-in-order", {"kustomization.yaml": res("cm.yaml") + "components:\n- c1\n- c2\n", "cm.yaml": CM, "c1/kustomization.yaml": "kind: Component\npatches:\n- target:\n    kind: ConfigMap\n  patch: |-\n    - op: add\n      path: /data/c1\n      value: one\n", "c2/kustomization.yaml": "kind: Component\npatches:\n- target:\n    kind: ConfigMap\n  patch: |-\n    - op: replace\n      path: /data/c1\n      value: two\n"})
case("comp-in-overlay-of-base", {"kustomization.yaml": res("base") + "namePrefix: o-\ncomponents:\n- comp\n", "base/kustomization.yaml": res("deploy.yaml"), "base/deploy.yaml": DEPLOY, "comp/kustomization.yaml": "kind: Component\nimages:\n- name: nginx\n  newTag: comp\nreplicas:\n- name: web\n  count: 2\n"})
case("comp-as-resource-error", {"kustomization.yaml": res("comp"), "comp/kustomization.yaml": "kind: Component\n" + res("cm.yaml"), "comp/cm.yaml": CM})
case("comp-kustomization-error", {"kustomization.yaml": "components:\n- notcomp\n", "notcomp/kustomization.yaml": res("cm.yaml"), "notcomp/cm.yaml": CM})

# ---- errors
case("err-missing-resource", {"kustomization.yaml": res("nope.yaml")})
case("err-missing-dir-kustomization", {"kustomization.yaml": res("base"), "base/cm.yaml": CM})
case("err-duplicate-id", {"kustomization.yaml": res("a.yaml", "b.yaml"), "a.yaml": CM, "b.yaml": CM})
case("err-duplicate-id-across-bases", {"kustomization.yaml": res("a", "b"), "a/kustomization.yaml": res("cm.yaml"), "a/cm.yaml": CM, "b/kustomization.yaml": res("cm.yaml"), "b/cm.yaml": CM})
case("err-missing-patch-file", {"kustomization.yaml": res("cm.yaml") + "patches:\n- path: nope.yaml\n", "cm.yaml": CM})
case("err-unknown-field", {"kustomization.yaml": res("cm.yaml") + "resourcez:\n- x\n", "cm.yaml": CM})
case("err-bad-yaml", {"kustomization.yaml": res("cm.yaml"), "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [unclosed\n"})
case("err-duplicate-key", {"kustomization.yaml": res("cm.yaml"), "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n"})
case("err-missing-kind", {"kustomization.yaml": res("cm.yaml"), "cm.yaml": "apiVersion: v1\nmetadata:\n  name: a\n"})
case("err-gen-create-conflict", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  literals: [a=1]\n" + res("base"), "base/kustomization.yaml": "configMapGenerator:\n- name: cfg\n  literals: [a=1]\n"})
case("err-gen-merge-missing", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  behavior: merge\n  literals: [a=1]\n"})
case("err-gen-bad-literal", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  literals: [novalue]\n"})
case("err-gen-missing-file", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  files: [nope.txt]\n"})
case("err-json-patch-no-target", {"kustomization.yaml": res("cm.yaml") + "patches:\n- patch: |-\n    - op: add\n      path: /data/x\n      value: y\n", "cm.yaml": CM})
case("err-no-kustomization", {"cm.yaml": CM})
case("err-bool-key", {"kustomization.yaml": res("cm.yaml"), "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  true: x\n"})
case("err-int-key", {"kustomization.yaml": res("cm.yaml"), "cm.yaml": "apiVersion: v1\nkind: X\nmetadata:\n  name: a\nspec:\n  80: x\n"})
case("err-two-kustomizations", {"kustomization.yaml": res("cm.yaml"), "kustomization.yml": res("cm.yaml"), "cm.yaml": CM})

# ---- combinations
BASE_APP = {"base/kustomization.yaml": res("deploy.yaml", "service.yaml", "sa.yaml", "pvc.yaml") + "configMapGenerator:\n- name: web-config\n  literals:\n  - mode=base\nsecretGenerator:\n- name: web-secret\n  literals:\n  - password=base\n", "base/deploy.yaml": DEPLOY, "base/service.yaml": SERVICE, "base/sa.yaml": SA, "base/pvc.yaml": PVC}
case("combo-overlay-full", dict(BASE_APP, **{"kustomization.yaml": "namespace: prod\nnamePrefix: prod-\ncommonLabels:\n  env: prod\ncommonAnnotations:\n  owner: sre\nimages:\n- name: nginx\n  newTag: \"1.27\"\nreplicas:\n- name: web\n  count: 3\n" + res("base") + "configMapGenerator:\n- name: web-config\n  behavior: merge\n  literals:\n  - mode=prod\npatches:\n- path: p.yaml\n", "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        resources:\n          requests:\n            cpu: 100m\n"}))
case("combo-staging-and-prod", dict(BASE_APP, **{"kustomization.yaml": res("staging", "prod"), "staging/kustomization.yaml": "namespace: staging\nnameSuffix: -stg\n" + res("../base"), "prod/kustomization.yaml": "namespace: prod\nnameSuffix: -prd\n" + res("../base")}))
case("combo-generated-in-component", dict(BASE_APP, **{"kustomization.yaml": res("base") + "components:\n- monitoring\n", "monitoring/kustomization.yaml": "kind: Component\nconfigMapGenerator:\n- name: monitoring\n  literals: [scrape=true]\npatches:\n- path: p.yaml\n", "monitoring/p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        envFrom:\n        - configMapRef:\n            name: monitoring\n"}))
case("combo-rbac-namespace-prefix", {"kustomization.yaml": "namespace: team\nnamePrefix: t-\n" + res("rbac.yaml", "sa.yaml", "deploy.yaml"), "rbac.yaml": RBAC, "sa.yaml": SA, "deploy.yaml": DEPLOY})
case("combo-labels-then-patch", {"kustomization.yaml": "commonLabels:\n  app: web\n" + res("deploy.yaml") + "patches:\n- target:\n    kind: Deployment\n    labelSelector: app=web\n  patch: |-\n    - op: add\n      path: /metadata/labels/patched\n      value: \"true\"\n", "deploy.yaml": DEPLOY.replace("  labels:\n    app: web\n", "", 1)})


# ---- replacements
SRC = """apiVersion: v1
kind: ConfigMap
metadata:
  name: src
data:
  host: db.example.com
  port: "5432"
  num: 7
  ver: v1.2.3
"""
RDEP = """apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  annotations:
    a.b/c: x
spec:
  replicas: 1
  template:
    spec:
      containers:
      - name: web
        image: nginx:1.0
        env:
        - name: HOST
          value: x
        - name: PORT
          value: "1"
      - name: side
        image: side:1.0
"""
def rep(body, extra="", files=None):
    d = {"kustomization.yaml": extra + res("cm.yaml", "d.yaml") + "replacements:\n" + body, "cm.yaml": SRC, "d.yaml": RDEP}
    d.update(files or {})
    return d
case("repl-basic", rep("- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.host\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - spec.template.spec.containers.[name=web].env.[name=HOST].value\n"))
case("repl-bracket-key", rep("- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.host\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - metadata.annotations.[a.b/c]\n"))
case("repl-int-into-int", rep("- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.num\n  targets:\n  - select:\n      kind: Deployment\n      name: web\n    fieldPaths:\n    - spec.replicas\n"))
case("repl-string-into-int", rep("- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.port\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - spec.replicas\n"))
case("repl-int-into-string", rep("- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.num\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - spec.template.spec.containers.[name=web].env.[name=PORT].value\n"))
case("repl-delimiters", rep("- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.ver\n    options:\n      delimiter: \".\"\n      index: 1\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - spec.template.spec.containers.0.image\n    options:\n      delimiter: \":\"\n      index: 1\n"))
case("repl-delimiter-append", rep("- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.port\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - spec.template.spec.containers.1.image\n    options:\n      delimiter: \":\"\n      index: 5\n"))
case("repl-delimiter-prefix", rep("- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.host\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - spec.template.spec.containers.1.image\n    options:\n      delimiter: \"/\"\n      index: -1\n"))
case("repl-create", rep("- source:\n    kind: ConfigMap\n    name: src\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - metadata.labels.src\n    - spec.template.metadata.annotations.src\n    options:\n      create: true\n"))
case("repl-missing-target-error", rep("- source:\n    kind: ConfigMap\n    name: src\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - metadata.labels.nope\n"))
case("repl-missing-source-error", rep("- source:\n    kind: ConfigMap\n    name: nope\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - metadata.name\n"))
case("repl-source-after-prefix", rep("- source:\n    kind: ConfigMap\n    name: src\n  targets:\n  - select:\n      kind: Deployment\n      name: web\n    fieldPaths:\n    - spec.template.spec.containers.[name=web].env.[name=HOST].value\n", extra="namePrefix: p-\n"))
case("repl-wildcard", rep("- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.ver\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - spec.template.spec.containers.*.image\n    options:\n      delimiter: \":\"\n      index: 1\n"))
case("repl-reject", rep("- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.host\n  targets:\n  - select:\n      kind: ConfigMap\n    reject:\n    - name: src\n    fieldPaths:\n    - data.host\n", files={"d.yaml": RDEP + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: other\ndata:\n  host: old\n"}))
case("repl-from-file", {"kustomization.yaml": res("cm.yaml", "d.yaml") + "replacements:\n- path: r.yaml\n", "cm.yaml": SRC, "d.yaml": RDEP, "r.yaml": "source:\n  kind: ConfigMap\n  name: src\n  fieldPath: data.host\ntargets:\n- select:\n    kind: Deployment\n  fieldPaths:\n  - spec.template.spec.containers.[name=web].env.[name=HOST].value\n"})
case("repl-map-value", rep("- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - metadata.annotations\n"))
case("repl-into-generated-name", {"kustomization.yaml": res("d.yaml") + "configMapGenerator:\n- name: gen\n  literals: [a=1]\nreplacements:\n- source:\n    kind: ConfigMap\n    name: gen\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - spec.template.spec.containers.[name=web].env.[name=HOST].value\n", "d.yaml": RDEP})
case("repl-in-component", {"kustomization.yaml": res("cm.yaml", "d.yaml") + "components:\n- c\n", "cm.yaml": SRC, "d.yaml": RDEP, "c/kustomization.yaml": "kind: Component\nreplacements:\n- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.host\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - spec.template.spec.containers.[name=web].env.[name=HOST].value\n"})
case("repl-label-selector-target", rep("- source:\n    kind: ConfigMap\n    name: src\n    fieldPath: data.host\n  targets:\n  - select:\n      labelSelector: pick=me\n    fieldPaths:\n    - data.host\n", files={"d.yaml": RDEP + "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: picked\n  labels:\n    pick: me\ndata:\n  host: old\n"}))
case("repl-overlay-base-names", {"kustomization.yaml": "namePrefix: o-\n" + res("base") + "replacements:\n- source:\n    kind: ConfigMap\n    name: b-src\n    fieldPath: data.host\n  targets:\n  - select:\n      kind: Deployment\n      name: b-web\n    fieldPaths:\n    - spec.template.spec.containers.[name=web].env.[name=HOST].value\n", "base/kustomization.yaml": "namePrefix: b-\n" + res("cm.yaml", "d.yaml"), "base/cm.yaml": SRC, "base/d.yaml": RDEP})

# ---- more combinations and edges
case("combo-two-bases-one-overlay", {"kustomization.yaml": "namespace: shared\n" + res("a", "b"), "a/kustomization.yaml": "namePrefix: a-\n" + res("cm.yaml"), "a/cm.yaml": CM, "b/kustomization.yaml": "namePrefix: b-\n" + res("cm.yaml"), "b/cm.yaml": CM})
case("combo-generator-prefix-suffix-refs", {"kustomization.yaml": "namePrefix: x-\nnameSuffix: -y\nconfigMapGenerator:\n- name: web-config\n  literals: [mode=a]\nsecretGenerator:\n- name: web-secret\n  literals: [password=b]\n" + res("deploy.yaml", "sa.yaml", "pvc.yaml"), "deploy.yaml": DEPLOY, "sa.yaml": SA, "pvc.yaml": PVC})
case("combo-components-order-with-overlay-patch", {"kustomization.yaml": res("base") + "components:\n- c\npatches:\n- target:\n    kind: Deployment\n  patch: |-\n    - op: replace\n      path: /spec/replicas\n      value: 9\n", "base/kustomization.yaml": res("deploy.yaml"), "base/deploy.yaml": DEPLOY, "c/kustomization.yaml": "kind: Component\npatches:\n- target:\n    kind: Deployment\n  patch: |-\n    - op: replace\n      path: /spec/replicas\n      value: 2\n"})
case("combo-patch-then-labels", {"kustomization.yaml": "commonLabels:\n  x: y\n" + res("deploy.yaml") + "patches:\n- path: p.yaml\n", "deploy.yaml": DEPLOY, "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    metadata:\n      labels:\n        patched: \"yes\"\n"})
case("combo-namespace-generated-and-patch", {"kustomization.yaml": "namespace: n1\nconfigMapGenerator:\n- name: c\n  literals: [a=1]\n" + res("deploy.yaml") + "patches:\n- path: p.yaml\n", "deploy.yaml": DEPLOY, "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      volumes:\n      - name: c\n        configMap:\n          name: c\n"})
case("combo-images-in-cronjob-and-init", {"kustomization.yaml": "images:\n- name: busybox\n  newName: mirror/busybox\n  newTag: \"1.37\"\n- name: registry.example.com:5000/tools/backup\n  digest: sha256:aaaa\n" + res("a.yaml"), "a.yaml": "---\n".join([DEPLOY, CRONJOB])})
case("combo-deep-overlays", {"kustomization.yaml": "nameSuffix: -4\n" + res("l3"), "l3/kustomization.yaml": "namespace: l3\n" + res("../l2"), "l2/kustomization.yaml": "commonLabels:\n  l: \"2\"\n" + res("../l1"), "l1/kustomization.yaml": "namePrefix: l1-\n" + res("cm.yaml", "deploy.yaml"), "l1/cm.yaml": CM, "l1/deploy.yaml": DEPLOY})
case("smp-patch-adds-initcontainer", {"kustomization.yaml": res("a.yaml") + "patches:\n- path: p.yaml\n", "a.yaml": DAEMON, "p.yaml": "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: agent\nspec:\n  template:\n    spec:\n      initContainers:\n      - name: init\n        image: init:1\n"})
case("smp-patch-replace-list-directive", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- path: p.yaml\n", "deploy.yaml": DEPLOY, "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - $patch: replace\n      - name: only\n        image: only:1\n"})
case("smp-patch-delete-env-and-volume", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- path: p.yaml\n", "deploy.yaml": DEPLOY, "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        env:\n        - name: MODE\n          $patch: delete\n      volumes:\n      - name: data\n        $patch: delete\n"})
case("smp-resources-and-probes", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- path: p.yaml\n", "deploy.yaml": DEPLOY, "p.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: web\n        readinessProbe:\n          httpGet:\n            path: /healthz\n            port: 80\n        resources:\n          limits:\n            memory: 128Mi\n"})
case("smp-metadata-labels-annotations", {"kustomization.yaml": res("cm.yaml") + "patches:\n- path: p.yaml\n", "cm.yaml": CM, "p.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n  labels:\n    new: label\n  annotations:\n    new: annotation\ndata:\n  mode: patched\n"})
case("smp-target-kind-only-many", {"kustomization.yaml": res("a.yaml") + "patches:\n- target:\n    kind: ConfigMap\n  patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: ignored\n      labels:\n        all: \"true\"\n", "a.yaml": "".join(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n" for n in ["a", "b", "c"])})
case("smp-target-namespace", {"kustomization.yaml": res("a.yaml") + "patches:\n- target:\n    namespace: one\n  patch: |-\n    - op: add\n      path: /metadata/labels\n      value:\n        ns: one\n", "a.yaml": "".join(f"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {n}\n  namespace: {ns}\n" for n, ns in [("a", "one"), ("b", "two")])})
case("json6902-target-version-group", {"kustomization.yaml": res("a.yaml") + "patches:\n- target:\n    group: example.com\n    version: v1\n    kind: Widget\n  patch: |-\n    - op: replace\n      path: /spec/size\n      value: 10\n", "a.yaml": WIDGET})
case("json6902-add-to-map-and-list-in-cr", {"kustomization.yaml": res("a.yaml") + "patches:\n- target:\n    kind: Widget\n  patch: |-\n    - op: add\n      path: /spec/items/1\n      value:\n        name: inserted\n        value: 9\n    - op: add\n      path: /spec/extra\n      value:\n        nested: [1, 2]\n", "a.yaml": WIDGET})
case("gen-cm-files-and-literals-mixed", {"kustomization.yaml": "configMapGenerator:\n- name: mixed\n  literals: [z=last, a=first]\n  files: [conf.ini]\n  envs: [e.env]\n", "conf.ini": "[s]\nk=v\n", "e.env": "M=m\n"})
case("gen-secret-merge-overlay", {"kustomization.yaml": "secretGenerator:\n- name: s\n  behavior: merge\n  literals: [b=2]\n" + res("base"), "base/kustomization.yaml": "secretGenerator:\n- name: s\n  literals: [a=1]\n"})
case("gen-options-override-per-item", {"kustomization.yaml": "generatorOptions:\n  disableNameSuffixHash: true\n  labels:\n    g: \"1\"\nconfigMapGenerator:\n- name: a\n  literals: [x=1]\n  options:\n    disableNameSuffixHash: false\n    labels:\n      g: \"2\"\n"})
case("gen-key-with-dots-and-dashes", {"kustomization.yaml": "configMapGenerator:\n- name: c\n  literals:\n  - app.config-key_1=v\n  - UPPER=V\n"})
case("gen-literal-multiline-yaml", {"kustomization.yaml": "configMapGenerator:\n- name: c\n  files:\n  - app.yaml\n", "app.yaml": "server:\n  port: 8080\n  hosts:\n  - a\n  - b\n"})
case("ns-webhook-and-service", {"kustomization.yaml": "namespace: prod\n" + res("a.yaml"), "a.yaml": SERVICE + "---\napiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingWebhookConfiguration\nmetadata:\n  name: hook\nwebhooks:\n- name: v.example.com\n  clientConfig:\n    service:\n      name: web\n      namespace: default\n      path: /validate\n  admissionReviewVersions: [v1]\n  sideEffects: None\n"})
case("labels-on-cr-and-crd", {"kustomization.yaml": "commonLabels:\n  team: x\n" + res("a.yaml"), "a.yaml": CRD + "---\n" + WIDGET})
case("annotations-on-generated", {"kustomization.yaml": "commonAnnotations:\n  team: x\nconfigMapGenerator:\n- name: g\n  literals: [a=1]\n"})
case("prefix-pod-refs", {"kustomization.yaml": "namePrefix: p-\n" + res("pod.yaml", "cm.yaml", "sa.yaml"), "pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: pod\nspec:\n  serviceAccountName: web-sa\n  containers:\n  - name: c\n    image: busybox\n    envFrom:\n    - configMapRef:\n        name: web-config\n", "cm.yaml": CM, "sa.yaml": SA})
case("prefix-refs-different-namespace", {"kustomization.yaml": "namePrefix: p-\n" + res("a.yaml"), "a.yaml": CM.replace("name: web-config", "name: web-config\n  namespace: other") + "---\n" + DEPLOY.replace("name: web\n", "name: web\n  namespace: mine\n", 1)})
case("replicas-cr-unaffected", {"kustomization.yaml": "replicas:\n- name: gizmo\n  count: 2\n" + res("a.yaml"), "a.yaml": WIDGET})


# ---- real-world patterns
case("rw-overlay-merge-generator-base-namespace", {"kustomization.yaml": "configMapGenerator:\n- name: cfg\n  behavior: merge\n  literals: [b=2]\n" + res("base"), "base/kustomization.yaml": "namespace: dev\nconfigMapGenerator:\n- name: cfg\n  literals: [a=1]\n"})
case("rw-overlay-namespace-merge-generator", {"kustomization.yaml": "namespace: prod\nconfigMapGenerator:\n- name: cfg\n  behavior: merge\n  literals: [b=2]\n" + res("base"), "base/kustomization.yaml": "namespace: dev\nconfigMapGenerator:\n- name: cfg\n  literals: [a=1]\n"})
case("rw-overlay-replace-secret", {"kustomization.yaml": "namespace: prod\nsecretGenerator:\n- name: creds\n  behavior: replace\n  literals: [user=prod]\n" + res("base"), "base/kustomization.yaml": "secretGenerator:\n- name: creds\n  literals: [user=dev, pass=x]\n"})
case("rw-empty-resources", {"kustomization.yaml": "resources: []\n"})
case("rw-only-generators-with-ns", {"kustomization.yaml": "namespace: gen\nconfigMapGenerator:\n- name: a\n  literals: [k=v]\n"})
case("rw-argocd-style-app", {"kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: argocd\nresources:\n- app.yaml\n", "app.yaml": "apiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: guestbook\nspec:\n  project: default\n  source:\n    repoURL: https://example.com/repo.git\n    targetRevision: HEAD\n    path: guestbook\n  destination:\n    server: https://kubernetes.default.svc\n    namespace: guestbook\n  syncPolicy:\n    automated:\n      prune: true\n      selfHeal: true\n    syncOptions:\n    - CreateNamespace=true\n"})
case("rw-helm-like-labels", {"kustomization.yaml": "labels:\n- pairs:\n    app.kubernetes.io/name: web\n    app.kubernetes.io/instance: web-prod\n    app.kubernetes.io/managed-by: kustomize\n  includeSelectors: false\n  includeTemplates: true\n" + res("deploy.yaml", "service.yaml"), "deploy.yaml": DEPLOY, "service.yaml": SERVICE})
case("rw-image-digest-and-tag", {"kustomization.yaml": "images:\n- name: nginx\n  newTag: \"1.27\"\n  digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\n" + res("deploy.yaml"), "deploy.yaml": DEPLOY})
case("rw-image-existing-digest-newtag", {"kustomization.yaml": "images:\n- name: nginx\n  newTag: \"2\"\n" + res("deploy.yaml"), "deploy.yaml": DEPLOY.replace("image: nginx:1.25", "image: nginx@sha256:1111111111111111111111111111111111111111111111111111111111111111")})
case("rw-image-no-tag-newname", {"kustomization.yaml": "images:\n- name: busybox\n  newName: quay.io/busybox\n" + res("deploy.yaml"), "deploy.yaml": DEPLOY})
case("rw-networkpolicy-labels", {"kustomization.yaml": "commonLabels:\n  env: prod\n" + res("np.yaml"), "np.yaml": NETPOL + "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata:\n  name: egress\nspec:\n  podSelector: {}\n  egress:\n  - to:\n    - podSelector:\n        matchLabels:\n          app: db\n"})
case("rw-pdb-hpa-prefix", {"kustomization.yaml": "namePrefix: team-\ncommonLabels:\n  team: a\n" + res("a.yaml"), "a.yaml": "---\n".join([DEPLOY, HPA, PDB])})
case("rw-ingress-class-and-annotations", {"kustomization.yaml": "namespace: web\ncommonAnnotations:\n  nginx.ingress.kubernetes.io/rewrite-target: /\n" + res("ing.yaml", "svc.yaml"), "ing.yaml": INGRESS.replace("spec:\n", "spec:\n  ingressClassName: nginx\n", 1), "svc.yaml": SERVICE})
case("rw-statefulset-headless", {"kustomization.yaml": "namespace: data\nnamePrefix: pg-\nlabels:\n- pairs:\n    app: pg\n  includeSelectors: true\n" + res("sts.yaml", "svc.yaml"), "sts.yaml": STS, "svc.yaml": "apiVersion: v1\nkind: Service\nmetadata:\n  name: db\nspec:\n  clusterIP: None\n  selector:\n    app: db\n  ports:\n  - port: 5432\n"})
case("rw-job-ttl-and-backoff", {"kustomization.yaml": res("job.yaml") + "patches:\n- target:\n    kind: Job\n  patch: |-\n    - op: add\n      path: /spec/ttlSecondsAfterFinished\n      value: 300\n    - op: add\n      path: /spec/backoffLimit\n      value: 2\n", "job.yaml": JOB})
case("rw-serviceaccount-imagepullsecrets", {"kustomization.yaml": "namePrefix: x-\n" + res("sa.yaml", "s.yaml"), "sa.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: builder\nimagePullSecrets:\n- name: regcred\nsecrets:\n- name: token\n", "s.yaml": "apiVersion: v1\nkind: Secret\nmetadata:\n  name: regcred\ntype: kubernetes.io/dockerconfigjson\ndata:\n  .dockerconfigjson: e30=\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: token\n"})
case("rw-configmap-binarydata", {"kustomization.yaml": res("cm.yaml"), "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bin\nbinaryData:\n  blob: AAEC\ndata:\n  text: hi\n"})
case("rw-secret-stringdata-passthrough", {"kustomization.yaml": "namespace: s\n" + res("secret.yaml"), "secret.yaml": SECRET})
case("rw-long-command-args", {"kustomization.yaml": res("a.yaml"), "a.yaml": "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: sh\nspec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n      - name: sh\n        image: alpine\n        command: [\"/bin/sh\", \"-c\"]\n        args:\n        - |\n          set -e\n          echo \"starting a fairly long shell script line that goes past eighty columns for sure\"\n          for i in 1 2 3; do echo $i; done\n        - --flag=value with spaces and a very long tail that keeps going past the eighty column limit\n"})
case("rw-resource-quantities", {"kustomization.yaml": res("a.yaml"), "a.yaml": "apiVersion: v1\nkind: LimitRange\nmetadata:\n  name: lr\nspec:\n  limits:\n  - type: Container\n    default:\n      cpu: 500m\n      memory: 512Mi\n    defaultRequest:\n      cpu: 0.25\n      memory: 1e3\n    max:\n      cpu: \"2\"\n      memory: 1Gi\n"})
case("rw-crd-with-schema", {"kustomization.yaml": "commonLabels:\n  x: y\nnamespace: ignored\n" + res("crd.yaml"), "crd.yaml": CRD.replace("        type: object\n", "        type: object\n        properties:\n          spec:\n            type: object\n            x-kubernetes-preserve-unknown-fields: true\n            properties:\n              size:\n                type: integer\n                minimum: 0\n                default: 1\n              pattern:\n                type: string\n                pattern: '^[a-z]+$'\n")})
case("rw-priorityclass-ref", {"kustomization.yaml": "namePrefix: p-\n" + res("pc.yaml", "deploy.yaml"), "pc.yaml": "apiVersion: scheduling.k8s.io/v1\nkind: PriorityClass\nmetadata:\n  name: high\nvalue: 1000000\nglobalDefault: false\n", "deploy.yaml": DEPLOY.replace("      serviceAccountName: web-sa\n", "      serviceAccountName: web-sa\n      priorityClassName: high\n")})
case("rw-clusterrolebinding-to-role-prefixed", {"kustomization.yaml": "namePrefix: p-\nnamespace: team\n" + res("rbac.yaml"), "rbac.yaml": RBAC})
case("rw-multiple-patches-same-target", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- path: a.yaml\n- path: b.yaml\n- target:\n    kind: Deployment\n    name: web\n  path: c.yaml\n", "deploy.yaml": DEPLOY, "a.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 2\n", "b.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 3\n  minReadySeconds: 5\n", "c.yaml": "- op: replace\n  path: /spec/replicas\n  value: 4\n"})
case("rw-patch-strategic-on-statefulset-vct", {"kustomization.yaml": res("sts.yaml") + "patches:\n- path: p.yaml\n", "sts.yaml": STS, "p.yaml": "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: db\nspec:\n  volumeClaimTemplates:\n  - metadata:\n      name: data\n    spec:\n      resources:\n        requests:\n          storage: 50Gi\n"})
case("rw-patch-cronjob-schedule-and-container", {"kustomization.yaml": res("cj.yaml") + "patches:\n- path: p.yaml\n", "cj.yaml": CRONJOB, "p.yaml": "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: backup\nspec:\n  schedule: \"*/5 * * * *\"\n  jobTemplate:\n    spec:\n      template:\n        spec:\n          containers:\n          - name: backup\n            args: [\"--full\"]\n"})
case("rw-components-optional-features", {"kustomization.yaml": res("base") + "components:\n- ../components/tls\n- ../components/hpa\n".replace("../components", "components"), "base/kustomization.yaml": res("deploy.yaml", "service.yaml", "ing.yaml"), "base/deploy.yaml": DEPLOY, "base/service.yaml": SERVICE, "base/ing.yaml": INGRESS, "components/tls/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources:\n- tls.yaml\n", "components/tls/tls.yaml": TLS, "components/hpa/kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources:\n- hpa.yaml\npatches:\n- target:\n    kind: Deployment\n  patch: |-\n    - op: remove\n      path: /spec/replicas\n", "components/hpa/hpa.yaml": HPA})
case("rw-numeric-label-quoted", {"kustomization.yaml": "commonLabels:\n  version: \"1.0\"\n  enabled: \"true\"\n" + res("cm.yaml"), "cm.yaml": CM})
case("rw-kustomization-yes-label-error", {"kustomization.yaml": "commonLabels:\n  enabled: yes\n" + res("cm.yaml"), "cm.yaml": CM})
case("rw-annotation-values-as-written", {"kustomization.yaml": res("a.yaml"), "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n    octal: 0777\n    float: 1.0\n    bool: true\n    yes: yes\n    tilde: ~\n    empty: \"\"\n  labels:\n    v: \"1\"\ndata:\n  x: \"1\"\n"})
case("rw-json6902-annotation-number", {"kustomization.yaml": res("cm.yaml") + "patches:\n- target:\n    kind: ConfigMap\n  patch: |-\n    - op: add\n      path: /metadata/annotations\n      value:\n        n: 5\n        b: false\n", "cm.yaml": CM})
case("rw-sort-legacy-many-kinds", {"kustomization.yaml": res("a.yaml"), "a.yaml": "".join(f"---\napiVersion: {av}\nkind: {kd}\nmetadata:\n  name: r\n" for av, kd in [("apps/v1", "DaemonSet"), ("batch/v1", "Job"), ("policy/v1", "PodDisruptionBudget"), ("v1", "PersistentVolume"), ("v1", "Service"), ("networking.k8s.io/v1", "Ingress"), ("rbac.authorization.k8s.io/v1", "RoleBinding"), ("rbac.authorization.k8s.io/v1", "Role"), ("v1", "ServiceAccount"), ("apiextensions.k8s.io/v1", "CustomResourceDefinition"), ("v1", "Namespace"), ("policy/v1beta1", "PodSecurityPolicy"), ("apps/v1", "StatefulSet"), ("batch/v1", "CronJob"), ("v1", "Secret"), ("v1", "Pod"), ("v1", "ReplicationController")])})


# ---- more strategic merge and references
case("smp-finalizers-merge", {"kustomization.yaml": res("a.yaml") + "patches:\n- patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: a\n      finalizers: [c, a]\n", "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  finalizers: [a, b]\n"})
case("smp-command-tolerations-replaced", {"kustomization.yaml": res("a.yaml") + "patches:\n- patch: |-\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata:\n      name: d\n    spec:\n      template:\n        spec:\n          containers:\n          - name: x\n            args: [new]\n            command: [z]\n          tolerations:\n          - key: k\n", "a.yaml": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  template:\n    spec:\n      containers:\n      - name: x\n        args: [old]\n      tolerations:\n      - key: j\n"})
case("prefix-storage-refs", {"kustomization.yaml": "namePrefix: p-\n" + res("a.yaml"), "a.yaml": "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n  name: fast\nprovisioner: example.com/fast\n---\napiVersion: v1\nkind: PersistentVolume\nmetadata:\n  name: pv1\nspec:\n  storageClassName: fast\n  capacity:\n    storage: 1Gi\n  claimRef:\n    name: claim\n    namespace: default\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: claim\nspec:\n  storageClassName: fast\n  volumeName: pv1\n" + "---\n" + STS.replace("      accessModes: [ReadWriteOnce]\n", "      accessModes: [ReadWriteOnce]\n      storageClassName: fast\n")})
case("prefix-ingressclass-ref", {"kustomization.yaml": "nameSuffix: -x\n" + res("a.yaml"), "a.yaml": "apiVersion: networking.k8s.io/v1\nkind: IngressClass\nmetadata:\n  name: nginx\nspec:\n  controller: k8s.io/ingress-nginx\n---\n" + INGRESS.replace("spec:\n", "spec:\n  ingressClassName: nginx\n", 1)})
case("smp-strategic-patch-on-pod", {"kustomization.yaml": res("pod.yaml") + "patches:\n- patch: |-\n    apiVersion: v1\n    kind: Pod\n    metadata:\n      name: p\n    spec:\n      containers:\n      - name: c\n        env:\n        - name: B\n          value: b\n", "pod.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: busybox\n    env:\n    - name: A\n      value: a\n"})
case("smp-patch-ingress-rules-replaced", {"kustomization.yaml": res("ing.yaml") + "patches:\n- patch: |-\n    apiVersion: networking.k8s.io/v1\n    kind: Ingress\n    metadata:\n      name: web\n    spec:\n      rules:\n      - host: other.example.com\n", "ing.yaml": INGRESS})
case("smp-patch-service-type-lb", {"kustomization.yaml": res("svc.yaml") + "patches:\n- patch: |-\n    apiVersion: v1\n    kind: Service\n    metadata:\n      name: web\n      annotations:\n        service.beta.kubernetes.io/aws-load-balancer-type: nlb\n    spec:\n      type: LoadBalancer\n", "svc.yaml": SERVICE})
case("smp-patch-add-sidecar-and-volume", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- patch: |-\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata:\n      name: web\n    spec:\n      template:\n        spec:\n          containers:\n          - name: proxy\n            image: envoy:1\n            volumeMounts:\n            - name: envoy\n              mountPath: /etc/envoy\n          volumes:\n          - name: envoy\n            configMap:\n              name: envoy\n", "deploy.yaml": DEPLOY})
case("json6902-replace-image-by-index", {"kustomization.yaml": res("deploy.yaml") + "patchesJson6902:\n- target:\n    group: apps\n    version: v1\n    kind: Deployment\n    name: web\n  patch: |-\n    - op: replace\n      path: /spec/template/spec/containers/0/image\n      value: nginx:stable\n", "deploy.yaml": DEPLOY})
case("json6902-add-env-end", {"kustomization.yaml": res("deploy.yaml") + "patches:\n- target:\n    kind: Deployment\n  patch: |-\n    - op: add\n      path: /spec/template/spec/containers/0/env/-\n      value:\n        name: LAST\n        value: \"yes\"\n", "deploy.yaml": DEPLOY})
case("labels-template-only-statefulset", {"kustomization.yaml": "labels:\n- pairs:\n    tpl: \"1\"\n  includeTemplates: true\n" + res("sts.yaml"), "sts.yaml": STS})
case("gen-hash-stable-across-order", {"kustomization.yaml": "configMapGenerator:\n- name: c\n  literals: [b=2, a=1]\n- name: d\n  literals: [a=1, b=2]\n"})
case("gen-secret-empty", {"kustomization.yaml": "secretGenerator:\n- name: empty\n"})
case("gen-secret-immutable-options", {"kustomization.yaml": "secretGenerator:\n- name: s\n  literals: [a=1]\n  options:\n    immutable: true\n    annotations:\n      note: \"x\"\n"})
case("ns-generated-secret-ref", {"kustomization.yaml": "namespace: apps\nsecretGenerator:\n- name: web-secret\n  literals: [password=p]\n" + res("deploy.yaml"), "deploy.yaml": DEPLOY})
case("comp-nested-in-base-and-overlay", {"kustomization.yaml": res("base") + "components:\n- comp\n", "base/kustomization.yaml": res("cm.yaml") + "components:\n- ../comp2\n", "base/cm.yaml": CM, "comp/kustomization.yaml": "kind: Component\ncommonAnnotations:\n  overlay-comp: \"1\"\n", "comp2/kustomization.yaml": "kind: Component\ncommonLabels:\n  base-comp: \"1\"\n"})
case("err-replicas-non-workload", {"kustomization.yaml": "replicas:\n- name: web-config\n  count: 2\n" + res("cm.yaml"), "cm.yaml": CM})
case("err-patch-inline-and-path", {"kustomization.yaml": res("cm.yaml") + "patches:\n- path: p.yaml\n  patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: web-config\n", "cm.yaml": CM, "p.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web-config\n"})
case("err-invalid-behavior", {"kustomization.yaml": "configMapGenerator:\n- name: c\n  behavior: upsert\n  literals: [a=1]\n"})
case("err-env-file-bad-key", {"kustomization.yaml": "configMapGenerator:\n- name: c\n  envs: [bad.env]\n", "bad.env": "1BAD=x\n"})
case("err-resource-is-kustomization", {"kustomization.yaml": res("other.yaml"), "other.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n"})

case("ns-cluster-scoped-kinds", {"kustomization.yaml": "namespace: ns1\n" + res("a.yaml"), "a.yaml": "".join(f"---\napiVersion: {a}\nkind: {k}\nmetadata:\n  name: x\n" for a, k in [("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicy"), ("admissionregistration.k8s.io/v1", "ValidatingAdmissionPolicyBinding"), ("flowcontrol.apiserver.k8s.io/v1", "FlowSchema"), ("flowcontrol.apiserver.k8s.io/v1", "PriorityLevelConfiguration"), ("networking.k8s.io/v1", "IngressClass"), ("storage.k8s.io/v1", "CSIDriver"), ("storage.k8s.io/v1", "CSINode"), ("storage.k8s.io/v1", "VolumeAttachment"), ("node.k8s.io/v1", "RuntimeClass"), ("cert-manager.io/v1", "ClusterIssuer"), ("certificates.k8s.io/v1", "CertificateSigningRequest"), ("v1", "Node"), ("v1", "ComponentStatus"), ("apiregistration.k8s.io/v1", "APIService"), ("storage.k8s.io/v1", "CSIStorageCapacity"), ("v1", "PersistentVolume"), ("storage.k8s.io/v1", "StorageClass"), ("scheduling.k8s.io/v1", "PriorityClass"), ("rbac.authorization.k8s.io/v1", "ClusterRole"), ("policy/v1beta1", "PodSecurityPolicy"), ("v1", "Event")])})


# ---- vars
VARS_RES = """apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  ports:
  - port: 8080
    name: http
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: cfg
  annotations:
    a: $(SVC)
data:
  mode: fast
  url: http://$(SVC):$(PORT)
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: d
  annotations:
    x: $(SVC)
spec:
  template:
    metadata:
      annotations:
        y: $(SVC)
    spec:
      containers:
      - name: c
        image: x
        command: ["run", "$(SVC)"]
        args: ["--port=$(PORT)", "$(MODE)", "$(UNKNOWN)", "$$(SVC)", "$(SVC", "cost$5"]
        env:
        - name: A
          value: $(PORT)
        - name: B
          value: "$(SVC).$(MODE)"
        volumeMounts:
        - name: v
          mountPath: /data/$(MODE)
        workingDir: $(SVC)
"""
VARS = "vars:\n- name: SVC\n  objref:\n    kind: Service\n    name: web\n    apiVersion: v1\n- name: PORT\n  objref:\n    kind: Service\n    name: web\n    apiVersion: v1\n  fieldref:\n    fieldpath: spec.ports[0].port\n- name: MODE\n  objref:\n    kind: ConfigMap\n    name: cfg\n    apiVersion: v1\n  fieldref:\n    fieldpath: data.mode\n"
case("vars-basic", {"kustomization.yaml": res("a.yaml") + VARS, "a.yaml": VARS_RES})
case("vars-with-prefix", {"kustomization.yaml": "namePrefix: p-\n" + res("a.yaml") + VARS, "a.yaml": VARS_RES})
case("vars-from-base", {"kustomization.yaml": "nameSuffix: -o\nnamespace: v\n" + res("base"), "base/kustomization.yaml": res("a.yaml") + VARS, "base/a.yaml": VARS_RES})
case("vars-ingress-host", {"kustomization.yaml": res("ing.yaml", "svc.yaml") + "vars:\n- name: HOST\n  objref:\n    kind: Service\n    name: web\n    apiVersion: v1\n", "ing.yaml": INGRESS.replace("host: web.example.com", "host: $(HOST).example.com").replace("- web.example.com", "- $(HOST).example.com").replace("hosts: [web.example.com]", "hosts: [$(HOST).example.com]"), "svc.yaml": SERVICE})
case("vars-generated-configmap-name", {"kustomization.yaml": res("a.yaml") + "configMapGenerator:\n- name: gen\n  literals: [a=1]\nvars:\n- name: GEN\n  objref:\n    kind: ConfigMap\n    name: gen\n    apiVersion: v1\n", "a.yaml": "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    image: x\n    args: [\"--config=$(GEN)\"]\n"})
case("err-vars-missing-object", {"kustomization.yaml": res("a.yaml") + "vars:\n- name: X\n  objref:\n    kind: Service\n    name: nope\n    apiVersion: v1\n", "a.yaml": SERVICE})
case("err-vars-duplicate", {"kustomization.yaml": res("base") + "vars:\n- name: SVC\n  objref:\n    kind: Service\n    name: web\n    apiVersion: v1\n", "base/kustomization.yaml": res("svc.yaml") + "vars:\n- name: SVC\n  objref:\n    kind: Service\n    name: web\n    apiVersion: v1\n", "base/svc.yaml": SERVICE})

case("yaml-complex-keys-and-empty-meta", {"kustomization.yaml": res("a.yaml"), "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations: {}\n  labels: {}\ndata:\n  " + "k" * 130 + ": v\n  \"multi\\nline key\": v2\n  \"" + "long key with spaces " * 7 + "\": v3\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  annotations:\n  labels:\ndata: {}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  creationTimestamp: null\n"})

case("meta-origin-and-managed-by", {"kustomization.yaml": "buildMetadata: [originAnnotations, managedByLabel]\n" + res("base", "b.yaml") + "configMapGenerator:\n- name: g\n  literals: [a=1]\nsecretGenerator:\n- name: s\n  literals: [a=1]\n", "base/kustomization.yaml": res("a.yaml") + "configMapGenerator:\n- name: bg\n  literals: [b=2]\n", "base/a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n", "b.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  annotations:\n    keep: me\n"})
case("meta-origin-sibling-base", {"app/kustomization.yaml": "buildMetadata: [originAnnotations]\n" + res("../shared"), "kustomization.yaml": "buildMetadata: [originAnnotations]\n" + res("app"), "shared/kustomization.yaml": res("cm.yaml"), "shared/cm.yaml": CM})

case("labels-custom-fields", {"kustomization.yaml": "labels:\n- pairs:\n    team: a\n  fields:\n  - path: spec/selector/matchLabels\n    kind: Widget\n    create: true\n  - path: spec/template/metadata/labels\n    kind: Widget\n  - path: spec/extra/labels\n    group: example.com\n    create: true\n" + res("w.yaml", "deploy.yaml"), "w.yaml": WIDGET, "deploy.yaml": DEPLOY})

case("patch-allow-name-change", {"kustomization.yaml": res("a.yaml") + "patches:\n- target:\n    kind: ConfigMap\n    name: old\n  options:\n    allowNameChange: true\n  patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: new\n- target:\n    kind: Deployment\n  patch: |-\n    - op: replace\n      path: /metadata/name\n      value: renamed\n", "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:\n  template:\n    spec:\n      volumes:\n      - name: v\n        configMap:\n          name: old\n"})
case("patch-name-change-not-allowed", {"kustomization.yaml": res("a.yaml") + "patches:\n- target:\n    kind: ConfigMap\n  patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: new\n    data:\n      x: y\n", "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: old\n"})

case("yaml-timestamps-block-and-flow", {"kustomization.yaml": res("a.yaml"), "a.yaml": "apiVersion: v1\nkind: X\nmetadata:\n  name: a\nspec:\n  fm: {a: 2024-01-01t10:00:00Z, b: 2024-01-01 10:00:00, c: 2024-1-2}\n  fs: [2024-01-01t10:00:00Z, 2024-01-01 10:00:00, 2024-01-01T10:00:00.500+02:00, 2024-1-2]\n  bs:\n  - 2024-01-01t10:00:00Z\n  - 2024-01-01 10:00:00\n  - 2024-01-01T10:00:00.500+02:00\n  bm: 2024-01-01T10:00:00.120-05:30\n  date: 2024-1-2\n  notime: 2024-01-01T10:00:00\n  nested: [{a: 2024-01-01t10:00:00Z}]\n  quoted: \"2024-01-01\"\n"})
case("yaml-out-of-range-and-odd-numbers", {"kustomization.yaml": res("a.yaml"), "a.yaml": "apiVersion: v1\nkind: X\nmetadata:\n  name: a\nspec:\n  big: 1e400\n  under: 1__2\n  lead: _1\n  trail: 1_\n  hexu: 0x_1F\n  badhex: 0xG\n  bin: -0b11\n  e: 12e\n  pe: 1e+5\n  ne: -1e-5\n  pi: 3.14159265358979323846\n  dot: 0.\n  zz: 00\n  frac: 100000000000000000000.5\n  huge: 123456789012345678901234\n  list: [1e400, 0x_1F, 08.5]\n"})
case("yaml-merge-keys", {"kustomization.yaml": res("a.yaml"), "a.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  base: &b {x: \"1\", y: \"2\"}\n  other:\n    <<: *b\n    y: \"3\"\n  list:\n    <<: [*b, {z: \"4\"}]\n  quoted:\n    \"<<\": {q: \"1\"}\n    k: v\n"})
case("yaml-unicode-line-separators", {"kustomization.yaml": res("a.yaml"), "a.yaml": "{\"apiVersion\": \"v1\", \"kind\": \"ConfigMap\", \"metadata\": {\"name\": \"u\"}, \"data\": {\"ls\": \"a\\u2028b\", \"ps\": \"x\\u2029\", \"lit\": \"one\\ntwo\\u2028three\\n\", \"sq\": \"\\u2028'9\", \"nel\": \"a\\u0085b\", \"bom\": \"\\ufeffx\"}}\n"})

case("err-empty-kustomization", {"kustomization.yaml": "# nothing\n"})
case("err-kind-only-kustomization", {"kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"})
case("err-empty-component", {"kustomization.yaml": res("cm.yaml") + "components:\n- c\n", "cm.yaml": CM, "c/kustomization.yaml": "kind: Component\n"})
case("rw-metadata-only-kustomization", {"kustomization.yaml": "metadata:\n  name: x\n"})

case("err-generator-option-bool-label", {"kustomization.yaml": "configMapGenerator:\n- name: c\n  literals: [a=1]\n  options:\n    labels:\n      enabled: true\n"})

# A Component built directly is accumulated like a Kustomization.
case("comp-built-directly", {"kustomization.yaml": "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n" + res("cm.yaml") + "labels:\n- pairs:\n    comp: \"on\"\n", "cm.yaml": CM})
# A replicas entry that reaches no workload fails, whether no object or a non-workload has the name.
case("err-replicas-no-resources", {"kustomization.yaml": "replicas:\n- name: web\n  count: 2\n"})
case("err-replicas-other-workload-name", {"kustomization.yaml": res("deploy.yaml") + "replicas:\n- name: api\n  count: 2\n", "deploy.yaml": DEPLOY})


def write():
    os.makedirs(ROOT, exist_ok=True)
    for name, files in CASES.items():
        d = os.path.join(ROOT, name)
        if os.path.isdir(d):
            for entry in os.listdir(d):
                if entry not in ("expected.yaml", "expected-error.txt"):
                    p = os.path.join(d, entry)
                    shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
        for rel, content in files.items():
            p = os.path.join(d, rel)
            os.makedirs(os.path.dirname(p), exist_ok=True)
            mode = "wb" if isinstance(content, bytes) else "w"
            with open(p, mode) as f:
                f.write(content)
    print(len(CASES), "cases")


if __name__ == "__main__":
    write()
