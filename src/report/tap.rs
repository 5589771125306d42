//! The tap format: Test Anything Protocol version 13, as conftest prints it: one test per checked
//! file (and per ref or change a finding names), `not ok` when it holds a blocking finding, its
//! findings as `#` diagnostics.

use std::collections::BTreeMap;
use std::io;

use super::{Report, summary_line};
use crate::finding::{Finding, Severity};

pub(super) fn render(report: &Report, out: &mut dyn io::Write) -> io::Result<()> {
    let mut tests: BTreeMap<String, Vec<&Finding>> = report
        .stats
        .checked
        .iter()
        .chain(report.sources.keys().map(String::as_str))
        .map(|file| (file.to_owned(), Vec::new()))
        .collect();
    for finding in &report.findings {
        let name = finding
            .location
            .as_ref()
            .map(|l| l.file.clone())
            .filter(|f| !f.is_empty())
            .or_else(|| finding.git_ref.clone())
            .unwrap_or_else(|| "(change)".to_owned());
        tests.entry(name).or_default().push(finding);
    }
    writeln!(out, "TAP version 13")?;
    writeln!(out, "1..{}", tests.len())?;
    for (number, (name, findings)) in tests.iter().enumerate() {
        let blocked = findings.iter().any(|f| f.severity == Severity::Error);
        let status = if blocked { "not ok" } else { "ok" };
        // `#` starts a directive in a TAP description: it is escaped like TAP::Parser expects.
        let shown = super::escape::one_line(name).replace('#', "\\#");
        writeln!(out, "{status} {} - {shown}", number + 1)?;
        for finding in findings {
            let line = finding
                .location
                .as_ref()
                .and_then(|l| l.line)
                .map(|l| format!(":{l}"))
                .unwrap_or_default();
            writeln!(
                out,
                "# {}[{}]{line}: {}",
                finding.severity,
                finding.rule,
                super::escape::one_line(&finding.message)
            )?;
        }
    }
    writeln!(out, "# {}", summary_line(report))
}
