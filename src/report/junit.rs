//! The junit format: JUnit XML as CI systems (GitLab, Jenkins, Azure) display test reports.
//!
//! One test case per checked file, so a clean file shows as a passing test. Each blocking finding
//! becomes a `<failure>` of its file's case, or an `<error>` when the gate could not judge the file
//! (a syntax error, say): JUnit's own distinction between "failed" and "could not run". Warnings
//! and notes go to the case's `<system-out>`. Findings without a file (a protected ref, a missing
//! approval) form a case named after their ref, or `(change)`.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;

use super::{Report, detail_lines, one_line};
use crate::finding::{Finding, Severity};

/// The case for findings that point at no file and no ref.
const CHANGE_CASE: &str = "(change)";

#[derive(Default)]
struct Case<'a> {
    findings: Vec<&'a Finding>,
}

impl Case<'_> {
    fn has(&self, undecidable: bool) -> bool {
        self.findings
            .iter()
            .any(|f| f.severity == Severity::Error && f.rule.is_undecidable() == undecidable)
    }
}

pub(super) fn render(report: &Report, out: &mut dyn io::Write) -> io::Result<()> {
    let cases = cases(report);
    let tests = cases.len();
    let errors = cases.values().filter(|case| case.has(true)).count();
    let failures = cases
        .values()
        .filter(|case| case.has(false) && !case.has(true))
        .count();
    let counts = format!("tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\"");
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(xml, "<testsuites name=\"stategate\" {counts}>");
    let _ = writeln!(
        xml,
        "  <testsuite name=\"stategate\" {counts} skipped=\"0\">"
    );
    for (name, case) in &cases {
        write_case(&mut xml, name, case);
    }
    xml.push_str("  </testsuite>\n</testsuites>\n");
    out.write_all(xml.as_bytes())
}

/// Every checked file (the report's sources) and every file, ref or change a finding names.
fn cases(report: &Report) -> BTreeMap<&str, Case<'_>> {
    let mut cases: BTreeMap<&str, Case<'_>> = report
        .sources
        .keys()
        .chain(&report.stats.checked)
        .map(|file| (file.as_str(), Case::default()))
        .collect();
    for finding in &report.findings {
        let name = finding
            .location
            .as_ref()
            .map(|location| location.file.as_str())
            .filter(|file| !file.is_empty())
            .or(finding.git_ref.as_deref())
            .unwrap_or(CHANGE_CASE);
        cases.entry(name).or_default().findings.push(finding);
    }
    cases
}

fn write_case(xml: &mut String, name: &str, case: &Case<'_>) {
    let name = escape(name);
    let (blocking, other): (Vec<&Finding>, Vec<&Finding>) = case
        .findings
        .iter()
        .partition(|finding| finding.severity == Severity::Error);
    if blocking.is_empty() && other.is_empty() {
        let _ = writeln!(
            xml,
            "    <testcase name=\"{name}\" classname=\"stategate\"/>"
        );
        return;
    }
    let _ = writeln!(
        xml,
        "    <testcase name=\"{name}\" classname=\"stategate\">"
    );
    for finding in blocking {
        let element = if finding.rule.is_undecidable() {
            "error"
        } else {
            "failure"
        };
        let _ = writeln!(
            xml,
            "      <{element} message=\"{}\" type=\"{}\">{}</{element}>",
            escape(&finding.message),
            escape(finding.rule.code()),
            escape_text(&details(finding)),
        );
    }
    if !other.is_empty() {
        let text: Vec<String> = other.iter().map(|finding| details(finding)).collect();
        let _ = writeln!(
            xml,
            "      <system-out>{}</system-out>",
            escape_text(&text.join("\n"))
        );
    }
    xml.push_str("    </testcase>\n");
}

/// The body of a failure: where, what, on which object, and what to do.
fn details(finding: &Finding) -> String {
    std::iter::once(one_line(finding))
        .chain(detail_lines(finding))
        .collect::<Vec<_>>()
        .join("\n")
}

/// XML-escape an attribute value. Line breaks become character references so the value keeps
/// them (parsers normalise literal ones to spaces).
fn escape(text: &str) -> String {
    escape_xml(text, true)
}

/// XML-escape element text, where line breaks may stay literal.
fn escape_text(text: &str) -> String {
    escape_xml(text, false)
}

/// Characters XML 1.0 cannot carry at all become U+FFFD. A `:` that would start a line (leading
/// blanks aside) and the `#` of `##[` become character references: a CI log that shows the XML
/// must not read a policy message's second line as a workflow command.
fn escape_xml(text: &str, attribute: bool) -> String {
    let mut escaped = String::with_capacity(text.len());
    let mut line_start = true;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let at_start = line_start;
        line_start = c == '\n' && !attribute || (at_start && (c == ' ' || c == '\t'));
        match c {
            '&' => escaped.push_str("&amp;"),
            '<' => escaped.push_str("&lt;"),
            '>' => escaped.push_str("&gt;"),
            '"' => escaped.push_str("&quot;"),
            '\'' => escaped.push_str("&apos;"),
            ':' if at_start => escaped.push_str("&#58;"),
            '#' if escaped.ends_with('#') && chars.peek() == Some(&'[') => {
                escaped.push_str("&#35;")
            }
            '\n' | '\t' if !attribute => escaped.push(c),
            '\n' => escaped.push_str("&#10;"),
            '\r' => escaped.push_str("&#13;"),
            '\t' => escaped.push_str("&#9;"),
            c if is_xml_char(c) => escaped.push(c),
            _ => escaped.push('\u{FFFD}'),
        }
    }
    escaped
}

fn is_xml_char(c: char) -> bool {
    matches!(c, '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_handles_markup_quotes_newlines_and_control_characters() {
        assert_eq!(
            escape("a<b & \"c\"\n'd'\u{1}"),
            "a&lt;b &amp; &quot;c&quot;&#10;&apos;d&apos;\u{FFFD}"
        );
        assert_eq!(escape_text("a\n\tb\r"), "a\n\tb&#13;");
    }
}
