#!/bin/sh
# Hook wall time with rendering (issue 12): one push that changes a base shared by 20 overlays,
# each with a patch, judged by the installed pre-receive hook with `render.kustomize` on all 20.
# Targets on 2 cores: under 4 s from a cold render cache, under 1 s warm.
#
# Timed, each RUNS times (min and median), the hook run exactly as git runs it (in the git dir,
# GIT_DIR set, one "<old> <new> <ref>" line on stdin):
#   cold     the cache in the git dir removed first: every root rendered at both sides;
#   next     the push after it (the base changes again): the base side is the previous push's
#            head, already in the cache, so only the head side renders (what the issue calls warm);
#   re-push  the same change judged again: both sides cached, nothing renders.
# Then a real `git push` through the installed hook, for each of the three.
#
# kubectl's share: `kubectl` on the hook's PATH is a wrapper that logs the start and end of each
# call (and its CPU time through /usr/bin/time) before running the real one. For each figure the
# script prints the number of calls, the wall time during which at least one kubectl ran (the
# union of the calls' intervals) as a share of the hook's wall time, and kubectl's CPU seconds.
#
# Measured 2026-12-01 on the shared 2-core machine, RUNS=3, at load 9.4-11 (other builds running),
# kubectl v1.32.4 (kustomize v5.5.0), hook run directly, min / median:
#   main eb39402 (optimised, one kubectl per root and side):
#     cold 14.4 / 15.8 s (40 calls, 10.9 s kubectl CPU, kubectl running 97% of the wall time);
#     next push 6.4 / 7.0 s (20 calls, 96%); re-push 0.08 / 0.14 s (no call).
#   branch s18-hookr, a DEBUG build (one kubectl per side for all roots, src/render/batch.rs):
#     cold 2.03 / 2.19 s (2 calls, 1.0 s kubectl CPU, 51%); next push 1.91 / 2.05 s (1 call, 53%);
#     re-push 0.64 / 0.71 s (no call; the debug build's own time).
#
# Usage: benches/hook_render.sh [RUNS] [OVERLAYS]   (defaults 5 20)
# STATEGATE=/path/to/stategate skips the build; KUBECTL=/path/to/kubectl (default /usr/bin/kubectl).
set -eu

RUNS=${1:-5}
OVERLAYS=${2:-20}
KUBECTL=${KUBECTL:-/usr/bin/kubectl}
here=$(cd "$(dirname "$0")/.." && pwd)
. "$here/benches/run_hook.sh"
if [ -z "${STATEGATE:-}" ]; then
    (cd "$here" && cargo build --release --quiet)
    STATEGATE="$here/target/release/stategate"
fi
[ -x "$KUBECTL" ] || { echo "skipping: no kubectl at $KUBECTL" >&2; exit 0; }
work=$(mktemp -d "${TMPDIR:-/tmp}/stategate-hook-render-bench.XXXXXX")
[ -n "${KEEP:-}" ] && echo "keeping $work" || trap 'rm -rf "$work"' EXIT
export GIT_CONFIG_NOSYSTEM=1 GIT_CONFIG_GLOBAL=/dev/null

# The wrapper. The renderer's environment is cleared but for PATH, so the log path is written in.
mkdir -p "$work/bin"
log="$work/kubectl.log"
cat >"$work/bin/kubectl" <<EOF
#!/bin/sh
start=\$(date +%s%N)
/usr/bin/time -a -o "$log.cpu" -f "%U %S" "$KUBECTL" "\$@"
status=\$?
echo "\$start \$(date +%s%N)" >>"$log"
exit \$status
EOF
chmod +x "$work/bin/kubectl"
export PATH="$work/bin:$PATH"

# The repository: a base (Deployment, Service, ConfigMap) and OVERLAYS overlays, each in its own
# namespace with a strategic-merge patch on the Deployment.
src="$work/src"
git init -q -b main "$src"
mkdir -p "$src/base"
cat >"$src/.stategate.yaml" <<'EOF'
version: 1
render:
  kustomize: ["overlays/*"]
protect:
  refs: ["refs/heads/main"]
EOF
cat >"$src/base/kustomization.yaml" <<'EOF'
resources: [deployment.yaml, service.yaml, configmap.yaml]
EOF
deployment() {
    cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  labels: {app: web}
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:$1
          ports:
            - containerPort: 8080
          resources:
            limits: {memory: 128Mi}
EOF
}
deployment 1.27 >"$src/base/deployment.yaml"
cat >"$src/base/service.yaml" <<'EOF'
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  selector: {app: web}
  ports:
    - port: 80
      targetPort: 8080
EOF
cat >"$src/base/configmap.yaml" <<'EOF'
apiVersion: v1
kind: ConfigMap
metadata:
  name: web
data:
  LOG_LEVEL: info
EOF
i=1
while [ "$i" -le "$OVERLAYS" ]; do
    o=$(printf "o%02d" "$i")
    mkdir -p "$src/overlays/$o"
    printf 'resources: [../../base]\nnamespace: %s\npatches:\n  - path: patch.yaml\n' "$o" \
        >"$src/overlays/$o/kustomization.yaml"
    printf 'apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: %d\n' \
        "$((i % 5 + 1))" >"$src/overlays/$o/patch.yaml"
    i=$((i + 1))
done
commit() { git -C "$src" add -A && git -C "$src" -c user.name=b -c user.email=b@example.com commit -q -m "$1"; }
commit seed
c0=$(git -C "$src" rev-parse HEAD)
deployment 1.28 >"$src/base/deployment.yaml"
commit "base: nginx 1.28"
c1=$(git -C "$src" rev-parse HEAD)
deployment 1.29 >"$src/base/deployment.yaml"
commit "base: nginx 1.29"
c2=$(git -C "$src" rev-parse HEAD)

repo="$work/repo.git"
git init -q --bare -b main "$repo"
git -C "$src" push -q "$repo" "$c0:refs/heads/main" "$c1:refs/bench/c1" "$c2:refs/bench/c2"
"$STATEGATE" hook install --repo "$repo" -- --timeout 60 >/dev/null 2>&1
cache="$repo/stategate/render-cache"

now_ns() { date +%s%N; }

# Runs the hook once on one update line; prints "<wall ns> <calls> <kubectl union ns> <cpu s>".
hook_once() {
    h_old=$1 h_new=$2
    rm -f "$log" "$log.cpu"
    start=$(now_ns)
    run_hook "$repo" "$h_old" "$h_new" "$work"
    end=$(now_ns)
    kubectl_share "$((end - start))"
}

# "<wall ns> <calls> <union ns> <cpu s>" from the wrapper's log.
kubectl_share() {
    touch "$log" "$log.cpu"
    cpu=$(awk '{ s += $1 + $2 } END { printf "%.2f", s }' "$log.cpu")
    sort -n "$log" | awk -v wall="$1" -v cpu="$cpu" '
        { if ($1 > end) { union += cur; cur = $2 - $1; end = $2 } else if ($2 > end) { cur += $2 - end; end = $2 }; n++ }
        END { union += cur; printf "%.0f %d %.0f %s\n", wall, n, union, cpu }'
}

# RUNS times: `prepare` (untimed), then the hook on old..new. Prints min, median and kubectl's share.
# (Its variables are named apart from hook_once's: sh has no local variables.)
time_hook() {
    label=$1 prepare=$2 t_old=$3 t_new=$4
    : >"$work/runs"
    i=0
    while [ "$i" -lt "$RUNS" ]; do
        $prepare
        hook_once "$t_old" "$t_new" >>"$work/runs"
        i=$((i + 1))
    done
    sort -n "$work/runs" | awk -v label="$label" '
        { w[NR] = $1; n[NR] = $2; u[NR] = $3; c[NR] = $4 }
        END {
            m = int((NR + 1) / 2)
            share = w[m] > 0 ? 100 * u[m] / w[m] : 0
            printf "%-40s min %5d ms  median %5d ms  | median run: %2d kubectl calls, kubectl running %5d ms (%3.0f%% of wall), kubectl CPU %.2f s\n",
                label, w[1] / 1e6, w[m] / 1e6, n[m], u[m] / 1e6, share, c[m]
        }'
}

cold() { rm -rf "$cache"; }
previous_push() { rm -rf "$cache"; hook_once "$c0" "$c1" >/dev/null; }
nothing() { :; }

echo "$OVERLAYS overlays of one base, each with a patch; $(nproc 2>/dev/null || echo '?') cores; load $(cut -d' ' -f1-3 /proc/loadavg); $("$STATEGATE" --version); $("$KUBECTL" version --client 2>/dev/null | tr '\n' ' ')"
echo "hook run directly (as git runs it):"
time_hook "  cold: cache removed" cold "$c0" "$c1"
time_hook "  next push: base side cached" previous_push "$c1" "$c2"
time_hook "  re-push of the same change" nothing "$c0" "$c1"

# End to end: a clone pushes through git and the installed hook. Between pushes the bare
# repository's main is set back, so the same change can be pushed again.
git clone -q "$repo" "$work/clone"
git -C "$work/clone" fetch -q origin refs/bench/c1 refs/bench/c2
push_to() {
    label=$1 rev=$2
    rm -f "$log" "$log.cpu"
    start=$(now_ns)
    git -C "$work/clone" push -q -f origin "$rev:refs/heads/main" 2>"$work/push.out" || {
        echo "$label: push rejected:" >&2
        cat "$work/push.out" >&2
        exit 1
    }
    end=$(now_ns)
    kubectl_share "$((end - start))" | awk -v label="$label" '{
        printf "%-40s %5d ms  | %2d kubectl calls, kubectl running %5d ms (%3.0f%% of wall), kubectl CPU %.2f s\n",
            label, $1 / 1e6, $2, $3 / 1e6, ($1 > 0 ? 100 * $3 / $1 : 0), $4 }'
}
echo "git push through the installed hook:"
rm -rf "$cache"
push_to "  cold: cache removed" "$c1"
push_to "  next push: base side cached" "$c2"
git --git-dir="$repo" update-ref refs/heads/main "$c1"
push_to "  re-push of the same change" "$c2"
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
