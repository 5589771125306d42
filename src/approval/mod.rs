//! Who must approve a change, and whether they did: `approvals:` rules, `protect.admins` for the
//! gate's own rules and `drift.acknowledge_by`, matched here once, with two kinds of evidence:
//! signed commits in a pushed range ([`signed`]) and the reviews of a pull request ([`reviews`]).
//! Front doors only supply the evidence; fetching it (git, the GitHub API) stays with them.

pub mod reviews;
pub mod signed;

use std::path::Path;

use serde_json::Value;

pub use reviews::ApprovalRow;
pub use signed::{
    PushedChange, PushedCommit, Requirement, Unmet, Verified, check_requirement, unmet_finding,
    verify_signatures,
};

use crate::config::ApprovalRule;
use crate::finding::{Finding, Rule};
use crate::tree::Tree;

/// A pull request's reviews, and what judging them needs.
#[derive(Debug, Clone)]
pub struct PrReviews {
    /// The PR's author, who never counts.
    pub author: String,
    /// The commit approvals must be given on (`dismiss_stale`).
    pub head_sha: String,
    /// Every review, oldest first, as the API lists them.
    pub reviews: Vec<Value>,
}

/// What a pull request offers as evidence. The GitHub front door implements it over the API; the
/// engine asks only for what a decision needs, so a PR no rule applies to costs no request.
pub trait PullRequest {
    /// The PR's reviews; `Err` says why they cannot be read (the caller fails closed).
    fn reviews(&self) -> Result<PrReviews, String>;
    /// Whether `user` is an active member of `org/slug`; `Err` says why it cannot be known.
    fn is_member(&self, team: &str, user: &str) -> Result<bool, String>;
}

/// Where approvals come from, per front door.
#[derive(Clone, Copy)]
pub enum Evidence<'a> {
    /// No merge is gated (`stategate check`): approvals are not judged.
    None,
    /// Signed commits in the pushed range.
    Signed {
        change: PushedChange<'a>,
        git_dir: &'a Path,
    },
    /// The reviews of a pull request.
    Reviews(&'a dyn PullRequest),
}

/// One requirement, whatever config section it comes from.
pub struct Need<'a> {
    /// The name of the comment's approval row: the rule's name, `protect.admins`, ….
    pub name: String,
    /// How a finding names it: "approval rule `prod`".
    pub what: String,
    /// The rule code of an unmet finding.
    pub rule: Rule,
    pub from: &'a [String],
    pub required: u32,
    pub allowed_signers: Option<&'a str>,
    pub dismiss_stale: bool,
    /// The touched paths it applies to (`codeowners` entries are resolved for these).
    pub paths: Vec<String>,
}

impl<'a> Need<'a> {
    /// An `approvals:` rule, for the touched paths it matches.
    pub fn of_rule(rule: &'a ApprovalRule, paths: Vec<String>) -> Need<'a> {
        Need {
            name: rule.name.clone(),
            what: format!("approval rule `{}`", rule.name),
            rule: Rule::ApprovalMissing,
            from: &rule.from,
            required: rule.required,
            allowed_signers: rule.allowed_signers.as_deref(),
            dismiss_stale: rule.dismiss_stale,
            paths,
        }
    }

    fn requirement(&self) -> Requirement<'a> {
        Requirement {
            from: self.from,
            required: self.required,
            allowed_signers: self.allowed_signers,
        }
    }
}

/// The approval rules the impacted paths touch, each with the paths it matched. An unreadable
/// glob is a finding: the rule cannot be decided, so the change is not waved through.
pub fn applicable<'r>(
    rules: &'r [ApprovalRule],
    impacted: &[String],
) -> (Vec<Need<'r>>, Vec<Finding>) {
    let mut needs = Vec::new();
    let mut findings = Vec::new();
    for rule in rules {
        let Ok(set) = crate::paths::glob_set(&rule.paths) else {
            findings.push(
                Finding::error(
                    Rule::ConfigInvalid,
                    format!("approval rule `{}` has an invalid path glob", rule.name),
                )
                .in_file(crate::config::CONFIG_FILE),
            );
            continue;
        };
        let paths: Vec<String> = impacted
            .iter()
            .filter(|p| set.is_match(p))
            .cloned()
            .collect();
        if !paths.is_empty() {
            needs.push(Need::of_rule(rule, paths));
        }
    }
    (needs, findings)
}

/// The decision on one requirement.
#[derive(Debug, Default)]
pub struct Decision {
    /// The approvers, when the requirement is met.
    pub met_by: Option<Vec<String>>,
    /// Why it is not met (or cannot be decided).
    pub finding: Option<Finding>,
    /// The comment's row (reviews only).
    pub row: Option<ApprovalRow>,
}

/// Decide one requirement from the evidence. `trusted` is the base the rules come from: the
/// allowed_signers file and CODEOWNERS are read there, never from the change.
pub fn decide(need: &Need<'_>, evidence: Evidence<'_>, trusted: &dyn Tree) -> Decision {
    match evidence {
        Evidence::None => Decision::default(),
        Evidence::Signed { change, git_dir } => {
            let requirement = need.requirement();
            match check_requirement(&requirement, change, trusted, git_dir) {
                Ok(approvers) => Decision {
                    met_by: Some(approvers.into_iter().collect()),
                    ..Decision::default()
                },
                Err(unmet) => Decision {
                    finding: Some(unmet_finding(need.rule, &need.what, &requirement, &unmet)),
                    ..Decision::default()
                },
            }
        }
        Evidence::Reviews(pr) => reviews::decide(need, pr, trusted),
    }
}
