//! CRDs that arrive with the files they define, through the real binary: the kinds are taken from
//! the CRD documents before the other files are judged, the CRD documents are judged themselves,
//! and the unknown-field suggestion for a custom resource comes from the CRD's schema. Through the
//! library, with a tree that counts reads: when a file with an unknown kind waits for the base's
//! CRDs. And the listing of the base's CRD files, kept in the cache directory by the base's tree.

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

/// A tree that counts the reads of each path: how often the gate read a changed file.
struct Counting {
    inner: stategate::tree::MemTree,
    reads: std::sync::Mutex<std::collections::BTreeMap<String, usize>>,
}

impl stategate::tree::Tree for Counting {
    fn read_checked(&self, path: &str) -> Result<Option<Vec<u8>>, stategate::tree::Unreadable> {
        *self
            .reads
            .lock()
            .unwrap()
            .entry(path.to_owned())
            .or_default() += 1;
        self.inner.read_checked(path)
    }
    fn files_under(&self, prefix: &str) -> Vec<String> {
        self.inner.files_under(prefix)
    }
    fn unreadable_under(&self, prefix: &str) -> Vec<stategate::tree::Unreadable> {
        self.inner.unreadable_under(prefix)
    }
    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// Checks `w.yaml` (a Widget) as an added file, against a trusted base holding `base`; the rules
/// of the findings, and how many times the gate read `w.yaml`.
fn widget_reads(base: &[(&str, String)]) -> (Vec<String>, usize) {
    use stategate::change::{Action, ChangeSet, FileChange};
    use stategate::tree::{Content, MemTree};
    let head = std::sync::Arc::new(Counting {
        inner: MemTree::with_files("head", &[("w.yaml", WIDGET)]),
        reads: Default::default(),
    });
    let as_tree = stategate::tree::SharedTree::new(head.clone());
    let change = ChangeSet {
        files: vec![FileChange::new(
            "w.yaml",
            Action::Added,
            None,
            Some(Content::in_tree(&as_tree, None, WIDGET.as_bytes())),
        )],
        ..ChangeSet::default()
    };
    let trusted = MemTree::with_files("base", base);
    let gate = stategate::gate::Gate::open(Box::new(trusted), None)
        .unwrap_or_else(|r| panic!("{:?}", r.findings));
    let report = gate.check(&change, head.as_ref());
    let rules = report
        .findings
        .iter()
        .map(|f| f.rule.code().to_owned())
        .collect();
    let reads = head.reads.lock().unwrap()["w.yaml"];
    (rules, reads)
}

#[test]
fn a_kind_no_schema_covers_waits_for_the_base_crds_only_when_the_base_has_some() {
    // The base defines Widget: the file waits for the base's CRDs, is read again, and is judged
    // by the CRD (its `size` is no integer) rather than called unknown.
    let (rules, with_base_crd) = widget_reads(&[("crds/widget.yaml", widget_crd("", ""))]);
    assert!(rules.contains(&"schema/type".to_owned()), "{rules:?}");
    assert!(
        !rules.contains(&"schema/unknown-kind".to_owned()),
        "{rules:?}"
    );
    // No CRD file in the base: nothing can define the kind, so the file is judged in the stream
    // and read once less (by the first look and the stream, not again after it).
    let (rules, without) = widget_reads(&[("apps/readme.md", "notes".into())]);
    assert!(
        rules.contains(&"schema/unknown-kind".to_owned()),
        "{rules:?}"
    );
    assert_eq!(
        without + 1,
        with_base_crd,
        "{without} and {with_base_crd} reads"
    );
}

/// The base's CRD files are listed once per base: a check keeps the listing by the base's tree id
/// in the cache directory, and the next check against the same base reads it there instead of
/// walking the base. Shown by changing what the cache says: the next check believes it.
#[test]
fn the_bases_crd_files_are_listed_once_per_base_and_kept_in_the_cache() {
    use stategate::render::scan_cache::TreeListings;
    let repo = TestRepo::new();
    repo.write("crds/widget.yaml", widget_crd("", ""));
    repo.commit_all("the CRD");
    repo.write("apps/widget.yaml", WIDGET);
    let check = || json(&stategate(&repo, &["check", "--format", "json"]));
    let judged_by_the_base_crd = |report: &Value| {
        !findings_with(report, "schema/type").is_empty()
            && findings_with(report, "schema/unknown-kind").is_empty()
    };
    let first = check();
    assert!(judged_by_the_base_crd(&first), "{first:#}");

    let cache = repo.path().join(".git/stategate/render-cache");
    let tree: git2::Oid = repo.git(&["rev-parse", "HEAD^{tree}"]).parse().unwrap();
    let globs = stategate::schema::crd::crd_globs(&[]);
    let listings = TreeListings::open(&cache);
    assert_eq!(
        listings.get(tree, &globs),
        Some(vec!["crds/widget.yaml".to_owned()])
    );
    // A listing that leaves the CRD out: the next check takes the cache's word for it.
    listings.put(tree, &globs, &[]);
    let second = check();
    assert!(
        !findings_with(&second, "schema/unknown-kind").is_empty(),
        "{second:#}"
    );
    // Without the cache, the base is walked again.
    let uncached = json(&stategate(
        &repo,
        &["check", "--no-cache", "--format", "json"],
    ));
    assert!(judged_by_the_base_crd(&uncached), "{uncached:#}");
}
