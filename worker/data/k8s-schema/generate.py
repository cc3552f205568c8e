#!/usr/bin/env python3
"""Generate Capstan's compact Kubernetes schema from the strict JSON Schema definitions.

Input: the `v1.34.0-local-strict` definitions of the PyPI package `kubernetes-validate`
(in this project's CI: ../shared/fixtures/kubernetes/v1.34.0-strict-definitions.json).
Output (stdout or --out): one JSON document the policy engine embeds at compile time:

    {"version": "1.34",
     "kinds": {"apps/v1/Deployment": "apps.v1.Deployment", ...},
     "types": {"apps.v1.Deployment": {"p": {"spec": "apps.v1.DeploymentSpec", ...}, "r": [...]}, ...}}

A type expression is either a string — a primitive (`str`, `int`, `num`, `bool`, `any`,
`int-or-str`, `num-or-str`) or the name of an entry in `types` — or an object: `{"l": T}` (list),
`{"m": T}` (map with free keys), or `{"p": {field: T}, "r": [required...]}` (object, closed: unknown
fields are errors). Descriptions, formats and patch metadata are dropped; the engine only needs
shape. Usage: generate.py INPUT.json > v1.34.json
"""
import json
import sys

PREFIXES = [
    ("io.k8s.apimachinery.pkg.apis.meta.", "meta."),
    ("io.k8s.apimachinery.pkg.api.resource.", "resource."),
    ("io.k8s.apimachinery.pkg.util.intstr.", "intstr."),
    ("io.k8s.apimachinery.pkg.runtime.", "runtime."),
    ("io.k8s.apimachinery.pkg.version.", "version."),
    ("io.k8s.apiextensions-apiserver.pkg.apis.apiextensions.", "apiextensions."),
    ("io.k8s.kube-aggregator.pkg.apis.apiregistration.", "apiregistration."),
    ("io.k8s.api.", ""),
]


def short(name):
    for long, s in PREFIXES:
        if name.startswith(long):
            return s + name[len(long):]
    return name


def types_of(node):
    t = node.get("type")
    if t is None:
        return []
    if isinstance(t, str):
        return [t]
    return [x for x in t if x != "null"]


def convert(node):
    if "$ref" in node:
        return short(node["$ref"].split("/")[-1])
    if "oneOf" in node:
        kinds = sorted({k for alt in node["oneOf"] for k in types_of(alt)})
        if kinds == ["integer", "string"]:
            return "int-or-str"
        if kinds == ["number", "string"]:
            return "num-or-str"
        return "any"
    ts = types_of(node)
    if not ts:
        return "any"
    t = ts[0]
    if t == "string":
        return "str"
    if t == "integer":
        return "int"
    if t == "number":
        return "num"
    if t == "boolean":
        return "bool"
    if t == "array":
        return {"l": convert(node.get("items", {}))}
    if t == "object":
        props = node.get("properties")
        extra = node.get("additionalProperties")
        if props is None:
            if isinstance(extra, dict):
                return {"m": convert(extra)}
            # An object with no declared shape (e.g. JSON, RawExtension payloads).
            return "any"
        out = {"p": {k: convert(v) for k, v in sorted(props.items())}}
        req = node.get("required")
        if req:
            out["r"] = sorted(req)
        if isinstance(extra, dict):
            out["x"] = convert(extra)
        return out
    return "any"


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: generate.py INPUT.json > OUTPUT.json")
    with open(sys.argv[1]) as f:
        defs = json.load(f)["$defs"]
    types = {}
    kinds = {}
    for name, node in sorted(defs.items()):
        types[short(name)] = convert(node)
        for gvk in node.get("x-kubernetes-group-version-kind", []):
            # Only the type that owns the kind defines it; list and option types also carry GVKs.
            if not name.endswith("." + gvk["kind"]):
                continue
            # Request envelopes registered in every group are not objects anyone commits.
            if gvk["kind"] in ("DeleteOptions", "WatchEvent", "Status", "APIResourceList"):
                continue
            group = gvk.get("group", "")
            api = f"{group}/{gvk['version']}" if group else gvk["version"]
            kinds[f"{api}/{gvk['kind']}"] = short(name)
    out = {"version": "1.34", "kinds": dict(sorted(kinds.items())), "types": types}
    json.dump(out, sys.stdout, separators=(",", ":"), sort_keys=False)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
