//! Rendering findings. Renderers only format: the verdict is decided before they run.
//!
//! One file per output format; [`render`] dispatches on [`Format`]. Every renderer prints only what
//! the findings carry (never values read from documents); messages are redacted of Secret values
//! before rendering ([`Report::redact`]) and the human snippets mask them by their source
//! positions ([`mask_source`]). User-controlled text is made safe for terminals, logs and
//! markdown in one place, [`escape`].

pub mod escape;
mod github;
mod human;
mod json;
mod junit;
pub mod levels;
mod mask;
mod sarif;
mod tap;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io;
use std::sync::Arc;

use serde::Serialize;

use crate::config::PreExisting;
use crate::finding::{Finding, Rule, Severity, Verdict};
use crate::load::SourceFile;

pub use github::{escape_data, escape_property};
pub use mask::{LAST_APPLIED, Secrets, mask_source, secret_paths};

/// Everything a renderer needs: the findings, the verdict, and the sources findings point into
/// (for snippets).
#[derive(Debug, Default)]
pub struct Report {
    pub findings: Vec<Finding>,
    pub sources: BTreeMap<String, Arc<SourceFile>>,
    pub stats: Stats,
    /// Lines about the run itself ("config and policies read from working tree (--trust head)").
    pub notes: Vec<String>,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct Stats {
    pub files: u32,
    pub documents: u32,
    pub skipped: u32,
    /// Findings the base already had, listed apart (`report.pre_existing: warn | block`).
    #[serde(skip_serializing_if = "is_zero")]
    pub pre_existing: u32,
    /// Findings the base already had, not listed (`report.pre_existing: hide`).
    #[serde(skip_serializing_if = "is_zero")]
    pub pre_existing_hidden: u32,
    /// Findings an inline `# stategate:ignore` covers (still listed in json and sarif).
    #[serde(skip_serializing_if = "is_zero")]
    pub suppressed: u32,
    /// Of those, the ones whose suppression this change adds.
    #[serde(skip_serializing_if = "is_zero")]
    pub suppressed_by_change: u32,
    /// Findings of rules turned `off` in `rules:`.
    #[serde(skip_serializing_if = "is_zero")]
    pub disabled: u32,
    /// The paths of the checked files: JUnit and TAP give each one a test, passing ones too.
    #[serde(skip)]
    pub checked: CheckedFiles,
}

/// The paths of the checked files, in one buffer: a check of 100,000 files keeps them all until
/// the report is written, and a `String` each would cost more than the path itself.
#[derive(Debug, Default, Clone)]
pub struct CheckedFiles {
    /// Each path followed by a NUL, which no git path holds. (A `Box`: a `Report` stays small
    /// enough to return by value.)
    paths: Box<str>,
}

impl CheckedFiles {
    pub fn iter(&self) -> impl Iterator<Item = &str> {
        self.paths.split_terminator('\0')
    }
}

impl CheckedFiles {
    /// `paths` in one buffer of their exact size: built by appending, it was copied at every
    /// doubling, and twice the list was resident at the end (5 MB of 100,000 files).
    pub fn new<'a>(paths: impl Iterator<Item = &'a str> + Clone) -> CheckedFiles {
        let size = paths.clone().map(|p| p.len() + 1).sum();
        let mut all = String::with_capacity(size);
        for path in paths {
            all.push_str(path);
            all.push('\0');
        }
        CheckedFiles {
            paths: all.into_boxed_str(),
        }
    }
}

/// Counts of findings kept as `u32`: a `Report` stays small enough to return by value.
pub fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

impl Report {
    pub fn verdict(&self) -> Verdict {
        Verdict::of(&self.findings)
    }

    /// Replace every Secret value (see [`Secrets`]) in the findings' messages, help and metadata
    /// with `***`: whatever a producer quoted, no format prints it.
    pub fn redact(&mut self, secrets: &Secrets) {
        if secrets.is_empty() {
            return;
        }
        for finding in &mut self.findings {
            secrets.redact_finding(finding);
        }
    }

    /// Apply `report.pre_existing` to the findings marked as already present at the base, and
    /// list them after the change's own. Findings that say the gate could not read the input
    /// keep blocking: an unreadable file is undecidable whoever broke it.
    pub fn apply_pre_existing(&mut self, mode: PreExisting) {
        let (old, mut new): (Vec<Finding>, Vec<Finding>) = std::mem::take(&mut self.findings)
            .into_iter()
            .partition(|f| f.pre_existing);
        match mode {
            PreExisting::Hide => self.stats.pre_existing_hidden = count(old.len()),
            PreExisting::Block => {
                self.stats.pre_existing = count(old.len());
                new.extend(old);
            }
            PreExisting::Warn => {
                self.stats.pre_existing = count(old.len());
                new.extend(old.into_iter().map(|mut f| {
                    if f.severity == Severity::Error && !f.rule.is_undecidable() {
                        f.severity = Severity::Warning;
                    }
                    f
                }));
            }
        }
        self.findings = new;
    }

    /// How many findings of each severity the report holds.
    pub fn counts(&self) -> Counts {
        let mut counts = Counts::default();
        for finding in self.findings.iter().filter(|f| f.suppressed.is_none()) {
            match finding.severity {
                Severity::Error => counts.errors += 1,
                Severity::Warning => counts.warnings += 1,
                Severity::Note => counts.notes += 1,
            }
        }
        counts
    }
}

/// Findings per severity, as the summaries print them.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub errors: usize,
    pub warnings: usize,
    pub notes: usize,
}

/// Output formats of `check` (and, with `markdown`, of `diff`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Human,
    Json,
    Sarif,
    Junit,
    Github,
    /// Test Anything Protocol, one test per checked file.
    Tap,
}

impl Format {
    /// Whether the format lists every checked file, passing ones too ([`Stats::checked`]).
    pub fn lists_checked_files(self) -> bool {
        matches!(self, Format::Junit | Format::Github | Format::Tap)
    }

    /// Whether the format quotes the lines findings point at (the human format's snippets). The
    /// others name a finding's file, line and column only, so the files' texts need not be kept.
    pub fn quotes_sources(self) -> bool {
        matches!(self, Format::Human)
    }
}

/// How to render, beyond the format itself. Only the human format uses these.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenderOptions {
    /// ANSI colours in the human format (off for pipes, files and snapshots).
    pub color: bool,
    /// Wrap width of the human format, in columns.
    pub width: usize,
    /// How much of the report the human format prints.
    pub detail: Detail,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            color: false,
            width: 100,
            detail: Detail::Normal,
        }
    }
}

/// How much of a report the human format prints. Machine formats always carry everything.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Detail {
    /// The findings that block and the summary line (`--quiet`).
    Quiet,
    /// Counts per rule and per file, then the summary line (`--summary`).
    Summary,
    /// Errors and warnings; note-level findings are counted, not shown (the default).
    #[default]
    Normal,
    /// Notes too (`-v`).
    Verbose,
}

/// Write `report` in `format` to `out`.
pub fn render(
    report: &Report,
    format: Format,
    out: &mut dyn io::Write,
    options: &RenderOptions,
) -> io::Result<()> {
    // Standard output writes each line as it ends: a system call per line, 1,151 of them for the
    // corpus' report.
    let mut out = io::BufWriter::with_capacity(64 * 1024, out);
    let out: &mut dyn io::Write = &mut out;
    match format {
        Format::Human => human::render(report, out, options),
        Format::Json => json::render(report, out),
        Format::Sarif => sarif::render(report, out),
        Format::Junit => junit::render(report, out),
        Format::Github => github::render(report, out),
        Format::Tap => tap::render(report, out),
    }?;
    out.flush()
}

/// The one-line summary the text formats end with:
/// `2 errors, 1 warning in 3 files (4 documents); verdict: fail (exit 1)`.
pub fn summary_line(report: &Report) -> String {
    let counts = report.counts();
    let mut line = format!(
        "{}, {}",
        plural(counts.errors, "error"),
        plural(counts.warnings, "warning")
    );
    if counts.notes > 0 {
        let _ = write!(line, ", {}", plural(counts.notes, "note"));
    }
    if report.stats.pre_existing > 0 {
        let _ = write!(
            line,
            " ({} pre-existing, not introduced by this change)",
            report.stats.pre_existing
        );
    }
    if report.stats.suppressed > 0 {
        let _ = write!(
            line,
            ", {} suppressed ({} by this change)",
            report.stats.suppressed, report.stats.suppressed_by_change
        );
    }
    if report.stats.disabled > 0 {
        let _ = write!(line, ", {} off by `rules:`", report.stats.disabled);
    }
    if report.stats.pre_existing_hidden > 0 {
        let _ = write!(
            line,
            ", {} pre-existing hidden",
            report.stats.pre_existing_hidden
        );
    }
    let _ = write!(
        line,
        " in {} ({}",
        plural(report.stats.files as usize, "file"),
        plural(report.stats.documents as usize, "document")
    );
    if report.stats.skipped > 0 {
        let _ = write!(line, ", {} skipped", report.stats.skipped);
    }
    let verdict = report.verdict();
    let _ = write!(
        line,
        "); verdict: {} (exit {})",
        verdict_name(verdict),
        verdict.exit_code()
    );
    line
}

pub(crate) fn verdict_name(verdict: Verdict) -> &'static str {
    match verdict {
        Verdict::Pass => "pass",
        Verdict::Fail => "fail",
        Verdict::Undecided => "undecided",
    }
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 {
        format!("{n} {word}")
    } else {
        format!("{n} {word}s")
    }
}

/// The one-line form of a finding, for findings without a snippet and for the plain formats:
/// `file:line:col: severity[rule]: message`. Everything user-controlled is made safe
/// ([`escape`]); a multi-line message keeps its breaks (renderers prefix the continuation lines).
pub(crate) fn one_line(finding: &Finding) -> String {
    let mut line = String::new();
    if let Some(location) = &finding.location {
        let _ = write!(line, "{}: ", escape::one_line(&location.to_string()));
    }
    let _ = write!(
        line,
        "{}[{}]: {}",
        finding.severity,
        finding.rule,
        escape::safe_lines(&finding.message).join("\n")
    );
    line
}

/// What a finding says beyond its one line, one `key: value` line each: the object it is about,
/// the ref, and what to do. Made safe like [`one_line`].
pub(crate) fn detail_lines(finding: &Finding) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(object) = &finding.object {
        lines.push(format!("object: {}", escape::one_line(&object.to_string())));
    }
    if let Some(git_ref) = &finding.git_ref {
        lines.push(format!("ref: {}", escape::one_line(git_ref)));
    }
    if let Some(help) = &finding.help {
        lines.push(format!("help: {}", escape::safe_lines(help).join("\n")));
    }
    lines
}

/// Every finding code with its description, one per line: the table users write suppressions and
/// dashboards against. A test snapshots it so a code never changes by accident.
pub fn rules_table() -> String {
    let width = Rule::ALL.iter().map(|r| r.code().len()).max().unwrap_or(0);
    Rule::ALL.iter().fold(String::new(), |mut table, rule| {
        let _ = writeln!(table, "{:width$}  {}", rule.code(), rule.description());
        table
    })
}

/// A count for `Stats`: u32 keeps `Report` small enough to travel in a `Result`, and no run
/// checks four billion files.
pub fn saturating_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
