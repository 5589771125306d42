#!/usr/bin/env bash
# Makes layout/hot-functions.txt: the functions a check calls, in the order it first calls them,
# which build.rs hands to the linker so they are linked next to each other (see build.rs for why).
#
# valgrind's callgrind records every function a run calls, however rarely (a sampling profiler
# misses the ones called once, and each of those still brings its page in). The runs: a
# one-ConfigMap repository (start-up), the bundled example (README's first command), 300
# generated Deployments of which some are invalid (the streaming path, with findings), and the
# corpus's GitOps repositories when the corpus is there (CRDs, Flux, Argo CD, Helm templates).
#
# Run it again after large changes: functions the list names that a build no longer has are
# passed over, and new ones are linked after the listed ones, as before the list existed. The
# symbol names depend on the build, so the script builds first and reads the names back from
# the binary it profiled.
#
# Usage: benches/code_layout.sh        Needs valgrind, python3, git.
#   STATEGATE=/path/to/release/stategate   profile this binary instead of building one
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
corpus=${STATEGATE_CORPUS:-$here/../shared/corpus}
if ! command -v valgrind >/dev/null; then
    echo "needs valgrind (apt-get install valgrind)" >&2
    exit 2
fi
if [ -z "${STATEGATE:-}" ]; then
    (cd "$here" && cargo build --release --locked --quiet --bin stategate)
    STATEGATE=$here/target/release/stategate
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/stategate-layout.XXXXXX")
trap 'rm -rf "$work"' EXIT
# shellcheck source=benches/common.sh
source "$here/benches/common.sh"

mkdir -p "$work/one" "$work/deployments/apps"
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n' >"$work/one/a.yaml"
commit_all "$work/one"
python3 - "$work/deployments/apps" <<'PY'
import sys
out = sys.argv[1]
for i in range(300):
    replicas = '"3"' if i % 50 == 7 else str(1 + i % 5)
    selector = "" if i % 50 == 13 else f"  selector:\n    matchLabels:\n      app: svc-{i}\n"
    typo = "      imagePullPolicyy: IfNotPresent\n" if i % 50 == 29 else ""
    with open(f"{out}/svc-{i:03d}.yaml", "w") as f:
        f.write(f"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: svc-{i}
  namespace: team-{i % 4}
spec:
  replicas: {replicas}
{selector}  template:
    metadata:
      labels:
        app: svc-{i}
    spec:
      containers:
      - name: app
        image: ghcr.io/acme/app:1.{i}
{typo}        ports:
        - containerPort: 8080
""")
PY
commit_all "$work/deployments"

profile() { # name, directory, arguments...
    local name=$1 dir=$2
    shift 2
    (cd "$dir" && valgrind --tool=callgrind --demangle=no --callgrind-out-file="$work/cg.$name" \
        "$STATEGATE" "$@" >/dev/null 2>"$work/valgrind.$name.log") || {
        # A check with findings exits 1 or 2: a verdict, not a failure of the run.
        grep -q "ERROR SUMMARY\|Collected" "$work/valgrind.$name.log" ||
            { cat "$work/valgrind.$name.log" >&2; exit 1; }
    }
}
profile one "$work/one" check --all --format json
profile example "$here" check --all examples/demo --config examples/demo/.stategate.yaml
profile deployments "$work/deployments" check --all --format json
if [ -d "$corpus/gitops-repos" ]; then
    cp -r "$corpus/gitops-repos" "$work/corpus"
    commit_all "$work/corpus"
    profile corpus "$work/corpus" check --all --format json
else
    echo "corpus not found at $corpus: profiled without it"
fi

python3 - "$STATEGATE" "$here/layout/hot-functions.txt" "$work"/cg.* <<'PY'
import re, subprocess, sys
binary, out, records = sys.argv[1], sys.argv[2], sys.argv[3:]
symbols = set()
for line in subprocess.run(["nm", binary], capture_output=True, text=True, check=True).stdout.splitlines():
    parts = line.split()
    if len(parts) == 3 and parts[1] in "tTwW":
        symbols.add(parts[2])
order, seen = [], set()
for record in records:
    names = {}
    with open(record, errors="replace") as f:
        for line in f:
            m = re.match(r"^fn=\((\d+)\)(?: (.*))?$", line.rstrip("\n"))
            if not m:
                m = re.match(r"^c?fn=\((\d+)\) (.*)$", line.rstrip("\n"))
                if m:
                    names[m.group(1)] = m.group(2)
                continue
            number, name = m.groups()
            if name:
                names[number] = name
            name = names.get(number)
            if name in symbols and name not in seen:
                seen.add(name)
                order.append(name)
with open(out, "w") as f:
    f.write("".join(name + "\n" for name in order))
print(f"{out}: {len(order)} functions")
PY
