//! The YAML constructs that go-yaml v2 (kubectl, through sigs.k8s.io/yaml) and kyaml (kustomize,
//! Flux, Argo CD; go-yaml v3) read differently, run through the real tools. For every case in
//! `tests/fixtures/load/yaml-constructs.json`:
//! - kubectl's reading: `kubectl label --local -f FILE -o json x=y`;
//! - kyaml's reading: `kubectl kustomize` on a directory listing the file, read back by kubectl;
//! - stategate's reading (`load_manifest`) and verdict (`stategate check --all` in a git repo).
//!
//! The invariant: the gate never accepts (exit 0) a file whose kubectl reading differs from the
//! objects it judged, nor one kubectl refuses; an accepted file that kyaml reads differently has a
//! `load/*` finding saying so. Each case also pins the expected verdict, so the gate does not
//! block what every reader agrees on.

mod common;

use std::path::Path;
use std::process::Command;

use common::git::TestRepo;
use serde_json::Value;
use stategate::load::{LoadOptions, load_manifest};

#[derive(serde::Deserialize)]
struct Case {
    name: String,
    yaml: String,
    expect: String,
    why: String,
}

fn cases() -> Vec<Case> {
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/load/yaml-constructs.json");
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// kubectl on this machine, or `None` (skip with a reason; CI must have it).
fn kubectl() -> Option<&'static str> {
    let found = Command::new("kubectl")
        .args(["version", "--client"])
        .output()
        .is_ok_and(|o| o.status.success());
    if found {
        return Some("kubectl");
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("kubectl not found (CI=true requires it)");
    }
    eprintln!("skipping: kubectl not found");
    None
}

/// The objects kubectl reads from `file`, without the label it was asked to add.
fn kubectl_reading(kubectl: &str, file: &Path) -> Result<Vec<Value>, String> {
    let out = Command::new(kubectl)
        .args(["label", "--local", "-o", "json", "x=y", "-f"])
        .arg(file)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    let value: Value = serde_json::from_slice(&out.stdout).map_err(|e| e.to_string())?;
    let objects = match value {
        Value::Object(ref m) if m.get("kind") == Some(&Value::from("List")) => {
            m["items"].as_array().cloned().unwrap_or_default()
        }
        // Nothing to label (an empty list) prints nothing.
        other => vec![other],
    };
    Ok(objects.into_iter().map(unlabel).collect())
}

fn unlabel(mut object: Value) -> Value {
    if let Some(meta) = object.get_mut("metadata").and_then(Value::as_object_mut) {
        if let Some(labels) = meta.get_mut("labels").and_then(Value::as_object_mut) {
            labels.remove("x");
            if labels.is_empty() {
                meta.remove("labels");
            }
        }
    }
    object
}

/// kyaml's reading: what `kubectl kustomize` emits for a kustomization listing the file, read
/// back the way Flux applies it.
fn kustomize_reading(kubectl: &str, dir: &Path) -> Result<Vec<Value>, String> {
    let out = Command::new(kubectl)
        .arg("kustomize")
        .arg(dir)
        .output()
        .unwrap();
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    if out.stdout.iter().all(u8::is_ascii_whitespace) {
        return Ok(Vec::new());
    }
    let rendered = dir.join("rendered.yaml");
    std::fs::write(&rendered, &out.stdout).unwrap();
    kubectl_reading(kubectl, &rendered)
}

/// JSON equality with numbers compared by value (`1000` and `1000.0` are the same number).
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || (x.as_f64().is_some() && x.as_f64() == y.as_f64())
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| same(v, w)))
        }
        _ => a == b,
    }
}

fn same_objects(a: &[Value], b: &[Value]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
}

/// `stategate check --all` in a fresh repository holding only the file: exit code and findings.
fn gate_verdict(yaml: &str) -> (i32, Vec<Value>) {
    let repo = TestRepo::new();
    // Only the reading decides here: schemas would refuse the test objects' made-up fields.
    repo.write(
        ".stategate.yaml",
        "schemas:\n  kubernetes: none\n  unknown: skip\n",
    );
    repo.write("m.yaml", yaml);
    repo.commit_all("case");
    let out = Command::new(env!("CARGO_BIN_EXE_stategate"))
        .current_dir(repo.path())
        .args(["check", "--all", "--format", "json"])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}", String::from_utf8_lossy(&out.stdout));
    });
    let findings = report["findings"].as_array().cloned().unwrap_or_default();
    (out.status.code().unwrap(), findings)
}

#[test]
fn the_gate_never_accepts_a_file_that_kubectl_reads_differently() {
    let Some(kubectl) = kubectl() else {
        return;
    };
    let cases = cases();
    assert!(cases.len() >= 40, "at least 40 constructs");
    let mut problems = Vec::new();
    for case in &cases {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("m.yaml");
        std::fs::write(&file, &case.yaml).unwrap();
        std::fs::write(
            dir.path().join("kustomization.yaml"),
            "resources:\n- m.yaml\n",
        )
        .unwrap();
        let by_kubectl = kubectl_reading(kubectl, &file);
        let by_kyaml = kustomize_reading(kubectl, dir.path());
        let judged: Vec<Value> =
            load_manifest("m.yaml", case.yaml.as_bytes(), &LoadOptions::default())
                .documents
                .into_iter()
                .map(|d| d.value)
                .collect();
        let (code, findings) = gate_verdict(&case.yaml);
        let name = &case.name;
        let accepted = code == 0;
        if accepted {
            match &by_kubectl {
                Err(e) => problems.push(format!("{name}: accepted, but kubectl refuses it: {e}")),
                Ok(objects) if !same_objects(objects, &judged) => problems.push(format!(
                    "{name}: accepted, but kubectl reads {objects:?} and the gate judged {judged:?}"
                )),
                Ok(_) => {}
            }
            let said_so = findings.iter().any(|f| {
                f["rule"].as_str().is_some_and(|r| r.starts_with("load/"))
                    && f["severity"] != "note"
            });
            if let (Ok(k), Ok(z)) = (&by_kubectl, &by_kyaml)
                && !same_objects(k, z)
                && !said_so
            {
                problems.push(format!(
                    "{name}: accepted in silence, but kyaml reads {z:?} and kubectl {k:?}"
                ));
            }
        }
        let expected = if case.expect == "accept" { 0 } else { 2 };
        let verdict_ok = if expected == 0 { code == 0 } else { code != 0 };
        if !verdict_ok {
            problems.push(format!(
                "{name}: expected {} ({}), got exit {code}: {findings:?}",
                case.expect, case.why
            ));
        }
        eprintln!(
            "{name:28} gate={code} kubectl={} kyaml={}",
            if by_kubectl.is_ok() { "ok" } else { "err" },
            match (&by_kubectl, &by_kyaml) {
                (_, Err(_)) => "err",
                (Ok(k), Ok(z)) if same_objects(k, z) => "same",
                _ => "differs",
            }
        );
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
