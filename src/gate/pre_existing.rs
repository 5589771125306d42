//! Findings the base already had: the base side of a change judged as a change of its own, and
//! what makes a finding at head "the same" as one there.

use std::collections::HashMap;

use crate::change::{Action, ChangeSet, FileChange};
use crate::finding::{Finding, Rule};
use crate::object::ObjectId;

/// The base side of a change as a change of its own: every touched file as it was at the base,
/// as if added (no `before`), so that judging it finds what the base already had.
pub(super) fn base_side(change: &ChangeSet) -> ChangeSet {
    let files = change
        .files
        .iter()
        .filter(|f| f.action() != Action::Deleted)
        .filter_map(|f| {
            let path = f.old_path().unwrap_or(&f.path);
            Some(FileChange::new(
                path,
                Action::Added,
                None,
                Some(f.before()?.clone()),
            ))
        })
        .collect();
    ChangeSet {
        base: None,
        head: change.base.clone(),
        files,
        skipped: Vec::new(),
    }
}

/// Old path → new path of the change's renames, so a document keeps its identity across one.
pub(super) fn renamed_paths(change: &ChangeSet) -> HashMap<String, String> {
    change
        .renames()
        .map(|(old, new)| (old.to_owned(), new.to_owned()))
        .collect()
}

/// What makes a finding at head "the same" as one at the base: the rule, what it is about (the
/// object, or the file for findings on no object) and where in it (the field, or for checks that
/// do not say, the policy rule and message).
#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct FindingKey {
    pub rule: Rule,
    pub subject: String,
    pub detail: String,
}

impl FindingKey {
    pub fn of(finding: &Finding, renames: &HashMap<String, String>) -> FindingKey {
        let renamed = |path: &str| {
            renames
                .get(path)
                .cloned()
                .unwrap_or_else(|| path.to_owned())
        };
        let subject = match &finding.object {
            Some(ObjectId::Document { path, index }) => format!("{}#{index}", renamed(path)),
            Some(id) => id.to_string(),
            None => finding
                .location
                .as_ref()
                .map(|l| renamed(&l.file))
                .unwrap_or_default(),
        };
        let detail = match &finding.field {
            Some(field) => field.clone(),
            None => {
                let meta = |key: &str| {
                    finding
                        .metadata
                        .get(key)
                        .map(|v| v.to_string())
                        .unwrap_or_default()
                };
                format!("{}/{}: {}", meta("package"), meta("rule"), finding.message)
            }
        };
        FindingKey {
            rule: finding.rule,
            subject,
            detail,
        }
    }
}
