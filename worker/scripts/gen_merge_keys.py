#!/usr/bin/env python3
"""Generates worker/data/k8s-merge-keys.json: the patch strategies and merge keys kustomize's
strategic merge uses, i.e. those of the Kubernetes OpenAPI document kustomize v5 compiles in
(kyaml's `kubernetesapi/v1_21_2/swagger.pb.gz`, Kubernetes v1.21.2). A newer Kubernetes schema
would merge lists kustomize replaces (fields added since, such as `resourceClaims`) and miss
kinds it still knows (`batch/v1beta1` CronJob), so the data must come from kustomize's own copy.

The input is the gzipped protobuf (gnostic OpenAPI v2) document; it is read with a minimal
wire-format decoder, so nothing beyond the standard library is needed.

Output: {"gvks": {"<group/version or version>/<Kind>": "<type>"},
         "types": {"<type>": {"<field>": ["<item or field type or ''>", "<strategy>",
                                           "<merge keys, comma-separated>"]}}}
The merge keys are kyaml's: `x-kubernetes-list-map-keys` when present, else
`x-kubernetes-patch-merge-key`, and only for fields with a patch strategy. Only fields that lead
to other object types or carry patch metadata are kept, so the file stays small; the native
kustomize engine embeds it at compile time.

Usage: worker/scripts/gen_merge_keys.py <kustomize checkout>/kyaml/openapi/kubernetesapi/v1_21_2/swagger.pb.gz \
         > worker/data/k8s-merge-keys.json
"""
import gzip
import json
import sys

# Field numbers of gnostic's openapi_v2 messages used below.
DOC_DEFINITIONS = 9
NAMED_NAME, NAMED_VALUE = 1, 2
SCHEMA_REF, SCHEMA_ITEMS, SCHEMA_PROPERTIES, SCHEMA_EXTENSIONS = 1, 23, 25, 31
ITEMS_SCHEMA = 1
ANY_YAML = 2


def varint(b, i):
    r = s = 0
    while True:
        c = b[i]
        i += 1
        r |= (c & 0x7F) << s
        s += 7
        if c < 0x80:
            return r, i


def fields(b):
    """(field number, bytes or int) pairs of one message."""
    i, out = 0, []
    while i < len(b):
        k, i = varint(b, i)
        f, t = k >> 3, k & 7
        if t == 0:
            v, i = varint(b, i)
        elif t == 2:
            n, i = varint(b, i)
            v, i = b[i : i + n], i + n
        elif t == 1:
            v, i = b[i : i + 8], i + 8
        elif t == 5:
            v, i = b[i : i + 4], i + 4
        else:
            raise ValueError(f"wire type {t}")
        out.append((f, v))
    return out


def first(msg, num):
    return next((v for f, v in fields(msg) if f == num), None)


def named(msg):
    """A NamedSchema / NamedAny: (name, value bytes)."""
    return first(msg, NAMED_NAME).decode(), first(msg, NAMED_VALUE) or b""


def ref_name(schema):
    ref = first(schema, SCHEMA_REF)
    return ref.decode().rsplit("/", 1)[-1] if ref else None


def extensions(schema):
    out = {}
    for f, v in fields(schema):
        if f == SCHEMA_EXTENSIONS:
            name, anyv = named(v)
            out[name] = (first(anyv, ANY_YAML) or b"").decode()
    return out


def yaml_scalar(text):
    return text.strip()


def yaml_list(text):
    return [line[2:].strip() for line in text.splitlines() if line.startswith("- ")]


def gvk_list(text):
    """The `x-kubernetes-group-version-kind` YAML: a list of {group, kind, version} maps."""
    out, cur = [], None
    for line in text.splitlines():
        if line.startswith("- "):
            cur = {}
            out.append(cur)
            line = line[2:]
        line = line.strip()
        if cur is not None and ":" in line:
            k, v = line.split(":", 1)
            cur[k.strip()] = v.strip().strip('"')
    return out


doc = gzip.open(sys.argv[1]).read()
defs = {}
for f, v in fields(first(doc, DOC_DEFINITIONS)):
    name, schema = named(v)
    defs[name] = schema

types, gvks = {}, {}
for name, schema in defs.items():
    ext = extensions(schema)
    for gvk in gvk_list(ext.get("x-kubernetes-group-version-kind", "")):
        g, ver, k = gvk.get("group", ""), gvk.get("version", ""), gvk.get("kind", "")
        gvks[(g + "/" if g else "") + ver + "/" + k] = name
    props = first(schema, SCHEMA_PROPERTIES)
    if not props:
        continue
    out = {}
    for f, v in fields(props):
        field, fs = named(v)
        items = first(fs, SCHEMA_ITEMS)
        item = first(items, ITEMS_SCHEMA) if items else None
        target = ref_name(item) if item else ref_name(fs)
        fext = extensions(fs)
        strategy = yaml_scalar(fext.get("x-kubernetes-patch-strategy", ""))
        keys = ""
        if strategy:
            if "x-kubernetes-list-map-keys" in fext:
                keys = ",".join(yaml_list(fext["x-kubernetes-list-map-keys"]))
            else:
                keys = yaml_scalar(fext.get("x-kubernetes-patch-merge-key", ""))
        if target and not first(defs.get(target, b""), SCHEMA_PROPERTIES):
            target = None
        if target or strategy or keys:
            out[field] = [target or "", strategy, keys]
    if out:
        types[name] = out

# Keep only types reachable from a top-level kind.
keep, stack = set(), list(gvks.values())
while stack:
    t = stack.pop()
    if t in keep:
        continue
    keep.add(t)
    stack.extend(f[0] for f in types.get(t, {}).values() if f[0])
types = {k: v for k, v in sorted(types.items()) if k in keep}
json.dump({"gvks": dict(sorted(gvks.items())), "types": types}, sys.stdout, separators=(",", ":"), sort_keys=True)
sys.stdout.write("\n")
