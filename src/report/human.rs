//! The human format: miette-style diagnostics with the offending YAML lines, then a summary.

use std::fmt;
use std::io;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode,
};

use super::mask::{is_json_secret, mask_secret_lines};
use super::{RenderOptions, Report, detail_lines, one_line, summary_line};
use crate::finding::{Finding, Severity};
use crate::load::SourceFile;

pub(super) fn render(
    report: &Report,
    out: &mut dyn io::Write,
    options: &RenderOptions,
) -> io::Result<()> {
    let handler = handler(options);
    for finding in &report.findings {
        match snippet_diagnostic(report, finding) {
            Some(diagnostic) => {
                let mut text = String::new();
                handler
                    .render_report(&mut text, &diagnostic)
                    .map_err(|_| io::Error::other("formatting a diagnostic failed"))?;
                out.write_all(text.as_bytes())?;
            }
            None => write_plain(finding, out)?,
        }
        writeln!(out)?;
    }
    writeln!(out, "{}", summary_line(report))?;
    for note in &report.notes {
        writeln!(out, "note: {note}")?;
    }
    Ok(())
}

fn handler(options: &RenderOptions) -> GraphicalReportHandler {
    let theme = if options.color {
        GraphicalTheme::unicode()
    } else {
        GraphicalTheme::unicode_nocolor()
    };
    GraphicalReportHandler::new_themed(theme)
        .with_links(false)
        .with_urls(false)
        .with_width(options.width)
}

/// A finding the source is not at hand for: `file:line:col: severity[rule]: message`, with the
/// message's own line breaks and the details indented below it.
fn write_plain(finding: &Finding, out: &mut dyn io::Write) -> io::Result<()> {
    writeln!(out, "{}", one_line(finding).replace('\n', "\n  "))?;
    for line in detail_lines(finding) {
        writeln!(out, "  {}", line.replace('\n', "\n  "))?;
    }
    Ok(())
}

/// One finding as a miette diagnostic pointing into its (masked) source.
#[derive(Debug)]
struct FindingDiagnostic {
    headline: String,
    severity: miette::Severity,
    help: Option<String>,
    source: NamedSource<String>,
    label: LabeledSpan,
}

impl fmt::Display for FindingDiagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.headline)
    }
}

impl std::error::Error for FindingDiagnostic {}

impl Diagnostic for FindingDiagnostic {
    fn severity(&self) -> Option<miette::Severity> {
        Some(self.severity)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn fmt::Display + 'a>> {
        self.help
            .as_ref()
            .map(|help| Box::new(help) as Box<dyn fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn SourceCode> {
        Some(&self.source)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = LabeledSpan> + '_>> {
        Some(Box::new(std::iter::once(self.label.clone())))
    }
}

/// The diagnostic of a finding whose file is among the report's sources and whose byte offset is
/// known; `None` sends it to the one-line form.
fn snippet_diagnostic(report: &Report, finding: &Finding) -> Option<FindingDiagnostic> {
    let location = finding.location.as_ref()?;
    let offset = location.offset?;
    let source = report.sources.get(&location.file)?;
    let (text, span) = shown_source(source, offset, location.len)?;
    Some(FindingDiagnostic {
        headline: format!(
            "{}[{}]: {}",
            finding.severity, finding.rule, finding.message
        ),
        severity: match finding.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Note => miette::Severity::Advice,
        },
        help: finding.help.clone(),
        source: NamedSource::new(&location.file, text),
        label: LabeledSpan::new_primary_with_span(Some(label_text(finding)), span),
    })
}

/// What the caret says: the object the finding is about, else what the rule means.
fn label_text(finding: &Finding) -> String {
    match &finding.object {
        Some(object) => format!("in {object}"),
        None => finding.rule.description().to_string(),
    }
}

/// The text a snippet may show and the span within it: Secret values masked, the span moved onto
/// the masked line. `None` when nothing can be shown safely (a JSON Secret) or the offset is out of
/// range.
fn shown_source(
    source: &SourceFile,
    offset: usize,
    len: usize,
) -> Option<(String, (usize, usize))> {
    let text = &source.text;
    if offset > text.len() || is_json_secret(text) {
        return None;
    }
    let masked = mask_secret_lines(text);
    if masked == *text {
        let len = len.min(text.len() - offset);
        return Some((masked, (offset, len)));
    }
    let span = remap_span(text, &masked, offset, len);
    Some((masked, span))
}

/// Masking keeps lines, not bytes: find the span's line in the masked text and keep the column
/// where the line is unchanged; on a masked line, underline whatever the line now holds from there.
fn remap_span(original: &str, masked: &str, offset: usize, len: usize) -> (usize, usize) {
    let line_index = original[..offset].matches('\n').count();
    let original_start = original[..offset].rfind('\n').map_or(0, |i| i + 1);
    let original_line = original[original_start..].lines().next().unwrap_or("");
    let masked_start: usize = masked
        .split_inclusive('\n')
        .take(line_index)
        .map(str::len)
        .sum();
    let masked_line = masked[masked_start..].lines().next().unwrap_or("");
    let column = offset - original_start;
    if masked_line == original_line {
        let start = masked_start + column;
        return (start, len.min(masked.len() - start));
    }
    let column = floor_char_boundary(masked_line, column.min(masked_line.len()));
    (masked_start + column, masked_line.len() - column)
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_span_on_a_masked_line_stays_on_that_line() {
        let original = "kind: Secret\ndata:\n  password: c2VjcmV0\n";
        let masked = mask_secret_lines(original);
        let offset = original.find("c2VjcmV0").unwrap();
        let (start, len) = remap_span(original, &masked, offset, 8);
        assert_eq!(&masked[start..start + len], "***");
    }

    #[test]
    fn a_span_on_an_unchanged_line_keeps_its_column() {
        let original = "kind: Secret\ndata:\n  password: c2VjcmV0\ntype: 7\n";
        let masked = mask_secret_lines(original);
        let offset = original.find('7').unwrap();
        let (start, len) = remap_span(original, &masked, offset, 1);
        assert_eq!(&masked[start..start + len], "7");
    }
}
