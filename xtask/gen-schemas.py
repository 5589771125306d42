#!/usr/bin/env python3
"""Build the embedded Kubernetes schema bundle `schemas/kubernetes.jsonl.zst`.

Run from the crate root (stdlib Python 3.8+ and the `zstd` CLI):

    pip download kubernetes-validate --no-deps -d /tmp/kv && cd /tmp/kv && unzip -o -d x *.whl
    python3 xtask/gen-schemas.py /tmp/kv/x/kubernetes_validate/kubernetes-json-schema

Input: the `v1.XX.0-local-strict` sets that the PyPI package `kubernetes-validate` (Apache-2.0)
ships. Each holds `_definitions.json` (`$defs`) and one file per type; the files whose
`apiVersion` and `kind` are pinned by `enum` are the top-level kinds (List kinds included).

Output: one zstd stream (long window, so later versions compress against earlier ones), one JSON
line per version, newest first, so the runtime stops decoding as soon as it has the version it
wants (the default, newest, is the first line). Each line is the version, a tab, and JSON:

    1.37<TAB>{"defs":{...},"kinds":{"apps/v1/Deployment":{...}}}

plus `schemas/kubernetes.versions` (the version list, newest first, read without decompressing)
and `schemas/kubernetes.newest.json` (the newest version's JSON, uncompressed: the default costs
no decoding at start-up).

Pruning keeps validation behaviour and drops what only documents it: `description`, `format`
(formats are not validated, like kubectl's client-side checks), `x-kubernetes-*` extensions,
`$schema`/`$id` (the runtime sets them), and every definition no top-level kind reaches.
One rewrite: `oneOf: [{type: [string, null]}, {type: [integer, null]}]` (IntOrString, Quantity)
becomes `type: [string, integer, null]`; under `oneOf` a null matched both branches and was
rejected, which the API server accepts.
"""

import json
import os
import re
import subprocess
import sys

DEFS_PREFIXES = ("/api/_definitions.json#/$defs/", "#/$defs/")
# Keys whose value is a map of name -> schema; their keys are data, not keywords.
SCHEMA_MAPS = ("properties", "patternProperties", "$defs")
SCHEMA_ONE = ("items", "additionalProperties", "not", "additionalItems", "propertyNames")
SCHEMA_LIST = ("oneOf", "anyOf", "allOf", "prefixItems")
DROPPED = ("description", "format", "$schema", "$id", "default", "example", "examples")


def prune(schema):
    """A copy of `schema` without documentation-only keywords."""
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in DROPPED or key.startswith("x-kubernetes-"):
            continue
        if key in SCHEMA_MAPS:
            out[key] = {name: prune(sub) for name, sub in value.items()}
        elif key in SCHEMA_ONE:
            out[key] = prune(value)
        elif key in SCHEMA_LIST:
            out[key] = [prune(sub) for sub in value]
        else:
            out[key] = value
    return merge_type_only_one_of(out)


def merge_type_only_one_of(schema):
    branches = schema.get("oneOf")
    if not branches or not all(set(b) == {"type"} for b in branches):
        return schema
    types = []
    for branch in branches:
        for t in branch["type"] if isinstance(branch["type"], list) else [branch["type"]]:
            if t not in types:
                types.append(t)
    merged = {k: v for k, v in schema.items() if k != "oneOf"}
    merged["type"] = types
    return merged


def refs_in(schema, out):
    if isinstance(schema, dict):
        ref = schema.get("$ref")
        if isinstance(ref, str):
            for prefix in DEFS_PREFIXES:
                if ref.startswith(prefix):
                    out.add(ref[len(prefix):])
        for value in schema.values():
            refs_in(value, out)
    elif isinstance(schema, list):
        for value in schema:
            refs_in(value, out)


def pinned(schema, field):
    enum = schema.get("properties", {}).get(field, {}).get("enum")
    return enum[0] if isinstance(enum, list) and len(enum) == 1 else None


def load_version(directory):
    with open(os.path.join(directory, "_definitions.json")) as f:
        all_defs = json.load(f)["$defs"]
    kinds = {}
    for name in sorted(os.listdir(directory)):
        if not name.endswith(".json") or name in ("_definitions.json", "all.json"):
            continue
        with open(os.path.join(directory, name)) as f:
            schema = json.load(f)
        api_version, kind = pinned(schema, "apiVersion"), pinned(schema, "kind")
        if api_version and kind:
            kinds[f"{api_version}/{kind}"] = prune(schema)
    reachable, todo = set(), set()
    refs_in(kinds, todo)
    while todo:
        name = todo.pop()
        if name in reachable:
            continue
        reachable.add(name)
        refs_in(all_defs[name], todo)
    defs = {name: prune(all_defs[name]) for name in sorted(reachable)}
    return kinds, defs


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    source = sys.argv[1]
    versions = []
    for name in os.listdir(source):
        m = re.fullmatch(r"v1\.(\d+)\.0-local-strict", name)
        if m and int(m.group(1)) >= 25:
            versions.append((int(m.group(1)), name))
    versions.sort(reverse=True)
    lines = []
    for minor, name in versions:
        kinds, defs = load_version(os.path.join(source, name))
        line = {"kinds": kinds, "defs": defs}
        lines.append(f"1.{minor}\t" + json.dumps(line, separators=(",", ":"), sort_keys=True))
        print(f"1.{minor}: {len(kinds)} kinds, {len(defs)} definitions, {len(lines[-1])} bytes",
              file=sys.stderr)
    raw = ("\n".join(lines) + "\n").encode()
    os.makedirs("schemas", exist_ok=True)
    out = "schemas/kubernetes.jsonl.zst"
    # An 8 MiB window holds every version (3.8 MB raw) and keeps the decoder's buffer small;
    # ruzstd accepts windows up to 128 MiB (--long=27). -22 --ultra for the smallest file.
    subprocess.run(["zstd", "-q", "-f", "--ultra", "-22", "--long=23", "--no-check", "-o", out],
                   input=raw, check=True)
    # The newest (default) version also uncompressed: decoding it was half of a one-file check's
    # start-up, and 385 KB in the binary is the cheaper price.
    with open("schemas/kubernetes.newest.json", "w") as f:
        f.write(lines[0].split("\t", 1)[1])
    with open("schemas/kubernetes.versions", "w") as f:
        f.write("".join(f"1.{minor}\n" for minor, _ in versions))
    print(f"{out}: {len(raw)} bytes raw, {os.path.getsize(out)} bytes compressed",
          file=sys.stderr)


if __name__ == "__main__":
    main()
