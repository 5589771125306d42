//! `stategate drift [--env ENV] [--rev REV] [--format human|json|markdown]`: live state against the
//! desired state at a revision, for operators and schedules. Exit 1 when drift blocks.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::drift::{DriftReport, drift_environment, format};
use crate::finding::{Finding, Rule, Verdict};
use crate::gate::Gate;
use crate::tree::GitTree;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DriftFormat {
    Human,
    Json,
    Markdown,
}

#[derive(Debug, Clone, clap::Args)]
pub struct DriftArgs {
    /// Only this environment (default: every environment with a live source).
    #[arg(long)]
    pub env: Option<String>,
    /// The revision whose desired state (and config, and snapshot) is compared (default: HEAD).
    #[arg(long, default_value = "HEAD")]
    pub rev: String,
    /// Read the config from this file instead of `.stategate.yaml` at REV.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = DriftFormat::Human)]
    pub format: DriftFormat,
}

pub fn run_drift(cwd: &Path, args: &DriftArgs, out: &mut dyn Write) -> u8 {
    let report = drift_report(cwd, args);
    let verdict = Verdict::of(&report.findings);
    let text = match args.format {
        DriftFormat::Human => format::human(&report),
        DriftFormat::Markdown => format::markdown(&report),
        DriftFormat::Json => {
            let value = serde_json::json!({"verdict": verdict, "drift": report});
            serde_json::to_string_pretty(&value).unwrap_or_default() + "\n"
        }
    };
    if out.write_all(text.as_bytes()).is_err() {
        return Verdict::Undecided.exit_code();
    }
    verdict.exit_code()
}

fn drift_report(cwd: &Path, args: &DriftArgs) -> DriftReport {
    let fail = |message: String| DriftReport {
        findings: vec![Finding::error(Rule::GateInternal, message)],
        ..DriftReport::default()
    };
    let repo = match git2::Repository::discover(cwd) {
        Ok(repo) => repo,
        Err(e) => return fail(format!("not in a git repository: {}", e.message())),
    };
    let commit = match repo
        .revparse_single(&args.rev)
        .and_then(|o| o.peel_to_commit())
    {
        Ok(commit) => commit.id(),
        Err(e) => {
            return fail(format!(
                "cannot read revision `{}`: {}",
                args.rev,
                e.message()
            ));
        }
    };
    let tree = match GitTree::open(&repo, &commit.to_string()) {
        Ok(tree) => tree,
        Err(e) => {
            return fail(format!(
                "cannot read revision `{}`: {}",
                args.rev,
                e.message()
            ));
        }
    };
    let gate = match Gate::open(Box::new(tree), args.config.as_deref()) {
        Ok(gate) => gate,
        Err(report) => {
            return DriftReport {
                findings: report.findings,
                ..DriftReport::default()
            };
        }
    };
    let file_time = |path: &str| crate::drift::live::git_file_time(&repo, commit, path);
    drift_environment(
        &gate.config,
        gate.trusted(),
        args.env.as_deref(),
        &file_time,
    )
}
