//! `stategate check`: the local front door (laptop, pre-commit, any CI).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::change::{ChangeMode, ChangeSet, detect_changes, open_repo};
use crate::finding::{Finding, Rule, Verdict};
use crate::gate::Gate;
use crate::report::{Format, RenderOptions, Report, render};
use crate::tree::{DirTree, GitTree, MemTree, Tree};

/// Which side's config, schemas and policies judge the change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Trust {
    /// The base revision (HEAD for local modes): a change cannot loosen its own rules.
    Base,
    /// The working tree or head: for editing the rules themselves on a laptop.
    Head,
}

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Narrow the check to these paths (files, directories or globs).
    pub paths: Vec<String>,
    /// Compare against this revision (`git diff BASE...HEAD`).
    #[arg(long)]
    pub base: Option<String>,
    /// The head revision of a `--base` range, or the revision `--all` reads (default: HEAD).
    #[arg(long)]
    pub head: Option<String>,
    /// Check the index against HEAD (the pre-commit mode).
    #[arg(long, conflicts_with_all = ["base", "all"])]
    pub staged: bool,
    /// Check every matching file, not only changed ones.
    #[arg(long, conflicts_with = "base")]
    pub all: bool,
    /// Read the config from this file instead of `.stategate.yaml` of the trusted side.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Cache kustomize renders here (default: `$STATEGATE_CACHE_DIR`, else no cache).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Output format (default: human).
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Whose rules judge the change.
    #[arg(long, value_enum, default_value_t = Trust::Base)]
    pub trust: Trust,
    /// Colour in the human format: auto (on a terminal), always, never.
    #[arg(long, default_value = "auto")]
    pub color: String,
}

impl CheckArgs {
    fn mode(&self) -> ChangeMode {
        if self.all {
            ChangeMode::All {
                rev: self.head.clone(),
            }
        } else if self.staged {
            ChangeMode::Staged
        } else if let Some(base) = &self.base {
            ChangeMode::Range {
                base: base.clone(),
                head: self.head.clone().unwrap_or_else(|| "HEAD".to_owned()),
            }
        } else {
            ChangeMode::WorkTree
        }
    }
}

/// Run a check from `cwd`; returns the exit code.
pub fn run_check(cwd: &Path, args: &CheckArgs, out: &mut dyn Write, color: bool) -> u8 {
    let report = check_report(cwd, args);
    let options = RenderOptions {
        color,
        ..RenderOptions::default()
    };
    let verdict = report.verdict();
    if let Err(e) = render(&report, args.format, out, &options) {
        // Cannot even say why: still block.
        let _ = writeln!(std::io::stderr(), "stategate: cannot write the report: {e}");
        return Verdict::Undecided.exit_code();
    }
    verdict.exit_code()
}

fn check_report(cwd: &Path, args: &CheckArgs) -> Report {
    let repo = match open_repo(cwd) {
        Ok(repo) => repo,
        Err(e) => return undecided(format!("{e}"), "run stategate inside a git repository"),
    };
    let Some(workdir) = repo.workdir().map(Path::to_path_buf) else {
        return undecided(
            "this is a bare repository".to_owned(),
            "use `stategate hook pre-receive` on servers, or check a clone",
        );
    };
    let mode = args.mode();
    let change = match detect_changes(cwd, &mode, &args.paths) {
        Ok(change) => change,
        Err(e) => return undecided(format!("{e}"), "check the revisions and paths given"),
    };
    let trusted = match trusted_tree(&repo, &workdir, args) {
        Ok(tree) => tree,
        Err(e) => return undecided(e, "check the revisions given"),
    };
    let trust_note = match args.trust {
        Trust::Head => Some(
            "rules read from the change itself (--trust head): fine on a laptop, never for a gate",
        ),
        Trust::Base => None,
    };
    let gate = match Gate::open(trusted, args.config.as_deref()) {
        Ok(gate) => gate.with_render_cache(crate::render::cache::cache_dir(
            args.cache_dir.as_deref(),
            None,
        )),
        Err(report) => return report,
    };
    let head = match head_tree(&repo, &workdir, &mode) {
        Ok(tree) => tree,
        Err(e) => return undecided(e, "check the revisions given"),
    };
    let mut report = gate.check(&change, head.as_ref());
    report.notes.extend(trust_note.map(str::to_owned));
    report.notes.push(describe(&mode, &change));
    report
}

/// The side whose config, schemas and policies judge: the base revision by default.
fn trusted_tree(
    repo: &git2::Repository,
    workdir: &Path,
    args: &CheckArgs,
) -> Result<Box<dyn Tree>, String> {
    if args.trust == Trust::Head {
        return match (&args.base, &args.head) {
            (Some(_), Some(head)) => git_tree(repo, head),
            _ => Ok(Box::new(DirTree::new(workdir, "working tree"))),
        };
    }
    let rev = args.base.as_deref().unwrap_or("HEAD");
    if repo.head().is_err() && args.base.is_none() {
        return Ok(Box::new(MemTree::empty(
            "an empty repository (no commits yet)",
        )));
    }
    git_tree(repo, rev)
}

/// The side the change produces, where kustomizations are looked up.
fn head_tree(
    repo: &git2::Repository,
    workdir: &Path,
    mode: &ChangeMode,
) -> Result<Box<dyn Tree>, String> {
    match mode {
        ChangeMode::Range { head, .. } => git_tree(repo, head),
        ChangeMode::All { rev: Some(rev) } => git_tree(repo, rev),
        // The index is close enough to the working tree for finding kustomizations.
        _ => Ok(Box::new(DirTree::new(workdir, "working tree"))),
    }
}

fn git_tree(repo: &git2::Repository, rev: &str) -> Result<Box<dyn Tree>, String> {
    GitTree::open(repo, rev)
        .map(|t| Box::new(t) as Box<dyn Tree>)
        .map_err(|e| format!("cannot read revision `{rev}`: {}", e.message()))
}

fn describe(mode: &ChangeMode, change: &ChangeSet) -> String {
    let what = match mode {
        ChangeMode::WorkTree => "working tree against HEAD".to_owned(),
        ChangeMode::Staged => "staged changes against HEAD".to_owned(),
        ChangeMode::Range { base, head } => format!("{base}...{head}"),
        ChangeMode::All { rev: Some(rev) } => format!("every file at {rev}"),
        ChangeMode::All { rev: None } => "every file in the working tree".to_owned(),
    };
    let files = change.files.len();
    let noun = if files == 1 { "path" } else { "paths" };
    format!("checked {what}: {files} {noun}")
}

fn undecided(message: String, help: &str) -> Report {
    Report {
        findings: vec![Finding::error(Rule::GateInternal, message).help(help)],
        ..Report::default()
    }
}
