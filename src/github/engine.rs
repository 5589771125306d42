//! The one place the GitHub front door calls the engine. Everything GitHub-specific (events,
//! reviews, comments, checks) stays outside; this file only turns "base and head commits of a
//! local clone" into a report, a dry-run diff and the facts the PR rules need.
//!
//! Trust rule: config, policies, CRDs and CODEOWNERS come from the base commit (`Gate::open` on
//! the base tree), so a PR that edits `policies/` is still judged by the base's policies.
//!
//! Seam for the engine refactor (issue 9): what the rest of `github/` needs from here is only
//! [`judge`] → [`Judged`] (`report`, `config`, `changed`, `environments`, `codeowners`,
//! [`Judged::diff_markdown`], [`Judged::diff_index`]) plus [`approval_rules_touched`] and
//! [`glob_set`]. Once `Gate::check_change(&ChangeSet, ChangeMeta)` and the trust helper exist,
//! `judge` becomes: trust helper → base tree; `check_change` with `ChangeMeta { reviews, author }`
//! (so change policies see `input.reviews`, which this front door does not run yet); the
//! rendered-impact paths and the relocation of rendered findings below move into the engine.

use std::path::Path;

use crate::change::{ChangeMode, detect_changes_in, open_repo};
use crate::config::{ApprovalRule, Config};
use crate::diff::format::{MarkdownOptions, markdown};
use crate::diff::{DiffOptions, DiffResult, diff_trees};
use crate::finding::{Finding, Location, Rule};
use crate::gate::Gate;
use crate::report::Report;
use crate::tree::{GitTree, Tree};
use crate::trust::{RulesFrom, rules_tree};

/// What the engine says about one PR range.
pub struct Judged {
    /// Document checks of the changed files, judged by the base's rules.
    pub report: Report,
    /// The base's config: approvals, `drift.up_to_date`, environments.
    pub config: Config,
    /// Every changed path (both sides of a rename), plus the files of each rendered directory
    /// whose output changed: a base change that alters prod's rendered objects touches prod.
    pub changed: Vec<String>,
    /// Environments the changed paths belong to.
    pub environments: Vec<String>,
    /// The dry-run diff; [`Judged::diff_markdown`] renders it.
    diff: DiffResult,
    /// `CODEOWNERS` of the base, if any: `.github/`, the root, then `docs/`.
    pub codeowners: Option<String>,
}

/// Judge `head` against `base` (both commits of the repository at `repo_dir`).
/// `Err` is a report that says why the gate could not decide.
pub fn judge(repo_dir: &Path, base: &str, head: &str) -> Result<Judged, Report> {
    let repo = open_repo(repo_dir).map_err(|e| undecided(e.to_string()))?;
    let open = |rev: &str| {
        GitTree::open(&repo, rev)
            .map_err(|e| undecided(format!("cannot read revision `{rev}`: {}", e.message())))
    };
    let base_tree = open(base)?;
    let head_tree = open(head)?;
    // The trust rule: the PR's base judges it.
    let rules = rules_tree(&repo, RulesFrom::Revision(base)).map_err(undecided)?;
    let gate = Gate::open(rules, None)?;
    let mode = ChangeMode::Range {
        base: base.to_owned(),
        head: head.to_owned(),
    };
    let change = detect_changes_in(&repo, &mode, &[]).map_err(|e| undecided(e.to_string()))?;
    let mut report = gate.check(&change, &head_tree);
    let mut changed: Vec<String> = Vec::new();
    for file in &change.files {
        changed.push(file.path.clone());
        changed.extend(file.old_path.clone());
    }
    changed.extend(change.skipped.iter().map(|s| s.path.clone()));
    let diff = diff_trees(
        &base_tree,
        &head_tree,
        &gate.config,
        &DiffOptions::default(),
    );
    relocate_rendered(&mut report.findings, &diff, &head_tree);
    changed.extend(rendered_impact(&diff, &head_tree));
    changed.sort();
    changed.dedup();
    let mut environments: Vec<String> = changed
        .iter()
        .filter_map(|p| gate.environment_of(p).map(str::to_owned))
        .collect();
    environments.extend(diff.objects.iter().filter_map(|o| o.environment.clone()));
    environments.sort();
    environments.dedup();
    for finding in &diff.findings {
        // Rendering runs in both; say a failure once.
        if !report.findings.contains(finding) {
            report.findings.push(finding.clone());
        }
    }
    let codeowners = [".github/CODEOWNERS", "CODEOWNERS", "docs/CODEOWNERS"]
        .iter()
        .find_map(|p| base_tree.read(p))
        .map(|b| String::from_utf8_lossy(&b).into_owned());
    Ok(Judged {
        report,
        config: gate.config.clone(),
        changed,
        environments,
        diff,
        codeowners,
    })
}

impl Judged {
    /// The dry-run diff as markdown within `limit` characters (the existing renderer says what
    /// it left out and where to find it).
    pub fn diff_markdown(&self, limit: usize) -> String {
        markdown(
            &self.diff,
            &MarkdownOptions {
                limit,
                full_diff_at: "the workflow run's job summary".into(),
            },
        )
    }

    /// One line per object of the diff (`added · ConfigMap apps/x (file)`): what the job summary
    /// lists when the whole diff does not fit its 1 MiB.
    pub fn diff_index(&self) -> Vec<String> {
        self.diff
            .objects
            .iter()
            .filter(|o| o.status != crate::diff::Status::Unchanged)
            .map(|o| {
                let file = o
                    .head
                    .as_ref()
                    .or(o.base.as_ref())
                    .map(|s| s.file())
                    .unwrap_or_default();
                format!(
                    "{} · {} ({file})",
                    o.status.as_str(),
                    crate::diff::format::label(&o.id)
                )
            })
            .collect()
    }
}

/// The approval rules whose paths the change touches.
pub fn approval_rules_touched<'c>(config: &'c Config, changed: &[String]) -> Vec<&'c ApprovalRule> {
    config
        .approvals
        .iter()
        .filter(|rule| match crate::paths::glob_set(&rule.paths) {
            Ok(set) => changed.iter().any(|p| set.is_match(p)),
            // An unreadable rule applies: the caller reports it and fails closed.
            Err(_) => true,
        })
        .collect()
}

/// The files of every rendered directory (kustomization, chart) with a changed object.
fn rendered_impact(diff: &DiffResult, head: &dyn Tree) -> Vec<String> {
    let mut dirs: Vec<&str> = diff
        .objects
        .iter()
        .filter(|o| o.status != crate::diff::Status::Unchanged)
        .flat_map(|o| [o.base.as_ref(), o.head.as_ref()])
        .flatten()
        .filter(|source| source.rendered_by.is_some())
        .map(|source| source.path.as_str())
        .collect();
    dirs.sort_unstable();
    dirs.dedup();
    dirs.iter().flat_map(|dir| head.files_under(dir)).collect()
}

/// Findings on rendered objects point at a pseudo-path (`app (rendered by kustomize: ID)`) that
/// no annotation can use: move them to the file kustomize read the object from, at the line that
/// names it, and keep where it was rendered in the message.
fn relocate_rendered(findings: &mut [Finding], diff: &DiffResult, head: &dyn Tree) {
    const MARK: &str = " (rendered by kustomize: ";
    for finding in findings {
        let Some(location) = &finding.location else {
            continue;
        };
        let Some((dir, rest)) = location.file.split_once(MARK) else {
            continue;
        };
        let id = rest.trim_end_matches(')');
        let Some(object) = diff.objects.iter().find(|o| o.id.to_string() == id) else {
            continue;
        };
        let Some(origin) = object.head.as_ref().and_then(|s| s.origin.clone()) else {
            continue;
        };
        let line = match &object.id {
            crate::object::ObjectId::Kube { name, .. } => head
                .read(&origin)
                .and_then(|bytes| line_naming(&bytes, name)),
            crate::object::ObjectId::Document { .. } => None,
        };
        finding.message = format!("{} (as rendered by kustomize in {dir})", finding.message);
        finding.location = Some(Location {
            line,
            ..Location::file(origin)
        });
    }
}

/// The 1-based line of `name: NAME` in a YAML file.
fn line_naming(bytes: &[u8], name: &str) -> Option<u32> {
    let text = String::from_utf8_lossy(bytes);
    let wanted = [
        format!("name: {name}"),
        format!("name: \"{name}\""),
        format!("name: '{name}'"),
    ];
    text.lines()
        .position(|l| wanted.iter().any(|w| l.trim() == w))
        .and_then(|i| u32::try_from(i + 1).ok())
}

fn undecided(message: String) -> Report {
    Report {
        findings: vec![Finding::error(Rule::GateInternal, message).help(
            "check that the workflow checks out the PR with enough history (fetch-depth: 0)",
        )],
        ..Report::default()
    }
}
