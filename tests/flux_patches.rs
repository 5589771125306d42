//! A parent Flux `Kustomization` whose `spec.patches` complete its children, the way
//! kustomize-controller builds them, through the real binary, a real git repository and the real
//! `kubectl kustomize`.

mod common;

use common::git::TestRepo;
use common::run::{code, errors, findings_with, json, stategate_cached};
use serde_json::Value;

/// The parent: builds `apps/` (no kustomization there: Flux generates one) and sets `interval`
/// and `prune`, which the Kustomization CRD requires, on every child not labelled out.
const PARENT: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: apps
  namespace: flux-system
spec:
  interval: 1h
  prune: true
  path: ./apps
  sourceRef:
    kind: GitRepository
    name: flux-system
  patches:
    - # defaults for every child Kustomization
      patch: |-
        apiVersion: kustomize.toolkit.fluxcd.io/v1
        kind: Kustomization
        metadata:
          name: _
        spec:
          interval: 30m
          prune: true
      target:
        group: kustomize.toolkit.fluxcd.io
        kind: Kustomization
        labelSelector: defaults!=disabled
";

const CHILD: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: web
  namespace: flux-system
spec:
  path: ./apps/web/app
  sourceRef:
    kind: GitRepository
    name: flux-system
";

const OPTED_OUT: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: api
  namespace: flux-system
  labels:
    defaults: disabled
spec:
  path: ./apps/api/app
  sourceRef:
    kind: GitRepository
    name: flux-system
";

fn repo_with(parent: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("clusters/prod/apps.yaml", parent);
    repo.write("apps/web/ks.yaml", CHILD);
    repo.write(
        "apps/web/app/configmap.yaml",
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: web\ndata:\n  a: b\n",
    );
    repo.commit_all("flux");
    repo
}

fn check(repo: &TestRepo, args: &[&str]) -> (i32, Value) {
    let cache = tempfile::tempdir().unwrap();
    let mut all = vec!["check", "--format", "json"];
    all.extend_from_slice(args);
    let out = stategate_cached(repo, &all, cache.path());
    (code(&out), json(&out))
}

fn required(report: &Value) -> Vec<(String, String)> {
    findings_with(report, "schema/required")
        .into_iter()
        .map(|f| {
            (
                f["location"]["file"].as_str().unwrap_or("").to_owned(),
                f["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// The children take `interval` and `prune` from the parent's patch: clean. Without the patch
/// they miss both, as the CRD says; a child the selector leaves out misses them with the patch.
#[test]
fn a_parent_patch_completes_its_children_and_its_absence_is_an_error() {
    let repo = repo_with(PARENT);
    let (status, report) = check(&repo, &["--all"]);
    assert_eq!(status, 0, "{report:#}");
    assert!(required(&report).is_empty(), "{report:#}");

    let without = PARENT.split("  patches:").next().unwrap();
    repo.write("clusters/prod/apps.yaml", without);
    repo.commit_all("no defaults");
    let (status, report) = check(&repo, &["--all"]);
    assert_eq!(status, 1, "{report:#}");
    let missing = required(&report);
    assert_eq!(missing.len(), 2, "{report:#}");
    assert!(
        missing.iter().all(|(file, _)| file == "apps/web/ks.yaml"),
        "{missing:?}"
    );

    let repo = repo_with(PARENT);
    repo.write("apps/api/ks.yaml", OPTED_OUT);
    repo.commit_all("opted out");
    let (status, report) = check(&repo, &["--all"]);
    assert_eq!(status, 1, "{report:#}");
    let missing = required(&report);
    assert_eq!(missing.len(), 2, "{report:#}");
    assert!(
        missing.iter().all(|(file, _)| file == "apps/api/ks.yaml"),
        "{missing:?}"
    );
}

/// A parent change that patches a wrong value into the children blocks the change, though no
/// child file changed, and the finding points at the patch line that wrote it.
#[test]
fn a_parent_patch_that_breaks_its_children_is_reported_at_the_patch_line() {
    let repo = repo_with(PARENT);
    let base = repo.head();
    repo.write(
        "clusters/prod/apps.yaml",
        PARENT.replace("interval: 30m", "interval: 30"),
    );
    repo.commit_all("interval as a number");
    let (status, report) = check(&repo, &["--base", &base]);
    assert_eq!(status, 1, "{report:#}");
    let errors = errors(&report);
    let line = PARENT
        .lines()
        .position(|l| l.trim() == "interval: 30m")
        .unwrap()
        + 1;
    assert_eq!(
        errors,
        vec![(
            "schema/type".to_owned(),
            "clusters/prod/apps.yaml".to_owned(),
            line as u64
        )],
        "{report:#}"
    );
    let finding = &report["findings"][0];
    assert_eq!(
        finding["metadata"]["object_file"], "apps/web/ks.yaml",
        "{finding:#}"
    );
}

/// A patch kustomize cannot apply (a strategic-merge patch of an object the path does not hold)
/// is a `render/failed` error naming the parent, not a silent pass.
#[test]
fn a_patch_the_gate_cannot_apply_fails_closed() {
    let broken = format!(
        "{PARENT}    - patch: |-\n        apiVersion: kustomize.toolkit.fluxcd.io/v1\n        kind: Kustomization\n        metadata:\n          name: missing\n        spec:\n          prune: false\n"
    );
    let repo = repo_with(&broken);
    let (status, report) = check(&repo, &["--all"]);
    assert_eq!(status, 2, "{report:#}");
    let failed: Vec<&Value> = findings_with(&report, "render/failed");
    assert_eq!(failed.len(), 1, "{report:#}");
    assert_eq!(failed[0]["location"]["file"], "clusters/prod/apps.yaml");
    assert!(
        failed[0]["message"]
            .as_str()
            .unwrap()
            .contains("flux-system/apps"),
        "{report:#}"
    );
}
