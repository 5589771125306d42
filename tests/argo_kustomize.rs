//! Argo CD Applications with `source.kustomize`, rendered with the real `kubectl kustomize` the
//! way Argo CD builds them (the source directory plus the Application's overrides), through the
//! real binary in a real git repository.

mod common;

use common::git::TestRepo;
use common::run::{diff_object, findings_with, json, stategate_cached};
use serde_json::Value;

const NO_LATEST: &str = "package main

deny contains msg if {
  input.kind == \"Deployment\"
  some c in input.spec.template.spec.containers
  endswith(c.image, \":latest\")
  msg := sprintf(\"container %s uses %s\", [c.name, c.image])
}
";

const KUSTOMIZATION: &str = "apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [deployment.yaml]
";

const DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 1
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: nginx
          image: nginx:1.25
";

const APPLICATION: &str = "apiVersion: argoproj.io/v1alpha1
kind: Application
metadata:
  name: web
  namespace: argocd
spec:
  project: default
  source:
    repoURL: https://git.example.com/this-repo.git
    path: apps/web
    targetRevision: HEAD
    kustomize:
      namePrefix: prod-
      commonLabels: {team: blue}
      images: [\"nginx:1.27\"]
  destination:
    server: https://kubernetes.default.svc
    namespace: web
";

/// A repository with Helm releases rendered, the Deployment's kustomization in `source` (`""` for
/// the root) and `application` building it, nothing committed yet.
fn application_repo(source: &str, application: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        ".stategate.yaml",
        "version: 1\nrender:\n  helm:\n    releases: true\n",
    );
    let at = |file: &str| match source {
        "" => file.to_owned(),
        dir => format!("{dir}/{file}"),
    };
    repo.write(&at("kustomization.yaml"), KUSTOMIZATION);
    repo.write(&at("deployment.yaml"), DEPLOYMENT);
    repo.write("argocd/web.yaml", application);
    repo
}

/// `stategate ARGS --base BASE --format json` with its own render cache: the exit code and the
/// report.
fn run_json(
    repo: &TestRepo,
    command: &str,
    base: &str,
    cache: &tempfile::TempDir,
) -> (Option<i32>, Value) {
    let out = stategate_cached(
        repo,
        &[command, "--base", base, "--format", "json"],
        cache.path(),
    );
    (out.status.code(), json(&out))
}

/// A repository whose Application pins `nginx:1.27`, then a commit that overrides it to
/// `nginx:latest`; returns the base commit.
fn repo_with_latest_override() -> (TestRepo, String, tempfile::TempDir) {
    let repo = application_repo("apps/web", APPLICATION);
    repo.write("policies/latest.rego", NO_LATEST);
    let base = repo.commit_all("argo kustomize app");
    repo.write(
        "argocd/web.yaml",
        APPLICATION.replace("nginx:1.27", "nginx:latest"),
    );
    repo.commit_all("latest");
    (repo, base, tempfile::tempdir().expect("cache"))
}

#[test]
fn an_application_image_override_to_latest_trips_the_policy_on_the_rendered_deployment() {
    let (repo, base, cache) = repo_with_latest_override();
    let (code, report) = run_json(&repo, "check", &base, &cache);
    assert_eq!(code, Some(1), "{report:#}");
    let denied: Vec<&Value> = findings_with(&report, "policy/deny");
    assert_eq!(denied.len(), 1, "{report:#}");
    assert_eq!(denied[0]["message"], "container nginx uses nginx:latest");
    assert_eq!(
        denied[0]["location"]["file"], "argocd/web.yaml",
        "{report:#}"
    );
}

#[test]
fn an_application_image_override_change_shows_on_the_rendered_deployment_in_diff() {
    let (repo, base, cache) = repo_with_latest_override();
    let (_, diff) = run_json(&repo, "diff", &base, &cache);
    // namePrefix and commonLabels applied; destination.namespace fills in the missing namespace.
    let deployment = diff_object(&diff, "apps/v1/Deployment/web/prod-web");
    assert_eq!(deployment["status"], "changed", "{deployment:#}");
    assert_eq!(
        deployment["changed_fields"],
        serde_json::json!(["spec.template.spec.containers[name=nginx].image"]),
        "{deployment:#}"
    );
    let text = deployment["diff"].as_str().unwrap_or_default();
    assert!(
        text.contains("-      - image: nginx:1.27\n+      - image: nginx:latest"),
        "{deployment:#}"
    );
    assert_eq!(
        deployment["head"]["rendered_by"], "kustomize",
        "{deployment:#}"
    );
    assert!(
        deployment.to_string().contains("Application argocd/web"),
        "{deployment:#}"
    );
    assert!(
        !diff.to_string().contains("nginx:1.25"),
        "the source directory's own tag never shows: {diff:#}"
    );
}

#[test]
fn an_application_whose_source_is_the_repository_root_is_refused_when_a_file_there_changes() {
    // `path: .` makes every file of the repository an input of the release, so a change to the
    // Deployment it builds must reach it. The gate cannot build overrides at the root, so it
    // blocks and says why rather than judge the raw file alone (which hides the override).
    let repo = application_repo("", &APPLICATION.replace("path: apps/web", "path: ."));
    let base = repo.commit_all("argo kustomize app at the root");
    repo.write(
        "deployment.yaml",
        DEPLOYMENT.replace("replicas: 1", "replicas: 3"),
    );
    repo.commit_all("scale");
    let cache = tempfile::tempdir().expect("cache");
    let (code, report) = run_json(&repo, "check", &base, &cache);
    assert_eq!(report["verdict"], "undecided", "{report:#}");
    assert_eq!(code, Some(2), "{report:#}");
    let failed: Vec<&Value> = findings_with(&report, "render/failed");
    assert!(!failed.is_empty(), "{report:#}");
    assert!(
        failed
            .iter()
            .all(|f| f["location"]["file"] == "argocd/web.yaml"
                && f["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("repository's root"))),
        "{report:#}"
    );

    // A file beside it that kustomize does not read is not the Application's input: a change
    // to it alone is not blocked by the Application.
    let scaled = repo.head();
    repo.write("README.md", "the web app\n");
    repo.commit_all("readme");
    let (code, report) = run_json(&repo, "check", &scaled, &cache);
    assert!(
        findings_with(&report, "render/failed").is_empty(),
        "{report:#}"
    );
    assert_eq!(code, Some(0), "{report:#}");
}
