#!/usr/bin/env python3
"""Generates worker/data/k8s-merge-keys.json from the Kubernetes JSON Schema fixture.

Output: {"gvks": {"<group/version or version>/<Kind>": "<type>"},
         "types": {"<type>": {"<field>": ["<item or field type or ''>", "<strategy>", "<merge key>"]}}}
Only fields that lead to other object types or carry patch metadata are kept, so the file stays
small; the native kustomize engine embeds it and never reads ../shared at run time.

Usage: worker/scripts/gen_merge_keys.py [path-to-strict-definitions.json] > worker/data/k8s-merge-keys.json
"""
import json
import sys

src = sys.argv[1] if len(sys.argv) > 1 else "../shared/fixtures/kubernetes/v1.34.0-strict-definitions.json"
defs = json.load(open(src))["$defs"]


def ref_of(schema):
    if not isinstance(schema, dict):
        return None
    if "$ref" in schema:
        return schema["$ref"].split("/")[-1]
    for alt in schema.get("oneOf", []) + schema.get("anyOf", []) + schema.get("allOf", []):
        r = ref_of(alt)
        if r:
            return r
    return None


types = {}
for name, d in defs.items():
    props = d.get("properties") or {}
    fields = {}
    for f, s in props.items():
        item = s.get("items") if isinstance(s, dict) else None
        target = ref_of(item) if item else ref_of(s)
        if target and not (defs.get(target, {}).get("properties")):
            target = None
        strategy = s.get("x-kubernetes-patch-strategy", "")
        key = s.get("x-kubernetes-patch-merge-key", "")
        if target or strategy or key:
            fields[f] = [target or "", strategy, key]
    if fields:
        types[name] = fields

gvks = {}
for name, d in defs.items():
    for gvk in d.get("x-kubernetes-group-version-kind", []) or []:
        g, v, k = gvk.get("group", ""), gvk["version"], gvk["kind"]
        gvks[(g + "/" if g else "") + v + "/" + k] = name
    if not d.get("x-kubernetes-group-version-kind"):
        props = d.get("properties") or {}
        av = (props.get("apiVersion") or {}).get("enum")
        kd = (props.get("kind") or {}).get("enum")
        if av and kd and len(av) == 1 and len(kd) == 1:
            gvks[av[0] + "/" + kd[0]] = name

# Keep only types reachable from a top-level kind.
keep = set()
stack = list(gvks.values())
while stack:
    t = stack.pop()
    if t in keep:
        continue
    keep.add(t)
    for f in types.get(t, {}).values():
        if f[0]:
            stack.append(f[0])
types = {k: v for k, v in sorted(types.items()) if k in keep}
json.dump({"gvks": dict(sorted(gvks.items())), "types": types}, sys.stdout, separators=(",", ":"), sort_keys=True)
sys.stdout.write("\n")
