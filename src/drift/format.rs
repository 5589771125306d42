//! Drift as text: the human form of `stategate drift`, and the markdown "Drift" section a PR
//! comment includes. Only what the report carries is printed; secret values are masked upstream.

use std::fmt::Write as _;

use serde_json::Value;

use crate::diff::format::value_text;
use crate::report::escape::{markdown_code, one_line};

use super::{DriftReport, DriftState, EnvDrift, ObjectDrift};
use crate::finding::{Severity, Verdict};

pub fn human(report: &DriftReport) -> String {
    let mut out = String::new();
    for env in &report.environments {
        let _ = writeln!(
            out,
            "{}: {}",
            one_line(&env.environment),
            one_line(&summary(env))
        );
        for note in &env.notes {
            let _ = writeln!(out, "  note: {}", one_line(note));
        }
        for object in &env.objects {
            let _ = writeln!(out, "  {} {}", marker(object), one_line(&headline(object)));
            for field in &object.fields {
                let _ = writeln!(
                    out,
                    "      {}: live {} → Git {}",
                    one_line(&field.path),
                    value(field.live.as_ref()),
                    value(field.desired.as_ref())
                );
            }
            for r in &object.reverts {
                let _ = writeln!(
                    out,
                    "      this change reverts a live edit of `{}`: {} → {}",
                    one_line(&r.path),
                    value(r.live.as_ref()),
                    value(r.head.as_ref())
                );
            }
        }
    }
    for f in report
        .findings
        .iter()
        .filter(|f| f.rule != crate::finding::Rule::DriftLive)
    {
        let _ = writeln!(out, "{}[{}]: {}", f.severity, f.rule, one_line(&f.message));
    }
    let _ = writeln!(out, "{}", verdict_line(report));
    out
}

/// The "Drift" section of a PR comment (GitHub markdown).
pub fn markdown(report: &DriftReport) -> String {
    let mut out = String::from("### Drift\n\n");
    for env in &report.environments {
        let _ = writeln!(
            out,
            "**{}**: {}\n",
            crate::report::escape::markdown(&env.environment),
            crate::report::escape::markdown(&summary(env))
        );
        if env.objects.is_empty() {
            continue;
        }
        out.push_str("| object | field | live | Git at base |\n|---|---|---|---|\n");
        for object in &env.objects {
            let id = markdown_code(&object.object.to_string());
            if object.fields.is_empty() {
                let _ = writeln!(out, "| {id} | {} | | |", state(object));
            }
            for f in &object.fields {
                let _ = writeln!(
                    out,
                    "| {id} | {} | {} | {} |",
                    markdown_code(&f.path),
                    cell(f.live.as_ref()),
                    cell(f.desired.as_ref())
                );
            }
        }
        for object in &env.objects {
            for r in &object.reverts {
                let _ = writeln!(
                    out,
                    "\n> ⚠️ this change reverts a live edit of {} on {}: {} → {}",
                    markdown_code(&r.path),
                    markdown_code(&object.object.to_string()),
                    cell(r.live.as_ref()),
                    cell(r.head.as_ref())
                );
            }
        }
        out.push('\n');
    }
    for f in report
        .findings
        .iter()
        .filter(|f| f.rule != crate::finding::Rule::DriftLive)
    {
        let _ = writeln!(
            out,
            "- **{}** `{}`: {}",
            f.severity,
            f.rule,
            crate::report::escape::markdown(&f.message)
        );
    }
    let _ = writeln!(out, "\n{}", verdict_line(report));
    out
}

fn summary(env: &EnvDrift) -> String {
    let mut text = env.source.clone();
    if let Some(age) = env.age_seconds.filter(|a| *a > 0) {
        let _ = write!(text, ", {} old", super::live::human_age(age));
    }
    let drifted = env.objects.len();
    let _ = match drifted {
        0 => write!(text, " — no drift"),
        1 => write!(text, " — 1 object drifted"),
        n => write!(text, " — {n} objects drifted"),
    };
    if env.not_covered > 0 {
        let _ = write!(
            text,
            " ({} object(s) of kinds the source does not list were not compared)",
            env.not_covered
        );
    }
    text
}

fn headline(o: &ObjectDrift) -> String {
    let file = o
        .file
        .as_deref()
        .map(|f| format!(" ({f})"))
        .unwrap_or_default();
    format!("{}{file}: {}", o.object, state(o))
}

fn state(o: &ObjectDrift) -> &'static str {
    match o.state {
        DriftState::Drifted => "drifted",
        DriftState::MissingLive => "in Git at base, missing live",
        DriftState::NotInGit => "live, not in Git at base",
    }
}

fn marker(o: &ObjectDrift) -> &'static str {
    match o.state {
        DriftState::Drifted => "~",
        DriftState::MissingLive => "-",
        DriftState::NotInGit => "+",
    }
}

/// A value for a terminal: one line, control characters shown as escapes.
fn value(v: Option<&Value>) -> String {
    one_line(&value_text(v)).into_owned()
}

fn cell(v: Option<&Value>) -> String {
    markdown_code(&value_text(v))
}

fn verdict_line(report: &DriftReport) -> String {
    let errors = report
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Error)
        .count();
    match Verdict::of(&report.findings) {
        Verdict::Pass => "drift: nothing blocks".to_owned(),
        Verdict::Fail => format!("drift: {errors} blocking finding(s)"),
        Verdict::Undecided => format!("drift: could not be judged ({errors} error(s))"),
    }
}
