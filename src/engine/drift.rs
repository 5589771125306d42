//! Live drift and promotion order of a change, and their acknowledgements: a PR approval or a
//! signed approval from `drift.acknowledge_by` (through the one approval matcher), or, on a push,
//! `-o stategate.ack-drift="why"` by a listed user (audited like the bypass).

use super::{ChangeMeta, FrontDoor};
use crate::approval::{self, ApprovalRow, Evidence, Need};
use crate::change::ChangeSet;
use crate::drift::{Acknowledgement, ChangeContext, DriftReport, acknowledge, check_change};
use crate::finding::{Finding, Rule, Severity};
use crate::gate::Gate;

/// The push option that acknowledges drift.
pub const ACK_DRIFT_OPTION: &str = "stategate.ack-drift";

/// The drift judgement of a change; `None` when the config asks for none. Snapshots and the other
/// environments come from the trusted base, never from the change.
pub fn judge_change(gate: &Gate, change: &ChangeSet, meta: &ChangeMeta<'_>) -> Option<DriftReport> {
    let config = &gate.config;
    if !crate::drift::applies(config, meta.live) {
        return None;
    }
    let file_time = |path: &str| {
        meta.trusted_commit
            .and_then(|(repo, commit)| crate::drift::live::git_file_time(repo, commit, path))
    };
    let environment_of = |path: &str| gate.environment_of(path).map(str::to_owned);
    Some(check_change(&ChangeContext {
        config,
        change,
        base: gate.trusted(),
        file_time: &file_time,
        environment_of: &environment_of,
        live: meta.live,
    }))
}

/// The report's findings after the change's acknowledgements; the acknowledgement rows join the
/// approval table on a PR.
pub fn findings(
    gate: &Gate,
    report: Option<DriftReport>,
    meta: &ChangeMeta<'_>,
    rows: &mut Vec<ApprovalRow>,
) -> Vec<Finding> {
    let Some(mut report) = report else {
        return Vec::new();
    };
    let drift = &gate.config.drift;
    if let (FrontDoor::Push, Some(reason)) = (meta.door, meta.ack_drift) {
        let refused = push_option(&mut report, gate, reason, meta.actor.as_deref());
        report.findings.extend(refused);
    }
    let skip_by: Vec<String> = drift
        .promote
        .iter()
        .flat_map(|r| r.skip_by.iter().cloned())
        .collect();
    for (rule, from, name) in [
        (
            Rule::DriftLive,
            &drift.acknowledge_by,
            "drift.acknowledge_by",
        ),
        (Rule::DriftPromotion, &skip_by, "drift.promote.skip_by"),
    ] {
        let blocking = report
            .findings
            .iter()
            .any(|f| f.rule == rule && f.severity == Severity::Error);
        // Signed approvals need the signers file that proves them.
        let signed = matches!(meta.evidence, Evidence::Signed { .. });
        if !blocking || from.is_empty() || (signed && drift.allowed_signers.is_none()) {
            continue;
        }
        let need = Need {
            name: name.to_owned(),
            what: name.to_owned(),
            rule,
            from,
            required: 1,
            allowed_signers: drift.allowed_signers.as_deref(),
            dismiss_stale: true,
            paths: Vec::new(),
        };
        let decision = approval::decide(&need, meta.evidence, gate.trusted());
        if let Some(row) = decision.row.filter(|r| r.satisfied()) {
            rows.push(row);
        }
        let Some(approvers) = decision.met_by else {
            // Unacknowledged drift blocks through its own findings; a review that could not be
            // read says why.
            if let Some(f) = decision.finding.filter(|f| f.rule == Rule::GateInternal) {
                report.findings.push(f);
            }
            continue;
        };
        let by = approvers.join(", ");
        let how = match meta.evidence {
            Evidence::Reviews(_) => "PR approval",
            _ => "signed approval",
        };
        match rule {
            Rule::DriftPromotion => report.acknowledge_promotion(&by, how),
            _ => acknowledge(
                &mut report.findings,
                rule,
                Some(&Acknowledgement {
                    by: by.clone(),
                    how: how.to_owned(),
                }),
            ),
        }
    }
    report.findings
}

/// `-o stategate.ack-drift="why"`: honoured for `drift.acknowledge_by` (drift) and a rule's
/// `promote.skip_by` (its promotions); otherwise a warning says why not.
fn push_option(
    report: &mut DriftReport,
    gate: &Gate,
    reason: &str,
    actor: Option<&str>,
) -> Option<Finding> {
    let drift = &gate.config.drift;
    let name = actor.unwrap_or("an unknown user");
    let refused = |why: String| {
        Some(Finding::warning(
            Rule::DriftLive,
            format!("drift acknowledgement refused: {why}; the push is judged normally"),
        ))
    };
    if reason.is_empty() {
        return refused(format!(
            "an acknowledgement needs a reason: -o {ACK_DRIFT_OPTION}=\"why\""
        ));
    }
    let how = format!("-o {ACK_DRIFT_OPTION}: {reason}");
    let listed = actor.is_some() && drift.acknowledge_by.iter().any(|u| u == name);
    let skips = actor.is_some()
        && drift
            .promote
            .iter()
            .any(|r| r.skip_by.iter().any(|u| u == name));
    if listed {
        let ack = Acknowledgement {
            by: name.to_owned(),
            how: how.clone(),
        };
        acknowledge(&mut report.findings, Rule::DriftLive, Some(&ack));
    }
    if skips {
        report.acknowledge_promotion(name, &how);
    }
    if listed || skips {
        return None;
    }
    refused(format!(
        "{name} is not in drift.acknowledge_by or a promote.skip_by"
    ))
}
