//! `stategate verify [DIR]`: policy unit tests, reported like `opa test -v`.

use std::io::{self, Write};
use std::path::Path;

use crate::config::PoliciesConfig;
use crate::policy::verify::{FileCoverage, Outcome, run_tests_with};
use crate::tree::DirTree;

/// `verify -v` and `--run REGEX`.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    pub verbose: bool,
    pub run: Option<String>,
    /// Report the lines of each policy the tests reached.
    pub coverage: bool,
}

/// Run the `test_*` rules of the policies under `dir` and print one line per test and a summary.
/// Returns the exit code: 0 all pass, 1 a test failed or errored, 2 a policy does not compile or
/// there is nothing to test.
pub fn run_verify(dir: &Path, options: &VerifyOptions, out: &mut dyn Write) -> io::Result<u8> {
    let filter = match options.run.as_deref().map(regex::Regex::new).transpose() {
        Ok(filter) => filter,
        Err(e) => {
            writeln!(out, "--run: not a regular expression: {e}")?;
            return Ok(2);
        }
    };
    let tree = DirTree::new(dir, dir.display().to_string());
    let timeout = PoliciesConfig::default().timeout_ms;
    let (results, coverage) =
        match run_tests_with(&tree, &[String::new()], timeout, options.coverage) {
            Ok(run) => run,
            Err(findings) => {
                for finding in findings {
                    let at = finding
                        .location
                        .as_ref()
                        .map(|l| l.to_string())
                        .unwrap_or_default();
                    writeln!(out, "{}: {at}: {}", finding.rule, finding.message)?;
                }
                return Ok(2);
            }
        };
    let results: Vec<_> = results
        .into_iter()
        .filter(|r| filter.as_ref().is_none_or(|f| f.is_match(&r.name)))
        .collect();
    if results.is_empty() {
        let matching = options
            .run
            .as_deref()
            .map(|r| format!(" matching `{r}`"))
            .unwrap_or_default();
        writeln!(
            out,
            "no test_* rules{matching} found under {}",
            dir.display()
        )?;
        return Ok(2);
    }
    let mut passed = 0;
    for result in &results {
        if options.verbose {
            write!(out, "{}: ", result.file)?;
        }
        let ms = result.duration.as_secs_f64() * 1000.0;
        match &result.outcome {
            Outcome::Pass => {
                passed += 1;
                writeln!(out, "{}: PASS ({ms:.3}ms)", result.name)?;
            }
            Outcome::Fail => writeln!(out, "{}: FAIL ({ms:.3}ms)", result.name)?,
            Outcome::Error(err) => writeln!(
                out,
                "{}: ERROR ({ms:.3}ms)\n  {}",
                result.name,
                err.replace('\n', "\n  ")
            )?,
        }
    }
    let total = results.len();
    if options.coverage {
        write_coverage(&coverage, out)?;
    }
    writeln!(out, "{}", "-".repeat(80))?;
    writeln!(out, "PASS: {passed}/{total}")?;
    if passed < total {
        writeln!(out, "FAIL: {}/{total}", total - passed)?;
        return Ok(1);
    }
    Ok(0)
}

/// One line per policy file: lines reached of lines evaluable, and the lines never reached.
fn write_coverage(
    coverage: &std::collections::BTreeMap<String, FileCoverage>,
    out: &mut dyn Write,
) -> io::Result<()> {
    writeln!(out, "{}", "-".repeat(80))?;
    writeln!(out, "coverage (lines the tests reached):")?;
    for (file, lines) in coverage {
        let reached = lines.covered.len();
        let total = reached + lines.not_covered.len();
        let percent = if total == 0 {
            100.0
        } else {
            reached as f64 * 100.0 / total as f64
        };
        write!(out, "{file}: {reached}/{total} lines ({percent:.1}%)")?;
        if lines.not_covered.is_empty() {
            writeln!(out)?;
        } else {
            let missed: Vec<String> = lines.not_covered.iter().map(u32::to_string).collect();
            writeln!(out, "; not reached: {}", missed.join(", "))?;
        }
    }
    Ok(())
}
