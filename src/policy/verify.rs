//! `stategate verify`: run every `test_*` rule of a policy directory, like `opa test`.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::finding::Finding;
use crate::tree::Tree;

use super::{eval, source};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Pass,
    /// The rule was false or undefined.
    Fail,
    /// The rule failed to evaluate.
    Error(String),
}

#[derive(Debug, Clone)]
pub struct TestResult {
    /// `data.<package>.<rule>`.
    pub name: String,
    /// The policy file that defines the test.
    pub file: String,
    pub outcome: Outcome,
    pub duration: Duration,
}

/// Load every `.rego` file (tests included) and data file under `roots` of `tree`, then run each
/// `test_*` rule with an empty `input`; tests mock what they need with `with input as …`.
/// Policies that do not compile are returned as findings instead.
pub fn run_tests(
    tree: &dyn Tree,
    roots: &[String],
    timeout_ms: u64,
) -> Result<Vec<TestResult>, Vec<Finding>> {
    run_tests_with(tree, roots, timeout_ms, false).map(|(results, _)| results)
}

/// The lines of one policy file the tests evaluated, and those they did not.
#[derive(Debug, Clone, Default)]
pub struct FileCoverage {
    pub covered: BTreeSet<u32>,
    pub not_covered: BTreeSet<u32>,
}

/// Policy file → the lines the tests reached.
pub type Coverage = BTreeMap<String, FileCoverage>;

/// [`run_tests`], and with `coverage` the lines of each policy (not test) file the tests reached,
/// merged over every test (each runs on its own engine).
pub fn run_tests_with(
    tree: &dyn Tree,
    roots: &[String],
    timeout_ms: u64,
    coverage: bool,
) -> Result<(Vec<TestResult>, Coverage), Vec<Finding>> {
    let mut engine = regorus::Engine::new();
    engine.set_execution_timer_config(eval::timer(timeout_ms));
    engine.set_strict_builtin_errors(false);
    let mut findings = Vec::new();
    let memory = super::budget::bytes(crate::config::PoliciesConfig::default().memory_mb);
    if let Err(e) = super::budget::guard(&mut engine, memory) {
        findings.push(source::compile_finding("policies", None, &e.to_string()));
    }
    for path in super::matching_files(tree, roots, |p| p.ends_with(".rego"), &mut findings) {
        let Some(text) = super::read_text(tree, &path, &mut findings) else {
            continue;
        };
        findings.extend(source::check_builtins(&path, &text));
        if let Err(finding) = source::add_policy(&mut engine, &path, &text) {
            findings.push(*finding);
        }
    }
    for (path, value) in super::load_data(tree, roots, &mut findings) {
        if let Err(err) = engine.add_data(value) {
            findings.push(source::compile_finding(&path, None, &err.to_string()));
        }
    }
    findings.extend(source::check_recursion(&mut engine));
    if !findings.is_empty() {
        return Err(findings);
    }
    let mut seen = std::collections::BTreeSet::new();
    let tests: Vec<_> = source::rule_decls(&mut engine)
        .into_iter()
        .filter(|d| d.name.starts_with("test_") && !d.is_function)
        .filter(|d| seen.insert((d.package.clone(), d.name.clone())))
        .collect();
    engine.set_input(regorus::Value::new_object());
    // Analyse once; each test then runs on its own clone, because regorus keeps rule values
    // evaluated under `with` between evaluations of one engine and one test would see another's.
    let _ = engine.eval_query("true".to_string(), false);
    let mut results = Vec::new();
    let mut lines: BTreeMap<String, FileCoverage> = BTreeMap::new();
    for test in tests {
        let name = format!("data.{}.{}", test.package, test.name);
        let mut engine = engine.clone();
        engine.set_enable_coverage(coverage);
        let started = Instant::now();
        let bounded = super::budget::arm(memory);
        let evaluated = engine.eval_rule(name.clone());
        drop(bounded);
        if coverage && let Ok(report) = engine.get_coverage_report() {
            merge(&mut lines, report);
        }
        let outcome = match evaluated {
            Ok(regorus::Value::Bool(true)) => Outcome::Pass,
            Ok(_) => Outcome::Fail,
            Err(err) => Outcome::Error(err.to_string().trim().to_string()),
        };
        results.push(TestResult {
            name,
            file: test.file,
            outcome,
            duration: started.elapsed(),
        });
    }
    for file in lines.values_mut() {
        let reached = file.covered.clone();
        file.not_covered.retain(|line| !reached.contains(line));
    }
    Ok((results, lines))
}

fn merge(lines: &mut BTreeMap<String, FileCoverage>, report: regorus::coverage::Report) {
    for file in report.files {
        if file.path.ends_with("_test.rego") {
            continue;
        }
        let entry = lines.entry(file.path).or_default();
        entry.covered.extend(file.covered);
        entry.not_covered.extend(file.not_covered);
    }
}
