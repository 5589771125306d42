#!/usr/bin/env bash
# Start-up with the embedded CRD catalog: `stategate check` of a one-file change in a tiny
# repository, (a) one ConfigMap (the catalog is never decoded), (b) one HelmRelease (its kind's
# frame is decompressed and its schema compiled), (c) the HelmRelease with `schemas.catalog: false`.
# Prints the median and best of N runs in milliseconds, timed with `date +%s%N`.
# Usage: benches/catalog_startup.sh [RUNS] [BINARY]   (default 30 runs, target/release/stategate)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-30}"
bin="${2:-$PWD/target/release/stategate}"
[ -x "$bin" ] || { echo "build first: cargo build --release" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
git_commit() {
    git -c user.name=bench -c user.email=bench@example.com add -A
    git -c user.name=bench -c user.email=bench@example.com commit -qm "$1"
}

repo() { # repo NAME FILE CONTENT [CONFIG]
    mkdir -p "$work/$1" && cd "$work/$1" && git init -q -b main
    printf 'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: base\n' > base.yaml
    [ -n "${4:-}" ] && printf '%s' "$4" > .stategate.yaml
    git_commit base
    printf '%s' "$3" > "$2"
    cd - > /dev/null
}

configmap=$'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n'
release=$'apiVersion: helm.toolkit.fluxcd.io/v2\nkind: HelmRelease\nmetadata:\n  name: web\n  namespace: apps\nspec:\n  interval: 5m\n  chart:\n    spec:\n      chart: web\n      sourceRef: {kind: HelmRepository, name: charts}\n'
repo configmap a.yaml "$configmap"
repo release web.yaml "$release"
repo release-off web.yaml "$release" $'version: 1\nschemas:\n  catalog: false\n'

measure() { # measure NAME
    cd "$work/$1"
    "$bin" check > /dev/null || { echo "$1: check failed" >&2; "$bin" check; exit 1; }
    local times=()
    for _ in $(seq "$runs"); do
        local start end
        start=$(date +%s%N)
        "$bin" check > /dev/null
        end=$(date +%s%N)
        times+=($(( (end - start) / 1000 )))
    done
    printf '%s\n' "${times[@]}" | sort -n | awk -v name="$1" '
        { t[NR] = $1 }
        END { printf "%-12s median %6.1f ms  best %6.1f ms  (%d runs)\n", name, t[int((NR + 1) / 2)] / 1000, t[1] / 1000, NR }'
    cd - > /dev/null
}

measure configmap
measure release
measure release-off
ls -l "$bin" | awk '{ printf "binary: %d bytes\n", $5 }'
