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

fn check_format(repo: &TestRepo, format: &str) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_stategate"))
        .current_dir(repo.path())
        .args(["check", "--format", format])
        .env("NO_COLOR", "1")
        .output()
        .unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

const SUPPRESSED_CM: &str = "# stategate:ignore K8S001 -- debug stays on until INC-42 closes
apiVersion: v1
kind: ConfigMap
metadata:
  name: a
  labels: {team: x}
data:
  debug: \"true\"
  replicas: \"2\" # stategate:ignore schema/type -- nothing is wrong here
";

fn suppression_repo(mode: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        ".stategate.yaml",
        format!("version: 1\nreport:\n  inline_suppressions: {mode}\n"),
    );
    repo.write("policies/cm.rego", POLICY);
    repo.commit_all("config");
    repo.write("apps/a.yaml", SUPPRESSED_CM);
    repo
}

#[test]
fn a_change_may_suppress_its_own_finding_and_says_so() {
    let repo = suppression_repo("allow");
    let (code, json) = check(&repo);
    assert_eq!(code, 0, "{json:#}");
    let findings = json["findings"].as_array().unwrap();
    let suppressed: Vec<&Value> = findings
        .iter()
        .filter(|f| f.get("suppressed").is_some())
        .collect();
    assert_eq!(suppressed.len(), 1, "{json:#}");
    assert_eq!(suppressed[0]["metadata"]["id"], "K8S001");
    assert_eq!(
        suppressed[0]["suppressed"],
        serde_json::json!({"reason": "debug stays on until INC-42 closes", "by_change": true})
    );
    assert_eq!(json["stats"]["suppressed"], 1);
    assert_eq!(json["stats"]["suppressed_by_change"], 1);
    // The comment on a line with no finding is reported, like an unused lint allow.
    let unused: Vec<&Value> = findings
        .iter()
        .filter(|f| f["rule"] == "suppress/unused")
        .collect();
    assert_eq!(unused.len(), 1, "{json:#}");
    assert_eq!(unused[0]["severity"], "warning");
    assert_eq!(unused[0]["location"]["line"], 9);

    let (_, human) = check_format(&repo, "human");
    assert!(human.contains("suppressed by this change (1):"), "{human}");
    assert!(
        human.contains("reason: debug stays on until INC-42 closes"),
        "{human}"
    );
    let (_, sarif) = check_format(&repo, "sarif");
    let sarif: Value = serde_json::from_str(&sarif).unwrap();
    let results = sarif["runs"][0]["results"].as_array().unwrap();
    assert!(
        results
            .iter()
            .any(|r| r["suppressions"][0]["justification"] == "debug stays on until INC-42 closes"),
        "{sarif:#}"
    );
}

#[test]
fn base_only_ignores_suppressions_the_change_adds() {
    let repo = suppression_repo("base-only");
    let (code, json) = check(&repo);
    assert_eq!(code, 1, "{json:#}");
    assert!(json["stats"].get("suppressed").is_none(), "{json:#}");

    // Once the comment is at the base, it counts.
    repo.commit_all("suppress with a reason");
    let cm = std::fs::read_to_string(repo.abs("apps/a.yaml")).unwrap();
    repo.write("apps/a.yaml", cm.replace("name: a", "name: a2"));
    let (code, json) = check(&repo);
    assert_eq!(code, 0, "{json:#}");
    assert_eq!(json["stats"]["suppressed"], 1);
    assert!(json["stats"].get("suppressed_by_change").is_none());
}

#[test]
fn a_suppression_needs_a_reason() {
    let repo = TestRepo::new();
    repo.write("policies/cm.rego", POLICY);
    repo.commit_all("policy");
    repo.write(
        "apps/a.yaml",
        SUPPRESSED_CM.replace(" -- debug stays on until INC-42 closes", ""),
    );
    let (code, json) = check(&repo);
    assert_eq!(code, 1, "{json:#}");
    let rules: Vec<&str> = json["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["rule"].as_str().unwrap())
        .collect();
    assert!(rules.contains(&"suppress/invalid"), "{rules:?}");
    assert!(rules.contains(&"policy/deny"), "{rules:?}");
}
