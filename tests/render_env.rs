//! Rendered objects belong to their overlay's environment, and an edit of a shared base that alters
//! an overlay's objects is a change to that overlay: for environment policies and for approval
//! rules. The real binary, the real `kubectl kustomize`, real pushes with real SSH signatures.

mod common;
mod hook_support;

use common::git::TestRepo;
use common::run::{findings_with, stategate};
use hook_support::{Keys, ssh_keygen_available};
use hook_support::{Pushed, Server, push};

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 2
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: nginx:1.27
";

/// Prod may never be scaled to zero; other environments may.
const PROD_POLICY: &str = "package main

deny contains msg if {
  data.stategate.file.environment == \"prod\"
  input.kind == \"Deployment\"
  input.spec.replicas == 0
  msg := sprintf(\"prod Deployment %s scaled to zero (%s)\", [input.metadata.name, data.stategate.file.action])
}
";

/// apps/web (a shared base) used by clusters/prod and clusters/staging.
fn write_clusters(repo: &TestRepo, extra_config: &str) {
    repo.write(
        ".stategate.yaml",
        format!(
            "version: 1\nenvironments:\n  prod: [\"clusters/prod/**\"]\n  staging: [\"clusters/staging/**\"]\nrender:\n  kustomize: [\"clusters/*\"]\n{extra_config}"
        ),
    );
    repo.write(
        "apps/web/kustomization.yaml",
        "resources: [deployment.yaml]\n",
    );
    repo.write("apps/web/deployment.yaml", DEPLOYMENT);
    for env in ["prod", "staging"] {
        repo.write(
            &format!("clusters/{env}/kustomization.yaml"),
            format!("resources: [../../apps/web]\nnamespace: {env}\n"),
        );
    }
}

fn scale_base_to_zero(repo: &TestRepo) -> String {
    repo.write(
        "apps/web/deployment.yaml",
        DEPLOYMENT.replace("replicas: 2", "replicas: 0"),
    );
    repo.commit_all("scale web to zero")
}

#[test]
fn a_base_edit_is_judged_by_prod_policies_in_the_prod_overlay() {
    let repo = TestRepo::new();
    write_clusters(&repo, "");
    repo.write("policies/prod.rego", PROD_POLICY);
    let base = repo.commit_all("clusters");
    scale_base_to_zero(&repo);
    let out = stategate(&repo, &["check", "--base", &base, "--format", "json"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let denied: Vec<(&str, &str)> = findings_with(&report, "policy/deny")
        .into_iter()
        .map(|f| {
            (
                f["location"]["file"].as_str().unwrap_or_default(),
                f["message"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    // Prod's rendered object only: not staging's, not the base file (it is in no environment).
    assert_eq!(
        denied,
        vec![(
            // Reported at the file that wrote the value (issue 10), judged in prod's overlay.
            "apps/web/deployment.yaml",
            "prod Deployment web scaled to zero (modified)"
        )],
        "{stdout}"
    );
}

const APPROVALS: &str = "approvals:
  - name: prod-needs-two
    paths: [\"clusters/prod/**\"]
    required: 2
    from: [\"bob\", \"carol\"]
    allowed_signers: .stategate/allowed_signers
";

fn approval_server(keys: &Keys) -> (Server, TestRepo) {
    let server = Server::new();
    let work = TestRepo::new();
    write_clusters(&work, APPROVALS);
    work.write(
        ".stategate/allowed_signers",
        keys.allowed_signers(&["dev", "bob", "carol"]),
    );
    work.commit_all("clusters");
    assert!(push(&work, &server.url(), &["main"], &[]).ok);
    server.install_hook(&["--timeout", "60"]);
    (server, work)
}

fn push_main(server: &Server, work: &TestRepo) -> Pushed {
    push(work, &server.url(), &["main"], &[("REMOTE_USER", "dev")])
}

#[test]
fn a_base_edit_that_changes_prod_needs_the_prod_approval() {
    if !ssh_keygen_available() {
        return;
    }
    let keys = Keys::new(&["dev", "bob", "carol"]);
    let (server, work) = approval_server(&keys);
    // The change is signed by its author, so bob and carol are provably not its authors.
    work.write(
        "apps/web/deployment.yaml",
        DEPLOYMENT.replace("replicas: 2", "replicas: 0"),
    );
    keys.commit_signed(&work, "dev", "scale web to zero");
    let pushed = push_main(&server, &work);
    assert!(!pushed.ok, "{}", pushed.stderr);
    assert!(
        pushed.says(
            "error[approval/missing]: approval rule `prod-needs-two` needs 2 signed approval(s)"
        ),
        "{}",
        pushed.stderr
    );
    keys.sign_approval(&work, "bob");
    keys.sign_approval(&work, "carol");
    let pushed = push_main(&server, &work);
    assert!(pushed.ok, "{}", pushed.stderr);
}

#[test]
fn a_base_edit_that_leaves_prod_unchanged_needs_no_prod_approval() {
    if !ssh_keygen_available() {
        return;
    }
    let keys = Keys::new(&["dev", "bob", "carol"]);
    let (server, work) = approval_server(&keys);
    // Only a comment: prod's rendered objects are the same.
    work.write(
        "apps/web/deployment.yaml",
        format!("# owned by team web\n{DEPLOYMENT}"),
    );
    work.commit_all("comment");
    let pushed = push_main(&server, &work);
    assert!(pushed.ok, "{}", pushed.stderr);
}
