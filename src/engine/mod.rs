//! [`Gate::check_change`]: the one judgement of a change that every front door (`stategate
//! check`, the pre-receive hook, `stategate github pr`) calls. It runs the document checks, the
//! change policies, the guard on the gate's own rules (`protect.admins`), the approval rules and
//! live drift; [`ChangeMeta`] carries only what differs per front door (who, which ref, and where
//! approvals come from).
//!
//! Ref protection (force pushes, deletions, `hook.refs`) stays with the hook: it is about moving
//! refs, judged even when there is no change (a deletion).

pub mod change_input;
pub mod drift;

use git2::{Oid, Repository};

use crate::approval::{self, ApprovalRow, Evidence, Need};
use crate::change::ChangeSet;
use crate::finding::{Finding, Rule};
use crate::gate::{Gate, Impact};
use crate::policy::CommitInput;
use crate::report::Report;
use crate::tree::Tree;

/// Which front door asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontDoor {
    Check,
    Push,
    PullRequest,
}

/// What differs per front door.
pub struct ChangeMeta<'a> {
    pub door: FrontDoor,
    /// The tree the change produces (kustomizations are looked up there).
    pub head_tree: &'a dyn Tree,
    /// The ref the change lands on (`input.ref` of change policies).
    pub git_ref: Option<String>,
    pub base: Option<String>,
    pub head: Option<String>,
    /// Who makes the change: the pusher, the PR's author.
    pub actor: Option<String>,
    /// The change's commits (`input.commits`).
    pub commits: Vec<CommitInput>,
    /// Where approvals come from.
    pub evidence: Evidence<'a>,
    /// Read the live state of the touched objects (`check --live`, `drift.hook`, a PR with a live
    /// source); promotion order is judged either way.
    pub live: bool,
    /// The trusted base as a commit of its repository (snapshot ages); `None` when the rules come
    /// from a directory.
    pub trusted_commit: Option<(&'a Repository, Oid)>,
    /// The rules come from the repository (not a server-side directory), so a change to them
    /// needs `protect.admins`.
    pub guards_rules: bool,
    /// The merge of a pull request (GHES): the Action's required check enforced the approval rules
    /// and `protect.admins` with reviews, so they are not asked again as signatures.
    pub approved_upstream: bool,
    /// `-o stategate.ack-drift="why"` of a push.
    pub ack_drift: Option<&'a str>,
}

/// What [`Gate::check_change`] found.
pub struct Judgement {
    pub report: Report,
    /// The paths the change reaches (for the environments it touches).
    pub impact: Impact,
    /// One row per approval requirement that applies (PR reviews only).
    pub approvals: Vec<ApprovalRow>,
}

impl Gate {
    /// Judge a change with everything that applies to it; see the module.
    pub fn check_change(&self, change: &ChangeSet, meta: &ChangeMeta<'_>) -> Judgement {
        let (mut report, impact) = self.check_with_impact(change, meta.head_tree);
        let drift = drift::judge_change(self, change, meta);
        report.findings.extend(change_input::change_policies(
            self,
            change,
            meta,
            drift.as_ref(),
        ));
        let mut approvals = Vec::new();
        report
            .findings
            .extend(self.guard_rules(change, meta, &mut approvals));
        if !meta.approved_upstream && !matches!(meta.evidence, Evidence::None) {
            // Changed files, and the overlays whose rendered objects the change alters: a base
            // edit that changes prod's objects needs prod's approvals. Listed only here: a copy of
            // every changed path is megabytes on a large change that no approval rule reads.
            let mut impacted: Vec<String> = impact
                .paths(change)
                .into_iter()
                .map(str::to_owned)
                .collect();
            impacted.extend(change.skipped.iter().map(|s| s.path.clone()));
            let (needs, invalid) = approval::applicable(&self.config.approvals, &impacted);
            report.findings.extend(invalid);
            for need in &needs {
                let decision = approval::decide(need, meta.evidence, self.trusted());
                report.findings.extend(decision.finding);
                approvals.extend(decision.row);
            }
        }
        report
            .findings
            .extend(drift::findings(self, drift, meta, &mut approvals));
        Judgement {
            report,
            impact,
            approvals,
        }
    }

    /// Changes to the gate's own rules (read from the repository, not a server-side directory)
    /// need the approval of `protect.admins`; without admins, a change that takes the rules away
    /// entirely is refused.
    fn guard_rules(
        &self,
        change: &ChangeSet,
        meta: &ChangeMeta<'_>,
        rows: &mut Vec<ApprovalRow>,
    ) -> Vec<Finding> {
        if !meta.guards_rules || matches!(meta.evidence, Evidence::None) {
            return Vec::new();
        }
        let config = &self.config;
        // Matched as they are listed: a list of every touched path was 1.6 MB of a
        // 100,000-file check, and most checks return above without reading it.
        let touched = match crate::protect::changed_trust_paths(config, change.touched_paths()) {
            Ok(touched) => touched,
            Err(finding) => return vec![*finding],
        };
        if touched.is_empty() {
            return Vec::new();
        }
        let shown = {
            let mut shown: Vec<&str> = touched.iter().copied().take(5).collect();
            if touched.len() > 5 {
                shown.push("…");
            }
            shown.join(", ")
        };
        let Some(admins) = &config.protect.admins else {
            return crate::protect::removes_the_rules(config, self.trusted(), meta.head_tree)
                .map(|why| {
                    Finding::error(
                        Rule::ProtectTrustPaths,
                        format!("this change removes the gate's own rules: {why} ({shown})"),
                    )
                    .help(
                        "configure who may change the rules, then have one of them sign an approval: \
                         protect.admins: {from: [\"alice\"], allowed_signers: .stategate/allowed_signers} in .stategate.yaml",
                    )
                })
                .into_iter()
                .collect();
        };
        let need = Need {
            name: "protect.admins".to_owned(),
            what: format!("a change to the gate's own rules ({shown}): protect.admins"),
            rule: Rule::ProtectTrustPaths,
            from: &admins.from,
            required: admins.required,
            allowed_signers: admins.allowed_signers.as_deref(),
            dismiss_stale: true,
            paths: touched.iter().map(|p| (*p).to_owned()).collect(),
        };
        if meta.approved_upstream {
            return Vec::new();
        }
        let decision = approval::decide(&need, meta.evidence, self.trusted());
        rows.extend(decision.row);
        decision.finding.into_iter().collect()
    }
}
