#!/usr/bin/env bash
# Side-by-side benchmark: stategate `check --all` (no policies) against kubeconform v0.7.0 on the
# same inputs, in one run, alternating the two tools pair by pair so both see the same machine
# load. Prints medians and the ratios of wall time and peak RSS (from `/usr/bin/time -v`), with the
# load average next to each workload: the machine may be shared, so only ratios mean anything.
#
# Workloads (issue 12):
#   corpus   the GitOps repositories of the corpus (`check --all`, no policies). stategate also
#            validates custom resources (the repository's CRDs, else the embedded CRD catalog);
#            kubeconform, given only the Kubernetes schemas, skips them
#   corpus-k8s  the same files, with nearly the same work on both sides: `--config` turns the
#            catalog off, reads no CRD from the base and skips unknown kinds. The CRDs among the
#            checked files (argo-cd's) still define their kinds, which kubeconform does not read
#   10k      10,000 generated Deployments, one per file (../shared/tools/gen_deployments.py)
#   100k     100,000 of the same: peak memory, against the 10k figure (target: within 1.5x).
#            stategate runs PAIRS times, as for 10k, so that the ratio is of two medians (one run's
#            peak moves by half a MiB); kubeconform, at ~40 s a run, runs once
#   startup  one ConfigMap in a one-file repository
#
# Usage: benches/vs_kubeconform.sh [PAIRS]          (default 5 pairs; 100k: kubeconform once)
#   STATEGATE=/path/to/stategate   skip the release build
#   KUBECONFORM=/path/to/binary    default ../shared/tools/kubeconform/kubeconform
#   WORKLOADS="corpus 10k"         a subset (default: corpus 10k 100k startup)
#   BENCH_DIR=/tmp/dir             keep the generated workloads there and reuse them next time
# Needs the corpus (STATEGATE_CORPUS or ../shared/corpus) and python3.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
pairs=${1:-5}
corpus=${STATEGATE_CORPUS:-$here/../shared/corpus}
tools=$here/../shared/tools
kubeconform=${KUBECONFORM:-$tools/kubeconform/kubeconform}
workloads=${WORKLOADS:-corpus corpus-k8s 10k 100k startup}
if [ -z "${STATEGATE:-}" ]; then
    (cd "$here" && cargo build --release --quiet --bin stategate)
    STATEGATE=$here/target/release/stategate
fi
if [ ! -x /usr/bin/time ]; then
    echo "needs GNU time at /usr/bin/time for peak RSS" >&2
    exit 2
fi
if [ ! -x "$kubeconform" ]; then
    echo "kubeconform skipped: no executable at $kubeconform (set KUBECONFORM)"
    kubeconform=
fi
if [ -n "${BENCH_DIR:-}" ]; then
    work=$BENCH_DIR
    mkdir -p "$work"
else
    work=$(mktemp -d "${TMPDIR:-/tmp}/stategate-vs-kubeconform.XXXXXX")
    trap 'rm -rf "$work"' EXIT
fi
# shellcheck source=benches/common.sh
source "$here/benches/common.sh"

# Outside the corpus-k8s repository: Kubernetes kinds, and a custom resource without a CRD among
# the checked files is skipped, as `-ignore-missing-schemas` skips it. Written on every run: a
# reused BENCH_DIR without it measured a configuration error, not a check.
printf 'version: 1\nschemas:\n  catalog: false\n  crds: ["no-crd-file"]\n  unknown: skip\n' \
    >"$work/corpus-k8s.stategate.yaml"
for w in $workloads; do
    [ -d "$work/$w/.git" ] && continue
    rm -rf "${work:?}/$w"
    case $w in
    corpus) cp -r "$corpus/gitops-repos" "$work/corpus" && commit_all "$work/corpus" ;;
    corpus-k8s) cp -r "$corpus/gitops-repos" "$work/corpus-k8s" && commit_all "$work/corpus-k8s" ;;
    10k) python3 "$tools/gen_deployments.py" "$work/10k" 10000 >/dev/null && commit_all "$work/10k" ;;
    100k) python3 "$tools/gen_deployments.py" "$work/100k" 100000 >/dev/null && commit_all "$work/100k" ;;
    startup)
        mkdir -p "$work/startup"
        printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n' >"$work/startup/a.yaml"
        commit_all "$work/startup"
        ;;
    *) echo "unknown workload $w" >&2 && exit 2 ;;
    esac
done

python3 - "$STATEGATE" "$kubeconform" "$corpus" "$work" "$pairs" $workloads <<'PY'
import json, os, statistics, subprocess, sys, time

stategate, kubeconform, corpus, work, pairs = sys.argv[1:6]
pairs = int(pairs)
workloads = sys.argv[6:]
schemas = os.path.join(corpus, "k8s-schemas/standalone-strict/v1.32.2-standalone-strict/"
                       "{{.ResourceKind}}{{.KindSuffix}}.json")

def measure(argv, cwd):
    """Wall seconds (around `/usr/bin/time`, the same overhead for both tools) and peak RSS KiB."""
    report = os.path.join(work, "time.txt")
    output = os.path.join(work, "output.txt")
    start = time.perf_counter()
    with open(output, "wb") as out:
        p = subprocess.run(["/usr/bin/time", "-v", "-o", report] + argv, cwd=cwd,
                           stdout=out, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    rss = None
    with open(report) as f:
        for line in f:
            if "Maximum resident set size" in line:
                rss = int(line.rsplit(":", 1)[1])
    # 0 pass, 1 findings, 2 undecided (the corpus has files no tool can read): all are verdicts.
    if p.returncode not in (0, 1, 2):
        sys.exit(f"{argv[0]} failed ({p.returncode}) in {cwd}: {p.stderr.decode()[-2000:]}")
    # An undecided run that checked nothing (a configuration error) is no measurement of a check.
    if argv[0] == stategate:
        with open(output) as f:
            stats = json.load(f)["stats"]
        if stats["documents"] == 0:
            sys.exit(f"stategate checked no documents in {cwd}: {stats}")
    return wall, rss

def loadavg():
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])

def sg_argv(dir):
    argv = [stategate, "check", "--all", "--format", "json"]
    if os.path.basename(dir) == "corpus-k8s":
        argv += ["--config", dir + ".stategate.yaml"]
    return argv

def kc_argv(dir):
    return [kubeconform, "-strict", "-summary", "-n", str(os.cpu_count() or 2),
            "-schema-location", schemas, "-ignore-missing-schemas", dir]

results = {}
for w in workloads:
    dir = os.path.join(work, w)
    if w == "startup":
        dir_kc = os.path.join(dir, "a.yaml")
    else:
        dir_kc = dir
    n = pairs * 2 if w == "startup" else pairs
    kc_runs = 1 if w == "100k" else n
    before = loadavg()
    sg, kc = [], []
    for i in range(n):
        sg.append(measure(sg_argv(dir), dir))
        if kubeconform and i < kc_runs:
            kc.append(measure(kc_argv(dir_kc), dir))
    after = loadavg()
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    line = f"{w:8} stategate {med(sg,0)*1000:9.1f} ms {med(sg,1)/1024:7.1f} MiB"
    if kc:
        kt, km = med(kc, 0), med(kc, 1)
        line += (f" | kubeconform {kt*1000:9.1f} ms {km/1024:7.1f} MiB"
                 f" | speed {kt/med(sg,0):5.2f}x  memory {med(sg,1)/km:5.2f}x of kubeconform")
    line += f" | {n} run(s), {len(kc)} of kubeconform, load {before} -> {after}"
    print(line, flush=True)
    results[w] = (med(sg, 0), med(sg, 1))

if "10k" in results and "100k" in results:
    print(f"stategate peak memory 100k / 10k: {results['100k'][1] / results['10k'][1]:.2f}x"
          " (target <= 1.5x)")
PY
