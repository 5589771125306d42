//! The github format: GitHub Actions workflow commands, which the runner turns into annotations on
//! the pull request's diff, then a plain summary for the log.
//!
//! Escaping follows the Actions toolkit (`@actions/core`, `command.ts`) exactly: the runner undoes
//! it, so a message with `%`, `:`, `,` or line breaks arrives intact and cannot end a command early
//! or inject another one.

use std::io;

use super::{Report, detail_lines, summary_line};
use crate::finding::{Finding, Severity};

pub(super) fn render(report: &Report, out: &mut dyn io::Write) -> io::Result<()> {
    // Suppressed findings are in the summary's count; an annotation would read as a failure.
    for finding in report.findings.iter().filter(|f| f.suppressed.is_none()) {
        writeln!(out, "{}", command(finding, report))?;
    }
    writeln!(out, "{}", summary_line(report))?;
    for note in &report.notes {
        // A note is plain log text; escaping keeps one that starts with `::` from being a command.
        writeln!(out, "note: {}", escape_data(&super::escape::one_line(note)))?;
    }
    Ok(())
}

/// `::error file=…,line=…,col=…,title=…::message` for one finding.
/// Whether an annotation may point at `file`: GitHub drops (or misplaces) annotations on paths
/// that are not files of the checkout, such as `<stdin>` or a rendered overlay's
/// `clusters/prod (rendered by kustomize: …)`. A file the run read, or one on disk.
fn is_real_file(file: &str, finding: &Finding, report: &Report) -> bool {
    let named = file.starts_with('<') || file.contains(" (rendered");
    !named
        && (report.stats.checked.iter().any(|c| c == file)
            // A skipped file was not read, but it is a file of the change.
            || finding.rule == crate::finding::Rule::LoadSkipped
            || report.sources.contains_key(file)
            || std::path::Path::new(file).is_file())
}

fn command(finding: &Finding, report: &Report) -> String {
    let name = match finding.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
        Severity::Note => "notice",
    };
    let mut properties: Vec<(&str, String)> = Vec::new();
    let elsewhere = finding
        .location
        .as_ref()
        .filter(|l| !l.file.is_empty() && !is_real_file(&l.file, finding, report));
    // The runner ignores line and col without a file, so they go out only together.
    if let Some(location) = finding
        .location
        .as_ref()
        .filter(|l| !l.file.is_empty() && is_real_file(&l.file, finding, report))
    {
        properties.push(("file", super::escape::one_line(&location.file).into_owned()));
        if let Some(line) = location.line {
            properties.push(("line", line.to_string()));
            if let Some(column) = location.column {
                properties.push(("col", column.to_string()));
            }
        }
    }
    properties.push(("title", format!("stategate {}", finding.rule)));
    let properties: Vec<String> = properties
        .iter()
        .map(|(key, value)| format!("{key}={}", escape_property(value)))
        .collect();
    let at = elsewhere
        .map(|l| format!("{}: ", super::escape::one_line(&l.to_string())))
        .unwrap_or_default();
    format!(
        "::{name} {}::{}",
        properties.join(","),
        escape_data(&format!("{at}{}", message(finding)))
    )
}

/// The annotation body: the message, then the object, ref and help on their own lines.
fn message(finding: &Finding) -> String {
    // Line breaks survive (escaped below, the runner restores them); control characters do not.
    std::iter::once(super::escape::safe_lines(&finding.message).join("\n"))
        .chain(detail_lines(finding))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Escape a command's message, as `escapeData` in the Actions toolkit: `%`, CR and LF.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escape a command property value, as `escapeProperty` in the Actions toolkit: what
/// [`escape_data`] escapes, plus `:` and `,`, which delimit properties.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}
