#!/usr/bin/env bash
# stategate vs OPA on 10,000 documents x 20 policies. Sets up OPA's Python bindings in a venv
# (OPA 1.20.2 embedded; the package declares Python >= 3.14 but works on 3.11), then runs
# benches/policy_vs_opa.py. Usage: benches/policy_vs_opa.sh [WORKDIR]
set -euo pipefail
VENV="${OPA_VENV:-/tmp/opa-venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --ignore-requires-python opa-golib-python-bindings==0.4.4
fi
exec "$VENV/bin/python" "$(dirname "$0")/policy_vs_opa.py" "$@"
