#!/usr/bin/env python3
"""Build the embedded CRD catalog `schemas/crds-catalog.{bin,dict,index}`.

Run from the crate root (stdlib Python 3.8+ and the `zstd` CLI):

    python3 xtask/gen-crd-catalog.py ../shared/corpus/crds-catalog/crds-catalog.tar.zst

Input: the archive of datreeio/CRDs-catalog (MIT, LICENSE inside; copied to
`schemas/crds-catalog.LICENSE`): JSON Schemas converted from CRDs by kubeconform's
openapi2jsonschema, laid out `<group>/<kind>_<version>.json` (kind lower-case), plus OpenShift's
`openshift/v4.NN-strict/<kind>_<group>_<version>.json` (the newest release wins).
`kustomize.config.k8s.io` (not a CRD: kustomize files are not judged as objects) and
`Utilities/` are left out.

Output, read by src/schema/catalog.rs:
- `crds-catalog.bin`: one zstd frame per API group, all compressed against one trained
  dictionary, so a run decompresses only the groups its documents use and each group still
  shares the common structure (ObjectMeta, conditions, selectors) through the dictionary.
  Each frame is JSON: `{"<kind-lowercase>_<version>": schema, ...}`.
- `crds-catalog.dict`: the zstd dictionary.
- `crds-catalog.index`: one line per group, `group<TAB>offset<TAB>length`, sorted by group.

Pruning drops what only documents a schema: `description`, `title`, `format` (not validated,
as in src/schema/crd.rs), `default`, `example`, `externalDocs` and `x-kubernetes-*` extensions
except the three the runtime conversion reads (`int-or-string`, `preserve-unknown-fields`,
`embedded-resource`). `nullable` is kept: the runtime (src/schema/crd.rs `convert`, the same
conversion as CRDs in the repository) turns it into a `null` type.
"""

import io
import json
import os
import re
import subprocess
import sys
import tarfile
import tempfile

SCHEMA_MAPS = ("properties", "patternProperties", "definitions", "$defs")
SCHEMA_ONE = ("items", "additionalProperties", "not", "additionalItems", "propertyNames")
SCHEMA_LIST = ("oneOf", "anyOf", "allOf", "prefixItems")
DROPPED = ("description", "title", "format", "default", "example", "examples", "externalDocs",
           "$comment")
KEPT_EXTENSIONS = ("x-kubernetes-int-or-string", "x-kubernetes-preserve-unknown-fields",
                   "x-kubernetes-embedded-resource")
LEFT_OUT_GROUPS = ("kustomize.config.k8s.io",)
PLAIN = re.compile(r"^CRDs-catalog/([^/]+)/([a-z0-9]+)_([a-z0-9]+)\.json$")
OPENSHIFT = re.compile(
    r"^CRDs-catalog/openshift/v4\.(\d+)-strict/([a-z0-9]+)_([a-z0-9.-]+)_([a-z0-9]+)\.json$")


def prune(schema):
    """A copy of `schema` without documentation-only keywords."""
    if not isinstance(schema, dict):
        return schema
    out = {}
    for key, value in schema.items():
        if key in DROPPED:
            continue
        if key.startswith("x-kubernetes-") and key not in KEPT_EXTENSIONS:
            continue
        if key in SCHEMA_MAPS and isinstance(value, dict):
            out[key] = {name: prune(sub) for name, sub in value.items()}
        elif key in SCHEMA_ONE:
            out[key] = prune(value)
        elif key in SCHEMA_LIST and isinstance(value, list):
            out[key] = [prune(sub) for sub in value]
        else:
            out[key] = value
    return out


def read_archive(path):
    """(group, key) -> schema, and the LICENSE text."""
    raw = subprocess.run(["zstd", "-q", "-d", "--long=27", "-c", path],
                         check=True, stdout=subprocess.PIPE).stdout
    plain, openshift, license_text = {}, {}, None
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        for member in tar:
            if not member.isfile():
                continue
            name = member.name.lstrip("./")
            if name == "CRDs-catalog/LICENSE":
                license_text = tar.extractfile(member).read().decode()
                continue
            m = PLAIN.match(name)
            if m and m.group(1) not in LEFT_OUT_GROUPS and m.group(1) != "Utilities":
                group, kind, version = m.groups()
                plain[(group, f"{kind}_{version}")] = json.load(tar.extractfile(member))
                continue
            m = OPENSHIFT.match(name)
            if m:
                release, kind, group, version = m.groups()
                key = (group, f"{kind}_{version}")
                if key not in openshift or openshift[key][0] < int(release):
                    openshift[key] = (int(release), json.load(tar.extractfile(member)))
    for key, (_, schema) in openshift.items():
        plain.setdefault(key, schema)
    if license_text is None:
        sys.exit("the archive has no CRDs-catalog/LICENSE")
    return plain, license_text


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    schemas, license_text = read_archive(sys.argv[1])
    groups = {}
    for (group, key), schema in schemas.items():
        groups.setdefault(group, {})[key] = prune(schema)
    os.makedirs("schemas", exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        samples = []
        for group in sorted(groups):
            sample = os.path.join(tmp, group + ".json")
            with open(sample, "w") as f:
                json.dump(groups[group], f, separators=(",", ":"), sort_keys=True)
            samples.append(sample)
        dictionary = "schemas/crds-catalog.dict"
        subprocess.run(["zstd", "-q", "-f", "--train", "--maxdict=131072", "-o", dictionary]
                       + samples, check=True)
        index, blob = [], bytearray()
        for group, sample in zip(sorted(groups), samples):
            frame = subprocess.run(
                ["zstd", "-q", "-c", "--ultra", "-22", "--no-check", "-D", dictionary, sample],
                check=True, stdout=subprocess.PIPE).stdout
            index.append(f"{group}\t{len(blob)}\t{len(frame)}\n")
            blob += frame
        raw_size = sum(os.path.getsize(s) for s in samples)
    with open("schemas/crds-catalog.bin", "wb") as f:
        f.write(blob)
    with open("schemas/crds-catalog.index", "w") as f:
        f.write("".join(index))
    with open("schemas/crds-catalog.LICENSE", "w") as f:
        f.write("The schemas in crds-catalog.bin come from datreeio/CRDs-catalog:\n\n")
        f.write(license_text)
    print(f"{len(schemas)} schemas in {len(groups)} groups: {raw_size} bytes pruned JSON, "
          f"{len(blob)} bytes of frames + {os.path.getsize(dictionary)} bytes of dictionary",
          file=sys.stderr)


if __name__ == "__main__":
    main()
