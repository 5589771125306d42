//! Real Flux repositories of the corpus, unchanged, through `check --all` with the default config:
//! what a team adopting stategate sees on its first run. The counts per rule are asserted, and
//! every error is explained (there are none left: the SOPS and file-mode noise is gone).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::copy_tree;
use common::git::TestRepo;
use serde_json::Value;

fn check_all(repo: &TestRepo, format: &str) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stategate"))
        .current_dir(repo.path())
        .args(["check", "--all", "--format", format])
        .env("NO_COLOR", "1")
        .output()
        .expect("run stategate");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn corpus_repo(name: &str) -> Option<TestRepo> {
    let corpus = common::corpus()?;
    let repo = TestRepo::new();
    copy_tree(
        &corpus.join("gitops-repos").join(name),
        Path::new(""),
        &repo,
    );
    repo.commit_all("snapshot");
    Some(repo)
}

/// `rule severity` → count.
fn counts(json: &str) -> BTreeMap<String, usize> {
    let report: Value = serde_json::from_str(json).unwrap();
    let mut counts = BTreeMap::new();
    for f in report["findings"].as_array().unwrap() {
        let key = format!(
            "{} {}",
            f["rule"].as_str().unwrap(),
            f["severity"].as_str().unwrap()
        );
        *counts.entry(key).or_default() += 1;
    }
    counts
}

fn expected(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

/// xunholy keeps 11 SOPS-encrypted Secrets; Flux decrypts them before applying, so the `sops`
/// block is no unknown field. What remains: custom resources without a schema (no CRDs in the
/// repository) and two documents kubectl and kustomize read differently.
#[test]
fn xunholy_sops_secrets_are_judged_as_flux_applies_them() {
    let Some(repo) = corpus_repo("xunholy-k8s-gitops") else {
        return;
    };
    let (code, json) = check_all(&repo, "json");
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(
        counts(&json),
        expected(&[
            ("load/ambiguous warning", 2),
            ("schema/unknown-kind note", 79),
            ("schema/unknown-kind warning", 452),
        ])
    );
}

/// podinfo's CronJobs mount scripts with `defaultMode: 0755`: octal is what a file mode means.
#[test]
fn podinfo_file_modes_are_not_ambiguous() {
    let Some(repo) = corpus_repo("stefanprodan-podinfo") else {
        return;
    };
    let (code, json) = check_all(&repo, "json");
    assert_eq!(code, Some(0), "{json}");
    assert_eq!(
        counts(&json),
        expected(&[
            ("schema/unknown-kind note", 3),
            ("schema/unknown-kind warning", 5),
        ])
    );
}

/// A mode elsewhere still warns: only `mode` and `defaultMode` mean a file mode.
#[test]
fn octal_outside_file_modes_still_warns() {
    let repo = TestRepo::new();
    repo.write(
        "cm.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\ndata:\n  port: 0755\n",
    );
    repo.write(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: [{name: c, image: x:1}]\n  volumes:\n    - name: s\n      configMap:\n        name: c\n        defaultMode: 0755\n        items: [{key: a, path: a, mode: 0600}]\n",
    );
    repo.commit_all("files");
    let (_, json) = check_all(&repo, "json");
    let report: Value = serde_json::from_str(&json).unwrap();
    let ambiguous: Vec<&Value> = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"] == "load/ambiguous-scalar")
        .collect();
    assert_eq!(ambiguous.len(), 1, "{json}");
    assert_eq!(ambiguous[0]["location"]["file"], "cm.yaml");
}

/// A SOPS ciphertext is opaque and never printed, even when a check quotes it.
#[test]
fn sops_ciphertexts_are_masked_in_every_format() {
    let repo = TestRepo::new();
    let cipher = "ENC[AES256_GCM,data:c2VjcmV0,iv:aXY=,tag:dGFn,type:int]";
    repo.write(
        "app.yaml",
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: {cipher}\n  selector: {{matchLabels: {{app: web}}}}\n  template:\n    metadata: {{labels: {{app: web}}}}\n    spec:\n      containers: [{{name: web, image: 'nginx:1'}}]\nsops:\n  mac: ENC[AES256_GCM,data:bWFj,type:str]\n  lastmodified: \"2025-12-22T01:41:08Z\"\n  version: 3.11.0\n"
        ),
    );
    repo.commit_all("encrypted");
    for format in ["human", "json", "sarif", "junit", "github"] {
        let (code, out) = check_all(&repo, format);
        // The replicas field is an integer to the cluster; a string there is still an error.
        assert_eq!(code, Some(1), "{format}: {out}");
        assert!(!out.contains("c2VjcmV0"), "{format}: {out}");
        assert!(!out.contains("unknown field `sops`"), "{format}: {out}");
    }
}
