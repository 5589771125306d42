//! The policy stage when policies misbehave (broken, recursive, runaway, missing builtins or
//! data), plus the file context, change policies and parallel use.

use rayon::prelude::*;
use serde_json::json;
use stategate::change::Action;
use stategate::config::PoliciesConfig;
use stategate::finding::{Finding, Rule, Severity, Verdict};
use stategate::load::{Document, LoadOptions, load_file};
use stategate::policy::{ChangeInput, ChangedFile, FileContext, PolicySet};
use stategate::tree::MemTree;

fn tree(files: &[(&str, &str)]) -> MemTree {
    let mut tree = MemTree::empty("test");
    for (path, text) in files {
        tree.files
            .insert(path.to_string(), text.as_bytes().to_vec());
    }
    tree
}

fn config() -> PoliciesConfig {
    PoliciesConfig::default()
}

fn load(files: &[(&str, &str)]) -> Result<PolicySet, Vec<Finding>> {
    PolicySet::load(&config(), &tree(files))
}

fn doc(path: &str, yaml: &str) -> Document {
    let loaded = load_file(path, yaml.as_bytes(), &LoadOptions::default());
    assert!(loaded.findings.is_empty(), "{:?}", loaded.findings);
    loaded.documents.into_iter().next().expect("one document")
}

fn ctx(path: &str) -> FileContext {
    FileContext {
        path: path.into(),
        environment: None,
        action: Action::Added,
        before: None,
    }
}

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers: []\n";

#[test]
fn a_broken_policy_is_a_compile_finding_naming_file_and_line() {
    let err = load(&[(
        "policies/broken.rego",
        "package main\nimport rego.v1\n\ndeny contains msg if {\n  msg := := 1\n}\n",
    )])
    .err()
    .expect("does not compile");
    assert_eq!(err.len(), 1);
    let f = &err[0];
    assert_eq!(f.rule, Rule::PolicyCompile);
    let at = f.location.as_ref().unwrap();
    assert_eq!(
        (at.file.as_str(), at.line),
        ("policies/broken.rego", Some(5))
    );
    assert!(
        f.message.contains("policies/broken.rego:5:"),
        "{}",
        f.message
    );
    assert_eq!(Verdict::of(&err).exit_code(), 2);
}

#[test]
fn a_recursive_function_is_refused_not_a_stack_overflow() {
    let err = load(&[(
        "policies/rec.rego",
        "package main\nimport rego.v1\n\nf(x) := y if { y := f(x + 1) }\n\ndeny contains msg if { msg := f(1) }\n",
    )])
    .err()
    .expect("recursion is a compile error, as in OPA");
    assert_eq!(err[0].rule, Rule::PolicyCompile);
    assert!(
        err[0].message.contains("recursive function: data.main.f"),
        "{}",
        err[0].message
    );
    assert_eq!(err[0].location.as_ref().unwrap().line, Some(4));
}

#[test]
fn recursive_rules_are_refused_too() {
    let err = load(&[(
        "policies/rec.rego",
        "package main\nimport rego.v1\na contains x if { some x in b }\nb contains x if { some x in a }\ndeny contains msg if { a[msg] }\n",
    )])
    .err()
    .expect("rule recursion is a compile error, as in OPA");
    assert_eq!(err.len(), 1, "{err:?}");
    assert_eq!(err[0].rule, Rule::PolicyCompile);
    assert!(
        err[0]
            .message
            .contains("recursive rule: data.main.a → data.main.b → data.main.a"),
        "{}",
        err[0].message
    );
}

/// Shared helpers, rules named like fields, and rules used by several others are no recursion.
#[test]
fn non_recursive_references_are_accepted() {
    let set = load(&[(
        "policies/ok.rego",
        "package main\nimport rego.v1\nname := input.metadata.name\nlabels := object.get(input.metadata, \"labels\", {})\ndeny contains msg if { not labels.app; msg := sprintf(\"%s: no app label\", [name]) }\nwarn contains msg if { some msg in deny }\n",
    )])
    .expect("no recursion here");
    let d = doc("pod.yaml", POD);
    let findings = set.check_document(&d, &ctx("pod.yaml"));
    assert_eq!(findings.len(), 2, "{findings:?}");
}

#[test]
fn a_runaway_policy_is_stopped_by_the_time_budget() {
    let config = PoliciesConfig {
        timeout_ms: 50,
        ..config()
    };
    let t = tree(&[(
        "policies/loop.rego",
        "package main\nimport rego.v1\ndeny contains msg if {\n  n := count([x | some i in numbers.range(1, 100000); some j in numbers.range(1, 100000); x := i * j])\n  msg := sprintf(\"%v\", [n])\n}\n",
    )]);
    let set = PolicySet::load(&config, &t).unwrap();
    let d = doc("pod.yaml", POD);
    let findings = set.check_document(&d, &ctx("pod.yaml"));
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].rule, Rule::PolicyError);
    assert_eq!(findings[0].severity, Severity::Error);
    assert!(
        findings[0]
            .message
            .contains("data.main.deny ran out of its time budget"),
        "{}",
        findings[0].message
    );
    assert_eq!(findings[0].metadata["policy"], "policies/loop.rego");
}

/// OPA: a reference to data that does not exist is undefined, so the rule body fails and the
/// rule yields nothing. No finding, no error.
#[test]
fn a_missing_data_path_is_undefined() {
    let set = load(&[(
        "policies/data.rego",
        "package main\nimport rego.v1\ndeny contains \"allowed\" if { data.nope.allowed[input.kind] }\ndeny contains \"unlisted\" if { not data.nope.allowed[input.kind] }\n",
    )])
    .unwrap();
    let findings = set.check_document(&doc("pod.yaml", POD), &ctx("pod.yaml"));
    let messages: Vec<&str> = findings.iter().map(|f| f.message.as_str()).collect();
    assert_eq!(messages, vec!["unlisted"]);
}

#[test]
fn a_builtin_regorus_lacks_is_named() {
    let err = load(&[(
        "policies/jwt.rego",
        "package main\nimport rego.v1\n\ndeny contains msg if {\n  [_, payload, _] := io.jwt.decode(input.token)\n  msg := payload.sub\n}\n",
    )])
    .err()
    .expect("refused at load");
    assert_eq!(err.len(), 1);
    assert_eq!(err[0].rule, Rule::PolicyCompile);
    assert!(
        err[0].message.contains("`io.jwt.decode`"),
        "{}",
        err[0].message
    );
    assert_eq!(err[0].location.as_ref().unwrap().line, Some(5));
    assert!(stategate::policy::MISSING_BUILTINS.contains(&"strings.render_template"));
}

#[test]
fn an_evaluation_error_on_one_document_spares_the_others() {
    let set = load(&[(
        "policies/conflict.rego",
        "package main\nimport rego.v1\nsize := 1 if input.a\nsize := 2 if input.b\ndeny contains msg if { size > 0; msg := sprintf(\"size %v\", [size]) }\n",
    )])
    .unwrap();
    let both = doc("both.yaml", "a: true\nb: true\n");
    let one = doc("one.yaml", "a: true\n");
    let bad = set.check_document(&both, &ctx("both.yaml"));
    assert_eq!(bad.len(), 1, "{bad:?}");
    assert_eq!(bad[0].rule, Rule::PolicyError);
    assert!(bad[0].message.contains("both.yaml"), "{}", bad[0].message);
    let good = set.check_document(&one, &ctx("one.yaml"));
    assert_eq!(
        good.iter().map(|f| f.message.as_str()).collect::<Vec<_>>(),
        vec!["size 1"]
    );
}

#[test]
fn v0_and_v1_policies_results_and_metadata() {
    let set = load(&[
        (
            "policies/v0.rego",
            "package main\ndeny_replicas[{\"msg\": msg, \"severity\": \"high\"}] {\n  input.spec.replicas > 3\n  msg := \"too many replicas\"\n}\n",
        ),
        (
            "policies/v1.rego",
            "package main\nimport rego.v1\nwarn_name contains msg if { startswith(input.metadata.name, \"tmp-\"); msg := \"temporary name\" }\n",
        ),
        ("policies/other.rego", "package other\nimport rego.v1\ndeny contains \"never\" if true\n"),
    ])
    .unwrap();
    let d = doc(
        "apps/web.yaml",
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: tmp-web\nspec:\n  replicas: 5\n",
    );
    let mut findings = set.check_document(&d, &ctx("apps/web.yaml"));
    findings.sort_by(|a, b| a.message.cmp(&b.message));
    assert_eq!(
        findings.len(),
        2,
        "package `other` is not selected: {findings:?}"
    );
    let (temp, deny) = (&findings[0], &findings[1]);
    assert_eq!(
        (temp.rule, temp.severity),
        (Rule::PolicyWarn, Severity::Warning)
    );
    assert_eq!(
        (deny.rule, deny.severity),
        (Rule::PolicyDeny, Severity::Error)
    );
    assert_eq!(deny.metadata["rule"], "deny_replicas");
    assert_eq!(deny.metadata["package"], "main");
    assert_eq!(deny.metadata["policy"], "policies/v0.rego");
    assert_eq!(deny.metadata["severity"], "high");
    assert_eq!(deny.location.as_ref().unwrap().file, "apps/web.yaml");
    assert_eq!(deny.location.as_ref().unwrap().line, Some(1));
    assert_eq!(
        deny.object.as_ref().unwrap().to_string(),
        "apps/v1/Deployment//tmp-web"
    );
}

const CONTEXT_POLICY: &str = r#"package main
import rego.v1

file := data.stategate.file

deny contains msg if {
	file.environment == "prod"
	file.action == "modified"
	file.before.spec.replicas > input.spec.replicas
	msg := sprintf("%s: prod replicas may not shrink (%v -> %v)", [file.path, file.before.spec.replicas, input.spec.replicas])
}
"#;

#[test]
fn document_policies_see_the_file_context() {
    let set = load(&[("policies/context.rego", CONTEXT_POLICY)]).unwrap();
    let d = doc(
        "clusters/prod/web.yaml",
        "kind: Deployment\nspec:\n  replicas: 2\n",
    );
    let context = |env: &str| FileContext {
        path: "clusters/prod/web.yaml".into(),
        environment: Some(env.into()),
        action: Action::Modified,
        before: Some(json!({"kind": "Deployment", "spec": {"replicas": 3}})),
    };
    // Alternate contexts on the same engines: no result may leak from one document to the next.
    for _ in 0..3 {
        let prod = set.check_document(&d, &context("prod"));
        assert_eq!(prod.len(), 1, "{prod:?}");
        assert_eq!(
            prod[0].message,
            "clusters/prod/web.yaml: prod replicas may not shrink (3 -> 2)"
        );
        assert!(set.check_document(&d, &context("staging")).is_empty());
    }
}

#[test]
fn change_policies_judge_the_whole_change() {
    let set = load(&[(
        "policies/change.rego",
        r#"package stategate.change
import rego.v1

touches(prefix) if startswith(input.files[_].path, prefix)

deny contains "a change may not touch clusters/prod and clusters/staging together" if {
	touches("clusters/prod/")
	touches("clusters/staging/")
}
"#,
    )])
    .unwrap();
    let file = |path: &str| ChangedFile {
        path: path.into(),
        action: Action::Modified,
        environment: None,
        before: vec![],
        after: vec![json!({"kind": "ConfigMap"})],
    };
    let both = ChangeInput {
        git_ref: Some("refs/heads/main".into()),
        files: vec![
            file("clusters/prod/a.yaml"),
            file("clusters/staging/a.yaml"),
        ],
        ..ChangeInput::default()
    };
    let findings = set.check_change(&both);
    assert_eq!(findings.len(), 1, "{findings:?}");
    assert_eq!(findings[0].rule, Rule::PolicyDeny);
    assert_eq!(findings[0].metadata["package"], "stategate.change");
    let prod_only = ChangeInput {
        files: vec![file("clusters/prod/a.yaml")],
        ..ChangeInput::default()
    };
    assert!(set.check_change(&prod_only).is_empty());
    // Change rules never judge single documents.
    assert!(
        set.check_document(&doc("a.yaml", POD), &ctx("a.yaml"))
            .is_empty()
    );
}

#[test]
fn exceptions_excuse_the_named_rule_only() {
    let set = load(&[(
        "policies/p.rego",
        r#"package main
import rego.v1
deny_root contains "root" if input.root
deny_host contains "host" if input.host
exception contains ["root"] if input.metadata.name == "excused"
"#,
    )])
    .unwrap();
    let excused = doc(
        "a.yaml",
        "metadata:\n  name: excused\nroot: true\nhost: true\n",
    );
    let other = doc(
        "b.yaml",
        "metadata:\n  name: other\nroot: true\nhost: true\n",
    );
    let msgs = |d: &Document| {
        let mut m: Vec<String> = set
            .check_document(d, &ctx(d.path()))
            .into_iter()
            .map(|f| f.message)
            .collect();
        m.sort();
        m
    };
    assert_eq!(msgs(&excused), vec!["host"]);
    assert_eq!(msgs(&other), vec!["host", "root"]);
}

#[test]
fn cel_only_gatekeeper_templates_are_reported_unsupported() {
    let template = r#"apiVersion: templates.gatekeeper.sh/v1
kind: ConstraintTemplate
metadata:
  name: k8scelonly
spec:
  crd:
    spec:
      names:
        kind: K8sCelOnly
  targets:
    - target: admission.k8s.gatekeeper.sh
      code:
        - engine: K8sNativeValidation
          source:
            validations:
              - expression: "has(object.metadata.labels)"
"#;
    let constraint = "apiVersion: constraints.gatekeeper.sh/v1beta1\nkind: K8sCelOnly\nmetadata:\n  name: labels\n";
    let config = PoliciesConfig {
        gatekeeper: vec!["gatekeeper/".into()],
        ..config()
    };
    let t = tree(&[
        ("gatekeeper/template.yaml", template),
        ("gatekeeper/constraint.yaml", constraint),
    ]);
    let set = PolicySet::load(&config, &t).unwrap();
    assert_eq!(set.notes().len(), 1, "{:?}", set.notes());
    let note = &set.notes()[0];
    assert_eq!(
        (note.rule, note.severity),
        (Rule::PolicyUnsupported, Severity::Error)
    );
    assert!(
        note.message.contains("K8sCelOnly") && note.message.contains("CEL"),
        "{}",
        note.message
    );
    assert_eq!(
        note.location.as_ref().unwrap().file,
        "gatekeeper/template.yaml"
    );
}

#[test]
fn parallel_checks_agree_with_sequential_ones() {
    let set = load(&[
        ("policies/context.rego", CONTEXT_POLICY),
        (
            "policies/size.rego",
            "package main\nimport rego.v1\ndeny contains sprintf(\"n=%v\", [input.num]) if input.num % 3 == 0\n",
        ),
    ])
    .unwrap();
    let docs: Vec<Document> = (0..200)
        .map(|n| doc(&format!("d{n}.yaml"), &format!("num: {n}\n")))
        .collect();
    let run = |d: &Document| -> Vec<String> {
        set.check_document(d, &ctx(d.path()))
            .into_iter()
            .map(|f| f.message)
            .collect()
    };
    let sequential: Vec<_> = docs.iter().map(run).collect();
    let parallel: Vec<_> = docs.par_iter().map(run).collect();
    assert_eq!(sequential, parallel);
    assert_eq!(sequential.iter().filter(|m| !m.is_empty()).count(), 67);
    assert_eq!(sequential[3], vec!["n=3"]);
}

#[test]
fn a_field_hint_in_the_result_locates_the_finding() {
    let set = load(&[(
        "policies/hint.rego",
        "package main\nimport rego.v1\ndeny contains {\"msg\": \"image\", \"field\": \"spec.containers[1].image\"} if true\nwarn contains {\"msg\": \"name\", \"path\": \"/metadata/name\"} if true\n",
    )])
    .unwrap();
    let d = doc(
        "pod.yaml",
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: a:1\n  - name: b\n    image: b:1\n",
    );
    let mut findings = set.check_document(&d, &ctx("pod.yaml"));
    findings.sort_by(|a, b| a.message.cmp(&b.message));
    let lines: Vec<Option<u32>> = findings
        .iter()
        .map(|f| f.location.as_ref().unwrap().line)
        .collect();
    assert_eq!(lines, vec![Some(10), Some(4)], "{findings:?}");
    assert_eq!(findings[0].metadata["field"], "spec.containers[1].image");
}
