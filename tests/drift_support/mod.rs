//! Live state as an API server would hand it back: corpus objects plus what the server adds, in
//! the format of the real `kubectl`. Shared by the drift tests.
#![allow(dead_code)]

pub mod http;

use std::path::Path;
use std::process::Command;

use serde_json::{Value, json};

/// The config of the snapshot scenarios: one `prod` environment whose live state is committed
/// under `live/prod/`, which is itself not desired state.
pub const SNAPSHOT_CONFIG: &str = "version: 1
exclude: [\"live/**\"]
environments:
  prod: [\"clusters/prod/**\"]
drift:
  live:
    source: snapshot
    path: \"live/{env}/\"
";

/// The desired objects of a corpus file, as JSON values.
pub fn objects(path: &Path) -> Vec<Value> {
    let bytes = std::fs::read(path).expect("corpus file");
    let loaded = stategate::load::load_file(
        &path.display().to_string(),
        &bytes,
        &stategate::load::LoadOptions::default(),
    );
    loaded
        .documents
        .into_iter()
        .map(|d| d.value)
        .filter(|v| !v.is_null())
        .collect()
}

/// What the API server adds or rewrites: identity and bookkeeping metadata, status, defaulted
/// fields (strategy, revisionHistoryLimit, terminationMessagePath, imagePullPolicy, protocol, …)
/// and quantities in canonical form (`2000m` → `2`, `0.5` → `500m`).
pub fn as_served(desired: &Value, namespace: &str, n: usize) -> Value {
    let mut live = desired.clone();
    let kind = live["kind"].as_str().unwrap_or_default().to_owned();
    let meta = live["metadata"].as_object_mut().expect("metadata");
    meta.entry("namespace").or_insert(json!(namespace));
    meta.insert(
        "uid".into(),
        json!(format!("4f6c1d2e-0000-4000-8000-{n:012}")),
    );
    meta.insert("resourceVersion".into(), json!(format!("{}", 81234 + n)));
    meta.insert("generation".into(), json!(2));
    meta.insert("creationTimestamp".into(), json!("2026-11-01T10:00:00Z"));
    meta.insert(
        "managedFields".into(),
        json!([{"apiVersion": live_api(&desired["apiVersion"]), "fieldsType": "FieldsV1",
               "fieldsV1": {"f:spec": {}}, "manager": "kubectl-client-side-apply",
               "operation": "Update", "time": "2026-11-01T10:00:00Z"}]),
    );
    let annotations = meta
        .entry("annotations")
        .or_insert(json!({}))
        .as_object_mut()
        .unwrap();
    annotations.insert(
        "kubectl.kubernetes.io/last-applied-configuration".into(),
        json!(desired.to_string()),
    );
    match kind.as_str() {
        "Deployment" => {
            annotations.insert("deployment.kubernetes.io/revision".into(), json!("3"));
            let spec = live["spec"].as_object_mut().unwrap();
            spec.entry("replicas").or_insert(json!(1));
            spec.entry("revisionHistoryLimit").or_insert(json!(10));
            spec.entry("progressDeadlineSeconds").or_insert(json!(600));
            spec.entry("strategy")
                .or_insert(json!({"type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}));
            let pod = live["spec"]["template"]["spec"].as_object_mut().unwrap();
            pod.entry("dnsPolicy").or_insert(json!("ClusterFirst"));
            pod.entry("restartPolicy").or_insert(json!("Always"));
            pod.entry("schedulerName")
                .or_insert(json!("default-scheduler"));
            pod.entry("securityContext").or_insert(json!({}));
            pod.entry("terminationGracePeriodSeconds")
                .or_insert(json!(30));
            if let Some(Value::Array(containers)) = pod.get_mut("containers") {
                containers.reverse();
                for c in containers.iter_mut() {
                    serve_container(c);
                }
            }
            live["status"] = json!({"availableReplicas": 1, "observedGeneration": 2,
                "conditions": [{"type": "Available", "status": "True"}]});
        }
        "Service" => {
            let spec = live["spec"].as_object_mut().unwrap();
            spec.insert("clusterIP".into(), json!(format!("10.96.0.{}", 10 + n)));
            spec.insert("clusterIPs".into(), json!([format!("10.96.0.{}", 10 + n)]));
            spec.entry("internalTrafficPolicy")
                .or_insert(json!("Cluster"));
            spec.entry("ipFamilies").or_insert(json!(["IPv4"]));
            spec.entry("ipFamilyPolicy").or_insert(json!("SingleStack"));
            spec.entry("sessionAffinity").or_insert(json!("None"));
            spec.entry("type").or_insert(json!("ClusterIP"));
            if let Some(Value::Array(ports)) = spec.get_mut("ports") {
                for p in ports {
                    p.as_object_mut()
                        .unwrap()
                        .entry("protocol")
                        .or_insert(json!("TCP"));
                }
            }
            live["status"] = json!({"loadBalancer": {}});
        }
        _ => {}
    }
    live
}

fn live_api(api: &Value) -> Value {
    api.clone()
}

fn serve_container(c: &mut Value) {
    let c = c.as_object_mut().unwrap();
    c.entry("imagePullPolicy").or_insert(json!("IfNotPresent"));
    c.entry("terminationMessagePath")
        .or_insert(json!("/dev/termination-log"));
    c.entry("terminationMessagePolicy").or_insert(json!("File"));
    if let Some(Value::Array(ports)) = c.get_mut("ports") {
        for p in ports {
            p.as_object_mut()
                .unwrap()
                .entry("protocol")
                .or_insert(json!("TCP"));
        }
    }
    if let Some(Value::Object(resources)) = c.get_mut("resources") {
        for (_, side) in resources.iter_mut() {
            if let Value::Object(side) = side {
                for (_, q) in side.iter_mut() {
                    *q = json!(canonical_quantity(q.as_str().unwrap_or_default()));
                }
            }
        }
    }
}

/// The API server's canonical spelling of a few quantities.
fn canonical_quantity(q: &str) -> String {
    match q {
        "2000m" => "2".into(),
        "1000m" => "1".into(),
        "0.5" => "500m".into(),
        "0.1" => "100m".into(),
        "1024Mi" => "1Gi".into(),
        other => other.into(),
    }
}

/// The objects as a multi-document stream in the real kubectl's YAML: each written as JSON, read
/// back and printed by `kubectl label --local -o yaml` (the label changes nothing Git declares).
/// (`label --local` prints several objects without `---` between them, hence one call each.)
pub fn kubectl_yaml(objects: &[Value]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let mut docs = Vec::new();
    for (i, object) in objects.iter().enumerate() {
        let file = dir.path().join(format!("{i}.json"));
        std::fs::write(&file, serde_json::to_string_pretty(object).unwrap()).unwrap();
        let out = Command::new("kubectl")
            .args([
                "label",
                "--local",
                "--show-managed-fields",
                "-o",
                "yaml",
                "-f",
            ])
            .arg(&file)
            .arg("stategate.dev/snapshot=test")
            .output()
            .expect("run kubectl");
        assert!(
            out.status.success(),
            "kubectl label --local: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        docs.push(String::from_utf8(out.stdout).unwrap());
    }
    docs.join("---\n")
}

/// Whether the real kubectl is installed; the tests need it (and fail under CI without it).
pub fn kubectl_available() -> bool {
    let ok = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true needs kubectl"
        );
        eprintln!("skipping: kubectl is not installed");
    }
    ok
}
