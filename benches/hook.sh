#!/bin/sh
# Hook wall time on big repositories (issue 4): the time `stategate hook pre-receive` takes for
#   (a) a push changing one manifest in a repository of 50,000 manifests,
#   (b) a push changing 10,000 manifests.
# Targets on 2 cores: (a) < 50 ms, (b) < 2 s. GitHub Enterprise Server gives all pre-receive hooks
# of a repository 5 s together.
#
# The repository is built with `git fast-import` (seconds, not minutes), the pushed commits are
# written into it under refs/bench/*, and the hook is then run exactly as git runs it: in the git
# dir, GIT_DIR set, one "<old> <new> <ref>" line on stdin. A real `git push` through the installed
# hook is timed too, for the end-to-end picture.
#
# Usage: benches/hook.sh [FILES] [CHANGED] [RUNS]   (defaults 50000 10000 5)
# STATEGATE=/path/to/stategate skips the release build.
set -eu

FILES=${1:-50000}
CHANGED=${2:-10000}
RUNS=${3:-5}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/benches/run_hook.sh"
if [ -z "${STATEGATE:-}" ]; then
    (cd "$here" && cargo build --release --quiet)
    STATEGATE="$here/target/release/stategate"
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/stategate-hook-bench.XXXXXX")
[ -n "${KEEP:-}" ] && echo "keeping $work" || trap 'rm -rf "$work"' EXIT
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null

git init -q --bare -b main "$work/repo.git"

# A Deployment per file, 100 files per directory. `replicas` is what the changes bump.
awk -v files="$FILES" -v changed="$CHANGED" '
function manifest(i, replicas,   name) {
    name = sprintf("app-%05d", i)
    return "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: " name "\n  namespace: team-" int(i / 100) "\n  labels:\n    app: " name "\nspec:\n  replicas: " replicas "\n  selector:\n    matchLabels:\n      app: " name "\n  template:\n    metadata:\n      labels:\n        app: " name "\n    spec:\n      containers:\n        - name: app\n          image: ghcr.io/example/" name ":1.0.0\n          ports:\n            - containerPort: 8080\n          resources:\n            limits:\n              memory: 128Mi\n"
}
function path(i) { return sprintf("apps/team-%03d/app-%05d.yaml", int(i / 100), i) }
function put(i, replicas,   text) {
    text = manifest(i, replicas)
    printf "M 100644 inline %s\ndata %d\n%s\n", path(i), length(text), text
}
BEGIN {
    config = "version: 1\nprotect:\n  refs: [\"refs/heads/main\"]\n"
    printf "commit refs/heads/main\ncommitter Bench <bench@example.com> 1700000000 +0000\ndata 4\nseed\n"
    printf "M 100644 inline .stategate.yaml\ndata %d\n%s\n", length(config), config
    for (i = 0; i < files; i++) put(i, 2)
    printf "\ncommit refs/bench/one\ncommitter Bench <bench@example.com> 1700000060 +0000\ndata 7\none app\nfrom refs/heads/main\n"
    put(int(files / 2), 3)
    printf "\ncommit refs/bench/many\ncommitter Bench <bench@example.com> 1700000120 +0000\ndata 9\nmany apps\nfrom refs/heads/main\n"
    for (i = 0; i < changed; i++) put(i, 4)
    printf "\n"
}' | git --git-dir="$work/repo.git" fast-import --quiet

old=$(git --git-dir="$work/repo.git" rev-parse refs/heads/main)
one=$(git --git-dir="$work/repo.git" rev-parse refs/bench/one)
many=$(git --git-dir="$work/repo.git" rev-parse refs/bench/many)
"$STATEGATE" hook install --repo "$work/repo.git" >/dev/null 2>&1

now_ms() { echo $(($(date +%s%N) / 1000000)); }

# Runs the hook RUNS times on one update line; prints min and median wall time in ms.
time_hook() {
    label=$1 new=$2
    times=""
    i=0
    while [ "$i" -lt "$RUNS" ]; do
        start=$(now_ms)
        run_hook "$work/repo.git" "$old" "$new" "$work"
        end=$(now_ms)
        times="$times $((end - start))"
        i=$((i + 1))
    done
    echo "$times" | tr ' ' '\n' | sed '/^$/d' | sort -n |
        awk -v label="$label" '{ t[NR] = $1 } END { printf "%-44s min %5d ms   median %5d ms   (%d runs)\n", label, t[1], t[int((NR + 1) / 2)], NR }'
}

echo "repository: $FILES manifests; $(nproc 2>/dev/null || echo '?') cores; $("$STATEGATE" --version)"
time_hook "(a) 1 changed manifest of $FILES" "$one"
time_hook "(b) $CHANGED changed manifests" "$many"

# End to end: a clone pushes the one-file change through git and the installed hook.
git clone -q "$work/repo.git" "$work/clone"
git -C "$work/clone" fetch -q origin refs/bench/one
git -C "$work/clone" -c user.name=b -c user.email=b@example.com reset -q --hard FETCH_HEAD
start=$(now_ms)
git -C "$work/clone" push -q origin HEAD:main 2>"$work/push.out"
end=$(now_ms)
echo "(a) end to end: git push over file:// incl. hook    $((end - start)) ms"
