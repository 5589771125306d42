//! `rules:` in the config turns a rule, a policy rule or a policy result's `id` off or to another
//! level, everywhere or per path glob. Through the real binary.

mod common;

use std::process::Command;

use common::git::TestRepo;
use serde_json::Value;

const POLICY: &str = "package main

deny contains msg if {
  input.kind == \"ConfigMap\"
  not input.metadata.labels.team
  msg := sprintf(\"ConfigMap %s has no team label\", [input.metadata.name])
}

deny contains {\"msg\": msg, \"id\": \"K8S001\"} if {
  input.kind == \"ConfigMap\"
  input.data.debug == \"true\"
  msg := \"debug is on\"
}
";

fn repo(rules: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write(".stategate.yaml", format!("version: 1\n{rules}"));
    repo.write("policies/cm.rego", POLICY);
    repo.commit_all("config");
    let cm = |name: &str| {
        format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  debug: \"true\"\n"
        )
    };
    repo.write("apps/a.yaml", cm("a"));
    repo.write("legacy/b.yaml", cm("b"));
    repo.write(
        "legacy/w.yaml",
        "apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n",
    );
    repo
}

fn check(repo: &TestRepo) -> (i32, Value) {
    let out = Command::new(env!("CARGO_BIN_EXE_stategate"))
        .current_dir(repo.path())
        .args(["check", "--format", "json"])
        .output()
        .unwrap();
    let json = serde_json::from_slice(&out.stdout).unwrap();
    (out.status.code().unwrap(), json)
}

/// `(rule, severity, file)` sorted.
fn findings(json: &Value) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["rule"].as_str().unwrap().to_owned(),
                f["severity"].as_str().unwrap().to_owned(),
                f["location"]["file"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
            )
        })
        .collect();
    out.sort();
    out
}

fn f(rule: &str, severity: &str, file: &str) -> (String, String, String) {
    (rule.to_owned(), severity.to_owned(), file.to_owned())
}

#[test]
fn without_rules_everything_counts() {
    let (code, json) = check(&repo(""));
    assert_eq!(code, 1);
    assert_eq!(
        findings(&json),
        vec![
            f("policy/deny", "error", "apps/a.yaml"),
            f("policy/deny", "error", "apps/a.yaml"),
            f("policy/deny", "error", "legacy/b.yaml"),
            f("policy/deny", "error", "legacy/b.yaml"),
            f("schema/unknown-kind", "warning", "legacy/w.yaml"),
        ]
    );
}

#[test]
fn a_rule_code_a_result_id_and_a_path_scope() {
    // `off` unquoted is YAML 1.1's `false`: accepted here, where it can only mean the word.
    let rules = "rules:\n  schema/unknown-kind: off\n  K8S001: note\n  main.deny:\n    - level: warning\n      paths: [\"legacy/**\"]\n";
    let (code, json) = check(&repo(rules));
    assert_eq!(code, 1, "{json:#}");
    assert_eq!(
        findings(&json),
        vec![
            f("policy/deny", "error", "apps/a.yaml"),
            f("policy/deny", "note", "apps/a.yaml"),
            f("policy/deny", "note", "legacy/b.yaml"),
            f("policy/deny", "warning", "legacy/b.yaml"),
        ]
    );
    assert_eq!(json["stats"]["disabled"], 1);
}

#[test]
fn rules_that_mean_unreadable_input_cannot_be_turned_down() {
    let (code, json) = check(&repo(
        "rules:\n  load/syntax: warning\n  schema/no-such-rule: off\n",
    ));
    assert_eq!(code, 2, "{json:#}");
    let messages: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages.len(), 2, "{messages:?}");
    assert!(
        messages
            .iter()
            .any(|m| m.contains("unknown rule code `schema/no-such-rule`"))
    );
    assert!(messages.iter().any(|m| m.contains("cannot be turned down")));
}
