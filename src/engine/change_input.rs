//! Change policies (`package stategate.change`) judge a whole change at once; this builds their
//! input the same way for every front door.

use std::path::Path;

use rayon::prelude::*;
use serde_json::Value;

use super::ChangeMeta;
use crate::approval::Evidence;
use crate::change::{ChangeSet, unreadable_finding};
use crate::drift::DriftReport;
use crate::finding::{Finding, Rule};
use crate::gate::Gate;
use crate::load::load_manifest;
use crate::policy::{ChangeInput, ChangedFile, ReviewInput};

/// Run the trusted change policies on the change; none when no trusted policy declares the
/// change package (building the input loads every changed file twice).
pub fn change_policies(
    gate: &Gate,
    change: &ChangeSet,
    meta: &ChangeMeta<'_>,
    drift: Option<&DriftReport>,
) -> Vec<Finding> {
    if !has_change_policies(gate, meta) {
        return Vec::new();
    }
    let reviews = match reviews(meta) {
        Ok(reviews) => reviews,
        Err(finding) => return vec![*finding],
    };
    let options = gate.config.load_options();
    let files: Result<Vec<ChangedFile>, Box<Finding>> = change
        .files
        .par_iter()
        .map(|file| {
            let docs = |bytes: Option<Vec<u8>>| -> Vec<Value> {
                bytes
                    .map(|b| {
                        load_manifest(&file.path, &b, &options)
                            .documents
                            .into_iter()
                            .map(|d| d.value)
                            .collect()
                    })
                    .unwrap_or_default()
            };
            // A policy must not judge a side it was not shown: an unreadable one fails closed.
            let read = |side: Result<Option<Vec<u8>>, _>| {
                side.map_err(|why| Box::new(unreadable_finding(&why)))
            };
            Ok(ChangedFile {
                path: file.path.to_string(),
                action: file.action(),
                environment: gate.environment_of(&file.path).map(str::to_owned),
                before: docs(read(file.read_before())?),
                after: docs(read(file.read_after())?),
            })
        })
        .collect();
    let files = match files {
        Ok(files) => files,
        Err(finding) => return vec![*finding],
    };
    let input = ChangeInput {
        git_ref: meta.git_ref.clone(),
        base: meta.base.clone(),
        head: meta.head.clone(),
        actor: meta.actor.clone(),
        files,
        commits: meta.commits.clone(),
        reviews,
        live: drift.map(|d| d.policy_live()).unwrap_or_default(),
        promotion: drift.map(|d| d.policy_promotion()).unwrap_or_default(),
    };
    // The gate compiled the trusted policies when it opened; a broken one already stopped it.
    gate.policies().check_change(&input)
}

/// `input.reviews`: every review of the PR (user, state, commit), oldest first, as GitHub lists them. A policy
/// that reads reviews must not see an empty list because they could not be fetched: that fails
/// closed.
fn reviews(meta: &ChangeMeta<'_>) -> Result<Vec<ReviewInput>, Box<Finding>> {
    let Evidence::Reviews(pr) = meta.evidence else {
        return Ok(Vec::new());
    };
    let raw = pr.reviews().map_err(|why| {
        Box::new(
            Finding::error(
                Rule::GateInternal,
                format!("cannot read the PR's reviews for the change policies: {why}"),
            )
            .help("check the workflow's `permissions:` and the token passed as `github-token`"),
        )
    })?;
    Ok(raw
        .reviews
        .iter()
        .filter_map(|review| {
            Some(ReviewInput {
                user: review.pointer("/user/login")?.as_str()?.to_owned(),
                state: review.get("state")?.as_str()?.to_owned(),
                commit: review
                    .get("commit_id")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
            })
        })
        .collect())
}

/// Whether a trusted policy declares the change package.
fn has_change_policies(gate: &Gate, meta: &ChangeMeta<'_>) -> bool {
    // Listing a directory of a git tree walks the whole tree; look the root up first.
    let root_exists = |root: &str| {
        meta.trusted_commit.is_none_or(|(repo, commit)| {
            repo.find_commit(commit)
                .and_then(|c| c.tree())
                .is_ok_and(|tree| root.is_empty() || tree.get_path(Path::new(root)).is_ok())
        })
    };
    let trusted = gate.trusted();
    gate.config.policies.paths.iter().any(|root| {
        let root = root.trim_end_matches('/');
        if !root_exists(root) {
            return false;
        }
        let files = trusted.files_under(root);
        files.iter().filter(|p| p.ends_with(".rego")).any(|p| {
            trusted.read(p).is_some_and(|text| {
                String::from_utf8_lossy(&text).contains(crate::policy::CHANGE_PACKAGE)
            })
        })
    })
}
