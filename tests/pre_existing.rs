//! Only what a change introduces blocks it. The real onedr0p/home-ops repository, rendered with the
//! real `kubectl kustomize`, judged by the real binary: an `interval:` edit next to an old policy
//! violation passes with the old finding listed apart; the same violation on a new object blocks.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::copy_tree;
use common::git::TestRepo;
use common::run::findings_with;
use serde_json::Value;

const APP: &str = "kubernetes/apps/kube-system/cilium/app";

/// Two rules the repository already breaks: its kube-api Service is a LoadBalancer, and its
/// OCIRepository for the Cilium chart is not verified.
const POLICY: &str = "package main

deny contains msg if {
  input.kind == \"Service\"
  input.spec.type == \"LoadBalancer\"
  msg := sprintf(\"Service %s is a LoadBalancer\", [input.metadata.name])
}

deny contains msg if {
  input.kind == \"OCIRepository\"
  not input.spec.verify
  msg := sprintf(\"OCIRepository %s is not verified\", [input.metadata.name])
}
";

fn onedr0p(extra_config: &str) -> Option<TestRepo> {
    let corpus = common::corpus()?;
    let repo = TestRepo::new();
    copy_tree(
        &corpus.join("gitops-repos/onedr0p-home-ops"),
        Path::new(""),
        &repo,
    );
    repo.write(
        ".stategate.yaml",
        format!(
            "version: 1\nschemas:\n  unknown: skip\nrender:\n  kustomize: [\"kubernetes/apps/*/*/app\"]\n{extra_config}"
        ),
    );
    repo.write("policies/lb.rego", POLICY);
    repo.commit_all("snapshot");
    Some(repo)
}

fn check(repo: &TestRepo, args: &[&str]) -> (Output, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_stategate"))
        .current_dir(repo.path())
        .args(["check", "--format", "json"])
        .args(args)
        .env("NO_COLOR", "1")
        .output()
        .expect("run stategate");
    let json = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out, json)
}

/// `(rule, severity, pre_existing, message)` of every policy finding.
fn policy_findings(json: &Value) -> Vec<(String, String, bool, String)> {
    let mut out: Vec<_> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"].as_str().unwrap().starts_with("policy/"))
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
                f["pre_existing"] == true,
                f["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn edit_interval(repo: &TestRepo) {
    let path = format!("{APP}/ocirepository.yaml");
    let text = std::fs::read_to_string(repo.abs(&path)).unwrap();
    assert!(text.contains("interval: 15m"));
    repo.write(&path, text.replace("interval: 15m", "interval: 30m"));
    repo.commit_all("cilium: poll the chart less often");
}

#[test]
fn an_interval_edit_passes_with_the_old_findings_listed_apart() {
    let Some(repo) = onedr0p("") else {
        return;
    };
    edit_interval(&repo);
    let (out, json) = check(&repo, &["--base", "HEAD~1"]);
    // The untouched kube-api Service rendered from the same overlay is identical at the base: it
    // is not judged again. The OCIRepository the change touches keeps its old violation, which
    // is listed as pre-existing (in the source file and in the rendered overlay) and does not block.
    assert_eq!(out.status.code(), Some(0), "{json:#}");
    let findings = policy_findings(&json);
    assert!(!findings.is_empty(), "{json:#}");
    for (rule, severity, pre_existing, message) in &findings {
        assert_eq!(
            (rule.as_str(), severity.as_str(), *pre_existing),
            ("policy/deny", "warning", true),
            "{message}"
        );
        assert_eq!(message, "OCIRepository cilium is not verified");
    }
    assert!(
        !findings.iter().any(|f| f.3.contains("kube-api")),
        "{findings:?}"
    );
    assert_eq!(json["stats"]["pre_existing"], findings.len());
    // Found through the changed file and through the rendered overlay: one finding, at the
    // file and line a human edits, naming the rendered object too.
    assert_eq!(findings.len(), 1, "{json:#}");
    let finding = policy_json(&json)[0].clone();
    assert_eq!(
        finding["location"]["file"],
        format!("{APP}/ocirepository.yaml")
    );
    assert_eq!(finding["location"]["line"], 3, "{finding:#}");
    assert!(
        finding["metadata"]["rendered"]
            .as_str()
            .unwrap()
            .contains("(rendered by kustomize: source.toolkit.fluxcd.io/v1/OCIRepository"),
        "{finding:#}"
    );
}

fn policy_json(json: &Value) -> Vec<Value> {
    json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["rule"].as_str().unwrap().starts_with("policy/"))
        .cloned()
        .collect()
}

#[test]
fn the_same_violation_on_a_new_object_blocks() {
    let Some(repo) = onedr0p("") else {
        return;
    };
    let path = format!("{APP}/networking.yaml");
    let text = std::fs::read_to_string(repo.abs(&path)).unwrap();
    repo.write(
        &path,
        format!(
            "{text}---\napiVersion: v1\nkind: Service\nmetadata:\n  name: hubble-lb\nspec:\n  type: LoadBalancer\n  selector:\n    k8s-app: hubble-relay\n  ports:\n    - port: 80\n"
        ),
    );
    repo.commit_all("expose hubble");
    let (out, json) = check(&repo, &["--base", "HEAD~1"]);
    assert_eq!(out.status.code(), Some(1), "{json:#}");
    let findings = policy_findings(&json);
    let new: Vec<_> = findings.iter().filter(|f| !f.2).collect();
    assert!(!new.is_empty(), "{findings:?}");
    for (rule, severity, _, message) in &new {
        assert_eq!((rule.as_str(), severity.as_str()), ("policy/deny", "error"));
        assert_eq!(message, "Service hubble-lb is a LoadBalancer");
    }
    // The new Service is found in the changed file and in the rendered overlay: one finding at
    // the line of the new document, never at a rendered pseudo-path.
    assert_eq!(new.len(), 1, "{findings:?}");
    for finding in policy_json(&json) {
        let file = finding["location"]["file"].as_str().unwrap();
        assert_eq!(file, path, "{finding:#}");
    }
    // kube-api broke the rule before this change: listed apart, not blocking.
    let old: Vec<_> = findings.iter().filter(|f| f.2).collect();
    assert!(!old.is_empty(), "{findings:?}");
    for (_, severity, _, message) in &old {
        assert_eq!(severity, "warning");
        assert_eq!(message, "Service kube-api is a LoadBalancer");
    }
}

#[test]
fn pre_existing_block_and_hide() {
    let Some(repo) = onedr0p("report:\n  pre_existing: block\n") else {
        return;
    };
    edit_interval(&repo);
    let (out, json) = check(&repo, &["--base", "HEAD~1"]);
    assert_eq!(out.status.code(), Some(1), "{json:#}");
    assert!(policy_findings(&json).iter().all(|f| f.1 == "error" && f.2));

    let config = std::fs::read_to_string(repo.abs(".stategate.yaml")).unwrap();
    repo.write(".stategate.yaml", config.replace("block", "hide"));
    repo.commit_all("hide old findings");
    edit_interval_back(&repo);
    let (out, json) = check(&repo, &["--base", "HEAD~1"]);
    assert_eq!(out.status.code(), Some(0), "{json:#}");
    assert!(policy_findings(&json).is_empty(), "{json:#}");
    assert!(json["stats"]["pre_existing_hidden"].as_u64().unwrap() > 0);
}

fn edit_interval_back(repo: &TestRepo) {
    let path = format!("{APP}/ocirepository.yaml");
    let text = std::fs::read_to_string(repo.abs(&path)).unwrap();
    repo.write(&path, text.replace("interval: 30m", "interval: 15m"));
    repo.commit_all("cilium: back to 15m");
}

#[test]
fn check_all_has_no_base() {
    let Some(repo) = onedr0p("") else {
        return;
    };
    let (out, json) = check(&repo, &["--all", APP]);
    assert_eq!(out.status.code(), Some(1), "{json:#}");
    let findings = policy_findings(&json);
    assert!(
        findings.iter().all(|f| f.1 == "error" && !f.2),
        "{findings:?}"
    );
    assert!(json["stats"].get("pre_existing").is_none());
}

/// A Deployment without a namespace whose `replicas` is a string: one schema error per object.
const WEB: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: \"two\"\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers: [{name: web, image: \"nginx:1.27\"}]\n";

/// Flux deploys `apps/a` into namespace `team-a` and Argo CD deploys `apps/b` into `team-b`.
fn two_teams() -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        "clusters/prod/apps.yaml",
        "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: team-a\n  namespace: flux-system\nspec:\n  interval: 10m\n  path: ./apps/a\n  prune: true\n  targetNamespace: team-a\n  sourceRef: {kind: GitRepository, name: flux-system}\n---\napiVersion: argoproj.io/v1alpha1\nkind: Application\nmetadata:\n  name: team-b\n  namespace: argocd\nspec:\n  project: default\n  source: {repoURL: https://example.invalid/repo.git, path: apps/b, targetRevision: main}\n  destination: {server: https://kubernetes.default.svc, namespace: team-b}\n",
    );
    repo.write("apps/a/web.yaml", WEB);
    repo.commit_all("team a");
    repo
}

/// The object ids of the `schema/type` findings, with whether each is pre-existing.
fn web_findings(json: &Value) -> Vec<(String, bool)> {
    let mut out: Vec<(String, bool)> = findings_with(json, "schema/type")
        .into_iter()
        .map(|f| {
            (
                f["object"].as_str().unwrap_or_default().to_owned(),
                f["pre_existing"].as_bool().unwrap_or(false),
            )
        })
        .collect();
    out.sort();
    out
}

#[test]
fn same_named_objects_in_different_target_namespaces_are_two_objects() {
    let repo = two_teams();
    repo.write("apps/b/web.yaml", WEB);
    repo.commit_all("team b");
    let (out, json) = check(&repo, &["--all"]);
    assert_eq!(out.status.code(), Some(1), "{json}");
    assert_eq!(
        web_findings(&json),
        [
            ("apps/v1/Deployment/team-a/web".to_owned(), false),
            ("apps/v1/Deployment/team-b/web".to_owned(), false),
        ],
        "{json}"
    );
}

#[test]
fn moving_an_object_into_another_target_namespace_is_a_new_object() {
    let repo = two_teams();
    repo.rename("apps/a/web.yaml", "apps/b/web.yaml");
    repo.commit_all("move web to team b");
    let (out, json) = check(&repo, &["--base", "HEAD~1"]);
    // team-b's web is new: its error is the change's own and blocks.
    assert_eq!(out.status.code(), Some(1), "{json}");
    assert_eq!(
        web_findings(&json),
        [("apps/v1/Deployment/team-b/web".to_owned(), false)],
        "{json}"
    );
}

#[test]
fn an_edit_under_a_target_namespace_keeps_the_old_finding_pre_existing() {
    let repo = two_teams();
    repo.write("apps/a/web.yaml", WEB.replace("nginx:1.27", "nginx:1.28"));
    repo.commit_all("bump");
    let (out, json) = check(&repo, &["--base", "HEAD~1"]);
    assert_eq!(out.status.code(), Some(0), "{json}");
    assert_eq!(
        web_findings(&json),
        [("apps/v1/Deployment/team-a/web".to_owned(), true)],
        "{json}"
    );
}
