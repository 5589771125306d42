//! The json format: one stable document for scripts. `version` changes only when a field changes
//! meaning or goes away; new fields may appear.

use std::io;

use serde::Serialize;

use super::{Counts, Report, Stats, verdict_name};
use crate::finding::Finding;

/// Bumped when a field changes meaning or is removed.
const JSON_VERSION: u32 = 1;

#[derive(Serialize)]
struct JsonReport<'a> {
    version: u32,
    verdict: &'static str,
    exit_code: u8,
    stats: JsonStats<'a>,
    findings: &'a [Finding],
    notes: &'a [String],
}

#[derive(Serialize)]
struct JsonStats<'a> {
    #[serde(flatten)]
    stats: &'a Stats,
    #[serde(flatten)]
    counts: Counts,
}

pub(super) fn render(report: &Report, out: &mut dyn io::Write) -> io::Result<()> {
    let verdict = report.verdict();
    let document = JsonReport {
        version: JSON_VERSION,
        verdict: verdict_name(verdict),
        exit_code: verdict.exit_code(),
        stats: JsonStats {
            stats: &report.stats,
            counts: report.counts(),
        },
        findings: &report.findings,
        notes: &report.notes,
    };
    super::escape::write_json(out, &document)
}
