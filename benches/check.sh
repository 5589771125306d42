#!/usr/bin/env bash
# Benchmark of `stategate check --all` over every GitOps repository of the corpus.
# Reports the start-up time (a one-document change in a one-file repository: process start, config,
# schema set-up, one validation) and documents per second after start-up over the corpus. Usage: benches/check.sh [RUNS]   (needs the corpus: STATEGATE_CORPUS or ../shared/corpus)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
corpus="${STATEGATE_CORPUS:-../shared/corpus}"
cargo build --release --quiet
bin="$PWD/target/release/stategate"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cp -r "$corpus/gitops-repos" "$work/repo"
cd "$work/repo"
git init -q -b main
git -c user.name=bench -c user.email=bench@example.com add -A
git -c user.name=bench -c user.email=bench@example.com commit -qm corpus
mkdir -p "$work/tiny" && cd "$work/tiny" && git init -q -b main
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n' > a.yaml
git -c user.name=bench -c user.email=bench@example.com add -A
git -c user.name=bench -c user.email=bench@example.com commit -qm tiny
printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n' > b.yaml
cd "$work/repo"

python3 - "$bin" "$runs" "$work/tiny" <<'PY'
import json, subprocess, sys, time
bin, runs, tiny = sys.argv[1], int(sys.argv[2]), sys.argv[3]

def timed(args, cwd=None):
    best = None
    out = None
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.run([bin] + args, capture_output=True, cwd=cwd)
        elapsed = time.perf_counter() - t
        best = elapsed if best is None else min(best, elapsed)
        out = p.stdout
    return best, out

startup, _ = timed(["check", "--format", "json"], cwd=tiny)
full, out = timed(["check", "--all", "--format", "json"])
report = json.loads(out)
docs = report["stats"]["documents"]
files = report["stats"]["files"]
print(f"start-up (one-document change, tiny repository): {startup*1000:.1f} ms (best of {runs})")
print(f"check --all: {files} files, {docs} documents in {full*1000:.1f} ms (best of {runs})")
print(f"throughput after start-up: {docs / (full - startup):,.0f} documents/s")
print(f"findings: {report['stats']['errors']} errors, {report['stats']['warnings']} warnings")
PY
