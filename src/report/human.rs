//! The human format: miette-style diagnostics with the offending YAML lines, then a summary.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::sync::Arc;

use miette::{
    Diagnostic, GraphicalReportHandler, GraphicalTheme, LabeledSpan, NamedSource, SourceCode,
};

use super::mask::mask_source;
use super::{Detail, RenderOptions, Report, detail_lines, escape, one_line, summary_line};
use crate::finding::{Finding, Severity};
use crate::load::SourceFile;

pub(super) fn render(
    report: &Report,
    out: &mut dyn io::Write,
    options: &RenderOptions,
) -> io::Result<()> {
    if options.detail == Detail::Summary {
        return render_summary(report, out);
    }
    let handler = handler(options);
    let mut sources = ShownSources::default();
    let mut listed_apart = false;
    let mut hidden_notes = 0;
    for finding in report.findings.iter().filter(|f| f.suppressed.is_none()) {
        if !shown(finding, options.detail) {
            hidden_notes += usize::from(finding.severity == Severity::Note);
            continue;
        }
        if finding.pre_existing && !listed_apart {
            listed_apart = true;
            writeln!(
                out,
                "── pre-existing: {} already at the base, not introduced by this change ──\n",
                report.stats.pre_existing
            )?;
        }
        match snippet_diagnostic(report, &mut sources, finding) {
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
    let by_change: Vec<&Finding> = report
        .findings
        .iter()
        .filter(|f| f.suppressed.as_ref().is_some_and(|s| s.by_change))
        .collect();
    if !by_change.is_empty() && options.detail != Detail::Quiet {
        writeln!(out, "suppressed by this change ({}):", by_change.len())?;
        for finding in by_change {
            let reason = finding
                .suppressed
                .as_ref()
                .map_or("", |s| s.reason.as_str());
            writeln!(
                out,
                "  {} (reason: {})",
                one_line(finding).replace('\n', CONTINUATION),
                escape::one_line(reason)
            )?;
        }
        writeln!(out)?;
    }
    writeln!(out, "{}", summary_line(report))?;
    if options.detail == Detail::Quiet {
        return Ok(());
    }
    if hidden_notes > 0 {
        writeln!(
            out,
            "note: {hidden_notes} note-level finding(s) not shown (-v shows them)"
        )?;
    }
    for note in &report.notes {
        writeln!(out, "note: {}", escape::one_line(note))?;
    }
    Ok(())
}

/// Whether the human format prints this (unsuppressed) finding at this level of detail.
fn shown(finding: &Finding, detail: Detail) -> bool {
    match detail {
        // What blocks: the verdict's own rule (errors; pre-existing ones were already turned
        // into warnings when they do not block).
        Detail::Quiet => finding.severity == Severity::Error,
        Detail::Summary | Detail::Normal => finding.severity != Severity::Note,
        Detail::Verbose => true,
    }
}

/// `--summary`: how many findings each rule and each file has (suppressed ones left out, as in
/// the summary line's counts), then the summary line and the run's notes.
fn render_summary(report: &Report, out: &mut dyn io::Write) -> io::Result<()> {
    let mut by_rule: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    let mut by_file: BTreeMap<String, [usize; 3]> = BTreeMap::new();
    for finding in report.findings.iter().filter(|f| f.suppressed.is_none()) {
        let slot = match finding.severity {
            Severity::Error => 0,
            Severity::Warning => 1,
            Severity::Note => 2,
        };
        by_rule.entry(finding.rule.to_string()).or_default()[slot] += 1;
        let file = finding.location.as_ref().map_or_else(
            || "(no file)".to_owned(),
            |l| escape::one_line(&l.file).into_owned(),
        );
        by_file.entry(file).or_default()[slot] += 1;
    }
    for (title, table) in [("by rule", &by_rule), ("by file", &by_file)] {
        if table.is_empty() {
            continue;
        }
        writeln!(out, "{title}:")?;
        let width = table.keys().map(|k| k.chars().count()).max().unwrap_or(0);
        for (key, [errors, warnings, notes]) in table {
            writeln!(
                out,
                "  {key:width$}  {errors:>5} error(s) {warnings:>5} warning(s) {notes:>5} note(s)"
            )?;
        }
        writeln!(out)?;
    }
    writeln!(out, "{}", summary_line(report))?;
    for note in &report.notes {
        writeln!(out, "note: {}", escape::one_line(note))?;
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

/// What starts every continuation line of a message: not blank, so that no line of a message
/// can begin a GitHub workflow command (the runner reads `::` after leading spaces).
const CONTINUATION: &str = "\n  │ ";

/// A finding the source is not at hand for: `file:line:col: severity[rule]: message`, with the
/// message's own line breaks and the details indented below it.
fn write_plain(finding: &Finding, out: &mut dyn io::Write) -> io::Result<()> {
    writeln!(out, "{}", one_line(finding).replace('\n', CONTINUATION))?;
    for line in detail_lines(finding) {
        writeln!(out, "  {}", line.replace('\n', CONTINUATION))?;
    }
    Ok(())
}

/// One finding as a miette diagnostic pointing into its (masked) source.
#[derive(Debug)]
struct FindingDiagnostic {
    headline: String,
    severity: miette::Severity,
    help: Option<String>,
    source: NamedSource<Arc<String>>,
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
fn snippet_diagnostic(
    report: &Report,
    sources: &mut ShownSources,
    finding: &Finding,
) -> Option<FindingDiagnostic> {
    let location = finding.location.as_ref()?;
    let offset = location.offset?;
    let source = report.sources.get(&location.file)?;
    let (text, span) = sources.show(source, offset, location.len)?;
    Some(FindingDiagnostic {
        // miette starts continuation lines with `│`; the lines themselves are made safe here.
        headline: format!(
            "{}[{}]: {}",
            finding.severity,
            finding.rule,
            escape::safe_lines(&finding.message).join("\n")
        ),
        severity: match finding.severity {
            Severity::Error => miette::Severity::Error,
            Severity::Warning => miette::Severity::Warning,
            Severity::Note => miette::Severity::Advice,
        },
        help: finding
            .help
            .as_ref()
            .map(|help| escape::safe_lines(help).join("\n")),
        source: NamedSource::new(escape::one_line(&location.file), text),
        label: LabeledSpan::new_primary_with_span(Some(label_text(finding)), span),
    })
}

/// What the caret says: the object the finding is about, else what the rule means.
fn label_text(finding: &Finding) -> String {
    match &finding.object {
        Some(object) => format!("in {}", escape::one_line(&object.to_string())),
        None => finding.rule.description().to_string(),
    }
}

/// Snippet lines longer than this (minified JSON, say) would flood the terminal: such findings
/// get the one-line form instead.
const MAX_SNIPPET_LINE: usize = 400;

/// The text each file's snippets may show, Secret values masked, computed once per file however
/// many findings point into it. `None` for a file nothing may be shown of (a JSON Secret).
#[derive(Default)]
struct ShownSources {
    by_path: BTreeMap<String, Option<Shown>>,
}

#[derive(Clone)]
struct Shown {
    text: Arc<String>,
    /// Whether masking changed the text, so that spans must be moved.
    masked: bool,
}

impl ShownSources {
    /// The shown text of `source` and the span `offset..offset + len` moved into it, or `None`
    /// when there is nothing safe and readable to show.
    fn show(
        &mut self,
        source: &SourceFile,
        offset: usize,
        len: usize,
    ) -> Option<(Arc<String>, (usize, usize))> {
        let original = &source.text;
        if offset > original.len() || !original.is_char_boundary(offset) {
            return None;
        }
        let Shown {
            text: shown,
            masked,
        } = self
            .by_path
            .entry(source.path.clone())
            .or_insert_with(|| shown_text(source))
            .clone()?;
        let (start, len) = if masked {
            remap_span(original, &shown, offset, len)
        } else {
            (offset, len.min(original.len() - offset))
        };
        let end = floor_char_boundary(&shown, start + len);
        if longest_line_around(&shown, start) > MAX_SNIPPET_LINE {
            return None;
        }
        Some((shown, (start, end - start)))
    }
}

fn shown_text(source: &SourceFile) -> Option<Shown> {
    let masked_text = mask_source(source)?;
    let masked = masked_text != source.text;
    Some(Shown {
        text: Arc::new(without_controls(&masked_text)),
        masked,
    })
}

/// Control characters and bidi overrides in a source become `?`s of the same byte length, so
/// spans still point at the same bytes; line breaks and tabs stay.
fn without_controls(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let keep = match c {
            '\n' | '\t' => true,
            '\r' => chars.peek() == Some(&'\n'),
            c => !escape::is_hostile(c),
        };
        if keep {
            out.push(c);
        } else {
            out.extend(std::iter::repeat_n('?', c.len_utf8()));
        }
    }
    out
}

/// The length of the longest of the lines a snippet shows: the span's line and its neighbours.
fn longest_line_around(text: &str, offset: usize) -> usize {
    let line_start = text[..offset].rfind('\n').map_or(0, |i| i + 1);
    let before = text[..line_start.saturating_sub(1)]
        .rsplit('\n')
        .next()
        .map_or(0, str::len);
    let after: usize = text[line_start..]
        .split('\n')
        .take(2)
        .map(str::len)
        .max()
        .unwrap_or(0);
    before.max(after)
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
        let masked = mask_source(&SourceFile::new("s.yaml", original)).unwrap();
        let offset = original.find("c2VjcmV0").unwrap();
        let (start, len) = remap_span(original, &masked, offset, 8);
        assert_eq!(&masked[start..start + len], "***");
    }

    #[test]
    fn a_span_on_an_unchanged_line_keeps_its_column() {
        let original = "kind: Secret\ndata:\n  password: c2VjcmV0\ntype: 7\n";
        let masked = mask_source(&SourceFile::new("s.yaml", original)).unwrap();
        let offset = original.find('7').unwrap();
        let (start, len) = remap_span(original, &masked, offset, 1);
        assert_eq!(&masked[start..start + len], "7");
    }

    #[test]
    fn no_snippet_inside_a_character_or_on_a_huge_line() {
        let mut sources = ShownSources::default();
        let source = SourceFile::new("a.yaml", "name: ü\n");
        let inside_u = source.text.find('ü').unwrap() + 1;
        assert!(sources.show(&source, inside_u, 1).is_none());
        assert!(sources.show(&source, inside_u - 1, 1).is_some());

        let minified = format!("{{\"a\": \"{}\"}}", "x".repeat(MAX_SNIPPET_LINE));
        let source = SourceFile::new("min.json", minified);
        assert!(sources.show(&source, 2, 1).is_none());
    }

    #[test]
    fn a_json_secret_is_shown_masked() {
        let mut sources = ShownSources::default();
        let source = SourceFile::new(
            "s.json",
            "{\"kind\": \"Secret\", \"data\": {\"p\": \"xyz1\"}}",
        );
        let (text, _) = sources.show(&source, 1, 4).unwrap();
        assert!(!text.contains("xyz1"), "{text}");
    }

    #[test]
    fn control_characters_in_a_source_never_reach_the_terminal() {
        let text = "a: \"x\x1b[2Jy\"\r\nb: 1\r\n";
        let shown = without_controls(text);
        assert_eq!(shown.len(), text.len());
        assert_eq!(shown, "a: \"x?[2Jy\"\r\nb: 1\r\n");
    }

    #[test]
    fn a_span_running_past_the_end_is_clamped() {
        let mut sources = ShownSources::default();
        let source = SourceFile::new("a.yaml", "a: b\n");
        let (text, (start, len)) = sources.show(&source, 3, 100).unwrap();
        assert_eq!(&text[start..start + len], "b\n");
    }
}
