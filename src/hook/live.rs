//! Live drift and promotion at push time (`drift.hook`, `drift.promote`), and their push-time
//! acknowledgements: `-o stategate.ack-drift="why"` by a listed user (audited like the bypass), or a
//! signed approval from `drift.acknowledge_by` verified against `drift.allowed_signers`.

use git2::{Oid, Repository};

use super::{ACK_DRIFT_OPTION, PushContext};
use crate::approval::{PushedChange, Requirement, check_requirement};
use crate::change::ChangeSet;
use crate::drift::{Acknowledgement, ChangeContext, DriftReport, acknowledge, check_change};
use crate::finding::{Finding, Rule, Severity};
use crate::gate::Gate;

/// The drift judgement of a pushed change; `None` when the config asks for none. Snapshots and the
/// other environments come from the trusted base, never from the push.
pub fn judge_change(
    repo: &Repository,
    gate: &Gate,
    change: &ChangeSet,
    trusted_commit: Option<Oid>,
) -> Option<DriftReport> {
    let config = &gate.config;
    if !crate::drift::applies(config, config.drift.hook) {
        return None;
    }
    let file_time =
        |path: &str| trusted_commit.and_then(|c| crate::drift::live::git_file_time(repo, c, path));
    let environment_of = |path: &str| gate.environment_of(path).map(str::to_owned);
    Some(check_change(&ChangeContext {
        config,
        change,
        base: gate.trusted(),
        file_time: &file_time,
        environment_of: &environment_of,
        live: config.drift.hook,
    }))
}

/// The report's findings after the push's acknowledgements.
pub fn findings(
    repo: &Repository,
    gate: &Gate,
    report: Option<DriftReport>,
    pushed: PushedChange<'_>,
    ctx: &PushContext,
) -> Vec<Finding> {
    let Some(mut report) = report else {
        return Vec::new();
    };
    let drift = &gate.config.drift;
    if let Some(reason) = &ctx.ack_drift {
        let refused = push_option(&mut report, gate, reason, ctx);
        report.findings.extend(refused);
    }
    let skip_by: Vec<String> = drift
        .promote
        .iter()
        .flat_map(|r| r.skip_by.iter().cloned())
        .collect();
    for (rule, from) in [
        (Rule::DriftLive, &drift.acknowledge_by),
        (Rule::DriftPromotion, &skip_by),
    ] {
        let blocking = report
            .findings
            .iter()
            .any(|f| f.rule == rule && f.severity == Severity::Error);
        if !blocking || from.is_empty() || drift.allowed_signers.is_none() {
            continue;
        }
        let requirement = Requirement {
            from,
            required: 1,
            allowed_signers: drift.allowed_signers.as_deref(),
        };
        if let Ok(approvers) = check_requirement(&requirement, pushed, gate.trusted(), repo.path())
        {
            let by = approvers.into_iter().collect::<Vec<_>>().join(", ");
            let ack = Acknowledgement {
                by: by.clone(),
                how: "signed approval".to_owned(),
            };
            match rule {
                Rule::DriftPromotion => report.acknowledge_promotion(&by, "signed approval"),
                _ => acknowledge(&mut report.findings, rule, Some(&ack)),
            }
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
    ctx: &PushContext,
) -> Option<Finding> {
    let drift = &gate.config.drift;
    let actor = ctx.actor.as_deref().unwrap_or("an unknown user");
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
    let listed = ctx.actor.is_some() && drift.acknowledge_by.iter().any(|u| u == actor);
    let skips = ctx.actor.is_some()
        && drift
            .promote
            .iter()
            .any(|r| r.skip_by.iter().any(|u| u == actor));
    if listed {
        let ack = Acknowledgement {
            by: actor.to_owned(),
            how: how.clone(),
        };
        acknowledge(&mut report.findings, Rule::DriftLive, Some(&ack));
    }
    if skips {
        report.acknowledge_promotion(actor, &how);
    }
    if listed || skips {
        return None;
    }
    refused(format!(
        "{actor} is not in drift.acknowledge_by or a promote.skip_by"
    ))
}
