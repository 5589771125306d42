//! The sarif format: SARIF 2.1.0, one run, for GitHub code scanning and other SARIF viewers.

use std::io;

use serde_json::{Map, Value, json};

use super::Report;
use crate::finding::{Finding, Location, Rule, Severity};

const SCHEMA: &str = "https://json.schemastore.org/sarif-2.1.0.json";

/// One SARIF rule: a schema or gate code, or one Rego rule (each its own rule in code scanning,
/// so alerts of different policies are not merged under `policy/deny`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Descriptor {
    id: String,
    description: String,
    help: String,
}

/// The SARIF rule id of a finding: a policy result's metadata `id`, else
/// `policy/<package>.<rule>` for Rego results, else the finding's code.
fn rule_id(finding: &Finding) -> String {
    let text = |key: &str| finding.metadata.get(key).and_then(Value::as_str);
    if matches!(finding.rule, Rule::PolicyDeny | Rule::PolicyWarn) {
        if let Some(id) = text("id").filter(|id| !id.is_empty()) {
            return id.to_owned();
        }
        if let (Some(package), Some(rule)) = (text("package"), text("rule")) {
            return format!("policy/{package}.{rule}");
        }
    }
    finding.rule.code().to_owned()
}

fn descriptor(finding: &Finding) -> Descriptor {
    let id = rule_id(finding);
    let text = |key: &str| finding.metadata.get(key).and_then(Value::as_str);
    let (description, help) = match (text("package"), text("rule"), text("policy")) {
        (Some(package), Some(rule), policy) if id != finding.rule.code() => {
            let file = policy.map(|p| format!(" in {p}")).unwrap_or_default();
            (
                format!("Rego rule data.{package}.{rule}{file}"),
                format!(
                    "{}; the rule data.{package}.{rule}{file} produced it. Fix the object, or \
                     add a conftest exception for the rule in package {package}.",
                    finding.rule.description()
                ),
            )
        }
        _ => (
            finding.rule.description().to_owned(),
            format!(
                "{} (rule code {}; the README's rule-code table explains every code)",
                finding.rule.description(),
                finding.rule.code()
            ),
        ),
    };
    Descriptor {
        id,
        description,
        help,
    }
}

pub(super) fn render(report: &Report, out: &mut dyn io::Write) -> io::Result<()> {
    let mut rules: Vec<Descriptor> = Vec::new();
    for finding in &report.findings {
        let d = descriptor(finding);
        if !rules.iter().any(|r| r.id == d.id) {
            rules.push(d);
        }
    }
    rules.sort();
    let results: Vec<Value> = report
        .findings
        .iter()
        .map(|finding| result(finding, &rules))
        .collect();
    let document = json!({
        "$schema": SCHEMA,
        "version": "2.1.0",
        "runs": [{
            "tool": { "driver": driver(&rules) },
            "results": results,
        }],
    });
    super::escape::write_json(out, &document)
}

fn driver(rules: &[Descriptor]) -> Value {
    let mut driver = Map::new();
    driver.insert("name".into(), "stategate".into());
    driver.insert("version".into(), env!("CARGO_PKG_VERSION").into());
    if let Some(uri) = information_uri() {
        driver.insert("informationUri".into(), uri.into());
    }
    let rules: Vec<Value> = rules
        .iter()
        .map(|rule| {
            let mut descriptor = json!({
                "id": rule.id,
                "shortDescription": { "text": rule.description },
                "help": { "text": rule.help },
            });
            if let Some(uri) = information_uri() {
                descriptor["helpUri"] = format!("{uri}#rule-codes").into();
            }
            descriptor
        })
        .collect();
    driver.insert("rules".into(), rules.into());
    Value::Object(driver)
}

/// The project's home, from Cargo.toml (`homepage`, else `repository`); SARIF makes it optional,
/// so nothing is invented when neither is set.
fn information_uri() -> Option<&'static str> {
    [env!("CARGO_PKG_HOMEPAGE"), env!("CARGO_PKG_REPOSITORY")]
        .into_iter()
        .find(|uri| !uri.is_empty())
}

fn result(finding: &Finding, rules: &[Descriptor]) -> Value {
    let mut result = Map::new();
    let id = rule_id(finding);
    if let Some(index) = rules.iter().position(|r| r.id == id) {
        result.insert("ruleIndex".into(), index.into());
    }
    result.insert("ruleId".into(), id.into());
    result.insert("level".into(), level(finding.severity).into());
    result.insert("message".into(), json!({ "text": finding.message }));
    if let Some(suppressed) = &finding.suppressed {
        result.insert(
            "suppressions".into(),
            json!([{ "kind": "inSource", "justification": suppressed.reason }]),
        );
    }
    if finding.pre_existing {
        // SARIF's own word for a result the base already had.
        result.insert("baselineState".into(), "unchanged".into());
    }
    if let Some(location) = finding.location.as_ref().filter(|l| !l.file.is_empty()) {
        result.insert("locations".into(), json!([physical_location(location)]));
    }
    let properties = properties(finding);
    if !properties.is_empty() {
        result.insert("properties".into(), Value::Object(properties));
    }
    Value::Object(result)
}

fn level(severity: Severity) -> &'static str {
    match severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "note",
    }
}

fn physical_location(location: &Location) -> Value {
    let mut physical = Map::new();
    physical.insert(
        "artifactLocation".into(),
        json!({ "uri": uri_reference(&location.file) }),
    );
    // SARIF regions are 1-based and a region without startLine would mean "the whole file"
    // anyway, so the region is left out when the line is unknown.
    if let Some(line) = location.line.filter(|&line| line > 0) {
        let mut region = Map::new();
        region.insert("startLine".into(), line.into());
        if let Some(column) = location.column.filter(|&column| column > 0) {
            region.insert("startColumn".into(), column.into());
        }
        physical.insert("region".into(), Value::Object(region));
    }
    json!({ "physicalLocation": physical })
}

/// Things SARIF has no field for: the object, the help text, the ref and policy metadata.
fn properties(finding: &Finding) -> Map<String, Value> {
    let mut properties = Map::new();
    if let Some(object) = &finding.object {
        properties.insert("object".into(), object.to_string().into());
    }
    if let Some(help) = &finding.help {
        properties.insert("help".into(), help.clone().into());
    }
    if let Some(git_ref) = &finding.git_ref {
        properties.insert("ref".into(), git_ref.clone().into());
    }
    if !finding.metadata.is_empty() {
        properties.insert("metadata".into(), Value::Object(finding.metadata.clone()));
    }
    properties
}

/// A repository path as a relative URI reference: bytes outside the unreserved set and `/` are
/// percent-encoded, so paths with spaces or `#` stay one path.
fn uri_reference(path: &str) -> String {
    let mut uri = String::with_capacity(path.len());
    for byte in path.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~/".contains(&byte) {
            uri.push(byte as char);
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_reference_encodes_spaces_hashes_and_non_ascii() {
        assert_eq!(
            uri_reference("apps/a b#1/ü.yaml"),
            "apps/a%20b%231/%C3%BC.yaml"
        );
        assert_eq!(
            uri_reference("clusters/prod-1/web_v2.yaml"),
            "clusters/prod-1/web_v2.yaml"
        );
    }
}
