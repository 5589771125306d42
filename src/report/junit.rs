//! The junit format: JUnit XML as CI systems (GitLab, Jenkins, Azure) display test reports.
//!
//! It follows the Ant JUnit XML schema (the tests validate it with `xmllint --schema`). One test
//! case per checked file, so a clean file shows as a passing test. A file's blocking findings
//! become its `<failure>`, or its `<error>` when the gate could not judge the file (a syntax
//! error, say): JUnit's own distinction between "failed" and "could not run". Warnings and notes
//! go to the suite's `<system-out>`. Findings without a file (a protected ref, a missing
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
    // The attributes the Ant JUnit schema requires, which GitLab, Jenkins and Azure all read.
    let mut xml = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites>\n");
    let _ = writeln!(
        xml,
        "  <testsuite name=\"stategate\" package=\"stategate\" id=\"0\" timestamp=\"{}\" \
         hostname=\"{}\" tests=\"{tests}\" failures=\"{failures}\" errors=\"{errors}\" \
         skipped=\"0\" time=\"0\">",
        timestamp(),
        escape(&hostname()),
    );
    xml.push_str("    <properties/>\n");
    let mut output = Vec::new();
    for (name, case) in &cases {
        write_case(&mut xml, name, case, &mut output);
    }
    let _ = writeln!(
        xml,
        "    <system-out>{}</system-out>\n    <system-err></system-err>",
        escape_text(&output.join("\n"))
    );
    xml.push_str("  </testsuite>\n</testsuites>\n");
    out.write_all(xml.as_bytes())
}

/// The report's time in the schema's form (`2026-11-30T22:17:11`, UTC, no zone).
fn timestamp() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let (days, rest) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days as i64);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// Every checked file (the report's sources) and every file, ref or change a finding names.
fn cases(report: &Report) -> BTreeMap<&str, Case<'_>> {
    let mut cases: BTreeMap<&str, Case<'_>> = report
        .sources
        .keys()
        .map(String::as_str)
        .chain(report.stats.checked.iter())
        .map(|file| (file, Case::default()))
        .collect();
    for finding in report.findings.iter().filter(|f| f.suppressed.is_none()) {
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

/// One case: at most one `<failure>` or `<error>` (the schema allows one), carrying every
/// blocking finding of the file; warnings and notes go to the suite's `<system-out>`.
fn write_case(xml: &mut String, name: &str, case: &Case<'_>, output: &mut Vec<String>) {
    let (blocking, other): (Vec<&Finding>, Vec<&Finding>) = case
        .findings
        .iter()
        .partition(|finding| finding.severity == Severity::Error);
    output.extend(other.iter().map(|finding| details(finding)));
    let shown = escape(name);
    let Some(first) = blocking.first() else {
        let _ = writeln!(
            xml,
            "    <testcase name=\"{shown}\" classname=\"stategate\" time=\"0\"/>"
        );
        return;
    };
    let element = if case.has(true) { "error" } else { "failure" };
    let lead = blocking
        .iter()
        .find(|f| f.rule.is_undecidable() == case.has(true))
        .unwrap_or(first);
    let message = match blocking.len() {
        1 => lead.message.clone(),
        n => format!("{} (and {} more)", lead.message, n - 1),
    };
    let body: Vec<String> = blocking.iter().map(|finding| details(finding)).collect();
    let _ = writeln!(
        xml,
        "    <testcase name=\"{shown}\" classname=\"stategate\" time=\"0\">\n      \
         <{element} message=\"{}\" type=\"{}\">{}</{element}>\n    </testcase>",
        escape(&message),
        escape(lead.rule.code()),
        escape_text(&body.join("\n\n")),
    );
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
