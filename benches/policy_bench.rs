//! Policy throughput: 10,000 documents × 20 policies on 2 threads, in documents per second.
//!
//! `cargo bench --bench policy_bench -- [DIR]` writes the policies (`DIR/policies/*.rego`) and the
//! documents (`DIR/docs.json`) it used, so `benches/policy_vs_opa.py` can run real OPA on exactly
//! the same input, and prints one JSON line with the result.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rayon::prelude::*;
use serde_json::{Value, json};
use stategate::change::Action;
use stategate::config::PoliciesConfig;
use stategate::load::{Document, LoadOptions, load_file};
use stategate::policy::{FileContext, PolicySet};
use stategate::tree::DirTree;

const DOCUMENTS: usize = 10_000;
const THREADS: usize = 2;
const BUILT_IN: &[&str] = &[
    "lib_k8s.rego",
    "required_labels.rego",
    "images.rego",
    "resources.rego",
    "privileged.rego",
    "secrets.rego",
];

/// Fifteen more policies of the kind teams write, each its own `deny_*`/`warn_*` rule.
const EXTRA: &[(&str, &str)] = &[
    (
        "host_network",
        "deny_host_network contains msg if { k8s.pod_spec.hostNetwork == true; msg := sprintf(\"%s uses the host network\", [k8s.name]) }",
    ),
    (
        "host_pid",
        "deny_host_pid contains msg if { k8s.pod_spec.hostPID == true; msg := sprintf(\"%s uses the host PID namespace\", [k8s.name]) }",
    ),
    (
        "run_as_root",
        "deny_run_as_root contains msg if { k8s.is_workload; not k8s.pod_spec.securityContext.runAsNonRoot; msg := sprintf(\"%s may run as root\", [k8s.name]) }",
    ),
    (
        "replicas",
        "deny_replicas contains msg if { input.spec.replicas > 10; msg := sprintf(\"%s asks for %v replicas\", [k8s.name, input.spec.replicas]) }",
    ),
    (
        "namespace",
        "deny_namespace contains msg if { k8s.is_workload; not input.metadata.namespace; msg := sprintf(\"%s has no namespace\", [k8s.name]) }",
    ),
    (
        "default_namespace",
        "deny_default_namespace contains msg if { input.metadata.namespace == \"default\"; msg := sprintf(\"%s is in the default namespace\", [k8s.name]) }",
    ),
    (
        "liveness",
        "warn_liveness contains msg if { some [\"containers\", c] in k8s.containers; not c.livenessProbe; msg := sprintf(\"%s: %s has no liveness probe\", [k8s.name, c.name]) }",
    ),
    (
        "readiness",
        "warn_readiness contains msg if { some [\"containers\", c] in k8s.containers; not c.readinessProbe; msg := sprintf(\"%s: %s has no readiness probe\", [k8s.name, c.name]) }",
    ),
    (
        "escalation",
        "deny_escalation contains msg if { some [_, c] in k8s.containers; c.securityContext.allowPrivilegeEscalation == true; msg := sprintf(\"%s: %s may escalate privileges\", [k8s.name, c.name]) }",
    ),
    (
        "host_path",
        "deny_host_path contains msg if { some v in k8s.pod_spec.volumes; v.hostPath; msg := sprintf(\"%s mounts hostPath %s\", [k8s.name, v.name]) }",
    ),
    (
        "capabilities",
        "deny_capabilities contains msg if { some [_, c] in k8s.containers; some cap in c.securityContext.capabilities.add; cap in {\"SYS_ADMIN\", \"NET_ADMIN\", \"ALL\"}; msg := sprintf(\"%s: %s adds %s\", [k8s.name, c.name, cap]) }",
    ),
    (
        "registry",
        "allowed_registries := [\"ghcr.io/acme/\", \"registry.acme.io/\"]\n\ndeny_registry contains msg if { some [_, c] in k8s.containers; not strings.any_prefix_match(c.image, allowed_registries); msg := sprintf(\"%s: %s pulls from an unapproved registry: %s\", [k8s.name, c.name, c.image]) }",
    ),
    (
        "team",
        "deny_team contains msg if { k8s.is_workload; not input.metadata.annotations[\"acme.io/team\"]; msg := sprintf(\"%s has no acme.io/team annotation\", [k8s.name]) }",
    ),
    (
        "env_secrets",
        "deny_env_secrets contains msg if { some [_, c] in k8s.containers; some e in c.env; regex.match(\"(?i)(password|token|secret)\", e.name); e.value; msg := sprintf(\"%s: %s sets %s in plain text\", [k8s.name, c.name, e.name]) }",
    ),
    (
        "load_balancer",
        "deny_load_balancer contains msg if { input.kind == \"Service\"; input.spec.type == \"LoadBalancer\"; msg := sprintf(\"Service %s is a LoadBalancer\", [k8s.name]) }",
    ),
];

fn write_policies(dir: &Path) -> Vec<String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("policies");
    std::fs::create_dir_all(dir).expect("policy dir");
    let mut rules = Vec::new();
    for file in BUILT_IN {
        let text = std::fs::read_to_string(src.join(file)).expect("built-in policy");
        std::fs::write(dir.join(file), &text).expect("write policy");
        rules.extend(
            text.lines()
                .filter_map(|l| l.split_once(" contains "))
                .map(|(name, _)| name.to_string())
                .filter(|n| n.starts_with("deny") || n.starts_with("warn")),
        );
    }
    for (name, body) in EXTRA {
        let text = format!("package main\n\nimport data.lib.k8s\nimport rego.v1\n\n{body}\n");
        std::fs::write(dir.join(format!("{name}.rego")), text).expect("write policy");
        rules.extend(
            body.lines()
                .filter_map(|l| l.split_once(" contains "))
                .map(|(name, _)| name.to_string()),
        );
    }
    rules
}

/// A Deployment with index-driven variety, so every policy fires on some documents.
fn document(i: usize) -> Value {
    let image = match i % 5 {
        0 => "nginx:latest".to_string(),
        1 => format!("ghcr.io/acme/app-{}:1.{}.0", i % 17, i % 9),
        2 => "docker.io/library/redis".to_string(),
        3 => format!("registry.acme.io/api@sha256:{:064x}", i),
        _ => format!("ghcr.io/acme/worker:{}", i % 31),
    };
    let mut container = json!({
        "name": format!("c{}", i % 3),
        "image": image,
        "ports": [{"containerPort": 8080}],
        "env": [{"name": "LOG_LEVEL", "value": "info"}],
    });
    if i % 2 == 0 {
        container["resources"] =
            json!({"limits": {"cpu": "500m", "memory": "256Mi"}, "requests": {"cpu": "100m"}});
    }
    if i % 7 == 0 {
        container["securityContext"] =
            json!({"privileged": true, "capabilities": {"add": ["NET_ADMIN"]}});
    }
    if i % 11 == 0 {
        container["env"] = json!([{"name": "DB_PASSWORD", "value": "hunter2"}]);
    }
    if i % 3 == 0 {
        container["livenessProbe"] = json!({"httpGet": {"path": "/healthz", "port": 8080}});
        container["readinessProbe"] = json!({"httpGet": {"path": "/ready", "port": 8080}});
    }
    let mut labels = json!({"app": format!("app-{i}")});
    if i % 4 != 0 {
        labels["app.kubernetes.io/name"] = json!(format!("app-{i}"));
    }
    let mut doc = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": format!("app-{i}"),
            "namespace": if i % 13 == 0 { "default" } else { "shop" },
            "labels": labels,
            "annotations": if i % 6 == 0 { json!({}) } else { json!({"acme.io/team": "payments"}) },
        },
        "spec": {
            "replicas": i % 15,
            "selector": {"matchLabels": {"app": format!("app-{i}")}},
            "template": {
                "metadata": {"labels": {"app": format!("app-{i}")}},
                "spec": {
                    "hostNetwork": i % 19 == 0,
                    "securityContext": if i % 5 == 1 { json!({"runAsNonRoot": true}) } else { json!({}) },
                    "containers": [container],
                    "volumes": if i % 23 == 0 { json!([{"name": "host", "hostPath": {"path": "/var/run"}}]) } else { json!([]) },
                },
            },
        },
    });
    if i % 29 == 0 {
        doc["metadata"]
            .as_object_mut()
            .map(|m| m.remove("namespace"));
    }
    doc
}

fn main() {
    let dir = std::env::args()
        .skip(1)
        .find(|a| !a.starts_with('-'))
        .map_or_else(
            || std::env::temp_dir().join("stategate-policy-bench"),
            PathBuf::from,
        );
    let rules = write_policies(&dir.join("policies"));
    let values: Vec<Value> = (0..DOCUMENTS).map(document).collect();
    std::fs::write(
        dir.join("docs.json"),
        serde_json::to_vec(&values).expect("json"),
    )
    .expect("write docs");

    let config = PoliciesConfig {
        paths: vec!["policies".into()],
        data: Vec::new(),
        ..PoliciesConfig::default()
    };
    let set = match PolicySet::load(&config, &DirTree::new(&dir, "bench")) {
        Ok(set) => set,
        Err(findings) => panic!("bench policies do not load: {findings:#?}"),
    };
    let docs: Vec<Document> = values
        .iter()
        .enumerate()
        .flat_map(|(i, v)| {
            let path = format!("docs/{i}.json");
            load_file(&path, v.to_string().as_bytes(), &LoadOptions::default()).documents
        })
        .collect();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(THREADS)
        .build()
        .expect("pool");
    let run = || {
        pool.install(|| {
            docs.par_iter()
                .map(|d| {
                    let ctx = FileContext {
                        path: d.path().to_string(),
                        environment: None,
                        action: Action::Modified,
                        before: None,
                    };
                    set.check_document(d, &ctx).len()
                })
                .sum::<usize>()
        })
    };
    let findings = run(); // warm-up: one engine clone per worker
    let mut best = f64::MAX;
    for _ in 0..3 {
        let started = Instant::now();
        assert_eq!(run(), findings);
        best = best.min(started.elapsed().as_secs_f64());
    }
    let result = json!({
        "engine": "stategate (regorus)",
        "documents": DOCUMENTS,
        "policies": BUILT_IN.len() - 1 + EXTRA.len(),
        "rules": rules,
        "threads": THREADS,
        "seconds": best,
        "docs_per_second": DOCUMENTS as f64 / best,
        "findings": findings,
        "dir": dir,
    });
    #[allow(clippy::print_stdout)]
    {
        println!("{result}");
    }
}
