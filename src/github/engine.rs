//! The one place the GitHub front door calls the engine. Everything GitHub-specific (events,
//! the API, comments, checks) stays outside; this file only turns "base and head commits of a
//! local clone" plus the PR's evidence into [`Gate::check_change`]'s judgement and a dry-run diff.
//!
//! Trust rule: config, policies, CRDs and CODEOWNERS come from the base commit (`Gate::open` on
//! the base tree), so a PR that edits `policies/` is still judged by the base's policies.

use std::path::Path;

use crate::approval::{ApprovalRow, Evidence};
use crate::change::{ChangeMode, detect_changes_in, open_repo};
use crate::config::Config;
use crate::diff::format::{MarkdownOptions, markdown};
use crate::diff::{DiffOptions, DiffResult, diff_change};
use crate::engine::{ChangeMeta, FrontDoor};
use crate::finding::{Finding, Rule};
use crate::gate::Gate;
use crate::render::cache::{DEFAULT_MAX_BYTES, RenderCache, cache_dir};
use crate::report::Report;
use crate::tree::GitTree;
use crate::trust::{RulesFrom, rules_tree};

/// What the engine says about one PR range.
pub struct Judged {
    /// Every check of the change, judged by the base's rules.
    pub report: Report,
    /// The base's config: `drift.up_to_date`, environments.
    pub config: Config,
    /// Environments the change reaches (changed paths and rendered objects).
    pub environments: Vec<String>,
    /// One row per approval requirement that applies.
    pub approvals: Vec<ApprovalRow>,
    /// The dry-run diff; [`Judged::diff_markdown`] renders it.
    diff: DiffResult,
}

/// Judge `head` against `base` (both commits of the repository at `repo_dir`), with the PR's
/// reviews as approval evidence. `Err` is a report that says why the gate could not decide.
pub fn judge(
    repo_dir: &Path,
    base: &str,
    head: &str,
    evidence: Evidence<'_>,
) -> Result<Judged, Report> {
    let repo = open_repo(repo_dir).map_err(|e| undecided(e.to_string()))?;
    let open = |rev: &str| {
        GitTree::open(&repo, rev)
            .map_err(|e| undecided(format!("cannot read revision `{rev}`: {}", e.message())))
    };
    let head_tree = open(head)?;
    // The trust rule: the PR's base judges it.
    let rules = rules_tree(&repo, RulesFrom::Revision(base)).map_err(undecided)?;
    // One render cache for the check and the diff: a root the check rendered is not rendered
    // again for the diff. `STATEGATE_CACHE_DIR` lets the Action persist it between runs.
    let cache = Some(cache_dir(&repo, None));
    let gate = Gate::open(rules, None)?.with_render_cache(cache.clone());
    let mode = ChangeMode::Range {
        base: base.to_owned(),
        head: head.to_owned(),
    };
    let change = detect_changes_in(&repo, &mode, &[]).map_err(|e| undecided(e.to_string()))?;
    let base_commit = repo
        .revparse_single(base)
        .and_then(|o| o.peel_to_commit())
        .map(|c| c.id())
        .ok();
    let meta = ChangeMeta {
        door: FrontDoor::PullRequest,
        head_tree: &head_tree,
        git_ref: None,
        base: Some(base.to_owned()),
        head: Some(head.to_owned()),
        actor: None,
        commits: Vec::new(),
        evidence,
        // A live source in the config judges every PR; snapshots need no cluster credentials.
        live: crate::drift::has_live_source(&gate.config),
        trusted_commit: base_commit.map(|c| (&repo, c)),
        approved_upstream: false,
        guards_rules: true,
        ack_drift: None,
    };
    let judgement = gate.check_change(&change, &meta);
    let mut report = judgement.report;
    // The change is judged from the merge base, so the diff's base side is the merge base too.
    let merge_base = open(change.base.as_deref().unwrap_or(base))?;
    let diff = diff_change(
        &change,
        &merge_base,
        &head_tree,
        &gate.config,
        &DiffOptions {
            cache: cache.and_then(|dir| RenderCache::open(dir, DEFAULT_MAX_BYTES)),
            ..DiffOptions::default()
        },
    );
    let mut environments: Vec<String> = judgement
        .impact
        .paths(&change)
        .into_iter()
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
    Ok(Judged {
        report,
        config: gate.config.clone(),
        environments,
        approvals: judgement.approvals,
        diff,
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

fn undecided(message: String) -> Report {
    Report {
        findings: vec![Finding::error(Rule::GateInternal, message).help(
            "check that the workflow checks out the PR with enough history (fetch-depth: 0)",
        )],
        ..Report::default()
    }
}
