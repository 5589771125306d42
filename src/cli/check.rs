//! `stategate check`: the local front door (laptop, pre-commit, any CI).

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::approval::Evidence;
use crate::change::{ChangeMode, ChangeSet, detect_changes_glancing, open_repo};
use crate::config::{CONFIG_FILE, Config};
use crate::engine::{ChangeMeta, FrontDoor};
use crate::finding::{Finding, Rule, Severity, Verdict};
use crate::gate::Gate;
use crate::report::{Detail, Format, RenderOptions, Report, render};
use crate::tree::{DirTree, GitTree, Tree};
use crate::trust::{ChangeSide, RulesFrom, Trust, rules_tree};

mod loose;

#[derive(Debug, Clone, clap::Args)]
pub struct CheckArgs {
    /// Narrow the check to these paths (files, directories or globs). Outside a git repository:
    /// check exactly these files and directories; `-` reads one YAML stream from stdin.
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
    /// Cache kustomize renders here (default: `$STATEGATE_CACHE_DIR`, else
    /// `stategate/render-cache` in the repository's git directory, as the hook does).
    #[arg(long)]
    pub cache_dir: Option<PathBuf>,
    /// Render without the cache: nothing is read from it or written to it.
    #[arg(long, conflicts_with = "cache_dir")]
    pub no_cache: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Human)]
    pub format: Format,
    /// Also write the report in --format to this file; the human report then goes to stdout.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Whose rules judge the change.
    #[arg(long, value_enum, default_value_t = Trust::Base)]
    pub trust: Trust,
    /// Also compare the live state of the objects the change touches with Git at base
    /// (`drift.live`).
    #[arg(long)]
    pub live: bool,
    /// Human format: print only the findings that block and the summary line.
    #[arg(short = 'q', long, conflicts_with_all = ["summary", "verbose"])]
    pub quiet: bool,
    /// Human format: print counts per rule and per file instead of each finding.
    #[arg(long, conflicts_with = "verbose")]
    pub summary: bool,
    /// Human format: also print note-level findings (counted, not shown, by default).
    #[arg(short = 'v', long)]
    pub verbose: bool,
    /// Colour in the human format: auto (on a terminal, NO_COLOR unset or empty; CLICOLOR_FORCE
    /// forces it), always, never.
    #[arg(long, default_value = "auto")]
    pub color: String,
    /// Directory or glob of Rego policies (repeatable); overrides `policies.paths`.
    #[arg(long = "policy", value_name = "DIR")]
    pub policy: Vec<String>,
    /// Rego package whose rules judge documents (repeatable); overrides `policies.namespaces`.
    #[arg(long = "namespace", value_name = "NS")]
    pub namespace: Vec<String>,
    /// Every Rego package judges documents; overrides `policies.namespaces` with `[all]`.
    #[arg(long, conflicts_with = "namespace")]
    pub all_namespaces: bool,
    /// Data file or directory loaded into `data` (repeatable); overrides `policies.data`.
    #[arg(long = "data", value_name = "PATH")]
    pub data: Vec<String>,
    /// Kubernetes version of the embedded schemas, e.g. 1.31; overrides `schemas.kubernetes`.
    #[arg(long, value_name = "X.Y")]
    pub kubernetes_version: Option<String>,
    /// Warnings block too (exit 1); no config key.
    #[arg(long)]
    pub fail_on_warn: bool,
    /// Leave out findings about objects of these kinds (kubeconform's -skip); no config key.
    #[arg(long, value_name = "KIND,...", value_delimiter = ',')]
    pub skip: Vec<String>,
    /// Deny every object of these kinds (kubeconform's -reject); overrides `policies.reject_kinds`.
    #[arg(long, value_name = "KIND,...", value_delimiter = ',')]
    pub reject: Vec<String>,
}

impl CheckArgs {
    fn detail(&self) -> Detail {
        if self.quiet {
            Detail::Quiet
        } else if self.summary {
            Detail::Summary
        } else if self.verbose {
            Detail::Verbose
        } else {
            Detail::Normal
        }
    }

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
    let mut report = check_report(cwd, args);
    skip_kinds(&mut report, &args.skip);
    if args.fail_on_warn {
        promote_warnings(&mut report);
    }
    let options = RenderOptions {
        color,
        detail: args.detail(),
        ..RenderOptions::default()
    };
    let verdict = report.verdict();
    let written = match &args.output {
        // One run, two outputs: the human report on stdout, the chosen format in the file.
        Some(file) => write_file(&report, args.format, file)
            .and_then(|()| render(&report, Format::Human, out, &options)),
        None => render(&report, args.format, out, &options),
    };
    crate::alloc::trace("reported");
    if let Err(e) = written {
        // Cannot even say why: still block.
        let _ = writeln!(std::io::stderr(), "stategate: cannot write the report: {e}");
        return Verdict::Undecided.exit_code();
    }
    verdict.exit_code()
}

fn write_file(report: &Report, format: Format, file: &Path) -> std::io::Result<()> {
    let mut bytes = Vec::new();
    render(report, format, &mut bytes, &RenderOptions::default())?;
    std::fs::write(file, bytes)
        .map_err(|e| std::io::Error::new(e.kind(), format!("{}: {e}", file.display())))
}

/// `--skip KIND,...`: findings about objects of those kinds are left out, and the report says so.
fn skip_kinds(report: &mut Report, kinds: &[String]) {
    if kinds.is_empty() {
        return;
    }
    let skipped = |finding: &Finding| match &finding.object {
        Some(crate::object::ObjectId::Kube { kind, .. }) => {
            kinds.iter().any(|k| k.eq_ignore_ascii_case(kind))
        }
        _ => false,
    };
    let before = report.findings.len();
    report.findings.retain(|f| !skipped(f));
    let left_out = before - report.findings.len();
    report.notes.push(format!(
        "{left_out} finding(s) about kinds {} left out (--skip)",
        kinds.join(", ")
    ));
}

/// `--fail-on-warn`: every warning blocks like an error.
fn promote_warnings(report: &mut Report) {
    for finding in &mut report.findings {
        if finding.severity == Severity::Warning {
            finding.severity = Severity::Error;
            finding.message = format!("{} (a warning; --fail-on-warn)", finding.message);
        }
    }
}

/// The config keys the flags override, applied before anything reads the config.
fn apply_flags(args: &CheckArgs, config: &mut Config) {
    if !args.policy.is_empty() {
        config.policies.paths = args.policy.clone();
    }
    if !args.namespace.is_empty() {
        config.policies.namespaces = args.namespace.clone();
    }
    if args.all_namespaces {
        config.policies.namespaces = vec!["all".to_owned()];
    }
    if !args.data.is_empty() {
        config.policies.data = args.data.clone();
    }
    if let Some(version) = &args.kubernetes_version {
        config.schemas.kubernetes = Some(version.clone());
    }
    if !args.reject.is_empty() {
        config.policies.reject_kinds = args.reject.clone();
    }
}

/// `--kubernetes-version` is checked like `schemas.kubernetes` in the config.
fn check_flags(args: &CheckArgs) -> Result<(), Report> {
    let Some(version) = &args.kubernetes_version else {
        return Ok(());
    };
    let wanted = version.trim().trim_start_matches('v');
    let minor: String = wanted.split('.').take(2).collect::<Vec<_>>().join(".");
    let available = crate::schema::available_versions();
    if wanted.eq_ignore_ascii_case("none") || available.contains(&minor.as_str()) {
        return Ok(());
    }
    Err(undecided(
        format!("--kubernetes-version {version}: no embedded schemas for that version"),
        &format!("available: {}, or none", available.join(", ")),
    ))
}

/// Where this run caches renders (a second check of the same inputs renders nothing), or none
/// with `--no-cache`.
fn render_cache_dir(repo: &git2::Repository, args: &CheckArgs) -> Option<PathBuf> {
    (!args.no_cache).then(|| crate::render::cache::cache_dir(repo, args.cache_dir.as_deref()))
}

fn check_report(cwd: &Path, args: &CheckArgs) -> Report {
    if let Err(report) = check_flags(args) {
        return report;
    }
    // stdin is one stream wherever stategate runs; it names no file of the repository.
    if args.paths.iter().any(|p| p == "-") {
        return loose::check(cwd, args);
    }
    let repo = match open_repo(cwd) {
        Ok(repo) => repo,
        Err(_) if !args.paths.is_empty() => return loose::check(cwd, args),
        Err(e) => {
            return undecided(
                crate::change::explain_git_error(&e.to_string()),
                "run stategate inside a git repository, or name the files to check \
                 (`stategate check FILE|DIR|-`)",
            );
        }
    };
    let Some(workdir) = repo.workdir().map(Path::to_path_buf) else {
        return undecided(
            "this is a bare repository".to_owned(),
            "use `stategate hook pre-receive` on servers, or check a clone",
        );
    };
    let mode = args.mode();
    if let Some(report) = missing_paths(cwd, args, &mode) {
        return report;
    }
    crate::alloc::trace("start");
    // The gate's first look reads only the files detection's glance did not find plain.
    let glance: crate::change::Glance = crate::gate::worth_a_look;
    let change = match detect_changes_glancing(cwd, &mode, &args.paths, Some(glance)) {
        Ok(change) => change,
        Err(e) => {
            return undecided(
                crate::change::explain_git_error(&e.to_string()),
                "check the revisions and paths given",
            );
        }
    };
    crate::alloc::trace("change detected");
    let from = rules_from(&repo, &workdir, args);
    let trusted = match rules_tree(&repo, from) {
        Ok(tree) => tree,
        Err(e) => return undecided(e, "check the revisions given"),
    };
    let trust_note = from.warning();
    let gate = match Gate::open_with(trusted, args.config.as_deref(), |c| apply_flags(args, c)) {
        Ok(gate) => gate
            .with_render_cache(render_cache_dir(&repo, args))
            .with_checked_list(args.format.lists_checked_files())
            // With `--output`, the human report goes to stdout too.
            .with_quoted_sources(args.output.is_some() || args.format.quotes_sources()),
        Err(report) => return report,
    };
    let head = match head_tree(&repo, &workdir, &mode) {
        Ok(tree) => tree,
        Err(e) => return undecided(e, "check the revisions given"),
    };
    let base_commit = repo
        .revparse_single(args.base.as_deref().unwrap_or("HEAD"))
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id())
        .ok();
    let meta = ChangeMeta {
        door: FrontDoor::Check,
        head_tree: head.as_ref(),
        git_ref: None,
        base: args.base.clone(),
        head: args.head.clone(),
        actor: None,
        commits: Vec::new(),
        // No merge is gated here: approvals belong to the push and the PR.
        evidence: Evidence::None,
        live: args.live,
        trusted_commit: base_commit.map(|c| (&repo, c)),
        approved_upstream: false,
        guards_rules: false,
        ack_drift: None,
    };
    let mut report = gate.check_change(&change, &meta).report;
    crate::alloc::trace("checked");
    report.findings.extend(live_without_source(&gate, args));
    report.notes.extend(trust_note.map(str::to_owned));
    report
        .notes
        .extend(uncommitted_config(&gate, &workdir, args));
    report.notes.push(describe(&mode, &change));
    report
}

/// A `.stategate.yaml` in the working tree that HEAD does not have is not used (the rules come
/// from HEAD): say so, and what to do, instead of a bare "using defaults".
fn uncommitted_config(gate: &Gate, workdir: &Path, args: &CheckArgs) -> Option<String> {
    let defaults = matches!(gate.origin, crate::config::ConfigOrigin::Defaults { .. });
    let on_disk = workdir.join(CONFIG_FILE).is_file();
    (defaults && on_disk && args.trust == Trust::Base && args.config.is_none()).then(|| {
        format!(
            "{CONFIG_FILE} in the working tree is not committed, so it is not used (rules come \
             from HEAD): commit it, or try it first with --trust head"
        )
    })
}

/// A path argument that names no file is a mistake, not an empty check (exit 2). Globs may match
/// nothing; a range may name a file it deleted.
fn missing_paths(cwd: &Path, args: &CheckArgs, mode: &ChangeMode) -> Option<Report> {
    if matches!(
        mode,
        ChangeMode::Range { .. } | ChangeMode::All { rev: Some(_) }
    ) {
        return None;
    }
    let missing: Vec<&String> = args
        .paths
        .iter()
        .filter(|p| !p.contains(['*', '?', '[']))
        .filter(|p| cwd.join(p).symlink_metadata().is_err())
        .collect();
    let first = missing.first()?;
    Some(undecided(
        format!("path `{first}` matches no file or directory"),
        "check the path; paths are relative to the current directory",
    ))
}

/// `--live` needs a live source to compare with.
fn live_without_source(gate: &Gate, args: &CheckArgs) -> Option<Finding> {
    (args.live && !crate::drift::has_live_source(&gate.config)).then(|| {
        Finding::error(
            Rule::ConfigInvalid,
            "--live needs a live source (drift.live)",
        )
        .in_file(crate::config::CONFIG_FILE)
        .help("configure drift.live: snapshot, command or argocd (see README, \"Live drift\")")
    })
}

/// The side whose config, schemas and policies judge: the base revision by default.
fn rules_from<'a>(
    repo: &git2::Repository,
    workdir: &'a Path,
    args: &'a CheckArgs,
) -> RulesFrom<'a> {
    if args.trust == Trust::Head {
        return match (&args.base, &args.head) {
            (Some(_), Some(head)) => RulesFrom::Change(ChangeSide::Revision(head)),
            _ => RulesFrom::Change(ChangeSide::WorkingTree(workdir)),
        };
    }
    if repo.head().is_err() && args.base.is_none() {
        return RulesFrom::Nothing("an empty repository (no commits yet)");
    }
    RulesFrom::Revision(args.base.as_deref().unwrap_or("HEAD"))
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
        .map_err(|e| {
            format!(
                "cannot read revision `{rev}`: {}",
                crate::change::explain_git_error(&e.to_string())
            )
        })
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
