//! `stategate drift` on a committed snapshot in kubectl's real output format: corpus objects as the
//! API server returns them (server fields, defaults, rewritten quantities) are not drift; hand edits
//! of replicas, an image and an env var are, with their paths.

mod common;
mod drift_support;

use std::process::Command;

use common::git::TestRepo;
use serde_json::{Value, json};

const CONFIG: &str = "version: 1
exclude: [\"live/**\"]
environments:
  prod: [\"clusters/prod/**\"]
drift:
  live:
    source: snapshot
    path: \"live/{env}/\"
    on_drift: block
";

struct Fixture {
    repo: TestRepo,
    live: Vec<Value>,
}

/// Three corpus objects in `clusters/prod/`, and their served form as the live snapshot.
fn fixture(config: &str) -> Option<Fixture> {
    let corpus = common::corpus()?;
    if !drift_support::kubectl_available() {
        return None;
    }
    let repos = corpus.join("gitops-repos");
    let files = [
        (
            "clusters/prod/podinfo.yaml",
            repos.join("stefanprodan-podinfo/kustomize/deployment.yaml"),
        ),
        (
            "clusters/prod/podinfo-svc.yaml",
            repos.join("stefanprodan-podinfo/kustomize/service.yaml"),
        ),
        (
            "clusters/prod/frontend.yaml",
            repos.join("kubernetes-examples/web/guestbook/frontend-deployment.yaml"),
        ),
    ];
    let repo = TestRepo::new();
    repo.write(".stategate.yaml", config);
    let mut live = Vec::new();
    for (to, from) in &files {
        repo.write(to, std::fs::read(from).unwrap());
        for object in drift_support::objects(from) {
            live.push(drift_support::as_served(&object, "default", live.len()));
        }
    }
    Some(Fixture { repo, live })
}

impl Fixture {
    fn snapshot(&self, live: &[Value]) {
        let text = drift_support::kubectl_yaml(live);
        // kubectl's own format, server fields kept.
        assert!(text.starts_with("apiVersion: "), "{text}");
        assert!(text.contains("managedFields:") && text.contains("terminationMessagePath"));
        self.repo.write("live/prod/snapshot.yaml", text);
        self.repo.commit_all("snapshot");
    }

    fn drift(&self, args: &[&str]) -> (i32, String) {
        let out = Command::new(env!("CARGO_BIN_EXE_stategate"))
            .arg("drift")
            .args(args)
            .current_dir(self.repo.path())
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr);
        (out.status.code().unwrap_or(-1), format!("{stdout}{stderr}"))
    }

    fn edited(&self, edit: impl Fn(&mut Value)) -> Vec<Value> {
        let mut live = self.live.clone();
        live.iter_mut().for_each(edit);
        live
    }
}

fn drifted_paths(json_out: &str) -> Vec<String> {
    let value: Value = serde_json::from_str(json_out).expect("json output");
    let mut paths: Vec<String> = value["drift"]["environments"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|e| e["objects"].as_array().unwrap().clone())
        .flat_map(|o| {
            let object = o["object"].as_str().unwrap().to_owned();
            o["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |f| format!("{object} {}", f["path"].as_str().unwrap()))
                .collect::<Vec<_>>()
        })
        .collect();
    paths.sort();
    paths
}

#[test]
fn server_added_fields_defaults_and_rewritten_quantities_are_not_drift() {
    let Some(f) = fixture(CONFIG) else { return };
    f.snapshot(&f.live);
    let (code, out) = f.drift(&["--env", "prod"]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("prod: snapshot live/prod/") && out.contains("no drift"),
        "{out}"
    );
    let (code, out) = f.drift(&["--format", "json"]);
    assert_eq!(code, 0, "{out}");
    assert_eq!(drifted_paths(&out), Vec::<String>::new());
}

#[test]
fn hand_edited_replicas_image_and_env_var_drift_with_their_paths() {
    let Some(f) = fixture(CONFIG) else { return };
    let live = f.edited(|o| match o["metadata"]["name"].as_str() {
        Some("frontend") if o["kind"] == "Deployment" => o["spec"]["replicas"] = json!(5),
        Some("podinfo") if o["kind"] == "Deployment" => {
            let c = &mut o["spec"]["template"]["spec"]["containers"][0];
            c["image"] = json!("ghcr.io/stefanprodan/podinfo:6.14.1-hotfix");
            c["env"][0]["value"] = json!("#ff0000");
        }
        _ => {}
    });
    f.snapshot(&live);
    let (code, out) = f.drift(&["--env", "prod", "--format", "json"]);
    assert_eq!(code, 1, "{out}");
    assert_eq!(
        drifted_paths(&out),
        [
            "apps/v1/Deployment/default/frontend spec.replicas",
            "apps/v1/Deployment/default/podinfo spec.template.spec.containers[name=podinfod].env[name=PODINFO_UI_COLOR].value",
            "apps/v1/Deployment/default/podinfo spec.template.spec.containers[name=podinfod].image",
        ]
    );
    let (code, human) = f.drift(&["--env", "prod"]);
    assert_eq!(code, 1);
    assert!(human.contains("spec.replicas: live 5 → Git 3"), "{human}");
    let (_, markdown) = f.drift(&["--format", "markdown"]);
    assert!(
        markdown.contains("### Drift") && markdown.contains("| `spec.replicas` | `5` | `3` |"),
        "{markdown}"
    );
}

#[test]
fn on_drift_warn_reports_without_blocking() {
    let Some(f) = fixture(&CONFIG.replace("on_drift: block", "on_drift: warn")) else {
        return;
    };
    let live = f.edited(|o| {
        if o["metadata"]["name"] == "frontend" {
            o["spec"]["replicas"] = json!(5);
        }
    });
    f.snapshot(&live);
    let (code, out) = f.drift(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("spec.replicas: live 5 → Git 3"), "{out}");
}

#[test]
fn an_object_deleted_live_and_a_tracked_object_deleted_from_git_are_drift() {
    let Some(f) = fixture(CONFIG) else { return };
    let mut live: Vec<Value> = f
        .live
        .iter()
        .filter(|o| o["kind"] != "Service")
        .cloned()
        .collect();
    let mut orphan = live[0].clone();
    orphan["metadata"]["name"] = json!("old-api");
    live.push(orphan);
    // A Service of another name keeps Services covered by the snapshot.
    let mut other = drift_support::as_served(
        &json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "kubernetes"},
                "spec": {"ports": [{"port": 443}]}}),
        "default",
        9,
    );
    other["metadata"]["annotations"] = json!({});
    live.push(other);
    f.snapshot(&live);
    let (code, out) = f.drift(&["--format", "json"]);
    assert_eq!(code, 1, "{out}");
    let value: Value = serde_json::from_str(&out).unwrap();
    let states: Vec<(String, String)> = value["drift"]["environments"][0]["objects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| {
            (
                o["object"].as_str().unwrap().to_owned(),
                o["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            (
                "v1/Service/default/podinfo".to_owned(),
                "missing-live".to_owned()
            ),
            (
                "apps/v1/Deployment/default/old-api".to_owned(),
                "not-in-git".to_owned()
            ),
        ]
    );
}

#[test]
fn a_snapshot_older_than_max_age_warns_or_blocks_when_configured() {
    let config = format!("{CONFIG}    max_age: 1h\n");
    let Some(f) = fixture(&config) else { return };
    f.snapshot(&f.live);
    // The test repository's commits are dated 2023: the snapshot's commit time makes it old.
    let (code, out) = f.drift(&[]);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("warning[drift/stale]") && out.contains("from the snapshot's commit time"),
        "{out}"
    );
    let blocking = format!("{config}    on_stale: block\n");
    f.repo.write(".stategate.yaml", &blocking);
    f.repo.commit_all("stale blocks");
    let (code, out) = f.drift(&[]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("error[drift/stale]"), "{out}");
}

#[test]
fn secret_values_are_compared_but_never_printed() {
    let Some(f) = fixture(CONFIG) else { return };
    f.repo.write(
        "clusters/prod/secret.yaml",
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: token\nstringData:\n  token: hunter2\n",
    );
    let mut live = f.live.clone();
    live.push(drift_support::as_served(
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "token"},
                "type": "Opaque", "data": {"token": "bGV0bWVpbg=="}}),
        "default",
        7,
    ));
    f.snapshot(&live);
    let (code, out) = f.drift(&["--format", "json"]);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("v1/Secret/default/token") && out.contains("data.token"),
        "{out}"
    );
    assert!(
        !out.contains("hunter2") && !out.contains("bGV0bWVpbg==") && !out.contains("aHVudGVyMg=="),
        "{out}"
    );
}
