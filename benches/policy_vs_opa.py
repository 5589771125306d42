#!/usr/bin/env python3
"""Policy throughput, stategate vs real OPA, side by side on the same policies and documents.

Runs `cargo bench --bench policy_bench -- DIR` (10,000 documents x 20 policies, 2 threads), which
writes DIR/policies/*.rego and DIR/docs.json, then has OPA 1.20.2 (embedded in the PyPI package
opa-golib-python-bindings) evaluate every rule on every document in ONE query, so the Python bridge
is crossed once. OPA's time with the same input and a trivial query is reported too, so the cost
of shipping the input over the bridge is visible and can be subtracted.

Usage: benches/policy_vs_opa.sh   (sets up the venv)   or   python benches/policy_vs_opa.py [DIR]
"""

import json
import os
import subprocess
import sys
import tempfile
import time

from opa_bindings import OpaEngine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_stategate(workdir):
    out = subprocess.run(
        ["cargo", "bench", "--quiet", "--bench", "policy_bench", "--", workdir],
        cwd=ROOT, check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def best_of(n, fn):
    best, value = float("inf"), None
    for _ in range(n):
        started = time.perf_counter()
        value = fn()
        best = min(best, time.perf_counter() - started)
    return best, value


def run_opa(workdir, rules):
    engine = OpaEngine()
    policy_dir = os.path.join(workdir, "policies")
    for name in sorted(os.listdir(policy_dir)):
        with open(os.path.join(policy_dir, name)) as f:
            engine.add_policy(name, f.read())
    with open(os.path.join(workdir, "docs.json")) as f:
        docs = json.load(f)
    counts = ", ".join(f"count(data.main.{r})" for r in rules)
    query = f"results := [r | some doc in input.docs; r := [{counts}] with input as doc]"
    payload = {"docs": docs}
    seconds, bindings = best_of(3, lambda: engine.eval_query(query, payload))
    findings = sum(sum(r) for r in bindings[0]["results"])
    bridge, _ = best_of(3, lambda: engine.eval_query("n := count(input.docs)", payload))
    return seconds, bridge, findings, len(docs)


def main():
    workdir = sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="stategate-policy-bench-")
    sg = run_stategate(workdir)
    opa_s, bridge_s, opa_findings, n = run_opa(workdir, sg["rules"])
    opa_rate = n / opa_s
    opa_engine_rate = n / max(opa_s - bridge_s, 1e-9)
    print(f"{n} documents x {sg['policies']} policies ({len(sg['rules'])} rules)")
    print(f"{'engine':<34}{'seconds':>10}{'docs/s':>12}{'findings':>10}")
    print(f"{'stategate/regorus, 2 threads':<34}{sg['seconds']:>10.3f}{sg['docs_per_second']:>12.0f}{sg['findings']:>10}")
    print(f"{'OPA 1.20.2, one query':<34}{opa_s:>10.3f}{opa_rate:>12.0f}{opa_findings:>10}")
    print(f"{'OPA minus input transfer':<34}{opa_s - bridge_s:>10.3f}{opa_engine_rate:>12.0f}")
    print(f"ratio stategate/OPA: {sg['docs_per_second'] / opa_rate:.2f}x "
          f"({sg['docs_per_second'] / opa_engine_rate:.2f}x against OPA's engine time alone)")
    if sg["findings"] != opa_findings:
        print(f"WARNING: finding counts differ: stategate {sg['findings']}, OPA {opa_findings}")
        sys.exit(1)


if __name__ == "__main__":
    main()
