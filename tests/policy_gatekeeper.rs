//! Gatekeeper compatibility: every case of gatekeeper-library's suites (flattened in the corpus as
//! `gatekeeper-samples/expected-violations.json`) gives the violations `gator verify` expects.

mod common;

use std::path::Path;

use serde_json::Value;
use stategate::change::Action;
use stategate::config::PoliciesConfig;
use stategate::finding::{Finding, Rule};
use stategate::load::{Document, LoadOptions, load_file};
use stategate::policy::{FileContext, PolicySet};
use stategate::tree::DirTree;

/// Cases stategate cannot judge, with the reason. Asserted exactly, so the list cannot rot.
const UNSUPPORTED: &[(&str, &str)] = &[];

fn load_docs(root: &Path, path: &str) -> Vec<Document> {
    let bytes = std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
    let loaded = load_file(path, &bytes, &LoadOptions::default());
    assert!(
        loaded.documents.iter().all(|d| !d.value.is_null()),
        "{path} did not load: {:?}",
        loaded.findings
    );
    loaded.documents
}

fn context(doc: &Document) -> FileContext {
    FileContext {
        path: doc.path().to_string(),
        environment: None,
        action: Action::Added,
        before: None,
    }
}

/// Run one case; `Err` when stategate reports the template or constraint unsupported.
fn violations(root: &Path, case: &Value) -> Result<Vec<Finding>, Vec<Finding>> {
    let text = |k: &str| case[k].as_str().unwrap_or_default().to_string();
    let config = PoliciesConfig {
        paths: Vec::new(),
        data: Vec::new(),
        gatekeeper: vec![text("template"), text("constraint")],
        ..PoliciesConfig::default()
    };
    let tree = DirTree::new(root, "gatekeeper-samples");
    let mut set = PolicySet::load(&config, &tree).map_err(|f| f.to_vec())?;
    if !set.notes().is_empty() {
        return Err(set.notes().to_vec());
    }
    let inventory: Vec<Document> = case["inventory"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .flat_map(|p| load_docs(root, p))
        .collect();
    set.set_inventory(&inventory);
    let object = load_docs(root, &text("object"));
    let findings: Vec<Finding> = object
        .iter()
        .flat_map(|doc| set.check_document(doc, &context(doc)))
        .collect();
    for f in &findings {
        assert_eq!(f.rule, Rule::PolicyDeny, "unexpected finding {f:?}");
    }
    Ok(findings)
}

fn check_assertion(found: &[Finding], assertion: &Value) -> Result<(), String> {
    let matching: Vec<&Finding> = match assertion["message"].as_str() {
        Some(pattern) => {
            let re = regex::Regex::new(pattern).map_err(|e| e.to_string())?;
            found.iter().filter(|f| re.is_match(&f.message)).collect()
        }
        None => found.iter().collect(),
    };
    let n = matching.len();
    let ok = match &assertion["violations"] {
        Value::String(s) if s.trim() == "yes" => n >= 1,
        Value::String(s) if s.trim() == "no" => n == 0,
        Value::Bool(true) => n >= 1,
        Value::Bool(false) => n == 0,
        Value::Number(want) => Some(n as u64) == want.as_u64(),
        other => return Err(format!("unknown assertion {other}")),
    };
    if ok {
        Ok(())
    } else {
        let messages: Vec<&str> = found.iter().map(|f| f.message.as_str()).collect();
        Err(format!(
            "{assertion} but found {n} matching of {messages:?}"
        ))
    }
}

#[test]
fn gatekeeper_library_suites() {
    let Some(corpus) = common::corpus() else {
        return;
    };
    let root = corpus.join("gatekeeper-samples");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(root.join("expected-violations.json")).unwrap())
            .unwrap();
    let cases = expected["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 72);
    let mut failures = Vec::new();
    let mut unsupported = Vec::new();
    let mut assertions = 0;
    let mut skipped_assertions = 0;
    for case in cases {
        let id = format!(
            "{}/{}",
            case["test"].as_str().unwrap(),
            case["case"].as_str().unwrap()
        );
        match violations(&root, case) {
            Ok(found) => {
                for assertion in case["assertions"].as_array().unwrap() {
                    assertions += 1;
                    if let Err(why) = check_assertion(&found, assertion) {
                        failures.push(format!("{id}: {why}"));
                    }
                }
            }
            Err(findings) => {
                skipped_assertions += case["assertions"].as_array().unwrap().len();
                unsupported.push((id, findings[0].message.clone()))
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} failing:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let unsupported_ids: Vec<&str> = unsupported.iter().map(|(id, _)| id.as_str()).collect();
    let expected_ids: Vec<&str> = UNSUPPORTED.iter().map(|(id, _)| *id).collect();
    assert_eq!(
        unsupported_ids, expected_ids,
        "unsupported cases changed: {unsupported:#?}"
    );
    assert_eq!(assertions + skipped_assertions, 83);
}
