//! `check` of the working tree glances at each file while detecting the change, and the gate's
//! first look reads only the files the glance did not find plain. A check of the same commit's
//! blobs (`--head HEAD`) has no glance: its first look reads every file. Both must reach the same
//! findings, on files of every kind the first look is for and on the corpus' repositories.

mod common;

use common::git::TestRepo;
use common::run::{json, stategate};

/// A CRD and a custom resource of it that breaks its schema: without the CRD file's first look,
/// the kind would be unknown.
const CRD: &str = "apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.com
spec:
  group: example.com
  names: {kind: Widget, plural: widgets, singular: widget, listKind: WidgetList}
  scope: Namespaced
  versions:
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
                size: {type: integer}
";

const WIDGET: &str = "apiVersion: example.com/v1
kind: Widget
metadata:
  name: w
spec:
  size: big
";

/// A chart's template: set aside with a note, where parsed it would be an error.
const TEMPLATE: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: {{ .Release.Name }}
data: {{ toYaml .Values.data | nindent 2 }}
";

/// A schema error under a suppression comment, and one without.
const SUPPRESSED: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: quiet
spec:
  replicas: \"2\" # stategate:ignore schema/type -- kept as a string until the chart moves
  selector: {matchLabels: {app: quiet}}
  template:
    metadata: {labels: {app: quiet}}
    spec:
      containers: [{name: a, image: a:1}]
";

/// Flux substitutes `${REPLICAS}` from a ConfigMap: `3`, where unsubstituted it is a string.
const FLUX: &str = "apiVersion: kustomize.toolkit.fluxcd.io/v1
kind: Kustomization
metadata:
  name: web
  namespace: flux-system
spec:
  interval: 10m
  path: ./apps/web
  prune: true
  sourceRef: {kind: GitRepository, name: flux-system}
  postBuild:
    substituteFrom:
      - kind: ConfigMap
        name: cluster-vars
";

const VARS: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: cluster-vars
  namespace: flux-system
data:
  REPLICAS: \"3\"
";

const SUBSTITUTED: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: ${REPLICAS}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: web:1}]
";

const PLAIN: &str = "apiVersion: v1
kind: ConfigMap
metadata:
  name: plain
data: {a: b}
";

/// The findings and counts of a check's JSON report, without the note that names its side.
fn verdict(report: &serde_json::Value) -> (serde_json::Value, serde_json::Value) {
    (report["findings"].clone(), report["stats"].clone())
}

fn both_sides(repo: &TestRepo) -> [(serde_json::Value, serde_json::Value); 2] {
    let glanced = json(&stategate(repo, &["check", "--all", "--format", "json"]));
    let blobs = json(&stategate(
        repo,
        &["check", "--all", "--head", "HEAD", "--format", "json"],
    ));
    [verdict(&glanced), verdict(&blobs)]
}

fn rules_in(findings: &serde_json::Value, file: &str) -> Vec<String> {
    findings
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["location"]["file"] == file)
        .filter(|f| f["suppressed"].is_null())
        .map(|f| f["rule"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn every_file_the_first_look_is_for_is_judged_alike_with_and_without_the_glance() {
    let repo = TestRepo::new();
    repo.write("crds/widget.yaml", CRD);
    repo.write("widgets/w.yaml", WIDGET);
    repo.write(
        "charts/web/Chart.yaml",
        "apiVersion: v2\nname: web\nversion: 1.0.0\n",
    );
    repo.write("charts/web/templates/cm.yaml", TEMPLATE);
    repo.write("apps/quiet.yaml", SUPPRESSED);
    repo.write("clusters/prod/web.yaml", FLUX);
    repo.write("clusters/prod/vars.yaml", VARS);
    repo.write("apps/web/deploy.yaml", SUBSTITUTED);
    for i in 0..20 {
        repo.write(&format!("plain/cm-{i}.yaml"), PLAIN);
    }
    repo.commit_all("every kind of file");
    let [glanced, blobs] = both_sides(&repo);
    assert_eq!(glanced, blobs);
    let findings = &glanced.0;
    // What each file's first look decided, as the report shows it.
    assert_eq!(rules_in(findings, "widgets/w.yaml"), ["schema/type"]);
    assert!(
        rules_in(findings, "apps/quiet.yaml").is_empty(),
        "{findings:#}"
    );
    assert!(
        rules_in(findings, "apps/web/deploy.yaml").is_empty(),
        "{findings:#}"
    );
    // The template is set aside: neither counted nor parsed (which would fail on its `{{`).
    assert!(rules_in(findings, "charts/web/templates/cm.yaml").is_empty());
    assert_eq!(glanced.1["files"], 27, "{:#}", glanced.1);
}

#[test]
fn the_corpus_repositories_are_judged_alike_with_and_without_the_glance() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let repo = TestRepo::new();
    common::copy_tree(
        &corpus.join("gitops-repos"),
        std::path::Path::new(""),
        &repo,
    );
    repo.commit_all("corpus");
    let [glanced, blobs] = both_sides(&repo);
    assert!(
        glanced.1["documents"].as_u64().unwrap() > 3000,
        "{:#}",
        glanced.1
    );
    assert_eq!(glanced, blobs);
}
