//! Live sources against local stand-ins started by the tests: the real `kubectl get … -o yaml`
//! against a stand-in Kubernetes API server (discovery and list endpoints), and the Argo CD
//! source against a stand-in whose every request is validated against Argo CD's own API
//! description (`$STATEGATE_CORPUS/argocd/swagger.json`).

mod common;
mod drift_support;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::git::TestRepo;
use drift_support::http::{Handler, Request, StandIn};
use serde_json::{Value, json};

/// Desired objects from the corpus and their served form.
fn corpus_objects(corpus: &Path) -> (Vec<(String, Vec<u8>)>, Vec<Value>) {
    let repos = corpus.join("gitops-repos/stefanprodan-podinfo/kustomize");
    let mut files = Vec::new();
    let mut live = Vec::new();
    for name in ["deployment.yaml", "service.yaml"] {
        let path = repos.join(name);
        files.push((
            format!("clusters/prod/{name}"),
            std::fs::read(&path).unwrap(),
        ));
        for o in drift_support::objects(&path) {
            live.push(drift_support::as_served(&o, "default", live.len()));
        }
    }
    (files, live)
}

fn repo_with(config: &str, files: &[(String, Vec<u8>)]) -> TestRepo {
    let repo = TestRepo::new();
    repo.write(".stategate.yaml", config);
    for (path, bytes) in files {
        repo.write(path, bytes);
    }
    repo.commit_all("desired state");
    repo
}

fn drift(repo: &TestRepo, args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_stategate"));
    cmd.arg("drift").args(args).current_dir(repo.path());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// A stand-in Kubernetes API server: legacy discovery for core/v1 and apps/v1, and namespaced list
/// endpoints answered from `objects` (items without kind/apiVersion, as the real server sends).
fn kube_api(objects: Vec<Value>) -> StandIn {
    let resources = |group_version: &str, list: &[(&str, &str)]| {
        json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": group_version,
               "resources": list.iter().map(|(plural, kind)| json!({
                   "name": plural, "singularName": "", "namespaced": true, "kind": kind,
                   "verbs": ["get", "list"], "shortNames": match *plural {
                       "deployments" => vec!["deploy"], "services" => vec!["svc"],
                       "configmaps" => vec!["cm"], _ => vec![] }})).collect::<Vec<_>>()})
    };
    let core = resources(
        "v1",
        &[("services", "Service"), ("configmaps", "ConfigMap")],
    );
    let apps = resources("apps/v1", &[("deployments", "Deployment")]);
    let handler: Arc<Handler> = Arc::new(move |r: &Request| -> (u16, String) {
        let body = match r.path.as_str() {
            "/api" => json!({"kind": "APIVersions", "versions": ["v1"],
                             "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
            "/apis" => {
                json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": [{"name": "apps",
                "versions": [{"groupVersion": "apps/v1", "version": "v1"}],
                "preferredVersion": {"groupVersion": "apps/v1", "version": "v1"}}]})
            }
            "/api/v1" => core.clone(),
            "/apis/apps/v1" => apps.clone(),
            path => {
                let Some((ns_path, plural)) = path.rsplit_once('/') else {
                    return (404, "{}".into());
                };
                let Some(namespace) = ns_path.split("/namespaces/").nth(1) else {
                    return (404, "{}".into());
                };
                let kind = match plural {
                    "deployments" => "Deployment",
                    "services" => "Service",
                    "configmaps" => "ConfigMap",
                    _ => return (404, json!({"kind": "Status", "code": 404}).to_string()),
                };
                let api = if kind == "Deployment" {
                    "apps/v1"
                } else {
                    "v1"
                };
                let items: Vec<Value> = objects
                    .iter()
                    .filter(|o| o["kind"] == kind && o["metadata"]["namespace"] == namespace)
                    .map(|o| {
                        let mut o = o.clone();
                        let m = o.as_object_mut().unwrap();
                        m.remove("kind");
                        m.remove("apiVersion");
                        o
                    })
                    .collect();
                json!({"kind": format!("{kind}List"), "apiVersion": api,
                       "metadata": {"resourceVersion": "90000"}, "items": items})
            }
        };
        (200, body.to_string())
    });
    StandIn::start(handler)
}

fn command_config(server: &str, cache: &Path, timeout_ms: u64) -> String {
    format!(
        "version: 1
environments:
  prod: [\"clusters/prod/**\"]
drift:
  live:
    source: command
    command: [kubectl, get, \"deploy,svc\", -n, default, -o, yaml, --server, \"{server}\", --cache-dir, \"{}\"]
    timeout_ms: {timeout_ms}
",
        cache.display()
    )
}

#[test]
fn a_command_source_runs_the_real_kubectl_against_a_stand_in_api_server() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    if !drift_support::kubectl_available() {
        return;
    }
    let (files, live) = corpus_objects(&corpus);
    let cache = tempfile::tempdir().unwrap();
    let clean = kube_api(live.clone());
    let repo = repo_with(&command_config(&clean.url(), cache.path(), 60_000), &files);
    let (code, out) = drift(&repo, &["--env", "prod"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("prod: command kubectl get deploy,svc") && out.contains("no drift"),
        "{out}"
    );
    let paths: Vec<String> = clean.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        paths
            .iter()
            .any(|p| p == "/apis/apps/v1/namespaces/default/deployments"),
        "{paths:?}"
    );
    assert!(
        paths
            .iter()
            .any(|p| p == "/api/v1/namespaces/default/services"),
        "{paths:?}"
    );

    // A hand-edited image behind the same command is drift; a hand-scaled Deployment whose
    // replicas Git leaves to the autoscaler is not.
    let mut edited = live.clone();
    edited[0]["spec"]["replicas"] = json!(4);
    edited[0]["spec"]["template"]["spec"]["containers"][0]["image"] = json!("podinfo:hotfix");
    let drifted = kube_api(edited);
    let cache = tempfile::tempdir().unwrap();
    let repo = repo_with(
        &command_config(&drifted.url(), cache.path(), 60_000),
        &files,
    );
    let (code, out) = drift(&repo, &["--env", "prod"], &[]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("spec.template.spec.containers[name=podinfod].image: live podinfo:hotfix → Git ghcr.io/stefanprodan/podinfo:6.14.1"),
        "{out}"
    );
    assert!(!out.contains("spec.replicas"), "{out}");
}

#[test]
fn a_command_source_that_hangs_is_killed_at_its_timeout_and_blocks_as_undecided() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    if !drift_support::kubectl_available() {
        return;
    }
    let (files, _) = corpus_objects(&corpus);
    // Accepts connections and never answers.
    let hanging = StandIn::start(Arc::new(|_: &Request| {
        std::thread::sleep(std::time::Duration::from_secs(600));
        (200, String::new())
    }));
    let cache = tempfile::tempdir().unwrap();
    let repo = repo_with(&command_config(&hanging.url(), cache.path(), 1500), &files);
    let (code, out) = drift(&repo, &["--env", "prod"], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(
        out.contains("error[drift/source]") && out.contains("did not finish within 1500 ms"),
        "{out}"
    );

    // on_error: warn judges without the source instead.
    let config = command_config(&hanging.url(), cache.path(), 1500)
        .replace("timeout_ms: 1500", "timeout_ms: 1500\n    on_error: warn");
    let repo = repo_with(&config, &files);
    let (code, out) = drift(&repo, &["--env", "prod"], &[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("warning[drift/source]"), "{out}");
}

/// Argo CD's operations (method, path template) from its swagger.json.
fn argocd_operations(corpus: &Path) -> Vec<(String, Vec<String>)> {
    let text = std::fs::read_to_string(corpus.join("argocd/swagger.json")).unwrap();
    let spec: Value = serde_json::from_str(&text).unwrap();
    let mut ops = Vec::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let segments = path
                .trim_start_matches('/')
                .split('/')
                .map(str::to_owned)
                .collect();
            ops.push((method.to_uppercase(), segments));
        }
    }
    ops
}

fn is_operation(ops: &[(String, Vec<String>)], r: &Request) -> bool {
    let segments: Vec<&str> = r.path.trim_start_matches('/').split('/').collect();
    ops.iter().any(|(method, template)| {
        *method == r.method
            && template.len() == segments.len()
            && template
                .iter()
                .zip(&segments)
                .all(|(t, s)| (t.starts_with('{') && t.ends_with('}') && !s.is_empty()) || t == s)
    })
}

/// A stand-in Argo CD: the application list, one Application and its managed resources.
fn argocd(live: Vec<Value>, desired: Vec<Value>) -> StandIn {
    let handler: Arc<Handler> = Arc::new(move |r: &Request| -> (u16, String) {
        if r.header("Authorization") != Some("Bearer s3cret-token") {
            return (401, json!({"error": "no session"}).to_string());
        }
        let body = match r.path.as_str() {
            "/api/v1/applications" => json!({"items": [
                {"metadata": {"name": "shop-prod"}, "spec": {"source": {"path": "clusters/prod"}}},
                {"metadata": {"name": "other"}, "spec": {"source": {"path": "clusters/other"}}}]}),
            "/api/v1/applications/shop-prod" => json!({"metadata": {"name": "shop-prod"},
                "status": {"sync": {"status": "OutOfSync"}, "health": {"status": "Healthy"}}}),
            "/api/v1/applications/shop-prod/managed-resources" => json!({"items":
                live.iter().zip(&desired).map(|(l, d)| json!({
                    "kind": l["kind"], "name": l["metadata"]["name"], "namespace": "default",
                    "liveState": l.to_string(), "targetState": d.to_string()})).collect::<Vec<_>>()}),
            _ => return (404, json!({"error": "not found"}).to_string()),
        };
        (200, body.to_string())
    });
    StandIn::start(handler)
}

#[test]
fn an_argocd_source_reads_applications_and_managed_resources_as_swagger_describes_them() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let (files, live) = corpus_objects(&corpus);
    let desired: Vec<Value> = ["deployment.yaml", "service.yaml"]
        .iter()
        .flat_map(|n| {
            drift_support::objects(
                &corpus
                    .join("gitops-repos/stefanprodan-podinfo/kustomize")
                    .join(n),
            )
        })
        .collect();
    let mut edited = live.clone();
    edited[0]["spec"]["template"]["spec"]["containers"][0]["image"] =
        json!("ghcr.io/stefanprodan/podinfo:9.9.9");
    let server = argocd(edited, desired);
    let config = format!(
        "version: 1
environments:
  prod: [\"clusters/prod/**\"]
drift:
  live:
    source: argocd
    server: \"{}\"
    token_env: ARGOCD_TOKEN
",
        server.url()
    );
    let repo = repo_with(&config, &files);
    let (code, out) = drift(
        &repo,
        &["--format", "json"],
        &[("ARGOCD_TOKEN", "s3cret-token")],
    );
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("spec.template.spec.containers[name=podinfod].image"),
        "{out}"
    );
    assert!(out.contains("sync status OutOfSync"), "{out}");
    assert!(!out.contains("s3cret-token"), "the token is never printed");

    let ops = argocd_operations(&corpus);
    let requests = server.requests();
    let paths: Vec<&str> = requests.iter().map(|r| r.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/api/v1/applications",
            "/api/v1/applications/shop-prod",
            "/api/v1/applications/shop-prod/managed-resources"
        ]
    );
    for r in &requests {
        assert!(
            is_operation(&ops, r),
            "{} {} is not an Argo CD operation",
            r.method,
            r.path
        );
    }

    // Without the token the source fails closed, naming the variable but no secret.
    let (code, out) = drift(&repo, &[], &[]);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("ARGOCD_TOKEN"), "{out}");
}
