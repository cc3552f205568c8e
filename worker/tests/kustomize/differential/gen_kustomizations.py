#!/usr/bin/env python3
"""Random kustomization trees (base + overlay + component) over a fixed app, for run.sh."""
import os
import random
import sys

seed = int(sys.argv[1])
out = sys.argv[2]
random.seed(seed)

APP = {
    "deploy.yaml": """apiVersion: apps/v1
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
      serviceAccountName: sa
      containers:
      - name: web
        image: nginx:1.25
        args: ["--svc=$(SVC)"]
        envFrom:
        - configMapRef:
            name: cfg
        env:
        - name: A
          value: a
        - name: S
          valueFrom:
            secretKeyRef:
              name: sec
              key: k
        volumeMounts:
        - name: data
          mountPath: /data
      - name: side
        image: busybox
      volumes:
      - name: data
        persistentVolumeClaim:
          claimName: pvc
      - name: c
        configMap:
          name: cfg
""",
    "svc.yaml": """apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector:
    app: web
  ports:
  - name: http
    port: 80
""",
    "sa.yaml": "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: sa\n",
    "pvc.yaml": "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: pvc\nspec:\n  resources:\n    requests:\n      storage: 1Gi\n",
    "rbac.yaml": """apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: r
rules: []
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata:
  name: rb
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: Role
  name: r
subjects:
- kind: ServiceAccount
  name: sa
""",
    "cj.yaml": """apiVersion: batch/v1
kind: CronJob
metadata:
  name: job
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          containers:
          - name: j
            image: busybox:1.36
            envFrom:
            - secretRef:
                name: sec
""",
    "ing.yaml": """apiVersion: networking.k8s.io/v1
kind: Ingress
metadata:
  name: web
spec:
  rules:
  - host: example.com
    http:
      paths:
      - path: /
        pathType: Prefix
        backend:
          service:
            name: web
            port:
              number: 80
""",
}


def pick(p):
    return random.random() < p


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def transformers(level):
    k = ""
    if pick(0.4):
        k += f"namePrefix: {random.choice(['p-', 'team-', level + '-'])}\n"
    if pick(0.3):
        k += f"nameSuffix: {random.choice(['-s', '-v2'])}\n"
    if pick(0.4):
        k += f"namespace: {random.choice(['ns1', 'ns2', level])}\n"
    if pick(0.3):
        k += "commonLabels:\n  env: " + random.choice(["prod", "dev"]) + "\n"
    if pick(0.3):
        inc = random.choice(["includeSelectors: true", "includeTemplates: true", "includeSelectors: false"])
        k += f"labels:\n- pairs:\n    tier: {level}\n  {inc}\n"
    if pick(0.3):
        k += "commonAnnotations:\n  owner: " + level + "\n"
    if pick(0.4):
        k += "images:\n- name: " + random.choice(["nginx", "busybox"]) + "\n"
        k += random.choice(["  newTag: \"2.0\"\n", "  newName: mirror/x\n", "  digest: sha256:abc\n", "  newName: m/y\n  newTag: t\n"])
    if pick(0.3):
        k += "replicas:\n- name: web\n  count: " + str(random.randint(0, 5)) + "\n"
    return k


def generators(level, merge):
    k = ""
    if pick(0.5):
        beh = "  behavior: merge\n" if merge else ""
        k += f"configMapGenerator:\n- name: cfg\n{beh}  literals:\n  - {level}=1\n  - mode={random.choice(['a', 'b'])}\n"
    if pick(0.4):
        beh = "  behavior: " + random.choice(["merge", "replace"]) + "\n" if merge else ""
        k += f"secretGenerator:\n- name: sec\n{beh}  literals:\n  - k={level}\n"
    if pick(0.2):
        k += "generatorOptions:\n  disableNameSuffixHash: true\n"
    return k


def patches():
    opts = []
    if pick(0.4):
        opts.append("- patch: |-\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata:\n      name: web\n    spec:\n      template:\n        spec:\n          containers:\n          - name: web\n            env:\n            - name: B\n              value: b\n")
    if pick(0.3):
        opts.append("- target:\n    kind: Deployment\n  patch: |-\n    - op: replace\n      path: /spec/template/spec/containers/1/image\n      value: busybox:patched\n")
    if pick(0.2):
        opts.append("- target:\n    kind: Service\n  patch: |-\n    apiVersion: v1\n    kind: Service\n    metadata:\n      name: x\n    spec:\n      type: NodePort\n")
    if pick(0.2):
        opts.append("- patch: |-\n    apiVersion: apps/v1\n    kind: Deployment\n    metadata:\n      name: web\n    spec:\n      template:\n        spec:\n          containers:\n          - name: side\n            $patch: delete\n")
    if pick(0.2):
        opts.append("- target:\n    labelSelector: app=web\n  patch: |-\n    - op: add\n      path: /metadata/annotations\n      value:\n        touched: \"yes\"\n")
    if pick(0.15):
        opts.append("- patch: |-\n    apiVersion: v1\n    kind: ConfigMap\n    metadata:\n      name: cfg\n    data:\n      patched: \"1\"\n")
    return "patches:\n" + "".join(opts) if opts else ""


def extras():
    k = ""
    if pick(0.25):
        k += "replacements:\n- source:\n    kind: Service\n    name: web\n  targets:\n  - select:\n      kind: Deployment\n    fieldPaths:\n    - spec.template.spec.containers.[name=web].env.[name=A].value\n"
    if pick(0.15):
        k += "vars:\n- name: SVC\n  objref:\n    kind: Service\n    name: web\n    apiVersion: v1\n"
    if pick(0.15):
        k += "sortOptions:\n  order: fifo\n"
    if pick(0.1):
        k += "buildMetadata: [originAnnotations]\n"
    return k


files = dict(("base/" + k, v) for k, v in APP.items())
base = "resources:\n" + "".join(f"- {f}\n" for f in APP) + transformers("base") + generators("base", False)
write(os.path.join(out, "base/kustomization.yaml"), base)
for k, v in files.items():
    write(os.path.join(out, k), v)
comp = ""
if pick(0.4):
    write(os.path.join(out, "comp/kustomization.yaml"), "kind: Component\n" + transformers("comp") + patches())
    comp = "components:\n- comp\n"
overlay = "resources:\n- base\n" + transformers("overlay") + generators("overlay", True) + patches() + comp + extras()
write(os.path.join(out, "kustomization.yaml"), overlay)
