//! CRDs that arrive with the files they define, through the real binary: the kinds are taken from
//! the CRD documents before the other files are judged, the CRD documents are judged themselves,
//! and the unknown-field suggestion for a custom resource comes from the CRD's schema.

mod common;

use common::git::TestRepo;
use common::run::{findings_with, json, stategate};
use serde_json::Value;

/// A CRD of `Widget` whose `spec.size` is an integer; `extra` is spliced into the CRD's `spec`.
fn widget_crd(description: &str, extra: &str) -> String {
    format!(
        "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.acme.io
spec:
  group: acme.io
  names: {{kind: Widget, plural: widgets}}
  scope: Namespaced
{extra}  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {{type: integer, description: \"{description}\"}}
                colour: {{type: string}}
"
    )
}

const WIDGET: &str = "apiVersion: acme.io/v1
kind: Widget
metadata:
  name: w
  namespace: team
spec:
  size: big
  colur: red
";

fn check_all(repo: &TestRepo) -> Value {
    json(&stategate(repo, &["check", "--all", "--format", "json"]))
}

fn files_of(findings: &[&Value]) -> Vec<String> {
    findings
        .iter()
        .map(|f| {
            f["location"]["file"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

#[test]
fn a_custom_resource_is_judged_by_the_crd_that_comes_with_it_and_the_crd_by_kubernetes() {
    let repo = TestRepo::new();
    // `preserveUnknownFields` belongs in `spec`; `preserveUnknown` is a typo Kubernetes rejects.
    repo.write(
        "crds/widget.yaml",
        widget_crd("widgets per box", "  preserveUnknown: false\n"),
    );
    repo.write("apps/widget.yaml", WIDGET);
    repo.commit_all("widget");
    let report = check_all(&repo);

    let wrong_type = findings_with(&report, "schema/type");
    assert_eq!(files_of(&wrong_type), ["apps/widget.yaml"], "{report:#}");
    let unknown = findings_with(&report, "schema/unknown-field");
    let mut files = files_of(&unknown);
    files.sort();
    assert_eq!(
        files,
        ["apps/widget.yaml", "crds/widget.yaml"],
        "{report:#}"
    );
    let messages: Vec<&str> = unknown
        .iter()
        .filter_map(|f| f["message"].as_str())
        .collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("did you mean `colour`?")),
        "the suggestion comes from the CRD's schema: {report:#}"
    );
    assert!(
        messages.iter().any(|m| m.contains("`preserveUnknown`")),
        "the CRD itself is judged: {report:#}"
    );
    assert!(findings_with(&report, "schema/unknown-kind").is_empty());
}

#[test]
fn a_crd_with_a_flux_variable_still_defines_its_kind() {
    // `${…}` in a CRD makes the gate hold every file until Flux's substitution: the kinds then
    // come from the held documents. The base has no CRD to fall back on.
    let repo = TestRepo::new();
    repo.write("README.md", "widgets\n");
    let base = repo.commit_all("empty");
    repo.write("crds/widget.yaml", widget_crd("widgets per ${UNIT}", ""));
    repo.write("apps/widget.yaml", WIDGET);
    repo.commit_all("widget");
    let report = json(&stategate(
        &repo,
        &["check", "--base", &base, "--format", "json"],
    ));
    assert_eq!(
        files_of(&findings_with(&report, "schema/type")),
        ["apps/widget.yaml"],
        "{report:#}"
    );
    assert!(
        findings_with(&report, "schema/unknown-kind").is_empty(),
        "{report:#}"
    );
}
